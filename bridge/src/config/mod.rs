//! The bridge config file (`config/bridge.example.toml` documents every key), validated completely before
//! anything connects, so the running pipeline never meets an invalid value and every mistake is reported
//! with file, line and key.
//!
//! Not here: topic partitions and retention (the topic plan, `linegate_common::topics`) and the Kafka client
//! block (`linegate_common::kafka`), which the edge shares.

use std::path::{Path, PathBuf};

use linegate_common::conf::{ConfigError, ConfigFile};
use linegate_common::kafka::KafkaConfig;
use linegate_common::logging::LogFormat;
use linegate_common::topics::{self, TopicPlan};
use serde::Deserialize;

mod quality;
mod registry;
mod routing;
pub use quality::{AlertRules, QualityConfig, SpecLimits, WindowConfig};
pub use registry::{family_kind, output_kinds, SchemaRegistryConfig};
pub use routing::{Routes, RoutingTable, FAMILIES};

/// Everything `linegate-bridge run` needs; unknown keys are errors so that a typo is not silently ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// Group, service name, topic plan, batching.
    pub bridge: BridgeSection,
    /// How to reach Kafka.
    pub kafka: KafkaConfig,
    /// Topic names; default to the constants of `linegate_common::topics`.
    #[serde(default)]
    pub topics: TopicNames,
    /// Quality thresholds of the verdicts.
    #[serde(default)]
    pub quality: QualityConfig,
    /// The operations HTTP server (`/healthz`, `/metrics`, the JSON API); off without `listen`.
    #[serde(default)]
    pub http: HttpConfig,
    /// Delivery guarantee, dedup window, transactional id.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Where accepted events go, by family or event type, as written in the file.
    #[serde(default)]
    pub routing: RoutingTable,
    /// The Confluent-compatible Schema Registry of the outputs' wire format; off without `url`.
    #[serde(default)]
    pub schema_registry: SchemaRegistryConfig,
    /// `routing` resolved over `topics` at load; what the pipeline routes by.
    #[serde(skip)]
    pub routes: Routes,
}

/// The `[http]` section: where the operations server listens and the token of its changing calls.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `host:port` to listen on; no server without it (a bridge on a locked-down host may want none).
    pub listen: Option<std::net::SocketAddr>,
    /// Bearer token of the changing calls (replay, redrive). Without one they are refused with 403, so
    /// that an unprotected server can never be used to rewrite the topics.
    pub token: Option<String>,
}

/// How outputs and offsets are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    /// Outputs acknowledged, then offsets committed; a crash may repeat a round (same ids, same keys).
    #[default]
    AtLeastOnce,
    /// Outputs, dedup state and offsets in one Kafka transaction; needs a broker with transactions.
    ExactlyOnce,
}

/// The `[delivery]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// `at_least_once` (any broker) or `exactly_once` (Kafka transactions, checked at start).
    pub mode: DeliveryMode,
    /// Per-instance part of the `transactional.id` (`<group_id>-<instance_id>`) in exactly-once mode: stable
    /// across restarts of one instance, so a restarted instance fences its zombie; distinct per instance.
    pub instance_id: String,
    /// How long a station's high-water seq is trusted for dedup, in hours; a station silent for longer
    /// starts afresh (an edge re-installed with a new outbox counts from 1 again).
    pub dedup_window_hours: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            mode: DeliveryMode::AtLeastOnce,
            instance_id: String::new(),
            dedup_window_hours: 168,
        }
    }
}

impl DeliveryConfig {
    /// The dedup window in milliseconds.
    pub fn window_ms(&self) -> i64 {
        i64::try_from(self.dedup_window_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX)
    }
}

