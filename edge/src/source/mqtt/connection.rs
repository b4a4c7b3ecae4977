//! The connection's log lines, `source_up` gauge and reconnect pacing, shared by both protocol versions.

use std::time::Duration;

use super::SOURCE;
use crate::observe::EdgeMetrics;
use linegate_station_config::MqttConfig;

const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Logs and meters the connection once per state change and paces reconnects; shared by both versions.
pub(super) struct ConnectionLog {
    host: String,
    port: u16,
    pub(super) topics: Vec<String>,
    connected: bool,
    backoff: Duration,
    metrics: EdgeMetrics,
}

impl ConnectionLog {
    pub(super) fn new(config: &MqttConfig, metrics: EdgeMetrics) -> Self {
        metrics.set_source_up(SOURCE, false);
        Self {
            metrics,
            host: config.host.clone(),
            port: config.port,
            topics: config.topics.clone(),
            connected: false,
            backoff: Duration::from_millis(250),
        }
    }

    pub(super) fn connected(&mut self, session_present: bool) {
        tracing::info!(host = %self.host, port = self.port, session_present, "MQTT connected");
        self.connected = true;
        self.metrics.set_source_up(SOURCE, true);
        self.backoff = Duration::from_millis(250);
    }

    pub(super) fn subscribed(&self, refused: Option<String>) {
        match refused {
            Some(reason) => tracing::error!(
                topics = ?self.topics,
                reason,
                "the MQTT broker refused a subscription; check its ACL"
            ),
            None => tracing::info!(topics = ?self.topics, "MQTT subscribed"),
        }
    }

    pub(super) async fn failed(&mut self, error: &(dyn std::fmt::Display + Sync)) {
        if self.connected {
            tracing::warn!(host = %self.host, port = self.port, %error, "MQTT connection lost; reconnecting");
            self.connected = false;
            self.metrics.set_source_up(SOURCE, false);
        } else {
            tracing::debug!(%error, "MQTT connect failed");
        }
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(RECONNECT_BACKOFF_MAX);
    }
}
