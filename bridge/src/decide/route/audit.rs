//! The audit record: one per input record, accepted or rejected, so that what the bridge did with every
//! record it read can be proven later (adr-004's audit trail).

use linegate_schemas::{AuditEvent, AuditOutcome, EdgeEvent, SchemaError, SCHEMA_VERSION};
use sha2::{Digest, Sha256};

use super::{bound, derived_id, event_headers, InputRecord, Output, RouteContext};
use crate::decide::chain;

/// Most `system.*` detail headers copied onto an audit record (a system event's details come from the edge).
const SYSTEM_DETAILS_MAX: usize = 32;

/// Where an audit record sits in its chain, and the gap it reports if it is a GAP record.
#[derive(Debug, Clone, Copy, Default)]
pub struct Link<'a> {
    /// Chain hash of the previous audit record of the chain; None at the chain's start.
    pub prev: Option<&'a str>,
    /// For a GAP record: the missing seqs, first and last.
    pub gap: Option<(i64, i64)>,
}

/// The audit record of `record`. Its id is UUID v5 of `audit:<topic>:<partition>:<offset>`: one input
/// position, one audit id, however often the record is handled. Subject fields are filled from `event`
/// when the input decoded; `payload_sha256` identifies the exact bytes that were judged. A GAP record has the
/// id of `audit-gap:<topic>:<partition>:<offset>`, as the input also gets its own audit record. Returns the
/// record and its chain hash. The audit record of a system event also carries the event's message and
/// details as `system.*` headers.
pub(super) fn output(
    record: &InputRecord<'_>,
    ctx: &RouteContext<'_>,
    event: Option<&EdgeEvent>,
    outcome: AuditOutcome,
    reason: Option<String>,
    outputs: Vec<String>,
    link: Link<'_>,
) -> Result<(Output, String), SchemaError> {
    let prefix = match outcome {
        AuditOutcome::Gap => "audit-gap",
        _ => "audit",
    };
    let audit = AuditEvent {
        event_id: derived_id(&format!(
            "{prefix}:{}:{}:{}",
            record.topic, record.partition, record.offset
        )),
        timestamp: ctx.now_ms,
        source_service: ctx.service_name.to_owned(),
        schema_version: SCHEMA_VERSION.to_owned(),
        outcome,
        subject_event_id: event.map(|e| bound::text(&e.event_id, bound::FIELD_MAX)),
        event_type: event.map(|e| bound::text(&e.event_type, bound::FIELD_MAX)),
        station_id: event.map(|e| bound::text(&e.station_id, bound::FIELD_MAX)),
        seq: event.map(|e| e.seq),
        reason,
        source_topic: record.topic.to_owned(),
        source_partition: record.partition,
        source_offset: record.offset,
        payload_sha256: hex::encode(Sha256::digest(record.value)),
        outputs,
        prev_audit_sha256: link.prev.map(str::to_owned),
        gap_first_seq: link.gap.map(|(first, _)| first),
        gap_last_seq: link.gap.map(|(_, last)| last),
    };
    let hash = chain::record_hash(&audit);
    let value = linegate_schemas::encode(&audit)?;
    let mut headers = event_headers(event, &audit.event_id);
    if let Some(linegate_schemas::EdgePayload::System(report)) = event.map(|e| &e.payload) {
        // A system event's own words (e.g. why a pushed config was refused) have no AuditEvent field; they
        // ride along as headers so the audit trail reads on its own. Headers are not part of the chain hash.
        let cut = |text: &str| bound::text(text, bound::REASON_MAX).into_bytes();
        headers.push(("system.message".into(), cut(&report.message)));
        for (key, value) in report.details.iter().take(SYSTEM_DETAILS_MAX) {
            let key = bound::text(key, bound::FIELD_MAX);
            headers.push((format!("system.{key}").into(), cut(value)));
        }
    }
    let output = Output {
        topic: ctx.topics.audit.clone(),
        key: Some(audit.event_id.into_bytes()),
        value,
        headers,
    };
    Ok((output, hash))
}

/// Header naming the replay that wrote an output (see `http::replay`). An audit record carrying it is a
/// replay's record, outside every chain: `audit verify` counts it and leaves it out.
pub const REPLAY_HEADER: &str = "replay.id";

/// Turns the audit record `output` (as [`output`] made it) into replay `replay_id`'s record of the same
/// input: its own id (UUID v5 of `audit-replay:<replay id>:<original id>`, also its key and
/// `idempotency-key`), no link, the `replay.id` header. On the compacted audit topic a record keyed like the
/// original would replace it, and the original is a link of its chain; this one sits beside it.
pub fn as_replayed(output: &mut Output, replay_id: &str) -> Result<(), SchemaError> {
    let mut audit: AuditEvent = linegate_schemas::decode(&output.value)?;
    audit.event_id = derived_id(&format!("audit-replay:{replay_id}:{}", audit.event_id));
    audit.prev_audit_sha256 = None;
    output.value = linegate_schemas::encode(&audit)?;
    output.key = Some(audit.event_id.clone().into_bytes());
    output
        .headers
        .retain(|(name, _)| name != "idempotency-key" && name != REPLAY_HEADER);
    output
        .headers
        .push(("idempotency-key".into(), audit.event_id.into_bytes()));
    output
        .headers
        .push((REPLAY_HEADER.into(), replay_id.as_bytes().to_vec()));
    Ok(())
}
