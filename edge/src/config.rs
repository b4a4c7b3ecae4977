//! The station config file: one per station PC, validated completely before anything starts.

use std::path::{Path, PathBuf};

use linegate_common::conf::{ConfigError, ConfigFile};
use linegate_common::kafka::KafkaConfig;
use linegate_common::logging::LogFormat;
use serde::Deserialize;

use crate::outbox::Synchronous;

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
    pub modbus: Option<crate::source::modbus::ModbusConfig>,
    /// The local metrics and health endpoint; absent = not served.
    pub http: Option<HttpConfig>,
    /// Configs pushed by the centre over Kafka; absent = only this file configures the station.
    pub config_push: Option<crate::push::ConfigPushConfig>,
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

/// Outbox settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// `full` (survives power loss) or `normal` (survives an agent crash only).
    pub synchronous: Synchronous,
    /// Most rows committed in one transaction.
    pub group_commit_max: usize,
    /// Hours an event id is remembered, so a result the station (or MQTT) delivers again is stored once.
    pub dedup_window_hours: u32,
    /// Most event ids remembered (the newest): the window ends at `dedup_window_hours` or at this many ids,
    /// whichever comes first. It bounds the memory (about 20 bytes per id) and must cover what MQTT may
    /// deliver again after a crash (`mqtt.max_unacked`).
    pub dedup_max_ids: usize,
    /// Most events waiting for Kafka; at the limit `full_policy` applies.
    pub max_events: u64,
    /// Most bytes of waiting events (their stored bodies); at the limit `full_policy` applies.
    pub max_bytes: u64,
    /// Under `drop_oldest`, events waiting longer than this are dropped too. Under `block` the age is only
    /// reported (metrics, /healthz, `outbox stats`): blocking new results would not make old ones leave.
    pub max_age_hours: Option<u32>,
    /// `block` (stop acknowledging; upstream holds the results) or `drop_oldest` (counted and logged).
    pub full_policy: crate::outbox::FullPolicy,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            group_commit_max: 1000,
            dedup_window_hours: 168,
            dedup_max_ids: 100_000,
            max_events: 10_000_000,
            max_bytes: 8 << 30,
            max_age_hours: None,
            full_policy: crate::outbox::FullPolicy::Block,
        }
    }
}

/// The MQTT source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host.
    pub host: String,
    /// Broker port.
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// Fixed client id: with a persistent session the broker keeps QoS 1 results while the edge is away.
    pub client_id: String,
    /// Topic filters to subscribe to with QoS 1.
    pub topics: Vec<String>,
    /// MQTT protocol version: `3.1.1` (default) or `5`.
    #[serde(default)]
    pub protocol: MqttProtocol,
    /// Keep-alive interval.
    #[serde(default = "default_keep_alive_secs")]
    pub keep_alive_secs: u64,
    /// Most results taken into one outbox commit.
    #[serde(default = "default_intake_batch")]
    pub intake_batch_max: usize,
    /// Most results held received and not yet acknowledged. It bounds the edge's memory whatever the broker
    /// does: MQTT 5 tells the broker (receive maximum); under 3.1.1 the broker's in-flight window should,
    /// and when a broker overruns it the edge leaves the excess unacknowledged and reconnects to get it again.
    #[serde(default = "default_max_unacked")]
    pub max_unacked: usize,
    /// Payload encoding: `json` (default) or `cbor`.
    #[serde(default)]
    pub format: crate::capture::PayloadFormat,
    /// For station software that sends another shape: document key (or `metadata.<key>`) -> JSON pointer
    /// into the payload, e.g. `inspection_id = "/result/id"`.
    pub mapping: Option<std::collections::BTreeMap<String, String>>,
}

/// The MQTT protocol version the edge speaks to the broker; both keep a persistent session with manual acks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum MqttProtocol {
    /// MQTT 3.1.1: clean session off.
    #[default]
    #[serde(rename = "3.1.1")]
    V311,
    /// MQTT 5: clean start off and a session that never expires, so the broker keeps results while the edge
    /// is away, as 3.1.1 does.
    #[serde(rename = "5")]
    V5,
}

impl MqttConfig {
    /// How this source reads its payloads.
    pub fn payload_reader(&self) -> crate::capture::PayloadReader {
        crate::capture::PayloadReader {
            format: self.format,
            mapping: self.mapping.clone(),
        }
    }
}

fn default_mqtt_port() -> u16 {
    1883
}

fn default_keep_alive_secs() -> u64 {
    30
}

fn default_intake_batch() -> usize {
    500
}

fn default_max_unacked() -> usize {
    2000
}

