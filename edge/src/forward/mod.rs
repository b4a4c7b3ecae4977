//! The forwarder: outbox -> Kafka, in sequence order, deleting only what Kafka confirmed.
//!
//! Each round reads up to `batch_max` events after the last one queued and produces them keyed by station id with
//! an idempotent producer (acks=all); up to `ROUNDS_IN_FLIGHT` rounds are with Kafka at once, settled in order.
//! Rows are read and encoded ahead on a blocking thread ([`prefetch`]), beside the task that queues and settles.
//! The confirmed prefix is deleted; on any failure the forwarder waits until every queued round settled, then
//! restarts from the first unconfirmed event with a fresh producer, so Kafka being away only makes rows wait. This is the only code on the edge that talks to Kafka.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tokio::sync::{watch, Notify};

use crate::config::ForwardConfig;
use crate::observe::{EdgeMetrics, Heartbeat};
use crate::outbox::{OutboxReader, OutboxWriter};
use linegate_common::kafka::KafkaConfig;
use prefetch::{Prefetch, Prepared};

mod prefetch;

const IDLE_RECHECK: Duration = Duration::from_secs(1);
/// Rounds handed to Kafka and not yet confirmed, at most. Reading and encoding the next round overlaps with
/// the broker confirming the previous ones; the idempotent producer keeps them in order.
const ROUNDS_IN_FLIGHT: usize = 4;
/// How often the forwarder asks Kafka for metadata while it is idle or waiting for a round, so that
/// `kafka_up` and `/healthz` stay true when nothing is confirmed.
const IDLE_PROBE_EVERY: Duration = Duration::from_secs(5);

/// Why the forwarder cannot run at all (as opposed to a delivery failure, which it retries).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The producer could not be created from the config.
    #[error("cannot create the Kafka producer (check [kafka] and [kafka.client]): {0}")]
    Producer(#[from] KafkaError),
    /// The outbox does not say which station it belongs to (the record key of everything it holds).
    #[error("cannot read the station of the outbox: {0}")]
    Outbox(#[from] crate::outbox::OutboxError),
}

/// The forwarder's producer (default context).
type EdgeProducer = FutureProducer;

/// Producer settings the forwarder relies on: idempotence keeps order and avoids duplicates across retries.
fn producer(kafka: &KafkaConfig, forward: &ForwardConfig) -> Result<EdgeProducer, ForwardError> {
    let timeout = forward.delivery_timeout_ms.to_string();
    let linger = forward.linger_ms.to_string();
    let config = kafka.client_config(&[
        ("enable.idempotence", "true"),
        ("acks", "all"),
        ("max.in.flight.requests.per.connection", "5"),
        ("message.timeout.ms", &timeout),
        ("linger.ms", &linger),
        ("compression.type", forward.compression.librdkafka_name()),
        ("batch.num.messages", "10000"),
        ("queue.buffering.max.messages", "1000000"),
        ("retry.backoff.ms", "100"),
        ("reconnect.backoff.max.ms", "5000"),
    ]);
    Ok(config.create()?)
}

/// What the forwarder needs besides its config: the outbox ends, the commit signal, and what it reports to.
pub struct ForwardParts {
    /// Reads waiting events in seq order.
    pub reader: OutboxReader,
    /// Deletes confirmed events.
    pub writer: OutboxWriter,
    /// Notified after each commit that added events.
    pub committed: Arc<Notify>,
    /// Counters and the Kafka state.
    pub metrics: EdgeMetrics,
    /// Beats on every loop turn, for the systemd watchdog.
    pub heartbeat: Heartbeat,
}

/// Runs until `shutdown` turns true, then waits for the rounds already handed to Kafka (bounded by the caller).
pub async fn run(
    kafka: KafkaConfig,
    forward: ForwardConfig,
    parts: ForwardParts,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ForwardError> {
    let ForwardParts {
        reader,
        writer,
        committed,
        metrics,
        heartbeat,
    } = parts;
    let mut producer = producer(&kafka, &forward)?;
    // Every row of an outbox is of the station the file was created for: the record key and header.
    let station_id = reader.station_id()?;
    let source = prefetch::Source {
        reader: Arc::new(std::sync::Mutex::new(reader)),
        committed,
        batch_max: forward.batch_max,
        retry_backoff: Duration::from_millis(forward.retry_backoff_ms),
    };
    // Highest seq that Kafka confirmed together with every seq before it; reading ahead starts after it.
    let mut confirmed_seq = 0_i64;
    let mut ahead = Prefetch::start(source.clone(), confirmed_seq);
    let mut in_flight: VecDeque<Round> = VecDeque::with_capacity(ROUNDS_IN_FLIGHT);
    let mut last_probe = std::time::Instant::now() - IDLE_PROBE_EVERY;
    loop {
        heartbeat.beat();
        let stopping = *shutdown.borrow();
        if stopping && in_flight.is_empty() {
            return Ok(());
        }
        // Keep up to ROUNDS_IN_FLIGHT rounds with Kafka: batches read and encoded ahead are handed over while
        // the broker confirms the rounds before them. A round that could not queue everything ends the filling.
        let may_queue = |in_flight: &VecDeque<Round>| {
            !stopping
                && in_flight.len() < ROUNDS_IN_FLIGHT
                && in_flight.back().is_none_or(|round| round.failure.is_none())
        };
        while may_queue(&in_flight) {
            let Ok(batch) = ahead.batches.try_recv() else {
                break;
            };
            in_flight.push_back(queue_round(&producer, &forward.topic, &station_id, &batch));
        }
        let Some(round) = in_flight.pop_front() else {
            if last_probe.elapsed() >= IDLE_PROBE_EVERY {
                last_probe = std::time::Instant::now();
                probe(&producer, &forward.topic, &metrics).await;
            }
            let mut read_ahead_ended = false;
            tokio::select! {
                batch = ahead.batches.recv(), if !stopping => match batch {
                    Some(batch) => in_flight.push_back(queue_round(&producer, &forward.topic, &station_id, &batch)),
                    None => read_ahead_ended = true,
                },
                _ = tokio::time::sleep(IDLE_RECHECK) => {}
                _ = shutdown.changed() => {}
            }
            if read_ahead_ended {
                // Only a panic ends it early; nothing is in flight, so start again after the confirmed prefix.
                tracing::error!("the outbox read-ahead stopped; starting it again");
                tokio::time::sleep(source.retry_backoff).await;
                ahead = Prefetch::start(source.clone(), confirmed_seq);
            }
            continue;
        };
        let outcome = await_round(round, &producer, &forward.topic, &metrics, &heartbeat).await;
        if let Some(confirmed) = outcome.confirmed {
            metrics
                .forwarded
                .inc_by(u64::try_from(confirmed - confirmed_seq).unwrap_or(0));
            metrics.kafka_up.set(1);
            if let Err(error) = writer.delete_up_to(confirmed).await {
                tracing::error!(%error, "cannot delete delivered events from the outbox; they will be sent again");
            }
            confirmed_seq = confirmed;
        }
        if let Some(error) = outcome.failure {
            metrics.delivery_errors.inc();
            metrics.kafka_up.set(0);
            // The later rounds were queued behind the failure: wait until the old producer has settled every
            // one of them (confirmed or failed), so that nothing it still holds can land after the resend. Their
            // confirmations do not count: the prefix ends at the failure. The wait beats and probes as any.
            for later in in_flight.drain(..) {
                await_round(later, &producer, &forward.topic, &metrics, &heartbeat).await;
            }
            tracing::warn!(%error, resume_after_seq = confirmed_seq, "Kafka delivery failed; retrying with a fresh producer");
            tokio::time::sleep(Duration::from_millis(forward.retry_backoff_ms)).await;
            producer = self::producer(&kafka, &forward)?;
            // What was read ahead lies after the failure: read again from the first unconfirmed event.
            ahead = Prefetch::start(source.clone(), confirmed_seq);
        }
    }
}

/// Waits for one round's delivery reports. While it waits (librdkafka retries for up to
/// `delivery_timeout_ms`) it probes Kafka, so that `kafka_up` and /healthz say it is away long before the
/// round gives up, and it beats the heartbeat: waiting for Kafka is alive, and without the beat a round longer
/// than the systemd WatchdogSec (an outage) would get the edge restarted.
async fn await_round(
    round: Round,
    producer: &EdgeProducer,
    topic: &str,
    metrics: &EdgeMetrics,
    heartbeat: &Heartbeat,
) -> RoundOutcome {
    let settled = settle(round);
    tokio::pin!(settled);
    loop {
        tokio::select! {
            outcome = &mut settled => return outcome,
            _ = tokio::time::sleep(IDLE_PROBE_EVERY) => {
                heartbeat.beat();
                probe(producer, topic, metrics).await;
            }
        }
    }
}

/// Asks Kafka for the ingest topic's metadata; marks Kafka up or down (logged on change).
async fn probe(producer: &EdgeProducer, topic: &str, metrics: &EdgeMetrics) {
    let (producer, topic) = (producer.clone(), topic.to_owned());
    let reachable = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(3))
            .is_ok()
    })
    .await
    .unwrap_or(false);
    let was = metrics.kafka_up.get() == 1;
    if reachable != was {
        if reachable {
            tracing::info!("Kafka is reachable");
        } else {
            tracing::warn!("Kafka is not reachable; results wait in the outbox");
        }
    }
    metrics.kafka_up.set(i64::from(reachable));
}

