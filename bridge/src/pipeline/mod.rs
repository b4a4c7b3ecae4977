//! The consume -> route -> produce -> commit loop (at-least-once).
//!
//! A round takes up to `batch_max` records (or what arrived within `batch_wait_ms`), routes them in order,
//! produces every output, waits until Kafka acknowledged all of them, and only then commits the consumer
//! offsets (per partition: last offset + 1). A failed delivery repeats the round's sends after a back-off,
//! so an output may be written twice (same id, same `idempotency-key` header) but is never lost. If that
//! lasts longer than `max.poll.interval.ms`, the group moves the partitions to another instance and the
//! late commit fails: the round is then handled again there, still at-least-once.
//!
//! With `delivery.mode = "exactly_once"` a round is one Kafka transaction instead: outputs, dedup state and
//! input offsets commit together or not at all ([`crate::pipeline::transaction`]); an aborted round is read again.
//!
//! Between routing and producing, [`crate::wire`] frames the outputs for the schema registry when one is
//! configured; a round whose schema ids cannot be had yet waits, like a round whose delivery fails.
//!
//! Before routing, a round re-reads the state topic if partitions were assigned since the last round
//! ([`crate::pipeline::state`]), so dedup and the audit chain continue where the previous owner left them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::OwnedMessage;
use tokio::sync::watch;

mod build;
pub mod commit;
pub mod consume;
mod error;
mod exactly_once;
pub mod in_flight;
pub mod produce;
mod settle;
pub mod state;
pub mod transaction;

use crate::config::{BridgeConfig, DeliveryMode};
use crate::decide::dedup::{DedupMetrics, Ledger};
use crate::decide::round::{self, Counts};
use crate::decide::route::{Output, RouteContext};
use crate::decide::window::{self, ClosedWindow, Windows};
use crate::metrics::BridgeMetrics;
use crate::wire::WireFormat;
use consume::{Gathering, InputConsumer, Rebalances};
use in_flight::{InFlight, Pending};
use produce::DeliveryError;
use state::ReadBackError;

/// First wait after a failed consume or delivery; doubled per failure up to [`RETRY_BACKOFF_MAX`].
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest wait between two attempts, so a recovered cluster is noticed quickly.
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often progress is logged at info while records flow; per-round counts are at debug.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);
/// How long the pipeline waits for input before it runs an empty round, so that the quality windows of
/// stations that went silent still close.
const IDLE_ROUND_EVERY: Duration = Duration::from_secs(30);

pub use error::PipelineError;

/// Consumer and producer of one bridge instance; the pipeline is the only user of both.
pub struct Pipeline {
    consumer: InputConsumer,
    /// Replaced whole when a transactional producer fails fatally ([`Pipeline::renew_producer`]).
    producer: RwLock<Arc<produce::OutputProducer>>,
    config: BridgeConfig,
    /// Open quality windows; stored with each station's ledger state and restored with it.
    windows: Mutex<Windows>,
    /// Throughput, DLQ and latency series of the HTTP API.
    metrics: BridgeMetrics,
    /// Dedup and chain state; locked only between awaits.
    ledger: Mutex<Ledger>,
    /// Set by the consumer on assignment (and at start): re-read the state before the next round.
    reload: Arc<AtomicBool>,
    /// Counted by the consumer: a batch gathered across a rebalance keeps only what came after it.
    rebalances: Rebalances,
    /// The transactional.id in exactly-once mode.
    transactional_id: Option<String>,
    /// Single-object, or Confluent framing with the registry's ids.
    wire: WireFormat,
    /// Streamed rounds not yet acknowledged; the consumer context settles them before a revocation.
    in_flight: InFlight,
}

/// What a run handled, for the progress and stop log lines.
pub type Totals = Counts;

impl Pipeline {
    /// How many outputs at the end of `outputs` are state records: a round's last ones
    /// ([`crate::decide::round::route_batch`]), sent only once the others were acknowledged.
    fn state_outputs(&self, outputs: &[Output]) -> usize {
        outputs
            .iter()
            .rev()
            .take_while(|o| o.topic == self.config.topics.state)
            .count()
    }

