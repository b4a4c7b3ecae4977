//! Replay: re-consumes a range of the input topic through the routing of the pipeline and produces the
//! outputs again, for a consumer that lost data downstream or a fix in routing.
//!
//! It reads with its own consumer (random group, no commits), so the bridge's group offsets never move;
//! the range ends at the log end of the time of the request, so a replay always ends. Outputs are the same
//! records the pipeline produced for those inputs: every id is derived from the input (event id, or input
//! position for audit and DLQ records), so a replayed output carries the same `idempotency-key` as the
//! first one and a consumer that deduplicates by it drops it; each also carries `replay.id`, so a replay is
//! never a silent duplicate. Audit records are the exception: the audit topic is compacted by id and its
//! records are the links of the stations' chains, so a replay's audit record gets an id of its own and no
//! link ([`as_replayed`]); the chains stay as the pipeline wrote them, and `audit verify` leaves replay
//! records out. Seeking the group instead is not offered: it would re-run dedup and commits of the live
//! pipeline under the operator's feet.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::config::BridgeConfig;
use crate::decide::route::{as_replayed, route, InputRecord, RouteContext, REPLAY_HEADER};
use crate::metrics::BridgeMetrics;
use crate::wire::WireFormat;

const TIMEOUT: Duration = Duration::from_secs(10);
const BATCH: usize = 500;
/// Attempts of one batch's delivery before the replay stops with an error.
const ATTEMPTS: u32 = 5;

/// Body of `POST /api/replay`: where to start (`from_offset` or `from_timestamp_ms`), in one `partition`
/// or all, up to `to_offset` (inclusive) or the current end.
#[derive(Debug, Clone, Deserialize)]
pub struct ReplayRequest {
    /// One partition, or all.
    pub partition: Option<i32>,
    /// First offset (in every chosen partition).
    pub from_offset: Option<i64>,
    /// First record at or after this time, epoch ms.
    pub from_timestamp_ms: Option<i64>,
    /// Last offset, inclusive.
    pub to_offset: Option<i64>,
}

/// A replay's range of one partition.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayRange {
    /// Partition.
    pub partition: i32,
    /// First offset.
    pub from: i64,
    /// One past the last offset.
    pub until: i64,
}

/// Where a replay is.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayStatus {
    /// Id, also in the `replay.id` header of every replayed output.
    pub id: String,
    /// What it re-reads.
    pub ranges: Vec<ReplayRange>,
    /// Inputs routed and delivered so far.
    pub replayed: u64,
    /// Outputs acknowledged so far.
    pub outputs: u64,
    /// Finished (see `error`).
    pub done: bool,
    /// Why it stopped early.
    pub error: Option<String>,
}

/// The replays of this process.
#[derive(Clone)]
pub struct Replays {
    config: Arc<BridgeConfig>,
    metrics: BridgeMetrics,
    wire: WireFormat,
    all: Arc<Mutex<BTreeMap<String, ReplayStatus>>>,
}

impl Replays {
    /// No replays yet; replayed outputs are framed with `wire`, as the pipeline frames its own.
    pub fn new(config: &BridgeConfig, metrics: BridgeMetrics, wire: WireFormat) -> Self {
        Self {
            config: Arc::new(config.clone()),
            metrics,
            wire,
            all: Arc::default(),
        }
    }

    /// The status of replay `id`.
    pub fn get(&self, id: &str) -> Option<ReplayStatus> {
        self.all.lock().ok()?.get(id).cloned()
    }

    /// Plans the ranges and starts the replay in the background; returns its first status.
    pub async fn start(&self, request: ReplayRequest) -> Result<ReplayStatus, String> {
        if request.from_offset.is_some() == request.from_timestamp_ms.is_some() {
            return Err("give exactly one of from_offset and from_timestamp_ms".to_owned());
        }
        let config = self.config.clone();
        let (consumer, ranges) = tokio::task::spawn_blocking(move || plan(&config, &request))
            .await
            .map_err(|e| e.to_string())??;
        let producer =
            crate::pipeline::produce::producer(&self.config.kafka).map_err(|e| e.to_string())?;
        let status = ReplayStatus {
            id: uuid::Uuid::new_v4().to_string(),
            ranges,
            replayed: 0,
            outputs: 0,
            done: false,
            error: None,
        };
        if let Ok(mut all) = self.all.lock() {
            all.insert(status.id.clone(), status.clone());
        }
        tracing::info!(id = %status.id, ranges = ?status.ranges, "replay started");
        tokio::spawn(
            self.clone()
                .run(status.clone(), Arc::new(consumer), producer),
        );
        Ok(status)
    }

    async fn run(
        self,
        mut status: ReplayStatus,
        consumer: Arc<BaseConsumer>,
        producer: crate::pipeline::produce::OutputProducer,
    ) {
        let mut left: BTreeMap<i32, i64> = status
            .ranges
            .iter()
            .filter(|r| r.from < r.until)
            .map(|r| (r.partition, r.until))
            .collect();
        while !left.is_empty() {
            let reader = consumer.clone();
            let todo = left.clone();
            let batch = match tokio::task::spawn_blocking(move || read_batch(&reader, &todo)).await
            {
                Ok(Ok(batch)) => batch,
                Ok(Err(error)) => {
                    status.error = Some(error);
                    break;
                }
                Err(error) => {
                    status.error = Some(error.to_string());
                    break;
                }
            };
            for message in &batch {
                if message.offset() + 1 >= left.get(&message.partition()).copied().unwrap_or(0) {
                    left.remove(&message.partition());
                }
            }
            let batch: Vec<&OwnedMessage> = batch
                .iter()
                .filter(|m| {
                    status
                        .ranges
                        .iter()
                        .any(|r| r.partition == m.partition() && m.offset() < r.until)
                })
                .collect();
            if let Err(error) = self
                .deliver(&status.id.clone(), &batch, &producer, &mut status)
                .await
            {
                status.error = Some(error);
                break;
            }
            self.publish(&status);
        }
        status.done = true;
        tracing::info!(id = %status.id, replayed = status.replayed, error = ?status.error, "replay finished");
        self.publish(&status);
    }

