//! Three bridge instances in one consumer group share the input; one is killed (SIGKILL) mid-stream and
//! restarted by its supervisor; the outputs are complete, every event once by id (a repeat of the killed
//! instance's last round is identical and at most one round long), and the audit chains still verify.

use std::collections::HashSet;
use std::time::Duration;

use linegate_e2e::kafka::{consume_until_async, produce_many, Record};
use linegate_e2e::process::repo_root;
use linegate_e2e::stack::{audit_verify, BridgeRun};
use linegate_e2e::Kafka;
use linegate_schemas::{decode, encode, AuditEvent, AuditOutcome, EdgeEvent};

const STATIONS: usize = 12;
const EVENTS_PER_STATION: i64 = 150;
const WAIT: Duration = Duration::from_secs(300);
const GRACE: Duration = Duration::from_secs(5);

fn edge_event(station: &str, seq: i64) -> EdgeEvent {
    linegate_e2e::events::inspection_started(station, seq, "LOT-9")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_one_killed_mid_stream_complete_the_outputs_once_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::start().unwrap();
    let bootstrap = kafka.bootstrap();
    // The example config with a short session timeout, so the group notices the killed member sooner.
    let example = std::fs::read_to_string(repo_root().join("config/bridge.example.toml")).unwrap();
    let config = dir.path().join("bridge.toml");
    std::fs::write(
        &config,
        example.replacen(
            "# [kafka.client]\n",
            "[kafka.client]\n\"session.timeout.ms\" = \"3000\"\n\"heartbeat.interval.ms\" = \"500\"\n",
            1,
        ),
    )
    .unwrap();
    std::fs::copy(
        repo_root().join("config/topics.toml"),
        dir.path().join("topics.toml"),
    )
    .unwrap();
    let mut bridges: Vec<_> = (1..=3)
        .map(|i| {
            let env = [("LINEGATE_BRIDGE_INSTANCE", format!("scale-{i}"))];
            let mut bridge = BridgeRun::new(&kafka, "scale", dir.path())
                .instance(&format!("-{i}"))
                .config(&config)
                .envs(&env)
                .start()
                .unwrap();
            bridge
                .wait_for_log("input partitions assigned", Duration::from_secs(90))
                .unwrap();
            bridge
        })
        .collect();
    // Let the group settle with three members before the load starts.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let events: Vec<EdgeEvent> = (1..=EVENTS_PER_STATION)
        .flat_map(|seq| (0..STATIONS).map(move |s| edge_event(&format!("ST-S{s:02}"), seq)))
        .collect();
    let records: Vec<(Option<Vec<u8>>, Vec<u8>)> = events
        .iter()
        .map(|e| (Some(e.station_id.clone().into_bytes()), encode(e).unwrap()))
        .collect();
    let (before_kill, rest) = records.split_at(records.len() / 3);
    produce_many(&bootstrap, "edge.station.events", before_kill)
        .await
        .unwrap();
    // Mid-stream: a third is in, the rest follows after the kill.
    tokio::time::sleep(Duration::from_millis(300)).await;
    bridges[1].kill();
    // Its supervisor (systemd's Restart=on-failure, RestartSec=1) starts it again; meanwhile the group hands
    // the dead member's partitions on once its session (3 s here) expired.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let env = [("LINEGATE_BRIDGE_INSTANCE", "scale-2".to_owned())];
    bridges[1] = BridgeRun::new(&kafka, "scale", dir.path())
        .instance("-2")
        .config(&config)
        .envs(&env)
        .start()
        .unwrap();
    produce_many(&bootstrap, "edge.station.events", rest)
        .await
        .unwrap();

    let n = events.len();
    let logs = || {
        bridges
            .iter()
            .map(|b| b.log_tail(15))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let lifecycle = consume_until_async(&bootstrap, "inspection.lifecycle", n, WAIT, GRACE)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    let ids: HashSet<&str> = lifecycle
        .iter()
        .filter_map(|r: &Record| r.header("idempotency-key"))
        .collect();
    let expected: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, expected, "every event on lifecycle, by id");
    // At-least-once: the killed instance's last round may be written again by the partitions' next owner,
    // identically (same key, same bytes, same idempotency-key), and never more than one round of it.
    let mut first: std::collections::HashMap<&str, &Record> = std::collections::HashMap::new();
    for record in &lifecycle {
        let id = record.header("idempotency-key").expect("idempotency-key");
        if let Some(earlier) = first.insert(id, record) {
            assert_eq!(
                (&earlier.key, &earlier.value),
                (&record.key, &record.value),
                "a repeated output differs from the first one"
            );
        }
    }
    // Only the killed instance's unacknowledged rounds are repeated, all from before the kill.
    assert!(
        lifecycle.len() - ids.len() <= before_kill.len(),
        "more repeats ({}) than records sent before the kill ({})",
        lifecycle.len() - ids.len(),
        before_kill.len()
    );
    eprintln!(
        "{n} events through three instances, one SIGKILLed: {} lifecycle records, {} distinct ({} identical re-sends of the killed instance's last round)",
        lifecycle.len(),
        ids.len(),
        lifecycle.len() - ids.len()
    );
    // The input has no gap in any station's seq: a GAP audit record would mean that an instance judged a
    // record with a stale ledger (as when it routed records fetched before it lost their partition).
    let audit = consume_until_async(&bootstrap, "audit.events", n, WAIT, GRACE)
        .await
        .unwrap();
    let audits: Vec<AuditEvent> = audit
        .iter()
        .map(|r| decode::<AuditEvent>(&r.value).unwrap())
        .collect();
    let gaps: Vec<String> = audits
        .iter()
        .filter(|a| a.outcome == AuditOutcome::Gap)
        .map(|a| {
            format!(
                "{:?} {:?}..{:?}",
                a.station_id, a.gap_first_seq, a.gap_last_seq
            )
        })
        .collect();
    assert!(
        gaps.is_empty(),
        "GAP records for a gapless input: {gaps:?}\n{}",
        logs()
    );
    let audited: HashSet<&str> = audits
        .iter()
        .filter_map(|a| a.subject_event_id.as_deref())
        .collect();
    assert_eq!(audited, expected, "every event audited");
    for bridge in bridges.iter_mut() {
        bridge.terminate(Duration::from_secs(30));
    }
    let (ok, text) = audit_verify(&kafka, "audit.events");
    eprintln!("{}", text.trim());
    assert!(ok, "{text}");
}
