//! The edge's counters and gauges, in the Prometheus text format (prometheus-client).
//!
//! Counters live in the modules that count (each gets a clone of [`EdgeMetrics`]); the outbox gauges are
//! read from the outbox file at scrape time, so they are right even for what another process (an operator
//! command) changed.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::outbox::{OutboxStats, Stored};

/// The source a series is about: `mqtt`, or `modbus:<device>`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// Source name.
    pub source: String,
}

/// Every series the edge exports; cheap to clone (handles to shared atomics).
#[derive(Clone, Default)]
pub struct EdgeMetrics {
    /// Results committed to the outbox, per source.
    pub captured: Family<SourceLabel, Counter>,
    /// Payloads put in quarantine, per source.
    pub quarantined: Family<SourceLabel, Counter>,
    /// Results delivered again and recognised by event id, per source.
    pub duplicates: Family<SourceLabel, Counter>,
    /// Whether a source is connected (1) or not (0).
    pub source_up: Family<SourceLabel, Gauge>,
    /// Source tasks that ended without being asked to (a panic, a bug): the edge is unhealthy from then on.
    pub source_failures: Counter,
    /// Events Kafka confirmed.
    pub forwarded: Counter,
    /// Modbus requests or connections that failed, per device.
    pub modbus_errors: Family<SourceLabel, Counter>,
    /// Results the station produced but the edge never received (a PLC counter jumped), per device.
    pub results_lost: Family<SourceLabel, Counter>,
    /// Forwarding rounds that failed (Kafka away, a delivery error).
    pub delivery_errors: Counter,
    /// Whether the last contact with Kafka succeeded.
    pub kafka_up: Gauge,
    /// Events waiting in the outbox.
    pub outbox_depth: Gauge,
    /// Size of the outbox file.
    pub outbox_bytes: Gauge,
    /// Age of the oldest waiting event, seconds (0 when empty).
    pub outbox_oldest_age_seconds: Gauge<f64, AtomicU64>,
    /// Payloads in quarantine (the table, not the counter since start).
    pub outbox_quarantined: Gauge,
    /// Events dropped by policy `drop_oldest` since the outbox was created (kept in the outbox file).
    pub outbox_dropped: Gauge,
    /// Quarantine entries dropped by the quarantine's bounds since the outbox was created.
    pub outbox_quarantine_dropped: Gauge,
    /// MQTT results received whose PUBACK is not written yet (MQTT 5: not queued yet); at `mqtt.max_unacked`
    /// the source stops reading.
    pub mqtt_unacked: Gauge,
}

