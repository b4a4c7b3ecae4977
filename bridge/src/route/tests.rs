use std::collections::BTreeMap;

use linegate_schemas::{
    decode, encode, AuditEvent, AuditOutcome, Defect, EdgeEvent, EdgePayload, InspectionEvent,
    InspectionEventType, QualityEvent, QualityVerdict,
};

use super::*;

const EVENT_ID: &str = "7f3c2b1a-5d1e-4c8e-9a51-3b1f0c2d4e5f";

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

fn route_event(event: &EdgeEvent) -> Routed {
    route_bytes(&encode(event).unwrap(), Some(b"ST-01"))
}

fn route_bytes(value: &[u8], key: Option<&[u8]>) -> Routed {
    let topics = TopicNames::default();
    let mut quality = QualityConfig::default();
    quality.thresholds.insert("optical".into(), 0.85);
    let ctx = RouteContext {
        topics: &topics,
        quality: &quality,
        service_name: "linegate-bridge",
        now_ms: 5,
    };
    let record = InputRecord {
        topic: "edge.station.events",
        partition: 3,
        offset: 77,
        key,
        value,
    };
    route(&record, &ctx)
}

fn topics(routed: &Routed) -> Vec<&str> {
    routed.outputs.iter().map(|o| o.topic.as_str()).collect()
}

fn quality_of(routed: &Routed) -> QualityEvent {
    decode(&routed.outputs[1].value).unwrap()
}

fn payload_mut(event: &mut EdgeEvent) -> &mut InspectionEvent {
    let EdgePayload::Inspection(inspection) = &mut event.payload;
    inspection
}

#[test]
fn created_goes_to_lifecycle_and_audit_only() {
    let routed = route_event(&event(InspectionEventType::InspectionCreated, None));
    assert!(routed.rejection.is_none());
    assert_eq!(topics(&routed), ["inspection.lifecycle", "audit.events"]);
    let lifecycle = &routed.outputs[0];
    assert_eq!(lifecycle.key.as_deref(), Some(&b"insp-9"[..]));
    assert_eq!(lifecycle.header("station_id"), Some("ST-01"));
    assert_eq!(lifecycle.header("seq"), Some("42"));
    assert_eq!(lifecycle.header("idempotency-key"), Some(EVENT_ID));
    let inspection: InspectionEvent = decode(&lifecycle.value).unwrap();
    assert_eq!(inspection.chip_id, "C-9");
    assert_eq!(inspection.timestamp, 1_768_905_000_250);
}

#[test]
fn completed_above_threshold_passes() {
    let routed = route_event(&event(InspectionEventType::InspectionCompleted, Some(0.9)));
    assert_eq!(
        topics(&routed),
        ["inspection.lifecycle", "quality.events", "audit.events"]
    );
    assert_eq!(routed.outputs[1].key.as_deref(), Some(&b"ST-01"[..]));
    let quality = quality_of(&routed);
    assert_eq!(quality.verdict, QualityVerdict::Pass);
    assert_eq!(
        (quality.threshold, quality.seq, quality.defect_count),
        (0.85, 42, 1)
    );
    assert_eq!(quality.source_event_id, EVENT_ID);
    assert_eq!(quality.reason, "score 0.9 >= threshold 0.85 for optical");
}

#[test]
fn completed_at_threshold_passes_and_just_below_fails() {
    let at = quality_of(&route_event(&event(
        InspectionEventType::InspectionCompleted,
        Some(0.85),
    )));
    assert_eq!(at.verdict, QualityVerdict::Pass);
    let below = quality_of(&route_event(&event(
        InspectionEventType::InspectionCompleted,
        Some(0.8499),
    )));
    assert_eq!(below.verdict, QualityVerdict::Fail);
    assert_eq!(below.reason, "score 0.8499 < threshold 0.85 for optical");
}

#[test]
fn completed_without_score_fails_with_reason() {
    let quality = quality_of(&route_event(&event(
        InspectionEventType::InspectionCompleted,
        None,
    )));
    assert_eq!(quality.verdict, QualityVerdict::Fail);
    assert_eq!(
        quality.reason,
        "no quality_score reported for a completed inspection"
    );
}

#[test]
fn unknown_inspection_type_uses_the_default_threshold() {
    let mut input = event(InspectionEventType::InspectionCompleted, Some(0.82));
    payload_mut(&mut input).inspection_type = "acoustic".into();
    let quality = quality_of(&route_event(&input));
    assert_eq!(
        (quality.threshold, quality.verdict),
        (0.8, QualityVerdict::Pass)
    );
}

