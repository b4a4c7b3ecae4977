//! From one input record to its outputs: the bridge's whole decision, with no I/O.
//!
//! An input is either accepted (its InspectionEvent to lifecycle, a QualityEvent for a completed inspection,
//! an AuditEvent) or rejected (the record unchanged to the DLQ with headers saying why, and an AuditEvent).
//! Every input yields exactly one audit record. Output ids are UUID v5 of input identities, so the same
//! input always yields byte-identical outputs: a round repeated after a crash is recognisable downstream.
//!
//! `validate` holds the rules, `quality` the verdict, `audit` and `dlq` the records about the input; this
//! file wires them and builds the lifecycle record. Nothing here knows about Kafka clients or clocks: the
//! caller passes the handling time in [`RouteContext`].

mod audit;
pub mod bound;
mod dlq;
mod quality;
mod validate;

use std::borrow::Cow;

use linegate_schemas::{AuditOutcome, EdgeEvent, EdgePayload, InspectionEventType, SchemaError};

use crate::config::{QualityConfig, Routes, TopicNames};
pub use crate::decide::output::{Output, ID_NAMESPACE};
use crate::decide::window::Observation;
pub use audit::{as_replayed, Link, REPLAY_HEADER};
pub use dlq::{carry_attempt, REDRIVE_OF};
pub use quality::judge;
pub use validate::{Problem, Rejection};

/// One consumed record, borrowed from the consumer, so that routing needs no Kafka type.
#[derive(Debug, Clone, Copy)]
pub struct InputRecord<'a> {
    /// Topic it was read from.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Record key (the edge sets the station id).
    pub key: Option<&'a [u8]>,
    /// Record value (an empty slice for a tombstone).
    pub value: &'a [u8],
}

/// What routing needs besides the record: names, thresholds, and the clock (passed in so tests are exact).
#[derive(Debug, Clone, Copy)]
pub struct RouteContext<'a> {
    /// Output topic names.
    pub topics: &'a TopicNames,
    /// Where accepted events go, by family or event type.
    pub routes: &'a Routes,
    /// Quality thresholds.
    pub quality: &'a QualityConfig,
    /// `source_service` of outputs.
    pub service_name: &'a str,
    /// Handling time, epoch milliseconds: the audit timestamp, the DLQ's `first.seen.ms`, and the clock the
    /// inspections' event times are bounded against (`[quality] event_time_*`).
    pub now_ms: i64,
}

/// The outputs of one input and what became of it.
#[derive(Debug)]
pub struct Routed {
    /// Records to produce, in order; the audit record is last.
    pub outputs: Vec<Output>,
    /// Why the input was rejected, if it was; the pipeline logs and counts it.
    pub rejection: Option<Rejection>,
    /// An accepted completed inspection, for the quality windows.
    pub window_input: Option<Observation>,
    /// Chain hash of the audit record among `outputs` (None only if it could not be encoded).
    pub audit_hash: Option<String>,
}

/// Decides what one input record becomes, as the first record of its audit chain. Never fails: what cannot
/// be accepted is rejected with a reason.
pub fn route(record: &InputRecord<'_>, ctx: &RouteContext<'_>) -> Routed {
    let decoded = linegate_schemas::decode::<EdgeEvent>(record.value);
    route_decoded(record, ctx, decoded, Link::default())
}

