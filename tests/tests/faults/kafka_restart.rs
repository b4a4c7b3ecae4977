//! Kafka goes away while results keep arriving: edges keep capturing into their outboxes, and once the broker
//! is back everything is delivered, in order. The broker is killed and restarted on its own data directory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use linegate_e2e::kafka::{consume_until_async, station_seqs};
use linegate_e2e::stack::{outbox_path, start_bridge, start_edge, station_topic};
use linegate_e2e::station::inspection_documents;
use linegate_e2e::{mqtt, Kafka, Mosquitto};
use linegate_schemas::{decode, InspectionEvent};

const STATIONS: [&str; 2] = ["ST-11", "ST-12"];
const INSPECTIONS_PER_STATION: usize = 120;
/// Documents per second per station: publishing takes about 4 s, so the outage falls in the middle of it.
const RATE: u32 = 100;
const WAIT: Duration = Duration::from_secs(180);
const GRACE: Duration = Duration::from_secs(3);

fn outbox_depth(station: &str, dir: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(outbox_path(station, dir)).unwrap();
    conn.query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_captured_while_kafka_is_down_are_all_delivered_in_order_after_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let mut kafka = Kafka::start().unwrap();
    let _bridge = start_bridge(&kafka, "restart-test", dir.path()).unwrap();
    let _edges: Vec<_> = STATIONS
        .iter()
        .map(|s| start_edge(s, &mosquitto, &kafka, dir.path()).unwrap())
        .collect();
    // The bridge creates the topics; wait until it did, so the outage does not hit topic creation.
    consume_until_async(
        &kafka.bootstrap(),
        "inspection.lifecycle",
        0,
        WAIT,
        Duration::ZERO,
    )
    .await
    .unwrap();

    let documents: BTreeMap<&str, Vec<serde_json::Value>> = STATIONS
        .iter()
        .map(|s| (*s, inspection_documents(s, INSPECTIONS_PER_STATION, 11)))
        .collect();
    let mut publishing = Vec::new();
    for (station, docs) in &documents {
        let payloads: Vec<Vec<u8>> = docs.iter().map(|d| d.to_string().into_bytes()).collect();
        let topic = station_topic(station);
        let port = mosquitto.port();
        publishing.push(tokio::spawn(async move {
            mqtt::publish_all(port, &format!("sim-{topic}"), &topic, &payloads, RATE).await
        }));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    kafka.stop();
    for task in publishing {
        task.await.unwrap().unwrap(); // the edges acknowledged everything while Kafka was down
    }
    let waiting: i64 = STATIONS.iter().map(|s| outbox_depth(s, dir.path())).sum();
    assert!(
        waiting > 0,
        "the outage must leave results waiting in the outboxes"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    kafka.start_again().unwrap();

    let total: usize = documents.values().map(Vec::len).sum();
    let bootstrap = kafka.bootstrap();
    let ingest = consume_until_async(&bootstrap, "edge.station.events", total, WAIT, GRACE)
        .await
        .unwrap();
    // Each station's outbox sequence arrives complete and in order; a resend after the outage may repeat
    // a sequence number (at-least-once) but never reorder or skip one.
    for station in STATIONS {
        let seqs = station_seqs(&ingest, station);
        let mut first_seen = Vec::new();
        let mut seen = HashSet::new();
        for seq in &seqs {
            if seen.insert(*seq) {
                first_seen.push(*seq);
            }
        }
        let expected: Vec<i64> = (1..=i64::try_from(documents[station].len()).unwrap()).collect();
        assert_eq!(first_seen, expected, "{station}: sequence after the outage");
        eprintln!(
            "{station}: {} records for {} results ({} repeated)",
            seqs.len(),
            expected.len(),
            seqs.len() - expected.len()
        );
    }

    let lifecycle = consume_until_async(&bootstrap, "inspection.lifecycle", total, WAIT, GRACE)
        .await
        .unwrap();
    let by_id: HashMap<&str, (&str, usize)> = documents
        .iter()
        .flat_map(|(station, docs)| {
            docs.iter()
                .enumerate()
                .map(move |(i, d)| (d["event_id"].as_str().unwrap(), (*station, i)))
        })
        .collect();
    let mut delivered = HashSet::new();
    let mut last_index: HashMap<(i32, &str), usize> = HashMap::new();
    for record in &lifecycle {
        let event: InspectionEvent = decode(&record.value).unwrap();
        let (station, index) = by_id[event.event_id.as_str()];
        if !delivered.insert(event.event_id.clone()) {
            continue; // a repeat of an earlier record (at-least-once); order is judged on first arrivals
        }
        if let Some(previous) = last_index.insert((record.partition, station), index) {
            assert!(
                previous < index,
                "{station}: result {index} arrived after {previous}"
            );
        }
    }
    assert_eq!(
        delivered.len(),
        total,
        "every result must reach inspection.lifecycle"
    );
    for station in STATIONS {
        assert_eq!(
            outbox_depth(station, dir.path()),
            0,
            "{station}: outbox drained"
        );
    }
}
