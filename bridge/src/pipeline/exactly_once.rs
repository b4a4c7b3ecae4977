//! The exactly-once round: outputs, dedup state and input offsets in one Kafka transaction ([`crate::pipeline::transaction`]);
//! an aborted round is rewound and read again; a producer that failed fatally is replaced first.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset};
use tokio::sync::watch;

use super::{Pipeline, PipelineError, RETRY_BACKOFF_MAX, RETRY_BACKOFF_MIN};
use crate::pipeline::commit;
use crate::pipeline::produce;
use crate::pipeline::transaction::{self, TxnError};

/// Longest wait for one seek of a rewind.
const SEEK_TIMEOUT: Duration = Duration::from_secs(10);

impl Pipeline {
    /// Exactly-once round: outputs, state and offsets in one transaction. Returns false when the round was
    /// aborted (the input is rewound and the state re-read, so it is handled again).
    pub(super) async fn transaction(
        &self,
        id: &str,
        batch: &[OwnedMessage],
        outputs: &[crate::decide::route::Output],
        shutdown: &watch::Receiver<bool>,
    ) -> Result<bool, PipelineError> {
        let producer = self.producer();
        let began = Instant::now();
        let outcome = match transaction::begin(&producer, id) {
            Err(error) => Err(error),
            Ok(()) => match produce::deliver_all(&producer, outputs).await {
                Err(error) => Err(transaction::abort(
                    &producer,
                    id,
                    "produce",
                    error.into_kafka(),
                )),
                Ok(()) => self.commit_transaction(&producer, id, batch),
            },
        };
        drop(producer);
        let error = match outcome {
            Ok(()) => return Ok(true),
            Err(error) => error,
        };
        let open_for = began.elapsed();
        match &error {
            TxnError::Aborted { step, source } => {
                tracing::warn!(step, error = %source, "transaction aborted; the round is read again");
            }
            // A fencing of a transaction younger than the timeout: a newer process owns the id.
            TxnError::Fenced { .. }
                if open_for < transaction::transaction_timeout(&self.config.kafka) =>
            {
                return Err(error.into())
            }
            TxnError::Fatal { .. } | TxnError::Fenced { .. } => {
                let why = if matches!(error, TxnError::Fenced { .. }) {
                    "the broker aborted a transaction open longer than transaction.timeout.ms (this process was paused, or Kafka stalled)"
                } else {
                    "the transactional producer failed fatally"
                };
                tracing::warn!(%error, ?open_for, "{why}; the round is read again once a new producer is ready");
                if !self.renew_producer(id, shutdown).await {
                    return Ok(false);
                }
            }
            TxnError::Unsupported { .. } => return Err(error.into()),
        }
        self.metrics.transaction_aborts.inc();
        if !self.rewind(batch, shutdown).await {
            return Ok(false);
        }
        self.reload.store(true, Ordering::SeqCst);
        tokio::time::sleep(RETRY_BACKOFF_MIN).await;
        Ok(false)
    }

    /// Replaces the transactional producer with a new one of the same id, retrying with back-off while the
    /// broker is away; false if the stop signal came first (the round stays uncommitted). A fencing met
    /// here is left to the next round, which then stops the bridge.
    async fn renew_producer(&self, id: &str, shutdown: &watch::Receiver<bool>) -> bool {
        let mut backoff = RETRY_BACKOFF_MIN;
        loop {
            let kafka = self.config.kafka.clone();
            let owned_id = id.to_owned();
            let opened =
                tokio::task::spawn_blocking(move || transaction::reopen(&kafka, &owned_id))
                    .await
                    .expect("opening a producer does not panic");
            match opened {
                Ok(producer) => {
                    let old = std::mem::replace(
                        &mut *self
                            .producer
                            .write()
                            .unwrap_or_else(|poisoned| poisoned.into_inner()),
                        Arc::new(producer),
                    );
                    // Dropping a producer flushes it: not on the runtime's threads.
                    tokio::task::spawn_blocking(move || drop(old));
                    tracing::info!(
                        transactional_id = id,
                        "a new transactional producer took over"
                    );
                    return true;
                }
                Err(error) => {
                    if *shutdown.borrow() {
                        return false;
                    }
                    tracing::warn!(%error, retry_in = ?backoff, "cannot open a new transactional producer yet");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                }
            }
        }
    }

    fn commit_transaction(
        &self,
        producer: &produce::OutputProducer,
        id: &str,
        batch: &[OwnedMessage],
    ) -> Result<(), TxnError> {
        let positions = batch.iter().map(|m| (m.topic(), m.partition(), m.offset()));
        let group = self.consumer.group_metadata();
        match (commit::commit_list(positions), group) {
            (Ok(offsets), Some(group)) => transaction::commit(producer, id, &offsets, &group),
            (Err(error), _) => Err(transaction::abort(producer, id, "offsets", error)),
            (_, None) => Err(transaction::abort(
                producer,
                id,
                "group metadata",
                KafkaError::Canceled,
            )),
        }
    }

    /// Seeks every partition of `batch` back to its first record, so an aborted round is read again. A seek
    /// that fails is retried for as long as the partition is this instance's: reading on would skip the
    /// round, whose offsets the next round's commit would then pass. False if the stop signal came first
    /// (nothing of the round was committed, so it is read again after the restart).
    async fn rewind(&self, batch: &[OwnedMessage], shutdown: &watch::Receiver<bool>) -> bool {
        let mut first: std::collections::BTreeMap<(&str, i32), i64> = Default::default();
        for m in batch {
            let entry = first
                .entry((m.topic(), m.partition()))
                .or_insert(m.offset());
            *entry = (*entry).min(m.offset());
        }
        for ((topic, partition), offset) in first {
            let mut backoff = RETRY_BACKOFF_MIN;
            let at = Offset::Offset(offset);
            while let Err(error) = self.consumer.seek(topic, partition, at, SEEK_TIMEOUT) {
                if !self.owns(topic, partition) {
                    tracing::info!(topic, partition, "not rewound: the partition was revoked, its next owner reads it from the committed offset");
                    break;
                }
                if *shutdown.borrow() {
                    return false;
                }
                tracing::warn!(%error, topic, partition, offset, retry_in = ?backoff, "cannot rewind after an aborted transaction; the round waits (reading on would skip it)");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            }
        }
        true
    }

    /// Whether `topic`/`partition` is in this instance's assignment now.
    fn owns(&self, topic: &str, partition: i32) -> bool {
        self.consumer.assignment().is_ok_and(|assignment| {
            assignment
                .elements()
                .iter()
                .any(|e| e.topic() == topic && e.partition() == partition)
        })
    }
}
