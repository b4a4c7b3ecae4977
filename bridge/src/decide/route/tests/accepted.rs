//! Accepted inputs: lifecycle for every step, a verdict for completed inspections, one audit record each.

use linegate_schemas::{
    decode, AuditOutcome, InspectionEvent, InspectionEventType, QualityVerdict,
};
use sha2::Digest;

use super::*;

#[test]
fn created_goes_to_lifecycle_and_audit_only() {
    let routed = route_event(&event(InspectionEventType::InspectionCreated, None));
    assert!(routed.rejection.is_none());
    assert_eq!(topics(&routed), ["inspection.lifecycle", "audit.events"]);
    let lifecycle = &routed.outputs[0];
    assert_eq!(lifecycle.key.as_deref(), Some(&b"insp-9"[..]));
    let inspection: InspectionEvent = decode(&lifecycle.value).unwrap();
    assert_eq!(inspection.chip_id, "C-9");
    assert_eq!(inspection.timestamp, 1_768_905_000_250);
    assert_eq!(audit_of(&routed).outputs, ["inspection.lifecycle"]);
}

#[test]
fn completed_goes_to_lifecycle_quality_and_audit_with_their_keys() {
    let routed = route_event(&completed(0.9));
    assert!(routed.rejection.is_none());
    assert_eq!(
        topics(&routed),
        ["inspection.lifecycle", "quality.events", "audit.events"]
    );
    let keys: Vec<Option<&[u8]>> = routed.outputs.iter().map(|o| o.key.as_deref()).collect();
    let audit_id = audit_of(&routed).event_id;
    assert_eq!(
        keys,
        [
            Some(&b"insp-9"[..]),
            Some(&b"ST-01"[..]),
            Some(audit_id.as_bytes())
        ]
    );
}

#[test]
fn completed_above_threshold_passes_with_the_inspection_fields() {
    let quality = quality_of(&route_event(&completed(0.9)));
    assert_eq!(quality.verdict, Some(QualityVerdict::Pass));
    assert_eq!(quality.reason, "score 0.9 >= threshold 0.85 for optical");
    assert_eq!(
        (quality.threshold, quality.seq, quality.defect_count),
        (Some(0.85), Some(42), Some(1))
    );
    assert_eq!(quality.source_event_id.as_deref(), Some(EVENT_ID));
    assert_eq!(quality.station_id, "ST-01");
    assert_eq!(
        (quality.inspection_id.as_deref(), quality.chip_id.as_deref()),
        (Some("insp-9"), Some("C-9"))
    );
    assert_eq!(quality.quality_score, Some(0.9));
    assert_eq!(
        quality.timestamp, 1_768_905_000_250,
        "the inspection's time"
    );
    assert_eq!(quality.trace_id, "trace-1");
    assert_eq!(quality.source_service, "linegate-bridge");
    assert_eq!(quality.event_type, "QUALITY_VERDICT");
}

#[test]
fn completed_at_threshold_passes_and_just_below_fails() {
    assert_eq!(
        quality_of(&route_event(&completed(0.85))).verdict,
        Some(QualityVerdict::Pass)
    );
    let below = quality_of(&route_event(&completed(0.8499)));
    assert_eq!(below.verdict, Some(QualityVerdict::Fail));
    assert_eq!(below.reason, "score 0.8499 < threshold 0.85 for optical");
}

#[test]
fn completed_without_score_fails_with_reason() {
    let quality = quality_of(&route_event(&event(
        InspectionEventType::InspectionCompleted,
        None,
    )));
    assert_eq!(quality.verdict, Some(QualityVerdict::Fail));
    assert_eq!(quality.quality_score, None);
    assert_eq!(
        quality.reason,
        "no quality_score reported for a completed inspection"
    );
}

#[test]
fn unknown_inspection_type_uses_the_default_threshold() {
    let mut input = completed(0.82);
    payload_mut(&mut input).inspection_type = "acoustic".into();
    let quality = quality_of(&route_event(&input));
    assert_eq!(
        (quality.threshold, quality.verdict),
        (Some(0.8), Some(QualityVerdict::Pass))
    );
}

#[test]
fn every_step_but_completed_has_no_verdict() {
    for step in InspectionEventType::ALL {
        let routed = route_event(&event(step, Some(0.9)));
        let expected = usize::from(step == InspectionEventType::InspectionCompleted) + 2;
        assert_eq!(routed.outputs.len(), expected, "{step:?}");
    }
}

