//! Rejected inputs: the record unchanged to the DLQ with why and where from, and a REJECTED audit record.

use linegate_schemas::{encode, AuditOutcome, EdgeEvent, InspectionEventType};

use super::*;

#[test]
fn garbage_goes_to_the_dlq_unchanged_with_headers_and_an_audit() {
    let routed = route_bytes(b"{not avro", Some(b"ST-07"));
    assert!(matches!(routed.rejection, Some(Rejection::Decode(_))));
    assert_eq!(topics(&routed), ["edge.station.events.dlq", "audit.events"]);
    let dlq = &routed.outputs[0];
    assert_eq!(dlq.value, b"{not avro");
    assert_eq!(dlq.key.as_deref(), Some(&b"ST-07"[..]));
    assert_eq!(dlq.header("error.class"), Some("decode"));
    assert_eq!(
        dlq.header("error.message"),
        Some("not a readable EdgeEvent: not an Avro single-object message: expected marker C3 01, found 7B 6E")
    );
    assert_eq!(dlq.header("source.topic"), Some("edge.station.events"));
    assert_eq!(dlq.header("source.partition"), Some("3"));
    assert_eq!(dlq.header("source.offset"), Some("77"));
    assert_eq!(
        dlq.header("first.seen.ms"),
        Some(NOW_MS.to_string().as_str())
    );
    assert_eq!(dlq.header("attempt"), Some("1"));
    let dlq_id = uuid::Uuid::new_v5(&ID_NAMESPACE, b"dlq:edge.station.events:3:77").to_string();
    assert_eq!(dlq.header("idempotency-key"), Some(dlq_id.as_str()));
    assert_eq!(dlq.header("station_id"), None, "unknown: nothing decoded");
    let audit = audit_of(&routed);
    assert_eq!(audit.outcome, AuditOutcome::Rejected);
    assert_eq!(audit.subject_event_id, None);
    assert_eq!(audit.outputs, ["edge.station.events.dlq"]);
    assert_eq!(audit.reason.as_deref(), dlq.header("error.message"));
}

#[test]
fn an_empty_value_is_rejected_as_undecodable() {
    let routed = route_bytes(b"", None);
    assert_eq!(topics(&routed), ["edge.station.events.dlq", "audit.events"]);
    assert_eq!(routed.outputs[0].key, None);
    assert_eq!(routed.outputs[0].header("error.class"), Some("decode"));
}

/// Routes `input` with `key`, checks it was rejected for validation, and returns the rejection.
fn rejected(input: &EdgeEvent, key: Option<&[u8]>) -> (Rejection, Routed) {
    let bytes = encode(input).unwrap();
    let mut routed = route_bytes(&bytes, key);
    assert_eq!(topics(&routed), ["edge.station.events.dlq", "audit.events"]);
    let dlq = &routed.outputs[0];
    assert_eq!(dlq.value, bytes, "the DLQ keeps the record unchanged");
    assert_eq!(dlq.header("error.class"), Some("validation"));
    let rejection = routed.rejection.take().expect("a rejection");
    assert_eq!(
        dlq.header("error.message"),
        Some(rejection.to_string().as_str())
    );
    (rejection, routed)
}

fn problem(input: &EdgeEvent) -> Problem {
    rejected(input, Some(b"ST-01")).0.problem().unwrap().clone()
}

#[test]
fn score_out_of_range_is_rejected_with_the_value_and_the_event() {
    let (rejection, _) = rejected(&completed(1.7), Some(b"ST-01"));
    assert_eq!(
        rejection.to_string(),
        format!("quality_score 1.7 is outside 0..1 (event {EVENT_ID}, station ST-01, seq 42)")
    );
}

#[test]
fn a_rejected_event_keeps_its_provenance_in_dlq_and_audit() {
    let (_, routed) = rejected(&completed(-0.5), Some(b"ST-01"));
    let dlq = &routed.outputs[0];
    assert_eq!(dlq.key.as_deref(), Some(&b"ST-01"[..]));
    assert_eq!(dlq.header("station_id"), Some("ST-01"));
    assert_eq!(dlq.header("seq"), Some("42"));
    assert_eq!(dlq.header("source.event_id"), Some(EVENT_ID));
    assert_eq!(dlq.header("trace_id"), Some("trace-1"));
    let audit = audit_of(&routed);
    assert_eq!(audit.outcome, AuditOutcome::Rejected);
    assert_eq!(audit.subject_event_id.as_deref(), Some(EVENT_ID));
    assert_eq!(
        (audit.station_id.as_deref(), audit.seq),
        (Some("ST-01"), Some(42))
    );
    assert!(audit
        .reason
        .unwrap()
        .starts_with("quality_score -0.5 is outside 0..1"));
}

