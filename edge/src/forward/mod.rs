//! The forwarder: outbox -> Kafka, in sequence order, deleting only what Kafka confirmed.
//!
//! Each round reads up to `batch_max` events after the last one queued and produces them keyed by station id with
//! an idempotent producer (acks=all); up to `ROUNDS_IN_FLIGHT` rounds are with Kafka at once, settled in order.
//! Rows are read and encoded ahead on a blocking thread ([`prefetch`]), beside the task that queues and settles.
//! The confirmed prefix is deleted; on any failure the forwarder waits until every queued round settled, then
//! restarts from the first unconfirmed event with a fresh producer, so Kafka being away only makes rows wait.
//! An event Kafka refuses for good (too large, unreadable) is set aside into quarantine ([`set_aside`]), so
//! one bad row never holds up the rows behind it. This is the only code on the edge that talks to Kafka.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use tokio::sync::{watch, Notify};

use crate::observe::{EdgeMetrics, Heartbeat};
use crate::outbox::{OutboxReader, OutboxWriter};
use linegate_common::kafka::KafkaConfig;
use linegate_station_config::ForwardConfig;
use prefetch::{Prefetch, Prepared};
use round::{queue_round, settle, Failure, FailureKind, Round, RoundOutcome};

mod prefetch;
mod round;
mod set_aside;

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
    shutdown: watch::Receiver<bool>,
) -> Result<(), ForwardError> {
    let producer = producer(&kafka, &forward)?;
    // Every row of an outbox is of the station the file was created for: the record key and header.
    let station_id = parts.reader.station_id()?;
    let source = prefetch::Source {
        reader: Arc::new(std::sync::Mutex::new(parts.reader)),
        committed: parts.committed,
        batch_max: forward.batch_max,
        retry_backoff: Duration::from_millis(forward.retry_backoff_ms),
    };
    let ahead = Prefetch::start(source.clone(), 0);
    let mut forwarder = Forwarder {
        kafka,
        forward,
        station_id,
        writer: parts.writer,
        metrics: parts.metrics,
        heartbeat: parts.heartbeat,
        source,
        producer,
        confirmed_seq: 0,
        ahead,
        in_flight: VecDeque::with_capacity(ROUNDS_IN_FLIGHT),
        alone_next: false,
        last_probe: std::time::Instant::now() - IDLE_PROBE_EVERY,
    };
    forwarder.run(shutdown).await
}

/// The forwarder's state between turns of its loop.
struct Forwarder {
    kafka: KafkaConfig,
    forward: ForwardConfig,
    station_id: String,
    writer: OutboxWriter,
    metrics: EdgeMetrics,
    heartbeat: Heartbeat,
    source: prefetch::Source,
    producer: EdgeProducer,
    /// Highest seq that Kafka confirmed together with every seq before it; reading ahead starts after it.
    confirmed_seq: i64,
    ahead: Prefetch,
    in_flight: VecDeque<Round>,
    /// The broker refused a batch for good: send the first unconfirmed event alone, to learn whether it is
    /// the one to set aside.
    alone_next: bool,
    last_probe: std::time::Instant,
}

impl Forwarder {
    async fn run(&mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), ForwardError> {
        loop {
            self.heartbeat.beat();
            let stopping = *shutdown.borrow();
            if stopping && self.in_flight.is_empty() {
                return Ok(());
            }
            if !stopping {
                self.fill();
            }
            let Some(round) = self.in_flight.pop_front() else {
                self.idle(stopping, &mut shutdown).await;
                continue;
            };
            let alone = round.alone;
            let outcome = self.await_round(round).await;
            if let Some(confirmed) = outcome.confirmed {
                self.confirmed(confirmed).await;
            }
            if let Some(failure) = outcome.failure {
                self.recover(failure).await?;
            } else if alone {
                // The event sent alone was taken: go on in batches from after it.
                self.ahead = Prefetch::start(self.source.clone(), self.confirmed_seq);
            }
        }
    }

    /// Keeps up to ROUNDS_IN_FLIGHT rounds with Kafka: batches read and encoded ahead are handed over while
    /// the broker confirms the rounds before them. A round that could not queue everything ends the filling;
    /// an event to send alone goes out with nothing else in flight.
    fn fill(&mut self) {
        while self.in_flight.len() < ROUNDS_IN_FLIGHT
            && self
                .in_flight
                .back()
                .is_none_or(|round| round.failure.is_none() && !round.alone)
        {
            let Ok(batch) = self.ahead.batches.try_recv() else {
                break;
            };
            self.queue(&batch);
        }
    }

