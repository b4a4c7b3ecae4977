//! A second bridge instance joins the group while records flow, and leaves again (SIGTERM) while they still
//! flow: two rebalances with rounds in flight. Partitions must be released with their work committed, so
//! every input yields its outputs exactly once: no repeat on lifecycle, one audit record per input, the
//! chains intact, no GAP (a record judged by an instance that had lost its partition, with a stale ledger).
//! And the joining member must get to work while the first keeps writing: its read-back of the dedup state
//! ends although state records keep arriving.

use std::collections::HashSet;
use std::time::Duration;

use linegate_e2e::kafka::{consume_until_async, produce_many};
use linegate_e2e::process::repo_root;
use linegate_e2e::stack::{audit_verify, BridgeRun};
use linegate_e2e::Kafka;
use linegate_schemas::{encode, EdgeEvent};

const STATIONS: usize = 12;
const EVENTS_PER_STATION: i64 = 250;
/// The input goes in this many slices, one every `SLICE_EVERY`, so records flow through both rebalances.
const SLICES: usize = 100;
const SLICE_EVERY: Duration = Duration::from_millis(150);
const WAIT: Duration = Duration::from_secs(300);
/// How long the topics are watched after the expected count arrived, for repeats.
const GRACE: Duration = Duration::from_secs(8);

fn edge_event(station: &str, seq: i64) -> EdgeEvent {
    linegate_e2e::events::inspection_started(station, seq, "LOT-7")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joining_and_leaving_mid_stream_writes_every_output_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::start().unwrap();
    let bootstrap = kafka.bootstrap();
    // Rounds that gather for a second: each rebalance then comes while the first instance holds records it
    // received but has not routed, of partitions it is about to lose.
    let example = std::fs::read_to_string(repo_root().join("config/bridge.example.toml")).unwrap();
    let config = dir.path().join("bridge.toml");
    let slow_rounds = example.replacen("batch_wait_ms = 10\n", "batch_wait_ms = 1000\n", 1);
    assert_ne!(
        slow_rounds, example,
        "the example config sets batch_wait_ms = 10"
    );
    std::fs::write(&config, slow_rounds).unwrap();
    std::fs::copy(
        repo_root().join("config/topics.toml"),
        dir.path().join("topics.toml"),
    )
    .unwrap();
    let start = |i: usize| {
        let env = [("LINEGATE_BRIDGE_INSTANCE", format!("rebalance-{i}"))];
        BridgeRun::new(&kafka, "rebalance", dir.path())
            .instance(&format!("-{i}"))
            .config(&config)
            .envs(&env)
            .start()
            .unwrap()
    };
    let mut first = start(1);
    first
        .wait_for_log("input partitions assigned", Duration::from_secs(90))
        .unwrap();

    let events: Vec<EdgeEvent> = (1..=EVENTS_PER_STATION)
        .flat_map(|seq| (0..STATIONS).map(move |s| edge_event(&format!("ST-R{s:02}"), seq)))
        .collect();
    let records: Vec<(Option<Vec<u8>>, Vec<u8>)> = events
        .iter()
        .map(|e| (Some(e.station_id.clone().into_bytes()), encode(e).unwrap()))
        .collect();
    let feeder = {
        let (bootstrap, records) = (bootstrap.clone(), records.clone());
        tokio::spawn(async move {
            for slice in records.chunks(records.len().div_ceil(SLICES)) {
                produce_many(&bootstrap, "edge.station.events", slice)
                    .await
                    .unwrap();
                tokio::time::sleep(SLICE_EVERY).await;
            }
        })
    };
    // Join while records flow: the first instance gives partitions away with rounds in flight.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut second = start(2);
    second
        .wait_for_log("input partitions assigned", Duration::from_secs(90))
        .unwrap();
    // The joining member reads the dedup state back while the first one keeps writing state records: the
    // read must end without waiting for the input to pause.
    second
        .wait_for_log("dedup state restored", Duration::from_secs(30))
        .unwrap();
    assert!(
        !feeder.is_finished(),
        "the joining member restored its state only after the input ended\n{}",
        second.log_tail(20)
    );
    // Leave while records still flow: its partitions go back to the first instance.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(second.terminate(Duration::from_secs(30)), "clean stop");
    feeder.await.unwrap();

    let n = events.len();
    let logs = || format!("{}\n{}", first.log_tail(20), second.log_tail(20));
    let lifecycle = consume_until_async(&bootstrap, "inspection.lifecycle", n, WAIT, GRACE)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    let ids: Vec<&str> = lifecycle
        .iter()
        .map(|r| r.header("idempotency-key").expect("idempotency-key"))
        .collect();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    let expected: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(distinct, expected, "every event on lifecycle, by id");
    assert_eq!(
        ids.len(),
        n,
        "{} lifecycle records were written twice across the rebalances\n{}",
        ids.len() - n,
        logs()
    );
    let audit = consume_until_async(&bootstrap, "audit.events", n, WAIT, GRACE)
        .await
        .unwrap();
    assert_eq!(
        audit.len(),
        n,
        "one audit record per input, no repeat, no DUPLICATE"
    );
    first.terminate(Duration::from_secs(30));
    let (ok, text) = audit_verify(&kafka, "audit.events");
    assert!(ok, "{text}");
}
