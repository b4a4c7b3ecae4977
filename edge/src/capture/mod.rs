//! From station input to an [`EdgeEvent`] ready for the outbox.
//!
//! What is captured here is final: the event id and capture time are fixed before the outbox commit, so a
//! resend from the outbox is byte-for-byte the same event.

mod document;
mod payload;

pub use document::{parse_document, parse_value, DocumentError};
pub use linegate_station_config::mqtt::{PayloadFormat, MAPPABLE};
pub use payload::PayloadReader;

use std::collections::BTreeMap;

use linegate_schemas::{
    EdgeEvent, EdgePayload, InspectionEvent, SystemEvent, SystemEventType, SCHEMA_VERSION,
};

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
    wrap(
        station_id,
        EdgePayload::Inspection(event),
        trace_id,
        captured_at_ms,
    )
}

/// Wraps any payload in the adr-004 envelope (see [`envelope`]).
pub fn wrap(
    station_id: &str,
    payload: EdgePayload,
    trace_id: Option<String>,
    captured_at_ms: i64,
) -> EdgeEvent {
    EdgeEvent {
        event_type: payload.event_type_symbol().to_owned(),
        event_id: payload.event_id().to_owned(),
        timestamp: captured_at_ms,
        trace_id: trace_id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
        source_service: SOURCE_SERVICE.to_owned(),
        schema_version: SCHEMA_VERSION.to_owned(),
        station_id: station_id.to_owned(),
        seq: 0,
        outbox_epoch: String::new(),
        payload,
    }
}

/// A report about the agent or its station (results lost at a PLC, a config applied or refused), ready for
/// the outbox, so that it travels to Kafka in order with the results and reaches `audit.events`.
///
/// `event_id` should be derived from what is reported (UUID v5) when the same report may be made twice, e.g.
/// after a crash, so the outbox's event-id dedup stores it once; `None` draws a random id.
pub fn system_event(
    station_id: &str,
    event_type: SystemEventType,
    component: &str,
    message: String,
    details: BTreeMap<String, String>,
    event_id: Option<uuid::Uuid>,
) -> EdgeEvent {
    let now = now_ms();
    let report = SystemEvent {
        event_id: event_id
            .unwrap_or_else(uuid::Uuid::new_v4)
            .hyphenated()
            .to_string(),
        event_type,
        timestamp: now,
        component: component.to_owned(),
        message,
        details,
    };
    wrap(station_id, EdgePayload::System(report), None, now)
}

pub use linegate_common::process::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_system_event_shares_its_id_and_type_with_the_envelope_and_encodes() {
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"lost:7:10");
        let event = system_event(
            "st-01",
            SystemEventType::ResultsLost,
            "modbus:press-1",
            "2 results were lost at the station".into(),
            BTreeMap::from([("first_lost".into(), "8".into())]),
            Some(id),
        );
        assert_eq!(event.event_type, "RESULTS_LOST");
        assert_eq!(event.event_id, id.hyphenated().to_string());
        assert_eq!(event.payload.event_id(), event.event_id);
        let back: EdgeEvent =
            linegate_schemas::decode(&linegate_schemas::encode(&event).unwrap()).unwrap();
        assert_eq!(back, event);
    }
}
