//! Producing a round's outputs and waiting until Kafka acknowledged every one of them.
//!
//! The producer is idempotent with `acks=all`, so a record is either durably in the log once or reported as
//! failed; and it keeps the send order per partition, so a station's outputs arrive in input order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, FutureProducer, ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientContext, Message};
use tokio::sync::Notify;

use crate::decide::route::Output;
use linegate_common::kafka::KafkaConfig;

/// The producer of the bridge's outputs. Its delivery reports go to the [`Sending`] that queued each output
/// (one shared counter per round) instead of one channel and one copied message per output, which
/// rdkafka's `FutureProducer` costs (docs/dev/measurements.md).
pub type OutputProducer = ThreadedProducer<DeliveryReports>;

/// Why a round's outputs were not all acknowledged; the round is then repeated, so none is lost.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// librdkafka would not take the record (queue full, unknown topic, record too large).
    #[error("cannot queue an output to {topic}: {source}")]
    Queue {
        /// Destination topic.
        topic: String,
        /// What librdkafka said.
        #[source]
        source: KafkaError,
    },
    /// The broker did not acknowledge the record within `message.timeout.ms`, or refused it (also the
    /// report of a record purged because the producer was closed).
    #[error("output to {topic} not acknowledged: {source}")]
    NotAcknowledged {
        /// Destination topic.
        topic: String,
        /// What librdkafka said.
        #[source]
        source: KafkaError,
    },
}

impl DeliveryError {
    /// The librdkafka error behind it, for the transaction logic.
    pub fn into_kafka(self) -> KafkaError {
        match self {
            DeliveryError::Queue { source, .. } | DeliveryError::NotAcknowledged { source, .. } => {
                source
            }
        }
    }
}

/// Producer context that counts each delivery report against the round it belongs to.
pub struct DeliveryReports;

impl ClientContext for DeliveryReports {}

impl ProducerContext for DeliveryReports {
    type DeliveryOpaque = Arc<Reports>;

    fn delivery(&self, result: &DeliveryResult<'_>, reports: Arc<Reports>) {
        let failure =
            result
                .as_ref()
                .err()
                .map(|(source, message)| DeliveryError::NotAcknowledged {
                    topic: message.topic().to_owned(),
                    source: source.clone(),
                });
        reports.arrived(failure);
    }
}

/// The delivery reports of one round: how many are still to come, and the first failure.
#[derive(Default)]
pub struct Reports {
    outstanding: AtomicUsize,
    failure: Mutex<Option<DeliveryError>>,
    /// Woken when `outstanding` reaches zero.
    all_in: Notify,
}

