//! Seeing into a running edge: metrics, health, and systemd notifications.

pub mod http;
pub mod metrics;
pub mod systemd;

pub use metrics::EdgeMetrics;
pub use systemd::Heartbeat;
