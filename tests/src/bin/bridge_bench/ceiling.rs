//! Phase 4 of bridge-bench: the rig's ceiling for the bridge's record traffic, with no bridge work at all.
//!
//! A loop with the bridge's own Kafka machinery (its output producer and round-in-flight scheme, a group
//! consumer with its fetch settings, offsets committed after the acknowledgements) reads pre-loaded events
//! and writes, per event, what the full fan-out writes: three records of the input's size with five headers
//! (lifecycle, quality, audit), plus one state record per station and round. No decoding, routing, hashing
//! or encoding. Whatever rate this reaches on a machine bounds what the bridge can reach there, because
//! the broker and the Kafka clients cost at least this much CPU per event. In exactly-once mode each round is
//! a transaction as the bridge's is (begin, produce, acknowledgements, offsets, commit; no round in flight),
//! and the time spent committing is measured per transaction.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use linegate_bridge::decide::route::Output;
use linegate_bridge::pipeline::commit::commit_list;
use linegate_bridge::pipeline::produce::{self, Sending};
use linegate_common::kafka::KafkaConfig;
use linegate_e2e::kafka::create_topic;
use linegate_e2e::process::usage;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::Producer;
use rdkafka::{ClientConfig, Message};

/// The pre-loaded input of this phase.
pub(crate) const INPUT: &str = "bench.ceiling.in";
/// The three fan-out topics and the state topic, with the partitions config/topics.toml gives theirs.
const OUTPUTS: [(&str, i32); 4] = [
    ("bench.ceiling.lifecycle", 12),
    ("bench.ceiling.quality", 8),
    ("bench.ceiling.audit", 6),
    ("bench.ceiling.state", 6),
];
/// Header names of the bridge's outputs; values of the same sizes.
const HEADERS: [(&str, usize); 5] = [
    ("station_id", 5),
    ("seq", 6),
    ("source.event_id", 36),
    ("idempotency-key", 36),
    ("trace_id", 8),
];

/// What the phase measured.
pub(crate) struct Ceiling {
    /// Events read and fanned out.
    pub events: usize,
    /// From the first record read to the last round committed.
    pub elapsed: Duration,
    /// CPU of this process (consumer and producer) over that time, seconds.
    pub client_cpu: f64,
    /// CPU of the broker, seconds.
    pub broker_cpu: f64,
    /// Transactions committed (exactly-once) and the time spent in `send_offsets_to_transaction` plus
    /// `commit_transaction` over all of them.
    pub transactions: Option<(usize, Duration)>,
}

/// Creates the phase's topics (the caller pre-loads [`INPUT`] afterwards).
pub(crate) async fn create_topics(bootstrap: &str) -> anyhow::Result<()> {
    create_topic(bootstrap, INPUT, 12).await?;
    for (topic, partitions) in OUTPUTS {
        create_topic(bootstrap, topic, partitions).await?;
    }
    Ok(())
}

/// Reads `events` records of [`INPUT`] and fans each out like the bridge, rounds of up to `batch_max`
/// gathered for up to `batch_wait`, one round in flight.
pub(crate) async fn run(
    bootstrap: &str,
    events: usize,
    batch_max: usize,
    batch_wait: Duration,
    broker_pid: u32,
    exactly_once: bool,
) -> anyhow::Result<Ceiling> {
    let kafka = KafkaConfig {
        bootstrap: bootstrap.to_owned(),
        client: Default::default(),
    };
    let isolation = if exactly_once {
        "read_committed"
    } else {
        "read_uncommitted"
    };
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-ceiling")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .create()?;
    consumer.subscribe(&[INPUT])?;
    let first = consumer.recv().await?.detach();
    let (started, cpu_at, broker_at) = (
        Instant::now(),
        usage(std::process::id()).0,
        usage(broker_pid).0,
    );
    let measured = |events, transactions| Ceiling {
        events,
        elapsed: started.elapsed(),
        client_cpu: usage(std::process::id()).0 - cpu_at,
        broker_cpu: usage(broker_pid).0 - broker_at,
        transactions,
    };
    if exactly_once {
        let (done, transactions) =
            transactional_rounds(&kafka, &consumer, first, events, batch_max, batch_wait).await?;
        return Ok(measured(done, Some(transactions)));
    }
    let producer = produce::producer(&kafka)?;
    let mut batch = vec![first];
    let mut in_flight: Option<(Vec<OwnedMessage>, Sending)> = None;
    let mut done = 0;
    while done < events {
        let deadline = tokio::time::Instant::now() + batch_wait;
        while batch.len() < batch_max {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(message) => batch.push(message?.detach()),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let sending = produce::send(&producer, &fan_out(&batch));
            if let Some(previous) = in_flight.replace((std::mem::take(&mut batch), sending)) {
                done += settle(&consumer, previous, CommitMode::Async).await?;
            }
        } else if let Some(previous) = in_flight.take() {
            done += settle(&consumer, previous, CommitMode::Async).await?;
        }
    }
    if let Some(previous) = in_flight.take() {
        done += settle(&consumer, previous, CommitMode::Sync).await?;
    }
    Ok(measured(done, None))
}

