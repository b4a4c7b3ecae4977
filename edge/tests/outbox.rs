//! The outbox against a real SQLite file: sequence numbers, group commit, deletion, quarantine, reopening.

mod support;
use support::OPTIONS;

use std::sync::Arc;

use linegate_edge::capture::envelope;
use linegate_edge::outbox::{
    FullPolicy, Intake, OutboxError, OutboxOptions, OutboxReader, OutboxWriter, QuarantineEntry,
    SourceMark, Stored,
};
use linegate_schemas::{InspectionEvent, InspectionEventType};
use tokio::sync::Notify;

fn event(n: u32) -> Intake {
    let inspection = InspectionEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_type: InspectionEventType::InspectionCreated,
        timestamp: 1_700_000_000_000 + i64::from(n),
        inspection_id: format!("insp-{n}"),
        batch_id: "B-1".into(),
        chip_id: format!("C-{n}"),
        inspection_type: "optical".into(),
        status: "CREATED".into(),
        quality_score: None,
        defects: vec![],
        metadata: Default::default(),
    };
    Intake::Event(Box::new(envelope(
        "ST-01",
        inspection,
        None,
        1_700_000_000_000,
    )))
}

fn quarantine() -> Intake {
    Intake::Quarantine(QuarantineEntry {
        source: "mqtt".into(),
        origin: "stations/ST-01/results".into(),
        payload: b"{not json".to_vec(),
        reason: "not a station result document".into(),
        received_at_ms: 1,
    })
}

fn start(path: &std::path::Path) -> OutboxWriter {
    support::writer(path, OPTIONS)
}

#[tokio::test]
async fn seq_is_gapless_across_quarantine_entries_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let writer = start(&path);
    let seqs = writer
        .append(vec![event(1), quarantine(), event(2)])
        .await
        .unwrap();
    assert_eq!(
        seqs,
        vec![
            Stored::Event { seq: 1 },
            Stored::Quarantined,
            Stored::Event { seq: 2 }
        ]
    );
    drop(writer);

    let writer = start(&path);
    assert_eq!(
        writer.append(vec![event(3)]).await.unwrap(),
        vec![Stored::Event { seq: 3 }]
    );
    let reader = OutboxReader::open(&path).unwrap();
    let stored = reader.read_after(0, 10).unwrap();
    let seqs: Vec<i64> = stored.iter().map(|s| s.event.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(stored[1].event.payload_inspection().chip_id, "C-2");
    assert_eq!(reader.quarantined().unwrap(), 1);
}

#[tokio::test]
async fn delete_up_to_keeps_later_events_and_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let writer = start(&path);
    writer.append((1..=5).map(event).collect()).await.unwrap();
    writer.delete_up_to(3).await.unwrap();
    let reader = OutboxReader::open(&path).unwrap();
    assert_eq!(reader.depth().unwrap(), 2);
    assert_eq!(reader.read_after(0, 10).unwrap()[0].seq, 4);
    writer.delete_up_to(5).await.unwrap();
    assert_eq!(
        writer.append(vec![event(6)]).await.unwrap(),
        vec![Stored::Event { seq: 6 }]
    );
}

#[tokio::test]
async fn concurrent_appends_are_each_committed_once_in_order_of_arrival() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let writer = start(&path);
    let tasks: Vec<_> = (0..20)
        .map(|t| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .append((0..50).map(|n| event(t * 100 + n)).collect())
                    .await
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(
            task.await
                .unwrap()
                .unwrap()
                .into_iter()
                .filter_map(|stored| match stored {
                    Stored::Event { seq } => Some(seq),
                    _ => None,
                }),
        );
    }
    all.sort_unstable();
    assert_eq!(all, (1..=1000).collect::<Vec<i64>>());
}

