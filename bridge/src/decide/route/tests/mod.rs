//! The routing rules as examples: one input, the outputs expected from it. This file holds the fixtures;
//! `accepted` and `rejected` the two ways an input can go.

mod accepted;
mod alerts;
mod families;
mod rejected;
mod routing;

use std::collections::BTreeMap;

use linegate_schemas::{
    decode, encode, AuditEvent, Defect, EdgeEvent, EdgePayload, InspectionEvent,
    InspectionEventType, QualityEvent,
};

use super::*;

const EVENT_ID: &str = "7f3c2b1a-5d1e-4c8e-9a51-3b1f0c2d4e5f";
const NOW_MS: i64 = 1_768_905_001_000;

fn event(event_type: InspectionEventType, score: Option<f64>) -> EdgeEvent {
    EdgeEvent {
        event_type: event_type.symbol().to_owned(),
        event_id: EVENT_ID.to_owned(),
        timestamp: 1_768_905_000_999,
        trace_id: "trace-1".to_owned(),
        source_service: "linegate-edge".to_owned(),
        schema_version: "1.0.0".to_owned(),
        station_id: "ST-01".to_owned(),
        seq: 42,
        outbox_epoch: String::new(),
        payload: EdgePayload::Inspection(InspectionEvent {
            event_id: EVENT_ID.to_owned(),
            event_type,
            timestamp: 1_768_905_000_250,
            inspection_id: "insp-9".to_owned(),
            batch_id: "B-1".to_owned(),
            chip_id: "C-9".to_owned(),
            inspection_type: "optical".to_owned(),
            status: "PASSED".to_owned(),
            quality_score: score,
            defects: vec![Defect {
                defect_type: "scratch".into(),
                severity: "LOW".into(),
                confidence: 0.5,
                location: "x=1".into(),
            }],
            metadata: BTreeMap::new(),
        }),
    }
}

fn completed(score: f64) -> EdgeEvent {
    event(InspectionEventType::InspectionCompleted, Some(score))
}

fn route_event(event: &EdgeEvent) -> Routed {
    route_bytes(&encode(event).unwrap(), Some(b"ST-01"))
}

fn route_bytes(value: &[u8], key: Option<&[u8]>) -> Routed {
    route_at(value, key, 77)
}

fn route_at(value: &[u8], key: Option<&[u8]>, offset: i64) -> Routed {
    let topics = TopicNames::default();
    let mut quality = QualityConfig::default();
    quality.thresholds.insert("optical".into(), 0.85);
    let routes = Routes::defaults(&topics);
    let ctx = RouteContext {
        topics: &topics,
        routes: &routes,
        quality: &quality,
        service_name: "linegate-bridge",
        now_ms: NOW_MS,
    };
    let record = InputRecord {
        topic: "edge.station.events",
        partition: 3,
        offset,
        key,
        value,
    };
    route(&record, &ctx)
}

fn topics(routed: &Routed) -> Vec<&str> {
    routed.outputs.iter().map(|o| o.topic.as_str()).collect()
}

fn quality_of(routed: &Routed) -> QualityEvent {
    assert_eq!(routed.outputs[1].topic, "quality.events");
    decode(&routed.outputs[1].value).unwrap()
}

fn audit_of(routed: &Routed) -> AuditEvent {
    let last = routed.outputs.last().unwrap();
    assert_eq!(last.topic, "audit.events");
    decode(&last.value).unwrap()
}

fn payload_mut(event: &mut EdgeEvent) -> &mut InspectionEvent {
    let EdgePayload::Inspection(inspection) = &mut event.payload else {
        panic!("an inspection payload was built")
    };
    inspection
}
