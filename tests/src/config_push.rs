//! Pushed station configs in tests: the bridge's `config` commands, hand-made envelopes (unsigned, forged,
//! broken) that `config push` would refuse to make, and reading the CONFIG_* reports back from Kafka.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use linegate_schemas::{AuditEvent, EdgeEvent, EdgePayload, SystemEvent};
use linegate_station_config::signed::SignedConfig;

use crate::brokers::{Kafka, Mosquitto};
use crate::kafka::Record;
use crate::process::{bin_path, repo_root};

/// Runs `linegate-bridge config ARGS` against `kafka` with the example bridge config (`--config` is added
/// for every subcommand but keygen); returns (success, stdout, stderr).
pub fn bridge_config(kafka: Option<&Kafka>, args: &[&str]) -> (bool, String, String) {
    let config = repo_root().join("config/bridge.example.toml");
    let mut command = std::process::Command::new(bin_path("linegate-bridge"));
    command.arg("config").args(&args[..1]);
    if args[0] != "keygen" {
        command.args(["--config", config.to_str().expect("utf-8 path")]);
    }
    command.args(&args[1..]);
    let bootstrap = kafka.map_or_else(|| "127.0.0.1:1".to_owned(), Kafka::bootstrap);
    let output = command
        .env("LINEGATE_KAFKA_BOOTSTRAP", bootstrap)
        .env("LINEGATE_TOPIC_REPLICATION", "1")
        .output()
        .expect("linegate-bridge runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `config keygen --out DIR/keys`; returns (private key file, public key file).
pub fn keygen(dir: &Path) -> (PathBuf, PathBuf) {
    let out = dir.join("keys");
    let (ok, stdout, stderr) = bridge_config(None, &["keygen", "--out", out.to_str().unwrap()]);
    assert!(ok, "keygen failed: {stdout}{stderr}");
    (
        out.join("config-signing.key"),
        out.join("config-signing.pub"),
    )
}

/// `config push` of `file` for `station`; returns the version it printed.
pub fn push(kafka: &Kafka, station: &str, key: &Path, file: &Path) -> u64 {
    let (ok, stdout, stderr) = bridge_config(
        Some(kafka),
        &[
            "push",
            "--station",
            station,
            "--key",
            key.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    );
    assert!(ok, "config push failed: {stdout}{stderr}");
    stdout
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no version in: {stdout}"))
}

/// Waits until `needle` occurs at least `count` times in the log at `path`.
pub fn wait_for_count(path: &Path, needle: &str, count: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let seen = text.matches(needle).count();
        if seen >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{needle}` seen {seen} times, not {count}, within {timeout:?}; log tail:\n{}",
            text.lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A config report as it reached `audit.events`, with the system event it points at on the ingest topic.
#[derive(Debug)]
pub struct ConfigReport {
    /// The audit record as read (its `system.*` headers hold the report's message and details).
    pub record: Record,
    /// The audit record.
    pub audit: AuditEvent,
    /// The SystemEvent the audit record's source position holds.
    pub event: SystemEvent,
}

/// The station's CONFIG_APPLIED / CONFIG_REJECTED audit records, in audit order, each joined with the
/// SystemEvent at its source position in `ingest`.
pub fn config_reports(audit: &[Record], ingest: &[Record], station: &str) -> Vec<ConfigReport> {
    audit
        .iter()
        .filter_map(|r| Some((r, linegate_schemas::decode::<AuditEvent>(&r.value).ok()?)))
        .filter(|(_, a)| a.station_id.as_deref() == Some(station))
        .filter(|(_, a)| {
            matches!(
                a.event_type.as_deref(),
                Some("CONFIG_APPLIED" | "CONFIG_REJECTED")
            )
        })
        .map(|(record, audit)| {
            let source = ingest
                .iter()
                .find(|r| r.partition == audit.source_partition && r.offset == audit.source_offset)
                .expect("the audited ingest record");
            let EdgePayload::System(event) = linegate_schemas::decode::<EdgeEvent>(&source.value)
                .expect("an EdgeEvent")
                .payload
            else {
                panic!("not a system event");
            };
            ConfigReport {
                record: record.clone(),
                audit,
                event,
            }
        })
        .collect()
}

/// Writes a local station file: identity, Kafka, the trusted key, the metrics endpoint on `http`, and MQTT on
/// `line/a/results` (what the station reads while no pushed config is in force).
pub fn write_local(
    path: &Path,
    dir: &Path,
    station: &str,
    mosquitto: &Mosquitto,
    kafka: &Kafka,
    public_key: &Path,
    http: u16,
) {
    let text = format!(
        r#"
[station]
id = "{station}"
data_dir = "{data}"

[kafka]
bootstrap = "{bootstrap}"

[forward]
retry_backoff_ms = 200

[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "edge-{station}"
topics = ["line/a/results"]

[http]
listen = "127.0.0.1:{http}"

[config_push]
public_key_file = "{public_key}"
"#,
        data = dir.join("data").display(),
        bootstrap = kafka.bootstrap(),
        port = mosquitto.port(),
        public_key = public_key.display(),
    );
    std::fs::write(path, text).unwrap();
}

/// A pushed document: only what the centre manages (the MQTT source and forwarding).
pub fn pushed(mosquitto: &Mosquitto, client_id: &str, topic: &str) -> String {
    format!(
        "[forward]\nretry_backoff_ms = 200\n\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"{client_id}\"\ntopics = [\"{topic}\"]\n",
        mosquitto.port()
    )
}

fn payloads(docs: &[serde_json::Value], from: usize, count: usize) -> Vec<Vec<u8>> {
    docs[from..from + count]
        .iter()
        .map(|d| d.to_string().into_bytes())
        .collect()
}

/// Publishes documents `from..from + 10` on `topic` with QoS 1, as the station software would.
pub async fn publish(mosquitto: &Mosquitto, topic: &str, docs: &[serde_json::Value], from: usize) {
    crate::mqtt::publish_all(
        mosquitto.port(),
        "station-sw",
        topic,
        &payloads(docs, from, 10),
        0,
    )
    .await
    .unwrap();
}

/// Produces `envelope` as the station's record, bypassing `config push` (which would refuse to make it).
pub async fn produce_envelope(kafka: &Kafka, station: &str, envelope: &SignedConfig) {
    crate::kafka::produce(
        &kafka.bootstrap(),
        linegate_common::topics::STATION_CONFIG,
        Some(station.as_bytes()),
        &envelope.to_json(),
    )
    .await
    .unwrap();
}

/// The edge's `/metrics` text.
pub async fn metrics(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
