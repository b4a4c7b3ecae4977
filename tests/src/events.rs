//! Edge events built straight for the ingest topic, for the tests that drive the bridge without an edge.

use std::collections::BTreeMap;

use linegate_schemas::{EdgeEvent, EdgePayload, InspectionEvent, InspectionEventType};

/// The envelope an edge puts around `payload` as event `seq` of `station`, sent at `timestamp` (epoch ms).
/// Event type and id are the payload's own, as the edge copies them.
pub fn edge_event(station: &str, seq: i64, timestamp: i64, payload: EdgePayload) -> EdgeEvent {
    EdgeEvent {
        event_type: payload.event_type_symbol().to_owned(),
        event_id: payload.event_id().to_owned(),
        timestamp,
        trace_id: format!("trace-{station}-{seq}"),
        source_service: "linegate-edge".to_owned(),
        schema_version: linegate_schemas::SCHEMA_VERSION.to_owned(),
        station_id: station.to_owned(),
        seq,
        outbox_epoch: String::new(),
        payload,
    }
}

/// Event `seq` of `station`: an inspection of lot `batch_id` started, with a fresh event id; inspection and
/// chip ids derive from station and seq. For the tests that need many distinct, valid inputs.
pub fn inspection_started(station: &str, seq: i64, batch_id: &str) -> EdgeEvent {
    edge_event(
        station,
        seq,
        1_768_905_000_000 + seq * 10,
        EdgePayload::Inspection(InspectionEvent {
            event_id: uuid::Uuid::new_v4().to_string(),
            event_type: InspectionEventType::InspectionStarted,
            timestamp: 1_768_905_000_000 + seq * 10 - 3,
            inspection_id: format!("{station}-insp-{seq:05}"),
            batch_id: batch_id.to_owned(),
            chip_id: format!("{station}-chip-{seq:05}"),
            inspection_type: "optical".to_owned(),
            status: "RUNNING".to_owned(),
            quality_score: None,
            defects: Vec::new(),
            metadata: BTreeMap::new(),
        }),
    )
}
