//! The linegate binaries wired to test brokers, the way an operator would run them with the example configs.

use std::path::Path;

use crate::brokers::{Mosquitto, Tansu};
use crate::process::{bin_path, repo_root, ChildProcess};

/// Starts `linegate-bridge run` with `config/bridge.example.toml`; logs to `dir/bridge-<group>.log`.
pub fn start_bridge(tansu: &Tansu, group: &str, dir: &Path) -> anyhow::Result<ChildProcess> {
    let config = repo_root().join("config/bridge.example.toml");
    ChildProcess::spawn(
        "linegate-bridge",
        &bin_path("linegate-bridge"),
        &["run", "--config", config.to_str().expect("utf-8 path")],
        &[
            ("LINEGATE_KAFKA_BOOTSTRAP", tansu.bootstrap()),
            ("LINEGATE_TOPIC_REPLICATION", "1".to_owned()),
            ("LINEGATE_BRIDGE_GROUP", group.to_owned()),
        ],
        &dir.join(format!("bridge-{group}.log")),
    )
}

/// Starts `linegate-edge run` for `station` with `config/edge.example.toml`; its outbox is in
/// `dir/edge-<station>/outbox.db`.
pub fn start_edge(
    station: &str,
    mosquitto: &Mosquitto,
    tansu: &Tansu,
    dir: &Path,
) -> anyhow::Result<ChildProcess> {
    let config = repo_root().join("config/edge.example.toml");
    ChildProcess::spawn(
        "linegate-edge",
        &bin_path("linegate-edge"),
        &["run", "--config", config.to_str().expect("utf-8 path")],
        &[
            ("LINEGATE_STATION_ID", station.to_owned()),
            (
                "LINEGATE_DATA_DIR",
                dir.join(format!("edge-{station}")).display().to_string(),
            ),
            ("LINEGATE_MQTT_PORT", mosquitto.port().to_string()),
            ("LINEGATE_KAFKA_BOOTSTRAP", tansu.bootstrap()),
        ],
        &dir.join(format!("edge-{station}.log")),
    )
}

/// Path of a station's outbox under the test directory.
pub fn outbox_path(station: &str, dir: &Path) -> std::path::PathBuf {
    dir.join(format!("edge-{station}")).join("outbox.db")
}

/// Topic of a station's results, as in the example edge config.
pub fn station_topic(station: &str) -> String {
    format!("stations/{station}/results")
}
