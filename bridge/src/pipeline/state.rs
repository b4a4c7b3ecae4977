//! Reading a whole topic back: the state topic on every partition assignment, the audit topic for
//! `audit verify`. A consumer without a group, assigned every partition from the beginning, reads until each
//! partition's high watermark as it was at the start (read_committed: until the last stable offset has
//! passed it, so a transaction open at the start is waited for).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, OwnedMessage};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::decide::dedup::ChainState;
use linegate_common::kafka::KafkaConfig;

/// How long the state read-back on an assignment may take before it fails (and is tried again): a bound
/// whatever the topic's history; the state topic's compaction keeps it far below.
const READ_BACK_TIMEOUT: Duration = Duration::from_secs(120);

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
/// `read_committed` skips records of aborted transactions (exactly-once mode). Holds the whole topic in
/// memory: for tools (`audit verify`); the state read-back folds with [`read_each`] instead.
pub fn read_all(
    kafka: &KafkaConfig,
    topic: &str,
    read_committed: bool,
    timeout: Duration,
) -> Result<Vec<OwnedMessage>, ReadBackError> {
    let mut records = Vec::new();
    read_each(kafka, topic, read_committed, timeout, |record| {
        records.push(record.detach());
    })?;
    records.sort_by_key(|m| (m.partition(), m.offset()));
    Ok(records)
}

/// Hands every record of `topic` up to its high watermarks at the start of the call to `each`, in offset
/// order within each partition (partitions interleaved), keeping none; returns how many there were.
/// Records written after the start are not handed on: the read ends at the watermarks even on a busy topic.
pub fn read_each(
    kafka: &KafkaConfig,
    topic: &str,
    read_committed: bool,
    timeout: Duration,
    mut each: impl FnMut(&BorrowedMessage<'_>),
) -> Result<usize, ReadBackError> {
    let fail = |source| ReadBackError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    let consumer = reader(kafka, read_committed).map_err(fail)?;
    let mut ends = assign_from_beginning(&consumer, topic)?;
    let mut read = 0;
    let started = Instant::now();
    let mut checked = Instant::now();
    while !ends.is_empty() {
        if started.elapsed() > timeout {
            return Err(ReadBackError::Timeout {
                topic: topic.to_owned(),
                timeout,
                read,
            });
        }
        let polled = consumer.poll(Duration::from_millis(100));
        if let Some(received) = polled {
            let record = received.map_err(fail)?;
            if let Some(end) = ends.get(&record.partition()).copied() {
                if record.offset() < end {
                    read += 1;
                    each(&record);
                }
                if record.offset() + 1 >= end {
                    ends.remove(&record.partition());
                }
            }
        }
        // The position also moves past transaction markers, which are never delivered as records: a
        // partition ending in one (every partition written in exactly-once mode) is done once its position
        // reached the end. Checked when idle and at least every 100 ms, so a busy topic cannot defer it.
        if checked.elapsed() >= Duration::from_millis(100) {
            checked = Instant::now();
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
    }
    tracing::debug!(
        topic,
        records = read,
        elapsed_ms = started.elapsed().as_millis(),
        "read back"
    );
    Ok(read)
}

/// A consumer outside any group (nothing is committed), reading committed records only when asked.
fn reader(kafka: &KafkaConfig, read_committed: bool) -> Result<BaseConsumer, KafkaError> {
    let isolation = if read_committed {
        "read_committed"
    } else {
        "read_uncommitted"
    };
    kafka
        .client_config(&[
            ("group.id", "linegate-bridge-readback"),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
            ("isolation.level", isolation),
        ])
        .create()
}

/// Assigns `consumer` every partition of `topic` from the beginning; the high watermark of each partition
/// that holds records, where reading it back ends.
fn assign_from_beginning(
    consumer: &BaseConsumer,
    topic: &str,
) -> Result<HashMap<i32, i64>, ReadBackError> {
    let fail = |source| ReadBackError::Kafka {
        topic: topic.to_owned(),
        source,
    };
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
    consumer.assign(&assignment).map_err(fail)?;
    Ok(ends)
}

/// The latest chain state of every key of the state topic that starts with `prefix` (one consumer
/// group's), folded while reading: memory grows with the keys, never with the topic's history. A tombstone
/// removes its key, as compaction would; unreadable records are logged and skipped (they would only make
/// dedup forget, never drop data).
pub fn load_state(
    kafka: &KafkaConfig,
    topic: &str,
    read_committed: bool,
    prefix: &str,
) -> Result<HashMap<String, ChainState>, ReadBackError> {
    let mut states = HashMap::new();
    let mut skipped = 0_usize;
    let started = Instant::now();
    let read = read_each(kafka, topic, read_committed, READ_BACK_TIMEOUT, |record| {
        let Some(key) = record.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            return;
        };
        if !key.starts_with(prefix) {
            return;
        }
        match record.payload().map(serde_json::from_slice::<ChainState>) {
            Some(Ok(state)) => {
                states.insert(key.to_owned(), state);
            }
            None => {
                states.remove(key);
            }
            Some(Err(error)) => {
                skipped += 1;
                if skipped <= 10 {
                    tracing::warn!(
                        topic,
                        partition = record.partition(),
                        offset = record.offset(),
                        key,
                        %error,
                        "state record not readable; skipped"
                    );
                }
            }
        }
    })?;
    tracing::info!(
        topic,
        records = read,
        chains = states.len(),
        skipped,
        elapsed_ms = started.elapsed().as_millis(),
        "state topic read back"
    );
    Ok(states)
}
