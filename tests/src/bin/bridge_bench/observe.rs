//! The latency phases' observer: a plain consumer that notes when each record becomes readable.
//!
//! Latency is taken where a downstream reader sees it: receive time at a consumer minus the timestamp the
//! feeder put in the event, so the producer's linger, the broker's acknowledgement and the fetch all
//! count. The same observer reads the bridge's lifecycle output and the rig-floor topic, so the two figures
//! differ only by what the bridge adds.

use std::future::Future;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// Milliseconds since the epoch, the clock of the feeder's timestamps.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Starts an observer of `topic` at its current end, runs `feed`, and returns the sorted latencies of the
/// first `count` records for which `stamp` gives a timestamp (others, e.g. of an earlier phase, are
/// skipped).
pub async fn latencies(
    bootstrap: &str,
    topic: &str,
    count: usize,
    stamp: impl Fn(&[u8]) -> Option<i64> + Send + 'static,
    feed: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<Vec<i64>> {
    let (ready, is_ready) = tokio::sync::oneshot::channel();
    let observer = tokio::task::spawn_blocking({
        let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
        move || observe(&bootstrap, &topic, count, stamp, ready)
    });
    is_ready.await?;
    feed.await?;
    let mut latencies = observer.await??;
    latencies.sort_unstable();
    Ok(latencies)
}

/// Assigns every partition of `topic` at its high watermark (no group, no rebalance delay), says so on
/// `ready`, then polls with the bridge's fetch wait.
fn observe(
    bootstrap: &str,
    topic: &str,
    count: usize,
    stamp: impl Fn(&[u8]) -> Option<i64>,
    ready: tokio::sync::oneshot::Sender<()>,
) -> anyhow::Result<Vec<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-observer")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
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
                latencies.push(now_ms() - sent_ms);
            }
        }
    }
    anyhow::ensure!(
        latencies.len() == count,
        "the observer of {topic} saw {} of {count} records",
        latencies.len()
    );
    Ok(latencies)
}
