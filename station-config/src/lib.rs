//! linegate-station-config: the station configuration contract, shared by the edge (which runs it) and the
//! bridge (which checks and signs configs it pushes).
//!
//! One file per station PC, validated completely before anything starts, with errors that name the file, the
//! line and the key. A pushed config is a document of the same format overlaid on the local file
//! ([`overlay`]) inside a signed envelope ([`signed`]). Like `linegate-schemas` this crate is pure: it opens
//! no socket and no database, so the bridge can validate a station's config without linking the edge.

use std::path::{Path, PathBuf};

use linegate_common::conf::{ConfigError, ConfigFile};
use linegate_common::kafka::KafkaConfig;
use linegate_common::logging::LogFormat;
use serde::Deserialize;

pub use modbus::ModbusConfig;
pub use mqtt::{MqttConfig, MqttProtocol, PayloadFormat, MAPPABLE, MAX_PACKET_BYTES};
pub use outbox::{FullPolicy, OutboxConfig, Synchronous};
pub use push::ConfigPushConfig;

pub mod modbus;
pub mod mqtt;
pub mod outbox;
pub mod overlay;
pub mod push;
pub mod signed;

/// Most events per forwarding round: the forwarder holds up to seven rounds in memory.
const FORWARD_BATCH_CEILING: usize = 100_000;

/// Everything `linegate-edge run` needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Who this edge is and where it keeps its state.
    pub station: StationConfig,
    /// How to reach Kafka.
    pub kafka: KafkaConfig,
    /// Forwarding from the outbox to Kafka.
    #[serde(default)]
    pub forward: ForwardConfig,
    /// The SQLite outbox.
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// The MQTT source; absent when the station has none.
    pub mqtt: Option<MqttConfig>,
    /// The Modbus source; absent when the station has no PLC.
    pub modbus: Option<ModbusConfig>,
    /// The local metrics and health endpoint; absent = not served.
    pub http: Option<HttpConfig>,
    /// Configs pushed by the centre over Kafka; absent = only this file configures the station.
    pub config_push: Option<ConfigPushConfig>,
}

/// The local HTTP endpoint (`/metrics`, `/healthz`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on, e.g. `127.0.0.1:9464`; keep it on loopback or a management network.
    pub listen: std::net::SocketAddr,
}

/// Identity and state of the station.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationConfig {
    /// Station id: the Kafka key of every event, so all of a station's events stay in order in one partition.
    pub id: String,
    /// Directory of the outbox file; created if missing.
    pub data_dir: PathBuf,
    /// Log line format.
    #[serde(default)]
    pub log_format: LogFormat,
}

/// Forwarder settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardConfig {
    /// Ingest topic.
    pub topic: String,
    /// Events read from the outbox and sent per round.
    pub batch_max: usize,
    /// How long librdkafka keeps trying one delivery before the round is retried from the outbox.
    pub delivery_timeout_ms: u64,
    /// Pause after a failed round before retrying.
    pub retry_backoff_ms: u64,
    /// Batch compression: `none`, `lz4` (default: cheap on CPU) or `zstd` (smaller on slow links).
    pub compression: Compression,
    /// How long librdkafka waits to fill a batch, in milliseconds.
    pub linger_ms: u64,
}

/// Compression of the batches sent to Kafka.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    None,
    /// LZ4 (default).
    #[default]
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// The librdkafka `compression.type` value.
    pub fn librdkafka_name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl Default for ForwardConfig {
    fn default() -> Self {
        Self {
            topic: linegate_common::topics::EDGE_EVENTS.to_owned(),
            batch_max: 1000,
            delivery_timeout_ms: 300_000,
            retry_backoff_ms: 1000,
            compression: Compression::Lz4,
            linger_ms: 5,
        }
    }
}

/// A station id that breaks the rule of [`check_station_id`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not 1 to 128 letters, digits, '-', '_' or '.'")]
pub struct BadStationId(pub String);

/// Why `id` cannot be a station id, if it cannot: the same rule for a local file and `config push --station`.
pub fn check_station_id(id: &str) -> Result<(), BadStationId> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(BadStationId(id.to_owned()));
    }
    Ok(())
}

