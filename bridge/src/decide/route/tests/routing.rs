//! The `[routing]` table decides where an accepted event itself goes; quality and audit records follow
//! whatever it says.

use std::path::Path;

use linegate_common::conf::ConfigFile;
use linegate_schemas::{decode, InferenceEvent, InferenceEventType, SystemEvent, SystemEventType};

use super::*;
use crate::config::RoutingTable;

fn routes(table: &[(&str, &[&str])]) -> Routes {
    let table: RoutingTable = table
        .iter()
        .map(|(key, topics)| {
            let topics = topics.iter().map(|t| (*t).to_owned()).collect();
            ((*key).to_owned(), topics)
        })
        .collect();
    let file = ConfigFile::from_text(Path::new("bridge.toml"), "", |_| None).unwrap();
    Routes::resolve(&table, &TopicNames::default(), &file).unwrap()
}

fn route_with(routes: &Routes, event: &EdgeEvent) -> Routed {
    let topics = TopicNames::default();
    let quality = QualityConfig::default();
    let ctx = RouteContext {
        topics: &topics,
        routes,
        quality: &quality,
        service_name: "linegate-bridge",
        now_ms: NOW_MS,
    };
    let value = encode(event).unwrap();
    let record = InputRecord {
        topic: "edge.station.events",
        partition: 0,
        offset: 5,
        key: Some(b"ST-01"),
        value: &value,
    };
    route(&record, &ctx)
}

fn with_payload(payload: EdgePayload) -> EdgeEvent {
    EdgeEvent {
        event_type: payload.event_type_symbol().to_owned(),
        event_id: payload.event_id().to_owned(),
        payload,
        ..completed(0.9)
    }
}

fn inference(event_type: InferenceEventType) -> EdgeEvent {
    with_payload(EdgePayload::Inference(InferenceEvent {
        event_id: EVENT_ID.to_owned(),
        event_type,
        timestamp: 2,
        inspection_id: "insp-9".into(),
        model_name: "defect-net".into(),
        model_version: "3".into(),
        prediction: None,
        confidence: Some(0.4),
        latency_ms: None,
        metadata: BTreeMap::new(),
    }))
}

#[test]
fn an_event_type_entry_wins_over_its_family_and_may_name_several_topics() {
    let routes = routes(&[("DRIFT_DETECTED", &["inference.workflow", "ml.alerts"])]);
    let drift = route_with(&routes, &inference(InferenceEventType::DriftDetected));
    assert!(drift.rejection.is_none(), "{:?}", drift.rejection);
    assert_eq!(
        topics(&drift),
        ["inference.workflow", "ml.alerts", "audit.events"]
    );
    assert_eq!(drift.outputs[0].value, drift.outputs[1].value);
    assert_eq!(
        drift.outputs[1].header("idempotency-key"),
        Some(EVENT_ID),
        "each copy carries the event's own id"
    );
    assert_eq!(
        audit_of(&drift).outputs,
        ["inference.workflow", "ml.alerts"]
    );
    let other = route_with(&routes, &inference(InferenceEventType::InferenceCompleted));
    assert_eq!(topics(&other), ["inference.workflow", "audit.events"]);
}

#[test]
fn a_family_routed_nowhere_still_gets_its_verdict_and_audit_record() {
    let routes = routes(&[("inspection", &[])]);
    let routed = route_with(&routes, &completed(0.95));
    assert_eq!(topics(&routed), ["quality.events", "audit.events"]);
    assert_eq!(audit_of(&routed).outputs, ["quality.events"]);
}

#[test]
fn system_events_routed_to_a_topic_are_keyed_by_station() {
    let routes = routes(&[("system", &["station.health"])]);
    let report = SystemEvent {
        event_id: EVENT_ID.to_owned(),
        event_type: SystemEventType::SourceDown,
        timestamp: 3,
        component: "mqtt".into(),
        message: "the MQTT broker does not answer".into(),
        details: BTreeMap::new(),
    };
    let routed = route_with(&routes, &with_payload(EdgePayload::System(report.clone())));
    assert_eq!(topics(&routed), ["station.health", "audit.events"]);
    assert_eq!(routed.outputs[0].key.as_deref(), Some(&b"ST-01"[..]));
    let back: SystemEvent = decode(&routed.outputs[0].value).unwrap();
    assert_eq!(back, report);
}

#[test]
fn without_a_table_every_family_keeps_its_topics_entry() {
    let defaults = Routes::defaults(&TopicNames::default());
    assert_eq!(routes(&[]), defaults);
    let all: Vec<&String> = defaults.all_topics().collect();
    assert_eq!(
        all,
        [
            "inference.workflow",
            "inspection.lifecycle",
            "manufacturing.lifecycle"
        ]
    );
}