    /// The current output producer.
    fn producer(&self) -> Arc<produce::OutputProducer> {
        self.producer
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Runs rounds until `shutdown` turns true (or its sender is dropped). A round in progress is finished,
    /// delivered and committed first; only a round whose delivery keeps failing is left uncommitted, to be
    /// repeated by whoever owns its partitions next. Fails only when going on would break a guarantee: the
    /// transactional producer was fenced, or the schema registry refuses an output schema. A state topic that cannot be read back (Kafka away) makes the round
    /// wait, not the bridge stop.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> Result<Totals, PipelineError> {
        let mut totals = Totals::default();
        let mut reported = Totals::default();
        let mut last_summary = Instant::now();
        let batch_wait = Duration::from_millis(self.config.bridge.batch_wait_ms);
        while !*shutdown.borrow() {
            // With a round in flight, a pause in the input settles it instead of waiting for more.
            let first_wait = match self.in_flight.is_empty() {
                true => IDLE_ROUND_EVERY,
                false => batch_wait,
            };
            let Some(batch) = self.next_batch(&mut shutdown, first_wait).await else {
                break;
            };
            if batch.is_empty() && !self.in_flight.is_empty() {
                if !self
                    .settle_until(0, CommitMode::Async, &mut totals, &shutdown)
                    .await
                {
                    return Ok(totals);
                }
                continue;
            }
            self.round(batch, &mut totals, &shutdown).await?;
            let moved = totals.total() != reported.total();
            if moved && last_summary.elapsed() >= SUMMARY_EVERY {
                log_totals(&totals, "bridge progress");
                (reported, last_summary) = (totals, Instant::now());
            }
        }
        // A stop finishes the rounds in flight first (unless their delivery keeps failing), and waits for
        // the commit.
        self.settle_until(0, CommitMode::Sync, &mut totals, &shutdown)
            .await;
        log_totals(&totals, "bridge stopped");
        Ok(totals)
    }

