//! Alerts: a defect of an alerting severity on any step, a completed inspection under its type's alert limit.

use linegate_schemas::{decode, Defect, InspectionEventType, QualityEvent, QualityVerdict};

use super::*;

fn quality_records(routed: &Routed) -> Vec<QualityEvent> {
    routed
        .outputs
        .iter()
        .filter(|o| o.topic == "quality.events")
        .map(|o| decode(&o.value).unwrap())
        .collect()
}

#[test]
fn a_critical_defect_on_any_step_raises_an_alert() {
    let mut input = event(InspectionEventType::DefectDetected, None);
    payload_mut(&mut input).defects.push(Defect {
        defect_type: "crack".into(),
        severity: "CRITICAL".into(),
        confidence: 0.97,
        location: "die 4".into(),
    });
    let routed = route_event(&input);
    assert_eq!(
        topics(&routed),
        ["inspection.lifecycle", "quality.events", "audit.events"]
    );
    let alerts = quality_records(&routed);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].event_type, "QUALITY_ALERT");
    assert_eq!(alerts[0].verdict, Some(QualityVerdict::Fail));
    assert_eq!(
        alerts[0].reason,
        "defects of an alerting severity: CRITICAL crack at die 4 (confidence 0.97)"
    );
    assert_eq!(alerts[0].source_event_id.as_deref(), Some(EVENT_ID));
}

#[test]
fn a_low_defect_raises_no_alert() {
    let routed = route_event(&event(InspectionEventType::DefectDetected, None));
    assert!(quality_records(&routed).is_empty());
}

#[test]
fn a_score_under_the_alert_limit_adds_an_alert_to_the_verdict() {
    let topics_names = TopicNames::default();
    let mut quality = QualityConfig::default();
    quality.thresholds.insert("optical".into(), 0.85);
    quality.alerts.score_below.insert("optical".into(), 0.5);
    let routes = Routes::defaults(&topics_names);
    let ctx = RouteContext {
        topics: &topics_names,
        routes: &routes,
        quality: &quality,
        service_name: "linegate-bridge",
        now_ms: NOW_MS,
    };
    let value = encode(&completed(0.4)).unwrap();
    let record = InputRecord {
        topic: "edge.station.events",
        partition: 0,
        offset: 1,
        key: Some(b"ST-01"),
        value: &value,
    };
    let records = quality_records(&route(&record, &ctx));
    let kinds: Vec<&str> = records.iter().map(|q| q.event_type.as_str()).collect();
    assert_eq!(kinds, ["QUALITY_VERDICT", "QUALITY_ALERT"]);
    assert_eq!(
        records[1].reason,
        "score 0.4 is under the alert limit 0.5 for optical"
    );
    assert_ne!(records[0].event_id, records[1].event_id);
}