impl EdgeConfig {
    /// Reads, interpolates, parses and validates a station config.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_file(&ConfigFile::read(path)?)
    }

    /// [`EdgeConfig::load`] of an already interpolated file ([`ConfigFile::from_text`] with a fixed
    /// environment: tests and the fuzz target).
    pub fn from_file(file: &ConfigFile) -> Result<Self, ConfigError> {
        let config: EdgeConfig = file.parse()?;
        config.validate(file)?;
        Ok(config)
    }

    pub(crate) fn validate(&self, file: &ConfigFile) -> Result<(), ConfigError> {
        self.validate_bootstrap(file)?;
        self.validate_body(file)
    }

    /// Checks the keys a pushed config cannot change: `[station]`, `[kafka]`, `[config_push]`.
    fn validate_bootstrap(&self, file: &ConfigFile) -> Result<(), ConfigError> {
        if let Err(error) = check_station_id(&self.station.id) {
            return Err(file.invalid("station.id", error.to_string()));
        }
        if self.station.data_dir.as_os_str().is_empty() {
            return Err(file.invalid("station.data_dir", "must name a directory"));
        }
        self.kafka.validate(file, "kafka")?;
        if let Some(push) = &self.config_push {
            push.validate(file)?;
        }
        Ok(())
    }

    /// Checks everything else: what a local file and a pushed config both set, located in `file`.
    pub(crate) fn validate_body(&self, file: &ConfigFile) -> Result<(), ConfigError> {
        if self.forward.topic.is_empty() {
            return Err(file.invalid("forward.topic", "must name a topic"));
        }
        if !(1..=FORWARD_BATCH_CEILING).contains(&self.forward.batch_max) {
            return Err(file.invalid(
                "forward.batch_max",
                format!("must be between 1 and {FORWARD_BATCH_CEILING}"),
            ));
        }
        self.outbox.validate(file)?;
        if let Some(modbus) = &self.modbus {
            modbus.validate(file)?;
        }
        let Some(mqtt) = &self.mqtt else {
            if self.modbus.is_some() {
                return Ok(());
            }
            return Err(file.invalid(
                "mqtt",
                "no source is configured; add an [mqtt] or a [modbus] section",
            ));
        };
        mqtt.validate(file, self.outbox.dedup_max_ids)
    }

    /// Path of the outbox file.
    pub fn outbox_path(&self) -> PathBuf {
        self.station.data_dir.join("outbox.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_env(name: &str) -> Option<String> {
        match name {
            "LINEGATE_STATION_ID" => Some("ST-01".into()),
            _ => None,
        }
    }

    fn load_text(raw: &str) -> Result<EdgeConfig, ConfigError> {
        let file = ConfigFile::from_text(Path::new("edge.toml"), raw, example_env)?;
        let config: EdgeConfig = file.parse()?;
        config.validate(&file)?;
        Ok(config)
    }

    #[test]
    fn example_config_loads_with_only_the_station_id_set() {
        let config = load_text(include_str!("../../config/edge.example.toml")).unwrap();
        assert_eq!(config.station.id, "ST-01");
        let mqtt = config.mqtt.unwrap();
        assert_eq!(mqtt.topics, vec!["stations/ST-01/results".to_owned()]);
        assert_eq!(mqtt.client_id, "linegate-edge-ST-01");
        assert_eq!(config.outbox.synchronous, Synchronous::Full);
    }

    #[test]
    fn bad_station_id_names_line_and_key() {
        let raw =
            "[station]\nid = \"ST 01\"\ndata_dir = \"/tmp/x\"\n[kafka]\nbootstrap = \"k:9092\"\n";
        let err = load_text(raw).unwrap_err().to_string();
        assert!(err.starts_with("edge.toml:2: key `station.id`"), "{err}");
    }

    #[test]
    fn bad_bootstrap_names_line_and_key() {
        let raw =
            "[station]\nid = \"ST-01\"\ndata_dir = \"/tmp/x\"\n[kafka]\nbootstrap = \"kafka\"\n";
        let err = load_text(raw).unwrap_err().to_string();
        assert!(
            err.starts_with("edge.toml:5: key `kafka.bootstrap`: `kafka` is not host:port"),
            "{err}"
        );
    }

    #[test]
    fn missing_source_is_an_error() {
        let raw =
            "[station]\nid = \"ST-01\"\ndata_dir = \"/tmp/x\"\n[kafka]\nbootstrap = \"k:9092\"\n";
        let err = load_text(raw).unwrap_err().to_string();
        assert!(err.contains("no source is configured"), "{err}");
    }

    #[test]
    fn a_dedup_window_smaller_than_what_mqtt_may_redeliver_is_refused() {
        let raw = "[station]\nid = \"ST-01\"\ndata_dir = \"/tmp/x\"\n[kafka]\nbootstrap = \"k:9092\"\n\
                   [outbox]\ndedup_max_ids = 1500\n\
                   [mqtt]\nhost = \"localhost\"\ntopics = [\"t\"]\nclient_id = \"c\"\nmax_unacked = 2000\n";
        let err = load_text(raw).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "edge.toml:7: key `outbox.dedup_max_ids`: must be at least mqtt.max_unacked (2000)"
            ),
            "{err}"
        );
        let err = load_text(&raw.replace("1500", "10"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be at least 1000"), "{err}");
        load_text(&raw.replace("1500", "2000")).unwrap();
    }
}
