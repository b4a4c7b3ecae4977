//! `linegate-bridge audit verify`: reads an audit topic back from the beginning and checks every chain
//! ([`crate::decide::chain::verify`]). Records that do not decode as AuditEvent are counted and reported: a
//! foreign record on the audit topic is itself worth knowing about. Records in the Confluent wire format
//! are read through the configured schema registry ([`SchemaReader`]), so a topic written with and without
//! a registry verifies alike. Records a replay wrote (header `replay.id`) are no links of any chain: they are
//! counted and left out, so a replay never makes a chain look broken, nor hides a break.

use std::time::Duration;

use linegate_schemas::AuditEvent;
use rdkafka::Message;

use crate::decide::chain::{self, Located, Report};
use crate::decide::route::REPLAY_HEADER;
use crate::pipeline::state::{self, ReadBackError};
use crate::wire::{RegistryError, SchemaReader};
use linegate_common::kafka::KafkaConfig;

/// The verification of one topic, with the records that were not audit records.
#[derive(Debug)]
pub struct Verified {
    /// The chain report.
    pub report: Report,
    /// Partition/offset of records that did not decode, with the reason.
    pub undecodable: Vec<(i32, i64, String)>,
    /// Records written by a replay, left out of the chains.
    pub replayed: usize,
}

/// Why a topic could not be verified at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The topic could not be read.
    #[error(transparent)]
    ReadBack(#[from] ReadBackError),
    /// Its records name schema ids the registry could not be asked about.
    #[error("cannot look up the schema ids of the audit records: {0}")]
    Registry(#[from] RegistryError),
}

/// Reads all of `topic` and verifies its chains, decoding Confluent-framed records through `reader`.
/// It reads committed records only: the audit records of rounds aborted in exactly-once mode are left out,
/// and a topic written without transactions reads the same either way.
pub async fn verify_topic(
    kafka: &KafkaConfig,
    topic: &str,
    timeout: Duration,
    reader: &SchemaReader,
) -> Result<Verified, VerifyError> {
    let (kafka, name) = (kafka.clone(), topic.to_owned());
    let records =
        tokio::task::spawn_blocking(move || state::read_all(&kafka, &name, true, timeout))
            .await
            .expect("the topic reader does not panic")?;
    reader
        .learn(records.iter().map(|r| r.payload().unwrap_or_default()))
        .await?;
    let mut located = Vec::with_capacity(records.len());
    let mut undecodable = Vec::new();
    let mut replayed = 0;
    for record in records {
        if is_replayed(&record) {
            replayed += 1;
            continue;
        }
        let value = record.payload().unwrap_or_default();
        match reader.decode::<AuditEvent>(value) {
            Ok(audit) => located.push(Located {
                partition: record.partition(),
                offset: record.offset(),
                audit,
            }),
            Err(error) => {
                undecodable.push((record.partition(), record.offset(), error.to_string()));
            }
        }
    }
    Ok(Verified {
        report: chain::verify(located),
        undecodable,
        replayed,
    })
}

fn is_replayed(record: &rdkafka::message::OwnedMessage) -> bool {
    use rdkafka::message::Headers;
    record
        .headers()
        .is_some_and(|headers| headers.iter().any(|h| h.key == REPLAY_HEADER))
}
