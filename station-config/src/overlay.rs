//! The overlay rule: how a pushed document and the local file make the config the edge runs.
//!
//! A pushed document is a station config file in the same TOML format. The local file is the bootstrap and
//! wins for `[station]`, `[kafka]`, `[config_push]` and `[http]` (what belongs to the PC: its identity, data
//! directory, way to Kafka, trust, local endpoint): those tables are taken from the local file whole, and the
//! pushed document's own are ignored (it may leave them out), except that a `[station] id` in the pushed
//! document must name this station. Every other table (`[mqtt]`, `[modbus]`, `[forward]`, `[outbox]`) comes
//! from the pushed document alone: a table it leaves out is absent or takes its defaults, the local file's is
//! not used. The result must pass the same validation as a local file, with errors located
//! in the pushed document. `${VAR}` in a pushed document is interpolated with the edge's environment.

use std::path::Path;

use linegate_common::conf::{ConfigError, ConfigFile};
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::{EdgeConfig, ForwardConfig, ModbusConfig, MqttConfig, OutboxConfig, StationConfig};

/// A pushed document as parsed: the bootstrap tables are read only to be ignored (`[station] id` is checked).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushedDocument {
    station: Option<PushedStation>,
    #[serde(rename = "kafka")]
    _kafka: Option<IgnoredAny>,
    #[serde(rename = "config_push")]
    _config_push: Option<IgnoredAny>,
    #[serde(rename = "http")]
    _http: Option<IgnoredAny>,
    #[serde(default)]
    forward: ForwardConfig,
    #[serde(default)]
    outbox: OutboxConfig,
    mqtt: Option<MqttConfig>,
    modbus: Option<ModbusConfig>,
}

#[derive(Debug, Deserialize)]
struct PushedStation {
    id: Option<String>,
    // data_dir and log_format: the local file's apply.
    #[serde(flatten)]
    _ignored: std::collections::BTreeMap<String, IgnoredAny>,
}

/// The config the edge runs: `local`'s bootstrap tables plus the rest of `pushed` (see the module doc).
pub fn apply(local: &EdgeConfig, pushed: &ConfigFile) -> Result<EdgeConfig, ConfigError> {
    let document: PushedDocument = pushed.parse()?;
    if let Some(id) = document.station.and_then(|s| s.id) {
        if id != local.station.id {
            return Err(pushed.invalid(
                "station.id",
                format!(
                    "this config is for station `{id}`, not `{}`",
                    local.station.id
                ),
            ));
        }
    }
    let config = EdgeConfig {
        station: local.station.clone(),
        kafka: local.kafka.clone(),
        config_push: local.config_push.clone(),
        forward: document.forward,
        outbox: document.outbox,
        http: local.http.clone(),
        mqtt: document.mqtt,
        modbus: document.modbus,
    };
    config.validate_body(pushed)?;
    Ok(config)
}

/// Interpolates `text` with the process environment, like a local file; `name` stands for it in errors.
pub fn read_pushed(name: &str, text: &str) -> Result<ConfigFile, ConfigError> {
    ConfigFile::from_text(Path::new(name), text, |var| std::env::var(var).ok())
}

/// What `linegate-bridge config push` checks before signing: the document at `path` overlaid on a stand-in
/// local file for `station_id`. `${VAR}` resolves only to its default here (the edge's environment is not
/// known at the centre), so a pushed document should use `${VAR:-default}` or no variables.
pub fn check_for_push(path: &Path, station_id: &str) -> Result<EdgeConfig, ConfigError> {
    let raw = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let file = ConfigFile::from_text(path, &raw, |_| None)?;
    let local = EdgeConfig {
        station: StationConfig {
            id: station_id.to_owned(),
            data_dir: "/var/lib/linegate".into(),
            log_format: Default::default(),
        },
        kafka: linegate_common::kafka::KafkaConfig {
            bootstrap: "kafka:9092".to_owned(),
            client: Default::default(),
        },
        forward: ForwardConfig::default(),
        outbox: OutboxConfig::default(),
        mqtt: None,
        modbus: None,
        http: None,
        config_push: None,
    };
    apply(&local, &file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> EdgeConfig {
        let file = ConfigFile::from_text(
            Path::new("edge.toml"),
            "[station]\nid = \"ST-01\"\ndata_dir = \"/tmp/st\"\n[kafka]\nbootstrap = \"k:9092\"\n[mqtt]\nhost = \"local\"\nclient_id = \"c\"\ntopics = [\"a\"]\n",
            |_| None,
        )
        .unwrap();
        file.parse().unwrap()
    }

    fn pushed(text: &str) -> Result<EdgeConfig, ConfigError> {
        let file = ConfigFile::from_text(Path::new("pushed-config-v2"), text, |_| None)?;
        apply(&local(), &file)
    }

    #[test]
    fn bootstrap_tables_come_from_the_local_file_and_the_rest_from_the_push() {
        let config = pushed(
            "[station]\nid = \"ST-01\"\ndata_dir = \"/elsewhere\"\n[kafka]\nbootstrap = \"evil:9092\"\n[mqtt]\nhost = \"pushed\"\nclient_id = \"c2\"\ntopics = [\"b\"]\n",
        )
        .unwrap();
        assert_eq!(config.station.data_dir, Path::new("/tmp/st"));
        assert_eq!(config.kafka.bootstrap, "k:9092");
        let mqtt = config.mqtt.unwrap();
        assert_eq!(
            (mqtt.host.as_str(), mqtt.topics),
            ("pushed", vec!["b".to_owned()])
        );
    }

    #[test]
    fn a_table_the_push_leaves_out_is_not_taken_from_the_local_file() {
        let error = pushed("[forward]\nbatch_max = 10\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("no source is configured"), "{error}");
    }

    #[test]
    fn errors_point_into_the_pushed_document() {
        let error = pushed("[mqtt]\nhost = \"h\"\nclient_id = \"c\"\ntopics = []\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("pushed-config-v2:4: key `mqtt.topics`"),
            "{error}"
        );
        let error = pushed("[mqtt]\nhost = \"h\"\nclient_id = \"c\"\ntopics = [\"t\"]\nqos = 2\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("pushed-config-v2:5:"), "{error}");
    }

    #[test]
    fn a_push_for_another_station_is_refused() {
        let error = pushed("[station]\nid = \"ST-02\"\n[mqtt]\nhost = \"h\"\nclient_id = \"c\"\ntopics = [\"t\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("for station `ST-02`, not `ST-01`"),
            "{error}"
        );
    }
}
