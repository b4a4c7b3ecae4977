//! A bounded outbox with policy `block`: while Kafka is away and the outbox is full, the edge stops
//! acknowledging, the MQTT broker holds the rest, and once Kafka is back every result arrives, in order.

use std::time::Duration;

use linegate_e2e::kafka::{consume_until_async, create_topic, station_seqs};
use linegate_e2e::stack::{edge_outbox_command, station_topic, EdgeRun};
use linegate_e2e::station::inspection_documents;
use linegate_e2e::{mqtt, Kafka, Mosquitto};
use linegate_schemas::{decode, EdgeEvent};

const STATION: &str = "ST-31";
const MAX_EVENTS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_stops_intake_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let mut kafka = Kafka::start().unwrap();
    kafka.stop(); // Kafka is away from the start
    let extra = [("LINEGATE_OUTBOX_MAX_EVENTS", MAX_EVENTS.to_string())];
    let _edge = EdgeRun::example(STATION, &mosquitto, &kafka, dir.path())
        .envs(&extra)
        .start()
        .unwrap();

    let documents = inspection_documents(STATION, 100, 31);
    assert!(documents.len() > 3 * MAX_EVENTS);
    let payloads: Vec<Vec<u8>> = documents
        .iter()
        .map(|d| d.to_string().into_bytes())
        .collect();
    mqtt::publish_all(
        mosquitto.port(),
        "sim-full",
        &station_topic(STATION),
        &payloads,
        0,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = edge_outbox_command(STATION, &mosquitto, &kafka, dir.path(), &["stats"]);
    assert!(
        stats.contains(&format!("waiting      {MAX_EVENTS} (")),
        "the outbox holds its limit:\n{stats}"
    );
    assert!(
        stats.contains(&format!("next seq     {}\n", MAX_EVENTS + 1)),
        "nothing beyond the limit was stored:\n{stats}"
    );

    kafka.start_again().unwrap();
    create_topic(&kafka.bootstrap(), "edge.station.events", 1)
        .await
        .unwrap();
    let records = consume_until_async(
        &kafka.bootstrap(),
        "edge.station.events",
        documents.len(),
        Duration::from_secs(120),
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    let expected: Vec<i64> = (1..=i64::try_from(documents.len()).unwrap()).collect();
    assert_eq!(station_seqs(&records, STATION), expected);
    let ids: Vec<String> = records
        .iter()
        .map(|r| decode::<EdgeEvent>(&r.value).unwrap().event_id)
        .collect();
    let published: Vec<&str> = documents
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, published, "results arrive in publish order");
}
