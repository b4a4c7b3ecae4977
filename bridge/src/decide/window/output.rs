//! The QUALITY_WINDOW record of a closed window, for the quality topic.

use linegate_schemas::{QualityEvent, QualityWindow, SchemaError, SCHEMA_VERSION};

use super::ClosedWindow;
use crate::decide::output::{Output, ID_NAMESPACE};

/// `event_type` of a window record.
pub(super) const WINDOW_EVENT_TYPE: &str = "QUALITY_WINDOW";

/// The window record, keyed by station like the verdicts. Its id is UUID v5 of station, inspection type,
/// start and length: the same window always has the same id, however often it is emitted.
pub fn output(
    window: &ClosedWindow,
    topic: &str,
    service_name: &str,
) -> Result<Output, SchemaError> {
    let id = uuid::Uuid::new_v5(
        &ID_NAMESPACE,
        format!(
            "window:{}:{}:{}:{}",
            window.station_id,
            window.inspection_type,
            window.start,
            window.end - window.start
        )
        .as_bytes(),
    )
    .hyphenated()
    .to_string();
    let f = &window.figures;
    let reason = format!(
        "{} completed {} inspections of station {} in [{}, {}): {} failed ({:.1} %){}",
        f.count,
        window.inspection_type,
        window.station_id,
        window.start,
        window.end,
        f.fail_count,
        f.fail_rate * 100.0,
        match f.cpk {
            Some(cpk) => format!(", Cpk {cpk:.2}"),
            None => String::new(),
        }
    );
    let event = QualityEvent {
        event_id: id.clone(),
        event_type: WINDOW_EVENT_TYPE.to_owned(),
        timestamp: window.end,
        trace_id: window.trace_id.clone(),
        source_service: service_name.to_owned(),
        schema_version: SCHEMA_VERSION.to_owned(),
        source_event_id: None,
        station_id: window.station_id.clone(),
        seq: None,
        inspection_id: None,
        batch_id: None,
        chip_id: None,
        inspection_type: window.inspection_type.clone(),
        quality_score: f.mean,
        threshold: None,
        verdict: None,
        defect_count: None,
        reason,
        window: Some(QualityWindow {
            start: window.start,
            end: window.end,
            count: f.count,
            fail_count: f.fail_count,
            fail_rate: f.fail_rate,
            scored_count: f.scored,
            mean_score: f.mean,
            stddev_score: f.stddev,
            lsl: window.spec.lsl,
            usl: window.spec.usl,
            cp: f.cp,
            cpk: f.cpk,
        }),
    };
    Ok(Output {
        topic: topic.to_owned(),
        key: Some(window.station_id.clone().into_bytes()),
        value: linegate_schemas::encode(&event)?,
        headers: vec![
            ("station_id".into(), window.station_id.clone().into_bytes()),
            ("idempotency-key".into(), id.into_bytes()),
        ],
    })
}
