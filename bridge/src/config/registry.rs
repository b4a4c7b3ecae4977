//! The `[schema_registry]` section: where the Confluent-compatible Schema Registry is, if there is one.
//!
//! With a `url`, the bridge writes its Avro outputs in the Confluent wire format (magic byte 0, the 4-byte
//! schema id, the Avro body) and registers their schemas under `<topic>-value`, so that Kafka Connect,
//! ksqlDB or Flink read them as they are. Without one (the default, and an empty string from
//! `${LINEGATE_SCHEMA_REGISTRY_URL:-}`), outputs stay in single-object encoding and nothing is contacted.

use std::collections::BTreeMap;
use std::time::Duration;

use linegate_common::conf::{ConfigError, ConfigFile};
use linegate_schemas::MessageKind;
use serde::Deserialize;

use super::BridgeConfig;

/// The `[schema_registry]` section, validated at load.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaRegistryConfig {
    /// Base URL of the registry (`http://registry:8081`, a path prefix is kept); empty: no registry.
    pub url: String,
    /// Basic-auth user (Confluent Cloud: the API key); empty: no authentication.
    pub username: String,
    /// Basic-auth password (Confluent Cloud: the API secret); needed exactly when `username` is set.
    pub password: String,
    /// How long one registry request may take before it counts as a failure and is retried, in ms.
    pub timeout_ms: u64,
}

impl Default for SchemaRegistryConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            username: String::new(),
            password: String::new(),
            timeout_ms: 5000,
        }
    }
}

impl SchemaRegistryConfig {
    /// The registry's base URL, when one is configured (validated at load, so it parses).
    pub fn base_url(&self) -> Option<reqwest::Url> {
        let url = self.url.trim();
        if url.is_empty() {
            return None;
        }
        reqwest::Url::parse(url).ok()
    }

    /// Whether outputs use the Confluent wire format.
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// The basic-auth credentials, if any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        (!self.username.is_empty()).then_some((self.username.as_str(), self.password.as_str()))
    }

    /// The timeout of one request.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// The message kind each family's routed events are written with.
pub fn family_kind(family: &str) -> Option<MessageKind> {
    match family {
        "inspection" => Some(MessageKind::InspectionEvent),
        "inference" => Some(MessageKind::InferenceEvent),
        "manufacturing" => Some(MessageKind::ManufacturingEvent),
        "system" => Some(MessageKind::SystemEvent),
        _ => None,
    }
}

/// Every Avro output topic of `config` with the record kinds written to it: the routed families, the
/// quality topic (QualityEvent) and the audit topic (AuditEvent). The registry warm-up registers these;
/// the load check refuses a topic with two kinds.
pub fn output_kinds(config: &BridgeConfig) -> BTreeMap<String, Vec<MessageKind>> {
    let mut kinds: BTreeMap<String, Vec<MessageKind>> = BTreeMap::new();
    let mut add = |topic: &str, kind: MessageKind| {
        let entry = kinds.entry(topic.to_owned()).or_default();
        if !entry.contains(&kind) {
            entry.push(kind);
        }
    };
    for (family, topic) in config.routes.family_targets() {
        if let Some(kind) = family_kind(family) {
            add(topic, kind);
        }
    }
    add(&config.topics.quality, MessageKind::QualityEvent);
    add(&config.topics.audit, MessageKind::AuditEvent);
    kinds
}

/// Checks the section: a parseable `http` URL, credentials in pairs, a timeout, and (with a registry) one
/// record kind per output topic, because TopicNameStrategy gives each topic one subject whose versions must
/// stay compatible: a second record type there would be refused by the registry at the first send.
pub(super) fn validate(config: &BridgeConfig, file: &ConfigFile) -> Result<(), ConfigError> {
    let section = &config.schema_registry;
    if section.timeout_ms == 0 {
        return Err(file.invalid("schema_registry.timeout_ms", "must be at least 1"));
    }
    if section.username.is_empty() != section.password.is_empty() {
        let key = if section.username.is_empty() {
            "schema_registry.username"
        } else {
            "schema_registry.password"
        };
        return Err(file.invalid(
            key,
            "basic auth needs both username and password (or neither)",
        ));
    }
    let url = section.url.trim();
    if url.is_empty() {
        return Ok(());
    }
    let key = "schema_registry.url";
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| file.invalid(key, format!("`{url}` is not a URL: {e}")))?;
    match parsed.scheme() {
        "http" => {}
        "https" => {
            return Err(file.invalid(
                key,
                format!(
                "`{url}`: this build has no TLS client (it comes with the TLS issue); reach the \
                     registry over http, e.g. through a local TLS-terminating proxy"
            ),
            ))
        }
        other => return Err(file.invalid(key, format!("`{url}`: scheme `{other}` is not http"))),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(file.invalid(key, format!("`{url}` names no host")));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(file.invalid(
            key,
            format!("`{url}`: give the base URL only, without ?query or #fragment"),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(file.invalid(
            key,
            "put credentials into schema_registry.username and .password, not into the URL (it is logged)",
        ));
    }
    for (topic, kinds) in output_kinds(config) {
        if kinds.len() > 1 {
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            return Err(file.invalid(
                key,
                format!(
                    "topic `{topic}` would carry {}; with a registry its subject `{topic}-value` holds one \
                     record type (TopicNameStrategy): route them to separate topics in [routing]",
                    names.join(" and ")
                ),
            ));
        }
    }
    Ok(())
}
