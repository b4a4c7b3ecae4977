//! What makes an EdgeEvent acceptable: ids, identity, ranges. Each failure says what and where.

use linegate_schemas::{EdgeEvent, EdgePayload, SchemaError};

/// Why an input was rejected: its class (a DLQ header) and a message an operator can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// `decode` (not a readable EdgeEvent) or `validation` (readable, but wrong) or `encode`.
    pub class: &'static str,
    /// What is wrong, naming the field and the event.
    pub message: String,
}

impl Rejection {
    pub(super) fn decode(error: SchemaError) -> Self {
        Self {
            class: "decode",
            message: format!("not a readable EdgeEvent: {error}"),
        }
    }

    fn invalid(event: &EdgeEvent, what: String) -> Self {
        Self {
            class: "validation",
            message: format!(
                "{what} (event {}, station {}, seq {})",
                event.event_id, event.station_id, event.seq
            ),
        }
    }

    pub(super) fn encode(what: &str, error: SchemaError) -> Self {
        Self {
            class: "encode",
            message: format!("cannot encode the {what} output: {error}"),
        }
    }
}

/// Checks an event; `key` is the record key, which the edge sets to the station id.
pub(super) fn validate(event: &EdgeEvent, key: Option<&[u8]>) -> Result<(), Rejection> {
    let bad = |what: String| Err(Rejection::invalid(event, what));
    let EdgePayload::Inspection(inspection) = &event.payload;
    if uuid::Uuid::parse_str(&event.event_id).is_err() {
        return bad(format!("event_id `{}` is not a UUID", event.event_id));
    }
    if inspection.event_id != event.event_id {
        return bad(format!(
            "payload event_id `{}` differs from the envelope's",
            inspection.event_id
        ));
    }
    if inspection.event_type.symbol() != event.event_type {
        return bad(format!(
            "envelope event_type `{}` differs from the payload's `{}`",
            event.event_type,
            inspection.event_type.symbol()
        ));
    }
    if event.station_id.is_empty() {
        return bad("station_id is empty".to_owned());
    }
    if let Some(key) = key {
        if key != event.station_id.as_bytes() {
            return bad(format!(
                "record key `{}` is not the station_id",
                String::from_utf8_lossy(key)
            ));
        }
    }
    if event.seq < 1 {
        return bad(format!(
            "seq {} is not a positive outbox sequence number",
            event.seq
        ));
    }
    for (field, value) in [
        ("inspection_id", &inspection.inspection_id),
        ("chip_id", &inspection.chip_id),
    ] {
        if value.trim().is_empty() {
            return bad(format!("{field} is empty"));
        }
    }
    if let Some(score) = inspection.quality_score {
        if !score.is_finite() || !(0.0..=1.0).contains(&score) {
            return bad(format!("quality_score {score} is outside 0..1"));
        }
    }
    for (index, defect) in inspection.defects.iter().enumerate() {
        if !defect.confidence.is_finite() || !(0.0..=1.0).contains(&defect.confidence) {
            return bad(format!(
                "defects[{index}].confidence {} is outside 0..1",
                defect.confidence
            ));
        }
        if !matches!(
            defect.severity.as_str(),
            "LOW" | "MEDIUM" | "HIGH" | "CRITICAL"
        ) {
            return bad(format!(
                "defects[{index}].severity `{}` is not LOW, MEDIUM, HIGH or CRITICAL",
                defect.severity
            ));
        }
    }
    Ok(())
}
