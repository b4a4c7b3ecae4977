//! The consume -> route -> produce -> commit loop (at-least-once).
//!
//! A round takes up to `batch_max` records (or what arrived within `batch_wait_ms`), routes them in order,
//! produces every output, waits until Kafka acknowledged all of them, and only then commits the consumer
//! offsets (per partition: last offset + 1). A failed delivery repeats the round's sends after a back-off,
//! so an output may be written twice (same id, same `idempotency-key` header) but is never lost. If that
//! lasts longer than `max.poll.interval.ms`, the group moves the partitions to another instance and the
//! late commit fails: the round is then handled again there, still at-least-once.
//!
//! At-least-once is the mode for now. Exactly-once (a transactional producer with
//! `send_offsets_to_transaction`, as in rust-rdkafka's `examples/transactions.rs`) is a later issue:
//! tansu 0.6.0, the broker of the tests, does not route EndTxn, so a transactional commit cannot succeed
//! against it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::Message;
use tokio::sync::watch;

use crate::config::BridgeConfig;
use crate::consume::{self, InputConsumer};
use crate::metrics::BridgeMetrics;
use crate::produce::{self, DeliveryError};
use crate::route::{route, InputRecord, Output, RouteContext};
use crate::window::{self, ClosedWindow, Windows};

/// First wait after a failed consume or delivery; doubled per failure up to [`RETRY_BACKOFF_MAX`].
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest wait between two attempts, so a recovered cluster is noticed quickly.
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often progress is logged at info while records flow; per-round counts are at debug.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);
/// How long the pipeline waits for input before it runs an empty round, so that the quality windows of
/// stations that went silent still close.
const IDLE_ROUND_EVERY: Duration = Duration::from_secs(30);

/// Why the pipeline cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The consumer or producer could not be created (a librdkafka property in `[kafka.client]` is wrong).
    #[error("cannot create the Kafka {client} (check [kafka] and [kafka.client]): {source}")]
    Client {
        /// `consumer` or `producer`.
        client: &'static str,
        /// What librdkafka said.
        #[source]
        source: KafkaError,
    },
    /// The subscription to the input topic was refused.
    #[error("cannot subscribe to {topic}: {source}")]
    Subscribe {
        /// The input topic.
        topic: String,
        /// What librdkafka said.
        #[source]
        source: KafkaError,
    },
}

/// Consumer and producer of one bridge instance; the pipeline is the only user of both.
pub struct Pipeline {
    consumer: InputConsumer,
    producer: FutureProducer,
    config: BridgeConfig,
    windows: Mutex<Windows>,
    metrics: BridgeMetrics,
}

/// What a run handled, for the progress and stop log lines.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    /// Inputs accepted and fanned out.
    pub accepted: u64,
    /// Inputs sent to the dead-letter topic.
    pub rejected: u64,
}

impl Pipeline {
    /// Creates the clients and subscribes to the input topic.
    pub fn new(config: BridgeConfig) -> Result<Self, PipelineError> {
        let consumer = consume::consumer(&config).map_err(|source| PipelineError::Client {
            client: "consumer",
            source,
        })?;
        consumer
            .subscribe(&[&config.topics.input])
            .map_err(|source| PipelineError::Subscribe {
                topic: config.topics.input.clone(),
                source,
            })?;
        let producer =
            produce::producer(&config.kafka).map_err(|source| PipelineError::Client {
                client: "producer",
                source,
            })?;
        let windows = Mutex::new(Windows::new(config.quality.windows.clone()));
        Ok(Self {
            consumer,
            producer,
            config,
            windows,
            metrics: BridgeMetrics::unregistered(),
        })
    }

    /// Counts into `metrics` (those of the process registry) instead of unregistered ones.
    pub fn with_metrics(mut self, metrics: BridgeMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Runs rounds until `shutdown` turns true (or its sender is dropped). A round in progress is finished,
    /// delivered and committed first; only a round whose delivery keeps failing is left uncommitted, to be
    /// repeated by whoever owns its partitions next.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> Totals {
        let mut totals = Totals::default();
        let mut reported = Totals::default();
        let mut last_summary = Instant::now();
        while !*shutdown.borrow() {
            let Some(batch) = self.next_batch(&mut shutdown).await else {
                break;
            };
            self.round(&batch, &mut totals, &shutdown).await;
            let moved = totals.accepted + totals.rejected != reported.accepted + reported.rejected;
            if moved && last_summary.elapsed() >= SUMMARY_EVERY {
                tracing::info!(
                    accepted = totals.accepted,
                    rejected = totals.rejected,
                    "bridge progress"
                );
                (reported, last_summary) = (totals, Instant::now());
            }
        }
        tracing::info!(
            accepted = totals.accepted,
            rejected = totals.rejected,
            "bridge stopped"
        );
        totals
    }

