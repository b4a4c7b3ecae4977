//! The topic plan: every topic linegate writes, with partitions, replication, retention and cleanup policy.
//!
//! Loaded from `config/topics.toml` (adr-004's table plus linegate's own topics). The bridge creates what is
//! missing at start; nothing here talks to Kafka.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::conf::{ConfigError, ConfigFile};

/// Ingest topic of the edges; key = station_id.
pub const EDGE_EVENTS: &str = "edge.station.events";
/// Dead letters of the ingest topic.
pub const EDGE_EVENTS_DLQ: &str = "edge.station.events.dlq";
/// Inspection lifecycle events; key = inspection_id.
pub const INSPECTION_LIFECYCLE: &str = "inspection.lifecycle";
/// Quality verdicts; key = station_id.
pub const QUALITY_EVENTS: &str = "quality.events";
/// One audit record per handled input; key = event_id.
pub const AUDIT_EVENTS: &str = "audit.events";
/// ML inference workflow events; key = inspection_id.
pub const INFERENCE_WORKFLOW: &str = "inference.workflow";
/// Lot and batch milestones; key = batch_id.
pub const MANUFACTURING_LIFECYCLE: &str = "manufacturing.lifecycle";
/// Station configs pushed by the centre, signed; compacted, key = station_id.
pub const STATION_CONFIG: &str = "linegate.station.config";

/// How Kafka disposes of old records on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum CleanupPolicy {
    /// Delete segments older than the retention.
    #[serde(rename = "delete")]
    Delete,
    /// Keep the latest record per key.
    #[serde(rename = "compact")]
    Compact,
    /// Compact, and delete what is older than the retention.
    #[serde(rename = "compact,delete")]
    CompactDelete,
}

impl CleanupPolicy {
    /// The value of Kafka's `cleanup.policy` topic config.
    pub fn as_kafka(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }
}

/// One topic as planned.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Partition count; fixed at creation (the bridge never shrinks or grows an existing topic).
    pub partitions: i32,
    /// Overrides `[defaults] replication_factor`.
    pub replication_factor: Option<i32>,
    /// `retention.ms`; -1 keeps forever.
    pub retention_ms: i64,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// What the record key is; documentation for people, not used by code.
    #[serde(default)]
    pub key: Option<String>,
    /// Further topic configs set at creation, e.g. `segment.ms` so that a compacted topic compacts.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicsFile {
    defaults: Defaults,
    topics: BTreeMap<String, TopicSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    replication_factor: i32,
}

/// A validated topic plan.
#[derive(Debug, Clone)]
pub struct TopicPlan {
    topics: BTreeMap<String, PlannedTopic>,
}

/// A topic with its replication factor resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTopic {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i32,
    /// `retention.ms`.
    pub retention_ms: i64,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// Further topic configs set at creation.
    pub config: BTreeMap<String, String>,
}

/// Topic configs the plan sets through its own keys, not through `config`.
const OWN_KEYS: [&str; 2] = ["retention.ms", "cleanup.policy"];

impl TopicPlan {
    /// Reads and validates a topics file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_file(&ConfigFile::read(path)?)
    }

    /// Validates an already interpolated file.
    pub fn from_file(file: &ConfigFile) -> Result<Self, ConfigError> {
        let parsed: TopicsFile = file.parse()?;
        if parsed.defaults.replication_factor < 1 {
            return Err(file.invalid("defaults.replication_factor", "must be at least 1"));
        }
        let mut topics = BTreeMap::new();
        for (name, spec) in parsed.topics {
            let key = |leaf: &str| format!("topics.\"{name}\".{leaf}");
            if !valid_topic_name(&name) {
                return Err(file.invalid(
                    &format!("topics.\"{name}\""),
                    "a topic name is 1 to 249 characters of letters, digits, '.', '_' and '-'",
                ));
            }
            if spec.partitions < 1 {
                return Err(file.invalid(&key("partitions"), "must be at least 1"));
            }
            let replication_factor = spec
                .replication_factor
                .unwrap_or(parsed.defaults.replication_factor);
            if replication_factor < 1 {
                return Err(file.invalid(&key("replication_factor"), "must be at least 1"));
            }
            if spec.retention_ms < -1 || spec.retention_ms == 0 {
                return Err(file.invalid(
                    &key("retention_ms"),
                    "must be positive, or -1 to keep forever",
                ));
            }
            for (config_key, value) in &spec.config {
                let at = format!("topics.\"{name}\".config.\"{config_key}\"");
                if OWN_KEYS.contains(&config_key.as_str()) {
                    return Err(
                        file.invalid(&at, "is set by retention_ms / cleanup_policy; use those")
                    );
                }
                if value.trim().is_empty() {
                    return Err(file.invalid(&at, "must have a value"));
                }
            }
            let planned = PlannedTopic {
                name: name.clone(),
                partitions: spec.partitions,
                replication_factor,
                retention_ms: spec.retention_ms,
                cleanup_policy: spec.cleanup_policy,
                config: spec.config,
            };
            topics.insert(name, planned);
        }
        Ok(Self { topics })
    }

    /// Every planned topic, by name.
    pub fn topics(&self) -> impl Iterator<Item = &PlannedTopic> {
        self.topics.values()
    }

    /// The plan of one topic.
    pub fn get(&self, name: &str) -> Option<&PlannedTopic> {
        self.topics.get(name)
    }
}

fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(raw: &str, replication: Option<&str>) -> Result<TopicPlan, ConfigError> {
        let replication = replication.map(str::to_owned);
        let file = ConfigFile::from_text(Path::new("topics.toml"), raw, move |name| {
            (name == "LINEGATE_TOPIC_REPLICATION")
                .then(|| replication.clone())
                .flatten()
        })?;
        TopicPlan::from_file(&file)
    }

    #[test]
    fn shipped_plan_has_every_default_topic_and_adr_004_numbers() {
        let raw = include_str!("../../config/topics.toml");
        let plan = plan(raw, Some("1")).unwrap();
        for name in [
            EDGE_EVENTS,
            EDGE_EVENTS_DLQ,
            INSPECTION_LIFECYCLE,
            QUALITY_EVENTS,
            AUDIT_EVENTS,
            INFERENCE_WORKFLOW,
            MANUFACTURING_LIFECYCLE,
            STATION_CONFIG,
        ] {
            assert!(
                plan.get(name).is_some(),
                "{name} missing from config/topics.toml"
            );
        }
        let lifecycle = plan.get(INSPECTION_LIFECYCLE).unwrap();
        assert_eq!(
            (lifecycle.partitions, lifecycle.retention_ms),
            (12, 2_592_000_000)
        );
        let audit = plan.get(AUDIT_EVENTS).unwrap();
        assert_eq!(
            (audit.partitions, audit.cleanup_policy),
            (4, CleanupPolicy::Compact)
        );
        assert_eq!(audit.replication_factor, 1);
        let pushed = plan.get(STATION_CONFIG).unwrap();
        assert_eq!(
            (pushed.cleanup_policy, pushed.retention_ms),
            (CleanupPolicy::Compact, -1)
        );
    }

    #[test]
    fn replication_defaults_to_three_without_the_variable() {
        let raw = include_str!("../../config/topics.toml");
        let plan = plan(raw, None).unwrap();
        assert!(plan.topics().all(|t| t.replication_factor == 3));
    }

    #[test]
    fn zero_partitions_is_rejected_at_its_line() {
        let raw = "[defaults]\nreplication_factor = 1\n\n[topics.\"a.b\"]\npartitions = 0\nretention_ms = 1\ncleanup_policy = \"delete\"\n";
        let err = plan(raw, None).unwrap_err().to_string();
        assert_eq!(
            err,
            "topics.toml:5: key `topics.\"a.b\".partitions`: must be at least 1"
        );
    }

    #[test]
    fn unknown_cleanup_policy_is_rejected() {
        let raw = "[defaults]\nreplication_factor = 1\n[topics.x]\npartitions = 1\nretention_ms = 1\ncleanup_policy = \"shred\"\n";
        let err = plan(raw, None).unwrap_err().to_string();
        assert!(err.starts_with("topics.toml:6:"), "{err}");
    }

    #[test]
    fn the_state_topic_is_planned_to_compact_and_config_keys_are_checked() {
        let raw = include_str!("../../config/topics.toml");
        let state = plan(raw, Some("1"))
            .unwrap()
            .get("linegate.bridge.state")
            .unwrap()
            .clone();
        assert_eq!(state.cleanup_policy, CleanupPolicy::Compact);
        assert_eq!(state.config["segment.ms"], "600000");
        assert_eq!(state.config["min.cleanable.dirty.ratio"], "0.1");
        let twice = "[defaults]\nreplication_factor = 1\n[topics.\"t\"]\npartitions = 1\nretention_ms = -1\n\
                     cleanup_policy = \"compact\"\nconfig = { \"retention.ms\" = \"5\" }\n";
        let err = plan(twice, None).unwrap_err().to_string();
        assert!(
            err.contains("key `topics.\"t\".config.\"retention.ms\"`: is set by retention_ms"),
            "{err}"
        );
    }
}
