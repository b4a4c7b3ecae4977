//! The edge over MQTT 5: a persistent session (clean start off, a session that does not expire) keeps the
//! station's results at the broker while the edge is killed, manual PUBACKs after the outbox commit, and a
//! bad payload quarantined and acknowledged; every result on Kafka once, in publish order.

use std::path::Path;
use std::time::Duration;

use linegate_e2e::kafka::{consume_until_async, create_topic};
use linegate_e2e::stack::{EdgeRun, StationToml};
use linegate_e2e::station::{inspection_documents, unparseable_payload};
use linegate_e2e::{mqtt, Kafka, Mosquitto};
use linegate_schemas::{decode, EdgeEvent, EdgePayload};

const STATION: &str = "ST-V5";
const TOPIC: &str = "line/v5/results";

fn write_config(path: &Path, dir: &Path, mosquitto: &Mosquitto, kafka: &Kafka) {
    StationToml::new(STATION, &dir.join("data"), kafka)
        .mqtt(mosquitto, &[TOPIC], "protocol = \"5\"\n")
        .write(path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_published_while_the_edge_is_dead_arrive_once_in_order_over_mqtt_5() {
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let kafka = Kafka::start().unwrap();
    create_topic(&kafka.bootstrap(), "edge.station.events", 1)
        .await
        .unwrap();
    let config = dir.path().join("station.toml");
    write_config(&config, dir.path(), &mosquitto, &kafka);
    let mut edge = EdgeRun::file(&config, dir.path()).start().unwrap();
    assert!(
        mosquitto
            .log()
            .contains(&format!("as edge-{STATION} (p5, c0")),
        "the edge did not connect with MQTT 5 and clean start off:\n{}",
        mosquitto.log()
    );

    let docs = inspection_documents(STATION, 30, 5);
    let payloads: Vec<Vec<u8>> = docs.iter().map(|d| d.to_string().into_bytes()).collect();
    mqtt::publish_all(mosquitto.port(), "sw-v5", TOPIC, &payloads[..20], 0)
        .await
        .unwrap();
    consume_until_async(
        &kafka.bootstrap(),
        "edge.station.events",
        20,
        Duration::from_secs(30),
        Duration::ZERO,
    )
    .await
    .unwrap();

    // The edge dies; the station goes on publishing, a broken payload among the results.
    edge.kill();
    let mut rest = payloads[20..25].to_vec();
    rest.push(unparseable_payload());
    rest.extend_from_slice(&payloads[25..]);
    mqtt::publish_all(mosquitto.port(), "sw-v5", TOPIC, &rest, 0)
        .await
        .unwrap();
    let mut edge = EdgeRun::file(&config, dir.path()).start().unwrap();

    let records = consume_until_async(
        &kafka.bootstrap(),
        "edge.station.events",
        docs.len(),
        Duration::from_secs(60),
        Duration::from_secs(2),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.log_tail(30)));
    let arrived: Vec<(i64, String)> = records
        .iter()
        .map(|r| {
            let event: EdgeEvent = decode(&r.value).unwrap();
            let EdgePayload::Inspection(inspection) = event.payload else {
                panic!("not an inspection: {event:?}");
            };
            (event.seq, inspection.event_id)
        })
        .collect();
    let expected: Vec<(i64, String)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (i as i64 + 1, d["event_id"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(arrived, expected, "each result once, in publish order");
    edge.wait_for_log("quarantined an MQTT payload", Duration::from_secs(5))
        .unwrap();

    // Everything was acknowledged: a restart gets nothing redelivered (the quarantined payload included).
    edge.terminate(Duration::from_secs(20));
    let mut edge = EdgeRun::file(&config, dir.path()).start().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = std::fs::read_to_string(dir.path().join("edge.log")).unwrap();
    assert_eq!(
        log.matches("quarantined an MQTT payload").count(),
        1,
        "the broker redelivered an acknowledged payload:\n{log}"
    );
    edge.terminate(Duration::from_secs(20));
}