#[tokio::test]
async fn an_outbox_of_another_station_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    drop(start(&path));
    let err = OutboxWriter::start(&path, "ST-02", OPTIONS, Arc::new(Notify::new()))
        .err()
        .expect("a second station must be refused");
    assert!(matches!(err, OutboxError::WrongStation { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("belongs to station ST-01, not ST-02"),
        "{err}"
    );
}

trait PayloadInspection {
    fn payload_inspection(&self) -> &InspectionEvent;
}

impl PayloadInspection for linegate_schemas::EdgeEvent {
    fn payload_inspection(&self) -> &InspectionEvent {
        match &self.payload {
            linegate_schemas::EdgePayload::Inspection(inspection) => inspection,
            other => panic!("expected an inspection, found a {} event", other.family()),
        }
    }
}

#[tokio::test]
async fn a_result_delivered_again_is_stored_once_and_keeps_the_sequence_gapless() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let writer = start(&path);
    let first = event(1);
    let stored = writer.append(vec![first.clone(), event(2)]).await.unwrap();
    assert_eq!(
        stored,
        vec![Stored::Event { seq: 1 }, Stored::Event { seq: 2 }]
    );
    drop(writer);
    // After a restart, the broker redelivers the first result together with a new one.
    let writer = start(&path);
    let stored = writer.append(vec![first, event(3)]).await.unwrap();
    assert_eq!(stored, vec![Stored::Duplicate, Stored::Event { seq: 3 }]);
    let reader = OutboxReader::open(&path).unwrap();
    assert_eq!(reader.depth().unwrap(), 3);
}

fn start_bounded(path: &std::path::Path, max_events: i64, full_policy: FullPolicy) -> OutboxWriter {
    let options = OutboxOptions {
        max_events,
        full_policy,
        ..OPTIONS
    };
    OutboxWriter::start(path, "ST-01", options, Arc::new(Notify::new())).unwrap()
}

#[tokio::test]
async fn a_full_outbox_with_policy_block_takes_a_prefix_and_refuses_the_rest_until_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let writer = start_bounded(&path, 3, FullPolicy::Block);
    let stored = writer.append((1..=5).map(event).collect()).await.unwrap();
    let refused = stored
        .iter()
        .filter(|s| matches!(s, Stored::Refused))
        .count();
    assert_eq!(
        &stored[..3],
        &[
            Stored::Event { seq: 1 },
            Stored::Event { seq: 2 },
            Stored::Event { seq: 3 }
        ]
    );
    assert_eq!(refused, 2);
    // A quarantine entry is still taken: it is not waiting for Kafka.
    assert_eq!(
        writer.append(vec![quarantine()]).await.unwrap(),
        vec![Stored::Quarantined]
    );
    writer.delete_up_to(2).await.unwrap();
    let stored = writer
        .append(vec![event(6), event(7), event(8)])
        .await
        .unwrap();
    assert_eq!(
        stored,
        vec![
            Stored::Event { seq: 4 },
            Stored::Event { seq: 5 },
            Stored::Refused
        ]
    );
    drop(writer);
    // The limit holds across a restart: the depth is counted from the file.
    let writer = start_bounded(&path, 3, FullPolicy::Block);
    assert_eq!(
        writer.append(vec![event(9)]).await.unwrap(),
        vec![Stored::Refused]
    );
}

#[tokio::test]
async fn a_full_outbox_with_policy_drop_oldest_keeps_the_newest_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let writer = start_bounded(&path, 3, FullPolicy::DropOldest);
    let stored = writer.append((1..=5).map(event).collect()).await.unwrap();
    assert!(stored.iter().all(|s| matches!(s, Stored::Event { .. })));
    let reader = OutboxReader::open(&path).unwrap();
    let seqs: Vec<i64> = reader
        .read_after(0, 10)
        .unwrap()
        .iter()
        .map(|s| s.seq)
        .collect();
    assert_eq!(seqs, vec![3, 4, 5]);
}

/// An event captured `age_ms` ago.
fn aged_event(n: u32, age_ms: i64) -> Intake {
    let Intake::Event(mut event) = event(n) else {
        unreachable!()
    };
    event.timestamp = linegate_edge::capture::now_ms() - age_ms;
    Intake::Event(event)
}

