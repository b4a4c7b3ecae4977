//! Reading a whole topic back: the state topic on every partition assignment, the audit topic for
//! `audit verify`. A consumer without a group, assigned every partition from the beginning, reads until each
//! partition's high watermark as it was at the start.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::dedup::ChainState;
use linegate_common::kafka::KafkaConfig;

/// How long a read-back goes on after the watermarks without any new record.
const QUIET: Duration = Duration::from_millis(1500);
/// A record stamped this long after the read-back began was written after it began (allowing for clocks of
/// other instances that far ahead): everything before it in its partition has been read, the partition is done.
const WRITTEN_AFTER_START: Duration = Duration::from_secs(3);

/// Why a topic could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadBackError {
    /// Client creation, metadata, watermarks or assignment failed.
    #[error("cannot read {topic} back: {source}")]
    Kafka {
        /// The topic.
        topic: String,
        /// What librdkafka said.
        #[source]
        source: KafkaError,
    },
    /// The topic does not exist.
    #[error("topic {topic} does not exist (is it in the topic plan?)")]
    NoTopic {
        /// The topic.
        topic: String,
    },
    /// The end was not reached in time.
    #[error("reading {topic} back did not reach its end within {timeout:?} (at {read} records)")]
    Timeout {
        /// The topic.
        topic: String,
        /// The limit.
        timeout: Duration,
        /// Records read so far.
        read: usize,
    },
}

/// Every record of `topic` up to its high watermarks at the start of the call, in partition order.
/// `read_committed` skips records of aborted transactions (exactly-once mode).
pub fn read_all(
    kafka: &KafkaConfig,
    topic: &str,
    read_committed: bool,
    timeout: Duration,
) -> Result<Vec<OwnedMessage>, ReadBackError> {
    let fail = |source| ReadBackError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    let isolation = if read_committed {
        "read_committed"
    } else {
        "read_uncommitted"
    };
    let consumer: BaseConsumer = kafka
        .client_config(&[
            ("group.id", "linegate-bridge-readback"),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
            ("isolation.level", isolation),
            // tansu holds every fetch for the whole wait: with librdkafka's 500 ms, reading 1,200 state
            // records back after an assignment took 13 s (bridge_rebalance.rs).
            ("fetch.wait.max.ms", crate::consume::FETCH_WAIT_MAX_MS),
        ])
        .create()
        .map_err(fail)?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(fail)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(ReadBackError::NoTopic {
            topic: topic.to_owned(),
        });
    }
    let partition_count = partitions.len();
    let mut ends = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .map_err(fail)?;
        tracing::debug!(topic, partition, low, high, "read-back watermarks");
        if high > low {
            ends.insert(partition, high);
        }
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(fail)?;
    }
    let mut records = Vec::new();
    consumer.assign(&assignment).map_err(fail)?;
    let started = Instant::now();
    let fresh_from_ms = linegate_common::process::now_ms()
        + i64::try_from(WRITTEN_AFTER_START.as_millis()).unwrap_or(i64::MAX);
    while !ends.is_empty() {
        if started.elapsed() > timeout {
            return Err(ReadBackError::Timeout {
                topic: topic.to_owned(),
                timeout,
                read: records.len(),
            });
        }
        if let Some(received) = consumer.poll(Duration::from_millis(200)) {
            records.push(received.map_err(fail)?.detach());
        }
        // The position moves past transaction markers too, which are never delivered as records.
        let position = consumer.position().map_err(fail)?;
        for element in position.elements() {
            if let (Offset::Offset(next), Some(end)) =
                (element.offset(), ends.get(&element.partition()))
            {
                if next >= *end {
                    ends.remove(&element.partition());
                }
            }
        }
    }
    // tansu 0.6.0 reports high watermarks short of records it has acknowledged (seen in the e2e tests: about
    // 1,560 of 1,613 audit records below the watermarks; 14 of about 80 state records per partition). Read on
    // until each partition is quiet or delivers a record written after the read began, so that nothing
    // acknowledged before is left out, while other instances that keep writing cannot make the read endless
    // (they did: a member joining under load waited until the whole input paused). On Apache Kafka this
    // costs the quiet period at most.
    let mut done: HashSet<i32> = HashSet::new();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < QUIET && started.elapsed() < timeout {
        let Some(received) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let record = received.map_err(fail)?.detach();
        if done.contains(&record.partition()) {
            continue;
        }
        quiet_since = Instant::now();
        if record
            .timestamp()
            .to_millis()
            .is_some_and(|at| at >= fresh_from_ms)
        {
            done.insert(record.partition());
            if done.len() == partition_count {
                records.push(record);
                break;
            }
        }
        records.push(record);
    }
    tracing::debug!(topic, records = records.len(), elapsed = ?started.elapsed(), "read back");
    records.sort_by_key(|m| (m.partition(), m.offset()));
    records.dedup_by_key(|m| (m.partition(), m.offset()));
    Ok(records)
}

/// The state topic's records as (key, chain state), latest per key last; unreadable records are logged and
/// skipped (they would only make dedup forget, never drop data).
pub fn load_state(
    kafka: &KafkaConfig,
    topic: &str,
    read_committed: bool,
) -> Result<Vec<(String, ChainState)>, ReadBackError> {
    let records = read_all(kafka, topic, read_committed, Duration::from_secs(60))?;
    let mut states = Vec::with_capacity(records.len());
    for record in records {
        let Some(key) = record.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            continue;
        };
        match record.payload().map(serde_json::from_slice::<ChainState>) {
            Some(Ok(state)) => states.push((key.to_owned(), state)),
            // A tombstone or the exactly-once start probe: not a chain.
            None => {}
            Some(Err(_)) if key.starts_with(crate::txn::PROBE_KEY_PREFIX) => {}
            Some(Err(error)) => tracing::warn!(
                topic,
                partition = record.partition(),
                offset = record.offset(),
                key,
                %error,
                "state record not readable; skipped"
            ),
        }
    }
    Ok(states)
}
