//! The bridge with a schema registry, against the real broker and the test stand-in for Confluent Schema
//! Registry (`linegate_e2e::schema_registry`; not the real registry, which cannot be installed here).
//!
//! The registry is down when the bridge starts: nothing is produced until it is up, then every output on
//! lifecycle, quality, audit and inference is in the Confluent wire format with the id the stand-in issued
//! for `<topic>-value`, and decodes with the schema of that id to exactly what was sent. While the registry
//! is stopped again, outputs whose ids are cached keep flowing and a round needing a new subject waits until
//! it is back. Dead letters stay byte for byte the input, the state topic stays JSON, and `audit verify`
//! passes on the Confluent-framed audit topic (and, without the registry configured, says why it cannot).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use linegate_e2e::kafka::{consume_until_async, produce_many, Record};
use linegate_e2e::stack::{audit_verify_with, BridgeRun};
use linegate_e2e::{Kafka, SchemaRegistryStandIn};
use linegate_schemas::{
    encode, AuditEvent, AuditOutcome, Defect, EdgeEvent, EdgePayload, InferenceEvent,
    InferenceEventType, InspectionEvent, InspectionEventType, QualityEvent,
};

const INPUT: &str = "edge.station.events";
const LIFECYCLE: &str = "inspection.lifecycle";
const QUALITY: &str = "quality.events";
const AUDIT: &str = "audit.events";
const INFERENCE: &str = "inference.workflow";
const DLQ: &str = "edge.station.events.dlq";
const STATE: &str = "linegate.bridge.state";
const STATIONS: [&str; 2] = ["ST-A", "ST-B"];
const GARBAGE: &[u8] = b"this is not an EdgeEvent";
const WAIT: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_millis(1500);
/// How long a test watches for records that must not come.
const QUIET: Duration = Duration::from_secs(5);
const URL_VAR: &str = "LINEGATE_SCHEMA_REGISTRY_URL";

fn edge_event(station: &str, seq: i64, payload: EdgePayload) -> EdgeEvent {
    linegate_e2e::events::edge_event(station, seq, 1_768_905_000_000 + seq * 10, payload)
}

/// Odd seqs start an inspection, even seqs complete it with a score of 0.9 (optical: 0.85 passes).
fn inspection(station: &str, seq: i64, score: Option<f64>) -> EdgeEvent {
    let completed = seq % 2 == 0;
    let event_type = match completed {
        true => InspectionEventType::InspectionCompleted,
        false => InspectionEventType::InspectionStarted,
    };
    let payload = EdgePayload::Inspection(InspectionEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_type,
        timestamp: 1_768_905_000_000 + seq * 10 - 3,
        inspection_id: format!("{station}-insp-{:04}", (seq + 1) / 2),
        batch_id: "LOT-7".to_owned(),
        chip_id: format!("{station}-chip-{seq}"),
        inspection_type: "optical".to_owned(),
        status: if completed { "DONE" } else { "RUNNING" }.to_owned(),
        quality_score: if completed { score.or(Some(0.9)) } else { None },
        defects: vec![Defect {
            defect_type: "scratch".to_owned(),
            severity: "LOW".to_owned(),
            confidence: 0.5,
            location: "x=1,y=2".to_owned(),
        }],
        metadata: BTreeMap::new(),
    });
    edge_event(station, seq, payload)
}

fn inference(station: &str, seq: i64) -> EdgeEvent {
    let payload = EdgePayload::Inference(InferenceEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_type: InferenceEventType::InferenceCompleted,
        timestamp: 1_768_905_000_000 + seq * 10 - 3,
        inspection_id: format!("{station}-insp-{seq}"),
        model_name: "defect-net".into(),
        model_version: "3".into(),
        prediction: Some("ok".into()),
        confidence: Some(0.97),
        latency_ms: Some(9),
        metadata: BTreeMap::new(),
    });
    edge_event(station, seq, payload)
}

fn keyed(events: &[EdgeEvent]) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    events
        .iter()
        .map(|e| (Some(e.station_id.clone().into_bytes()), encode(e).unwrap()))
        .collect()
}

/// The broker, and the bridge log that explains a failure.
struct Stack {
    bootstrap: String,
    log: std::path::PathBuf,
}

