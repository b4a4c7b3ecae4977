//! The bridge config file, validated completely before anything connects.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use linegate_common::conf::{ConfigError, ConfigFile};
use linegate_common::kafka::KafkaConfig;
use linegate_common::logging::LogFormat;
use linegate_common::topics::{self, TopicPlan};
use serde::Deserialize;

/// Everything `linegate-bridge run` needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// Group, service name, batching.
    pub bridge: BridgeSection,
    /// How to reach Kafka.
    pub kafka: KafkaConfig,
    /// Topic names.
    #[serde(default)]
    pub topics: TopicNames,
    /// Quality thresholds.
    #[serde(default)]
    pub quality: QualityConfig,
}

/// The `[bridge]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeSection {
    /// Consumer group shared by all instances of one bridge.
    pub group_id: String,
    /// `source_service` written into outputs.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Topic plan; relative to the config file's directory.
    pub topics_file: PathBuf,
    /// Create missing topics of the plan at start.
    #[serde(default = "default_true")]
    pub create_topics: bool,
    /// Log line format.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Records per consume-produce-commit round.
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    /// How long a round waits to fill.
    #[serde(default = "default_batch_wait_ms")]
    pub batch_wait_ms: u64,
}

/// Names of the topics the bridge reads and writes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicNames {
    /// What the edges send.
    pub input: String,
    /// InspectionEvents.
    pub lifecycle: String,
    /// QualityEvents.
    pub quality: String,
    /// AuditEvents.
    pub audit: String,
    /// Rejected inputs.
    pub dlq: String,
}

impl Default for TopicNames {
    fn default() -> Self {
        Self {
            input: topics::EDGE_EVENTS.to_owned(),
            lifecycle: topics::INSPECTION_LIFECYCLE.to_owned(),
            quality: topics::QUALITY_EVENTS.to_owned(),
            audit: topics::AUDIT_EVENTS.to_owned(),
            dlq: topics::EDGE_EVENTS_DLQ.to_owned(),
        }
    }
}

/// Minimum passing scores.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityConfig {
    /// For inspection types without their own threshold.
    pub default_threshold: f64,
    /// Per inspection type.
    pub thresholds: BTreeMap<String, f64>,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            default_threshold: 0.8,
            thresholds: BTreeMap::new(),
        }
    }
}

impl QualityConfig {
    /// The threshold that applies to `inspection_type`.
    pub fn threshold_for(&self, inspection_type: &str) -> f64 {
        self.thresholds
            .get(inspection_type)
            .copied()
            .unwrap_or(self.default_threshold)
    }
}

fn default_service_name() -> String {
    "linegate-bridge".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_batch_max() -> usize {
    500
}
fn default_batch_wait_ms() -> u64 {
    50
}

/// A loaded config with its topic plan.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The config.
    pub config: BridgeConfig,
    /// The topic plan it points to.
    pub plan: TopicPlan,
    /// Where the plan was read from.
    pub plan_path: PathBuf,
}

impl BridgeConfig {
    /// Reads, interpolates, parses and validates a bridge config and its topic plan.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let file = ConfigFile::read(path)?;
        let config: BridgeConfig = file.parse()?;
        config.validate(&file)?;
        let plan_path = match config.bridge.topics_file.is_absolute() {
            true => config.bridge.topics_file.clone(),
            false => path
                .parent()
                .unwrap_or(Path::new("."))
                .join(&config.bridge.topics_file),
        };
        if !plan_path.exists() {
            return Err(file.invalid(
                "bridge.topics_file",
                format!("{} does not exist", plan_path.display()),
            ));
        }
        let plan = TopicPlan::load(&plan_path)?;
        Ok(Loaded {
            config,
            plan,
            plan_path,
        })
    }

    fn validate(&self, file: &ConfigFile) -> Result<(), ConfigError> {
        if self.bridge.group_id.trim().is_empty() {
            return Err(file.invalid("bridge.group_id", "must name the consumer group"));
        }
        if self.bridge.batch_max == 0 {
            return Err(file.invalid("bridge.batch_max", "must be at least 1"));
        }
        self.kafka.validate(file, "kafka")?;
        let names = [
            ("topics.input", &self.topics.input),
            ("topics.lifecycle", &self.topics.lifecycle),
            ("topics.quality", &self.topics.quality),
            ("topics.audit", &self.topics.audit),
            ("topics.dlq", &self.topics.dlq),
        ];
        for (key, name) in names {
            if name.is_empty() {
                return Err(file.invalid(key, "must name a topic"));
            }
        }
        let in_range = |value: f64| value.is_finite() && (0.0..=1.0).contains(&value);
        if !in_range(self.quality.default_threshold) {
            return Err(file.invalid(
                "quality.default_threshold",
                "must be a score between 0 and 1",
            ));
        }
        for (inspection_type, value) in &self.quality.thresholds {
            if !in_range(*value) {
                return Err(file.invalid(
                    &format!("quality.thresholds.{inspection_type}"),
                    format!("{value} is not a score between 0 and 1"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<BridgeConfig, ConfigError> {
        let file = ConfigFile::from_text(Path::new("bridge.toml"), raw, |_| None)?;
        let config: BridgeConfig = file.parse()?;
        config.validate(&file)?;
        Ok(config)
    }

    #[test]
    fn example_config_loads_with_defaults() {
        let config = parse(include_str!("../../config/bridge.example.toml")).unwrap();
        assert_eq!(config.bridge.group_id, "linegate-bridge");
        assert_eq!(config.kafka.bootstrap, "127.0.0.1:9092");
        assert_eq!(config.quality.threshold_for("xray"), 0.90);
        assert_eq!(
            config.quality.threshold_for("unknown"),
            config.quality.default_threshold
        );
        assert_eq!(config.topics.dlq, "edge.station.events.dlq");
    }

    #[test]
    fn out_of_range_threshold_names_line_and_key() {
        let raw =
            "[bridge]\ngroup_id = \"g\"\ntopics_file = \"t.toml\"\n[kafka]\nbootstrap = \"k:1\"\n\
                   [quality.thresholds]\noptical = 1.5\n";
        let err = parse(raw).unwrap_err().to_string();
        assert_eq!(
            err,
            "bridge.toml:7: key `quality.thresholds.optical`: 1.5 is not a score between 0 and 1"
        );
    }

    #[test]
    fn example_file_finds_the_shipped_topic_plan() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/bridge.example.toml");
        let loaded = BridgeConfig::load(&path).unwrap();
        assert!(loaded.plan.get("audit.events").is_some());
    }
}
