//! Producing a round's outputs and waiting until Kafka acknowledged every one of them.
//!
//! The producer is idempotent with `acks=all`, so a record is either durably in the log once or reported as
//! failed; and it keeps the send order per partition, so a station's outputs arrive in input order.

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::route::Output;
use linegate_common::kafka::KafkaConfig;

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
    /// The broker did not acknowledge the record within `message.timeout.ms`, or refused it.
    #[error("output to {topic} not acknowledged: {source}")]
    NotAcknowledged {
        /// Destination topic.
        topic: String,
        /// What librdkafka said.
        #[source]
        source: KafkaError,
    },
    /// The producer went away before reporting (only while shutting down).
    #[error("the producer dropped the delivery report of an output to {topic}")]
    Dropped {
        /// Destination topic.
        topic: String,
    },
}

impl DeliveryError {
    /// The librdkafka error behind it (`Canceled` when the report was dropped), for the transaction logic.
    pub fn into_kafka(self) -> KafkaError {
        match self {
            DeliveryError::Queue { source, .. } | DeliveryError::NotAcknowledged { source, .. } => {
                source
            }
            DeliveryError::Dropped { .. } => KafkaError::Canceled,
        }
    }
}

/// How long librdkafka keeps retrying one output before reporting it failed; the round is then repeated.
const MESSAGE_TIMEOUT_MS: &str = "60000";

/// The idempotent producer of the bridge's outputs.
pub fn producer(kafka: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
    kafka
        .client_config(&[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "5"),
            ("compression.type", "lz4"),
            ("message.timeout.ms", MESSAGE_TIMEOUT_MS),
        ])
        .create()
}

/// Sends `outputs` in order and waits for every delivery report. On error it still waits for what was
/// already queued, so the next attempt starts from a quiet producer; the first error is returned.
pub async fn deliver_all(
    producer: &FutureProducer,
    outputs: &[Output],
) -> Result<(), DeliveryError> {
    let mut sending = Sending::default();
    sending.queue(producer, outputs);
    sending.settle(outputs).await
}

/// A round's outputs being handed to librdkafka, with the delivery reports still to come. Queueing does not
/// wait, so a round can queue each record's outputs as soon as that record is routed, and librdkafka sends
/// them while the next records are routed; [`Sending::settle`] then waits for all of them.
#[derive(Default)]
pub struct Sending {
    /// Index in the round's outputs and delivery report, per queued output.
    deliveries: Vec<(usize, DeliveryFuture)>,
    /// Outputs queued so far: `outputs[..queued]`.
    queued: usize,
    failure: Option<DeliveryError>,
}

impl Sending {
    /// Queues, in order, the outputs of `outputs` (the round's outputs so far) not queued yet. After a
    /// refused one nothing more is queued: the round is then repeated whole.
    pub fn queue(&mut self, producer: &FutureProducer, outputs: &[Output]) {
        while self.failure.is_none() && self.queued < outputs.len() {
            let output = &outputs[self.queued];
            let mut record = FutureRecord::to(&output.topic)
                .payload(&output.value)
                .headers(headers(output));
            if let Some(key) = &output.key {
                record = record.key(key);
            }
            match producer.send_result(record) {
                Ok(delivery) => self.deliveries.push((self.queued, delivery)),
                Err((source, _)) => {
                    self.failure = Some(DeliveryError::Queue {
                        topic: output.topic.clone(),
                        source,
                    })
                }
            }
            self.queued += 1;
        }
    }

    /// Waits for every delivery report, also after a failure (so the next attempt starts from a quiet
    /// producer); the first error is returned. `outputs` is what was queued from, to name topics.
    pub async fn settle(self, outputs: &[Output]) -> Result<(), DeliveryError> {
        let mut failure = self.failure;
        for (index, delivery) in self.deliveries {
            let topic = || outputs[index].topic.clone();
            let result = match delivery.await {
                Ok(Ok(_)) => continue,
                Ok(Err((source, _))) => DeliveryError::NotAcknowledged {
                    topic: topic(),
                    source,
                },
                Err(_) => DeliveryError::Dropped { topic: topic() },
            };
            failure.get_or_insert(result);
        }
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
