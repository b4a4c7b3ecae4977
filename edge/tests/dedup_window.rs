//! The outbox's dedup window against a real SQLite file: a repeat is caught within one group, across groups
//! and across restarts; the count bound forgets the oldest ids (also after a restart); a rolled-back commit
//! remembers nothing; ids another process logged are seen; an outbox of an earlier build keeps its ids.

mod support;
use support::OPTIONS;

use linegate_edge::capture::{envelope, now_ms, parse_document};
use linegate_edge::outbox::{
    retry_quarantined, Intake, OutboxOptions, OutboxReader, OutboxWriter, QuarantineEntry, Retried,
    Stored,
};

fn document(id: &str) -> String {
    format!(
        r#"{{"event_type":"INSPECTION_COMPLETED","event_id":"{id}","timestamp":1768905000250,"inspection_id":"i","batch_id":"B","chip_id":"c","inspection_type":"optical","status":"DONE","quality_score":0.9}}"#
    )
}

fn event(id: &str) -> Intake {
    let (inspection, trace) = parse_document(document(id).as_bytes()).unwrap();
    Intake::Event(Box::new(envelope("ST-01", inspection, trace, now_ms())))
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect()
}

fn start(path: &std::path::Path, options: OutboxOptions) -> OutboxWriter {
    support::writer(path, options)
}

#[tokio::test]
async fn a_repeat_is_caught_in_its_own_group_in_a_later_one_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let id = ids(3);
    let writer = start(&path, OPTIONS);
    assert_eq!(
        writer
            .append(vec![event(&id[0]), event(&id[0]), event(&id[1])])
            .await
            .unwrap(),
        vec![
            Stored::Event { seq: 1 },
            Stored::Duplicate,
            Stored::Event { seq: 2 }
        ]
    );
    assert_eq!(
        writer.append(vec![event(&id[1])]).await.unwrap(),
        vec![Stored::Duplicate]
    );
    drop(writer);
    let writer = start(&path, OPTIONS);
    assert_eq!(
        writer
            .append(vec![event(&id[0]), event(&id[2])])
            .await
            .unwrap(),
        vec![Stored::Duplicate, Stored::Event { seq: 3 }]
    );
}

#[tokio::test]
async fn the_count_bound_forgets_the_oldest_ids_and_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let options = OutboxOptions {
        dedup_max_ids: 10,
        ..OPTIONS
    };
    let id = ids(40);
    let writer = start(&path, options);
    for id in &id {
        writer.append(vec![event(id)]).await.unwrap();
    }
    // Pruned once over the bound plus its slack: the newest ten are remembered, the first ones forgotten.
    let again = writer.append(vec![event(&id[39]), event(&id[30])]).await;
    assert_eq!(again.unwrap(), vec![Stored::Duplicate, Stored::Duplicate]);
    assert_eq!(
        writer.append(vec![event(&id[0])]).await.unwrap(),
        vec![Stored::Event { seq: 41 }]
    );
    drop(writer);
    // A restart loads the newest `dedup_max_ids` from the log, no more.
    let writer = start(&path, options);
    let stored = writer
        .append(vec![event(&id[1]), event(&id[39])])
        .await
        .unwrap();
    assert_eq!(stored, vec![Stored::Event { seq: 42 }, Stored::Duplicate]);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let logged: i64 = conn
        .query_row("SELECT COUNT(*) FROM seen_log", [], |row| row.get(0))
        .unwrap();
    assert!(
        logged <= 12,
        "the log is pruned with the window: {logged} rows"
    );
}

#[tokio::test]
async fn a_commit_that_fails_remembers_none_of_its_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let id = ids(2);
    let writer = start(&path, OPTIONS);
    writer.append(vec![]).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    // A real failure inside the transaction, after the first id was logged.
    conn.execute_batch(&format!(
        "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.event_id = '{}' \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
        id[1]
    ))
    .unwrap();
    let failed = writer.append(vec![event(&id[0]), event(&id[1])]).await;
    assert!(failed.is_err(), "{failed:?}");
    conn.execute_batch("DROP TRIGGER refuse;").unwrap();
    assert_eq!(
        writer
            .append(vec![event(&id[0]), event(&id[1])])
            .await
            .unwrap(),
        vec![Stored::Event { seq: 1 }, Stored::Event { seq: 2 }]
    );
    assert_eq!(OutboxReader::open(&path).unwrap().depth().unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_stored_by_a_quarantine_retry_beside_the_writer_is_a_repeat_for_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let id = ids(1);
    let writer = start(&path, OPTIONS);
    let quarantined = Intake::Quarantine(QuarantineEntry {
        source: "mqtt".into(),
        origin: "stations/ST-01/results".into(),
        payload: document(&id[0]).into_bytes(),
        reason: "an older parser refused it".into(),
        received_at_ms: 1,
    });
    writer.append(vec![quarantined]).await.unwrap();
    let retried = retry_quarantined(&path, "ST-01", OPTIONS, None, |row| {
        let (inspection, trace) = parse_document(&row.payload).unwrap();
        Ok(envelope("ST-01", inspection, trace, now_ms()))
    })
    .unwrap();
    assert_eq!(retried[0].1, Retried::Stored { seq: 1 });
    // The broker now delivers the same result again: the running writer must not store it twice.
    assert_eq!(
        writer.append(vec![event(&id[0])]).await.unwrap(),
        vec![Stored::Duplicate]
    );
    assert_eq!(OutboxReader::open(&path).unwrap().depth().unwrap(), 1);
}

#[tokio::test]
async fn the_ids_of_an_outbox_written_by_an_earlier_build_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let id = ids(2);
    drop(start(&path, OPTIONS));
    {
        // The dedup table of earlier builds, keyed by id.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE seen (event_id TEXT PRIMARY KEY, seen_at_ms INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO seen VALUES ('{}', {}), ('{}', {});",
            id[0],
            now_ms() - 2,
            id[1],
            now_ms() - 1
        ))
        .unwrap();
    }
    let writer = start(&path, OPTIONS);
    assert_eq!(
        writer
            .append(vec![event(&id[1]), event(&id[0])])
            .await
            .unwrap(),
        vec![Stored::Duplicate, Stored::Duplicate]
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let old_table: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'seen'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(old_table, 0, "migrated into seen_log");
}

#[tokio::test]
async fn an_id_older_than_the_window_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let id = ids(2);
    let writer = start(&path, OPTIONS);
    writer
        .append(vec![event(&id[0]), event(&id[1])])
        .await
        .unwrap();
    drop(writer);
    // The first id was seen two hours ago: outside the one-hour window of OPTIONS.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE seen_log SET seen_at_ms = ?1 WHERE event_id = ?2",
        rusqlite::params![now_ms() - 7_200_000, id[0]],
    )
    .unwrap();
    let writer = start(&path, OPTIONS);
    assert_eq!(
        writer
            .append(vec![event(&id[0]), event(&id[1])])
            .await
            .unwrap(),
        vec![Stored::Event { seq: 3 }, Stored::Duplicate]
    );
}