/// One batch handed to the producer: the delivery report of each queued event, in seq order, and why the
/// batch stopped short, if it did.
struct Round {
    deliveries: Vec<(i64, DeliveryFuture)>,
    failure: Option<String>,
}

struct RoundOutcome {
    /// Highest seq of the contiguous confirmed prefix of the round.
    confirmed: Option<i64>,
    failure: Option<String>,
}

/// Queues `batch` in order; stops at the first event that cannot be encoded or queued, so nothing behind it
/// is sent ahead of it.
fn queue_round(
    producer: &EdgeProducer,
    topic: &str,
    station_id: &str,
    batch: &[Prepared],
) -> Round {
    let mut deliveries = Vec::with_capacity(batch.len());
    let mut failure = None;
    for event in batch {
        let value = match &event.value {
            Ok(value) => value,
            Err(error) => {
                // A stored event this build cannot read is a defect (or a damaged file); stop here
                // rather than skip it, so nothing is reordered or lost.
                failure = Some(format!(
                    "event seq {} cannot be read from the outbox: {error}",
                    event.seq
                ));
                break;
            }
        };
        let seq = event.seq.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "station_id",
                value: Some(station_id),
            })
            .insert(Header {
                key: "seq",
                value: Some(seq.as_str()),
            })
            .insert(Header {
                key: "idempotency-key",
                value: Some(event.event_id.as_str()),
            });
        let record = FutureRecord::to(topic)
            .key(station_id)
            .payload(value)
            .headers(headers);
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push((event.seq, delivery)),
            Err((error, _)) => {
                failure = Some(format!("event seq {} was not queued: {error}", event.seq));
                break;
            }
        }
    }
    Round {
        deliveries,
        failure,
    }
}

/// Waits for every delivery report of `round`; the confirmed prefix ends at the first failure.
async fn settle(round: Round) -> RoundOutcome {
    let Round {
        deliveries,
        mut failure,
    } = round;
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
