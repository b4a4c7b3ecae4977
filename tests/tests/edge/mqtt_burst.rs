//! A burst far larger than the edge's intake buffers (20,000 results published as fast as Mosquitto takes
//! them): every one is taken, committed and forwarded. Guards against the event loop waiting on a full intake
//! while intake waits on the event loop to send its PUBACKs (a deadlock edge-bench once hit at ~10,000).

use std::time::Duration;

use linegate_e2e::kafka::{consume_until_async, create_topic, station_seqs};
use linegate_e2e::stack::{start_edge, station_topic};
use linegate_e2e::station::inspection_documents;
use linegate_e2e::{mqtt, Kafka, Mosquitto};

const STATION: &str = "ST-BURST";
const RESULTS: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_every_buffer_arrives_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let kafka = Kafka::start().unwrap();
    create_topic(&kafka.bootstrap(), "edge.station.events", 3)
        .await
        .unwrap();
    let _edge = start_edge(STATION, &mosquitto, &kafka, dir.path()).unwrap();
    let templates = inspection_documents(STATION, 100, 4);
    let payloads: Vec<Vec<u8>> = (0..RESULTS)
        .map(|i| {
            let mut doc = templates[i % templates.len()].clone();
            doc["event_id"] = serde_json::Value::String(uuid::Uuid::new_v4().to_string());
            doc.to_string().into_bytes()
        })
        .collect();
    mqtt::publish_all(
        mosquitto.port(),
        "burst",
        &station_topic(STATION),
        &payloads,
        0,
    )
    .await
    .unwrap();
    let records = consume_until_async(
        &kafka.bootstrap(),
        "edge.station.events",
        RESULTS,
        Duration::from_secs(120),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(
        station_seqs(&records, STATION),
        (1..=RESULTS as i64).collect::<Vec<_>>()
    );
}
