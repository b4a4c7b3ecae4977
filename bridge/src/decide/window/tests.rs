//! Windows as examples: what closes when, what a replay and a late event do, and the commit hold-back.

use super::*;

const MIN: i64 = 60_000;

fn windows() -> Windows {
    Windows::new(WindowConfig {
        enabled: true,
        size_secs: 300,
        allowed_lateness_secs: 60,
        idle_close_secs: 600,
        spec: BTreeMap::from([(
            "optical".into(),
            SpecLimits {
                lsl: Some(0.8),
                usl: Some(1.0),
            },
        )]),
    })
}

fn obs(seq: i64, minute: i64, score: f64) -> Observation {
    Observation {
        station_id: "ST-01".into(),
        seq,
        inspection_type: "optical".into(),
        event_time: minute * MIN,
        score: Some(score),
        failed: score < 0.85,
        trace_id: format!("t{seq}"),
    }
}

#[test]
fn a_window_closes_when_the_watermark_passes_its_end_plus_lateness() {
    let mut w = windows();
    assert!(w.observe(obs(1, 0, 0.90), 0).is_empty());
    assert!(w.observe(obs(2, 4, 0.80), 0).is_empty());
    // 5:00 opens the next window, but 5:00 - 1:00 lateness has not passed 5:00 yet.
    assert!(w.observe(obs(3, 5, 0.95), 0).is_empty());
    let closed = w.observe(obs(4, 6, 0.92), 0);
    assert_eq!(closed.len(), 1);
    let c = &closed[0];
    assert_eq!((c.start, c.end), (0, 5 * MIN));
    assert_eq!((c.figures.count, c.figures.fail_count), (2, 1));
    assert!((c.figures.mean.unwrap() - 0.85).abs() < 1e-12);
    assert!(c.figures.cpk.is_some());
    assert_eq!(c.trace_id, "t2");
}

#[test]
fn a_replayed_or_repeated_seq_is_counted_once() {
    let mut w = windows();
    w.observe(obs(1, 0, 0.90), 0);
    w.observe(obs(1, 0, 0.90), 0);
    w.observe(obs(2, 1, 0.90), 0);
    let closed = w.observe(obs(3, 7, 0.90), 0);
    assert_eq!(closed[0].figures.count, 2);
}

#[test]
fn an_event_after_its_window_closed_is_late_and_left_out() {
    let mut w = windows();
    w.observe(obs(1, 0, 0.90), 0);
    assert_eq!(w.observe(obs(2, 7, 0.90), 0).len(), 1);
    assert!(w.observe(obs(3, 1, 0.10), 0).is_empty());
    assert_eq!(w.late_count(), 1);
    // Within the lateness an older event still joins its (open) window.
    assert!(w.observe(obs(4, 5, 0.90), 0).is_empty());
    let closed = w.observe(obs(5, 12, 0.90), 0);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].figures.count, 2);
}

#[test]
fn a_restored_snapshot_continues_where_the_station_was() {
    let mut first = windows();
    first.observe(obs(1, 0, 0.9), 0);
    first.observe(obs(2, 1, 0.8), 0);
    let snapshot = first.snapshot("ST-01").unwrap();
    assert_eq!(first.snapshot("ST-09"), None);
    let mut second = windows();
    second.restore(snapshot);
    // seq 2 is read again after the restart: not counted twice.
    second.observe(obs(2, 1, 0.8), 0);
    let closed = second.observe(obs(3, 7, 0.9), 0);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].figures.count, 2);
}

#[test]
fn a_silent_station_gets_its_last_window_closed() {
    let mut w = windows();
    w.observe(obs(1, 0, 0.9), 1_000);
    assert!(w.close_idle(1_000 + 599_999).is_empty());
    let closed = w.close_idle(1_000 + 600_000);
    assert_eq!(closed.len(), 1);
    assert_eq!(w.snapshot("ST-01").unwrap().windows, vec![]);
}

#[test]
fn types_and_stations_have_their_own_windows() {
    let mut w = windows();
    w.observe(obs(1, 0, 0.9), 0);
    w.observe(
        Observation {
            inspection_type: "xray".into(),
            ..obs(2, 1, 0.7)
        },
        0,
    );
    w.observe(
        Observation {
            station_id: "ST-02".into(),
            seq: 1,
            ..obs(1, 2, 0.7)
        },
        0,
    );
    let closed = w.observe(obs(3, 7, 0.9), 0);
    let mut keys: Vec<_> = closed
        .iter()
        .map(|c| (c.station_id.as_str(), c.inspection_type.as_str()))
        .collect();
    keys.sort();
    assert_eq!(keys, [("ST-01", "optical"), ("ST-01", "xray")]);
}

#[test]
fn the_window_record_has_a_stable_id_and_the_figures() {
    let mut w = windows();
    w.observe(obs(1, 0, 0.9), 0);
    w.observe(obs(2, 1, 0.8), 0);
    let closed = w.observe(obs(3, 7, 0.9), 0);
    let a = output(&closed[0], "quality.events", "linegate-bridge").unwrap();
    let b = output(&closed[0], "quality.events", "linegate-bridge").unwrap();
    assert_eq!(a, b);
    let event: linegate_schemas::QualityEvent = linegate_schemas::decode(&a.value).unwrap();
    assert_eq!(event.event_type, "QUALITY_WINDOW");
    let figures = event.window.unwrap();
    assert_eq!((figures.count, figures.fail_count), (2, 1));
    assert_eq!(figures.lsl, Some(0.8));
    assert_eq!(event.source_event_id, None);
}

#[test]
fn cleared_windows_close_nothing_later() {
    // What an instance held for a station whose partition moved away must not be closed (and written) here.
    let mut w = windows();
    assert!(w.observe(obs(1, 0, 0.90), 1_000).is_empty());
    w.clear();
    assert!(w.close_idle(1_000 + 600_000).is_empty());
    assert!(w.snapshot("ST-01").is_none());
}
