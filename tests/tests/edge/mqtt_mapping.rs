//! Station software that sends CBOR in its own shape: with `format = "cbor"` and a JSON-pointer mapping in the
//! station config, its results arrive on Kafka as ordinary events, and a payload the mapping cannot read is
//! quarantined with the pointer named, then acknowledged (it does not block the ones after it).

use std::time::Duration;

use linegate_e2e::kafka::{consume_until_async, create_topic};
use linegate_e2e::stack::{EdgeRun, StationToml};
use linegate_e2e::{mqtt, Kafka, Mosquitto};
use linegate_schemas::{decode, EdgeEvent, EdgePayload};
use serde_json::json;

const STATION: &str = "ST-CBOR";

fn cbor(value: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cbor_payloads_in_another_shape_are_mapped_and_a_broken_one_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let kafka = Kafka::start().unwrap();
    create_topic(&kafka.bootstrap(), "edge.station.events", 3)
        .await
        .unwrap();
    let mapping = r#"format = "cbor"

[mqtt.mapping]
event_type = "/result/kind"
timestamp = "/result/at"
inspection_id = "/result/id"
batch_id = "/part/lot"
chip_id = "/part/serial"
inspection_type = "/station/program"
status = "/result/verdict"
quality_score = "/result/score"
"metadata.operator" = "/station/operator"
"#;
    let config = StationToml::new(STATION, &dir.path().join("data"), &kafka)
        .mqtt(&mosquitto, &["line/7/results"], mapping)
        .write(&dir.path().join("station.toml"));
    let _edge = EdgeRun::file(&config, dir.path()).start().unwrap();

    let shaped = |n: u32| {
        json!({
            "result": {"id": format!("R-{n}"), "kind": "INSPECTION_COMPLETED", "at": 1_768_905_000_000u64 + u64::from(n),
                       "verdict": "PASSED", "score": 0.9},
            "part": {"serial": format!("C-{n}"), "lot": "L-2"},
            "station": {"program": "optical", "operator": "op-4"}
        })
    };
    let mut payloads: Vec<Vec<u8>> = (1..=25).map(|n| cbor(&shaped(n))).collect();
    let mut broken = shaped(0);
    broken["part"].as_object_mut().unwrap().remove("serial");
    payloads.push(cbor(&broken));
    payloads.extend((26..=50).map(|n| cbor(&shaped(n))));
    mqtt::publish_all(
        mosquitto.port(),
        "station-sw",
        "line/7/results",
        &payloads,
        0,
    )
    .await
    .unwrap();

    let records = consume_until_async(
        &kafka.bootstrap(),
        "edge.station.events",
        50,
        Duration::from_secs(60),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    let ids: Vec<String> = records
        .iter()
        .map(|r| match decode::<EdgeEvent>(&r.value).unwrap().payload {
            EdgePayload::Inspection(inspection) => {
                assert_eq!(inspection.metadata["operator"], "op-4");
                assert_eq!(inspection.batch_id, "L-2");
                inspection.inspection_id
            }
            other => panic!("unexpected {}", other.family()),
        })
        .collect();
    assert_eq!(ids, (1..=50).map(|n| format!("R-{n}")).collect::<Vec<_>>());

    let conn = rusqlite::Connection::open(dir.path().join("data/outbox.db")).unwrap();
    let reasons: Vec<String> = conn
        .prepare("SELECT reason FROM quarantine")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        reasons,
        ["mapping: JSON pointer /part/serial (for chip_id) finds nothing in the payload"]
    );
}
