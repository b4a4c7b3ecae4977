//! The linegate binaries wired to test brokers, the way an operator would run them with the example configs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::brokers::{Kafka, Mosquitto};
use crate::process::{bin_path, repo_root, ChildProcess};

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

/// `linegate-bridge run` against `kafka` in consumer group `group`, with `config/bridge.example.toml` unless
/// [`BridgeRun::config`] says otherwise; logs to `dir/bridge-<group><instance>.log`.
pub struct BridgeRun<'a> {
    kafka: &'a Kafka,
    group: String,
    dir: PathBuf,
    instance: String,
    config: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl<'a> BridgeRun<'a> {
    /// A bridge of group `group` with the example config.
    pub fn new(kafka: &'a Kafka, group: &str, dir: &Path) -> Self {
        Self {
            kafka,
            group: group.to_owned(),
            dir: dir.to_owned(),
            instance: String::new(),
            config: repo_root().join("config/bridge.example.toml"),
            env: Vec::new(),
        }
    }

    /// One instance of several in the group: its log is `bridge-<group><instance>.log`.
    pub fn instance(mut self, instance: &str) -> Self {
        self.instance = instance.to_owned();
        self
    }

    /// Another config file, e.g. the example with a `[routing]` table added.
    pub fn config(mut self, config: &Path) -> Self {
        self.config = config.to_owned();
        self
    }

    /// Extra environment, such as `LINEGATE_DELIVERY_MODE`.
    pub fn envs(mut self, env: &[(&'static str, String)]) -> Self {
        self.env.extend_from_slice(env);
        self
    }

    /// Starts it (it has not necessarily joined the group yet).
    pub fn start(self) -> anyhow::Result<ChildProcess> {
        let env = [
            vec![
                ("LINEGATE_KAFKA_BOOTSTRAP", self.kafka.bootstrap()),
                ("LINEGATE_TOPIC_REPLICATION", "1".to_owned()),
                ("LINEGATE_BRIDGE_GROUP", self.group.clone()),
            ],
            self.env,
        ]
        .concat();
        ChildProcess::spawn(
            "linegate-bridge",
            &bin_path("linegate-bridge"),
            &["run", "--config", self.config.to_str().expect("utf-8 path")],
            &env,
            &self
                .dir
                .join(format!("bridge-{}{}.log", self.group, self.instance)),
        )
    }
}

/// [`BridgeRun`] with the example config: the common case.
pub fn start_bridge(kafka: &Kafka, group: &str, dir: &Path) -> anyhow::Result<ChildProcess> {
    BridgeRun::new(kafka, group, dir).start()
}

/// How an edge is configured.
enum EdgeConfigFile<'a> {
    /// `config/edge.example.toml` for a station, through its environment ([`edge_env`]).
    Example {
        station: String,
        mosquitto: &'a Mosquitto,
        kafka: &'a Kafka,
    },
    /// A station config the test wrote ([`StationToml`]).
    File(PathBuf),
}

/// `linegate-edge run`: with the example config for a station ([`EdgeRun::example`], log
/// `dir/edge-<station>.log`, waits for its first MQTT subscription), or with a file the test wrote
/// ([`EdgeRun::file`], log `dir/edge.log`, waits for [`EdgeRun::ready`]).
pub struct EdgeRun<'a> {
    config: EdgeConfigFile<'a>,
    dir: PathBuf,
    env: Vec<(&'static str, String)>,
    ready: String,
}

impl<'a> EdgeRun<'a> {
    /// The example config for `station`; its outbox is `dir/edge-<station>/outbox.db`.
    pub fn example(station: &str, mosquitto: &'a Mosquitto, kafka: &'a Kafka, dir: &Path) -> Self {
        Self {
            config: EdgeConfigFile::Example {
                station: station.to_owned(),
                mosquitto,
                kafka,
            },
            dir: dir.to_owned(),
            env: Vec::new(),
            ready: SUBSCRIBED.to_owned(),
        }
    }

    /// A station config file the test wrote.
    pub fn file(config: &Path, dir: &Path) -> Self {
        Self {
            config: EdgeConfigFile::File(config.to_owned()),
            dir: dir.to_owned(),
            env: Vec::new(),
            ready: SUBSCRIBED.to_owned(),
        }
    }

    /// Extra environment, e.g. `LINEGATE_OUTBOX_MAX_EVENTS`.
    pub fn envs(mut self, env: &[(&'static str, String)]) -> Self {
        self.env.extend_from_slice(env);
        self
    }

    /// The log line that says the edge is ready (default: its MQTT subscription), e.g.
    /// `Modbus device connected`.
    pub fn ready(mut self, line: &str) -> Self {
        self.ready = line.to_owned();
        self
    }

    /// Starts it and returns once it logged its ready line; with the example config only on its first
    /// start (a restarted edge resumes a session the broker kept).
    pub fn start(self) -> anyhow::Result<ChildProcess> {
        let (config, log, env, wait) = match &self.config {
            EdgeConfigFile::Example {
                station,
                mosquitto,
                kafka,
            } => {
                let log = self.dir.join(format!("edge-{station}.log"));
                let first_start = !std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains(&self.ready);
                let env = edge_env(station, mosquitto, kafka, &self.dir);
                let config = repo_root().join("config/edge.example.toml");
                (config, log, env, first_start)
            }
            EdgeConfigFile::File(path) => (path.clone(), self.dir.join("edge.log"), vec![], true),
        };
        let mut edge = ChildProcess::spawn(
            "linegate-edge",
            &bin_path("linegate-edge"),
            &["run", "--config", config.to_str().expect("utf-8 path")],
            &[env, self.env].concat(),
            &log,
        )?;
        if wait {
            edge.wait_for_log(&self.ready, Duration::from_secs(20))?;
        }
        Ok(edge)
    }
}

/// [`EdgeRun::example`] for `station`: the common case.
pub fn start_edge(
    station: &str,
    mosquitto: &Mosquitto,
    kafka: &Kafka,
    dir: &Path,
) -> anyhow::Result<ChildProcess> {
    EdgeRun::example(station, mosquitto, kafka, dir).start()
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
pub fn outbox_path(station: &str, dir: &Path) -> PathBuf {
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
) -> anyhow::Result<PathBuf> {
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

/// A station config file for an edge a test runs with [`EdgeRun::file`]: `[station]` and `[kafka]` from the
/// arguments, then the tables the test asks for, so that a test states only what it varies.
pub struct StationToml {
    station: String,
    text: String,
}

impl StationToml {
    /// `[station]` (`station`, its outbox under `data_dir`) and `[kafka]` (the test broker).
    pub fn new(station: &str, data_dir: &Path, kafka: &Kafka) -> Self {
        let text = format!(
            "[station]\nid = \"{station}\"\ndata_dir = \"{}\"\n\n[kafka]\nbootstrap = \"{}\"\n",
            data_dir.display(),
            kafka.bootstrap()
        );
        Self {
            station: station.to_owned(),
            text,
        }
    }

    /// `[http]` on 127.0.0.1:`port`.
    pub fn http(mut self, port: u16) -> Self {
        self.text += &format!("\n[http]\nlisten = \"127.0.0.1:{port}\"\n");
        self
    }

    /// `[mqtt]` on the test broker with client id `edge-<station>`, subscribed to `topics`, plus `keys`
    /// (TOML lines such as `protocol = "5"`; tables like `[mqtt.mapping]` may follow them).
    pub fn mqtt(mut self, mosquitto: &Mosquitto, topics: &[&str], keys: &str) -> Self {
        let topics: Vec<String> = topics.iter().map(|t| format!("\"{t}\"")).collect();
        self.text += &format!(
            "\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"edge-{}\"\ntopics = [{}]\n{keys}",
            mosquitto.port(),
            self.station,
            topics.join(", ")
        );
        self
    }

    /// Further tables as TOML text (e.g. `[[modbus.devices]]`).
    pub fn tables(mut self, toml: &str) -> Self {
        self.text += "\n";
        self.text += toml;
        self
    }

    /// Writes the file to `path` and returns the path.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, &self.text).expect("the test directory is writable");
        path.to_owned()
    }
}
