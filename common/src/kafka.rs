//! The `[kafka]` block both binaries accept: where the cluster is, plus any librdkafka property.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::conf::{ConfigError, ConfigFile};

/// How to reach Kafka.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]` of bootstrap brokers.
    pub bootstrap: String,
    /// Extra librdkafka properties (security.protocol, sasl.*, ssl.*, tuning). They override linegate's own
    /// settings, so use them knowingly.
    #[serde(default)]
    pub client: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// Checks the block; `table` is its dotted path in the file, e.g. `kafka`.
    pub fn validate(&self, file: &ConfigFile, table: &str) -> Result<(), ConfigError> {
        let key = format!("{table}.bootstrap");
        if self.bootstrap.trim().is_empty() {
            return Err(file.invalid(&key, "must name at least one broker as host:port"));
        }
        for broker in self.bootstrap.split(',') {
            let broker = broker.trim();
            let port_ok = broker.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !port_ok {
                return Err(file.invalid(&key, format!("`{broker}` is not host:port")));
            }
        }
        Ok(())
    }

    #[cfg(feature = "runtime")]
    /// A client config with the bootstrap servers, then `settings`, then the operator's `client` overrides.
    pub fn client_config(&self, settings: &[(&str, &str)]) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        for (key, value) in settings {
            config.set(*key, *value);
        }
        for (key, value) in &self.client {
            config.set(key, value);
        }
        config
    }
}