/// The `[bridge]` section: how this bridge joins the group and paces its rounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeSection {
    /// Consumer group shared by all instances of one bridge; its committed offsets are where a restarted
    /// bridge resumes.
    pub group_id: String,
    /// `source_service` written into outputs, so readers can tell which service judged an event.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Topic plan; relative to the config file's directory, so a config and its plan can move together.
    pub topics_file: PathBuf,
    /// Create missing topics of the plan at start (many clusters do not create topics on first use).
    #[serde(default = "default_true")]
    pub create_topics: bool,
    /// Log line format: human for a terminal, json for a log shipper.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Records per consume-produce-commit round: bigger is faster; a crash repeats at most two rounds (the
    /// one with Kafka and the one being routed).
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    /// How long a round waits to fill, in milliseconds: the latency added when traffic is light.
    #[serde(default = "default_batch_wait_ms")]
    pub batch_wait_ms: u64,
}

/// Names of the topics the bridge reads and writes; configurable so that a test or a second line can use
/// its own set on a shared cluster.
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
    /// InferenceEvents.
    pub inference: String,
    /// ManufacturingEvents.
    pub manufacturing: String,
    /// The bridge's own compacted state: per station the high-water seq, last input position and audit
    /// chain head (dedup and the audit chain survive restarts and rebalances through it).
    pub state: String,
}

/// Default name of the bridge's state topic.
pub const STATE_TOPIC: &str = "linegate.bridge.state";

impl TopicNames {
    /// The output topics with their config keys, for validation messages.
    fn outputs(&self) -> [(&'static str, &String); 7] {
        [
            ("topics.lifecycle", &self.lifecycle),
            ("topics.quality", &self.quality),
            ("topics.audit", &self.audit),
            ("topics.dlq", &self.dlq),
            ("topics.inference", &self.inference),
            ("topics.manufacturing", &self.manufacturing),
            ("topics.state", &self.state),
        ]
    }
}

impl Default for TopicNames {
    fn default() -> Self {
        Self {
            input: topics::EDGE_EVENTS.to_owned(),
            lifecycle: topics::INSPECTION_LIFECYCLE.to_owned(),
            quality: topics::QUALITY_EVENTS.to_owned(),
            audit: topics::AUDIT_EVENTS.to_owned(),
            dlq: topics::EDGE_EVENTS_DLQ.to_owned(),
            inference: topics::INFERENCE_WORKFLOW.to_owned(),
            manufacturing: topics::MANUFACTURING_LIFECYCLE.to_owned(),
            state: STATE_TOPIC.to_owned(),
        }
    }
}

fn default_service_name() -> String {
    "linegate-bridge".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_batch_max() -> usize {
    2000
}
fn default_batch_wait_ms() -> u64 {
    10
}

/// A loaded config with its topic plan, so the caller never loads the plan separately.
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
    /// Reads, interpolates, parses and validates a bridge config and its topic plan. Errors name file, line
    /// and key (of the bridge config or of the plan).
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        Self::from_file(&ConfigFile::read(path)?)
    }

