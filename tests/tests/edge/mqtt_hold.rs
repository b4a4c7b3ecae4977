//! The bound on MQTT results held unacknowledged (`mqtt.max_unacked`), against real Mosquitto and Apache Kafka.
//!
//! Mosquitto's in-flight window is 100 (scripts/run-mosquitto.sh), the edge's bound here is 20, and over MQTT 5
//! the edge announces it as its receive maximum. Mosquitto 2.0.11 keeps to neither in a burst (without the
//! bound the edge held 24,000 in edge-bench), so the edge stops reading at 20. Either way the edge never
//! holds more than 20 (sampled from `/metrics` through the burst) and every result reaches Kafka once, in
//! publish order.

use std::path::Path;
use std::time::Duration;

use linegate_e2e::config_push::metrics;
use linegate_e2e::kafka::{consume_until_async, create_topic};
use linegate_e2e::prometheus::series;
use linegate_e2e::stack::{EdgeRun, StationToml};
use linegate_e2e::station::inspection_documents;
use linegate_e2e::{free_port, mqtt, Kafka, Mosquitto};
use linegate_schemas::{decode, EdgeEvent};

const RESULTS: usize = 3_000;
const MAX_UNACKED: i64 = 20;

struct Run {
    /// Event ids in the order Kafka holds them.
    arrived: Vec<String>,
    /// Event ids in publish order.
    published: Vec<String>,
    /// The most `mqtt_unacked` seen during the burst.
    held_max: i64,
}

async fn burst(protocol: &str, station: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let kafka = Kafka::start().unwrap();
    create_topic(&kafka.bootstrap(), "edge.station.events", 1)
        .await
        .unwrap();
    let http = free_port();
    let topic = format!("line/{station}/results");
    let config = dir.path().join("station.toml");
    write_config(
        &config,
        dir.path(),
        station,
        protocol,
        &topic,
        http,
        &mosquitto,
        &kafka,
    );
    let _edge = EdgeRun::file(&config, dir.path()).start().unwrap();

    let templates = inspection_documents(station, 100, 7);
    let mut published = Vec::new();
    let payloads: Vec<Vec<u8>> = (0..RESULTS)
        .map(|i| {
            let mut doc = templates[i % templates.len()].clone();
            let id = uuid::Uuid::new_v4().to_string();
            doc["event_id"] = serde_json::Value::String(id.clone());
            published.push(id);
            doc.to_string().into_bytes()
        })
        .collect();
    let port = mosquitto.port();
    let publisher =
        tokio::spawn(
            async move { mqtt::publish_all(port, "hold-pub", &topic, &payloads, 0).await },
        );
    let mut held_max = 0;
    while !publisher.is_finished() {
        if let Some(held) = series(&metrics(http).await, "linegate_edge_mqtt_unacked") {
            held_max = held_max.max(held as i64);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    publisher.await.unwrap().unwrap();

    let records = consume_until_async(
        &kafka.bootstrap(),
        "edge.station.events",
        RESULTS,
        Duration::from_secs(120),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    let arrived = records
        .iter()
        .map(|r| decode::<EdgeEvent>(&r.value).unwrap().event_id)
        .collect();
    Run {
        arrived,
        published,
        held_max,
    }
}

#[allow(clippy::too_many_arguments)]
fn write_config(
    path: &Path,
    dir: &Path,
    station: &str,
    protocol: &str,
    topic: &str,
    http: u16,
    mosquitto: &Mosquitto,
    kafka: &Kafka,
) {
    let keys = format!("protocol = \"{protocol}\"\nmax_unacked = {MAX_UNACKED}\n");
    StationToml::new(station, &dir.join("data"), kafka)
        .http(http)
        .mqtt(mosquitto, &[topic], &keys)
        .write(path);
}

fn assert_bounded_and_whole(run: &Run) {
    assert!(
        (1..=MAX_UNACKED).contains(&run.held_max),
        "held {} unacknowledged (0: the samples saw nothing held)",
        run.held_max
    );
    assert_eq!(run.arrived.len(), RESULTS, "every result once");
    assert!(run.arrived == run.published, "results reordered on Kafka");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mqtt_3_1_1_the_edge_holds_at_most_max_unacked_and_loses_nothing() {
    assert_bounded_and_whole(&burst("3.1.1", "ST-HOLD3").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mqtt_5_the_edge_holds_at_most_max_unacked_and_loses_nothing() {
    assert_bounded_and_whole(&burst("5", "ST-HOLD5").await);
}