    /// Waits up to `first_wait` for a first record (an empty batch if none came; None on the stop signal),
    /// then gathers more until the batch is full or `batch_wait_ms` passed. Records received before a
    /// rebalance that happened while gathering are left out unrouted ([`consume::Rebalances`]): they are
    /// read again from the committed offset, here or by the partition's new owner.
    async fn next_batch(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        first_wait: Duration,
    ) -> Option<Vec<OwnedMessage>> {
        let mut failures = 0;
        let mut batch = Gathering::new(self.rebalances.count());
        let first_deadline = tokio::time::Instant::now() + first_wait;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => return None,
                _ = tokio::time::sleep_until(first_deadline) => break,
                received = self.consumer.recv() => match received {
                    Ok(message) => {
                        batch.push(message.detach(), self.rebalances.count());
                        break;
                    }
                    Err(error) => {
                        let pause = consume::pause_after(&error, failures);
                        failures += 1;
                        tracing::warn!(%error, retry_in = ?pause, "consuming the input failed");
                        tokio::select! {
                            _ = shutdown.changed() => return None,
                            _ = tokio::time::sleep(pause) => {}
                        }
                    }
                },
            }
        }
        let wait = Duration::from_millis(self.config.bridge.batch_wait_ms);
        let deadline = tokio::time::Instant::now() + wait;
        while !batch.is_empty() && batch.len() < self.config.bridge.batch_max {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message.detach(), self.rebalances.count()),
                Ok(Err(error)) => tracing::warn!(%error, "consuming the input failed"),
                Err(_) => break,
            }
        }
        let (batch, dropped) = batch.finish(self.rebalances.count());
        if dropped > 0 {
            tracing::info!(
                records = dropped,
                "records received before a rebalance left unrouted; they are read again from the committed offset"
            );
        }
        Some(batch)
    }

    /// Routes a batch in order and delivers every output; commits once Kafka acknowledged them all. A
    /// round outside a transaction is left in flight and settled after the next one was routed.
    async fn round(
        &self,
        batch: Vec<OwnedMessage>,
        totals: &mut Totals,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), PipelineError> {
        let started = Instant::now();
        if self.reload.swap(false, Ordering::SeqCst) {
            // The ledger is replaced: what it sent must be settled first.
            if !self
                .settle_until(0, CommitMode::Async, totals, shutdown)
                .await
            {
                return Ok(());
            }
            // Without the state, dedup and the audit chain would restart from nothing: the round waits for it
            // (Kafka may be away for hours) instead of routing without it or stopping the bridge.
            let mut backoff = RETRY_BACKOFF_MIN;
            while let Err(error) = self.reload_state().await {
                if *shutdown.borrow() {
                    tracing::error!(%error, records = batch.len(), "stopping before the dedup state could be read; the round stays uncommitted and will be handled again");
                    return Ok(());
                }
                tracing::warn!(%error, retry_in = ?backoff, "cannot read the dedup state back (is Kafka reachable?); the round waits");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            }
        }
        let (mut outputs, counts) = self.route_batch(&batch);
        // Before any send (and before a transaction begins): the round is produced in the configured wire
        // format, whole, or not at all.
        if !self.wire.frame_waiting(&mut outputs, shutdown).await? {
            tracing::error!(
                records = batch.len(),
                "stopping while the schema registry is away; the round stays uncommitted and will be handled again"
            );
            return Ok(());
        }
        if let Some(id) = &self.transactional_id {
            if self.transaction(id, &batch, &outputs, shutdown).await? {
                self.books(&batch, &outputs, counts, 1, started, totals);
            }
            return Ok(());
        }
        // The whole round is queued at once, after routing: librdkafka then sends one request per partition
        // for it. Queued while it was routed, the same outputs left in many more, smaller
        // requests, and a broker pays per request. It stays in flight, acknowledged in the background, while
        // the next round is read and routed.
        let sending = produce::send_held(&self.producer(), &outputs, self.state_outputs(&outputs));
        self.in_flight
            .push(Pending::new(batch, outputs, counts, started, sending));
        self.settle_until(
            settle::ROUNDS_IN_FLIGHT,
            CommitMode::Async,
            totals,
            shutdown,
        )
        .await;
        Ok(())
    }

    /// Re-reads the state topic into the ledger (at start and after every assignment).
    async fn reload_state(&self) -> Result<(), ReadBackError> {
        let (kafka, topic) = (self.config.kafka.clone(), self.config.topics.state.clone());
        let committed = self.transactional_id.is_some();
        let prefix = self.ledger.lock().expect("ledger lock").state_key("");
        let states = tokio::task::spawn_blocking(move || {
            state::load_state(&kafka, &topic, committed, &prefix)
        })
        .await
        .expect("the state reader does not panic")?;
        // Same lock order as a round: windows, then ledger.
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let owned: HashSet<(String, i32)> = match self.consumer.assignment() {
            Ok(assignment) => assignment
                .elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition()))
                .collect(),
            Err(source) => {
                return Err(ReadBackError::Kafka {
                    topic: self.config.topics.input.clone(),
                    source,
                })
            }
        };
        let mut ledger = self.ledger.lock().expect("ledger lock");
        ledger.replace(states);
        windows.clear();
        let mut restored = 0_usize;
        let owns = |topic: &str, partition| owned.contains(&(topic.to_owned(), partition));
        for snapshot in ledger.window_snapshots(owns) {
            windows.restore(snapshot.clone());
            restored += 1;
        }
        tracing::info!(
            chains = ledger.len(),
            stations_with_windows = restored,
            "dedup state restored"
        );
        Ok(())
    }

    /// The round's outputs, in send order, and what became of its records.
    fn route_batch(&self, batch: &[OwnedMessage]) -> (Vec<Output>, Counts) {
        let ctx = RouteContext {
            topics: &self.config.topics,
            routes: &self.config.routes,
            quality: &self.config.quality,
            service_name: &self.config.bridge.service_name,
            now_ms: linegate_common::process::now_ms(),
        };
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut outputs = Vec::new();
        let mut ledger = self.ledger.lock().expect("ledger lock");
        let idle = windows.close_idle(ctx.now_ms);
        for window in &idle {
            // Its stored state must lose the closed window too, or a restart would emit it again.
            ledger.touch(&window.station_id);
        }
        self.window_outputs(idle, &mut outputs);
        let hook = |message: &OwnedMessage, routed: &mut crate::decide::route::Routed| {
            crate::decide::route::carry_attempt(
                message,
                &mut routed.outputs,
                &self.config.topics.dlq,
            );
            if let Some(rejection) = &routed.rejection {
                self.metrics.rejected(rejection);
            }
        };
        self.metrics.read(batch);
        let counts =
            round::route_batch(batch, &ctx, &mut ledger, &mut windows, &hook, &mut outputs);
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
}

/// The progress and stop log lines (tests and operators wait for their messages).
fn log_totals(totals: &Totals, message: &'static str) {
    tracing::info!(
        accepted = totals.accepted,
        rejected = totals.rejected,
        duplicates = totals.duplicates,
        gaps = totals.gaps,
        replays = totals.replays,
        "{message}"
    );
}

fn retry_note(error: &DeliveryError) -> &'static str {
    match error {
        DeliveryError::Queue { .. } => {
            "an output was not accepted by the producer (does the topic exist?); offsets not committed, repeating the round"
        }
        _ => "outputs not acknowledged by Kafka; offsets not committed, repeating the round",
    }
}
