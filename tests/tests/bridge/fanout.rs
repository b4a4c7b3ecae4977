//! The bridge alone, against a real broker: EdgeEvents written straight to `edge.station.events` (no edge, no
//! MQTT) fan out to lifecycle, quality, audit and the DLQ with exact counts, in per-station order, and a
//! restarted bridge resumes after its committed offsets without re-emitting anything, and one whose group lost
//! its commits reads everything again and skips it all as replays.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use linegate_e2e::kafka::{
    committed_total, consume_until_async, rewind_group, topic_config, Record,
};
use linegate_e2e::stack::{start_bridge, BridgeRun};
use linegate_e2e::{ChildProcess, Kafka};
use linegate_schemas::{
    decode, encode, AuditEvent, AuditOutcome, Defect, EdgeEvent, EdgePayload, InspectionEvent,
    InspectionEventType, QualityEvent, QualityVerdict,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

const INPUT: &str = "edge.station.events";
const LIFECYCLE: &str = "inspection.lifecycle";
const QUALITY: &str = "quality.events";
const AUDIT: &str = "audit.events";
const DLQ: &str = "edge.station.events.dlq";
const STATIONS: [&str; 2] = ["ST-A", "ST-B"];
const EVENTS_PER_STATION: i64 = 100;
const MORE_PER_STATION: i64 = 5;
const GARBAGE: &[u8] = b"this is not an EdgeEvent";
const WAIT: Duration = Duration::from_secs(40);
/// How long a read goes on after the expected count arrived, to catch duplicates.
const GRACE: Duration = Duration::from_millis(1500);

/// Thresholds of `config/bridge.example.toml`.
fn threshold(inspection_type: &str) -> f64 {
    match inspection_type {
        "optical" => 0.85,
        "xray" => 0.90,
        "electrical" => 0.75,
        _ => 0.80,
    }
}

/// Event `seq` of `station`: odd seqs start inspection (seq+1)/2, even seqs complete it with a score at,
/// just below or just above its threshold, or without a score.
fn edge_event(station: &str, seq: i64) -> EdgeEvent {
    let inspection = (seq + 1) / 2;
    let inspection_type = ["optical", "xray", "electrical", "acoustic"][(inspection % 4) as usize];
    let completed = seq % 2 == 0;
    let event_type = if completed {
        InspectionEventType::InspectionCompleted
    } else {
        InspectionEventType::InspectionStarted
    };
    let quality_score = match (completed, inspection % 5) {
        (false, _) | (true, 4) => None,
        (true, delta) => {
            Some(threshold(inspection_type) + [0.0, -0.001, 0.001, -0.05][delta as usize])
        }
    };
    let event_id = uuid::Uuid::new_v4().to_string();
    linegate_e2e::events::edge_event(
        station,
        seq,
        1_768_905_000_000 + seq * 10,
        EdgePayload::Inspection(InspectionEvent {
            event_id,
            event_type,
            timestamp: 1_768_905_000_000 + seq * 10 - 3,
            inspection_id: format!("{station}-insp-{inspection:04}"),
            batch_id: "LOT-7".to_owned(),
            chip_id: format!("{station}-chip-{inspection:04}"),
            inspection_type: inspection_type.to_owned(),
            status: if completed { "DONE" } else { "RUNNING" }.to_owned(),
            quality_score,
            defects: vec![Defect {
                defect_type: "scratch".to_owned(),
                severity: "LOW".to_owned(),
                confidence: 0.5,
                location: "x=1,y=2".to_owned(),
            }],
            metadata: BTreeMap::new(),
        }),
    )
}

/// What is sent to the input topic: key, value, and the edge's headers when it is an event.
struct Input {
    key: String,
    value: Vec<u8>,
    seq: Option<i64>,
}

impl Input {
    fn event(event: &EdgeEvent) -> Self {
        Self {
            key: event.station_id.clone(),
            value: encode(event).unwrap(),
            seq: Some(event.seq),
        }
    }
}

async fn produce_all(bootstrap: &str, inputs: &[Input]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    let mut deliveries = Vec::new();
    for input in inputs {
        let seq = input.seq.map(|s| s.to_string());
        let mut headers = OwnedHeaders::new().insert(Header {
            key: "station_id",
            value: Some(input.key.as_str()),
        });
        if let Some(seq) = &seq {
            headers = headers.insert(Header {
                key: "seq",
                value: Some(seq.as_str()),
            });
        }
        let record = FutureRecord::to(INPUT)
            .key(&input.key)
            .payload(&input.value)
            .headers(headers);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
    }
    for delivery in deliveries {
        delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

/// Waits until the bridge created `topics` (the bridge creates the topics of its plan at start).
fn wait_for_topics(bootstrap: &str, topics: &[&str], timeout: Duration) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let deadline = Instant::now() + timeout;
    for topic in topics {
        loop {
            let ready = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .ok()
                .and_then(|m| m.topics().first().map(|t| t.partitions().len()))
                .is_some_and(|partitions| partitions > 0);
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the bridge did not create {topic}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

async fn read(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    logs: impl Fn() -> String,
) -> Vec<Record> {
    consume_until_async(bootstrap, topic, expected, WAIT, GRACE)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs()))
}

fn seq_of(record: &Record) -> i64 {
    record.header("seq").unwrap().parse().unwrap()
}

/// Within each partition, each station's records carry increasing `seq` headers.
fn assert_station_order(records: &[Record]) {
    let mut last: HashMap<(i32, String), i64> = HashMap::new();
    for record in records {
        let Some(station) = record.header("station_id") else {
            continue; // the audit record of an undecodable input has no station
        };
        let seq = seq_of(record);
        if let Some(previous) = last.insert((record.partition, station.to_owned()), seq) {
            assert!(
                previous < seq,
                "{}: {station} seq {seq} after {previous} in partition {}",
                record.topic,
                record.partition
            );
        }
    }
}

fn idempotency_keys(records: &[Record]) -> HashSet<String> {
    records
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_fan_out_exactly_in_order_and_a_restart_resumes_after_committed_offsets() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::start().unwrap();
    let bootstrap = kafka.bootstrap();
    let mut bridge = start_bridge(&kafka, "fanout-test", dir.path()).unwrap();
    wait_for_topics(&bootstrap, &[INPUT, LIFECYCLE, QUALITY, AUDIT, DLQ], WAIT);
    // The state topic compacts: segments roll every 10 minutes (Kafka compacts closed segments only).
    let state = topic_config(&bootstrap, "linegate.bridge.state")
        .await
        .unwrap();
    assert_eq!(state["cleanup.policy"], "compact");
    assert_eq!(state["segment.ms"], "600000");
    assert_eq!(state["min.cleanable.dirty.ratio"], "0.1");

    // 100 events per station, a record that is not Avro amid ST-A's, and one event with a bad score.
    let events: Vec<EdgeEvent> = (1..=EVENTS_PER_STATION)
        .flat_map(|seq| STATIONS.map(|station| edge_event(station, seq)))
        .collect();
    let mut inputs: Vec<Input> = events.iter().map(Input::event).collect();
    inputs.insert(
        inputs.len() / 2,
        Input {
            key: "ST-A".to_owned(),
            value: GARBAGE.to_vec(),
            seq: None,
        },
    );
    let mut out_of_range = edge_event("ST-B", EVENTS_PER_STATION + 1);
    let EdgePayload::Inspection(payload) = &mut out_of_range.payload else {
        panic!("an inspection payload was built")
    };
    payload.quality_score = Some(1.7);
    inputs.push(Input::event(&out_of_range));
    produce_all(&bootstrap, &inputs).await;
    let mut inputs_sent = inputs.len() as i64;

    let logs = || bridge_log(dir.path());
    let accepted = events.len();
    let completed: Vec<&EdgeEvent> = events.iter().filter(|e| e.seq % 2 == 0).collect();
    let lifecycle = read(&bootstrap, LIFECYCLE, accepted, logs).await;
    let quality = read(&bootstrap, QUALITY, completed.len(), logs).await;
    let audit = read(&bootstrap, AUDIT, accepted + 2, logs).await;
    let dead = read(&bootstrap, DLQ, 2, logs).await;
    assert_eq!(
        (lifecycle.len(), quality.len(), audit.len(), dead.len()),
        (accepted, completed.len(), accepted + 2, 2),
        "lifecycle, quality, audit, dlq"
    );

    // Lifecycle: each event once, keyed by inspection, with provenance headers.
    let by_id: HashMap<&str, &EdgeEvent> =
        events.iter().map(|e| (e.event_id.as_str(), e)).collect();
    assert_eq!(
        idempotency_keys(&lifecycle).len(),
        accepted,
        "no duplicates"
    );
    for record in &lifecycle {
        let inspection: InspectionEvent = decode(&record.value).unwrap();
        let source = by_id[inspection.event_id.as_str()];
        assert_eq!(record.key_str(), Some(inspection.inspection_id.as_str()));
        assert_eq!(
            record.header("station_id"),
            Some(source.station_id.as_str())
        );
        assert_eq!(seq_of(record), source.seq);
        assert_eq!(
            record.header("source.event_id"),
            Some(source.event_id.as_str())
        );
        assert_eq!(
            record.header("idempotency-key"),
            Some(source.event_id.as_str())
        );
        assert_eq!(record.header("trace_id"), Some(source.trace_id.as_str()));
    }
    assert_station_order(&lifecycle);

    // Quality: one verdict per completed inspection, keyed by station (one partition each, seq order).
    for station in STATIONS {
        let seqs: Vec<i64> = quality
            .iter()
            .filter(|r| r.key_str() == Some(station))
            .map(seq_of)
            .collect();
        let expected: Vec<i64> = (1..=EVENTS_PER_STATION).filter(|s| s % 2 == 0).collect();
        assert_eq!(seqs, expected, "{station} verdicts in seq order");
    }
    let mut verdicts = BTreeMap::new();
    for record in &quality {
        let verdict: QualityEvent = decode(&record.value).unwrap();
        let source = by_id[verdict.source_event_id.as_deref().unwrap()];
        let EdgePayload::Inspection(inspection) = &source.payload else {
            panic!("an inspection payload was built")
        };
        let limit = threshold(&inspection.inspection_type);
        let expected = match inspection.quality_score {
            Some(score) if score >= limit => QualityVerdict::Pass,
            _ => QualityVerdict::Fail,
        };
        assert_eq!(
            (verdict.verdict, verdict.threshold, verdict.quality_score),
            (Some(expected), Some(limit), inspection.quality_score),
            "{verdict:?}"
        );
        assert_eq!(
            record.header("idempotency-key"),
            Some(verdict.event_id.as_str())
        );
        *verdicts
            .entry(format!("{:?}", verdict.verdict.unwrap()))
            .or_insert(0) += 1;
    }
    assert!(verdicts.len() == 2, "both verdicts occur: {verdicts:?}");
    assert_station_order(&quality);

    // Audit: one per input, 200 accepted and 2 rejected, each with its own id.
    let (mut accepted_audits, mut rejected_audits) = (0, 0);
    for record in &audit {
        let event: AuditEvent = decode(&record.value).unwrap();
        assert_eq!(record.key_str(), Some(event.event_id.as_str()));
        assert_eq!(event.source_topic, INPUT);
        match event.outcome {
            AuditOutcome::Accepted => accepted_audits += 1,
            AuditOutcome::Rejected => rejected_audits += 1,
            other => panic!("no duplicates or gaps were sent, but audit says {other:?}"),
        }
    }
    assert_eq!((accepted_audits, rejected_audits), (accepted, 2));
    assert_eq!(idempotency_keys(&audit).len(), accepted + 2);
    assert_station_order(&audit);

    // DLQ: both rejected inputs unchanged, with why and where from.
    let ingest = read(&bootstrap, INPUT, inputs.len(), logs).await;
    let station_partition = |station: &str| {
        ingest
            .iter()
            .find(|r| r.key_str() == Some(station))
            .unwrap()
            .partition
    };
    for record in &dead {
        let class = record.header("error.class").unwrap();
        let offset: i64 = record.header("source.offset").unwrap().parse().unwrap();
        let partition: i32 = record.header("source.partition").unwrap().parse().unwrap();
        let original = ingest
            .iter()
            .find(|r| r.partition == partition && r.offset == offset)
            .expect("source.partition and source.offset point at the input");
        assert_eq!(record.value, original.value, "the DLQ keeps the value");
        assert_eq!(record.key, original.key, "the DLQ keeps the key");
        assert_eq!(record.header("source.topic"), Some(INPUT));
        assert_eq!(record.header("attempt"), Some("1"));
        assert!(
            record
                .header("first.seen.ms")
                .unwrap()
                .parse::<i64>()
                .unwrap()
                > 1_700_000_000_000
        );
        assert!(record.header("idempotency-key").is_some());
        let message = record.header("error.message").unwrap();
        match class {
            "decode" => {
                assert_eq!(record.value, GARBAGE);
                assert_eq!(partition, station_partition("ST-A"));
                assert!(message.starts_with("not a readable EdgeEvent"), "{message}");
            }
            "validation" => {
                assert_eq!(partition, station_partition("ST-B"));
                assert!(
                    message.starts_with("quality_score 1.7 is outside 0..1"),
                    "{message}"
                );
                assert_eq!(record.header("station_id"), Some("ST-B"));
                assert_eq!(seq_of(record), EVENTS_PER_STATION + 1);
            }
            other => panic!("unexpected error.class {other}"),
        }
    }

    // Restarts in the same group: each adds exactly its 10 new events, so the new instance resumed after the
    // committed offsets and re-emitted nothing. The first stop comes after everything arrived; the second
    // right after the 10 were sent, so a round may be in progress and must be delivered and committed first.
    // SIGTERM: what a graceful stop promises is checked here; kill -9 is bridge/scaling.rs's and faults/exactly_once.rs's.
    let mut expected = (accepted, completed.len(), accepted + 2);
    let mut next_seq = EVENTS_PER_STATION + 2;
    for stop_while_busy in [false, true] {
        let wave: Vec<EdgeEvent> = (next_seq..next_seq + MORE_PER_STATION)
            .flat_map(|seq| STATIONS.map(|station| edge_event(station, seq)))
            .collect();
        next_seq += MORE_PER_STATION;
        let inputs: Vec<Input> = wave.iter().map(Input::event).collect();
        inputs_sent += inputs.len() as i64;
        if stop_while_busy {
            produce_all(&bootstrap, &inputs).await;
            stop(&mut bridge, logs);
            bridge = start_bridge(&kafka, "fanout-test", dir.path()).unwrap();
        } else {
            stop(&mut bridge, logs);
            bridge = start_bridge(&kafka, "fanout-test", dir.path()).unwrap();
            produce_all(&bootstrap, &inputs).await;
        }
        let wave_completed = wave.iter().filter(|e| e.seq % 2 == 0).count();
        // ST-A never sent seq 101 (only ST-B's bad event has it): its next event, handled by the restarted
        // bridge, is reported as a gap, which proves the dedup state survived the restart.
        let gap_records = usize::from(!stop_while_busy);
        expected = (
            expected.0 + wave.len(),
            expected.1 + wave_completed,
            expected.2 + wave.len() + gap_records,
        );
        let lifecycle = read(&bootstrap, LIFECYCLE, expected.0, logs).await;
        let quality = read(&bootstrap, QUALITY, expected.1, logs).await;
        let audit = read(&bootstrap, AUDIT, expected.2, logs).await;
        assert_eq!(
            (lifecycle.len(), quality.len(), audit.len()),
            expected,
            "after a restart (stopped while busy: {stop_while_busy}) only the new events are added\n{}",
            logs()
        );
        assert_eq!(idempotency_keys(&lifecycle).len(), expected.0);
        assert_eq!(idempotency_keys(&audit).len(), expected.2);
        let gaps: Vec<AuditEvent> = audit
            .iter()
            .map(|r| decode::<AuditEvent>(&r.value).unwrap())
            .filter(|a| a.outcome == AuditOutcome::Gap)
            .collect();
        assert_eq!(gaps.len(), 1, "one gap reported once");
        assert_eq!(
            (
                gaps[0].station_id.as_deref(),
                gaps[0].gap_first_seq,
                gaps[0].gap_last_seq,
                gaps[0].seq
            ),
            (Some("ST-A"), Some(101), Some(101), Some(102))
        );
        assert_station_order(&lifecycle);
        assert_station_order(&quality);
    }

    // Offsets lost: the group's commits rewound to the start while the bridge is stopped, as if every
    // commit had failed (an asynchronous commit is only logged when it fails). The restarted bridge reads
    // every input again; its ledger, read back from the state topic, knows each one was written, so each is
    // skipped as a replay: not one output more, and the group's offsets end where they were.
    stop(&mut bridge, logs);
    let committed = committed_total(&bootstrap, "fanout-test", INPUT, 12).unwrap();
    assert_eq!(committed, inputs_sent, "every input was committed");
    rewind_group(&bootstrap, "fanout-test", INPUT, 12).unwrap();
    assert_eq!(
        committed_total(&bootstrap, "fanout-test", INPUT, 12).unwrap(),
        0
    );
    let json_log = [("LINEGATE_LOG_FORMAT", "json".to_owned())];
    bridge = BridgeRun::new(&kafka, "fanout-test", dir.path())
        .envs(&json_log)
        .start()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while committed_total(&bootstrap, "fanout-test", INPUT, 12).unwrap() < committed {
        assert!(
            Instant::now() < deadline,
            "the rewound inputs were not committed again\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop(&mut bridge, logs);
    let totals = last_stop_totals(dir.path());
    assert_eq!(
        ["accepted", "rejected", "duplicates", "gaps", "replays"]
            .map(|field| totals[field].as_i64()),
        [Some(0), Some(0), Some(0), Some(0), Some(inputs_sent)],
        "every input read again is a replay: {totals}"
    );
    let lifecycle = read(&bootstrap, LIFECYCLE, expected.0, logs).await;
    let quality = read(&bootstrap, QUALITY, expected.1, logs).await;
    let audit = read(&bootstrap, AUDIT, expected.2, logs).await;
    let dead = read(&bootstrap, DLQ, 2, logs).await;
    assert_eq!(
        (lifecycle.len(), quality.len(), audit.len(), dead.len()),
        (expected.0, expected.1, expected.2, 2),
        "inputs read again after lost commits wrote nothing"
    );
    eprintln!("bridge fan-out test took {:?}", started.elapsed());
}

/// The totals of the last "bridge stopped" line of a bridge that logged JSON.
fn last_stop_totals(dir: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("bridge-fanout-test.log")).unwrap_or_default();
    text.lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|entry| entry["fields"].clone())
        .find(|fields| fields["message"] == "bridge stopped")
        .expect("the bridge logged its totals when it stopped")
}

/// SIGTERM: the bridge finishes its round, commits, leaves the group and exits by itself.
fn stop(bridge: &mut ChildProcess, logs: impl Fn() -> String) {
    assert!(
        bridge.terminate(Duration::from_secs(15)),
        "the bridge did not stop on SIGTERM\n{}",
        logs()
    );
}

fn bridge_log(dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(dir.join("bridge-fanout-test.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
