//! The input side: the group consumer of the input topic and the batch a round gathers (the offsets it
//! commits are [`crate::pipeline::commit`]'s).
//!
//! Offsets are stored and committed only after a round's outputs were acknowledged (by the pipeline, or by
//! the consumer context for the rounds in flight before a revocation), never automatically: an automatic
//! commit could mark a record as done before its outputs exist.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientContext, TopicPartitionList};

use crate::config::{BridgeConfig, DeliveryMode};
use crate::pipeline::in_flight::InFlight;

/// The bridge's consumer type.
pub type InputConsumer = StreamConsumer<GroupLog>;

/// Creates the group consumer of the input topic (the caller subscribes). A group without committed offsets
/// starts at the earliest record, so nothing the edges sent before the bridge's first start is skipped.
/// `assigned` turns true on every partition assignment and revocation (the pipeline then re-reads its state
/// for what it owns), `rebalances`
/// counts every revocation and assignment; the rounds of `in_flight` are settled before any revocation.
pub fn consumer(
    config: &BridgeConfig,
    assigned: Arc<AtomicBool>,
    rebalances: Rebalances,
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
        ])
        .create_with_context(GroupLog {
            assigned,
            rebalances,
            in_flight,
        })
}

/// How often the group moved partitions (revocations and assignments alike), so that the pipeline can tell
/// which of the records it received came before a rebalance. Those must not be routed: a partition that
/// went to another instance is read there from the committed offset (routing and committing it here as
/// well would race that owner, whose state read may not include this round: seen as a broken audit chain in
/// `tests/tests/bridge/scaling.rs`), and one that stayed is fetched again from the committed offset anyway.
#[derive(Clone, Default)]
pub struct Rebalances(Arc<AtomicU64>);

impl Rebalances {
    /// The number of rebalances so far; compare two readings to see whether one happened in between.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    fn note(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Consumer context that logs group membership changes (which partitions this instance owns is the first
/// thing to know when records are not flowing) and flags assignments, after which the dedup state of the
/// new partitions' stations must be re-read: another instance may have advanced it.
pub struct GroupLog {
    assigned: Arc<AtomicBool>,
    rebalances: Rebalances,
    in_flight: InFlight,
}

impl ClientContext for GroupLog {}

impl ConsumerContext for GroupLog {
    /// Partitions are released with their work committed: the rounds in flight are waited for first.
    /// Records received before this point are stale from now on ([`Rebalances`]).
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(_) => {
                self.rebalances.note();
                self.in_flight.settle_for_rebalance(consumer);
            }
            Rebalance::Assign(_) => self.rebalances.note(),
            Rebalance::Error(_) => {}
        }
    }

    /// Commits of the steady loop are asynchronous ([`crate::pipeline::commit::commit`]): their failures surface here.
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
                // The next round re-reads the state for what is owned then: the windows of the revoked
                // partitions must not close here while another instance runs them.
                self.assigned.store(true, Ordering::SeqCst);
            }
            Rebalance::Error(error) => tracing::warn!(%error, "consumer group rebalance failed"),
        }
    }
}

/// A batch being gathered that forgets every record received before the latest rebalance ([`Rebalances`]).
pub struct Gathering {
    records: Vec<OwnedMessage>,
    /// The rebalance count the kept records were received under.
    epoch: u64,
    /// Records forgotten so far.
    dropped: usize,
}

impl Gathering {
    /// An empty batch as of rebalance count `epoch`.
    pub fn new(epoch: u64) -> Self {
        Self {
            records: Vec::new(),
            epoch,
            dropped: 0,
        }
    }

    /// Adds `record`, received when the rebalance count was `epoch` (read after it was received), first
    /// forgetting what came before a rebalance.
    pub fn push(&mut self, record: OwnedMessage, epoch: u64) {
        self.forget_before(epoch);
        self.records.push(record);
    }

    /// Records kept so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records still valid at rebalance count `epoch`, and how many were forgotten.
    pub fn finish(mut self, epoch: u64) -> (Vec<OwnedMessage>, usize) {
        self.forget_before(epoch);
        (self.records, self.dropped)
    }