impl Stack {
    /// At least `expected` records of `topic` (and any more within the grace period).
    async fn read(&self, topic: &str, expected: usize) -> Vec<Record> {
        consume_until_async(&self.bootstrap, topic, expected, WAIT, GRACE)
            .await
            .unwrap_or_else(|e| {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "{e}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
    }

    /// Everything on `topic` after watching it for [`QUIET`].
    async fn settled(&self, topic: &str) -> Vec<Record> {
        consume_until_async(&self.bootstrap, topic, 0, WAIT, QUIET)
            .await
            .unwrap()
    }
}

/// Decodes every record of `records` through the stand-in: each must be Confluent-framed with an id issued
/// for `<topic>-value`.
fn decode_all<M: linegate_schemas::AvroMessage>(
    registry: &SchemaRegistryStandIn,
    topic: &str,
    records: &[Record],
) -> Vec<M> {
    let ids = registry.subject_ids(&format!("{topic}-value"));
    assert_eq!(ids.len(), 1, "{topic}-value has one version: {ids:?}");
    records
        .iter()
        .map(|r| {
            let (id, message) = registry
                .decode::<M>(&r.value)
                .unwrap_or_else(|e| panic!("{topic} offset {}: {e}", r.offset));
            assert_eq!(id, ids[0], "{topic} offset {}", r.offset);
            message
        })
        .collect()
}

fn no_repeats(topic: &str, records: &[Record]) {
    let keys: HashSet<&str> = records
        .iter()
        .map(|r| r.header("idempotency-key").unwrap())
        .collect();
    assert_eq!(
        keys.len(),
        records.len(),
        "{topic}: no output written twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_use_the_confluent_wire_format_and_wait_for_a_registry_that_is_away() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::start().unwrap();
    let mut registry = SchemaRegistryStandIn::start().unwrap();
    registry.stop();
    let env = [(URL_VAR, registry.url())];
    let mut bridge = BridgeRun::new(&kafka, "registry-test", dir.path())
        .envs(&env)
        .start()
        .unwrap();
    let stack = Stack {
        bootstrap: kafka.bootstrap(),
        log: dir.path().join("bridge-registry-test.log"),
    };
    bridge
        .wait_for_log("schema registry not reachable", WAIT)
        .unwrap();

    // 1. Registry down since the start: 40 inspection steps and two inputs for the DLQ wait, all of them.
    let first: Vec<EdgeEvent> = (1..=20)
        .flat_map(|seq| STATIONS.map(|s| inspection(s, seq, None)))
        .collect();
    let out_of_range = inspection("ST-X", 2, Some(1.7));
    let mut inputs = keyed(&first);
    inputs.insert(10, (Some(b"ST-A".to_vec()), GARBAGE.to_vec()));
    inputs.extend(keyed(std::slice::from_ref(&out_of_range)));
    produce_many(&kafka.bootstrap(), INPUT, &inputs)
        .await
        .unwrap();
    // The first round has its records once it read the dedup state; then it routes them and waits.
    bridge.wait_for_log("dedup state restored", WAIT).unwrap();
    for topic in [LIFECYCLE, QUALITY, AUDIT, DLQ] {
        let early = stack.settled(topic).await;
        assert!(
            early.is_empty(),
            "{topic}: {} records before the registry",
            early.len()
        );
    }
    assert!(bridge.is_running(), "{}", bridge.log_tail(20));

    // 2. The registry comes up: the waiting round goes out, all of it.
    registry.start_again().unwrap();
    assert_eq!(stack.read(AUDIT, 42).await.len(), 42);
    bridge
        .wait_for_log("schema registry reachable again", WAIT)
        .unwrap();

    // 3. Registry stopped: cached ids keep the inspection outputs flowing.
    registry.stop();
    let second: Vec<EdgeEvent> = (21..=30)
        .flat_map(|seq| STATIONS.map(|s| inspection(s, seq, None)))
        .collect();
    produce_many(&kafka.bootstrap(), INPUT, &keyed(&second))
        .await
        .unwrap();
    assert_eq!(stack.read(AUDIT, 62).await.len(), 62);

    // 4. Still stopped: inference events need a subject not yet registered, so their round waits.
    let third: Vec<EdgeEvent> = (31..=35)
        .flat_map(|seq| STATIONS.map(|s| inference(s, seq)))
        .collect();
    produce_many(&kafka.bootstrap(), INPUT, &keyed(&third))
        .await
        .unwrap();
    assert_eq!(stack.settled(AUDIT).await.len(), 62, "the round waits");
    assert!(stack.settled(INFERENCE).await.is_empty());

    // 5. Back again: the waiting round goes out.
    registry.start_again().unwrap();
    let accepted: Vec<&EdgeEvent> = first.iter().chain(&second).collect();
    let completed: Vec<&EdgeEvent> = accepted
        .iter()
        .copied()
        .filter(|e| e.seq % 2 == 0)
        .collect();
    let audit = stack.read(AUDIT, 72).await;
    let lifecycle = stack.read(LIFECYCLE, accepted.len()).await;
    let quality = stack.read(QUALITY, completed.len()).await;
    let inferences = stack.read(INFERENCE, third.len()).await;
    let dead = stack.read(DLQ, 2).await;
    assert_eq!(
        (
            audit.len(),
            lifecycle.len(),
            quality.len(),
            inferences.len(),
            dead.len()
        ),
        (72, 60, 30, 10, 2),
        "audit, lifecycle, quality, inference, dlq"
    );
    for (topic, records) in [
        (AUDIT, &audit),
        (LIFECYCLE, &lifecycle),
        (QUALITY, &quality),
        (INFERENCE, &inferences),
    ] {
        no_repeats(topic, records);
    }

    // Each output decodes, through the id it carries, to what was sent.
    let ids = |events: &mut dyn Iterator<Item = &EdgeEvent>| -> BTreeSet<String> {
        events.map(|e| e.payload.event_id().to_owned()).collect()
    };
    let lifecycle: Vec<InspectionEvent> = decode_all(&registry, LIFECYCLE, &lifecycle);
    assert_eq!(
        lifecycle
            .iter()
            .map(|e| e.event_id.clone())
            .collect::<BTreeSet<_>>(),
        ids(&mut accepted.iter().copied())
    );
    let quality: Vec<QualityEvent> = decode_all(&registry, QUALITY, &quality);
    assert_eq!(
        quality
            .iter()
            .map(|q| q.source_event_id.clone().unwrap())
            .collect::<BTreeSet<_>>(),
        ids(&mut completed.iter().copied())
    );
    assert!(quality
        .iter()
        .all(|q| q.verdict == Some(linegate_schemas::QualityVerdict::Pass)));
    let inferences: Vec<InferenceEvent> = decode_all(&registry, INFERENCE, &inferences);
    assert_eq!(
        inferences
            .iter()
            .map(|e| e.event_id.clone())
            .collect::<BTreeSet<_>>(),
        ids(&mut third.iter())
    );
    let audits: Vec<AuditEvent> = decode_all(&registry, AUDIT, &audit);
    let outcomes = audits.iter().fold(BTreeMap::new(), |mut counts, a| {
        *counts.entry(format!("{:?}", a.outcome)).or_insert(0) += 1;
        counts
    });
    assert_eq!(
        outcomes,
        BTreeMap::from([("Accepted".to_owned(), 70), ("Rejected".to_owned(), 2)])
    );
    assert!(audits.iter().all(|a| a.outcome != AuditOutcome::Duplicate));

    // Dead letters are the inputs as they were; the state topic is JSON.
    let dead_values: BTreeSet<Vec<u8>> = dead.iter().map(|r| r.value.clone()).collect();
    assert_eq!(
        dead_values,
        BTreeSet::from([GARBAGE.to_vec(), encode(&out_of_range).unwrap()])
    );
    let state = stack.read(STATE, 1).await;
    assert!(state
        .iter()
        .all(|r| r.value.is_empty() || r.value.starts_with(b"{")));

    // One registration per subject: ids are cached, not asked for per round.
    let registered: Vec<String> = registry
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("POST /subjects/") && r.ends_with(" 200"))
        .collect();
    assert_eq!(registered.len(), 4, "{registered:?}");
    assert_eq!(
        registry.subjects(),
        [
            "audit.events-value",
            "inference.workflow-value",
            "inspection.lifecycle-value",
            "quality.events-value"
        ]
    );

    // audit verify reads the Confluent-framed chains through the registry, and says what it lacks without.
    let (passed, text) = audit_verify_with(&kafka, AUDIT, &env);
    assert!(passed, "{text}");
    assert!(text.contains("72 audit records"), "{text}");
    assert!(text.contains("every chain is intact"), "{text}");
    let (passed, text) = audit_verify_with(&kafka, AUDIT, &[]);
    assert!(!passed, "{text}");
    assert!(
        text.contains("no [schema_registry] url is configured"),
        "{text}"
    );
    assert!(bridge.terminate(Duration::from_secs(20)));
    eprintln!("schema registry e2e: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incompatible_subject_stops_the_bridge_naming_the_subject_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::start().unwrap();
    let registry = SchemaRegistryStandIn::start().unwrap();
    let legacy = r#"{"type":"record","name":"AuditEvent","namespace":"linegate","fields":[{"name":"legacy","type":"int"}]}"#;
    registry.register("audit.events-value", legacy).unwrap();
    let env = [(URL_VAR, registry.url())];
    let mut bridge = BridgeRun::new(&kafka, "registry-conflict", dir.path())
        .envs(&env)
        .start()
        .unwrap();
    let status = bridge.wait_exit(WAIT).expect("the bridge stops by itself");
    assert!(!status.success());
    let log = bridge.log_tail(10);
    assert!(
        log.contains("subject audit.events-value: incompatible with its latest version"),
        "{log}"
    );
    assert!(
        log.contains("cannot read data written with version 1"),
        "{log}"
    );
    assert_eq!(registry.subject_ids("audit.events-value").len(), 1);
}
