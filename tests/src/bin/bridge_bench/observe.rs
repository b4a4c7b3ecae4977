//! The latency phases' observer: a plain consumer that notes when each record becomes readable.
//!
//! Latency is taken where a downstream reader sees it: receive time at a consumer minus the timestamp the
//! feeder put in the event, so the producer's linger, the broker's acknowledgement and the fetch all
//! count. The same observer reads the bridge's lifecycle output and the rig-floor topic, so the two figures
//! differ only by what the bridge adds. Each sample keeps its send time, so a phase can also be told second
//! by second ([`Samples::per_second`]): a latency that climbs through the phase is a backlog (the machine or
//! the broker falling behind), not a delay the bridge adds to every event.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// Milliseconds since the epoch, the clock of the feeder's timestamps.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// What an observer saw: per record, the feeder's send time and the latency, both in ms.
pub(crate) struct Samples(Vec<(i64, i64)>);

impl Samples {
    /// All latencies, sorted.
    pub(crate) fn sorted(&self) -> Vec<i64> {
        let mut latencies: Vec<i64> = self.0.iter().map(|(_, latency)| *latency).collect();
        latencies.sort_unstable();
        latencies
    }

    /// p50 and p99 of the records sent in each second of the phase, e.g. `0 s 31/44, 1 s 35/52`.
    pub(crate) fn per_second(&self) -> String {
        let Some(first) = self.0.iter().map(|(sent, _)| *sent).min() else {
            return String::new();
        };
        let mut seconds: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (sent, latency) in &self.0 {
            seconds
                .entry((sent - first) / 1000)
                .or_default()
                .push(*latency);
        }
        let parts: Vec<String> = seconds
            .into_iter()
            .map(|(second, mut latencies)| {
                latencies.sort_unstable();
                let pct =
                    |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
                format!("{second} s {}/{}", pct(50), pct(99))
            })
            .collect();
        parts.join(", ")
    }
}

/// Starts an observer of `topic` at its current end, runs `feed`, and returns what it saw of the first
/// `count` records for which `stamp` gives a timestamp (others, e.g. of an earlier phase, are skipped).
pub(crate) async fn latencies(
    bootstrap: &str,
    topic: &str,
    count: usize,
    stamp: impl Fn(&[u8]) -> Option<i64> + Send + 'static,
    feed: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<Samples> {
    let (ready, is_ready) = tokio::sync::oneshot::channel();
    let observer = tokio::task::spawn_blocking({
        let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
        move || observe(&bootstrap, &topic, count, stamp, ready)
    });
    is_ready.await?;
    feed.await?;
    observer.await?
}

/// Assigns every partition of `topic` at its high watermark (no group, no rebalance delay), says so on
/// `ready`, then polls.
fn observe(
    bootstrap: &str,
    topic: &str,
    count: usize,
    stamp: impl Fn(&[u8]) -> Option<i64>,
    ready: tokio::sync::oneshot::Sender<()>,
) -> anyhow::Result<Samples> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-observer")
        .set("enable.auto.commit", "false")
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len() as i32)
        .unwrap_or(0);
    anyhow::ensure!(partitions > 0, "topic {topic} has no partitions");
    let mut start = TopicPartitionList::new();
    for partition in 0..partitions {
        let (_, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
        start.add_partition_offset(topic, partition, Offset::Offset(high))?;
    }
    consumer.assign(&start)?;
    let _ = ready.send(());
    let mut latencies = Vec::with_capacity(count);
    let deadline = Instant::now() + Duration::from_secs(300);
    while latencies.len() < count && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message?;
            if let Some(sent_ms) = stamp(message.payload().unwrap_or_default()) {
                latencies.push((sent_ms, now_ms() - sent_ms));
            }
        }
    }
    anyhow::ensure!(
        latencies.len() == count,
        "the observer of {topic} saw {} of {count} records",
        latencies.len()
    );
    Ok(Samples(latencies))
}
