//! The delivery promise under faults, judged by the independent checker (`linegate_e2e::checker`, which
//! shares no code with the edge or the bridge but the event contract): three stations publish over MQTT to
//! three edges, a group of three bridges runs exactly-once, and while results stream in, edges and bridges
//! are killed (-9) in turn and restarted at once, as their supervisors would. At the end every topic is read
//! read_committed and the run passes only with nothing lost, duplicated, reordered or invented, and the
//! audit chains intact. The short form runs in CI; `LINEGATE_FAULT_KILLS=20 LINEGATE_FAULT_INSPECTIONS=1500`
//! is the long form (docs/guarantees.md has its figures).

use std::time::Duration;

use super::{read_topic, setting};

use linegate_e2e::checker::{self, Published};
use linegate_e2e::delivery::{start_eos, start_eos_group, AUDIT, INPUT, LIFECYCLE};
use linegate_e2e::stack::{audit_verify, start_edge, station_topic};
use linegate_e2e::station::inspection_documents;
use linegate_e2e::{mqtt, ChildProcess, Kafka, Mosquitto};

const STATIONS: [&str; 3] = ["ST-K1", "ST-K2", "ST-K3"];
/// Documents per second per station.
const RATE: u32 = 80;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_and_bridges_killed_under_load_lose_duplicate_reorder_and_invent_nothing() {
    let kills = setting("LINEGATE_FAULT_KILLS", 6);
    let inspections = setting("LINEGATE_FAULT_INSPECTIONS", 300);
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let kafka = Kafka::start().unwrap();
    let instance = |i: usize| format!("k-{i}");
    let instances: Vec<String> = (0..3).map(instance).collect();
    let mut bridges = start_eos_group(&kafka, dir.path(), "checked", &instances, &[]);
    let mut edges: Vec<ChildProcess> = STATIONS
        .iter()
        .map(|s| start_edge(s, &mosquitto, &kafka, dir.path()).unwrap())
        .collect();

    // What each station acknowledged: publish_all returns once the broker acknowledged every payload.
    let mut published = Published::new();
    let mut publishers = Vec::new();
    for (i, station) in STATIONS.iter().enumerate() {
        let docs = inspection_documents(station, inspections, 70 + i as u64);
        let ids = docs
            .iter()
            .map(|d| d["event_id"].as_str().unwrap().to_owned());
        published.insert((*station).to_owned(), ids.collect());
        let payloads: Vec<Vec<u8>> = docs.iter().map(|d| d.to_string().into_bytes()).collect();
        let (port, topic, client) = (
            mosquitto.port(),
            station_topic(station),
            format!("sim-k{i}"),
        );
        publishers.push(tokio::spawn(async move {
            mqtt::publish_all(port, &client, &topic, &payloads, RATE).await
        }));
    }
    // Faults at uneven moments: an edge, then a bridge, in turn.
    let mut injected = 0;
    for kill in 0..2 * kills {
        tokio::time::sleep(Duration::from_millis(700 + 131 * (kill % 7) as u64)).await;
        if kill % 2 == 0 {
            let e = kill / 2 % edges.len();
            edges[e].kill();
            edges[e] = start_edge(STATIONS[e], &mosquitto, &kafka, dir.path()).unwrap();
        } else {
            let b = kill / 2 % bridges.len();
            bridges[b].kill();
            bridges[b] = start_eos(&kafka, dir.path(), "checked", &instance(b), &[]);
        }
        injected += 1;
    }
    for publisher in publishers {
        publisher.await.unwrap().unwrap();
    }

    let n: usize = published.values().map(Vec::len).sum();
    let ingest = read_topic(&kafka, INPUT, n).await;
    let lifecycle = read_topic(&kafka, LIFECYCLE, n).await;
    let report = checker::check(&published, &ingest, &lifecycle);
    let (chains_ok, chains) = audit_verify(&kafka, AUDIT);
    eprintln!(
        "checked run: {injected} faults ({kills} edge kills, {kills} bridge kills), {n} results, {} ingest records\n{}audit verify: {}",
        ingest.len(),
        report.table(),
        if chains_ok { "intact" } else { "BROKEN" }
    );
    assert!(report.clean(true), "{}", report.table());
    assert!(chains_ok, "{chains}");
}