    /// [`BridgeConfig::load`] of an already interpolated file; tests use it with a fixed environment.
    pub fn from_file(file: &ConfigFile) -> Result<Loaded, ConfigError> {
        let mut config: BridgeConfig = file.parse()?;
        config.validate(file)?;
        config.routes = Routes::resolve(&config.routing, &config.topics, file)?;
        registry::validate(&config, file)?;
        let plan_path = match config.bridge.topics_file.is_absolute() {
            true => config.bridge.topics_file.clone(),
            false => file
                .path()
                .parent()
                .unwrap_or(Path::new("."))
                .join(&config.bridge.topics_file),
        };
        if !plan_path.is_file() {
            return Err(file.invalid(
                "bridge.topics_file",
                format!(
                    "{} is not a file (a relative path is relative to this config file's directory)",
                    plan_path.display()
                ),
            ));
        }
        let plan = TopicPlan::load(&plan_path)?;
        config.validate_against_plan(file, &plan, &plan_path)?;
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
        if self.bridge.service_name.trim().is_empty() {
            return Err(file.invalid(
                "bridge.service_name",
                "must name this service; it is written into every output as source_service",
            ));
        }
        if self.bridge.batch_max == 0 {
            return Err(file.invalid("bridge.batch_max", "must be at least 1"));
        }
        self.kafka.validate(file, "kafka")?;
        self.validate_rebalance_protocol(file)?;
        if self.delivery.mode == DeliveryMode::ExactlyOnce
            && self.delivery.instance_id.trim().is_empty()
        {
            return Err(file.invalid(
                "delivery.instance_id",
                "exactly_once needs an id per bridge instance (stable across its restarts, e.g. the host \
                 name): it becomes the transactional.id that fences a zombie instance",
            ));
        }
        if self.delivery.dedup_window_hours == 0 {
            return Err(file.invalid(
                "delivery.dedup_window_hours",
                "must be at least 1; resends older than the window are not recognised",
            ));
        }
        for (key, name) in self.topics.outputs() {
            if name.trim().is_empty() {
                return Err(file.invalid(key, "must name a topic"));
            }
            if *name == self.topics.input {
                return Err(file.invalid(
                    key,
                    format!(
                        "`{name}` is also the input topic; the bridge would read its own outputs forever"
                    ),
                ));
            }
        }
        if self.topics.input.trim().is_empty() {
            return Err(file.invalid("topics.input", "must name a topic"));
        }
        if self
            .http
            .token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(file.invalid(
                "http.token",
                "is empty; remove the key to disable the changing calls, or set a secret",
            ));
        }
        self.quality.validate(file)
    }

    /// Only eager rebalances: on a revocation the bridge settles every round in flight and on an assignment
    /// re-reads the state of all its partitions, which an incremental (cooperative) assignment or the
    /// KIP-848 `consumer` group protocol would bypass for the partitions it keeps or adds alone.
    fn validate_rebalance_protocol(&self, file: &ConfigFile) -> Result<(), ConfigError> {
        let client = &self.kafka.client;
        if let Some(strategy) = client.get("partition.assignment.strategy") {
            if strategy.to_ascii_lowercase().contains("cooperative") {
                return Err(file.invalid(
                    "kafka.client.\"partition.assignment.strategy\"",
                    format!(
                        "`{strategy}` rebalances incrementally, which the bridge does not handle; \
                         use range or roundrobin (eager)"
                    ),
                ));
            }
        }
        match client.get("group.protocol") {
            None => Ok(()),
            Some(protocol) if protocol.eq_ignore_ascii_case("classic") => Ok(()),
            Some(other) => Err(file.invalid(
                "kafka.client.\"group.protocol\"",
                format!(
                    "`{other}` assigns partitions incrementally, which the bridge does not handle; \
                     use classic"
                ),
            )),
        }
    }

    /// With `create_topics`, every topic the bridge uses must be in the plan: Kafka clusters with
    /// `auto.create.topics.enable=false` would otherwise refuse every send to it and the bridge would
    /// stall retrying.
    fn validate_against_plan(
        &self,
        file: &ConfigFile,
        plan: &TopicPlan,
        plan_path: &Path,
    ) -> Result<(), ConfigError> {
        if !self.bridge.create_topics {
            return Ok(());
        }
        let input = ("topics.input", &self.topics.input);
        let routed: Vec<(String, &String)> = self
            .routing
            .iter()
            .flat_map(|(key, targets)| targets.iter().map(move |t| (format!("routing.{key}"), t)))
            .collect();
        let named = self
            .topics
            .outputs()
            .map(|(key, name)| (key.to_owned(), name));
        for (key, name) in std::iter::once((input.0.to_owned(), input.1))
            .chain(named)
            .chain(routed)
        {
            if plan.get(name).is_none() {
                return Err(file.invalid(
                    &key,
                    format!(
                        "`{name}` is not in the topic plan {}, so it would not be created; add it there, \
                         or create it yourself and set bridge.create_topics = false",
                        plan_path.display()
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
