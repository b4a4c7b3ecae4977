//! `outbox quarantine retry` on a real outbox file, beside a running writer: payloads that parse now become
//! events with the next seqs, the others stay with a new reason, and the writer's seqs stay gapless and unique.

mod support;
use support::OPTIONS;

use linegate_edge::capture::{envelope, now_ms, parse_document};
use linegate_edge::outbox::{
    retry_quarantined, Intake, OutboxReader, QuarantineEntry, Retried, RetryRefusal, Stored,
};

fn document(n: u32) -> String {
    format!(
        r#"{{"event_type":"INSPECTION_COMPLETED","event_id":"{}","timestamp":1768905000250,"inspection_id":"i-{n}","batch_id":"B","chip_id":"c-{n}","inspection_type":"optical","status":"DONE","quality_score":0.9}}"#,
        uuid::Uuid::new_v4()
    )
}

fn quarantined(payload: &str) -> Intake {
    Intake::Quarantine(QuarantineEntry {
        source: "mqtt".into(),
        origin: "stations/ST-01/results".into(),
        payload: payload.as_bytes().to_vec(),
        reason: "an older parser refused it".into(),
        received_at_ms: 1,
    })
}

fn event(n: u32) -> Intake {
    let (inspection, trace) = parse_document(document(n).as_bytes()).unwrap();
    Intake::Event(Box::new(envelope("ST-01", inspection, trace, now_ms())))
}

fn parse(
    row: &linegate_edge::outbox::QuarantinedPayload,
) -> Result<linegate_schemas::EdgeEvent, RetryRefusal> {
    if row.source != "mqtt" {
        return Err(RetryRefusal::NotRetriable(format!(
            "{} keeps raw registers",
            row.source
        )));
    }
    let (inspection, trace) =
        parse_document(&row.payload).map_err(|e| RetryRefusal::Unparseable(e.to_string()))?;
    Ok(envelope("ST-01", inspection, trace, now_ms()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_payloads_take_the_next_seqs_beside_a_running_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let writer = support::writer(&path, OPTIONS);
    let good = document(100);
    let stored = writer
        .append(vec![
            event(1),
            quarantined(&good),
            quarantined("{still broken"),
            event(2),
        ])
        .await
        .unwrap();
    assert_eq!(
        stored,
        [
            Stored::Event { seq: 1 },
            Stored::Quarantined,
            Stored::Quarantined,
            Stored::Event { seq: 2 }
        ]
    );

    // The writer keeps appending while the retry runs from its own connection.
    let appending = {
        let writer = writer.clone();
        tokio::spawn(async move {
            for n in 3..203 {
                writer.append(vec![event(n)]).await.unwrap();
            }
        })
    };
    let retry_path = path.clone();
    let outcomes = tokio::task::spawn_blocking(move || {
        retry_quarantined(&retry_path, "ST-01", OPTIONS, None, parse)
    })
    .await
    .unwrap()
    .unwrap();
    appending.await.unwrap();
    assert_eq!(outcomes.len(), 2);
    assert!(
        matches!(outcomes[0].1, Retried::Stored { .. }),
        "{outcomes:?}"
    );
    assert!(
        matches!(&outcomes[1].1, Retried::StillBad(reason) if reason.contains("not a station result document")),
        "{outcomes:?}"
    );

    // Every seq from 1 to 203 exactly once, the retried document among them.
    let reader = OutboxReader::open(&path).unwrap();
    let events = reader.read_after(0, 1000).unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=203).collect::<Vec<_>>());
    let good_id: serde_json::Value = serde_json::from_str(&good).unwrap();
    assert!(events
        .iter()
        .any(|e| e.event.event_id == good_id["event_id"].as_str().unwrap()));
    let left = reader.quarantine(10).unwrap();
    assert_eq!(left.len(), 1);
    assert!(
        left[0].reason.starts_with("retried: "),
        "{}",
        left[0].reason
    );

    // A payload a retry cannot parse at all (raw PLC registers) keeps its reason.
    writer
        .append(vec![Intake::Quarantine(QuarantineEntry {
            source: "modbus:press-1".into(),
            origin: "counter 7".into(),
            payload: vec![0, 7],
            reason: "status (register 30, Holding): value 7 is not in the enum table".into(),
            received_at_ms: 2,
        })])
        .await
        .unwrap();
    let all = retry_quarantined(&path, "ST-01", OPTIONS, None, parse).unwrap();
    assert!(matches!(all[1].1, Retried::NotRetriable(_)), "{all:?}");
    let kept = reader.quarantine(10).unwrap();
    assert_eq!(
        kept[1].reason,
        "status (register 30, Holding): value 7 is not in the enum table"
    );

    // A second retry of the same payload id moves nothing.
    let again = retry_quarantined(&path, "ST-01", OPTIONS, Some(&[left[0].id]), parse).unwrap();
    assert!(matches!(again[0].1, Retried::StillBad(_)));
}