#[test]
fn envelope_event_id_must_be_a_uuid() {
    // The current schema types event_id as a UUID, so the contract refuses to encode this; the rule still
    // guards against writers whose schema does not.
    let mut input = event(InspectionEventType::InspectionCreated, None);
    input.event_id = "evt-1".into();
    payload_mut(&mut input).event_id = "evt-1".into();
    let rejection = validate::validate(&input, Some(b"ST-01"), &(i64::MIN..=i64::MAX)).unwrap_err();
    assert_eq!(
        rejection.problem(),
        Some(&Problem::EventIdNotUuid("evt-1".into()))
    );
    assert_eq!(
        rejection.to_string(),
        "event_id `evt-1` is not a UUID (event evt-1, station ST-01, seq 42)"
    );
}

#[test]
fn a_non_uuid_event_id_on_the_wire_is_rejected() {
    let mut bytes = encode(&event(InspectionEventType::InspectionCreated, None)).unwrap();
    let bad = b"not-a-uuid-not-a-uuid-not-a-uuid-xyz";
    assert_eq!(
        bad.len(),
        EVENT_ID.len(),
        "same length keeps the Avro framing"
    );
    let mut at = 0;
    while let Some(found) = bytes[at..]
        .windows(EVENT_ID.len())
        .position(|w| w == EVENT_ID.as_bytes())
    {
        bytes[at + found..at + found + bad.len()].copy_from_slice(bad);
        at += found + bad.len();
    }
    let routed = route_bytes(&bytes, Some(b"ST-01"));
    assert_eq!(topics(&routed), ["edge.station.events.dlq", "audit.events"]);
    let message = routed.rejection.unwrap().to_string();
    assert!(message.contains("UUID"), "{message}");
}

#[test]
fn payload_event_id_must_be_the_envelopes() {
    let mut input = event(InspectionEventType::InspectionCreated, None);
    let other = uuid::Uuid::nil().to_string();
    payload_mut(&mut input).event_id = other.clone();
    assert_eq!(
        problem(&input),
        Problem::PayloadEventIdDiffers { payload: other }
    );
}

#[test]
fn envelope_event_type_must_be_the_payloads() {
    let mut input = event(InspectionEventType::InspectionCreated, None);
    input.event_type = "INSPECTION_FAILED".into();
    assert_eq!(
        problem(&input),
        Problem::EventTypeDiffers {
            envelope: "INSPECTION_FAILED".into(),
            payload: "INSPECTION_CREATED"
        }
    );
}

#[test]
fn station_id_must_not_be_empty() {
    let mut input = event(InspectionEventType::InspectionCreated, None);
    input.station_id = String::new();
    let (rejection, _) = rejected(&input, None);
    assert_eq!(rejection.problem(), Some(&Problem::EmptyStationId));
}

#[test]
fn key_that_is_not_the_station_is_rejected() {
    let input = event(InspectionEventType::InspectionCreated, None);
    let (rejection, _) = rejected(&input, Some(b"ST-02"));
    assert_eq!(
        rejection.problem(),
        Some(&Problem::KeyNotStation("ST-02".into()))
    );
    assert!(rejection
        .to_string()
        .starts_with("record key `ST-02` is not the station_id"));
}

#[test]
fn a_record_without_key_is_judged_by_its_content() {
    let routed = route_bytes(
        &encode(&event(InspectionEventType::InspectionCreated, None)).unwrap(),
        None,
    );
    assert!(routed.rejection.is_none());
}

#[test]
fn seq_must_be_positive() {
    let mut input = event(InspectionEventType::InspectionCreated, None);
    input.seq = 0;
    assert_eq!(problem(&input), Problem::SeqNotPositive(0));
}

#[test]
fn inspection_and_chip_ids_must_not_be_blank() {
    let mut input = event(InspectionEventType::InspectionCreated, None);
    payload_mut(&mut input).inspection_id = " ".into();
    assert_eq!(problem(&input), Problem::EmptyField("inspection_id"));
    let mut input = event(InspectionEventType::InspectionCreated, None);
    payload_mut(&mut input).chip_id = String::new();
    assert_eq!(problem(&input), Problem::EmptyField("chip_id"));
}

#[test]
fn a_score_that_is_not_a_number_is_out_of_range() {
    assert!(matches!(
        problem(&completed(f64::NAN)),
        Problem::ScoreOutOfRange(score) if score.is_nan()
    ));
    assert_eq!(
        problem(&completed(1.0000001)),
        Problem::ScoreOutOfRange(1.0000001)
    );
    assert!(route_event(&completed(1.0)).rejection.is_none());
    assert!(route_event(&completed(0.0)).rejection.is_none());
}

#[test]
fn defect_confidence_must_be_within_0_and_1() {
    let mut input = event(InspectionEventType::DefectDetected, None);
    payload_mut(&mut input).defects[0].confidence = -0.1;
    assert_eq!(
        problem(&input),
        Problem::ConfidenceOutOfRange {
            index: 0,
            value: -0.1
        }
    );
}

