//! What goes wrong at a station, against the real brokers.
//!
//! One bad result never blocks its station: an event larger than the producer takes, and one the broker
//! refuses for its size, are each set aside into the outbox quarantine with the reason and reported as an
//! OUTBOX_DROPPED system event, while every result behind them reaches Kafka in order; a payload above
//! `mqtt.max_payload_bytes` is quarantined at intake.
//!
//! A re-imaged station PC (its outbox deleted) counts from seq 1 again in a new outbox epoch, and the bridge
//! takes its new results as new, not as resends of the old outbox's numbers.

use std::time::Duration;

use linegate_e2e::delivery::outcomes;
use linegate_e2e::kafka::{consume_until_async, create_topic_with, Record};
use linegate_e2e::stack::{
    edge_outbox_command, outbox_path, start_bridge, start_edge, station_topic, EdgeRun,
};
use linegate_e2e::station::inspection_documents;
use linegate_e2e::{mqtt, Kafka, Mosquitto};
use linegate_schemas::{decode, EdgeEvent, EdgePayload, SystemEventType};
use serde_json::Value;

const TOPIC: &str = "edge.station.events";
/// The ingest topic's `max.message.bytes`: the broker refuses a record batch larger than this.
const BROKER_MAX: usize = 200_000;

/// Text that LZ4 cannot shrink much (so its size on the wire is about its length).
fn noise(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(ALPHABET[(state % 64) as usize])
        })
        .collect()
}

fn with_metadata(mut document: Value, bytes: usize, seed: u64) -> Value {
    document["metadata"]["blob"] = Value::String(noise(bytes, seed));
    document
}

fn ids(documents: &[Value]) -> Vec<String> {
    documents
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_owned())
        .collect()
}

fn events_of(records: &[Record], station: &str) -> Vec<EdgeEvent> {
    records
        .iter()
        .filter(|r| r.key_str() == Some(station))
        .map(|r| decode::<EdgeEvent>(&r.value).unwrap())
        .collect()
}

fn quarantine(
    station: &str,
    mosquitto: &Mosquitto,
    kafka: &Kafka,
    dir: &std::path::Path,
) -> Vec<Value> {
    edge_outbox_command(station, mosquitto, kafka, dir, &["quarantine", "list"])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// One broker pair for both stations: ST-P1 sends what Kafka refuses, ST-P2 what intake refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_results_are_set_aside_with_the_reason_and_never_block_the_ones_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let kafka = Kafka::start().unwrap();
    let broker_max = BROKER_MAX.to_string();
    create_topic_with(
        &kafka.bootstrap(),
        TOPIC,
        1,
        &[("max.message.bytes", &broker_max)],
    )
    .await
    .unwrap();
    let on_topic = refused_by_kafka(&mosquitto, &kafka, dir.path()).await;
    refused_at_intake(&mosquitto, &kafka, dir.path(), on_topic).await;
}

