//! Building each output record: value, key and headers.

use linegate_schemas::{
    AuditEvent, AuditOutcome, EdgeEvent, InspectionEvent, QualityEvent, QualityVerdict,
    SCHEMA_VERSION,
};
use sha2::{Digest, Sha256};

use super::{InputRecord, Output, Rejection, RouteContext, ID_NAMESPACE};

fn derived_id(name: &str) -> String {
    uuid::Uuid::new_v5(&ID_NAMESPACE, name.as_bytes())
        .hyphenated()
        .to_string()
}

/// Headers every output of an accepted event carries: where it came from, and adr-004's idempotency key.
fn event_headers(event: &EdgeEvent, output_id: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        ("station_id".into(), event.station_id.clone().into_bytes()),
        ("seq".into(), event.seq.to_string().into_bytes()),
        (
            "source.event_id".into(),
            event.event_id.clone().into_bytes(),
        ),
        ("idempotency-key".into(), output_id.as_bytes().to_vec()),
        ("trace_id".into(), event.trace_id.clone().into_bytes()),
    ]
}

pub(super) fn lifecycle(
    ctx: &RouteContext<'_>,
    event: &EdgeEvent,
    inspection: &InspectionEvent,
) -> Result<Output, Rejection> {
    let value =
        linegate_schemas::encode(inspection).map_err(|e| Rejection::encode("lifecycle", e))?;
    Ok(Output {
        topic: ctx.topics.lifecycle.clone(),
        key: Some(inspection.inspection_id.clone().into_bytes()),
        value,
        headers: event_headers(event, &inspection.event_id),
    })
}

pub(super) fn quality(
    ctx: &RouteContext<'_>,
    event: &EdgeEvent,
    inspection: &InspectionEvent,
) -> Result<Output, Rejection> {
    let threshold = ctx.quality.threshold_for(&inspection.inspection_type);
    let (verdict, reason) = match inspection.quality_score {
        Some(score) if score >= threshold => (
            QualityVerdict::Pass,
            format!(
                "score {score} >= threshold {threshold} for {}",
                inspection.inspection_type
            ),
        ),
        Some(score) => (
            QualityVerdict::Fail,
            format!(
                "score {score} < threshold {threshold} for {}",
                inspection.inspection_type
            ),
        ),
        None => (
            QualityVerdict::Fail,
            "no quality_score reported for a completed inspection".to_owned(),
        ),
    };
    let quality = QualityEvent {
        event_id: derived_id(&format!("quality:{}", event.event_id)),
        event_type: "QUALITY_VERDICT".to_owned(),
        timestamp: inspection.timestamp,
        trace_id: event.trace_id.clone(),
        source_service: ctx.service_name.to_owned(),
        schema_version: SCHEMA_VERSION.to_owned(),
        source_event_id: event.event_id.clone(),
        station_id: event.station_id.clone(),
        seq: event.seq,
        inspection_id: inspection.inspection_id.clone(),
        batch_id: inspection.batch_id.clone(),
        chip_id: inspection.chip_id.clone(),
        inspection_type: inspection.inspection_type.clone(),
        quality_score: inspection.quality_score,
        threshold,
        verdict,
        defect_count: i32::try_from(inspection.defects.len()).unwrap_or(i32::MAX),
        reason,
    };
    let value = linegate_schemas::encode(&quality).map_err(|e| Rejection::encode("quality", e))?;
    Ok(Output {
        topic: ctx.topics.quality.clone(),
        key: Some(event.station_id.clone().into_bytes()),
        value,
        headers: event_headers(event, &quality.event_id),
    })
}

pub(super) fn audit(
    record: &InputRecord<'_>,
    ctx: &RouteContext<'_>,
    event: Option<&EdgeEvent>,
    outcome: AuditOutcome,
    reason: Option<String>,
    outputs: Vec<String>,
) -> Result<Output, Rejection> {
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
    let value = linegate_schemas::encode(&audit).map_err(|e| Rejection::encode("audit", e))?;
    let mut headers = match event {
        Some(event) => event_headers(event, &audit.event_id),
        None => vec![(
            "idempotency-key".into(),
            audit.event_id.clone().into_bytes(),
        )],
    };
    headers.push((
        "source.offset".into(),
        record.offset.to_string().into_bytes(),
    ));
    Ok(Output {
        topic: ctx.topics.audit.clone(),
        key: Some(audit.event_id.into_bytes()),
        value,
        headers,
    })
}

pub(super) fn dead_letter(
    record: &InputRecord<'_>,
    ctx: &RouteContext<'_>,
    rejection: &Rejection,
) -> Output {
    let text = |s: &str| s.as_bytes().to_vec();
    Output {
        topic: ctx.topics.dlq.clone(),
        key: record.key.map(<[u8]>::to_vec),
        value: record.value.to_vec(),
        headers: vec![
            ("error.class".into(), text(rejection.class)),
            ("error.message".into(), text(&rejection.message)),
            ("source.topic".into(), text(record.topic)),
            (
                "source.partition".into(),
                text(&record.partition.to_string()),
            ),
            ("source.offset".into(), text(&record.offset.to_string())),
            ("first.seen.ms".into(), text(&ctx.now_ms.to_string())),
            ("attempt".into(), text("1")),
        ],
    }
}
