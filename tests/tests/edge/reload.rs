//! SIGHUP: the edge re-reads its config file and restarts its sources with it, while the outbox and the
//! forwarder go on; a config that does not validate is refused and the running one stays.

use std::path::Path;
use std::time::Duration;

use linegate_e2e::kafka::{consume_until_async, create_topic, station_seqs};
use linegate_e2e::stack::{EdgeRun, StationToml};
use linegate_e2e::station::inspection_documents;
use linegate_e2e::{mqtt, Kafka, Mosquitto};

const STATION: &str = "ST-HUP";

fn write_config(path: &Path, dir: &Path, mosquitto: &Mosquitto, kafka: &Kafka, topic: &str) {
    StationToml::new(STATION, &dir.join("data"), kafka)
        .mqtt(mosquitto, &[topic], "")
        .write(path);
}

fn hangup(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn payloads(from: usize, docs: &[serde_json::Value]) -> Vec<Vec<u8>> {
    docs[from..from + 10]
        .iter()
        .map(|d| d.to_string().into_bytes())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_valid_config_and_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let kafka = Kafka::start().unwrap();
    create_topic(&kafka.bootstrap(), "edge.station.events", 3)
        .await
        .unwrap();
    let config = dir.path().join("station.toml");
    write_config(&config, dir.path(), &mosquitto, &kafka, "line/a/results");
    let mut edge = EdgeRun::file(&config, dir.path()).start().unwrap();
    let pid = edge.pid().unwrap();
    let docs = inspection_documents(STATION, 20, 8);
    mqtt::publish_all(
        mosquitto.port(),
        "sw",
        "line/a/results",
        &payloads(0, &docs),
        0,
    )
    .await
    .unwrap();

    // The station software moves to another topic: the edge follows after SIGHUP.
    write_config(&config, dir.path(), &mosquitto, &kafka, "line/b/results");
    hangup(pid);
    edge.wait_for_log("config reloaded", Duration::from_secs(20))
        .unwrap();
    // The restarted source subscribes again before the station publishes (the broker keeps nothing before).
    let log = dir.path().join("edge.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("MQTT subscribed")
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no new subscription after the reload"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    mqtt::publish_all(
        mosquitto.port(),
        "sw",
        "line/b/results",
        &payloads(10, &docs),
        0,
    )
    .await
    .unwrap();

    // A broken file is refused and the running config keeps working.
    std::fs::write(&config, "[station]\nid = \n").unwrap();
    hangup(pid);
    edge.wait_for_log("config reload refused", Duration::from_secs(20))
        .unwrap();
    mqtt::publish_all(
        mosquitto.port(),
        "sw",
        "line/b/results",
        &payloads(20, &docs),
        0,
    )
    .await
    .unwrap();

    let records = consume_until_async(
        &kafka.bootstrap(),
        "edge.station.events",
        30,
        Duration::from_secs(60),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(
        station_seqs(&records, STATION),
        (1..=30).collect::<Vec<i64>>(),
        "all results, once, in order across the reload"
    );
    assert!(edge.is_running());
}