    /// Waits for a first record (or the stop signal), then gathers more until the batch is full or
    /// `batch_wait_ms` passed.
    async fn next_batch(&self, shutdown: &mut watch::Receiver<bool>) -> Option<Vec<OwnedMessage>> {
        let mut backoff = RETRY_BACKOFF_MIN;
        let first = loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => return None,
                _ = tokio::time::sleep(IDLE_ROUND_EVERY) => return Some(Vec::new()),
                received = self.consumer.recv() => match received {
                    Ok(message) => break message.detach(),
                    Err(error) => {
                        tracing::warn!(%error, retry_in = ?backoff, "consuming the input failed");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                    }
                },
            }
        };
        let mut batch = vec![first];
        let wait = Duration::from_millis(self.config.bridge.batch_wait_ms);
        let deadline = tokio::time::Instant::now() + wait;
        while batch.len() < self.config.bridge.batch_max {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message.detach()),
                Ok(Err(error)) => tracing::warn!(%error, "consuming the input failed"),
                Err(_) => break,
            }
        }
        Some(batch)
    }

    /// Routes a batch in order, delivers every output, then commits.
    async fn round(
        &self,
        batch: &[OwnedMessage],
        totals: &mut Totals,
        shutdown: &watch::Receiver<bool>,
    ) {
        let started = Instant::now();
        let (outputs, counts) = self.route_batch(batch);
        let mut backoff = RETRY_BACKOFF_MIN;
        let mut attempt = 1;
        while let Err(error) = produce::deliver_all(&self.producer, &outputs).await {
            if *shutdown.borrow() {
                tracing::error!(%error, records = batch.len(), "stopping with an undelivered round; its offsets stay uncommitted and it will be handled again");
                return;
            }
            tracing::warn!(%error, attempt, outputs = outputs.len(), retry_in = ?backoff, "{}", retry_note(&error));
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            attempt += 1;
        }
        self.metrics.delivered(batch, &outputs);
        self.commit(batch);
        totals.accepted += counts.accepted;
        totals.rejected += counts.rejected;
        tracing::debug!(
            records = batch.len(),
            accepted = counts.accepted,
            rejected = counts.rejected,
            outputs = outputs.len(),
            attempts = attempt,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "round committed"
        );
    }

    fn route_batch(&self, batch: &[OwnedMessage]) -> (Vec<Output>, Totals) {
        let ctx = RouteContext {
            topics: &self.config.topics,
            quality: &self.config.quality,
            service_name: &self.config.bridge.service_name,
            now_ms: linegate_common::process::now_ms(),
        };
        let mut counts = Totals::default();
        let mut outputs = Vec::with_capacity(batch.len() * 3);
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let idle = windows.close_idle(ctx.now_ms);
        self.window_outputs(idle, &mut outputs);
        for message in batch {
            let record = InputRecord {
                topic: message.topic(),
                partition: message.partition(),
                offset: message.offset(),
                key: message.key(),
                value: message.payload().unwrap_or_default(),
            };
            let mut routed = route(&record, &ctx);
            crate::redrive::carry_attempt(message, &mut routed.outputs, &self.config.topics.dlq);
            self.metrics.routed(&record, routed.rejection.as_ref());
            match &routed.rejection {
                Some(rejection) => {
                    counts.rejected += 1;
                    tracing::warn!(
                        partition = record.partition,
                        offset = record.offset,
                        class = rejection.class(),
                        "input rejected to {}: {rejection}",
                        self.config.topics.dlq
                    );
                }
                None => counts.accepted += 1,
            }
            outputs.extend(routed.outputs);
            if let Some(observation) = routed.window_input {
                let closed = windows.observe(observation, ctx.now_ms);
                self.window_outputs(closed, &mut outputs);
            }
        }
        (outputs, counts)
    }

    /// The records of closed quality windows, after the outputs of the record that closed them.
    fn window_outputs(&self, closed: Vec<ClosedWindow>, outputs: &mut Vec<Output>) {
        for window in closed {
            match window::output(
                &window,
                &self.config.topics.quality,
                &self.config.bridge.service_name,
            ) {
                Ok(output) => outputs.push(output),
                // Only numbers and names built here: failing to encode is a build defect, not input.
                Err(error) => tracing::error!(
                    station = %window.station_id,
                    inspection_type = %window.inspection_type,
                    %error,
                    "a quality window could not be encoded and is not written"
                ),
            }
        }
    }

    /// Commits the offsets after `batch`, synchronously so that a stop right after it loses nothing.
    fn commit(&self, batch: &[OwnedMessage]) {
        if batch.is_empty() {
            return;
        }
        let positions = batch.iter().map(|m| (m.topic(), m.partition(), m.offset()));
        let committed = consume::commit_list(positions)
            .and_then(|offsets| self.consumer.commit(&offsets, CommitMode::Sync));
        if let Err(error) = committed {
            // After a rebalance the partitions may belong to another instance, which repeats the round.
            tracing::warn!(%error, "offset commit failed; the records of this round will be handled again");
        }
    }
}

fn retry_note(error: &DeliveryError) -> &'static str {
    match error {
        DeliveryError::Queue { .. } => {
            "an output was not accepted by the producer (does the topic exist?); offsets not committed, repeating the round"
        }
        _ => "outputs not acknowledged by Kafka; offsets not committed, repeating the round",
    }
}