/// The exactly-once loop: one transaction per round, as the bridge's; the transactions and their commit time.
async fn transactional_rounds(
    kafka: &KafkaConfig,
    consumer: &StreamConsumer,
    first: OwnedMessage,
    events: usize,
    batch_max: usize,
    batch_wait: Duration,
) -> anyhow::Result<(usize, (usize, Duration))> {
    let call = Duration::from_secs(20);
    let producer = produce::configured(kafka, &[("transactional.id", "bench-ceiling")])?;
    producer.init_transactions(call)?;
    let (mut done, mut transactions, mut committing) = (0, 0, Duration::ZERO);
    let mut batch = vec![first];
    while done < events {
        let deadline = tokio::time::Instant::now() + batch_wait;
        while batch.len() < batch_max {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(message) => batch.push(message?.detach()),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        producer.begin_transaction()?;
        produce::send(&producer, &fan_out(&batch)).settle().await?;
        let positions = batch.iter().map(|m| (m.topic(), m.partition(), m.offset()));
        let offsets = commit_list(positions)?;
        let group = consumer
            .group_metadata()
            .ok_or_else(|| anyhow::anyhow!("no group metadata"))?;
        let at = Instant::now();
        producer.send_offsets_to_transaction(&offsets, &group, call)?;
        producer.commit_transaction(call)?;
        committing += at.elapsed();
        transactions += 1;
        done += std::mem::take(&mut batch).len();
    }
    Ok((done, (transactions, committing)))
}

/// The records the full fan-out writes for `batch`: three per event, one state record per station.
fn fan_out(batch: &[OwnedMessage]) -> Vec<Output> {
    let headers: Vec<(Cow<'static, str>, Vec<u8>)> = HEADERS
        .iter()
        .map(|(name, len)| (Cow::Borrowed(*name), vec![b'x'; *len]))
        .collect();
    let mut outputs = Vec::with_capacity(batch.len() * 3 + 24);
    let mut stations = BTreeSet::new();
    for message in batch {
        let (key, value) = (
            message.key().unwrap_or_default(),
            message.payload().unwrap_or_default(),
        );
        for (topic, _) in &OUTPUTS[..3] {
            outputs.push(Output {
                topic: (*topic).to_owned(),
                key: Some(key.to_vec()),
                value: value.to_vec(),
                headers: headers.clone(),
            });
        }
        stations.insert(key);
    }
    for station in stations {
        outputs.push(Output {
            topic: OUTPUTS[3].0.to_owned(),
            key: Some(station.to_vec()),
            value: vec![b's'; 200],
            headers: Vec::new(),
        });
    }
    outputs
}

/// Waits for a round's acknowledgements and commits its offsets as the bridge does (`Async` in the loop);
/// the records it held.
async fn settle(
    consumer: &StreamConsumer,
    (batch, sending): (Vec<OwnedMessage>, Sending),
    mode: CommitMode,
) -> anyhow::Result<usize> {
    sending.settle().await?;
    let positions = batch.iter().map(|m| (m.topic(), m.partition(), m.offset()));
    consumer.commit(&commit_list(positions)?, mode)?;
    Ok(batch.len())
}
