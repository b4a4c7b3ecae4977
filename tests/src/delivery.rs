//! What the delivery tests share: bridges started in exactly-once mode, input records made for them, the
//! read_committed checks (each input once on lifecycle and audit, chains intact) and audit outcome counts.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use linegate_schemas::{decode, encode, AuditEvent};

use crate::kafka::{consume_isolated, consume_until_async, Isolation, Record};
use crate::stack::{audit_verify, BridgeRun};
use crate::{repo_root, ChildProcess, Kafka};

/// The topics of the example configs.
pub const INPUT: &str = "edge.station.events";
/// Lifecycle output.
pub const LIFECYCLE: &str = "inspection.lifecycle";
/// Quality output.
pub const QUALITY: &str = "quality.events";
/// Audit output.
pub const AUDIT: &str = "audit.events";
/// Longest wait for the outputs.
pub const WAIT: Duration = Duration::from_secs(300);
/// How long a topic is read past the expected count, for extras.
pub const GRACE: Duration = Duration::from_secs(5);
/// Longest wait for a bridge's start.
pub const STARTED: Duration = Duration::from_secs(90);

/// The example bridge config in `dir` with a 3 s group session, so a killed member is replaced within seconds, and
/// `client` lines added to its `[kafka.client]` table.
pub fn eos_config(dir: &Path, client: &str) -> PathBuf {
    let example = std::fs::read_to_string(repo_root().join("config/bridge.example.toml")).unwrap();
    let text = example.replacen(
        "# [kafka.client]\n",
        &format!("[kafka.client]\n\"session.timeout.ms\" = \"3000\"\n\"heartbeat.interval.ms\" = \"500\"\n{client}"),
        1,
    );
    assert_ne!(
        text, example,
        "the example config has a [kafka.client] line"
    );
    // Written aside and renamed: a bridge started a moment before may be reading the file right now.
    let config = dir.join("bridge-eos.toml");
    let scratch = dir.join(format!("bridge-eos.toml.{}", uuid::Uuid::new_v4()));
    std::fs::write(&scratch, text).unwrap();
    std::fs::rename(&scratch, &config).unwrap();
    if !dir.join("topics.toml").exists() {
        std::fs::copy(
            repo_root().join("config/topics.toml"),
            dir.join("topics.toml"),
        )
        .unwrap();
    }
    config
}

/// Starts instance `instance` of `group` in exactly-once mode, with `extra` environment.
pub fn start_eos(
    kafka: &Kafka,
    dir: &Path,
    group: &str,
    instance: &str,
    extra: &[(&'static str, String)],
) -> ChildProcess {
    start_eos_with(kafka, dir, (group, instance), extra, "")
}

/// Exactly-once bridges of `group`, one per instance id, returned once each has proven that the broker
/// commits its transactions.
pub fn start_eos_group(
    kafka: &Kafka,
    dir: &Path,
    group: &str,
    instances: &[String],
    extra: &[(&'static str, String)],
) -> Vec<ChildProcess> {
    let mut bridges: Vec<ChildProcess> = instances
        .iter()
        .map(|instance| start_eos(kafka, dir, group, instance, extra))
        .collect();
    for bridge in &mut bridges {
        bridge
            .wait_for_log("exactly-once delivery: transactions work", STARTED)
            .unwrap();
    }
    bridges
}

/// [`start_eos`] with `client` lines in the config's `[kafka.client]` table.
pub fn start_eos_with(
    kafka: &Kafka,
    dir: &Path,
    (group, instance): (&str, &str),
    extra: &[(&'static str, String)],
    client: &str,
) -> ChildProcess {
    start_eos_logged(kafka, dir, (group, instance), extra, client, instance)
}

/// [`start_eos_with`] writing its log to `bridge-{group}-{label}.log`: two processes started with the
/// same instance id keep apart logs.
pub fn start_eos_logged(
    kafka: &Kafka,
    dir: &Path,
    (group, instance): (&str, &str),
    extra: &[(&'static str, String)],
    client: &str,
    label: &str,
) -> ChildProcess {
    let env = [
        vec![
            ("LINEGATE_DELIVERY_MODE", "exactly_once".to_owned()),
            ("LINEGATE_BRIDGE_INSTANCE", instance.to_owned()),
        ],
        extra.to_vec(),
    ]
    .concat();
    let config = eos_config(dir, client);
    BridgeRun::new(kafka, group, dir)
        .instance(&format!("-{label}"))
        .config(&config)
        .envs(&env)
        .start()
        .unwrap()
}

/// The `idempotency-key` header of every record.
pub fn idempotency_keys(records: &[Record]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r.header("idempotency-key").expect("idempotency-key header"))
        .collect()
}

/// Asserts that no two of `records` carry the same idempotency key; returns the keys.
pub fn assert_each_once(records: &[Record], what: &str) -> HashSet<String> {
    let keys = idempotency_keys(records);
    let distinct: HashSet<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    assert_eq!(
        distinct.len(),
        keys.len(),
        "{what}: {} records, {} distinct",
        keys.len(),
        distinct.len()
    );
    distinct
}

/// How many records `topic` holds, those of aborted transactions included (at least `committed`).
pub async fn read_uncommitted(bootstrap: &str, topic: &str, committed: usize) -> usize {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        consume_isolated(
            &bootstrap,
            &topic,
            committed,
            (WAIT, GRACE),
            Isolation::ReadUncommitted,
        )
    })
    .await
    .unwrap()
    .unwrap()
    .len()
}

/// Reads lifecycle and audit (read_committed): each of `n` inputs left one record on each, none twice, and
/// the audit chains verify. Returns the lifecycle records.
pub async fn each_input_once(kafka: &Kafka, n: usize, bridge: &ChildProcess) -> Vec<Record> {
    let bootstrap = kafka.bootstrap();
    let lifecycle = consume_until_async(&bootstrap, LIFECYCLE, n, WAIT, GRACE)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", bridge.log_tail(30)));
    assert_eq!(lifecycle.len(), n, "read_committed sees each output once");
    assert_each_once(&lifecycle, LIFECYCLE);
    let audit = consume_until_async(&bootstrap, AUDIT, n, WAIT, GRACE)
        .await
        .unwrap();
    assert_eq!(audit.len(), n, "one audit record per input");
    let (ok, report) = audit_verify(kafka, AUDIT);
    assert!(ok, "audit chains verify:\n{report}");
    lifecycle
}

/// Audit records per outcome (`Accepted`, `Duplicate`, ...).
pub fn outcomes(audit: &[Record]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for record in audit {
        let event: AuditEvent = decode(&record.value).unwrap();
        *counts.entry(format!("{:?}", event.outcome)).or_insert(0) += 1;
    }
    counts
}

/// `count` INSPECTION_STARTED events of `station` from `first_seq` on, as input records.
pub fn inputs(station: &str, first_seq: i64, count: i64) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    (first_seq..first_seq + count)
        .map(|seq| {
            let event = crate::events::inspection_started(station, seq, "LOT-EOS");
            (Some(station.as_bytes().to_vec()), encode(&event).unwrap())
        })
        .collect()
}