#[tokio::test]
async fn the_byte_bound_blocks_or_drops_by_policy_and_drops_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    // Measure one event's stored size, then allow about three of them.
    let probe = dir.path().join("probe.db");
    start(&probe).append(vec![event(0)]).await.unwrap();
    let one = OutboxReader::open(&probe)
        .unwrap()
        .stats()
        .unwrap()
        .event_bytes;
    assert!(one > 100, "{one}");

    let blocked = dir.path().join("block.db");
    let options = OutboxOptions {
        max_bytes: one * 3,
        ..OPTIONS
    };
    let writer = OutboxWriter::start(&blocked, "ST-01", options, Arc::new(Notify::new())).unwrap();
    let stored = writer.append((1..=5).map(event).collect()).await.unwrap();
    assert_eq!(
        stored
            .iter()
            .filter(|s| matches!(s, Stored::Event { .. }))
            .count(),
        3,
        "{stored:?}"
    );
    assert!(stored[3..].iter().all(|s| matches!(s, Stored::Refused)));

    let dropping = dir.path().join("drop.db");
    let options = OutboxOptions {
        max_bytes: one * 3,
        full_policy: FullPolicy::DropOldest,
        ..OPTIONS
    };
    let writer = OutboxWriter::start(&dropping, "ST-01", options, Arc::new(Notify::new())).unwrap();
    writer.append((1..=5).map(event).collect()).await.unwrap();
    let reader = OutboxReader::open(&dropping).unwrap();
    let seqs: Vec<i64> = reader
        .read_after(0, 10)
        .unwrap()
        .iter()
        .map(|s| s.seq)
        .collect();
    assert_eq!(seqs, vec![3, 4, 5]);
    let stats = reader.stats().unwrap();
    assert_eq!(stats.dropped_events, 2);
    assert!(stats.event_bytes <= one * 3, "{}", stats.event_bytes);
}

#[tokio::test]
async fn the_age_bound_drops_old_events_under_drop_oldest_and_only_reports_them_under_block() {
    let dir = tempfile::tempdir().unwrap();
    for (policy, expected, dropped) in [
        (FullPolicy::DropOldest, vec![3, 4], 2),
        (FullPolicy::Block, vec![1, 2, 3, 4], 0),
    ] {
        let path = dir.path().join(format!("{policy:?}.db"));
        let options = OutboxOptions {
            max_age_ms: Some(3_600_000),
            full_policy: policy,
            ..OPTIONS
        };
        let writer = OutboxWriter::start(&path, "ST-01", options, Arc::new(Notify::new())).unwrap();
        writer
            .append(vec![
                aged_event(1, 7_200_000),
                aged_event(2, 3_700_000),
                aged_event(3, 60_000),
                event(4),
            ])
            .await
            .unwrap();
        let reader = OutboxReader::open(&path).unwrap();
        let seqs: Vec<i64> = reader
            .read_after(0, 10)
            .unwrap()
            .iter()
            .map(|s| s.seq)
            .collect();
        assert_eq!(seqs, expected, "{policy:?}");
        assert_eq!(
            reader.stats().unwrap().dropped_events,
            dropped,
            "{policy:?}"
        );
    }
}

fn mark(text: &str) -> Intake {
    Intake::Mark(SourceMark {
        source: "modbus:press-1".into(),
        mark: text.into(),
    })
}

#[tokio::test]
async fn a_source_mark_is_committed_with_its_results_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let writer = start_bounded(&path, 2, FullPolicy::Block);
    assert_eq!(writer.mark("modbus:press-1").await.unwrap(), None);
    let stored = writer.append(vec![event(1), mark("a")]).await.unwrap();
    assert_eq!(stored, vec![Stored::Event { seq: 1 }, Stored::Marked]);
    assert_eq!(
        writer.append(vec![mark("b")]).await.unwrap(),
        vec![Stored::Marked]
    );
    writer.append(vec![event(2)]).await.unwrap();
    // Full: the event is refused, and so is the mark behind it, so the mark never runs ahead of what is stored.
    let stored = writer.append(vec![event(3), mark("c")]).await.unwrap();
    assert_eq!(stored, vec![Stored::Refused, Stored::Refused]);
    assert_eq!(
        writer.mark("modbus:press-1").await.unwrap().as_deref(),
        Some("b")
    );
    assert_eq!(writer.mark("modbus:other").await.unwrap(), None);
    drop(writer);
    let writer = start_bounded(&path, 2, FullPolicy::Block);
    assert_eq!(
        writer.mark("modbus:press-1").await.unwrap().as_deref(),
        Some("b")
    );
}
