//! The bridge's operations server against a real broker: `/metrics` counts match what was sent, the lag of
//! every input partition is visible, the DLQ page shows a rejected record with its reason, a redrive sends a
//! fixed record home (accepted) and a still-broken one back to the DLQ with attempt 2, changing calls need
//! the token; and SIGTERM drains: what the group committed is exactly what was delivered.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use linegate_e2e::kafka::{committed_total, consume_until_async, Record};
use linegate_e2e::process::wait_for_port;
use linegate_e2e::stack::{bridge_config_with_http, BridgeRun};
use linegate_e2e::{bin_path, free_port, Kafka};
use linegate_schemas::{encode, EdgeEvent, EdgePayload, InspectionEvent, InspectionEventType};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

const INPUT: &str = "edge.station.events";
const LIFECYCLE: &str = "inspection.lifecycle";
const AUDIT: &str = "audit.events";
const DLQ: &str = "edge.station.events.dlq";
const TOKEN: &str = "test-token-1234";
const WAIT: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_millis(1000);

/// A record to produce: key, value, headers.
type Input = (String, Vec<u8>, Vec<(&'static str, String)>);

/// A valid InspectionStarted event `seq` of `station`.
fn event(station: &str, seq: i64) -> EdgeEvent {
    let event_id = uuid::Uuid::new_v4().to_string();
    EdgeEvent {
        event_type: InspectionEventType::InspectionStarted.symbol().to_owned(),
        event_id: event_id.clone(),
        timestamp: linegate_common_now(),
        trace_id: format!("trace-{station}-{seq}"),
        source_service: "linegate-edge".to_owned(),
        schema_version: linegate_schemas::SCHEMA_VERSION.to_owned(),
        station_id: station.to_owned(),
        seq,
        outbox_epoch: String::new(),
        payload: EdgePayload::Inspection(InspectionEvent {
            event_id,
            event_type: InspectionEventType::InspectionStarted,
            timestamp: linegate_common_now(),
            inspection_id: format!("{station}-insp-{seq:05}"),
            batch_id: "LOT-9".to_owned(),
            chip_id: format!("{station}-chip-{seq:05}"),
            inspection_type: "optical".to_owned(),
            status: "RUNNING".to_owned(),
            quality_score: None,
            defects: vec![],
            metadata: BTreeMap::new(),
        }),
    }
}

fn linegate_common_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Produces `records` with an idempotent producer and waits for every acknowledgement.
async fn produce(bootstrap: &str, topic: &str, records: &[Input]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    let mut deliveries = Vec::new();
    for (key, value, headers) in records {
        let headers = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v.as_str()),
            })
        });
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(value)
            .headers(headers);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
    }
    for delivery in deliveries {
        delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

fn events(station: &str, count: i64) -> Vec<Input> {
    (1..=count)
        .map(|seq| {
            let e = event(station, seq);
            (station.to_owned(), encode(&e).unwrap(), vec![])
        })
        .collect()
}

/// The value of the first sample of `/metrics` whose line starts with `series`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn get(base: &str, path: &str) -> String {
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn get_json(base: &str, path: &str) -> Value {
    serde_json::from_str(&get(base, path).await).unwrap()
}

/// Polls `/metrics` until `series` reaches `value`.
async fn wait_metric(base: &str, series: &str, value: f64) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = get(base, "/metrics").await;
        if sample(&text, series) == Some(value) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never reached {value}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn post(base: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls the DLQ page until it holds `count` records.
async fn wait_dlq(base: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let page = get_json(base, "/api/dlq?limit=100").await;
        let records = page["records"].as_array().cloned().unwrap_or_default();
        if records.len() >= count {
            return records;
        }
        assert!(Instant::now() < deadline, "DLQ has {records:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_lag_dlq_redrive_and_token() {
    let kafka = Kafka::start().unwrap();
    let bootstrap = kafka.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = bridge_config_with_http(dir.path(), port, Some(TOKEN)).unwrap();
    let mut bridge = BridgeRun::new(&kafka, "api", dir.path())
        .config(&config)
        .start()
        .unwrap();
    wait_for_port(&mut bridge, port, WAIT).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(get(&base, "/healthz").await, "ok\n");

    let mut inputs = events("ST-API", 40);
    inputs.push(("ST-API".to_owned(), b"not an EdgeEvent".to_vec(), vec![]));
    produce(&bootstrap, INPUT, &inputs).await;

    // Counters match what was sent: 41 in, 40 lifecycle, 41 audit, one decode rejection.
    let text = wait_metric(
        &base,
        "linegate_bridge_records_out_total{topic=\"audit.events\"}",
        41.0,
    )
    .await;
    assert_eq!(
        sample(
            &text,
            "linegate_bridge_records_in_total{topic=\"edge.station.events\"}"
        ),
        Some(41.0)
    );
    assert_eq!(
        sample(
            &text,
            "linegate_bridge_records_out_total{topic=\"inspection.lifecycle\"}"
        ),
        Some(40.0)
    );
    assert_eq!(
        sample(
            &text,
            "linegate_bridge_records_out_total{topic=\"edge.station.events.dlq\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "linegate_bridge_dlq_total{class=\"decode\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "linegate_bridge_latency_seconds_count"),
        Some(41.0)
    );
    assert_eq!(sample(&text, "linegate_bridge_dedup_hits_total"), Some(0.0));
    assert_eq!(
        sample(&text, "linegate_bridge_transaction_aborts_total"),
        Some(0.0)
    );

    // Topics of the plan with partitions and roles.
    let topics = get_json(&base, "/api/topics").await;
    let input = topics
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == INPUT)
        .unwrap();
    assert_eq!(input["partitions"], 12);
    assert_eq!(input["role"], "input");

    // Lag per partition: every input partition listed, the records all counted, none left after commit.
    let deadline = Instant::now() + WAIT;
    let lags = loop {
        let lags = get_json(&base, "/api/lag").await;
        let lags = lags.as_array().unwrap().clone();
        let total: i64 = lags.iter().map(|l| l["lag"].as_i64().unwrap()).sum();
        if total == 0 {
            break lags;
        }
        assert!(Instant::now() < deadline, "lag stays {lags:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(lags.len(), 12);
    let highs: i64 = lags.iter().map(|l| l["high"].as_i64().unwrap_or(0)).sum();
    assert_eq!(highs, 41, "{lags:?}");
    let committed: i64 = lags
        .iter()
        .map(|l| l["committed"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(committed, 41, "{lags:?}");
    wait_metric(&base, "linegate_bridge_consumer_lag{", 0.0).await;

    // The DLQ page shows the rejected record with its reason and origin.
    let dlq = wait_dlq(&base, 1).await;
    assert_eq!(dlq.len(), 1);
    let letter = &dlq[0];
    assert_eq!(letter["error_class"], "decode");
    assert!(!letter["error_message"].as_str().unwrap().is_empty());
    assert_eq!(letter["source_topic"], INPUT);
    assert_eq!(letter["attempt"], 1);
    let (partition, offset) = (
        letter["partition"].as_i64().unwrap(),
        letter["offset"].as_i64().unwrap(),
    );

    // Changing calls need the token.
    let body = json!({"partition": partition, "offset": offset});
    assert_eq!(
        post(&base, "/api/dlq/redrive", None, body.clone()).await.0,
        401
    );
    assert_eq!(
        post(&base, "/api/dlq/redrive", Some("wrong"), body.clone())
            .await
            .0,
        401
    );
    assert_eq!(
        post(&base, "/api/replay", None, json!({"from_offset": 0}))
            .await
            .0,
        401
    );

    // Redriving the still-broken record: it comes back to the DLQ with attempt 2.
    let (status, report) = post(&base, "/api/dlq/redrive", Some(TOKEN), body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["sent"], 1, "{report}");
    assert_eq!(report["records"][0]["to_topic"], INPUT);
    let dlq = wait_dlq(&base, 2).await;
    let again = dlq
        .iter()
        .find(|l| l["attempt"] == 2)
        .expect("a second dead letter with attempt 2");
    assert_eq!(again["error_class"], "decode");
    let origin = format!("{DLQ}/{partition}/{offset}");
    assert!(again["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h[0] == "redrive.of" && h[1] == origin.as_str()));

    // A dead letter whose cause was fixed (here: a valid event, as after a rule change), redriven with the
    // command: accepted and fanned out.
    let fixed = event("ST-FIX", 1);
    let headers = vec![
        ("error.class", "validation".to_owned()),
        ("error.message", "severity BAD is not known".to_owned()),
        ("source.topic", INPUT.to_owned()),
        ("source.partition", "0".to_owned()),
        ("source.offset", "0".to_owned()),
        ("first.seen.ms", "1".to_owned()),
        ("attempt", "1".to_owned()),
    ];
    produce(
        &bootstrap,
        DLQ,
        &[("ST-FIX".to_owned(), encode(&fixed).unwrap(), headers)],
    )
    .await;
    let dlq = wait_dlq(&base, 3).await;
    let planted = dlq.iter().find(|l| l["key"] == "ST-FIX").unwrap();
    let output = std::process::Command::new(bin_path("linegate-bridge"))
        .args(["dlq", "redrive", "--config", config.to_str().unwrap()])
        .args(["--partition", &planted["partition"].to_string()])
        .args(["--offset", &planted["offset"].to_string()])
        .env("LINEGATE_KAFKA_BOOTSTRAP", &bootstrap)
        .env("LINEGATE_TOPIC_REPLICATION", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("redrove 1 record(s)"), "{stdout}");
    assert!(stdout.contains(&format!("-> {INPUT}/")), "{stdout}");
    let lifecycle = consume_until_async(&bootstrap, LIFECYCLE, 41, WAIT, GRACE)
        .await
        .unwrap();
    assert_eq!(lifecycle.len(), 41);
    assert!(lifecycle
        .iter()
        .any(|r| r.header("source.event_id") == Some(fixed.event_id.as_str())));
    wait_metric(&base, "linegate_bridge_redriven_total", 1.0).await;

    // Replay from offset 0: every replayed output is marked and repeats an existing idempotency-key.
    let (status, started) =
        post(&base, "/api/replay", Some(TOKEN), json!({"from_offset": 0})).await;
    assert_eq!(status, 202, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + WAIT;
    let done = loop {
        let status = get_json(&base, &format!("/api/replay/{id}")).await;
        if status["done"] == true {
            break status;
        }
        assert!(Instant::now() < deadline, "replay not done: {status}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(done["error"].is_null(), "{done}");
    let replayed = done["replayed"].as_u64().unwrap();
    assert!(replayed >= 1, "{done}");
    let lifecycle = consume_until_async(&bootstrap, LIFECYCLE, 42, WAIT, GRACE)
        .await
        .unwrap();
    let (again, first): (Vec<&Record>, Vec<&Record>) = lifecycle
        .iter()
        .partition(|r| r.header("replay.id") == Some(id.as_str()));
    assert!(!again.is_empty());
    let keys: HashSet<&str> = first
        .iter()
        .map(|r| r.header("idempotency-key").unwrap())
        .collect();
    for record in again {
        assert!(
            keys.contains(record.header("idempotency-key").unwrap()),
            "a replayed output with a new id"
        );
    }
    // The audit chains stay as the pipeline wrote them: each replayed input has a replay record of its own
    // beside its original (no shared key, so compaction of the audit topic keeps the original), and
    // `audit verify` leaves the replay records out and passes.
    let audit = consume_until_async(&bootstrap, AUDIT, 2 * replayed as usize, WAIT, GRACE)
        .await
        .unwrap();
    let (replays, originals): (Vec<&Record>, Vec<&Record>) = audit
        .iter()
        .partition(|r| r.header("replay.id") == Some(id.as_str()));
    assert_eq!(
        replays.len() as u64,
        replayed,
        "one replay audit record per input"
    );
    let original_keys: HashSet<&[u8]> = originals.iter().filter_map(|r| r.key.as_deref()).collect();
    assert!(replays
        .iter()
        .all(|r| !original_keys.contains(r.key.as_deref().unwrap())));
    let (intact, report) = linegate_e2e::stack::audit_verify(&kafka, AUDIT);
    assert!(intact, "{report}");
    assert!(
        report.contains(&format!("{replayed} replay records left out")),
        "{report}"
    );
    assert!(
        bridge.terminate(Duration::from_secs(20)),
        "the bridge did not stop on SIGTERM"
    );
}

fn audit_ids(records: &[Record]) -> HashSet<String> {
    records
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_owned())
        .collect()
}

/// SIGTERM in the middle of a stream: the bridge exits by itself, every input it committed has its outputs
/// acknowledged and nothing more (audit count == committed offsets), and a restarted bridge finishes the
/// stream without a single duplicate. Without a token, changing calls are refused with 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_work() {
    const EVENTS: i64 = 6_000;
    let kafka = Kafka::start().unwrap();
    let bootstrap = kafka.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = bridge_config_with_http(dir.path(), port, None).unwrap();
    // Small rounds: the stream takes hundreds of them, so the stop lands mid-stream even when this test is
    // slow to see the first output (with rounds of 500 a busy CI machine once saw all 6,000 done first).
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("${LINEGATE_BRIDGE_BATCH_MAX:-2000}", "20"),
    )
    .unwrap();
    let mut bridge = BridgeRun::new(&kafka, "drain", dir.path())
        .config(&config)
        .start()
        .unwrap();
    wait_for_port(&mut bridge, port, WAIT).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let (status, body) = post(&base, "/api/dlq/redrive", Some("any"), json!({"all": true})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no [http] token"),
        "{body}"
    );

    // Six stations, so that rounds in flight span several partitions when the stop comes.
    let mut inputs = Vec::new();
    for station in 0..6 {
        inputs.extend(events(&format!("ST-D{station}"), EVENTS / 6));
    }
    produce(&bootstrap, INPUT, &inputs).await;
    // Stop as soon as output flows, while rounds are in flight.
    let deadline = Instant::now() + WAIT;
    loop {
        let text = get(&base, "/metrics").await;
        if sample(
            &text,
            "linegate_bridge_records_out_total{topic=\"audit.events\"}",
        )
        .unwrap_or(0.0)
            > 0.0
        {
            break;
        }
        assert!(Instant::now() < deadline, "no output");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        bridge.terminate(Duration::from_secs(30)),
        "the bridge did not exit on SIGTERM"
    );
    assert!(
        bridge.log_tail(5).contains("bridge stopped"),
        "{}",
        bridge.log_tail(20)
    );

    let committed = committed_total(&bootstrap, "drain", INPUT, 12).unwrap();
    eprintln!("SIGTERM with {committed} of {EVENTS} inputs committed");
    assert!(
        committed > 0 && committed < EVENTS,
        "committed {committed}: stop came too late to prove anything"
    );
    let audit = consume_until_async(
        &bootstrap,
        AUDIT,
        committed as usize,
        WAIT,
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    assert_eq!(
        audit.len() as i64,
        committed,
        "outputs acknowledged != offsets committed"
    );

    let mut again = BridgeRun::new(&kafka, "drain", dir.path())
        .config(&config)
        .start()
        .unwrap();
    wait_for_port(&mut again, port, WAIT).unwrap();
    let audit = consume_until_async(
        &bootstrap,
        AUDIT,
        EVENTS as usize,
        WAIT * 2,
        Duration::from_secs(3),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", again.log_tail(30)));
    assert_eq!(audit.len() as i64, EVENTS, "{}", again.log_tail(20));
    assert_eq!(
        audit_ids(&audit).len() as i64,
        EVENTS,
        "duplicates after a SIGTERM restart"
    );
    assert!(again.terminate(Duration::from_secs(30)));
}
