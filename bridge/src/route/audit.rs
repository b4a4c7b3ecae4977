//! The audit record: one per input record, accepted or rejected, so that what the bridge did with every
//! record it read can be proven later (adr-004's audit trail).

use linegate_schemas::{AuditEvent, AuditOutcome, EdgeEvent, SchemaError, SCHEMA_VERSION};
use sha2::{Digest, Sha256};

use super::{derived_id, event_headers, InputRecord, Output, RouteContext};

/// The audit record of `record`. Its id is UUID v5 of `audit:<topic>:<partition>:<offset>`: one input
/// position, one audit id, however often the record is handled. Subject fields are filled from `event`
/// when the input decoded; `payload_sha256` identifies the exact bytes that were judged.
pub(super) fn output(
    record: &InputRecord<'_>,
    ctx: &RouteContext<'_>,
    event: Option<&EdgeEvent>,
    outcome: AuditOutcome,
    reason: Option<String>,
    outputs: Vec<String>,
) -> Result<Output, SchemaError> {
    let audit = AuditEvent {
        event_id: derived_id(&format!(
            "audit:{}:{}:{}",
            record.topic, record.partition, record.offset
        )),
        timestamp: ctx.now_ms,
        source_service: ctx.service_name.to_owned(),
        schema_version: SCHEMA_VERSION.to_owned(),
        outcome,
        subject_event_id: event.map(|e| e.event_id.clone()),
        event_type: event.map(|e| e.event_type.clone()),
        station_id: event.map(|e| e.station_id.clone()),
        seq: event.map(|e| e.seq),
        reason,
        source_topic: record.topic.to_owned(),
        source_partition: record.partition,
        source_offset: record.offset,
        payload_sha256: hex::encode(Sha256::digest(record.value)),
        outputs,
    };
    let value = linegate_schemas::encode(&audit)?;
    let headers = event_headers(event, &audit.event_id);
    Ok(Output {
        topic: ctx.topics.audit.clone(),
        key: Some(audit.event_id.into_bytes()),
        value,
        headers,
    })
}