    fn queue(&mut self, batch: &[Prepared]) {
        let alone = std::mem::take(&mut self.alone_next);
        let batch = if alone { &batch[..1] } else { batch };
        let round = queue_round(
            &self.producer,
            &self.forward.topic,
            &self.station_id,
            batch,
            alone,
        );
        self.in_flight.push_back(round);
    }

    /// Nothing in flight: probe Kafka now and then, and wait for a batch, a tick or the stop.
    async fn idle(&mut self, stopping: bool, shutdown: &mut watch::Receiver<bool>) {
        if self.last_probe.elapsed() >= IDLE_PROBE_EVERY {
            self.last_probe = std::time::Instant::now();
            probe(&self.producer, &self.forward.topic, &self.metrics).await;
        }
        let mut read_ahead_ended = false;
        tokio::select! {
            batch = self.ahead.batches.recv(), if !stopping => match batch {
                Some(batch) => self.queue(&batch),
                None => read_ahead_ended = true,
            },
            _ = tokio::time::sleep(IDLE_RECHECK) => {}
            _ = shutdown.changed() => {}
        }
        if read_ahead_ended {
            // Only a panic ends it early; nothing is in flight, so start again after the confirmed prefix.
            tracing::error!("the outbox read-ahead stopped; starting it again");
            tokio::time::sleep(self.source.retry_backoff).await;
            self.ahead = Prefetch::start(self.source.clone(), self.confirmed_seq);
        }
    }

    /// Kafka confirmed every event up to `confirmed`: delete them.
    async fn confirmed(&mut self, confirmed: i64) {
        self.metrics
            .forwarded
            .inc_by(u64::try_from(confirmed - self.confirmed_seq).unwrap_or(0));
        self.metrics.kafka_up.set(1);
        if let Err(error) = self.writer.delete_up_to(confirmed).await {
            tracing::error!(%error, "cannot delete delivered events from the outbox; they will be sent again");
        }
        self.confirmed_seq = confirmed;
    }

    /// A round stopped at `failure`, the first unconfirmed event: settle what was queued behind it, set the
    /// event aside if Kafka refuses it for good, and start again after the confirmed prefix.
    async fn recover(&mut self, failure: Failure) -> Result<(), ForwardError> {
        // The later rounds were queued behind the failure: wait until the old producer has settled every one
        // of them (confirmed or failed), so that nothing it still holds can land after the resend. Their
        // confirmations do not count: the prefix ends at the failure. The wait beats and probes as any.
        for later in std::mem::take(&mut self.in_flight) {
            self.await_round(later).await;
        }
        match failure.kind {
            FailureKind::Poison => self.set_aside(&failure).await,
            FailureKind::BatchRefused => {
                tracing::warn!(%failure, "Kafka refused a batch for good; sending its first event alone to find the one to set aside");
                self.alone_next = true;
            }
            FailureKind::Transient => {
                self.metrics.delivery_errors.inc();
                self.metrics.kafka_up.set(0);
                tracing::warn!(%failure, resume_after_seq = self.confirmed_seq, "Kafka delivery failed; retrying with a fresh producer");
                tokio::time::sleep(Duration::from_millis(self.forward.retry_backoff_ms)).await;
            }
        }
        self.producer = producer(&self.kafka, &self.forward)?;
        // What was read ahead lies after the failure: read again from the first unconfirmed event.
        self.ahead = Prefetch::start(self.source.clone(), self.confirmed_seq);
        Ok(())
    }

    /// Moves the refused event into quarantine; on failure it stays and is tried again.
    async fn set_aside(&self, failure: &Failure) {
        let event_id = match prefetch::read_one(&self.source.reader, failure.seq).await {
            Ok(Some(event)) => event.event_id,
            Ok(None) => return, // gone already
            Err(error) => {
                tracing::error!(%error, seq = failure.seq, "cannot read the refused event; trying again");
                tokio::time::sleep(self.source.retry_backoff).await;
                return;
            }
        };
        let moved = set_aside::set_aside(
            &self.writer,
            &self.metrics,
            &self.station_id,
            &event_id,
            failure,
        )
        .await;
        if let Err(error) = moved {
            tracing::error!(%error, seq = failure.seq, "cannot set the refused event aside; trying again");
            tokio::time::sleep(self.source.retry_backoff).await;
        }
    }

    async fn await_round(&mut self, round: Round) -> RoundOutcome {
        await_round(
            round,
            &self.producer,
            &self.forward.topic,
            &self.metrics,
            &self.heartbeat,
        )
        .await
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
