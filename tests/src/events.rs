//! Edge events built straight for the ingest topic, for the tests that drive the bridge without an edge.

use linegate_schemas::{EdgeEvent, EdgePayload};

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
        payload,
    }
}
