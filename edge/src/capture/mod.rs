//! From station input to an [`EdgeEvent`] ready for the outbox.
//!
//! What is captured here is final: the event id and capture time are fixed before the outbox commit, so a
//! resend from the outbox is byte-for-byte the same event.

mod document;

pub use document::{parse_document, DocumentError};

use linegate_schemas::{EdgeEvent, EdgePayload, InspectionEvent, SCHEMA_VERSION};

/// `source_service` of every event an edge produces.
pub const SOURCE_SERVICE: &str = "linegate-edge";

/// Wraps a station's inspection event in the adr-004 envelope. `seq` stays 0 until the outbox assigns it at
/// commit time; the envelope shares the payload's event id so that one id follows the result everywhere.
pub fn envelope(
    station_id: &str,
    event: InspectionEvent,
    trace_id: Option<String>,
    captured_at_ms: i64,
) -> EdgeEvent {
    EdgeEvent {
        event_type: event.event_type.symbol().to_owned(),
        event_id: event.event_id.clone(),
        timestamp: captured_at_ms,
        trace_id: trace_id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
        source_service: SOURCE_SERVICE.to_owned(),
        schema_version: SCHEMA_VERSION.to_owned(),
        station_id: station_id.to_owned(),
        seq: 0,
        payload: EdgePayload::Inspection(event),
    }
}

pub use linegate_common::process::now_ms;
