//! The forwarder: outbox -> Kafka, in sequence order, deleting only what Kafka confirmed.
//!
//! Each round reads up to `batch_max` events after the last one sent, produces them keyed by station id with an
//! idempotent producer (acks=all), and waits for every delivery report. The confirmed prefix is deleted; on any
//! failure the round restarts from the first unconfirmed event with a fresh producer, so Kafka being away only
//! makes rows wait. This is the only code on the edge that talks to Kafka.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::{watch, Notify};

use crate::config::ForwardConfig;
use crate::outbox::{OutboxReader, OutboxWriter, StoredEvent};
use linegate_common::kafka::KafkaConfig;

const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// Why the forwarder cannot run at all (as opposed to a delivery failure, which it retries).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The producer could not be created from the config.
    #[error("cannot create the Kafka producer (check [kafka] and [kafka.client]): {0}")]
    Producer(#[from] rdkafka::error::KafkaError),
}

/// Producer settings the forwarder relies on: idempotence keeps order and avoids duplicates across retries.
fn producer(kafka: &KafkaConfig, forward: &ForwardConfig) -> Result<FutureProducer, ForwardError> {
    let timeout = forward.delivery_timeout_ms.to_string();
    let config = kafka.client_config(&[
        ("enable.idempotence", "true"),
        ("acks", "all"),
        ("max.in.flight.requests.per.connection", "5"),
        ("message.timeout.ms", &timeout),
        ("linger.ms", "5"),
        ("compression.type", "lz4"),
        ("retry.backoff.ms", "100"),
        ("reconnect.backoff.max.ms", "5000"),
    ]);
    Ok(config.create()?)
}

/// Runs until `shutdown` turns true (finishing the round in flight, bounded by the caller).
pub async fn run(
    kafka: KafkaConfig,
    forward: ForwardConfig,
    reader: OutboxReader,
    writer: OutboxWriter,
    committed: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ForwardError> {
    let mut producer = producer(&kafka, &forward)?;
    let reader = Arc::new(std::sync::Mutex::new(reader));
    let mut last_sent = 0_i64;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let batch = read_batch(&reader, last_sent, forward.batch_max).await;
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, "cannot read the outbox; retrying");
                tokio::time::sleep(Duration::from_millis(forward.retry_backoff_ms)).await;
                continue;
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = committed.notified() => {}
                _ = tokio::time::sleep(IDLE_RECHECK) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let outcome = send_round(&producer, &forward.topic, &batch).await;
        if let Some(confirmed) = outcome.confirmed {
            if let Err(error) = writer.delete_up_to(confirmed).await {
                tracing::error!(%error, "cannot delete delivered events from the outbox; they will be sent again");
            }
            last_sent = confirmed;
        }
        if let Some(error) = outcome.failure {
            tracing::warn!(%error, resume_after_seq = last_sent, "Kafka delivery failed; retrying with a fresh producer");
            tokio::time::sleep(Duration::from_millis(forward.retry_backoff_ms)).await;
            producer = self::producer(&kafka, &forward)?;
        }
    }
}

async fn read_batch(
    reader: &Arc<std::sync::Mutex<OutboxReader>>,
    after: i64,
    limit: usize,
) -> Result<Vec<StoredEvent>, String> {
    let reader = Arc::clone(reader);
    tokio::task::spawn_blocking(move || {
        let reader = reader
            .lock()
            .map_err(|_| "outbox reader poisoned".to_owned())?;
        reader.read_after(after, limit).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

struct RoundOutcome {
    /// Highest seq of the contiguous confirmed prefix of the round.
    confirmed: Option<i64>,
    failure: Option<String>,
}

async fn send_round(producer: &FutureProducer, topic: &str, batch: &[StoredEvent]) -> RoundOutcome {
    let mut deliveries = Vec::with_capacity(batch.len());
    let mut failure = None;
    for stored in batch {
        let value = match linegate_schemas::encode(&stored.event) {
            Ok(value) => value,
            Err(error) => {
                // A stored event that the contract cannot encode is a defect of this build; stop here
                // rather than skip it, so nothing is reordered or lost.
                failure = Some(format!(
                    "event seq {} cannot be encoded: {error}",
                    stored.seq
                ));
                break;
            }
        };
        let seq = stored.seq.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "station_id",
                value: Some(stored.event.station_id.as_str()),
            })
            .insert(Header {
                key: "seq",
                value: Some(seq.as_str()),
            })
            .insert(Header {
                key: "idempotency-key",
                value: Some(stored.event.event_id.as_str()),
            });
        let record = FutureRecord::to(topic)
            .key(&stored.event.station_id)
            .payload(&value)
            .headers(headers);
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push((stored.seq, delivery)),
            Err((error, _)) => {
                failure = Some(format!("event seq {} was not queued: {error}", stored.seq));
                break;
            }
        }
    }
    let mut confirmed = None;
    let mut broken = false;
    for (seq, delivery) in deliveries {
        match delivery.await {
            Ok(Ok(_)) if !broken => confirmed = Some(seq),
            Ok(Ok(_)) => {}
            Ok(Err((error, _))) => {
                broken = true;
                failure.get_or_insert_with(|| format!("event seq {seq}: {error}"));
            }
            Err(_) => {
                broken = true;
                failure.get_or_insert_with(|| {
                    format!("event seq {seq}: the producer dropped the delivery")
                });
            }
        }
    }
    RoundOutcome { confirmed, failure }
}
