//! The station result document: JSON whose keys are the InspectionEvent fields.
//!
//! The edge checks shape, not meaning: a document that parses is accepted and committed, and the bridge judges
//! its values (ranges, consistency) centrally, where a rejected record lands in the dead-letter topic. Unknown
//! keys are errors rather than silently dropped data.

use std::collections::BTreeMap;

use linegate_schemas::{Defect, InspectionEvent, InspectionEventType};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Why a payload is not a station result document; the message names the field and position.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Not JSON, or a field is missing, unknown or of the wrong type.
    #[error("not a station result document: {0}")]
    Json(#[from] serde_json::Error),
    /// `timestamp` is neither RFC 3339 nor epoch milliseconds.
    #[error("field `timestamp`: `{0}` is neither RFC 3339 (2026-01-20T10:30:00.000Z) nor epoch milliseconds")]
    Timestamp(String),
    /// The payload is not CBOR.
    #[error("not CBOR: {0}")]
    Cbor(String),
    /// A mapped JSON pointer finds nothing.
    #[error("mapping: JSON pointer {pointer} (for {target}) finds nothing in the payload")]
    Mapping {
        /// Document key.
        target: String,
        /// The pointer.
        pointer: String,
    },
    /// `event_id` is present but not a UUID.
    #[error("field `event_id`: `{0}` is not a UUID")]
    EventId(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StationDocument {
    event_type: InspectionEventType,
    #[serde(default)]
    event_id: Option<String>,
    timestamp: Timestamp,
    inspection_id: String,
    batch_id: String,
    chip_id: String,
    inspection_type: String,
    status: String,
    #[serde(default)]
    quality_score: Option<f64>,
    #[serde(default)]
    defects: Vec<Defect>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    trace_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Timestamp {
    EpochMillis(i64),
    Text(String),
}

/// Parses a station result document into its InspectionEvent and optional trace id. A document without
/// `event_id` gets a fresh UUID v4 here, before the outbox commit, so the id is stable from then on.
pub fn parse_document(payload: &[u8]) -> Result<(InspectionEvent, Option<String>), DocumentError> {
    let doc: StationDocument = serde_json::from_slice(payload)?;
    from_document(doc)
}

/// [`parse_document`] of an already decoded value (CBOR, or a mapped payload).
pub fn parse_value(
    value: serde_json::Value,
) -> Result<(InspectionEvent, Option<String>), DocumentError> {
    from_document(serde_json::from_value(value)?)
}

fn from_document(doc: StationDocument) -> Result<(InspectionEvent, Option<String>), DocumentError> {
    let timestamp = match doc.timestamp {
        Timestamp::EpochMillis(ms) => ms,
        Timestamp::Text(text) => parse_rfc3339_ms(&text).ok_or(DocumentError::Timestamp(text))?,
    };
    let event_id = match doc.event_id {
        Some(id) => uuid::Uuid::parse_str(&id)
            .map_err(|_| DocumentError::EventId(id.clone()))?
            .hyphenated()
            .to_string(),
        None => uuid::Uuid::new_v4().hyphenated().to_string(),
    };
    let event = InspectionEvent {
        event_id,
        event_type: doc.event_type,
        timestamp,
        inspection_id: doc.inspection_id,
        batch_id: doc.batch_id,
        chip_id: doc.chip_id,
        inspection_type: doc.inspection_type,
        status: doc.status,
        quality_score: doc.quality_score,
        defects: doc.defects,
        metadata: doc.metadata,
    };
    Ok((event, doc.trace_id))
}

fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPLETED: &str = r#"{
        "event_type": "INSPECTION_COMPLETED",
        "event_id": "7F3C2B1A-0000-4000-8000-000000000001",
        "timestamp": "2026-01-20T10:30:00.250Z",
        "inspection_id": "insp-1", "batch_id": "B-7", "chip_id": "C-42",
        "inspection_type": "optical", "status": "PASSED", "quality_score": 0.93,
        "defects": [{"defect_type": "scratch", "severity": "LOW", "confidence": 0.7, "location": "x=3,y=9"}],
        "metadata": {"recipe": "R7"}, "trace_id": "t-1"
    }"#;

    #[test]
    fn full_document_maps_every_field() {
        let (event, trace) = parse_document(COMPLETED.as_bytes()).unwrap();
        assert_eq!(event.event_id, "7f3c2b1a-0000-4000-8000-000000000001");
        assert_eq!(event.event_type, InspectionEventType::InspectionCompleted);
        assert_eq!(event.timestamp, 1_768_905_000_250);
        assert_eq!(
            (event.inspection_id.as_str(), event.chip_id.as_str()),
            ("insp-1", "C-42")
        );
        assert_eq!(event.quality_score, Some(0.93));
        assert_eq!(event.defects[0].location, "x=3,y=9");
        assert_eq!(event.metadata["recipe"], "R7");
        assert_eq!(trace.as_deref(), Some("t-1"));
    }

    #[test]
    fn epoch_millis_timestamp_and_missing_optionals_are_accepted() {
        let doc = r#"{"event_type":"INSPECTION_CREATED","timestamp":1768905000250,"inspection_id":"i",
            "batch_id":"b","chip_id":"c","inspection_type":"xray","status":"CREATED"}"#;
        let (event, trace) = parse_document(doc.as_bytes()).unwrap();
        assert_eq!(event.timestamp, 1_768_905_000_250);
        assert!(uuid::Uuid::parse_str(&event.event_id).is_ok());
        assert_eq!(
            (event.quality_score, event.defects.len(), trace),
            (None, 0, None)
        );
    }

    #[test]
    fn missing_field_is_named() {
        let err =
            parse_document(br#"{"event_type":"INSPECTION_CREATED","timestamp":1}"#).unwrap_err();
        assert!(
            err.to_string().contains("missing field `inspection_id`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_field_is_named_not_dropped() {
        let doc = COMPLETED.replace("\"trace_id\"", "\"operator\": \"x\", \"trace_id\"");
        let err = parse_document(doc.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `operator`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_event_type_is_named() {
        let doc = COMPLETED.replace("INSPECTION_COMPLETED", "INSPECTION_EXPLODED");
        let err = parse_document(doc.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("INSPECTION_EXPLODED"), "{err}");
    }

    #[test]
    fn bad_timestamp_and_bad_event_id_are_named() {
        let doc = COMPLETED.replace("2026-01-20T10:30:00.250Z", "yesterday");
        assert!(parse_document(doc.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("`yesterday`"));
        let doc = COMPLETED.replace("7F3C2B1A-0000-4000-8000-000000000001", "42");
        assert!(parse_document(doc.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("`42` is not a UUID"));
    }

    #[test]
    fn not_json_is_an_error() {
        assert!(parse_document(b"{not json").is_err());
    }
}
