//! The ledger's decisions for resends, gaps, replays and the window.

use super::*;

const WINDOW: i64 = 60_000;

/// The numbers of an event from an edge of a build before outbox epochs.
fn legacy(seq: i64) -> Option<Numbered<'static>> {
    Some(Numbered { seq, epoch: "" })
}

fn numbered(seq: i64, epoch: &str) -> Option<Numbered<'_>> {
    Some(Numbered { seq, epoch })
}

fn ledger_with(seq: i64, offset: i64) -> Ledger {
    let mut ledger = Ledger::new("g", WINDOW, DedupMetrics::default());
    ledger.advance(
        "ST-1",
        ("in", 0, offset),
        legacy(seq),
        Some("h".into()),
        1_000,
    );
    ledger
}

#[test]
fn the_next_seq_is_fresh_and_a_resent_one_is_a_duplicate() {
    let ledger = ledger_with(5, 10);
    assert_eq!(
        ledger.judge("ST-1", ("in", 0, 11), legacy(6), 2_000),
        Verdict::Fresh
    );
    assert_eq!(
        ledger.judge("ST-1", ("in", 0, 11), legacy(5), 2_000),
        Verdict::Duplicate { last: 5 }
    );
    assert_eq!(
        ledger.judge("ST-1", ("in", 0, 11), legacy(1), 2_000),
        Verdict::Duplicate { last: 5 }
    );
    assert_eq!(ledger.metrics.duplicates.get(), 2);
}

#[test]
fn a_jump_in_seq_is_a_gap_with_the_missing_range() {
    let ledger = ledger_with(5, 10);
    assert_eq!(
        ledger.judge("ST-1", ("in", 0, 11), legacy(9), 2_000),
        Verdict::Gap { first: 6, last: 8 }
    );
    assert_eq!(ledger.metrics.missing_seqs.get(), 3);
}

#[test]
fn an_input_at_or_before_the_recorded_position_is_a_replay() {
    let ledger = ledger_with(5, 10);
    assert_eq!(
        ledger.judge("ST-1", ("in", 0, 10), legacy(5), 2_000),
        Verdict::Replay
    );
    assert_eq!(
        ledger.judge("ST-1", ("in", 0, 3), legacy(2), 2_000),
        Verdict::Replay
    );
    // Another partition (the topic grew): position says nothing, seq decides.
    assert_eq!(
        ledger.judge("ST-1", ("in", 1, 3), legacy(5), 2_000),
        Verdict::Duplicate { last: 5 }
    );
}

#[test]
fn a_station_silent_longer_than_the_window_starts_afresh() {
    let ledger = ledger_with(5, 10);
    assert_eq!(
        ledger.judge("ST-1", ("in", 0, 11), legacy(1), 1_000 + WINDOW + 1),
        Verdict::Fresh
    );
}

#[test]
fn state_round_trips_through_its_records_and_other_groups_are_ignored() {
    let mut ledger = ledger_with(5, 10);
    let outputs = ledger.take_outputs("state", |_| None);
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].key.as_deref(), Some(&b"g/ST-1"[..]));
    assert!(
        ledger.take_outputs("state", |_| None).is_empty(),
        "only changed chains are written"
    );
    let state: ChainState = serde_json::from_slice(&outputs[0].value).unwrap();
    let mut again = Ledger::new("g", WINDOW, DedupMetrics::default());
    again.replace([
        ("g/ST-1".to_owned(), state.clone()),
        ("other/ST-2".to_owned(), state),
    ]);
    assert_eq!(again.len(), 1);
    assert_eq!(again.head("ST-1"), Some("h"));
    assert_eq!(
        again.judge("ST-1", ("in", 0, 11), legacy(5), 2_000),
        Verdict::Duplicate { last: 5 }
    );
}

#[test]
fn a_state_record_carries_the_stations_open_windows_back() {
    use crate::decide::window::{Observation, WindowConfig, Windows};
    let mut windows = Windows::new(WindowConfig::default());
    let observation = |seq: i64, event_time: i64| Observation {
        station_id: "ST-1".into(),
        seq,
        inspection_type: "optical".into(),
        event_time,
        score: Some(0.9),
        failed: false,
        trace_id: String::new(),
    };
    windows.observe(observation(5, 1_000), 1_000);
    let mut ledger = ledger_with(5, 10);
    let outputs = ledger.take_outputs("state", |chain| windows.snapshot(chain));
    let state: ChainState = serde_json::from_slice(&outputs[0].value).unwrap();
    assert_eq!(state.windows, windows.snapshot("ST-1"));

    let mut again = Ledger::new("g", WINDOW, DedupMetrics::default());
    let (topic, partition) = (state.topic.clone(), state.partition);
    again.replace([("g/ST-1".to_owned(), state)]);
    let mut restored = Windows::new(WindowConfig::default());
    for snapshot in again.window_snapshots(|t, p| t == topic && p == partition) {
        restored.restore(snapshot.clone());
    }
    assert_eq!(restored.snapshot("ST-1"), windows.snapshot("ST-1"));
    // After a rebalance the windows of a station whose partition another instance owns stay there: here
    // they would close twice and write that station's state backwards.
    let elsewhere = |t: &str, p: i32| t == topic && p == partition + 1;
    assert_eq!(again.window_snapshots(elsewhere).count(), 0);
    assert_eq!(again.head("ST-1"), Some("h"), "the chain itself is kept");
    // State written before windows were kept has no `windows` key and still reads.
    let old: ChainState = serde_json::from_str(
        r#"{"seq":5,"head":"h","topic":"in","partition":0,"offset":10,"seen_ms":1000}"#,
    )
    .unwrap();
    assert_eq!(old.windows, None);
}

