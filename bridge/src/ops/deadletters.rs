//! Reading the dead-letter topic back: the page the API lists and the records a redrive sends.
//!
//! Reads with a throw-away consumer (its own random group, no commits) assigned to the chosen partitions
//! between the low and high watermarks at the time of the call, so that reading never moves any group's
//! offsets and always ends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use linegate_common::kafka::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;

/// How long a metadata, watermark or read request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why the dead letters could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The broker did not answer or refused.
    #[error("cannot read {topic}: {source}")]
    Kafka {
        /// The topic read.
        topic: String,
        /// What librdkafka said.
        #[source]
        source: KafkaError,
    },
    /// The topic does not exist or has no partitions.
    #[error("topic {0} does not exist on the broker")]
    NoTopic(String),
    /// The requested partition is not one of the topic's.
    #[error("topic {topic} has no partition {partition}")]
    NoPartition {
        /// The topic.
        topic: String,
        /// The requested partition.
        partition: i32,
    },
}

/// One dead letter with its headers decoded, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// DLQ partition.
    pub partition: i32,
    /// DLQ offset.
    pub offset: i64,
    /// Record timestamp, epoch ms.
    pub timestamp_ms: Option<i64>,
    /// Key as text (lossy).
    pub key: Option<String>,
    /// `error.class` header: which rule rejected it.
    pub error_class: Option<String>,
    /// `error.message` header: why, for a person.
    pub error_message: Option<String>,
    /// `source.topic` header: where a redrive sends it.
    pub source_topic: Option<String>,
    /// `source.partition` header.
    pub source_partition: Option<i32>,
    /// `source.offset` header.
    pub source_offset: Option<i64>,
    /// `first.seen.ms` header: when the bridge first rejected it.
    pub first_seen_ms: Option<i64>,
    /// `attempt` header: how often it was judged (1 = never redriven).
    pub attempt: u32,
    /// Every header as text (lossy), in order.
    pub headers: Vec<(String, String)>,
    /// Value size in bytes.
    pub value_len: usize,
    /// The raw key bytes, for a redrive.
    #[serde(skip)]
    pub raw_key: Option<Vec<u8>>,
    /// The raw value bytes, for a redrive.
    #[serde(skip)]
    pub value: Vec<u8>,
    /// The raw headers, for a redrive.
    #[serde(skip)]
    pub raw_headers: Vec<(String, Vec<u8>)>,
}

impl DeadLetter {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Which records to read: per partition (all when `partition` is None), offsets `from..=to`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    /// One partition, or every partition of the topic.
    pub partition: Option<i32>,
    /// First offset (inclusive); the log start when None.
    pub from: Option<i64>,
    /// Last offset (inclusive); the end at the time of the call when None.
    pub to: Option<i64>,
    /// At most this many records per partition.
    pub limit: usize,
}

/// What a read returned: the records, in partition and offset order, and where the next page starts.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// The topic read.
    pub topic: String,
    /// The records.
    pub records: Vec<DeadLetter>,
    /// Per partition, the offset the next page starts at (absent when the partition was read to its end).
    pub next: BTreeMap<i32, i64>,
}

/// Reads `range` of `topic`. Blocking (call it from `spawn_blocking` in async code).
pub fn read(kafka: &KafkaConfig, topic: &str, range: Range) -> Result<Page, ReadError> {
    let err = |source| ReadError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    let group = format!("linegate-bridge-dlq-reader-{}", uuid::Uuid::new_v4());
    let consumer: BaseConsumer = kafka
        .client_config(&[
            ("group.id", &group),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
        ])
        .create()
        .map_err(err)?;
    let partitions = partitions(&consumer, topic)?;
    let chosen: Vec<i32> = match range.partition {
        Some(p) if partitions.contains(&p) => vec![p],
        Some(partition) => {
            return Err(ReadError::NoPartition {
                topic: topic.to_owned(),
                partition,
            })
        }
        None => partitions,
    };
    // Per partition: [start, end) where end is exclusive and fixed now, so the read always ends.
    let mut todo = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in chosen {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, TIMEOUT)
            .map_err(err)?;
        let start = range.from.unwrap_or(low).max(low);
        let end = range.to.map_or(high, |to| (to + 1).min(high));
        let limit = i64::try_from(range.limit).unwrap_or(i64::MAX);
        let end = end.min(start.saturating_add(limit));
        if start < end {
            todo.insert(partition, (start, end));
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(start))
                .map_err(err)?;
        }
    }
    let mut page = Page {
        topic: topic.to_owned(),
        records: Vec::new(),
        next: BTreeMap::new(),
    };
    for (partition, (_, end)) in &todo {
        let (_, high) = consumer
            .fetch_watermarks(topic, *partition, TIMEOUT)
            .map_err(err)?;
        if *end < high {
            page.next.insert(*partition, *end);
        }
    }
    if todo.is_empty() {
        return Ok(page);
    }
    consumer.assign(&assignment).map_err(err)?;
    let deadline = Instant::now() + TIMEOUT;
    let mut remaining = todo.clone();
    while !remaining.is_empty() && Instant::now() < deadline {
        let Some(received) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = received.map_err(err)?;
        let Some((_, end)) = remaining.get(&message.partition()).copied() else {
            continue;
        };
        if message.offset() < end {
            page.records.push(dead_letter(&message));
        }
        if message.offset() + 1 >= end {
            remaining.remove(&message.partition());
        }
    }
    page.records.sort_by_key(|r| (r.partition, r.offset));
    Ok(page)
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>, ReadError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(|source| ReadError::Kafka {
            topic: topic.to_owned(),
            source,
        })?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(ReadError::NoTopic(topic.to_owned()));
    }
    Ok(partitions)
}

fn dead_letter(message: &rdkafka::message::BorrowedMessage<'_>) -> DeadLetter {
    let raw_headers: Vec<(String, Vec<u8>)> = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    let headers: Vec<(String, String)> = raw_headers
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    let value = message.payload().unwrap_or_default().to_vec();
    let mut letter = DeadLetter {
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis(),
        key: message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned()),
        error_class: None,
        error_message: None,
        source_topic: None,
        source_partition: None,
        source_offset: None,
        first_seen_ms: None,
        attempt: 1,
        headers,
        value_len: value.len(),
        raw_key: message.key().map(<[u8]>::to_vec),
        value,
        raw_headers,
    };
    letter.error_class = letter.header("error.class").map(str::to_owned);
    letter.error_message = letter.header("error.message").map(str::to_owned);
    letter.source_topic = letter.header("source.topic").map(str::to_owned);
    letter.source_partition = letter
        .header("source.partition")
        .and_then(|v| v.parse().ok());
    letter.source_offset = letter.header("source.offset").and_then(|v| v.parse().ok());
    letter.first_seen_ms = letter.header("first.seen.ms").and_then(|v| v.parse().ok());
    letter.attempt = letter
        .header("attempt")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    letter
}
