//! How the outbox stores an event: the single-object Avro that Kafka gets, passed on without decoding; and
//! rows an earlier build stored as CBOR, still read and sent after an upgrade.

mod support;
use support::OPTIONS;

use linegate_edge::capture::envelope;
use linegate_edge::outbox::{Intake, OutboxReader, OutboxWriter, Stored};
use linegate_schemas::{EdgeEvent, InspectionEvent, InspectionEventType, SINGLE_OBJECT_MAGIC};
use rusqlite::params;

fn event(n: u32) -> EdgeEvent {
    let inspection = InspectionEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_type: InspectionEventType::InspectionCompleted,
        timestamp: 1_700_000_000_000 + i64::from(n),
        inspection_id: format!("insp-{n}"),
        batch_id: "B-1".into(),
        chip_id: format!("C-{n}"),
        inspection_type: "optical".into(),
        status: "PASSED".into(),
        quality_score: Some(0.97),
        defects: vec![],
        metadata: [("line".to_owned(), "L1".to_owned())].into(),
    };
    envelope("ST-01", inspection, None, 1_700_000_000_000)
}

fn start(path: &std::path::Path) -> OutboxWriter {
    support::writer(path, OPTIONS)
}

#[tokio::test]
async fn a_stored_row_is_the_kafka_value_with_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let writer = start(&path);
    let items = (1..=3).map(|n| Intake::Event(Box::new(event(n)))).collect();
    assert_eq!(
        writer.append(items).await.unwrap(),
        (1..=3).map(|seq| Stored::Event { seq }).collect::<Vec<_>>()
    );
    let reader = OutboxReader::open(&path).unwrap();
    assert_eq!(reader.station_id().unwrap(), "ST-01");
    let decoded = reader.read_after(0, 10).unwrap();
    let encoded = reader.read_encoded_after(0, 10).unwrap();
    assert_eq!(encoded.len(), 3);
    for (stored, sent) in decoded.iter().zip(&encoded) {
        let value = sent.value.as_ref().unwrap();
        assert!(value.starts_with(&SINGLE_OBJECT_MAGIC));
        assert_eq!(sent.seq, stored.seq);
        assert_eq!(sent.event_id, stored.event.event_id);
        let on_kafka: EdgeEvent = linegate_schemas::decode(value).unwrap();
        assert_eq!(on_kafka, stored.event);
        assert_eq!(on_kafka.seq, sent.seq, "the seq is inside what Kafka gets");
    }
    assert_eq!(
        reader.read_encoded_after(2, 10).unwrap()[0].seq,
        3,
        "reading starts after the given seq"
    );
}

#[tokio::test]
async fn rows_an_earlier_build_stored_as_cbor_are_read_and_sent_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let writer = start(&path);
    drop(writer);
    // What an earlier build left in the file: seq 1 and 2 as CBOR; then this build appends seq 3.
    let mut legacy = Vec::new();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for seq in 1..=2 {
            let mut old = event(u32::try_from(seq).unwrap());
            old.seq = seq;
            conn.execute(
                "INSERT INTO events (seq, event_id, captured_at_ms, body) VALUES (?1, ?2, ?3, ?4)",
                params![
                    seq,
                    old.event_id,
                    old.timestamp,
                    linegate_schemas::to_cbor(&old).unwrap()
                ],
            )
            .unwrap();
            legacy.push(old);
        }
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'next_seq'", [])
            .unwrap();
    }
    let writer = start(&path);
    assert_eq!(
        writer
            .append(vec![Intake::Event(Box::new(event(3)))])
            .await
            .unwrap(),
        vec![Stored::Event { seq: 3 }]
    );
    let reader = OutboxReader::open(&path).unwrap();
    let decoded = reader.read_after(0, 10).unwrap();
    assert_eq!(&decoded[0].event, &legacy[0]);
    assert_eq!(&decoded[1].event, &legacy[1]);
    let encoded = reader.read_encoded_after(0, 10).unwrap();
    let seqs: Vec<i64> = encoded.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    for (sent, stored) in encoded.iter().zip(&decoded) {
        let on_kafka: EdgeEvent = linegate_schemas::decode(sent.value.as_ref().unwrap()).unwrap();
        assert_eq!(on_kafka, stored.event);
    }
}

#[tokio::test]
async fn an_unreadable_row_is_named_by_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    drop(start(&path));
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO events (seq, event_id, captured_at_ms, body) VALUES (1, 'x', 0, X'00FF')",
        [],
    )
    .unwrap();
    let reader = OutboxReader::open(&path).unwrap();
    let sent = reader.read_encoded_after(0, 10).unwrap();
    assert_eq!(sent[0].seq, 1);
    assert!(sent[0].value.is_err(), "{:?}", sent[0].value);
    let error = reader.read_after(0, 10).unwrap_err().to_string();
    assert!(error.contains("row seq 1 is unreadable"), "{error}");
}
