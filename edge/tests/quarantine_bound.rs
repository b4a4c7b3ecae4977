//! The quarantine on a real outbox file: bounded in entries and bytes (oldest dropped, counted), and the way
//! an event Kafka refused leaves the sending queue (set aside with its report, in one commit).

mod support;
use support::OPTIONS;

use linegate_edge::capture::{envelope, now_ms, parse_document};
use linegate_edge::outbox::{
    Intake, OutboxOptions, OutboxReader, QuarantineBound, QuarantineEntry, Stored,
};

fn garbage(n: usize, bytes: usize) -> Intake {
    Intake::Quarantine(QuarantineEntry {
        source: "mqtt".into(),
        origin: "stations/ST-01/results".into(),
        payload: vec![b'x'; bytes],
        reason: format!("garbage {n}"),
        received_at_ms: 1,
    })
}

fn event(n: u32) -> Intake {
    let document = format!(
        r#"{{"event_type":"INSPECTION_COMPLETED","event_id":"{}","timestamp":1768905000250,"inspection_id":"i-{n}","batch_id":"B","chip_id":"c-{n}","inspection_type":"optical","status":"DONE","quality_score":0.9}}"#,
        uuid::Uuid::new_v4()
    );
    let (inspection, trace) = parse_document(document.as_bytes()).unwrap();
    Intake::Event(Box::new(envelope("ST-01", inspection, trace, now_ms())))
}

#[tokio::test]
async fn the_quarantine_keeps_its_newest_entries_within_its_bounds_and_counts_the_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let options = OutboxOptions {
        quarantine: QuarantineBound {
            max_entries: 5,
            max_bytes: 3_500,
        },
        ..OPTIONS
    };
    let writer = support::writer(&path, options);
    for n in 0..8 {
        writer.append(vec![garbage(n, 10)]).await.unwrap();
    }
    let reader = OutboxReader::open(&path).unwrap();
    let kept: Vec<String> = reader
        .quarantine(100)
        .unwrap()
        .into_iter()
        .map(|q| q.reason)
        .collect();
    assert_eq!(
        kept,
        [
            "garbage 3",
            "garbage 4",
            "garbage 5",
            "garbage 6",
            "garbage 7"
        ]
    );
    assert_eq!(reader.stats().unwrap().quarantine_dropped, 3);

    // By bytes: three of 1,000 bytes fit in 3,500; results are still taken beside it.
    let stored = writer
        .append(vec![
            garbage(8, 1000),
            event(1),
            garbage(9, 1000),
            garbage(10, 1000),
        ])
        .await
        .unwrap();
    assert!(matches!(stored[1], Stored::Event { seq: 1 }), "{stored:?}");
    writer.append(vec![garbage(11, 1000)]).await.unwrap();
    let kept: Vec<String> = reader
        .quarantine(100)
        .unwrap()
        .into_iter()
        .map(|q| q.reason)
        .collect();
    assert_eq!(kept, ["garbage 9", "garbage 10", "garbage 11"]);
    assert_eq!(reader.stats().unwrap().depth, 1);
}

#[tokio::test]
async fn a_refused_event_moves_to_quarantine_with_its_report_in_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let writer = support::writer(&path, OPTIONS);
    writer
        .append(vec![event(1), event(2), event(3)])
        .await
        .unwrap();
    let reader = OutboxReader::open(&path).unwrap();
    let refused = reader.read_after(1, 1).unwrap().remove(0);
    let Intake::Event(report) = event(99) else {
        unreachable!()
    };
    let moved = writer
        .set_aside(2, "Kafka refused it for good: too large".into(), *report)
        .await
        .unwrap();
    assert!(moved);
    let seqs: Vec<i64> = reader
        .read_after(0, 10)
        .unwrap()
        .iter()
        .map(|s| s.seq)
        .collect();
    assert_eq!(seqs, [1, 3, 4], "seq 2 left, its report came last");
    let kept = reader.quarantine(10).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].source, "forward");
    assert!(
        kept[0].origin.contains(&refused.event.event_id),
        "{}",
        kept[0].origin
    );
    assert_eq!(kept[0].reason, "Kafka refused it for good: too large");
    // The body is kept as it was stored: the event can be read back from it.
    let back: linegate_schemas::EdgeEvent = linegate_schemas::decode(&kept[0].payload).unwrap();
    assert_eq!(back.event_id, refused.event.event_id);
    // Setting aside what is gone already does nothing.
    let Intake::Event(again) = event(100) else {
        unreachable!()
    };
    assert!(!writer.set_aside(2, "again".into(), *again).await.unwrap());
    assert_eq!(reader.stats().unwrap().depth, 3);
}