/// Returns how many records the topic holds afterwards.
async fn refused_by_kafka(mosquitto: &Mosquitto, kafka: &Kafka, dir: &std::path::Path) -> usize {
    // ST-P1 takes payloads up to ~1 MB, so both refusals happen after the outbox commit.
    let station = "ST-P1";
    let extra = [("LINEGATE_MQTT_MAX_PAYLOAD_BYTES", "1040000".to_owned())];
    let _edge = EdgeRun::example(station, mosquitto, kafka, dir)
        .envs(&extra)
        .start()
        .unwrap();
    let normal = inspection_documents(station, 6, 41);
    let (first, rest) = normal.split_at(normal.len() / 3);
    let (second, third) = rest.split_at(rest.len() / 2);
    // Over librdkafka's own message.max.bytes (1,000,000): refused before it is sent.
    let too_large_for_producer = with_metadata(normal[0].clone(), 1_000_100, 1);
    // Under the producer's limit but over the topic's: the broker refuses the batch it is in.
    let too_large_for_broker = with_metadata(normal[1].clone(), 3 * BROKER_MAX / 2, 2);
    let mut too_large_for_producer = too_large_for_producer;
    too_large_for_producer["event_id"] = Value::String(uuid::Uuid::new_v4().to_string());
    let mut too_large_for_broker = too_large_for_broker;
    too_large_for_broker["event_id"] = Value::String(uuid::Uuid::new_v4().to_string());
    let sequence: Vec<Value> = first
        .iter()
        .cloned()
        .chain([too_large_for_producer.clone()])
        .chain(second.iter().cloned())
        .chain([too_large_for_broker.clone()])
        .chain(third.iter().cloned())
        .collect();
    let payloads: Vec<Vec<u8>> = sequence
        .iter()
        .map(|d| d.to_string().into_bytes())
        .collect();
    mqtt::publish_all(
        mosquitto.port(),
        "sim-p1",
        &station_topic(station),
        &payloads,
        0,
    )
    .await
    .unwrap();

    // Every normal result arrives, and one report per refused event.
    let expected = normal.len() + 2;
    let records = consume_until_async(
        &kafka.bootstrap(),
        TOPIC,
        expected,
        Duration::from_secs(120),
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    let events = events_of(&records, station);
    let results: Vec<String> = events
        .iter()
        .filter(|e| matches!(e.payload, EdgePayload::Inspection(_)))
        .map(|e| e.event_id.clone())
        .collect();
    assert_eq!(
        results,
        ids(&normal),
        "every normal result, in publish order"
    );
    let reports: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.payload {
            EdgePayload::System(report) => Some(report),
            _ => None,
        })
        .collect();
    assert_eq!(reports.len(), 2, "{reports:?}");
    let refused_ids = ids(&[too_large_for_producer, too_large_for_broker]);
    for (report, id) in reports.iter().zip(&refused_ids) {
        assert_eq!(report.event_type, SystemEventType::OutboxDropped);
        assert_eq!(report.details["event_id"], *id, "{report:?}");
        assert_eq!(report.details["kept_in"], "quarantine");
    }
    // The refused events' seqs are the only ones missing: 1..=n with exactly two holes.
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let last = *seqs.last().unwrap();
    assert_eq!(last, i64::try_from(expected + 2).unwrap(), "{seqs:?}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    let kept = quarantine(station, mosquitto, kafka, dir);
    assert_eq!(kept.len(), 2, "{kept:?}");
    for (entry, id) in kept.iter().zip(&refused_ids) {
        assert_eq!(entry["source"], "forward");
        assert!(
            entry["origin"].as_str().unwrap().contains(id.as_str()),
            "{entry}"
        );
        assert!(
            entry["reason"]
                .as_str()
                .unwrap()
                .contains("Kafka refused it"),
            "{entry}"
        );
    }
    let stats = edge_outbox_command(station, mosquitto, kafka, dir, &["stats"]);
    assert!(
        stats.contains("waiting      0 ("),
        "the outbox drained:\n{stats}"
    );
    records.len()
}

async fn refused_at_intake(
    mosquitto: &Mosquitto,
    kafka: &Kafka,
    dir: &std::path::Path,
    on_topic: usize,
) {
    let station = "ST-P2";
    let extra = [("LINEGATE_MQTT_MAX_PAYLOAD_BYTES", "100000".to_owned())];
    let _edge = EdgeRun::example(station, mosquitto, kafka, dir)
        .envs(&extra)
        .start()
        .unwrap();
    let normal = inspection_documents(station, 3, 42);
    let mut big = with_metadata(normal[0].clone(), 150_000, 3);
    big["event_id"] = Value::String(uuid::Uuid::new_v4().to_string());
    let payloads: Vec<Vec<u8>> = [big]
        .iter()
        .chain(&normal)
        .map(|d| d.to_string().into_bytes())
        .collect();
    mqtt::publish_all(
        mosquitto.port(),
        "sim-p2",
        &station_topic(station),
        &payloads,
        0,
    )
    .await
    .unwrap();
    let records = consume_until_async(
        &kafka.bootstrap(),
        TOPIC,
        on_topic + normal.len(),
        Duration::from_secs(60),
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let arrived: Vec<String> = events_of(&records, station)
        .iter()
        .map(|e| e.event_id.clone())
        .collect();
    assert_eq!(arrived, ids(&normal));
    let kept = quarantine(station, mosquitto, kafka, dir);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["source"], "mqtt");
    let reason = kept[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("larger than mqtt.max_payload_bytes (100000)"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reimaged_station_starts_a_new_sequence_and_no_new_result_is_taken_for_a_resend() {
    const LIFECYCLE: &str = "inspection.lifecycle";
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let kafka = Kafka::start().unwrap();
    let mut bridge = start_bridge(&kafka, "reimage", dir.path()).unwrap();
    bridge
        .wait_for_log("input partitions assigned", Duration::from_secs(60))
        .unwrap();
    let station = "ST-RI";
    let publish = |documents: Vec<Value>, client: &'static str| {
        let payloads: Vec<Vec<u8>> = documents
            .iter()
            .map(|d| d.to_string().into_bytes())
            .collect();
        let port = mosquitto.port();
        async move {
            mqtt::publish_all(port, client, &station_topic(station), &payloads, 0)
                .await
                .unwrap();
        }
    };
    let before = inspection_documents(station, 25, 51);
    let mut edge = start_edge(station, &mosquitto, &kafka, dir.path()).unwrap();
    publish(before.clone(), "sim-ri-1").await;
    let wait = Duration::from_secs(90);
    let grace = Duration::from_secs(2);
    consume_until_async(&kafka.bootstrap(), LIFECYCLE, before.len(), wait, grace)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", bridge.log_tail(20)));

    // Re-imaged: the agent stops, its outbox is gone, it starts again with a fresh file.
    edge.kill();
    let outbox = outbox_path(station, dir.path());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", outbox.display()));
    }
    let after = inspection_documents(station, 15, 52);
    let _edge = start_edge(station, &mosquitto, &kafka, dir.path()).unwrap();
    publish(after.clone(), "sim-ri-2").await;

    let lifecycle = consume_until_async(
        &kafka.bootstrap(),
        LIFECYCLE,
        before.len() + after.len(),
        wait,
        grace,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", bridge.log_tail(20)));
    assert_eq!(
        lifecycle.len(),
        before.len() + after.len(),
        "each result once"
    );
    let audit = consume_until_async(
        &kafka.bootstrap(),
        "audit.events",
        before.len() + after.len(),
        wait,
        grace,
    )
    .await
    .unwrap();
    let outcomes = outcomes(&audit);
    assert_eq!(outcomes.get("Duplicate"), None, "{outcomes:?}");
    assert_eq!(outcomes.get("Gap"), None, "{outcomes:?}");
    assert_eq!(
        outcomes.get("Accepted"),
        Some(&(before.len() + after.len())),
        "{outcomes:?}"
    );
    // The new outbox counted from 1 again, in an epoch of its own.
    let input = consume_until_async(
        &kafka.bootstrap(),
        TOPIC,
        before.len() + after.len(),
        wait,
        grace,
    )
    .await
    .unwrap();
    let events = events_of(&input, station);
    let (old, new) = events.split_at(before.len());
    assert_eq!(new[0].seq, 1);
    assert!(!new[0].outbox_epoch.is_empty());
    assert_ne!(old[0].outbox_epoch, new[0].outbox_epoch);
    assert_eq!(
        new.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>(),
        ids(&after)
    );
}
