//! The verifier on hand-built chains: intact, with a record removed, altered, and with an at-least-once repeat.

use linegate_schemas::{AuditEvent, AuditOutcome};

use super::*;

fn audit(station: &str, offset: i64, prev: Option<String>) -> AuditEvent {
    AuditEvent {
        event_id: format!("audit-{station}-{offset}"),
        timestamp: 1_000 + offset,
        source_service: "linegate-bridge".into(),
        schema_version: "1.0.0".into(),
        outcome: AuditOutcome::Accepted,
        subject_event_id: Some(format!("ev-{offset}")),
        event_type: Some("INSPECTION_STARTED".into()),
        station_id: Some(station.into()),
        seq: Some(offset + 1),
        reason: None,
        source_topic: "in".into(),
        source_partition: 0,
        source_offset: offset,
        payload_sha256: "00".repeat(32),
        outputs: vec![],
        prev_audit_sha256: prev,
        gap_first_seq: None,
        gap_last_seq: None,
    }
}

/// A linked chain of `n` records of `station`, placed at audit offsets 0.. of partition 0.
fn chain(station: &str, n: i64) -> Vec<Located> {
    another_pass(station, 0..n, None, 0)
}

#[test]
fn an_intact_chain_verifies_in_any_read_order() {
    let mut records = chain("ST-1", 5);
    records.extend(chain("ST-2", 3));
    records.reverse();
    let report = verify(records);
    assert_eq!((report.chains, report.records), (2, 8));
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
}

#[test]
fn a_record_removed_from_the_middle_is_reported_at_its_successor() {
    let mut records = chain("ST-1", 5);
    let removed = records.remove(2);
    let report = verify(records.clone());
    assert_eq!(report.breaks.len(), 1);
    let broken = &report.breaks[0];
    assert_eq!((broken.chain.as_str(), broken.offset), ("ST-1", 3));
    assert_eq!(broken.expected, record_hash(&records[1].audit));
    assert_eq!(broken.found, record_hash(&removed.audit));
}

#[test]
fn an_altered_record_breaks_the_next_link() {
    let mut records = chain("ST-1", 4);
    records[1].audit.seq = Some(99);
    let report = verify(records);
    assert_eq!(report.breaks.len(), 1);
    assert_eq!(report.breaks[0].offset, 2);
}

#[test]
fn a_repeated_round_is_accepted_and_either_copy_may_be_linked_to() {
    let mut records = chain("ST-1", 3);
    // The round of record 1 written again with a new timestamp; record 2 links to the first copy.
    let mut again = records[1].audit.clone();
    again.timestamp += 500;
    records.push(Located {
        partition: 1,
        offset: 0,
        audit: again,
    });
    let report = verify(records);
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
    assert_eq!(report.repeats, 1);
}

#[test]
fn a_record_without_a_link_after_linked_ones_is_a_break() {
    let mut records = chain("ST-1", 3);
    records.push(Located {
        partition: 0,
        offset: 3,
        audit: audit("ST-1", 3, None),
    });
    assert_eq!(verify(records).breaks[0].found, "none");
}

/// Records of `station` at input offsets `inputs`, linked from `prev` on, as written by pass number `pass`
/// over those inputs (a later pass has later timestamps, so its hashes differ from the first pass's), placed
/// at audit partition `pass`.
fn another_pass(
    station: &str,
    inputs: std::ops::Range<i64>,
    prev: Option<String>,
    pass: i64,
) -> Vec<Located> {
    let mut prev = prev;
    inputs
        .map(|i| {
            let mut a = audit(station, i, prev.take());
            a.timestamp += 10_000 * pass;
            prev = Some(record_hash(&a));
            Located {
                partition: i32::try_from(pass).unwrap(),
                offset: 100 * pass + i,
                audit: a,
            }
        })
        .collect()
}

fn hash_of(records: &[Located], source_offset: i64) -> Option<String> {
    records
        .iter()
        .find(|r| r.audit.source_offset == source_offset)
        .map(|r| record_hash(&r.audit))
}

#[test]
fn a_round_handled_again_from_the_same_predecessor_forks_soundly() {
    // A killed instance wrote inputs 0..6; the next owner handled 3..6 again from the state after input 2,
    // then went on with 6 and 7 from its own copy.
    let mut records = chain("ST-1", 6);
    let mut again = another_pass("ST-1", 3..8, hash_of(&records, 2), 1);
    records.append(&mut again);
    let report = verify(records);
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
    assert_eq!(report.repeats, 3);
}

#[test]
fn inputs_read_again_after_their_state_was_stored_continue_the_chain() {
    // The state of inputs 0..4 arrived but their commit did not: the next owner audits 2..4 again (as
    // DUPLICATE) linked after input 3, then goes on with 4.
    let mut records = chain("ST-1", 4);
    let mut again = another_pass("ST-1", 2..5, hash_of(&records, 3), 1);
    records.append(&mut again);
    let report = verify(records);
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
}

#[test]
fn a_link_past_a_handled_input_is_a_fork_and_reported() {
    // Input 3 linked to input 1 although input 2 was audited: a stale chain state.
    let mut records = chain("ST-1", 3);
    let mut stale = another_pass("ST-1", 3..5, hash_of(&records, 1), 1);
    records.append(&mut stale);
    let report = verify(records);
    assert_eq!(report.breaks.len(), 1);
    let broken = &report.breaks[0];
    assert_eq!(broken.source_offset, 3);
    assert_eq!(broken.fault, Fault::Skips { source_offset: 2 });
    assert!(broken
        .to_string()
        .contains("links past the record of input offset 2"));
}

#[test]
fn a_copy_whose_predecessor_never_arrived_is_excused_only_beside_a_sound_copy() {
    // A killed instance got inputs 0..5 out but not its record of input 3; the next owner audited 3..5
    // again from input 2.
    let mut records = chain("ST-1", 5);
    records.retain(|r| r.audit.source_offset != 3);
    let sound = another_pass("ST-1", 3..5, hash_of(&records, 2), 1);
    let mut with_copy = records.clone();
    with_copy.extend(sound);
    let report = verify(with_copy);
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
    // Without the other copy, the same record is a break.
    let report = verify(records);
    assert_eq!(report.breaks[0].fault, Fault::Missing);
    assert_eq!(report.breaks[0].source_offset, 4);
}

#[test]
fn the_chain_hash_of_a_record_is_stable_across_releases() {
    // Every chain already written names hashes computed this way: a change here breaks them all.
    let mut a = audit("ST-1", 41, Some("ab".repeat(32)));
    a.reason = Some("score out of range".into());
    a.outputs = vec!["inspection.lifecycle".into(), "quality.events".into()];
    a.gap_first_seq = Some(-3);
    a.gap_last_seq = Some(i64::MAX);
    assert_eq!(
        record_hash(&a),
        "1d24c14998ccb236e47531a084dc2a47e1d71ead165da026424732f9dc7b6fa0"
    );
    let mut b = audit("ST-2", 0, None);
    (b.station_id, b.seq, b.subject_event_id, b.event_type) = (None, None, None, None);
    b.outcome = AuditOutcome::Rejected;
    assert_eq!(
        record_hash(&b),
        "2b81d3579979db50554ecdc1b9bd88cfde500c5796bd7112d17c41ca085d3a5b"
    );
}
