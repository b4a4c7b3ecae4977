//! The `[routing]` table: which topics an accepted event is written to, by payload family or by event type.
//!
//! Every accepted event goes to the audit topic and a completed inspection to the quality topic whatever the
//! table says: those are the bridge's own records about the event. The table decides where the event itself
//! goes. A key is a payload family (`inspection`, `inference`, `manufacturing`, `system`) or an event type
//! symbol (`INSPECTION_COMPLETED`, `DRIFT_DETECTED`, ...); an event type entry wins over its family's. A
//! family without an entry keeps its default from `[topics]` (system events: none, audit only).

use std::collections::BTreeMap;

use linegate_common::conf::{ConfigError, ConfigFile};
use linegate_schemas::{
    EdgePayload, InferenceEventType, InspectionEventType, ManufacturingEventType, SystemEventType,
};

use super::TopicNames;

/// The payload families a routing key may name.
pub const FAMILIES: [&str; 4] = ["inspection", "inference", "manufacturing", "system"];

/// The `[routing]` table as written: key (family or event type symbol) to topic names.
pub type RoutingTable = BTreeMap<String, Vec<String>>;

/// The routing table resolved against `[topics]`: the topics of every family and of every event type with
/// its own entry. Built once at load so that routing a record is two map lookups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routes {
    by_family: BTreeMap<&'static str, Vec<String>>,
    by_event_type: BTreeMap<String, Vec<String>>,
}

impl Routes {
    /// Resolves `table` over the defaults of `topics`, checking every key and topic name; errors name the
    /// `routing.<key>` entry.
    pub fn resolve(
        table: &RoutingTable,
        topics: &TopicNames,
        file: &ConfigFile,
    ) -> Result<Self, ConfigError> {
        let mut routes = Self::defaults(topics);
        for (key, targets) in table {
            let config_key = format!("routing.{key}");
            for target in targets {
                check_target(target, topics, file, &config_key)?;
            }
            if let Some(family) = FAMILIES.iter().find(|f| **f == key.as_str()) {
                routes.by_family.insert(family, targets.clone());
            } else if is_event_type(key) {
                routes.by_event_type.insert(key.clone(), targets.clone());
            } else {
                return Err(file.invalid(
                    &config_key,
                    format!(
                        "`{key}` is neither a payload family ({}) nor an event type this bridge knows ({})",
                        FAMILIES.join(", "),
                        event_types().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        Ok(routes)
    }

    /// The routes of a config without a `[routing]` table: each family to its `[topics]` entry.
    pub fn defaults(topics: &TopicNames) -> Self {
        let by_family = BTreeMap::from([
            ("inspection", vec![topics.lifecycle.clone()]),
            ("inference", vec![topics.inference.clone()]),
            ("manufacturing", vec![topics.manufacturing.clone()]),
            ("system", Vec::new()),
        ]);
        Self {
            by_family,
            by_event_type: BTreeMap::new(),
        }
    }

    /// Where an accepted payload goes, besides quality and audit: its event type's entry, else its family's.
    pub fn topics_for(&self, payload: &EdgePayload) -> &[String] {
        self.by_event_type
            .get(payload.event_type_symbol())
            .or_else(|| self.by_family.get(payload.family()))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Every topic some route writes to, once each: for the topic plan check and the operations API.
    pub fn all_topics(&self) -> impl Iterator<Item = &String> {
        let mut seen: Vec<&String> = self
            .by_family
            .values()
            .chain(self.by_event_type.values())
            .flatten()
            .collect();
        seen.sort();
        seen.dedup();
        seen.into_iter()
    }

    /// Every (family, topic) pair some route writes, an event type's entry under its family: the record kinds
    /// each topic carries, for the schema registry (one record type per subject) and its warm-up.
    pub fn family_targets(&self) -> Vec<(&'static str, &String)> {
        let by_type = self
            .by_event_type
            .iter()
            .filter_map(|(symbol, topics)| Some((family_of(symbol)?, topics)));
        let mut pairs: Vec<(&'static str, &String)> = self
            .by_family
            .iter()
            .map(|(family, topics)| (*family, topics))
            .chain(by_type)
            .flat_map(|(family, topics)| topics.iter().map(move |topic| (family, topic)))
            .collect();
        pairs.sort();
        pairs.dedup();
        pairs
    }
}

fn check_target(
    target: &str,
    topics: &TopicNames,
    file: &ConfigFile,
    key: &str,
) -> Result<(), ConfigError> {
    if target.trim().is_empty() {
        return Err(file.invalid(key, "names an empty topic; use [] for \"audit only\""));
    }
    if target == topics.input {
        return Err(file.invalid(
            key,
            format!("`{target}` is the input topic; the bridge would read its own outputs forever"),
        ));
    }
    if target == topics.state || target == topics.dlq {
        return Err(file.invalid(
            key,
            format!(
                "`{target}` is the bridge's state or dead-letter topic, which hold other records"
            ),
        ));
    }
    Ok(())
}

/// The payload family of an event type symbol.
fn family_of(symbol: &str) -> Option<&'static str> {
    if InspectionEventType::ALL
        .iter()
        .any(|t| t.symbol() == symbol)
    {
        Some("inspection")
    } else if SystemEventType::ALL.iter().any(|t| t.symbol() == symbol) {
        Some("system")
    } else if ManufacturingEventType::ALL
        .iter()
        .any(|t| t.symbol() == symbol)
    {
        Some("manufacturing")
    } else if InferenceEventType::ALL.iter().any(|t| t.symbol() == symbol) {
        Some("inference")
    } else {
        None
    }
}

fn is_event_type(symbol: &str) -> bool {
    event_types().any(|known| known == symbol)
}

/// Every event type symbol of every family this build knows, `OTHER` excepted (it is no one event type).
fn event_types() -> impl Iterator<Item = &'static str> {
    let inspection = InspectionEventType::ALL.iter().map(|t| t.symbol());
    let system = SystemEventType::ALL.iter().map(|t| t.symbol());
    let manufacturing = ManufacturingEventType::ALL.iter().map(|t| t.symbol());
    let inference = InferenceEventType::ALL.iter().map(|t| t.symbol());
    inspection
        .chain(system)
        .chain(manufacturing)
        .chain(inference)
        .filter(|symbol| *symbol != "OTHER")
}
