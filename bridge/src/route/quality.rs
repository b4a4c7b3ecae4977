//! The quality verdict of a completed inspection: its score against the threshold of its inspection type.
//!
//! Only `INSPECTION_COMPLETED` events get a verdict (the caller decides that); the other steps of an
//! inspection carry no final score.

use linegate_schemas::{EdgeEvent, InspectionEvent, QualityEvent, QualityVerdict, SCHEMA_VERSION};

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

/// The QualityEvent of a completed inspection, keyed by station so a station's verdicts stay in order.
/// Its id is UUID v5 of `quality:<source event id>`: the same input always gets the same verdict id.
pub(super) fn output(
    ctx: &RouteContext<'_>,
    event: &EdgeEvent,
    inspection: &InspectionEvent,
) -> Result<Output, Rejection> {
    let threshold = ctx.quality.threshold_for(&inspection.inspection_type);
    let (verdict, reason) = judge(
        inspection.quality_score,
        threshold,
        &inspection.inspection_type,
    );
    let quality = QualityEvent {
        event_id: derived_id(&format!("quality:{}", event.event_id)),
        event_type: QUALITY_EVENT_TYPE.to_owned(),
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