impl Reports {
    fn arrived(&self, failure: Option<DeliveryError>) {
        if let Some(failure) = failure {
            self.lock_failure().get_or_insert(failure);
        }
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_in.notify_one();
        }
    }

    /// Waits until no report is outstanding. The count only rises while the round is queued, before anyone
    /// waits; a wake-up from an earlier zero (a permit left by `notify_one` while queueing) is checked again.
    async fn all_arrived(&self) {
        loop {
            let notified = self.all_in.notified();
            if self.outstanding.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    fn lock_failure(&self) -> std::sync::MutexGuard<'_, Option<DeliveryError>> {
        self.failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How long librdkafka keeps retrying one output before reporting it failed; the round is then repeated.
const MESSAGE_TIMEOUT_MS: &str = "60000";

/// What every producer of the bridge sets: idempotent, every replica, small batches, lz4.
const SETTINGS: [(&str, &str); 5] = [
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("linger.ms", "5"),
    ("compression.type", "lz4"),
    ("message.timeout.ms", MESSAGE_TIMEOUT_MS),
];

/// A producer with the same settings for one-off sends that need each record's partition and offset
/// (the redrive command reports where every record went).
pub fn future_producer(kafka: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
    kafka.client_config(&SETTINGS).create()
}

/// The idempotent producer of the bridge's outputs.
pub fn producer(kafka: &KafkaConfig) -> Result<OutputProducer, KafkaError> {
    configured(kafka, &[])
}

/// A producer of outputs with the settings every one shares, plus `extra` (the transactional ones).
pub fn configured(
    kafka: &KafkaConfig,
    extra: &[(&str, &str)],
) -> Result<OutputProducer, KafkaError> {
    let mut settings = SETTINGS.to_vec();
    settings.extend_from_slice(extra);
    kafka
        .client_config(&settings)
        .create_with_context(DeliveryReports)
}

/// Sends `outputs` in order and waits for every delivery report. On error it still waits for what was
/// already queued, so the next attempt starts from a quiet producer; the first error is returned.
pub async fn deliver_all(
    producer: &OutputProducer,
    outputs: &[Output],
) -> Result<(), DeliveryError> {
    send(producer, outputs).settle().await
}

/// Sends `outputs` like [`send_held`] and waits until all were acknowledged.
pub async fn deliver_held(
    producer: &Arc<OutputProducer>,
    outputs: &[Output],
    held: usize,
) -> Result<(), DeliveryError> {
    send_held(producer, outputs, held).settle().await
}

/// Queues `outputs` but their last `held` ones; [`Sending::settle`] queues those only once every earlier
/// one was acknowledged. The held ones are a round's dedup state (its input positions and high-water seqs):
/// written before the outputs they stand for were durable, a crash in between would have the next owner
/// skip those inputs as handled although their outputs were lost.
pub fn send_held(producer: &Arc<OutputProducer>, outputs: &[Output], held: usize) -> Sending {
    let split = outputs.len().saturating_sub(held);
    let mut sending = send(producer, &outputs[..split]);
    if split < outputs.len() {
        sending.then = Some((producer.clone(), outputs[split..].to_vec()));
    }
    sending
}

/// Queues `outputs`, in order, without waiting; [`Sending::settle`] then waits for their reports. After a
/// refused one nothing more is queued: the round is then repeated whole.
pub fn send(producer: &OutputProducer, outputs: &[Output]) -> Sending {
    let reports = Arc::new(Reports::default());
    for output in outputs {
        let mut record = BaseRecord::with_opaque_to(&output.topic, reports.clone())
            .payload(&output.value)
            .headers(headers(output));
        if let Some(key) = &output.key {
            record = record.key(key);
        }
        // Counted before the send: the report may arrive before `send` returns.
        reports.outstanding.fetch_add(1, Ordering::AcqRel);
        if let Err((source, _record)) = producer.send(record) {
            // A refused record gets no report.
            reports.outstanding.fetch_sub(1, Ordering::AcqRel);
            let refused = Some(DeliveryError::Queue {
                topic: output.topic.clone(),
                source,
            });
            return Sending {
                reports,
                refused,
                then: None,
            };
        }
    }
    Sending {
        reports,
        refused: None,
        then: None,
    }
}

/// A round's outputs with librdkafka, their delivery reports still to come.
pub struct Sending {
    /// The round's delivery reports, shared with every output queued.
    reports: Arc<Reports>,
    /// Why queueing stopped, if it did.
    refused: Option<DeliveryError>,
    /// Outputs queued only after every earlier one was acknowledged ([`send_held`]).
    then: Option<(Arc<OutputProducer>, Vec<Output>)>,
}

impl Sending {
    /// Waits for every delivery report, also after a failure (so the next attempt starts from a quiet
    /// producer); the first error is returned (a refused send before a failed report).
    pub async fn settle(mut self) -> Result<(), DeliveryError> {
        self.wait().await?;
        match self.then.take() {
            Some((producer, held)) => send(&producer, &held).wait().await,
            None => Ok(()),
        }
    }

    async fn wait(&mut self) -> Result<(), DeliveryError> {
        self.reports.all_arrived().await;
        let failure = self
            .refused
            .take()
            .or_else(|| self.reports.lock_failure().take());
        failure.map_or(Ok(()), Err)
    }
}

fn headers(output: &Output) -> OwnedHeaders {
    output.headers.iter().fold(
        OwnedHeaders::new_with_capacity(output.headers.len()),
        |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value),
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn not_acknowledged(topic: &str) -> Option<DeliveryError> {
        Some(DeliveryError::NotAcknowledged {
            topic: topic.to_owned(),
            source: KafkaError::Canceled,
        })
    }

    fn sending(outstanding: usize) -> (Sending, Arc<Reports>) {
        let reports = Arc::new(Reports::default());
        reports.outstanding.store(outstanding, Ordering::Release);
        let sending = Sending {
            reports: reports.clone(),
            refused: None,
            then: None,
        };
        (sending, reports)
    }

    #[tokio::test]
    async fn settle_waits_for_the_last_report_and_returns_the_first_failure() {
        let (sending, reports) = sending(3);
        let late = std::thread::spawn(move || {
            reports.arrived(None);
            reports.arrived(not_acknowledged("first"));
            std::thread::sleep(Duration::from_millis(50));
            reports.arrived(not_acknowledged("second"));
            reports
        });
        let failure = sending.settle().await.unwrap_err();
        let reports = late.join().unwrap();
        assert_eq!(reports.outstanding.load(Ordering::Acquire), 0);
        assert!(
            matches!(&failure, DeliveryError::NotAcknowledged { topic, .. } if topic == "first"),
            "{failure}"
        );
    }

    #[tokio::test]
    async fn reports_that_all_came_before_the_wait_are_not_missed() {
        let (sending, reports) = sending(2);
        reports.arrived(None);
        reports.arrived(None);
        let settled = tokio::time::timeout(Duration::from_secs(5), sending.settle()).await;
        assert!(matches!(settled, Ok(Ok(()))));
    }

    #[tokio::test]
    async fn a_zero_reached_while_queueing_does_not_end_the_wait_early() {
        // The first output's report arrives before the second is queued: the count touches zero once.
        let (sending, reports) = sending(1);
        reports.arrived(None);
        reports.outstanding.fetch_add(1, Ordering::AcqRel);
        let settle = tokio::spawn(sending.settle());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!settle.is_finished(), "settled with a report outstanding");
        reports.arrived(None);
        let settled = tokio::time::timeout(Duration::from_secs(5), settle).await;
        assert!(matches!(settled, Ok(Ok(Ok(())))));
    }
}