impl EdgeMetrics {
    /// Creates the series and registers them under the `linegate_edge` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let r = registry.sub_registry_with_prefix("linegate_edge");
        metrics.register_capture(r);
        metrics.register_delivery(r);
        metrics
    }

    /// The capture side: what the sources took, quarantined, recognised again and lost.
    fn register_capture(&self, r: &mut Registry) {
        r.register(
            "source_failures",
            "Source tasks that stopped without being asked to; the edge reports unhealthy until restarted",
            self.source_failures.clone(),
        );
        r.register(
            "captured",
            "Results committed to the outbox",
            self.captured.clone(),
        );
        r.register(
            "quarantined",
            "Payloads kept in quarantine because they could not be parsed or mapped",
            self.quarantined.clone(),
        );
        r.register(
            "duplicates",
            "Results delivered again and recognised by their event id (acknowledged, not stored twice)",
            self.duplicates.clone(),
        );
        r.register(
            "source_up",
            "1 when the source is connected",
            self.source_up.clone(),
        );
        r.register(
            "modbus_errors",
            "Modbus requests or connections that failed",
            self.modbus_errors.clone(),
        );
        r.register(
            "results_lost",
            "Results lost at the station: the PLC result counter jumped",
            self.results_lost.clone(),
        );
    }

    /// The delivery side: what Kafka confirmed, the outbox's levels and the MQTT session's hold.
    fn register_delivery(&self, r: &mut Registry) {
        r.register(
            "forwarded",
            "Events Kafka confirmed",
            self.forwarded.clone(),
        );
        r.register(
            "delivery_errors",
            "Forwarding rounds that failed and are retried",
            self.delivery_errors.clone(),
        );
        r.register(
            "kafka_up",
            "1 when the last contact with Kafka succeeded",
            self.kafka_up.clone(),
        );
        r.register(
            "outbox_depth",
            "Events waiting for Kafka",
            self.outbox_depth.clone(),
        );
        r.register(
            "outbox_bytes",
            "Size of the outbox database file",
            self.outbox_bytes.clone(),
        );
        r.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest event waiting for Kafka",
            self.outbox_oldest_age_seconds.clone(),
        );
        r.register(
            "outbox_quarantined",
            "Payloads in the quarantine table",
            self.outbox_quarantined.clone(),
        );
        r.register(
            "outbox_dropped_events",
            "Events dropped by policy drop_oldest since the outbox was created",
            self.outbox_dropped.clone(),
        );
        r.register(
            "outbox_quarantine_dropped",
            "Quarantine entries dropped by outbox.quarantine_max_entries / quarantine_max_bytes since the outbox was created",
            self.outbox_quarantine_dropped.clone(),
        );
        r.register(
            "mqtt_unacked",
            "MQTT results received whose PUBACK is not written (MQTT 5: queued) yet; reading pauses at mqtt.max_unacked",
            self.mqtt_unacked.clone(),
        );
    }

    /// Counts what the outbox did with one source's items.
    pub fn record_stored(&self, source: &str, stored: &[Stored]) {
        let label = SourceLabel {
            source: source.to_owned(),
        };
        for outcome in stored {
            match outcome {
                Stored::Event { .. } => self.captured.get_or_create(&label).inc(),
                Stored::Quarantined => self.quarantined.get_or_create(&label).inc(),
                Stored::Duplicate => self.duplicates.get_or_create(&label).inc(),
                Stored::Refused | Stored::Marked => 0,
            };
        }
    }

    /// Marks a source connected or not.
    pub fn set_source_up(&self, source: &str, up: bool) {
        self.source_up
            .get_or_create(&SourceLabel {
                source: source.to_owned(),
            })
            .set(i64::from(up));
    }

    /// Copies the outbox's state into the gauges.
    pub fn set_outbox(&self, stats: &OutboxStats, now_ms: i64) {
        self.outbox_depth.set(stats.depth);
        self.outbox_bytes.set(stats.file_bytes);
        self.outbox_quarantined.set(stats.quarantined);
        self.outbox_dropped.set(stats.dropped_events);
        self.outbox_quarantine_dropped.set(stats.quarantine_dropped);
        let age_ms = stats
            .oldest_captured_at_ms
            .map_or(0, |at| now_ms.saturating_sub(at).max(0));
        self.outbox_oldest_age_seconds.set(age_ms as f64 / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_outcomes_are_counted_per_source_and_exported() {
        let mut registry = Registry::default();
        let metrics = EdgeMetrics::register(&mut registry);
        metrics.record_stored(
            "mqtt",
            &[
                Stored::Event { seq: 1 },
                Stored::Event { seq: 2 },
                Stored::Quarantined,
                Stored::Duplicate,
                Stored::Refused,
            ],
        );
        metrics.set_source_up("mqtt", true);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("linegate_edge_captured_total{source=\"mqtt\"} 2"),
            "{text}"
        );
        assert!(text.contains("linegate_edge_quarantined_total{source=\"mqtt\"} 1"));
        assert!(text.contains("linegate_edge_duplicates_total{source=\"mqtt\"} 1"));
        assert!(text.contains("linegate_edge_source_up{source=\"mqtt\"} 1"));
    }
}