#[test]
fn touch_writes_a_known_chain_again_and_ignores_an_unknown_one() {
    let mut ledger = ledger_with(5, 10);
    assert_eq!(ledger.take_outputs("state", |_| None).len(), 1);
    ledger.touch("ST-1");
    ledger.touch("ST-unknown");
    let outputs = ledger.take_outputs("state", |_| None);
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].key.as_deref(), Some(&b"g/ST-1"[..]));
}

#[test]
fn a_new_outbox_epoch_starts_a_new_sequence_and_the_replaced_one_is_stale() {
    let mut ledger = ledger_with(63, 10);
    // The station PC was re-imaged: its new outbox counts from 1 again, in a new epoch.
    let at = |offset| ("in", 0, offset);
    assert_eq!(
        ledger.judge("ST-1", at(11), numbered(1, "E2"), 2_000),
        Verdict::Fresh
    );
    ledger.advance("ST-1", at(11), numbered(1, "E2"), None, 2_000);
    assert_eq!(
        ledger.judge("ST-1", at(12), numbered(2, "E2"), 2_000),
        Verdict::Fresh
    );
    ledger.advance("ST-1", at(12), numbered(2, "E2"), None, 2_000);
    assert_eq!(
        ledger.judge("ST-1", at(13), numbered(2, "E2"), 2_000),
        Verdict::Duplicate { last: 2 }
    );
    // A late event of the old outbox (epoch "") is stale, whatever its seq.
    assert_eq!(
        ledger.judge("ST-1", at(13), legacy(64), 2_000),
        Verdict::Stale
    );
    assert_eq!(ledger.metrics.stale.get(), 1);
    // A third outbox whose first event is not seq 1 reports what it never got.
    assert_eq!(
        ledger.judge("ST-1", at(13), numbered(4, "E3"), 2_000),
        Verdict::Gap { first: 1, last: 3 }
    );
    ledger.advance("ST-1", at(13), numbered(4, "E3"), None, 2_000);
    assert_eq!(
        ledger.judge("ST-1", at(14), numbered(9, "E2"), 2_000),
        Verdict::Stale
    );
    // The epochs survive the state topic.
    let outputs = ledger.take_outputs("state", |_| None);
    let state: ChainState = serde_json::from_slice(&outputs[0].value).unwrap();
    assert_eq!(state.epoch, "E3");
    assert_eq!(state.retired, ["", "E2"]);
    assert_eq!(state.missing, [(1, 3)]);
}

#[test]
fn a_late_event_that_fills_a_reported_gap_is_handled_and_only_once() {
    let mut ledger = Ledger::new("g", WINDOW, DedupMetrics::default());
    let at = |offset| ("in", 0, offset);
    ledger.advance("ST-1", at(1), numbered(10, "E"), None, 1_000);
    assert_eq!(
        ledger.judge("ST-1", at(2), numbered(14, "E"), 1_000),
        Verdict::Gap {
            first: 11,
            last: 13
        }
    );
    ledger.advance("ST-1", at(2), numbered(14, "E"), None, 1_000);
    // 12 arrives late (a resend after a failed batch): routed, not a duplicate.
    assert_eq!(
        ledger.judge("ST-1", at(3), numbered(12, "E"), 1_000),
        Verdict::Fresh
    );
    assert_eq!(ledger.metrics.filled.get(), 1);
    ledger.advance("ST-1", at(3), numbered(12, "E"), None, 1_000);
    assert_eq!(
        ledger.judge("ST-1", at(4), numbered(12, "E"), 1_000),
        Verdict::Duplicate { last: 14 }
    );
    for (offset, seq) in [(4, 11), (5, 13)] {
        assert_eq!(
            ledger.judge("ST-1", at(offset), numbered(seq, "E"), 1_000),
            Verdict::Fresh
        );
        ledger.advance("ST-1", at(offset), numbered(seq, "E"), None, 1_000);
    }
    assert_eq!(ledger.chains["ST-1"].missing, []);
    assert_eq!(ledger.chains["ST-1"].seq, Some(14));
    // With epochs the window no longer ends the sequence: a resend after a long silence is still one.
    assert_eq!(
        ledger.judge("ST-1", at(6), numbered(14, "E"), 1_000 + 10 * WINDOW),
        Verdict::Duplicate { last: 14 }
    );
}

#[test]
fn without_epochs_a_station_back_after_the_window_counts_afresh_from_its_new_seq() {
    let mut ledger = ledger_with(5000, 10);
    let later = 1_000 + WINDOW + 1;
    ledger.advance("ST-1", ("in", 0, 11), legacy(1), None, later);
    assert_eq!(
        ledger.judge("ST-1", ("in", 0, 12), legacy(2), later),
        Verdict::Fresh,
        "seq 2 follows the new 1, not the forgotten 5000"
    );
}

#[test]
fn state_written_before_epochs_reads_as_the_empty_epoch() {
    let old: ChainState = serde_json::from_str(
        r#"{"seq":5,"head":"h","topic":"in","partition":0,"offset":10,"seen_ms":1000}"#,
    )
    .unwrap();
    assert_eq!(old.epoch, "");
    assert!(old.retired.is_empty() && old.missing.is_empty());
}
