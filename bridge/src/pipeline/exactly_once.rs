//! The exactly-once round: outputs, dedup state and input offsets in one Kafka transaction ([`crate::txn`]);
//! an aborted round is rewound and read again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset};

use super::{Pipeline, PipelineError, RETRY_BACKOFF_MIN};
use crate::consume;
use crate::produce;
use crate::txn::{self, TxnError};

impl Pipeline {
    /// Exactly-once round: outputs, state and offsets in one transaction. Returns false when the round was
    /// aborted (the input is rewound and the state re-read, so it is handled again).
    pub(super) async fn transaction(
        &self,
        id: &str,
        batch: &[OwnedMessage],
        outputs: &[crate::route::Output],
    ) -> Result<bool, PipelineError> {
        let outcome = match txn::begin(&self.producer, id) {
            Err(error) => Err(error),
            Ok(()) => match produce::deliver_all(&self.producer, outputs).await {
                Err(error) => Err(txn::abort(
                    &self.producer,
                    id,
                    "produce",
                    error.into_kafka(),
                )),
                Ok(()) => self.commit_transaction(id, batch),
            },
        };
        match outcome {
            Ok(()) => Ok(true),
            Err(TxnError::Aborted { step, source }) => {
                self.metrics.transaction_aborts.inc();
                tracing::warn!(step, error = %source, "transaction aborted; the round is read again");
                self.rewind(batch);
                self.reload.store(true, Ordering::SeqCst);
                tokio::time::sleep(RETRY_BACKOFF_MIN).await;
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }

    fn commit_transaction(&self, id: &str, batch: &[OwnedMessage]) -> Result<(), TxnError> {
        let positions = batch.iter().map(|m| (m.topic(), m.partition(), m.offset()));
        let group = self.consumer.group_metadata();
        match (consume::commit_list(positions), group) {
            (Ok(offsets), Some(group)) => txn::commit(&self.producer, id, &offsets, &group),
            (Err(error), _) => Err(txn::abort(&self.producer, id, "offsets", error)),
            (_, None) => Err(txn::abort(
                &self.producer,
                id,
                "group metadata",
                KafkaError::Canceled,
            )),
        }
    }

    /// Seeks every partition of `batch` back to its first record, so an aborted round is read again.
    fn rewind(&self, batch: &[OwnedMessage]) {
        let mut first: std::collections::BTreeMap<(&str, i32), i64> = Default::default();
        for m in batch {
            let entry = first
                .entry((m.topic(), m.partition()))
                .or_insert(m.offset());
            *entry = (*entry).min(m.offset());
        }
        for ((topic, partition), offset) in first {
            if let Err(error) = self.consumer.seek(
                topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(10),
            ) {
                tracing::warn!(%error, topic, partition, "cannot rewind after an aborted transaction");
            }
        }
    }
}
