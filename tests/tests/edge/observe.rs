//! An edge's /metrics and /healthz against real brokers: the counters match what was sent, and health turns
//! to 503 naming Kafka while the broker is down (with the waiting events counted), then back to 200.

use std::time::{Duration, Instant};

use linegate_e2e::kafka::create_topic;
use linegate_e2e::process::free_port;
use linegate_e2e::stack::{station_topic, EdgeRun};
use linegate_e2e::station::inspection_documents;
use linegate_e2e::{mqtt, Kafka, Mosquitto};
use serde_json::Value;

const STATION: &str = "ST-OBS";
const WAIT: Duration = Duration::from_secs(60);

/// The value of one series in Prometheus text, 0 when absent.
fn series(text: &str, name: &str) -> f64 {
    linegate_e2e::prometheus::series(text, name).unwrap_or(0.0)
}

async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn health(base: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{base}/healthz")).await.unwrap();
    let code = response.status().as_u16();
    (code, response.json().await.unwrap())
}

/// Polls `check` until it holds or `WAIT` passes; returns the last value seen either way.
async fn until<T, F, Fut>(what: &str, mut get: F, check: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: std::fmt::Debug,
{
    let deadline = Instant::now() + WAIT;
    loop {
        let value = get().await;
        if check(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: last seen {value:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_was_sent_and_health_names_a_missing_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let mut kafka = Kafka::start().unwrap();
    create_topic(&kafka.bootstrap(), "edge.station.events", 3)
        .await
        .unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _edge = EdgeRun::example(STATION, &mosquitto, &kafka, dir.path())
        .envs(&[("LINEGATE_HTTP_LISTEN", format!("127.0.0.1:{port}"))])
        .start()
        .unwrap();

    let documents = inspection_documents(STATION, 30, 5);
    let (first, second) = documents.split_at(documents.len() / 2);
    let payloads = |docs: &[Value]| -> Vec<Vec<u8>> {
        docs.iter().map(|d| d.to_string().into_bytes()).collect()
    };
    let mut bad = payloads(first);
    bad.push(b"not a result".to_vec());
    mqtt::publish_all(
        mosquitto.port(),
        "sim-obs",
        &station_topic(STATION),
        &bad,
        0,
    )
    .await
    .unwrap();
    let n = first.len() as f64;
    let text = until(
        "all results forwarded",
        || metrics(&base),
        |t| series(t, "linegate_edge_forwarded_total") >= n,
    )
    .await;
    assert_eq!(series(&text, "linegate_edge_forwarded_total"), n);
    assert_eq!(
        series(&text, "linegate_edge_captured_total{source=\"mqtt\"}"),
        n
    );
    assert_eq!(
        series(&text, "linegate_edge_quarantined_total{source=\"mqtt\"}"),
        1.0
    );
    assert_eq!(series(&text, "linegate_edge_outbox_quarantined"), 1.0);
    assert_eq!(series(&text, "linegate_edge_kafka_up"), 1.0);
    assert_eq!(
        series(&text, "linegate_edge_source_up{source=\"mqtt\"}"),
        1.0
    );
    let (code, body) = until("healthy", || health(&base), |(c, _)| *c == 200).await;
    assert_eq!(code, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["outbox"]["depth"], 0);

    // Kafka goes away: results are still captured, they wait, and health says why.
    kafka.stop();
    mqtt::publish_all(
        mosquitto.port(),
        "sim-obs",
        &station_topic(STATION),
        &payloads(second),
        0,
    )
    .await
    .unwrap();
    let waiting = second.len() as u64;
    let (code, body) = until(
        "unhealthy while Kafka is down",
        || health(&base),
        |(c, b)| *c == 503 && b["outbox"]["depth"] == waiting,
    )
    .await;
    assert_eq!(body["kafka"], "down");
    let problems = body["problems"].to_string();
    assert!(
        problems.contains(&format!("Kafka is not reachable; {waiting} events wait")),
        "{problems}"
    );
    assert_eq!(code, 503);
    assert!(body["outbox"]["oldest_age_seconds"].as_f64().unwrap() >= 0.0);

    // Back: everything is forwarded and health recovers.
    kafka.start_again().unwrap();
    let total = documents.len() as f64;
    until(
        "all forwarded after Kafka returned",
        || metrics(&base),
        |t| series(t, "linegate_edge_forwarded_total") >= total,
    )
    .await;
    let (code, body) = until("healthy again", || health(&base), |(c, _)| *c == 200).await;
    assert_eq!((code, &body["outbox"]["depth"]), (200, &Value::from(0)));
}