    async fn deliver(
        &self,
        id: &str,
        batch: &[&OwnedMessage],
        producer: &crate::pipeline::produce::OutputProducer,
        status: &mut ReplayStatus,
    ) -> Result<(), String> {
        let config = &self.config;
        let ctx = RouteContext {
            topics: &config.topics,
            routes: &config.routes,
            quality: &config.quality,
            service_name: &config.bridge.service_name,
            now_ms: linegate_common::process::now_ms(),
        };
        let mut outputs = Vec::new();
        for message in batch {
            let record = InputRecord {
                topic: message.topic(),
                partition: message.partition(),
                offset: message.offset(),
                key: message.key(),
                value: message.payload().unwrap_or_default(),
            };
            let mut routed = route(&record, &ctx);
            crate::decide::route::carry_attempt(message, &mut routed.outputs, &config.topics.dlq);
            outputs.extend(routed.outputs);
        }
        for output in &mut outputs {
            if output.topic == config.topics.audit {
                as_replayed(output, id).map_err(|e| format!("audit record not re-encoded: {e}"))?;
            } else {
                output
                    .headers
                    .push((REPLAY_HEADER.into(), id.as_bytes().to_vec()));
            }
        }
        let mut attempt = 1;
        while let Err(error) = self.wire.frame(&mut outputs).await {
            if !error.is_transient() || attempt >= ATTEMPTS {
                return Err(format!(
                    "outputs not framed for the schema registry: {error}"
                ));
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut attempt = 1;
        while let Err(error) = crate::pipeline::produce::deliver_all(producer, &outputs).await {
            if attempt >= ATTEMPTS {
                return Err(format!(
                    "outputs not acknowledged after {ATTEMPTS} attempts: {error}"
                ));
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        status.replayed += batch.len() as u64;
        status.outputs += outputs.len() as u64;
        self.metrics.replayed.inc_by(batch.len() as u64);
        Ok(())
    }

    fn publish(&self, status: &ReplayStatus) {
        if let Ok(mut all) = self.all.lock() {
            all.insert(status.id.clone(), status.clone());
        }
    }
}

/// The ranges of `request` and a consumer assigned to their starts.
fn plan(
    config: &BridgeConfig,
    request: &ReplayRequest,
) -> Result<(BaseConsumer, Vec<ReplayRange>), String> {
    let topic = &config.topics.input;
    let group = format!("linegate-bridge-replay-{}", uuid::Uuid::new_v4());
    let consumer: BaseConsumer = config
        .kafka
        .client_config(&[
            ("group.id", &group),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
        ])
        .create()
        .map_err(|e| e.to_string())?;
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(|e| format!("cannot read the partitions of {topic}: {e}"))?;
    let mut partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if let Some(p) = request.partition {
        if !partitions.contains(&p) {
            return Err(format!("{topic} has no partition {p}"));
        }
        partitions = vec![p];
    }
    let mut ranges = Vec::new();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, TIMEOUT)
            .map_err(|e| e.to_string())?;
        let from = match (request.from_offset, request.from_timestamp_ms) {
            (Some(offset), _) => offset.max(low),
            (None, Some(ms)) => {
                let mut query = TopicPartitionList::new();
                query
                    .add_partition_offset(topic, partition, Offset::Offset(ms))
                    .map_err(|e| e.to_string())?;
                let found = consumer
                    .offsets_for_times(query, TIMEOUT)
                    .map_err(|e| format!("cannot look up offsets by time: {e}"))?;
                match found.elements().first().map(|e| e.offset()) {
                    Some(Offset::Offset(n)) => n,
                    _ => high,
                }
            }
            (None, None) => low,
        };
        let until = request.to_offset.map_or(high, |to| (to + 1).min(high));
        if from < until {
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(from))
                .map_err(|e| e.to_string())?;
        }
        ranges.push(ReplayRange {
            partition,
            from,
            until,
        });
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    Ok((consumer, ranges))
}

/// Up to [`BATCH`] records of the partitions still to read.
fn read_batch(
    consumer: &BaseConsumer,
    left: &BTreeMap<i32, i64>,
) -> Result<Vec<OwnedMessage>, String> {
    let mut batch = Vec::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while batch.len() < BATCH && std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let end = left.get(&message.partition()).copied().unwrap_or(0);
                let last = message.offset() + 1 >= end;
                batch.push(message.detach());
                if last {
                    break;
                }
            }
            Some(Err(error)) => return Err(error.to_string()),
            None if !batch.is_empty() => break,
            None => {}
        }
    }
    if batch.is_empty() {
        return Err("no records arrived within 10 s".to_owned());
    }
    Ok(batch)
}