#[test]
fn defect_severity_must_be_one_of_four() {
    let mut input = event(InspectionEventType::DefectDetected, None);
    payload_mut(&mut input).defects[0].severity = "BAD".into();
    let expected = Problem::UnknownSeverity {
        index: 0,
        value: "BAD".into(),
    };
    assert_eq!(problem(&input), expected);
    assert_eq!(
        expected.to_string(),
        "defects[0].severity `BAD` is not LOW, MEDIUM, HIGH or CRITICAL"
    );
}

#[test]
fn a_rejection_quoting_a_huge_value_makes_a_bounded_dead_letter_and_audit_record() {
    let mut input = event(InspectionEventType::DefectDetected, None);
    payload_mut(&mut input).defects[0].severity = "X".repeat(600_000);
    let bytes = encode(&input).unwrap();
    let routed = route_bytes(&bytes, Some(b"ST-01"));
    assert_eq!(topics(&routed), ["edge.station.events.dlq", "audit.events"]);
    let dlq = &routed.outputs[0];
    let message = dlq.header("error.message").unwrap();
    assert!(message.len() <= 1024, "{}", message.len());
    assert!(message.starts_with("defects[0].severity `XXX"), "{message}");
    assert!(message.ends_with("bytes, cut)"), "{message}");
    let size = |o: &Output| {
        o.value.len()
            + o.key.as_ref().map_or(0, Vec::len)
            + o.headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    };
    assert!(size(dlq) < 1_000_000, "{}", size(dlq));
    let audit = audit_of(&routed);
    assert_eq!(audit.reason.as_deref(), Some(message));
    assert!(
        size(&routed.outputs[1]) < 10_000,
        "{}",
        size(&routed.outputs[1])
    );
}

#[test]
fn an_input_larger_than_the_bridge_takes_is_rejected_and_its_dead_letter_leaves_the_value_out() {
    let mut input = completed(0.9);
    payload_mut(&mut input)
        .metadata
        .insert("blob".into(), "y".repeat(950_000));
    let bytes = encode(&input).unwrap();
    let routed = route_bytes(&bytes, Some(b"ST-01"));
    assert!(matches!(routed.rejection, Some(Rejection::TooLarge { .. })));
    assert_eq!(topics(&routed), ["edge.station.events.dlq", "audit.events"]);
    let dlq = &routed.outputs[0];
    assert_eq!(dlq.header("error.class"), Some("size"));
    assert!(
        dlq.value.is_empty(),
        "the value stays on its input topic only"
    );
    assert_eq!(
        dlq.header("value.omitted.bytes"),
        Some(bytes.len().to_string().as_str())
    );
    assert_eq!(dlq.header("source.offset"), Some("77"));
    assert_eq!(dlq.header("station_id"), Some("ST-01"));
}

/// Sets the payload's event time.
fn at(mut input: EdgeEvent, timestamp: i64) -> EdgeEvent {
    payload_mut(&mut input).timestamp = timestamp;
    input
}

#[test]
fn an_event_time_far_ahead_of_the_clock_is_rejected_and_never_reaches_the_windows() {
    let hour = 3_600_000;
    let ahead = at(completed(0.9), NOW_MS + 2 * hour);
    let (rejection, routed) = rejected(&ahead, Some(b"ST-01"));
    assert_eq!(
        rejection.problem(),
        Some(&Problem::EventTimeOutOfRange {
            timestamp: NOW_MS + 2 * hour,
            first: 0,
            last: NOW_MS + hour,
        })
    );
    assert!(
        routed.window_input.is_none(),
        "a rejected event is no observation"
    );
    // Within the default hour ahead, and any time in the past: accepted.
    for timestamp in [NOW_MS + hour, NOW_MS - 365 * 24 * hour] {
        let routed = route_bytes(
            &encode(&at(completed(0.9), timestamp)).unwrap(),
            Some(b"ST-01"),
        );
        assert!(
            routed.rejection.is_none(),
            "{timestamp}: {:?}",
            routed.rejection
        );
        assert!(routed.window_input.is_some());
    }
}

#[test]
fn the_event_time_bounds_follow_the_quality_config() {
    let hour = 3_600_000;
    let quality = QualityConfig {
        event_time_max_ahead_secs: 60,
        event_time_max_age_hours: Some(24),
        ..QualityConfig::default()
    };
    assert_eq!(
        quality.event_times(NOW_MS),
        NOW_MS - 24 * hour..=NOW_MS + 60_000
    );
    let old = at(completed(0.9), NOW_MS - 25 * hour);
    let times = quality.event_times(NOW_MS);
    let rejection = validate::validate(&old, Some(b"ST-01"), &times).unwrap_err();
    assert!(
        rejection.to_string().starts_with(&format!(
            "event time {} is outside the accepted {}..={} (epoch ms;",
            NOW_MS - 25 * hour,
            NOW_MS - 24 * hour,
            NOW_MS + 60_000
        )),
        "{rejection}"
    );
}
