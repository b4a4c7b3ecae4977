//! The payload families besides inspections: manufacturing and inference events go to their own topics,
//! an edge's system event to the audit trail alone, and their rules reject what is out of range.

use linegate_schemas::{
    decode, AuditOutcome, InferenceEvent, InferenceEventType, ManufacturingEvent,
    ManufacturingEventType, SystemEvent, SystemEventType,
};

use super::*;

fn with_payload(payload: EdgePayload) -> EdgeEvent {
    EdgeEvent {
        event_type: payload.event_type_symbol().to_owned(),
        event_id: payload.event_id().to_owned(),
        payload,
        ..completed(0.9)
    }
}

fn milestone() -> ManufacturingEvent {
    ManufacturingEvent {
        event_id: EVENT_ID.to_owned(),
        event_type: ManufacturingEventType::LotCompleted,
        timestamp: 1,
        batch_id: "B-7".into(),
        lot_id: Some("L-1".into()),
        product_id: None,
        quantity: Some(100),
        status: "DONE".into(),
        metadata: BTreeMap::new(),
    }
}

fn inference(confidence: f64) -> InferenceEvent {
    InferenceEvent {
        event_id: EVENT_ID.to_owned(),
        event_type: InferenceEventType::InferenceCompleted,
        timestamp: 2,
        inspection_id: "insp-9".into(),
        model_name: "defect-net".into(),
        model_version: "3".into(),
        prediction: Some("OK".into()),
        confidence: Some(confidence),
        latency_ms: Some(12),
        metadata: BTreeMap::new(),
    }
}

#[test]
fn a_manufacturing_milestone_goes_to_its_topic_keyed_by_batch() {
    let routed = route_event(&with_payload(EdgePayload::Manufacturing(milestone())));
    assert!(routed.rejection.is_none(), "{:?}", routed.rejection);
    assert_eq!(topics(&routed), ["manufacturing.lifecycle", "audit.events"]);
    assert_eq!(routed.outputs[0].key.as_deref(), Some(&b"B-7"[..]));
    let back: ManufacturingEvent = decode(&routed.outputs[0].value).unwrap();
    assert_eq!(back, milestone());
    assert_eq!(audit_of(&routed).outputs, ["manufacturing.lifecycle"]);
}

#[test]
fn an_inference_step_goes_to_the_workflow_topic_keyed_by_inspection() {
    let routed = route_event(&with_payload(EdgePayload::Inference(inference(0.7))));
    assert!(routed.rejection.is_none(), "{:?}", routed.rejection);
    assert_eq!(topics(&routed), ["inference.workflow", "audit.events"]);
    assert_eq!(routed.outputs[0].key.as_deref(), Some(&b"insp-9"[..]));
    let back: InferenceEvent = decode(&routed.outputs[0].value).unwrap();
    assert_eq!(back, inference(0.7));
}

#[test]
fn a_system_event_goes_to_the_audit_trail_alone() {
    let report = SystemEvent {
        event_id: EVENT_ID.to_owned(),
        event_type: SystemEventType::ResultsLost,
        timestamp: 3,
        component: "modbus:press-1".into(),
        message: "2 results were lost at the station".into(),
        details: BTreeMap::new(),
    };
    let routed = route_event(&with_payload(EdgePayload::System(report)));
    assert!(routed.rejection.is_none(), "{:?}", routed.rejection);
    assert_eq!(topics(&routed), ["audit.events"]);
    let audit = audit_of(&routed);
    assert_eq!(audit.outcome, AuditOutcome::Accepted);
    assert_eq!(audit.event_type.as_deref(), Some("RESULTS_LOST"));
}

#[test]
fn a_system_event_from_a_station_clock_far_ahead_is_still_kept() {
    // Only inspections feed the quality windows, so only their event time is bounded.
    let report = SystemEvent {
        event_id: EVENT_ID.to_owned(),
        event_type: SystemEventType::ResultsLost,
        timestamp: NOW_MS + 10 * 24 * 3_600_000,
        component: "modbus:press-1".into(),
        message: "2 results were lost at the station".into(),
        details: BTreeMap::new(),
    };
    let routed = route_event(&with_payload(EdgePayload::System(report)));
    assert!(routed.rejection.is_none(), "{:?}", routed.rejection);
}

#[test]
fn a_system_event_audit_record_carries_its_message_and_details_as_headers() {
    let report = SystemEvent {
        event_id: EVENT_ID.to_owned(),
        event_type: SystemEventType::ConfigRejected,
        timestamp: 3,
        component: "config_push".into(),
        message: "pushed config version 3 refused: the config is not signed".into(),
        details: BTreeMap::from([("version".into(), "3".into())]),
    };
    let routed = route_event(&with_payload(EdgePayload::System(report)));
    let audit = routed.outputs.last().unwrap();
    let header = |name: &str| {
        audit
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
    };
    assert_eq!(
        header("system.message").as_deref(),
        Some("pushed config version 3 refused: the config is not signed")
    );
    assert_eq!(header("system.version").as_deref(), Some("3"));
}

#[test]
fn an_inference_confidence_out_of_range_is_rejected() {
    let routed = route_event(&with_payload(EdgePayload::Inference(inference(1.5))));
    let rejection = routed.rejection.as_ref().expect("rejected");
    assert!(
        rejection
            .to_string()
            .contains("confidence 1.5 is outside 0..1"),
        "{rejection}"
    );
    assert_eq!(topics(&routed), ["edge.station.events.dlq", "audit.events"]);
}

#[test]
fn a_negative_quantity_is_rejected() {
    let routed = route_event(&with_payload(EdgePayload::Manufacturing(
        ManufacturingEvent {
            quantity: Some(-1),
            ..milestone()
        },
    )));
    assert!(routed
        .rejection
        .expect("rejected")
        .to_string()
        .contains("quantity -1 is negative"));
}
