//! The bridge's Prometheus metrics: one registry per process, built at start and served on `/metrics`.
//!
//! The pipeline counts what it reads and what Kafka acknowledged; the lag gauges are refreshed by the HTTP
//! module's lag poller; `dedup_hits` and `transaction_aborts` are handles for the delivery code (dedup and
//! exactly-once), created here so that every series exists from the first scrape.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rdkafka::message::OwnedMessage;
use rdkafka::Message;

use crate::decide::route::{Output, Rejection};

/// Labels of a per-topic series.
pub type TopicLabels = Vec<(&'static str, String)>;

/// Clone-able handles of every bridge metric.
#[derive(Clone)]
pub struct BridgeMetrics {
    /// Input records read, per input topic (`linegate_bridge_records_in_total{topic}`).
    pub records_in: Family<TopicLabels, Counter>,
    /// Output records acknowledged by Kafka, per output topic (`linegate_bridge_records_out_total{topic}`).
    pub records_out: Family<TopicLabels, Counter>,
    /// Inputs sent to the DLQ, per error class (`linegate_bridge_dlq_total{class}`); its rate is the DLQ
    /// rate.
    pub dlq: Family<TopicLabels, Counter>,
    /// Inputs recognised as already handled and not fanned out again (`linegate_bridge_dedup_hits_total`).
    pub dedup_hits: Counter,
    /// Kafka transactions aborted (`linegate_bridge_transaction_aborts_total`).
    pub transaction_aborts: Counter,
    /// Seconds from the input record's timestamp (the edge's send time, or the broker's append time) to the
    /// acknowledgement of all its outputs (`linegate_bridge_latency_seconds`).
    pub latency: Histogram,
    /// Records of the input topic not yet committed by the group, per partition
    /// (`linegate_bridge_consumer_lag{topic,partition}`); refreshed every few seconds.
    pub consumer_lag: Family<TopicLabels, Gauge>,
    /// Records replayed through the pipeline by the API (`linegate_bridge_replayed_total`).
    pub replayed: Counter,
    /// DLQ records sent back to their source topic (`linegate_bridge_redriven_total`).
    pub redriven: Counter,
}

/// Latency buckets in seconds: 1 ms to ~33 s, doubling.
fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 16)
}

impl BridgeMetrics {
    /// Creates the metrics and registers them under the `linegate_bridge` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            records_in: Family::default(),
            records_out: Family::default(),
            dlq: Family::default(),
            dedup_hits: Counter::default(),
            transaction_aborts: Counter::default(),
            latency: Histogram::new(latency_buckets()),
            consumer_lag: Family::default(),
            replayed: Counter::default(),
            redriven: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("linegate_bridge");
        r.register(
            "records_in",
            "Input records read, per input topic",
            metrics.records_in.clone(),
        );
        r.register(
            "records_out",
            "Output records acknowledged by Kafka, per output topic",
            metrics.records_out.clone(),
        );
        r.register(
            "dlq",
            "Inputs sent to the dead-letter topic, per error class",
            metrics.dlq.clone(),
        );
        r.register(
            "dedup_hits",
            "Inputs recognised as already handled and not fanned out again",
            metrics.dedup_hits.clone(),
        );
        r.register(
            "transaction_aborts",
            "Kafka transactions aborted",
            metrics.transaction_aborts.clone(),
        );
        r.register(
            "latency_seconds",
            "Input record timestamp to acknowledgement of all its outputs",
            metrics.latency.clone(),
        );
        r.register(
            "consumer_lag",
            "Input records not yet committed by the consumer group, per partition",
            metrics.consumer_lag.clone(),
        );
        r.register(
            "replayed",
            "Input records replayed through the pipeline on request",
            metrics.replayed.clone(),
        );
        r.register(
            "redriven",
            "Dead letters sent back to their source topic",
            metrics.redriven.clone(),
        );
        metrics
    }

    /// Metrics registered nowhere, for a pipeline started without an HTTP server (tests, tools).
    pub fn unregistered() -> Self {
        Self::register(&mut Registry::default())
    }

    /// Counts the input records of a round, per topic.
    pub fn read(&self, batch: &[OwnedMessage]) {
        for (topic, count) in per_topic(batch.iter().map(|m| m.topic())) {
            self.records_in
                .get_or_create(&Self::topic(topic))
                .inc_by(count);
        }
    }

    /// Counts a rejected input under its DLQ class.
    pub fn rejected(&self, rejection: &Rejection) {
        self.dlq
            .get_or_create(&vec![("class", rejection.class().to_owned())])
            .inc();
    }

    /// Counts a round whose outputs Kafka acknowledged: the outputs per topic, and per input the time from
    /// its record timestamp to now (inputs without a timestamp are not observed).
    pub fn delivered(&self, batch: &[OwnedMessage], outputs: &[Output]) {
        for (topic, count) in per_topic(outputs.iter().map(|o| o.topic.as_str())) {
            self.records_out
                .get_or_create(&Self::topic(topic))
                .inc_by(count);
        }
        let now_ms = linegate_common::process::now_ms();
        for message in batch {
            if let Some(sent_ms) = message.timestamp().to_millis() {
                self.latency
                    .observe((now_ms - sent_ms).max(0) as f64 / 1000.0);
            }
        }
    }

    /// Labels of a per-topic series.
    pub fn topic(topic: &str) -> TopicLabels {
        vec![("topic", topic.to_owned())]
    }
}

/// How many of `topics` name each topic, in first-seen order: a round has a handful of topics and
/// thousands of records, and a series lookup allocates its labels.
fn per_topic<'a>(topics: impl Iterator<Item = &'a str>) -> Vec<(&'a str, u64)> {
    let mut counts: Vec<(&str, u64)> = Vec::new();
    for topic in topics {
        match counts.iter_mut().find(|(seen, _)| *seen == topic) {
            Some((_, count)) => *count += 1,
            None => counts.push((topic, 1)),
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_exposed_with_its_prefix() {
        let mut registry = Registry::default();
        let metrics = BridgeMetrics::register(&mut registry);
        metrics
            .records_in
            .get_or_create(&BridgeMetrics::topic("in"))
            .inc();
        metrics.dedup_hits.inc();
        metrics.latency.observe(0.004);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("linegate_bridge_records_in_total{topic=\"in\"} 1"));
        assert!(text.contains("linegate_bridge_dedup_hits_total 1"));
        assert!(text.contains("linegate_bridge_transaction_aborts_total 0"));
        assert!(text.contains("linegate_bridge_latency_seconds_bucket{le=\"0.008\"} 1"));
    }

    #[test]
    fn topics_are_counted_in_first_seen_order() {
        let topics = ["a", "b", "a", "c", "a"];
        assert_eq!(
            per_topic(topics.into_iter()),
            [("a", 3), ("b", 1), ("c", 1)]
        );
    }
}
