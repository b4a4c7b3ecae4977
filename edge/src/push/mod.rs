//! Configs pushed by the centre: the station's record on the compacted topic `linegate.station.config`,
//! verified, validated and applied over the local file.
//!
//! - [`watch`] owns the Kafka consumer of the topic and hands the station's records to the run loop.
//! - [`state`] decides about one record (signature, station, version, full validation) and keeps the applied
//!   one on disk as last-known-good; the overlay rule it applies is the contract's
//!   (`linegate_station_config::overlay`).
//! - [`apply`] turns a record into the config to switch to (kept on disk first) or a refusal report.
//! - [`report`] writes the outcome (CONFIG_APPLIED / CONFIG_REJECTED) into the outbox, so it reaches Kafka in
//!   order with the results and the bridge puts it on `audit.events`.
//!
//! Applying itself is `run`'s job (the SIGHUP machinery: the sources restart, outbox and forwarder go on).

pub mod apply;
pub mod report;
pub mod state;
pub mod watch;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// What the push side counts.
#[derive(Clone, Default)]
pub struct PushMetrics {
    /// Pushed configs applied since start.
    pub applied: Counter,
    /// Pushed configs refused since start (bad signature, stale version, invalid config...).
    pub rejected: Counter,
    /// Version of the pushed config in force; 0 = none (the local file alone).
    pub version: Gauge,
}

impl PushMetrics {
    /// Registers the series under `linegate_edge_config_push_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let sub = registry.sub_registry_with_prefix("linegate_edge_config_push");
        sub.register("applied", "Pushed configs applied", metrics.applied.clone());
        sub.register(
            "rejected",
            "Pushed configs refused; the previous config stayed in force",
            metrics.rejected.clone(),
        );
        sub.register(
            "version",
            "Version of the pushed config in force (0: local file only)",
            metrics.version.clone(),
        );
        metrics
    }
}