    fn forget_before(&mut self, epoch: u64) {
        if epoch != self.epoch {
            self.dropped += self.records.len();
            self.records.clear();
            self.epoch = epoch;
        }
    }
}

/// Longest pause after consume errors that come one after another.
const CONSUME_PAUSE_MAX: Duration = Duration::from_secs(1);

/// How long to pause after the `failures`-th consume error in a row, `error`. Errors about the brokers'
/// reachability are librdkafka's news, queued while it reconnects by itself: one queued per suppressed
/// burst, so a long outage leaves many behind, and a pause for each would keep the bridge idle long after
/// the broker is back (issue 19: 30 s per queued error). They cost no pause; any other error pauses a
/// little, doubling up to [`CONSUME_PAUSE_MAX`], so an error that repeats at once cannot spin a core.
pub fn pause_after(error: &KafkaError, failures: u32) -> Duration {
    if is_broker_news(error) {
        return Duration::ZERO;
    }
    let doubled = Duration::from_millis(50).saturating_mul(1 << failures.min(5));
    doubled.min(CONSUME_PAUSE_MAX)
}

/// An error that says a broker is unreachable or slow, which the client recovers from by itself.
fn is_broker_news(error: &KafkaError) -> bool {
    use rdkafka::error::RDKafkaErrorCode as Code;
    matches!(
        error.rdkafka_error_code(),
        Some(
            Code::BrokerTransportFailure
                | Code::AllBrokersDown
                | Code::Resolve
                | Code::OperationTimedOut
                | Code::RequestTimedOut
                | Code::NetworkException
                | Code::BrokerNotAvailable
                | Code::CoordinatorNotAvailable
                | Code::NotCoordinator
                | Code::LeaderNotAvailable
                | Code::NotLeaderForPartition
        )
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Message;

    fn record(offset: i64) -> OwnedMessage {
        use rdkafka::message::Timestamp;
        OwnedMessage::new(
            None,
            None,
            "in".into(),
            Timestamp::NotAvailable,
            0,
            offset,
            None,
        )
    }

    #[test]
    fn a_rebalance_while_gathering_forgets_what_came_before_it() {
        let rebalances = Rebalances::default();
        let mut batch = Gathering::new(rebalances.count());
        batch.push(record(1), rebalances.count());
        batch.push(record(2), rebalances.count());
        rebalances.note();
        rebalances.note();
        batch.push(record(3), rebalances.count());
        let (kept, dropped) = batch.finish(rebalances.count());
        assert_eq!(kept.iter().map(|m| m.offset()).collect::<Vec<_>>(), [3]);
        assert_eq!(dropped, 2);
    }

    #[test]
    fn a_rebalance_after_the_last_record_forgets_the_whole_batch() {
        let rebalances = Rebalances::default();
        let mut batch = Gathering::new(rebalances.count());
        batch.push(record(1), rebalances.count());
        rebalances.note();
        let (kept, dropped) = batch.finish(rebalances.count());
        assert!(kept.is_empty());
        assert_eq!(dropped, 1);
    }
    #[test]
    fn news_of_unreachable_brokers_costs_no_pause_and_other_errors_pause_at_most_a_second() {
        let down = KafkaError::MessageConsumption(
            rdkafka::error::RDKafkaErrorCode::BrokerTransportFailure,
        );
        let all_down =
            KafkaError::MessageConsumption(rdkafka::error::RDKafkaErrorCode::AllBrokersDown);
        for failures in [0, 1, 10, 1_000] {
            assert_eq!(pause_after(&down, failures), Duration::ZERO);
            assert_eq!(pause_after(&all_down, failures), Duration::ZERO);
        }
        let other = KafkaError::MessageConsumption(
            rdkafka::error::RDKafkaErrorCode::UnknownTopicOrPartition,
        );
        let pauses: Vec<Duration> = (0..8).map(|n| pause_after(&other, n)).collect();
        assert_eq!(pauses[0], Duration::from_millis(50));
        assert_eq!(pauses[1], Duration::from_millis(100));
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]), "{pauses:?}");
        assert_eq!(pauses[7], CONSUME_PAUSE_MAX);
        assert_eq!(pause_after(&other, u32::MAX), CONSUME_PAUSE_MAX);
    }
}
