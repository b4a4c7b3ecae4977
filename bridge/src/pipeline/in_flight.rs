//! Rounds whose outputs are with the producer but not yet all acknowledged (at-least-once, either wire format).
//!
//! The pipeline keeps one such round while it reads and routes the next, so that routing overlaps Kafka's
//! acknowledgements instead of waiting for them. Invariants:
//! - a round's offsets are committed only after every one of its outputs (its state records included) was
//!   acknowledged, and rounds are committed in the order they were read;
//! - once a round failed, no later round is committed before it was delivered again;
//! - partitions are released with their work committed: on a revocation the consumer context settles every
//!   round in flight ([`InFlight::settle_for_rebalance`]) before librdkafka gives the partitions away.
//!
//! The pipeline is one task and the rebalance callback runs inside its `recv()`, so the two never use a
//! round at the same time; the lock only makes the queue shareable with the consumer context.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, CommitMode, ConsumerContext};
use rdkafka::message::OwnedMessage;

use crate::decide::round::Counts;
use crate::decide::route::Output;
use crate::pipeline::produce::{DeliveryError, Sending};

/// One round handed to the producer.
pub struct Pending {
    /// Its input records, in order.
    pub batch: Vec<OwnedMessage>,
    /// Its outputs, in send order (kept to send them again after a failure).
    pub outputs: Vec<Output>,
    /// What became of its records.
    pub counts: Counts,
    /// When the round began, for its log line.
    pub started: Instant,
    /// The delivery reports still to come; taken by whoever settles the round.
    sending: Option<Sending>,
    /// Set when a revocation settled the round: whether it was delivered and committed.
    settled_by_rebalance: Option<bool>,
}

impl Pending {
    /// A round whose outputs were all queued by `sending`.
    pub fn new(
        batch: Vec<OwnedMessage>,
        outputs: Vec<Output>,
        counts: Counts,
        started: Instant,
        sending: Sending,
    ) -> Self {
        Self {
            batch,
            outputs,
            counts,
            started,
            sending: Some(sending),
            settled_by_rebalance: None,
        }
    }

    /// Waits for the round's delivery reports; `Ok` at once if they were already waited for (by a
    /// revocation, see [`Pending::settled_by_rebalance`]).
    pub async fn delivery(&mut self) -> Result<(), DeliveryError> {
        match self.sending.take() {
            Some(sending) => sending.settle().await,
            None => Ok(()),
        }
    }

    /// Whether a revocation settled the round, and if so whether it was committed.
    pub fn settled_by_rebalance(&self) -> Option<bool> {
        self.settled_by_rebalance
    }
}

/// The rounds in flight, oldest first; shared by the pipeline and the consumer context.
#[derive(Clone, Default)]
pub struct InFlight(Arc<Mutex<VecDeque<Pending>>>);

impl InFlight {
    /// Adds the newest round.
    pub fn push(&self, round: Pending) {
        self.rounds().push_back(round);
    }

    /// Takes the oldest round.
    pub fn pop(&self) -> Option<Pending> {
        self.rounds().pop_front()
    }

    /// Rounds in flight.
    pub fn len(&self) -> usize {
        self.rounds().len()
    }

    /// Whether no round is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Called before partitions are revoked: waits for every round in flight and commits, in order, those
    /// whose outputs were all acknowledged, up to the first that was not (the partitions' next owner
    /// handles that one and what follows again). The rounds stay queued, marked, for the pipeline's books.
    pub fn settle_for_rebalance<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) {
        let mut rounds = self.rounds();
        let mut intact = true;
        for round in rounds.iter_mut() {
            let Some(sending) = round.sending.take() else {
                continue;
            };
            let delivered = futures_executor::block_on(sending.settle());
            if let Err(error) = &delivered {
                tracing::warn!(%error, records = round.batch.len(), "a round in flight was not delivered before its partitions were revoked; their next owner handles it again");
            }
            intact &= delivered.is_ok();
            let committed =
                intact && super::commit::commit(consumer, &round.batch, CommitMode::Sync);
            intact &= committed;
            round.settled_by_rebalance = Some(committed);
        }
        if !rounds.is_empty() {
            tracing::info!(
                rounds = rounds.len(),
                committed = intact,
                "rounds in flight settled before the partitions are revoked"
            );
        }
    }

    fn rounds(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
