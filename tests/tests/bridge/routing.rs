//! The `[routing]` table against the real broker: drift reports go to an extra topic as well as the workflow
//! topic, system reports to a health topic, manufacturing milestones nowhere but the audit trail; each topic
//! gets exactly its events, in the station's order.

use std::collections::BTreeMap;
use std::time::Duration;

use linegate_e2e::kafka::{consume_until_async, produce_many, Record};
use linegate_e2e::process::repo_root;
use linegate_e2e::stack::BridgeRun;
use linegate_e2e::Kafka;
use linegate_schemas::{
    decode, encode, AuditEvent, AuditOutcome, EdgeEvent, EdgePayload, InferenceEvent,
    InferenceEventType, ManufacturingEvent, ManufacturingEventType, SystemEvent, SystemEventType,
};

const STATION: &str = "ST-R";
const EVENTS: i64 = 60;
const WAIT: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_millis(1500);

/// Event `seq`: a rotation of drift report, completed inference, system report and lot milestone.
fn edge_event(seq: i64) -> EdgeEvent {
    let event_id = uuid::Uuid::new_v4().to_string();
    let timestamp = 1_768_905_000_000 + seq * 10;
    let inference = |event_type| {
        EdgePayload::Inference(InferenceEvent {
            event_id: event_id.clone(),
            event_type,
            timestamp,
            inspection_id: format!("insp-{seq:03}"),
            model_name: "defect-net".into(),
            model_version: "3".into(),
            prediction: None,
            confidence: Some(0.5),
            latency_ms: Some(9),
            metadata: BTreeMap::new(),
        })
    };
    let payload = match seq % 4 {
        0 => inference(InferenceEventType::DriftDetected),
        1 => inference(InferenceEventType::InferenceCompleted),
        2 => EdgePayload::System(SystemEvent {
            event_id: event_id.clone(),
            event_type: SystemEventType::SourceDown,
            timestamp,
            component: "mqtt".into(),
            message: "the MQTT broker does not answer".into(),
            details: BTreeMap::new(),
        }),
        _ => EdgePayload::Manufacturing(ManufacturingEvent {
            event_id: event_id.clone(),
            event_type: ManufacturingEventType::LotStarted,
            timestamp,
            batch_id: format!("B-{seq}"),
            lot_id: None,
            product_id: None,
            quantity: Some(10),
            status: "STARTED".into(),
            metadata: BTreeMap::new(),
        }),
    };
    EdgeEvent {
        event_type: payload.event_type_symbol().to_owned(),
        event_id,
        timestamp,
        trace_id: format!("trace-{seq}"),
        source_service: "linegate-edge".to_owned(),
        schema_version: linegate_schemas::SCHEMA_VERSION.to_owned(),
        station_id: STATION.to_owned(),
        seq,
        outbox_epoch: String::new(),
        payload,
    }
}

/// The example bridge config with a `[routing]` table, and the example topic plan with its two topics.
fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    let root = repo_root().join("config");
    let example = std::fs::read_to_string(root.join("bridge.example.toml")).unwrap();
    let routing = "[routing]\nDRIFT_DETECTED = [\"inference.workflow\", \"ml.drift\"]\n\
                   system = [\"station.health\"]\nmanufacturing = []\n";
    let config = example.replacen("[routing]\n", routing, 1);
    assert_ne!(config, example, "the example has a [routing] section");
    let mut plan = std::fs::read_to_string(root.join("topics.toml")).unwrap();
    for topic in ["ml.drift", "station.health"] {
        plan.push_str(&format!(
            "\n[topics.\"{topic}\"]\npartitions = 2\nretention_ms = 86400000\ncleanup_policy = \"delete\"\nkey = \"as routed\"\n"
        ));
    }
    std::fs::write(dir.join("topics.toml"), plan).unwrap();
    let path = dir.join("bridge.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// The ids of `records` in seq order, after checking that each partition holds them in seq order (records
/// keyed by inspection or batch spread over partitions; only the order within one is kept).
fn ids(records: &[Record]) -> Vec<String> {
    let seq = |r: &Record| r.header("seq").and_then(|s| s.parse::<i64>().ok());
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for record in records {
        by_partition
            .entry(record.partition)
            .or_default()
            .push(seq(record).expect("seq header"));
    }
    for (partition, seqs) in &by_partition {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "partition {partition} out of order: {seqs:?}"
        );
    }
    let mut records: Vec<&Record> = records.iter().collect();
    records.sort_by_key(|r| seq(r));
    records
        .iter()
        .map(|r| r.header("idempotency-key").unwrap_or("?").to_owned())
        .collect()
}

fn expected_ids(events: &[EdgeEvent], rest: i64) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.seq % 4 == rest)
        .map(|e| e.event_id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_routed_topic_gets_exactly_its_events_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::start().unwrap();
    let bootstrap = kafka.bootstrap();
    let config = write_config(dir.path());
    let mut bridge = BridgeRun::new(&kafka, "routing", dir.path())
        .config(&config)
        .envs(&[])
        .start()
        .unwrap();
    bridge
        .wait_for_log("input partitions assigned", Duration::from_secs(90))
        .unwrap();

    let events: Vec<EdgeEvent> = (1..=EVENTS).map(edge_event).collect();
    let records: Vec<_> = events
        .iter()
        .map(|e| (Some(STATION.as_bytes().to_vec()), encode(e).unwrap()))
        .collect();
    produce_many(&bootstrap, "edge.station.events", &records)
        .await
        .unwrap();

    let count = |rest| events.iter().filter(|e| e.seq % 4 == rest).count();
    let read =
        |topic: &'static str, n: usize| consume_until_async(&bootstrap, topic, n, WAIT, GRACE);
    let audit = read("audit.events", events.len()).await.unwrap();
    assert_eq!(audit.len(), events.len(), "one audit record per event");
    let drift = read("ml.drift", count(0)).await.unwrap();
    assert_eq!(
        ids(&drift),
        expected_ids(&events, 0),
        "drift reports, in order"
    );
    let back: InferenceEvent = decode(&drift[0].value).unwrap();
    assert_eq!(back.event_type, InferenceEventType::DriftDetected);

    let workflow = read("inference.workflow", count(0) + count(1))
        .await
        .unwrap();
    let inference: Vec<String> = events
        .iter()
        .filter(|e| e.seq % 4 <= 1)
        .map(|e| e.event_id.clone())
        .collect();
    assert_eq!(
        ids(&workflow),
        inference,
        "every inference step, drift included"
    );

    let health = read("station.health", count(2)).await.unwrap();
    assert_eq!(ids(&health), expected_ids(&events, 2));
    assert!(health.iter().all(|r| r.key_str() == Some(STATION)));

    for record in &audit {
        let audit: AuditEvent = decode(&record.value).unwrap();
        assert_eq!(audit.outcome, AuditOutcome::Accepted, "{audit:?}");
        if audit.event_type.as_deref() == Some("LOT_STARTED") {
            assert!(audit.outputs.is_empty(), "milestones go nowhere: {audit:?}");
        }
    }
    let milestones = consume_until_async(
        &bootstrap,
        "manufacturing.lifecycle",
        1,
        Duration::from_secs(3),
        GRACE,
    )
    .await;
    assert!(
        milestones.is_err(),
        "manufacturing is routed nowhere, yet its topic got records"
    );
    bridge.terminate(Duration::from_secs(20));
}