/// Why `id` cannot be a station id, if it cannot: the same rule for a local file and `config push --station`.
pub fn check_station_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "`{id}` is not 1 to 128 letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(())
}

impl EdgeConfig {
    /// Reads, interpolates, parses and validates a station config.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = ConfigFile::read(path)?;
        let config: EdgeConfig = file.parse()?;
        config.validate(&file)?;
        Ok(config)
    }

    pub(crate) fn validate(&self, file: &ConfigFile) -> Result<(), ConfigError> {
        self.validate_bootstrap(file)?;
        self.validate_body(file)
    }

    /// Checks the keys a pushed config cannot change: `[station]`, `[kafka]`, `[config_push]`.
    fn validate_bootstrap(&self, file: &ConfigFile) -> Result<(), ConfigError> {
        if let Err(message) = check_station_id(&self.station.id) {
            return Err(file.invalid("station.id", message));
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
        if self.forward.batch_max == 0 {
            return Err(file.invalid("forward.batch_max", "must be at least 1"));
        }
        if self.outbox.max_events == 0 {
            return Err(file.invalid("outbox.max_events", "must be at least 1"));
        }
        if self.outbox.max_bytes < 1 << 20 {
            return Err(file.invalid("outbox.max_bytes", "must be at least 1048576 (1 MiB)"));
        }
        if self.outbox.max_age_hours == Some(0) {
            return Err(file.invalid(
                "outbox.max_age_hours",
                "must be at least 1, or absent for no age bound",
            ));
        }
        if self.outbox.group_commit_max == 0 {
            return Err(file.invalid("outbox.group_commit_max", "must be at least 1"));
        }
        if self.outbox.dedup_max_ids < 1000 {
            return Err(file.invalid("outbox.dedup_max_ids", "must be at least 1000"));
        }
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
        if mqtt.host.is_empty() {
            return Err(file.invalid("mqtt.host", "must name the broker"));
        }
        if mqtt.port == 0 {
            return Err(file.invalid("mqtt.port", "must be 1 to 65535"));
        }
        if mqtt.client_id.is_empty() {
            return Err(file.invalid(
                "mqtt.client_id",
                "must be set: a fixed id keeps the session across restarts",
            ));
        }
        if mqtt.topics.is_empty() || mqtt.topics.iter().any(String::is_empty) {
            return Err(file.invalid(
                "mqtt.topics",
                "must list at least one non-empty topic filter",
            ));
        }
        if mqtt.intake_batch_max == 0 {
            return Err(file.invalid("mqtt.intake_batch_max", "must be at least 1"));
        }
        if !(1..=usize::from(u16::MAX)).contains(&mqtt.max_unacked) {
            return Err(file.invalid("mqtt.max_unacked", "must be between 1 and 65535"));
        }
        if mqtt.max_unacked > self.outbox.dedup_max_ids {
            return Err(file.invalid(
                "outbox.dedup_max_ids",
                format!(
                    "must be at least mqtt.max_unacked ({}): every result the broker may deliver again after a crash must be remembered",
                    mqtt.max_unacked
                ),
            ));
        }
        for (target, pointer) in mqtt.mapping.iter().flatten() {
            let key = format!("mqtt.mapping.{target}");
            let known = crate::capture::MAPPABLE.contains(&target.as_str())
                || target
                    .strip_prefix("metadata.")
                    .is_some_and(|k| !k.is_empty());
            if !known {
                return Err(file.invalid(
                    &key,
                    format!(
                        "`{target}` is not a document key; use one of {} or metadata.<key>",
                        crate::capture::MAPPABLE.join(", ")
                    ),
                ));
            }
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(file.invalid(
                    &key,
                    format!("`{pointer}` is not a JSON pointer (RFC 6901): it must start with /"),
                ));
            }
        }
        Ok(())
    }

    /// The writer's options.
    pub fn outbox_options(&self) -> crate::outbox::OutboxOptions {
        crate::outbox::OutboxOptions {
            synchronous: self.outbox.synchronous,
            group_commit_max: self.outbox.group_commit_max,
            dedup_window_ms: i64::from(self.outbox.dedup_window_hours) * 3_600_000,
            dedup_max_ids: self.outbox.dedup_max_ids,
            max_events: i64::try_from(self.outbox.max_events).unwrap_or(i64::MAX),
            max_bytes: i64::try_from(self.outbox.max_bytes).unwrap_or(i64::MAX),
            max_age_ms: self
                .outbox
                .max_age_hours
                .map(|hours| i64::from(hours) * 3_600_000),
            full_policy: self.outbox.full_policy,
        }
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