/// [`route`] of an input the caller already decoded (for dedup), linked into its audit chain by `link`.
pub fn route_decoded(
    record: &InputRecord<'_>,
    ctx: &RouteContext<'_>,
    decoded: Result<EdgeEvent, SchemaError>,
    link: Link<'_>,
) -> Routed {
    if record.value.len() > bound::INPUT_MAX {
        let rejection = Rejection::TooLarge {
            bytes: record.value.len(),
            max: bound::INPUT_MAX,
        };
        return reject(record, ctx, decoded.ok().as_ref(), rejection, link);
    }
    let event = match decoded {
        Ok(event) => event,
        Err(error) => return reject(record, ctx, None, Rejection::Decode(error), link),
    };
    if let Err(rejection) =
        validate::validate(&event, record.key, &ctx.quality.event_times(ctx.now_ms))
    {
        return reject(record, ctx, Some(&event), rejection, link);
    }
    match accept(record, ctx, &event, link) {
        Ok((outputs, hash)) => Routed {
            outputs,
            rejection: None,
            window_input: observation(ctx, &event),
            audit_hash: Some(hash),
        },
        Err(rejection) => reject(record, ctx, Some(&event), rejection, link),
    }
}

/// The only output of an edge's resend of an already handled (station, seq): a DUPLICATE audit record,
/// with its chain hash. Nothing else is written for it.
pub fn duplicate(
    record: &InputRecord<'_>,
    ctx: &RouteContext<'_>,
    event: &EdgeEvent,
    last_seq: i64,
    link: Link<'_>,
) -> Result<(Output, String), SchemaError> {
    let reason = format!(
        "station {} seq {} was already handled (the station's last seq is {last_seq}); an edge sent it again",
        event.station_id, event.seq
    );
    audit::output(
        record,
        ctx,
        Some(event),
        AuditOutcome::Duplicate,
        Some(reason),
        Vec::new(),
        link,
    )
}

/// The GAP audit record reported before an input whose seq skips `link.gap`, with its chain hash.
pub fn gap(
    record: &InputRecord<'_>,
    ctx: &RouteContext<'_>,
    event: &EdgeEvent,
    link: Link<'_>,
) -> Result<(Output, String), SchemaError> {
    let (first, last) = link.gap.unwrap_or_default();
    let reason = format!(
        "station {} seqs {first}..={last} never arrived before seq {}",
        event.station_id, event.seq
    );
    audit::output(
        record,
        ctx,
        Some(event),
        AuditOutcome::Gap,
        Some(reason),
        Vec::new(),
        link,
    )
}

/// A record from an outbox epoch its station replaced: a dead letter (it may be a real result the old
/// outbox sent late, or a second PC with the same station id) and a REJECTED audit record, linked by `link`.
pub fn stale(
    record: &InputRecord<'_>,
    ctx: &RouteContext<'_>,
    event: &EdgeEvent,
    link: Link<'_>,
) -> Routed {
    let rejection = Rejection::StaleEpoch {
        epoch: bound::text(&event.outbox_epoch, bound::FIELD_MAX),
        station_id: bound::text(&event.station_id, bound::FIELD_MAX),
        seq: event.seq,
    };
    reject(record, ctx, Some(event), rejection, link)
}

fn accept(
    record: &InputRecord<'_>,
    ctx: &RouteContext<'_>,
    event: &EdgeEvent,
    link: Link<'_>,
) -> Result<(Vec<Output>, String), Rejection> {
    let mut outputs = Vec::with_capacity(3);
    for topic in ctx.routes.topics_for(&event.payload) {
        outputs.push(routed_output(event, topic)?);
    }
    if let EdgePayload::Inspection(inspection) = &event.payload {
        outputs.extend(quality::outputs(ctx, event, inspection)?);
    }
    let written = outputs.iter().map(|o| o.topic.clone()).collect();
    let (audit, hash) = audit::output(
        record,
        ctx,
        Some(event),
        AuditOutcome::Accepted,
        None,
        written,
        link,
    )
    .map_err(|source| Rejection::Encode {
        output: "audit",
        source,
    })?;
    outputs.push(audit);
    Ok((outputs, hash))
}

