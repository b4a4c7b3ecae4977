//! Finishing rounds: waiting for their acknowledgements, sending them again after a failure, committing
//! their offsets in order, and the books (metrics, totals, the round's log line).
//!
//! An at-least-once round is left in flight ([`crate::pipeline::in_flight`]) while the next one is read and routed; these
//! settle it later. A failed round takes every round sent after it along: they are sent again in order once
//! it went through, so that no round is committed before the ones read ahead of it.

use std::time::Instant;

use rdkafka::consumer::CommitMode;
use rdkafka::message::OwnedMessage;
use tokio::sync::watch;

use super::{retry_note, Pipeline, Totals, RETRY_BACKOFF_MAX, RETRY_BACKOFF_MIN};
use crate::decide::round::Counts;
use crate::decide::route::Output;
use crate::pipeline::commit;
use crate::pipeline::in_flight::Pending;
use crate::pipeline::produce::{self, DeliveryError};

/// Rounds kept with Kafka while the next is read and routed. One lets routing overlap the broker's work;
/// more measured no faster in bridge-bench and repeat more after a crash.
pub(super) const ROUNDS_IN_FLIGHT: usize = 1;

impl Pipeline {
    /// Settles rounds in flight, oldest first, until at most `keep` remain, committing each with `mode`.
    /// False when the bridge is stopping with a round that could not be delivered (it stays uncommitted,
    /// to be handled again).
    pub(super) async fn settle_until(
        &self,
        keep: usize,
        mode: CommitMode,
        totals: &mut Totals,
        shutdown: &watch::Receiver<bool>,
    ) -> bool {
        while self.in_flight.len() > keep {
            let Some(mut round) = self.in_flight.pop() else {
                break;
            };
            match round.settled_by_rebalance() {
                // Delivered and committed by the revocation: only the books are left.
                Some(true) => {}
                Some(false) => {
                    tracing::warn!(
                        records = round.batch.len(),
                        "a round revoked before it was delivered is left to the partitions' next owner"
                    );
                    continue;
                }
                None => {
                    if let Err(error) = round.delivery().await {
                        if !self.redeliver_from(round, error, totals, shutdown).await {
                            return false;
                        }
                        continue;
                    }
                    commit::commit(&self.consumer, &round.batch, mode);
                }
            }
            self.books(
                &round.batch,
                &round.outputs,
                round.counts,
                1,
                round.started,
                totals,
            );
        }
        true
    }

    /// After `failed` was not delivered: lets every later round in flight settle too (a quiet producer), then
    /// sends them all again in order, each committed once it went through. The later rounds are sent again
    /// even if they were acknowledged: their state records must land after the failed round's, or the state
    /// topic would end on an older state of a station.
    async fn redeliver_from(
        &self,
        failed: Pending,
        error: DeliveryError,
        totals: &mut Totals,
        shutdown: &watch::Receiver<bool>,
    ) -> bool {
        let mut rounds = vec![failed];
        while let Some(mut later) = self.in_flight.pop() {
            // Only waited for: it is sent again below in any case.
            let _ = later.delivery().await;
            rounds.push(later);
        }
        let mut error = Some(error);
        for round in rounds {
            let sent = match error.take() {
                Some(error) => Err(error),
                None => {
                    let held = self.state_outputs(&round.outputs);
                    produce::deliver_held(&self.producer(), &round.outputs, held).await
                }
            };
            let attempts = match sent {
                Ok(()) => 1,
                Err(error) => {
                    let records = round.batch.len();
                    match self
                        .deliver_until_done(&round.outputs, records, error, shutdown)
                        .await
                    {
                        Some(attempts) => attempts,
                        None => return false,
                    }
                }
            };
            commit::commit(&self.consumer, &round.batch, CommitMode::Sync);
            self.books(
                &round.batch,
                &round.outputs,
                round.counts,
                attempts,
                round.started,
                totals,
            );
        }
        true
    }

    /// Sends `outputs` again until Kafka acknowledged them all, after `error` and a back-off that doubles per
    /// failure. The attempts it took, or None when the bridge stops first.
    pub(super) async fn deliver_until_done(
        &self,
        outputs: &[Output],
        records: usize,
        error: DeliveryError,
        shutdown: &watch::Receiver<bool>,
    ) -> Option<u32> {
        let mut backoff = RETRY_BACKOFF_MIN;
        let mut attempt = 1;
        let mut failed = Some(error);
        while let Some(error) = failed.take() {
            if *shutdown.borrow() {
                tracing::error!(%error, records, "stopping with an undelivered round; its offsets stay uncommitted and it will be handled again");
                return None;
            }
            tracing::warn!(%error, attempt, outputs = outputs.len(), retry_in = ?backoff, "{}", retry_note(&error));
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            attempt += 1;
            let held = self.state_outputs(outputs);
            failed = produce::deliver_held(&self.producer(), outputs, held)
                .await
                .err();
        }
        Some(attempt)
    }

    /// The books of a committed round: output and latency metrics, dedup hits, totals, its log line.
    pub(super) fn books(
        &self,
        batch: &[OwnedMessage],
        outputs: &[Output],
        counts: Counts,
        attempts: u32,
        started: Instant,
        totals: &mut Totals,
    ) {
        self.metrics.delivered(batch, outputs);
        self.metrics.dedup_hits.inc_by(counts.duplicates);
        totals.add(counts);
        tracing::debug!(
            records = batch.len(),
            accepted = counts.accepted,
            rejected = counts.rejected,
            duplicates = counts.duplicates,
            outputs = outputs.len(),
            attempts,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "round committed"
        );
    }
}
