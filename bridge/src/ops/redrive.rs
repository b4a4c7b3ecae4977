//! DLQ redrive: sends chosen dead letters back to their source topic after a fix (a corrected threshold, a
//! new enum value), so the bridge judges them again.
//!
//! A redriven record is the dead letter's key and value, its edge headers (station, seq, trace), and three
//! redrive headers: `attempt` (the dead letter's + 1), `first.seen.ms` (kept from the first rejection) and
//! `redrive.of` (`<dlq topic>/<partition>/<offset>`). If it fails again, the pipeline copies `attempt` and
//! `first.seen.ms` into the new dead letter ([`crate::decide::route::carry_attempt`]), so the DLQ shows how often a record was
//! tried. Only records whose `source.topic` is the bridge's input topic are sent: a DLQ header must never be
//! able to direct writes to another topic.

use linegate_common::kafka::KafkaConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

use crate::decide::route::REDRIVE_OF;
use crate::ops::deadletters::{self, DeadLetter, Range, ReadError};

/// Headers of a dead letter that describe the rejection, not the record; not sent back.
const DLQ_ONLY: [&str; 7] = [
    "error.class",
    "error.message",
    "source.topic",
    "source.partition",
    "source.offset",
    "idempotency-key",
    "redrive.of",
];

/// Why a redrive failed as a whole (single records that cannot be sent are reported as skipped).
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// The DLQ could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The producer could not be created.
    #[error("cannot create the redrive producer: {0}")]
    Producer(#[source] rdkafka::error::KafkaError),
    /// A blocking read task died.
    #[error("the DLQ read task failed: {0}")]
    Task(String),
}

/// What a redrive did with one dead letter.
#[derive(Debug, Clone, Serialize)]
pub struct Redriven {
    /// DLQ partition.
    pub dlq_partition: i32,
    /// DLQ offset.
    pub dlq_offset: i64,
    /// Where it went (or would go, in a dry run).
    pub to_topic: Option<String>,
    /// Partition it was written to (None in a dry run or when skipped).
    pub to_partition: Option<i32>,
    /// Offset it was written to.
    pub to_offset: Option<i64>,
    /// The `attempt` header it carries now.
    pub attempt: u32,
    /// Why it was not sent, when it was not.
    pub skipped: Option<String>,
}

/// The whole answer of a redrive: printed by the command, returned by the API.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The DLQ topic read.
    pub dlq_topic: String,
    /// Nothing was sent.
    pub dry_run: bool,
    /// Records sent (or that would be sent).
    pub sent: usize,
    /// Records not sent, with the reason on each.
    pub skipped: usize,
    /// Per record.
    pub records: Vec<Redriven>,
}

/// Reads `range` of `dlq_topic` and sends every selected record back to `input_topic`.
pub async fn redrive(
    kafka: &KafkaConfig,
    dlq_topic: &str,
    input_topic: &str,
    range: Range,
    dry_run: bool,
) -> Result<Report, RedriveError> {
    let (k, t) = (kafka.clone(), dlq_topic.to_owned());
    let page = tokio::task::spawn_blocking(move || deadletters::read(&k, &t, range))
        .await
        .map_err(|e| RedriveError::Task(e.to_string()))??;
    let producer: FutureProducer =
        crate::pipeline::produce::future_producer(kafka).map_err(RedriveError::Producer)?;
    let mut report = Report {
        dlq_topic: dlq_topic.to_owned(),
        dry_run,
        sent: 0,
        skipped: 0,
        records: Vec::new(),
    };
    for letter in &page.records {
        let mut done = Redriven {
            dlq_partition: letter.partition,
            dlq_offset: letter.offset,
            to_topic: letter.source_topic.clone(),
            to_partition: None,
            to_offset: None,
            attempt: letter.attempt + 1,
            skipped: None,
        };
        done.skipped = match letter.source_topic.as_deref() {
            None => Some("no source.topic header".to_owned()),
            Some(topic) if topic != input_topic => Some(format!(
                "source.topic {topic} is not the input topic {input_topic}"
            )),
            Some(_) if dry_run => None,
            Some(_) => match send(&producer, dlq_topic, input_topic, letter).await {
                Ok((partition, offset)) => {
                    (done.to_partition, done.to_offset) = (Some(partition), Some(offset));
                    None
                }
                Err(error) => Some(format!("not acknowledged: {error}")),
            },
        };
        match done.skipped {
            Some(_) => report.skipped += 1,
            None => report.sent += 1,
        }
        report.records.push(done);
    }
    Ok(report)
}

async fn send(
    producer: &FutureProducer,
    dlq_topic: &str,
    input_topic: &str,
    letter: &DeadLetter,
) -> Result<(i32, i64), rdkafka::error::KafkaError> {
    let attempt = (letter.attempt + 1).to_string();
    let first_seen = letter.first_seen_ms.map(|ms| ms.to_string());
    let origin = format!("{dlq_topic}/{}/{}", letter.partition, letter.offset);
    let mut headers = OwnedHeaders::new();
    for (key, value) in &letter.raw_headers {
        if !DLQ_ONLY.contains(&key.as_str()) && key != "attempt" && key != "first.seen.ms" {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
    }
    headers = headers.insert(Header {
        key: "attempt",
        value: Some(&attempt),
    });
    if let Some(first_seen) = &first_seen {
        headers = headers.insert(Header {
            key: "first.seen.ms",
            value: Some(first_seen),
        });
    }
    headers = headers.insert(Header {
        key: REDRIVE_OF,
        value: Some(&origin),
    });
    let mut record = FutureRecord::to(input_topic)
        .payload(&letter.value)
        .headers(headers);
    if let Some(key) = &letter.raw_key {
        record = record.key(key);
    }
    producer
        .send(record, std::time::Duration::from_secs(30))
        .await
        .map(|delivery| (delivery.partition, delivery.offset))
        .map_err(|(error, _)| error)
}

/// Why a redrive's range is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// `from_offset` after `to_offset`.
    #[error("from_offset {from} is after to_offset {to}")]
    Backwards {
        /// The first offset asked for.
        from: i64,
        /// The last offset asked for.
        to: i64,
    },
    /// None or several of the ways to name a range.
    #[error("choose exactly one of: offset N, from_offset A with to_offset B, or all")]
    NotOne,
}

/// The DLQ range of a redrive, from the command line or the API: exactly one of `offset`, a
/// `from_offset`..=`to_offset` range, or `all`.
pub fn range(
    partition: Option<i32>,
    offset: Option<i64>,
    from: Option<i64>,
    to: Option<i64>,
    all: bool,
) -> Result<Range, RangeError> {
    let range = |from, to| Range {
        partition,
        from,
        to,
        limit: usize::MAX,
    };
    match (offset, from, to, all) {
        (Some(n), None, None, false) => Ok(range(Some(n), Some(n))),
        (None, Some(a), Some(b), false) if a <= b => Ok(range(Some(a), Some(b))),
        (None, Some(from), Some(to), false) => Err(RangeError::Backwards { from, to }),
        (None, None, None, true) => Ok(range(None, None)),
        _ => Err(RangeError::NotOne),
    }
}