fn reject(
    record: &InputRecord<'_>,
    ctx: &RouteContext<'_>,
    event: Option<&EdgeEvent>,
    rejection: Rejection,
    link: Link<'_>,
) -> Routed {
    let reason = bound::text(&rejection.to_string(), bound::REASON_MAX);
    let mut outputs = vec![dlq::output(record, ctx, event, &rejection, &reason)];
    let audit = audit::output(
        record,
        ctx,
        event,
        AuditOutcome::Rejected,
        Some(reason),
        vec![ctx.topics.dlq.clone()],
        link,
    );
    // The audit record of a rejection holds only strings and numbers built here, so it always encodes; if a
    // broken build ever failed to, the dead letter above still keeps the input.
    let (audit, audit_hash) = audit.ok().unzip();
    outputs.extend(audit);
    Routed {
        outputs,
        rejection: Some(rejection),
        window_input: None,
        audit_hash,
    }
}

/// What the quality windows need of an accepted completed inspection; `None` for anything else.
fn observation(ctx: &RouteContext<'_>, event: &EdgeEvent) -> Option<Observation> {
    let EdgePayload::Inspection(inspection) = &event.payload else {
        return None;
    };
    if inspection.event_type != InspectionEventType::InspectionCompleted {
        return None;
    }
    let threshold = ctx.quality.threshold_for(&inspection.inspection_type);
    let (verdict, _) = judge(
        inspection.quality_score,
        threshold,
        &inspection.inspection_type,
    );
    Some(Observation {
        station_id: event.station_id.clone(),
        seq: event.seq,
        inspection_type: inspection.inspection_type.clone(),
        event_time: inspection.timestamp,
        score: inspection.quality_score,
        failed: verdict == linegate_schemas::QualityVerdict::Fail,
        trace_id: event.trace_id.clone(),
    })
}

/// The accepted payload re-encoded on its own for `topic`, keyed so that related events stay in one
/// partition and in order: an inspection's steps by inspection, a lot's milestones by batch, an inference by
/// its inspection, a system report by station. The output's id is the event's own.
fn routed_output(event: &EdgeEvent, topic: &str) -> Result<Output, Rejection> {
    let (key, value) = match &event.payload {
        EdgePayload::Inspection(e) => (&e.inspection_id, linegate_schemas::encode(e)),
        EdgePayload::Manufacturing(e) => (&e.batch_id, linegate_schemas::encode(e)),
        EdgePayload::Inference(e) => (&e.inspection_id, linegate_schemas::encode(e)),
        EdgePayload::System(e) => (&event.station_id, linegate_schemas::encode(e)),
    };
    let value = value.map_err(|source| Rejection::Encode {
        output: event.payload.family(),
        source,
    })?;
    Ok(Output {
        topic: topic.to_owned(),
        key: Some(key.clone().into_bytes()),
        value,
        headers: event_headers(Some(event), event.payload.event_id()),
    })
}

/// UUID v5 of `name` in [`ID_NAMESPACE`], hyphenated.
fn derived_id(name: &str) -> String {
    uuid::Uuid::new_v5(&ID_NAMESPACE, name.as_bytes())
        .hyphenated()
        .to_string()
}

/// Headers every output carries: where it came from (when the input decoded), and adr-004's
/// `idempotency-key`, which is the output's own id, so a consumer can drop a repeat without decoding.
fn event_headers(event: Option<&EdgeEvent>, output_id: &str) -> Vec<(Cow<'static, str>, Vec<u8>)> {
    let mut headers = Vec::with_capacity(5);
    // Cut to FIELD_MAX: a rejected input's fields are as sent (an accepted one's are validated, shorter).
    let field = |value: &str| bound::text(value, bound::FIELD_MAX).into_bytes();
    if let Some(event) = event {
        headers.push(("station_id".into(), field(&event.station_id)));
        headers.push(("seq".into(), event.seq.to_string().into_bytes()));
        headers.push(("source.event_id".into(), field(&event.event_id)));
    }
    headers.push(("idempotency-key".into(), output_id.as_bytes().to_vec()));
    if let Some(event) = event {
        headers.push(("trace_id".into(), field(&event.trace_id)));
    }
    headers
}

#[cfg(test)]
mod tests;
