//! A full disk under the outbox: the edge says so clearly, stays up, stops acknowledging (the MQTT broker
//! keeps the rest), the outbox file stays intact, and once space is back every result reaches Kafka in order.
//! The outbox lives on a small tmpfs mounted for the test, so this test needs root.

use std::time::Duration;

use linegate_e2e::kafka::{consume_until_async, create_topic, station_seqs};
use linegate_e2e::stack::{outbox_path, start_edge, station_topic};
use linegate_e2e::station::inspection_documents;
use linegate_e2e::tmpfs::{is_root, Tmpfs};
use linegate_e2e::{mqtt, Kafka, Mosquitto};
use linegate_schemas::{decode, EdgeEvent, EdgePayload};

const STATION: &str = "ST-DF";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_intake_cleanly_and_loses_nothing() {
    assert!(
        is_root(),
        "this test mounts a small tmpfs for the outbox and needs root (CI runs as root)"
    );
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let mut kafka = Kafka::start().unwrap();
    create_topic(&kafka.bootstrap(), "edge.station.events", 3)
        .await
        .unwrap();
    // Kafka is away, so everything stays in the outbox: 400 KiB hold a few hundred results.
    kafka.stop();
    let data_dir = outbox_path(STATION, dir.path())
        .parent()
        .unwrap()
        .to_owned();
    let tmpfs = Tmpfs::mount(&data_dir, "400k");
    let mut edge = start_edge(STATION, &mosquitto, &kafka, dir.path()).unwrap();

    let documents = inspection_documents(STATION, 500, 21);
    let payloads: Vec<Vec<u8>> = documents
        .iter()
        .map(|d| d.to_string().into_bytes())
        .collect();
    mqtt::publish_all(
        mosquitto.port(),
        "sim-df",
        &station_topic(STATION),
        &payloads,
        0,
    )
    .await
    .unwrap();
    edge.wait_for_log(
        "the disk holding the outbox is full",
        Duration::from_secs(60),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(edge.is_running(), "the edge must stay up on a full disk");

    // The file is intact, and holds only part of what was published: the rest waits at the broker.
    let conn = rusqlite::Connection::open(outbox_path(STATION, dir.path())).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let stored: i64 = conn
        .query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))
        .unwrap();
    drop(conn);
    assert!(
        stored > 0 && (stored as usize) < documents.len(),
        "stored {stored} of {}",
        documents.len()
    );

    // Space comes back, then Kafka: every result arrives once, in publish order.
    tmpfs.grow("64m");
    kafka.start_again().unwrap();
    let records = consume_until_async(
        &kafka.bootstrap(),
        "edge.station.events",
        documents.len(),
        Duration::from_secs(120),
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let seqs = station_seqs(&records, STATION);
    assert_eq!(
        seqs,
        (1..=documents.len() as i64).collect::<Vec<_>>(),
        "each result once, gapless"
    );
    let ids: Vec<String> = records
        .iter()
        .map(|r| match decode::<EdgeEvent>(&r.value).unwrap().payload {
            EdgePayload::Inspection(inspection) => inspection.event_id,
            other => panic!("unexpected {}", other.family()),
        })
        .collect();
    let published: Vec<String> = documents
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, published, "publish order");
    drop(edge);
}
