//! The quality verdict of a completed inspection: its score against the threshold of its inspection type.
//!
//! Only `INSPECTION_COMPLETED` events get a verdict; the other steps of an inspection carry no final score.
//! Any step may raise an alert (a defect of an alerting severity); a completed one also by a low score.

use linegate_schemas::{
    EdgeEvent, InspectionEvent, InspectionEventType, QualityEvent, QualityVerdict, SCHEMA_VERSION,
};

use super::{derived_id, event_headers, Output, Rejection, RouteContext};

/// `event_type` of every QualityEvent the bridge writes.
const QUALITY_EVENT_TYPE: &str = "QUALITY_VERDICT";

/// Judges a score against a threshold: PASS at or above it, FAIL below it or when no score was reported
/// (a completed inspection without a score cannot be shown to pass). The reason is for people reading the
/// quality topic, so it states the comparison.
pub fn judge(
    score: Option<f64>,
    threshold: f64,
    inspection_type: &str,
) -> (QualityVerdict, String) {
    match score {
        Some(score) if score >= threshold => (
            QualityVerdict::Pass,
            format!("score {score} >= threshold {threshold} for {inspection_type}"),
        ),
        Some(score) => (
            QualityVerdict::Fail,
            format!("score {score} < threshold {threshold} for {inspection_type}"),
        ),
        None => (
            QualityVerdict::Fail,
            "no quality_score reported for a completed inspection".to_owned(),
        ),
    }
}

/// `event_type` of an alert.
const ALERT_EVENT_TYPE: &str = "QUALITY_ALERT";

/// The quality records of one inspection step: a verdict when it completed the inspection, and an alert for
/// each rule it breaks (defects of an alerting severity on any step; a score under the type's alert limit).
pub(super) fn outputs(
    ctx: &RouteContext<'_>,
    event: &EdgeEvent,
    inspection: &InspectionEvent,
) -> Result<Vec<Output>, Rejection> {
    let completed = inspection.event_type == InspectionEventType::InspectionCompleted;
    let threshold = ctx.quality.threshold_for(&inspection.inspection_type);
    let (verdict, reason) = judge(
        inspection.quality_score,
        threshold,
        &inspection.inspection_type,
    );
    let mut out = Vec::new();
    if completed {
        out.push(record(
            ctx,
            event,
            inspection,
            QUALITY_EVENT_TYPE,
            "quality",
            verdict,
            reason,
        )?);
    }
    let rules = &ctx.quality.alerts;
    let alerting: Vec<String> = inspection
        .defects
        .iter()
        .filter(|d| rules.severities.contains(&d.severity))
        .map(|d| {
            format!(
                "{} {} at {} (confidence {})",
                d.severity, d.defect_type, d.location, d.confidence
            )
        })
        .collect();
    if !alerting.is_empty() {
        let reason = format!("defects of an alerting severity: {}", alerting.join("; "));
        out.push(record(
            ctx,
            event,
            inspection,
            ALERT_EVENT_TYPE,
            "alert:severity",
            QualityVerdict::Fail,
            reason,
        )?);
    }
    if let (true, Some(limit), Some(score)) = (
        completed,
        rules.score_below.get(&inspection.inspection_type),
        inspection.quality_score,
    ) {
        if score < *limit {
            let reason = format!(
                "score {score} is under the alert limit {limit} for {}",
                inspection.inspection_type
            );
            out.push(record(
                ctx,
                event,
                inspection,
                ALERT_EVENT_TYPE,
                "alert:score",
                QualityVerdict::Fail,
                reason,
            )?);
        }
    }
    Ok(out)
}

/// One QualityEvent about `inspection`, keyed by station so a station's records stay in order. Its id is
/// UUID v5 of `<id_kind>:<source event id>`: the same input always gets the same verdict and alert ids.
fn record(
    ctx: &RouteContext<'_>,
    event: &EdgeEvent,
    inspection: &InspectionEvent,
    event_type: &str,
    id_kind: &str,
    verdict: QualityVerdict,
    reason: String,
) -> Result<Output, Rejection> {
    let quality = QualityEvent {
        event_id: derived_id(&format!("{id_kind}:{}", event.event_id)),
        event_type: event_type.to_owned(),
        timestamp: inspection.timestamp,
        trace_id: event.trace_id.clone(),
        source_service: ctx.service_name.to_owned(),
        schema_version: SCHEMA_VERSION.to_owned(),
        source_event_id: Some(event.event_id.clone()),
        station_id: event.station_id.clone(),
        seq: Some(event.seq),
        inspection_id: Some(inspection.inspection_id.clone()),
        batch_id: Some(inspection.batch_id.clone()),
        chip_id: Some(inspection.chip_id.clone()),
        inspection_type: inspection.inspection_type.clone(),
        quality_score: inspection.quality_score,
        threshold: Some(ctx.quality.threshold_for(&inspection.inspection_type)),
        verdict: Some(verdict),
        defect_count: Some(i32::try_from(inspection.defects.len()).unwrap_or(i32::MAX)),
        reason,
        window: None,
    };
    let value = linegate_schemas::encode(&quality).map_err(|source| Rejection::Encode {
        output: "quality",
        source,
    })?;
    Ok(Output {
        topic: ctx.topics.quality.clone(),
        key: Some(event.station_id.clone().into_bytes()),
        value,
        headers: event_headers(Some(event), &quality.event_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_threshold_passes() {
        assert_eq!(
            judge(Some(0.85), 0.85, "optical"),
            (
                QualityVerdict::Pass,
                "score 0.85 >= threshold 0.85 for optical".to_owned()
            )
        );
    }

    #[test]
    fn just_below_the_threshold_fails() {
        assert_eq!(
            judge(Some(0.8499), 0.85, "optical"),
            (
                QualityVerdict::Fail,
                "score 0.8499 < threshold 0.85 for optical".to_owned()
            )
        );
    }

    #[test]
    fn a_missing_score_fails() {
        let (verdict, reason) = judge(None, 0.0, "xray");
        assert_eq!(verdict, QualityVerdict::Fail);
        assert_eq!(
            reason,
            "no quality_score reported for a completed inspection"
        );
    }
}
