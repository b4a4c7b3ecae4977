//! Quality windows against a real broker: completed inspections written straight to the ingest topic close
//! tumbling event-time windows, and each closed window arrives on `quality.events` once, with the figures
//! computed from exactly the events inside it (a late event is left out), and with the stable window id.

use std::collections::BTreeMap;
use std::time::Duration;

use linegate_e2e::kafka::{consume_until_async, create_topic, produce};
use linegate_e2e::stack::BridgeRun;
use linegate_e2e::Kafka;
use linegate_schemas::{
    decode, encode, EdgeEvent, EdgePayload, InspectionEvent, InspectionEventType, QualityEvent,
};

const STATION: &str = "ST-W";
const MINUTE: i64 = 60_000;
const WAIT: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_millis(1500);

fn completed(seq: i64, event_time: i64, score: f64) -> EdgeEvent {
    let event_id = uuid::Uuid::new_v4().to_string();
    linegate_e2e::events::edge_event(
        STATION,
        seq,
        event_time + 5,
        EdgePayload::Inspection(InspectionEvent {
            event_id,
            event_type: InspectionEventType::InspectionCompleted,
            timestamp: event_time,
            inspection_id: format!("insp-{seq}"),
            batch_id: "LOT-1".into(),
            chip_id: format!("chip-{seq}"),
            inspection_type: "optical".into(),
            status: "DONE".into(),
            quality_score: Some(score),
            defects: vec![],
            metadata: BTreeMap::new(),
        }),
    )
}

/// The QUALITY_WINDOW records among `records` of `quality.events`, in order.
fn window_records(records: &[linegate_e2e::kafka::Record]) -> Vec<QualityEvent> {
    records
        .iter()
        .map(|r| decode::<QualityEvent>(&r.value).unwrap())
        .filter(|q| q.event_type == "QUALITY_WINDOW")
        .collect()
}

fn mean_and_sd(scores: &[f64]) -> (f64, f64) {
    let n = scores.len() as f64;
    let mean = scores.iter().sum::<f64>() / n;
    let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_windows_arrive_once_with_the_figures_of_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::start().unwrap();
    let bootstrap = kafka.bootstrap();
    // One-minute windows, 5 s lateness, as an operator would set them through the example config.
    let _bridge = BridgeRun::new(&kafka, "windows", dir.path())
        .envs(&[
            ("LINEGATE_WINDOW_SECS", "60".to_owned()),
            ("LINEGATE_WINDOW_LATENESS_SECS", "5".to_owned()),
        ])
        .start()
        .unwrap();

    let t0 = 1_768_905_000_000 / MINUTE * MINUTE;
    let first: Vec<f64> = vec![0.91, 0.88, 0.95, 0.84, 0.90, 0.93, 0.89, 0.97, 0.86, 0.92];
    let second: Vec<f64> = vec![0.80, 0.99, 0.90, 0.85];
    let mut events = Vec::new();
    let mut seq = 0;
    for (i, score) in first.iter().enumerate() {
        seq += 1;
        events.push(completed(seq, t0 + i as i64 * 5_000, *score));
    }
    for (i, score) in second.iter().enumerate() {
        seq += 1;
        // 61 s in: the first window [t0, t0+60 s) is still open (watermark 56 s).
        events.push(completed(
            seq,
            t0 + MINUTE + 1_000 + i as i64 * 1_000,
            *score,
        ));
    }
    // 66 s: the watermark passes 60 s, the first window closes.
    seq += 1;
    events.push(completed(seq, t0 + MINUTE + 6_000, 0.90));
    // An event of the first window after it closed: late, in neither window.
    seq += 1;
    events.push(completed(seq, t0 + 30_000, 0.10));
    // 3 minutes: the second window closes.
    seq += 1;
    events.push(completed(seq, t0 + 3 * MINUTE, 0.90));
    create_topic(&bootstrap, "edge.station.events", 3)
        .await
        .unwrap();
    for event in &events {
        produce(
            &bootstrap,
            "edge.station.events",
            Some(STATION.as_bytes()),
            &encode(event).unwrap(),
        )
        .await
        .unwrap();
    }

    // One verdict per event, plus the two closed windows.
    let records = consume_until_async(&bootstrap, "quality.events", events.len() + 2, WAIT, GRACE)
        .await
        .unwrap();
    let windows = window_records(&records);
    assert_eq!(windows.len(), 2, "{windows:#?}");
    assert_eq!(records.len(), events.len() + 2);

    let figures = windows[0].window.clone().unwrap();
    assert_eq!((figures.start, figures.end), (t0, t0 + MINUTE));
    assert_eq!(
        figures.count, 10,
        "the late event is not in the first window"
    );
    // Threshold for optical in the example config: 0.85.
    assert_eq!(figures.fail_count, 1);
    let (mean, sd) = mean_and_sd(&first);
    assert!((figures.mean_score.unwrap() - mean).abs() < 1e-9);
    assert!((figures.stddev_score.unwrap() - sd).abs() < 1e-9);
    assert_eq!((figures.lsl, figures.usl), (Some(0.80), Some(1.00)));
    assert!((figures.cp.unwrap() - 0.20 / (6.0 * sd)).abs() < 1e-9);
    let cpk = (1.00 - mean).min(mean - 0.80) / (3.0 * sd);
    assert!((figures.cpk.unwrap() - cpk).abs() < 1e-9);
    assert_eq!(windows[0].station_id, STATION);
    assert_eq!(windows[0].timestamp, t0 + MINUTE);

    let second_figures = windows[1].window.clone().unwrap();
    assert_eq!(
        (second_figures.start, second_figures.end),
        (t0 + MINUTE, t0 + 2 * MINUTE)
    );
    let mut with_closer = second.clone();
    with_closer.push(0.90);
    assert_eq!(second_figures.count, with_closer.len() as i64);
    let (mean, _) = mean_and_sd(&with_closer);
    assert!((second_figures.mean_score.unwrap() - mean).abs() < 1e-9);
    assert_ne!(windows[0].event_id, windows[1].event_id);
    // The id is derived from station, type, start and size: recomputable by any consumer.
    let expected_id = uuid::Uuid::new_v5(
        &linegate_bridge_namespace(),
        format!("window:{STATION}:optical:{t0}:{MINUTE}").as_bytes(),
    );
    assert_eq!(windows[0].event_id, expected_id.hyphenated().to_string());
}

