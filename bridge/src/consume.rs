//! The input side: the group consumer of the input topic and the offsets a round commits.
//!
//! Offsets are stored and committed only after a round's outputs were acknowledged (by the pipeline, or by
//! the consumer context for the rounds in flight before a revocation), never automatically: an automatic
//! commit could mark a record as done before its outputs exist.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::config::{BridgeConfig, DeliveryMode};
use crate::inflight::InFlight;

/// The bridge's consumer type.
pub type InputConsumer = StreamConsumer<GroupLog>;

/// Longest time a fetch waits at the broker for records. Apache Kafka answers a fetch as soon as
/// `fetch.min.bytes` (1) arrived, so this bounds only idle polls (a few cheap requests per second); tansu
/// 0.6.0 appears to hold a fetch for this long even when records are there: with librdkafka's default of
/// 500 ms, bridge-bench measured p50 460 ms at 10,000 events/s, with 10 ms 63 ms.
/// `[kafka.client]` may override it. The state read-back ([`crate::state`]) uses it too.
pub(crate) const FETCH_WAIT_MAX_MS: &str = "10";

/// Creates the group consumer of the input topic (the caller subscribes). A group without committed offsets
/// starts at the earliest record, so nothing the edges sent before the bridge's first start is skipped.
/// `assigned` turns true on every partition assignment (the pipeline then re-reads its state); the rounds
/// of `in_flight` are settled before any revocation.
pub fn consumer(
    config: &BridgeConfig,
    assigned: Arc<AtomicBool>,
    in_flight: InFlight,
) -> Result<InputConsumer, KafkaError> {
    let isolation = match config.delivery.mode {
        DeliveryMode::ExactlyOnce => "read_committed",
        DeliveryMode::AtLeastOnce => "read_uncommitted",
    };
    config
        .kafka
        .client_config(&[
            ("group.id", &config.bridge.group_id),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
            ("isolation.level", isolation),
            ("fetch.wait.max.ms", FETCH_WAIT_MAX_MS),
        ])
        .create_with_context(GroupLog {
            assigned,
            in_flight,
        })
}

/// Consumer context that logs group membership changes (which partitions this instance owns is the first
/// thing to know when records are not flowing) and flags assignments, after which the dedup state of the
/// new partitions' stations must be re-read: another instance may have advanced it.
pub struct GroupLog {
    assigned: Arc<AtomicBool>,
    in_flight: InFlight,
}

impl ClientContext for GroupLog {}

impl ConsumerContext for GroupLog {
    /// Partitions are released with their work committed: the rounds in flight are waited for first.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            self.in_flight.settle_for_rebalance(consumer);
        }
    }

    /// Commits of the steady loop are asynchronous ([`crate::inflight::commit`]): their failures surface here.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(error) = result {
            tracing::warn!(%error, partitions = %describe(offsets), "an offset commit failed; a later commit covers it, or the records are read again and skipped as replays");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                tracing::info!(partitions = %describe(partitions), "input partitions assigned");
                self.assigned.store(true, Ordering::SeqCst);
            }
            Rebalance::Revoke(partitions) => {
                tracing::info!(partitions = %describe(partitions), "input partitions revoked");
            }
            Rebalance::Error(error) => tracing::warn!(%error, "consumer group rebalance failed"),
        }
    }
}

fn describe(partitions: &TopicPartitionList) -> String {
    let names: Vec<String> = partitions
        .elements()
        .iter()
        .map(|p| format!("{}/{}", p.topic(), p.partition()))
        .collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(",")
    }
}

/// The offset to commit per (topic, partition): one past the highest offset handled, Kafka's convention for
/// "next record to read".
pub fn next_offsets<'a>(
    positions: impl IntoIterator<Item = (&'a str, i32, i64)>,
) -> BTreeMap<(&'a str, i32), i64> {
    let mut next = BTreeMap::new();
    for (topic, partition, offset) in positions {
        let entry = next.entry((topic, partition)).or_insert(offset + 1);
        *entry = (*entry).max(offset + 1);
    }
    next
}

/// [`next_offsets`] as the list `commit` takes.
pub fn commit_list<'a>(
    positions: impl IntoIterator<Item = (&'a str, i32, i64)>,
) -> Result<TopicPartitionList, KafkaError> {
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), next) in next_offsets(positions) {
        offsets.add_partition_offset(topic, partition, Offset::Offset(next))?;
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_offsets_are_one_past_the_last_record_per_partition() {
        let positions = [
            ("in", 0, 7),
            ("in", 1, 3),
            ("in", 0, 8),
            ("in", 1, 2),
            ("other", 0, 0),
        ];
        let next = next_offsets(positions);
        assert_eq!(
            next.into_iter().collect::<Vec<_>>(),
            [(("in", 0), 9), (("in", 1), 4), (("other", 0), 1)]
        );
    }

    #[test]
    fn the_commit_list_holds_one_entry_per_partition() {
        let list = commit_list([("in", 0, 7), ("in", 0, 8), ("in", 2, 1)]).unwrap();
        let entries: Vec<(i32, Offset)> = list
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset()))
            .collect();
        assert_eq!(entries, [(0, Offset::Offset(9)), (2, Offset::Offset(2))]);
    }
}
