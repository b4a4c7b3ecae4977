//! The `[mqtt]` table: the broker, the session and what intake takes.

use linegate_common::conf::{ConfigError, ConfigFile};
use serde::Deserialize;

/// Most results in one intake commit: the session's buffers are sized from it.
const INTAKE_BATCH_CEILING: usize = 10_000;
/// Largest payload the MQTT session reads (its packet limit, `source/mqtt`); `max_payload_bytes` stays below.
pub const MAX_PACKET_BYTES: usize = 1 << 20;

/// Encoding of the payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// UTF-8 JSON (default).
    #[default]
    Json,
    /// CBOR (RFC 8949), read into the same data model as JSON.
    Cbor,
}

/// Document keys a mapping may fill; `metadata.<key>` adds a metadata entry.
pub const MAPPABLE: [&str; 12] = [
    "event_type",
    "event_id",
    "timestamp",
    "inspection_id",
    "batch_id",
    "chip_id",
    "inspection_type",
    "status",
    "quality_score",
    "defects",
    "metadata",
    "trace_id",
];

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
    /// Largest payload taken as a result, bytes; a larger one goes to quarantine with the reason, so no
    /// accepted event can be too large for Kafka (librdkafka's `message.max.bytes` is 1,000,000).
    #[serde(default = "default_max_payload_bytes")]
    pub max_payload_bytes: usize,
    /// Payload encoding: `json` (default) or `cbor`.
    #[serde(default)]
    pub format: PayloadFormat,
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

fn default_max_payload_bytes() -> usize {
    512 << 10
}

impl MqttConfig {
    /// Checks the broker, session and intake keys; `dedup_max_ids` is the outbox's, which must cover what
    /// the broker may deliver again.
    pub(super) fn validate(
        &self,
        file: &ConfigFile,
        dedup_max_ids: usize,
    ) -> Result<(), ConfigError> {
        if self.host.is_empty() {
            return Err(file.invalid("mqtt.host", "must name the broker"));
        }
        if self.port == 0 {
            return Err(file.invalid("mqtt.port", "must be 1 to 65535"));
        }
        if self.client_id.is_empty() {
            return Err(file.invalid(
                "mqtt.client_id",
                "must be set: a fixed id keeps the session across restarts",
            ));
        }
        if self.topics.is_empty() || self.topics.iter().any(String::is_empty) {
            return Err(file.invalid(
                "mqtt.topics",
                "must list at least one non-empty topic filter",
            ));
        }
        if self.intake_batch_max > INTAKE_BATCH_CEILING {
            return Err(file.invalid(
                "mqtt.intake_batch_max",
                format!("must be at most {INTAKE_BATCH_CEILING}"),
            ));
        }
        if self.max_payload_bytes == 0 || self.max_payload_bytes > MAX_PACKET_BYTES - 4096 {
            return Err(file.invalid(
                "mqtt.max_payload_bytes",
                format!(
                    "must be between 1 and {} (the MQTT packet limit less room for the topic)",
                    MAX_PACKET_BYTES - 4096
                ),
            ));
        }
        if self.intake_batch_max == 0 {
            return Err(file.invalid("mqtt.intake_batch_max", "must be at least 1"));
        }
        if !(1..=usize::from(u16::MAX)).contains(&self.max_unacked) {
            return Err(file.invalid("mqtt.max_unacked", "must be between 1 and 65535"));
        }
        if self.max_unacked > dedup_max_ids {
            return Err(file.invalid(
                "outbox.dedup_max_ids",
                format!(
                    "must be at least mqtt.max_unacked ({}): every result the broker may deliver again after a crash must be remembered",
                    self.max_unacked
                ),
            ));
        }
        for (target, pointer) in self.mapping.iter().flatten() {
            let key = format!("mqtt.mapping.{target}");
            let known = MAPPABLE.contains(&target.as_str())
                || target
                    .strip_prefix("metadata.")
                    .is_some_and(|k| !k.is_empty());
            if !known {
                return Err(file.invalid(
                    &key,
                    format!(
                        "`{target}` is not a document key; use one of {} or metadata.<key>",
                        MAPPABLE.join(", ")
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
}