#[test]
fn accepted_audit_records_subject_outputs_and_hash() {
    let input = completed(0.9);
    let bytes = encode(&input).unwrap();
    let audit = audit_of(&route_bytes(&bytes, Some(b"ST-01")));
    assert_eq!(audit.outcome, AuditOutcome::Accepted);
    assert_eq!(audit.reason, None);
    assert_eq!(audit.subject_event_id.as_deref(), Some(EVENT_ID));
    assert_eq!(audit.event_type.as_deref(), Some("INSPECTION_COMPLETED"));
    assert_eq!(audit.station_id.as_deref(), Some("ST-01"));
    assert_eq!(
        (
            audit.source_topic.as_str(),
            audit.source_partition,
            audit.source_offset,
            audit.seq
        ),
        ("edge.station.events", 3, 77, Some(42))
    );
    assert_eq!(audit.outputs, ["inspection.lifecycle", "quality.events"]);
    assert_eq!(
        audit.payload_sha256,
        hex::encode(sha2::Sha256::digest(&bytes))
    );
    assert_eq!(audit.timestamp, NOW_MS, "the handling time");
}

#[test]
fn every_accepted_output_carries_provenance_and_its_own_idempotency_key() {
    let routed = route_event(&completed(0.9));
    let own_ids = [
        EVENT_ID.to_owned(),
        quality_of(&routed).event_id,
        audit_of(&routed).event_id,
    ];
    for (output, own_id) in routed.outputs.iter().zip(&own_ids) {
        assert_eq!(
            output.header("station_id"),
            Some("ST-01"),
            "{}",
            output.topic
        );
        assert_eq!(output.header("seq"), Some("42"), "{}", output.topic);
        assert_eq!(output.header("source.event_id"), Some(EVENT_ID));
        assert_eq!(output.header("trace_id"), Some("trace-1"));
        assert_eq!(output.header("idempotency-key"), Some(own_id.as_str()));
    }
}

#[test]
fn output_ids_are_deterministic_uuid_v5_of_the_input() {
    let input = completed(0.9);
    let first = route_event(&input);
    let second = route_event(&input);
    assert_eq!(first.outputs, second.outputs, "byte-identical on a repeat");
    let quality_id = quality_of(&first).event_id;
    let audit_id = audit_of(&first).event_id;
    assert_eq!(
        quality_id,
        uuid::Uuid::new_v5(&ID_NAMESPACE, format!("quality:{EVENT_ID}").as_bytes()).to_string()
    );
    assert_eq!(
        audit_id,
        uuid::Uuid::new_v5(&ID_NAMESPACE, b"audit:edge.station.events:3:77").to_string()
    );
    let elsewhere = route_at(&encode(&input).unwrap(), Some(b"ST-01"), 78);
    assert_ne!(
        audit_of(&elsewhere).event_id,
        audit_id,
        "one audit per position"
    );
    assert_eq!(
        quality_of(&elsewhere).event_id,
        quality_id,
        "one verdict per event"
    );
}

#[test]
fn a_replayed_audit_record_has_its_own_id_and_no_link_and_says_which_replay() {
    let routed = route_event(&completed(0.9));
    let original = routed.outputs.last().unwrap().clone();
    let mut replayed = original.clone();
    as_replayed(&mut replayed, "replay-1").unwrap();
    let (before, after): (AuditEvent, AuditEvent) = (
        decode(&original.value).unwrap(),
        decode(&replayed.value).unwrap(),
    );
    let expected_id = uuid::Uuid::new_v5(
        &ID_NAMESPACE,
        format!("audit-replay:replay-1:{}", before.event_id).as_bytes(),
    )
    .to_string();
    assert_eq!(after.event_id, expected_id);
    assert_eq!(replayed.key.as_deref(), Some(expected_id.as_bytes()));
    assert_ne!(replayed.key, original.key, "compaction keeps the original");
    assert_eq!(after.prev_audit_sha256, None);
    assert_eq!(
        (after.outcome, after.source_offset),
        (before.outcome, before.source_offset)
    );
    let header = |name: &str| {
        let found: Vec<&[u8]> = replayed
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect();
        found
    };
    assert_eq!(header("idempotency-key"), vec![expected_id.as_bytes()]);
    assert_eq!(header(REPLAY_HEADER), vec![b"replay-1".as_slice()]);
}