#[test]
fn accepted_audit_records_subject_outputs_and_hash() {
    let input = event(InspectionEventType::InspectionCompleted, Some(0.9));
    let bytes = encode(&input).unwrap();
    let routed = route_bytes(&bytes, Some(b"ST-01"));
    let audit: AuditEvent = decode(&routed.outputs[2].value).unwrap();
    assert_eq!(audit.outcome, AuditOutcome::Accepted);
    assert_eq!(audit.subject_event_id.as_deref(), Some(EVENT_ID));
    assert_eq!(
        (audit.source_partition, audit.source_offset, audit.seq),
        (3, 77, Some(42))
    );
    assert_eq!(audit.outputs, ["inspection.lifecycle", "quality.events"]);
    assert_eq!(
        audit.payload_sha256,
        hex::encode(sha2::Sha256::digest(&bytes))
    );
    assert_eq!(
        routed.outputs[2].key.as_deref(),
        Some(audit.event_id.as_bytes())
    );
}

#[test]
fn output_ids_are_deterministic() {
    let input = event(InspectionEventType::InspectionCompleted, Some(0.9));
    let first = route_event(&input);
    let second = route_event(&input);
    assert_eq!(first.outputs, second.outputs);
    let audit: AuditEvent = decode(&first.outputs[2].value).unwrap();
    assert_ne!(audit.event_id, quality_of(&first).event_id);
}

#[test]
fn garbage_goes_to_the_dlq_unchanged_with_headers_and_an_audit() {
    let routed = route_bytes(b"{not avro", Some(b"ST-07"));
    assert_eq!(topics(&routed), ["edge.station.events.dlq", "audit.events"]);
    let dlq = &routed.outputs[0];
    assert_eq!(dlq.value, b"{not avro");
    assert_eq!(dlq.key.as_deref(), Some(&b"ST-07"[..]));
    assert_eq!(dlq.header("error.class"), Some("decode"));
    assert!(
        dlq.header("error.message")
            .unwrap()
            .contains("expected marker C3 01"),
        "{:?}",
        dlq.header("error.message")
    );
    assert_eq!(dlq.header("source.topic"), Some("edge.station.events"));
    assert_eq!(dlq.header("source.partition"), Some("3"));
    assert_eq!(dlq.header("source.offset"), Some("77"));
    assert_eq!(dlq.header("first.seen.ms"), Some("5"));
    assert_eq!(dlq.header("attempt"), Some("1"));
    let audit: AuditEvent = decode(&routed.outputs[1].value).unwrap();
    assert_eq!(audit.outcome, AuditOutcome::Rejected);
    assert_eq!(audit.subject_event_id, None);
    assert!(audit.reason.unwrap().contains("not a readable EdgeEvent"));
}

fn rejection_of(input: &EdgeEvent, key: Option<&[u8]>) -> String {
    let routed = route_bytes(&encode(input).unwrap(), key);
    assert_eq!(topics(&routed), ["edge.station.events.dlq", "audit.events"]);
    let dlq = &routed.outputs[0];
    assert_eq!(dlq.header("error.class"), Some("validation"));
    let audit: AuditEvent = decode(&routed.outputs[1].value).unwrap();
    assert_eq!(audit.station_id.as_deref(), Some(input.station_id.as_str()));
    dlq.header("error.message").unwrap().to_owned()
}

#[test]
fn score_out_of_range_is_rejected_with_the_value_and_the_event() {
    let input = event(InspectionEventType::InspectionCompleted, Some(1.7));
    assert_eq!(
        rejection_of(&input, Some(b"ST-01")),
        format!("quality_score 1.7 is outside 0..1 (event {EVENT_ID}, station ST-01, seq 42)")
    );
}

#[test]
fn each_validation_rule_names_its_field() {
    type Change = Box<dyn Fn(&mut EdgeEvent)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|e| payload_mut(e).event_id = uuid::Uuid::nil().to_string()),
            "payload event_id",
        ),
        (
            Box::new(|e| e.event_type = "INSPECTION_FAILED".into()),
            "envelope event_type `INSPECTION_FAILED`",
        ),
        (Box::new(|e| e.seq = 0), "seq 0 is not a positive"),
        (
            Box::new(|e| payload_mut(e).inspection_id = " ".into()),
            "inspection_id is empty",
        ),
        (
            Box::new(|e| payload_mut(e).defects[0].confidence = -0.1),
            "defects[0].confidence -0.1",
        ),
        (
            Box::new(|e| payload_mut(e).defects[0].severity = "BAD".into()),
            "defects[0].severity `BAD`",
        ),
    ];
    for (change, expected) in cases {
        let mut input = event(InspectionEventType::InspectionCreated, None);
        change(&mut input);
        let message = rejection_of(&input, Some(b"ST-01"));
        assert!(
            message.contains(expected),
            "{message} should contain {expected}"
        );
    }
}

#[test]
fn key_that_is_not_the_station_is_rejected() {
    let input = event(InspectionEventType::InspectionCreated, None);
    assert!(
        rejection_of(&input, Some(b"ST-02")).contains("record key `ST-02` is not the station_id")
    );
}

use sha2::Digest;
