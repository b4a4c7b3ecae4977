//! `kill -9` of the edge at arbitrary moments under load: after each restart it carries on from its outbox and
//! its persistent MQTT session, and in the end every result is on Kafka once per sequence number, in order.

use std::collections::HashMap;
use std::time::Duration;

use linegate_e2e::kafka::{consume_until_async, Record};
use linegate_e2e::stack::{start_edge, station_topic};
use linegate_e2e::station::inspection_documents;
use linegate_e2e::{mqtt, Kafka, Mosquitto};
use linegate_schemas::{decode, EdgeEvent};

const STATION: &str = "ST-21";
const KILLS: usize = 10;
const INSPECTIONS: usize = 800;
/// Documents per second: publishing takes about five seconds, through all ten crashes.
const RATE: u32 = 600;
const WAIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_kill_9_of_the_edge_under_load_lose_nothing_and_reorder_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let kafka = Kafka::start().unwrap();
    linegate_e2e::kafka::create_topic(&kafka.bootstrap(), "edge.station.events", 1)
        .await
        .unwrap();
    let mut edge = start_edge(STATION, &mosquitto, &kafka, dir.path()).unwrap();
    // start_edge returned after the first subscription; from then on the broker keeps the session while
    // the edge is dead.

    let documents = inspection_documents(STATION, INSPECTIONS, 21);
    let payloads: Vec<Vec<u8>> = documents
        .iter()
        .map(|d| d.to_string().into_bytes())
        .collect();
    let port = mosquitto.port();
    let publishing = tokio::spawn(async move {
        mqtt::publish_all(port, "sim-crash", &station_topic(STATION), &payloads, RATE).await
    });
    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(250 + 53 * kill as u64)).await;
        edge.kill();
        edge = start_edge(STATION, &mosquitto, &kafka, dir.path()).unwrap();
    }
    publishing.await.unwrap().unwrap();

    let records = consume_until_async(
        &kafka.bootstrap(),
        "edge.station.events",
        documents.len(),
        WAIT,
        Duration::from_secs(3),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", edge.log_tail(30)));
    let (by_seq, repeats) = first_arrival_by_seq(&records);

    // Exactly one stored event per published result: seq 1..=N, each carrying the result published N-th.
    let expected_ids: Vec<&str> = documents
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    let arrived_ids: Vec<&str> = by_seq.iter().map(String::as_str).collect();
    assert_eq!(
        arrived_ids.len(),
        expected_ids.len(),
        "one sequence number per result"
    );
    assert!(
        arrived_ids == expected_ids,
        "results arrived out of publish order"
    );
    eprintln!("{} results through {KILLS} kill -9; {repeats} Kafka records were resends of a delivered seq", expected_ids.len());
}

/// Event ids by seq (index 0 = seq 1), checking that a resend of a seq is the same event and that first
/// arrivals come in seq order; returns them and the number of resent records.
fn first_arrival_by_seq(records: &[Record]) -> (Vec<String>, usize) {
    let mut by_seq: Vec<String> = Vec::new();
    let mut seen: HashMap<i64, String> = HashMap::new();
    let mut repeats = 0;
    for record in records {
        let event: EdgeEvent = decode(&record.value).unwrap();
        match seen.get(&event.seq) {
            Some(id) => {
                assert_eq!(
                    id, &event.event_id,
                    "seq {} was reused for another event",
                    event.seq
                );
                repeats += 1;
            }
            None => {
                assert_eq!(
                    event.seq,
                    i64::try_from(by_seq.len()).unwrap() + 1,
                    "seq {} arrived out of order",
                    event.seq
                );
                seen.insert(event.seq, event.event_id.clone());
                by_seq.push(event.event_id);
            }
        }
    }
    (by_seq, repeats)
}