/// linegate's namespace for derived ids (the bridge's `route::ID_NAMESPACE`).
fn linegate_bridge_namespace() -> uuid::Uuid {
    uuid::Uuid::from_u128(0x6c69_6e65_6761_7465_8000_0000_0000_0001)
}

/// A window open when its bridge stops is closed by the next bridge with every event in it: the open windows
/// travel with the station's state on `linegate.bridge.state`. Without them the second bridge would count only
/// the events it read itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_window_open_across_a_bridge_restart_keeps_the_events_of_both_bridges() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::start().unwrap();
    let bootstrap = kafka.bootstrap();
    let env = [
        ("LINEGATE_WINDOW_SECS", "60".to_owned()),
        ("LINEGATE_WINDOW_LATENESS_SECS", "5".to_owned()),
    ];
    create_topic(&bootstrap, "edge.station.events", 3)
        .await
        .unwrap();
    let t0 = 1_768_905_000_000 / MINUTE * MINUTE;
    let scores: Vec<f64> = vec![0.91, 0.88, 0.95, 0.84, 0.90, 0.93, 0.89, 0.97, 0.86, 0.92];
    let mut events: Vec<EdgeEvent> = scores
        .iter()
        .enumerate()
        .map(|(i, score)| completed(i as i64 + 1, t0 + i as i64 * 5_000, *score))
        .collect();
    // 66 s: closes the window [t0, t0 + 60 s).
    events.push(completed(11, t0 + MINUTE + 6_000, 0.90));
    let send = |events: Vec<EdgeEvent>| {
        let bootstrap = bootstrap.clone();
        async move {
            for event in &events {
                let value = encode(event).unwrap();
                produce(
                    &bootstrap,
                    "edge.station.events",
                    Some(STATION.as_bytes()),
                    &value,
                )
                .await
                .unwrap();
            }
        }
    };

    let mut first = BridgeRun::new(&kafka, "windows-restart", dir.path())
        .instance("-1")
        .envs(&env)
        .start()
        .unwrap();
    send(events[..4].to_vec()).await;
    // Four verdicts out: their round (outputs and state) is written and committed.
    let verdicts = consume_until_async(&bootstrap, "quality.events", 4, WAIT, GRACE)
        .await
        .unwrap();
    assert_eq!(verdicts.len(), 4);
    assert!(
        first.terminate(Duration::from_secs(30)),
        "the first bridge stops on SIGTERM"
    );

    let _second = BridgeRun::new(&kafka, "windows-restart", dir.path())
        .instance("-2")
        .envs(&env)
        .start()
        .unwrap();
    send(events[4..].to_vec()).await;
    let records = consume_until_async(&bootstrap, "quality.events", events.len() + 1, WAIT, GRACE)
        .await
        .unwrap();
    let windows = window_records(&records);
    assert_eq!(windows.len(), 1, "{windows:#?}");
    assert_eq!(
        records.len(),
        events.len() + 1,
        "one verdict per event and the window"
    );
    let figures = windows[0].window.clone().unwrap();
    assert_eq!((figures.start, figures.end), (t0, t0 + MINUTE));
    assert_eq!(
        figures.count, 10,
        "4 events seen by the first bridge, 6 by the second"
    );
    let (mean, sd) = mean_and_sd(&scores);
    assert!((figures.mean_score.unwrap() - mean).abs() < 1e-9);
    assert!((figures.stddev_score.unwrap() - sd).abs() < 1e-9);
}
