//! `linegate-bridge audit verify`: reads an audit topic back from the beginning and checks every chain
//! ([`crate::chain::verify`]). Records that do not decode as AuditEvent are counted and reported: a
//! foreign record on the audit topic is itself worth knowing about.

use std::time::Duration;

use linegate_schemas::AuditEvent;
use rdkafka::Message;

use crate::chain::{self, Located, Report};
use crate::state::{self, ReadBackError};
use linegate_common::kafka::KafkaConfig;

/// The verification of one topic, with the records that were not audit records.
#[derive(Debug)]
pub struct Verified {
    /// The chain report.
    pub report: Report,
    /// Partition/offset of records that did not decode, with the reason.
    pub undecodable: Vec<(i32, i64, String)>,
}

/// Reads all of `topic` and verifies its chains. `read_committed` (exactly-once mode) leaves out the audit
/// records of aborted rounds; it must be false for topics written without transactions, because tansu 0.6.0
/// then reports a last stable offset short of the acknowledged records and the read would stop early.
pub fn verify_topic(
    kafka: &KafkaConfig,
    topic: &str,
    read_committed: bool,
    timeout: Duration,
) -> Result<Verified, ReadBackError> {
    let records = state::read_all(kafka, topic, read_committed, timeout)?;
    let mut located = Vec::with_capacity(records.len());
    let mut undecodable = Vec::new();
    for record in records {
        let value = record.payload().unwrap_or_default();
        match linegate_schemas::decode::<AuditEvent>(value) {
            Ok(audit) => located.push(Located {
                partition: record.partition(),
                offset: record.offset(),
                audit,
            }),
            Err(error) => {
                undecodable.push((record.partition(), record.offset(), error.to_string()))
            }
        }
    }
    Ok(Verified {
        report: chain::verify(located),
        undecodable,
    })
}
