//! The linegate binaries wired to test brokers, the way an operator would run them with the example configs.

use std::path::Path;
use std::time::Duration;

use crate::brokers::{Kafka, Mosquitto};
use crate::process::{bin_path, repo_root, ChildProcess};

/// Starts `linegate-bridge run` with `config/bridge.example.toml`; logs to `dir/bridge-<group>.log`.
pub fn start_bridge(kafka: &Kafka, group: &str, dir: &Path) -> anyhow::Result<ChildProcess> {
    start_bridge_with(kafka, group, dir, "", &[])
}

/// [`start_bridge`] as instance `instance` of the group (its log is `dir/bridge-<group><instance>.log`),
/// with extra environment such as `LINEGATE_DELIVERY_MODE`.
pub fn start_bridge_with(
    kafka: &Kafka,
    group: &str,
    dir: &Path,
    instance: &str,
    extra_env: &[(&'static str, String)],
) -> anyhow::Result<ChildProcess> {
    let config = repo_root().join("config/bridge.example.toml");
    start_bridge_config(kafka, group, dir, instance, &config, extra_env)
}

/// [`start_bridge_with`] with another config file, e.g. the example with a `[routing]` table added.
pub fn start_bridge_config(
    kafka: &Kafka,
    group: &str,
    dir: &Path,
    instance: &str,
    config: &Path,
    extra_env: &[(&'static str, String)],
) -> anyhow::Result<ChildProcess> {
    let env = [
        vec![
            ("LINEGATE_KAFKA_BOOTSTRAP", kafka.bootstrap()),
            ("LINEGATE_TOPIC_REPLICATION", "1".to_owned()),
            ("LINEGATE_BRIDGE_GROUP", group.to_owned()),
        ],
        extra_env.to_vec(),
    ]
    .concat();
    ChildProcess::spawn(
        "linegate-bridge",
        &bin_path("linegate-bridge"),
        &["run", "--config", config.to_str().expect("utf-8 path")],
        &env,
        &dir.join(format!("bridge-{group}{instance}.log")),
    )
}

/// Runs `linegate-bridge audit verify` on `topic`; returns whether it passed and its stdout and stderr.
pub fn audit_verify(kafka: &Kafka, topic: &str) -> (bool, String) {
    audit_verify_with(kafka, topic, &[])
}

/// [`audit_verify`] with extra environment, e.g. `LINEGATE_SCHEMA_REGISTRY_URL` for a Confluent-framed topic.
pub fn audit_verify_with(
    kafka: &Kafka,
    topic: &str,
    extra_env: &[(&'static str, String)],
) -> (bool, String) {
    let config = repo_root().join("config/bridge.example.toml");
    let output = std::process::Command::new(bin_path("linegate-bridge"))
        .args([
            "audit",
            "verify",
            "--config",
            config.to_str().expect("utf-8 path"),
        ])
        .args(["--topic", topic])
        .env("LINEGATE_KAFKA_BOOTSTRAP", kafka.bootstrap())
        .env("LINEGATE_TOPIC_REPLICATION", "1")
        .envs(extra_env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("linegate-bridge runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The environment the example edge config takes for `station`.
pub fn edge_env(
    station: &str,
    mosquitto: &Mosquitto,
    kafka: &Kafka,
    dir: &Path,
) -> Vec<(&'static str, String)> {
    vec![
        ("LINEGATE_STATION_ID", station.to_owned()),
        (
            "LINEGATE_DATA_DIR",
            dir.join(format!("edge-{station}")).display().to_string(),
        ),
        ("LINEGATE_MQTT_PORT", mosquitto.port().to_string()),
        ("LINEGATE_KAFKA_BOOTSTRAP", kafka.bootstrap()),
        // Each edge serves /metrics on its own port; a test that reads it passes its own.
        (
            "LINEGATE_HTTP_LISTEN",
            format!("127.0.0.1:{}", crate::process::free_port()),
        ),
    ]
}

/// Starts `linegate-edge run` for `station` with `config/edge.example.toml` and, on its first start, returns
/// once it has subscribed (before that, the broker keeps nothing for it). Its outbox is in
/// `dir/edge-<station>/outbox.db`.
pub fn start_edge(
    station: &str,
    mosquitto: &Mosquitto,
    kafka: &Kafka,
    dir: &Path,
) -> anyhow::Result<ChildProcess> {
    start_edge_with(station, mosquitto, kafka, dir, &[])
}

/// [`start_edge`] with extra environment, e.g. `LINEGATE_OUTBOX_MAX_EVENTS`.
pub fn start_edge_with(
    station: &str,
    mosquitto: &Mosquitto,
    kafka: &Kafka,
    dir: &Path,
    extra_env: &[(&'static str, String)],
) -> anyhow::Result<ChildProcess> {
    let config = repo_root().join("config/edge.example.toml");
    let log = dir.join(format!("edge-{station}.log"));
    let first_start = !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(SUBSCRIBED);
    let mut edge = ChildProcess::spawn(
        "linegate-edge",
        &bin_path("linegate-edge"),
        &["run", "--config", config.to_str().expect("utf-8 path")],
        &[edge_env(station, mosquitto, kafka, dir), extra_env.to_vec()].concat(),
        &log,
    )?;
    if first_start {
        edge.wait_for_log(SUBSCRIBED, Duration::from_secs(20))?;
    }
    Ok(edge)
}

/// Starts `linegate-edge run --config CONFIG` (a station config a test wrote), logging to `dir/edge.log`, and
/// returns once the edge logged `ready` (e.g. `MQTT subscribed`, `Modbus device connected`).
pub fn start_edge_with_config(
    config: &Path,
    dir: &Path,
    ready: &str,
) -> anyhow::Result<ChildProcess> {
    let mut edge = ChildProcess::spawn(
        "linegate-edge",
        &bin_path("linegate-edge"),
        &["run", "--config", config.to_str().expect("utf-8 path")],
        &[],
        &dir.join("edge.log"),
    )?;
    edge.wait_for_log(ready, Duration::from_secs(20))?;
    Ok(edge)
}

/// What the edge logs once its MQTT subscriptions are in place.
pub const SUBSCRIBED: &str = "MQTT subscribed";

/// Runs `linegate-edge outbox ARGS` for `station` and returns its stdout; panics with stderr on failure.
pub fn edge_outbox_command(
    station: &str,
    mosquitto: &Mosquitto,
    kafka: &Kafka,
    dir: &Path,
    args: &[&str],
) -> String {
    let config = repo_root().join("config/edge.example.toml");
    let output = std::process::Command::new(bin_path("linegate-edge"))
        .args(["outbox", "--config", config.to_str().expect("utf-8 path")])
        .args(args)
        .envs(edge_env(station, mosquitto, kafka, dir))
        .output()
        .expect("linegate-edge runs");
    assert!(
        output.status.success(),
        "linegate-edge outbox {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Path of a station's outbox under the test directory.
pub fn outbox_path(station: &str, dir: &Path) -> std::path::PathBuf {
    dir.join(format!("edge-{station}")).join("outbox.db")
}

/// Topic of a station's results, as in the example edge config.
pub fn station_topic(station: &str) -> String {
    format!("stations/{station}/results")
}

/// Writes `dir/bridge-http.toml`: the example bridge config with an `[http]` section on `port` (and
/// `token` when given); returns its path. Its topic plan is the repository's `config/topics.toml`.
pub fn bridge_config_with_http(
    dir: &Path,
    port: u16,
    token: Option<&str>,
) -> anyhow::Result<std::path::PathBuf> {
    let example = std::fs::read_to_string(repo_root().join("config/bridge.example.toml"))?;
    let plan = repo_root().join("config/topics.toml");
    let mut text = example.replace(
        "${LINEGATE_TOPICS_FILE:-topics.toml}",
        plan.to_str().expect("utf-8 path"),
    );
    text.push_str(&format!("\n[http]\nlisten = \"127.0.0.1:{port}\"\n"));
    if let Some(token) = token {
        text.push_str(&format!("token = \"{token}\"\n"));
    }
    let path = dir.join(format!("bridge-http-{port}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Starts `linegate-bridge run --config <config>` (see [`bridge_config_with_http`]) in group `group`.
pub fn start_bridge_with_config(
    kafka: &Kafka,
    group: &str,
    config: &Path,
    dir: &Path,
) -> anyhow::Result<ChildProcess> {
    ChildProcess::spawn(
        "linegate-bridge",
        &bin_path("linegate-bridge"),
        &["run", "--config", config.to_str().expect("utf-8 path")],
        &[
            ("LINEGATE_KAFKA_BOOTSTRAP", kafka.bootstrap()),
            ("LINEGATE_TOPIC_REPLICATION", "1".to_owned()),
            ("LINEGATE_BRIDGE_GROUP", group.to_owned()),
        ],
        &dir.join(format!("bridge-{group}.log")),
    )
}
