//! Committing input positions: the offsets after a round's records, as the group coordinator takes them.
//!
//! The at-least-once loop commits them once a round's outputs were acknowledged ([`commit`]); the exactly-once
//! loop sends the same list into its transaction ([`commit_list`]).

use std::collections::BTreeMap;

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

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

/// Commits the offsets after `batch`; false (logged) if Kafka refused at once. Rounds in the steady loop
/// commit `Async`: the round then does not wait for the group coordinator, whose round trip would be added
/// to every record's latency. Commits reach the coordinator in order, a later one covers an earlier that
/// failed, and a failure reported later is logged by the consumer context; offsets that never made it only
/// mean records read again, which the ledger skips as replays. Before a revocation and at a stop the commit is `Sync`:
/// the partitions' next owner must start after it.
pub fn commit<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    batch: &[OwnedMessage],
    mode: CommitMode,
) -> bool {
    if batch.is_empty() {
        return true;
    }
    let positions = batch.iter().map(|m| (m.topic(), m.partition(), m.offset()));
    let committed = commit_list(positions).and_then(|offsets| consumer.commit(&offsets, mode));
    match committed {
        Ok(()) => true,
        Err(error) => {
            // After a rebalance the partitions may belong to another instance, which repeats the round.
            tracing::warn!(%error, "offset commit failed; the records of this round will be handled again");
            false
        }
    }
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
