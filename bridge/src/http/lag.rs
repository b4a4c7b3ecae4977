//! Consumer lag of the bridge's group on the input topic: per partition, the high watermark minus the
//! group's committed offset (minus the log start when the group committed nothing there yet).
//!
//! Uses a consumer that carries the group id but never subscribes, so asking never joins or disturbs the
//! group.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::config::BridgeConfig;
use crate::metrics::BridgeMetrics;

const TIMEOUT: Duration = Duration::from_secs(5);
/// How often the lag gauges of `/metrics` are refreshed.
pub(super) const REFRESH: Duration = Duration::from_secs(5);

/// Lag of one input partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionLag {
    /// Input topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The group's committed offset (the next record it will read), None before its first commit.
    pub committed: Option<i64>,
    /// Log start.
    pub low: i64,
    /// Log end (offset of the next record to be written).
    pub high: i64,
    /// Records not yet committed by the group.
    pub lag: i64,
}

/// Reads committed offsets and watermarks; blocking.
pub struct LagReader {
    consumer: BaseConsumer,
    topic: String,
}

impl LagReader {
    /// A reader of `config`'s group on its input topic.
    pub fn new(config: &BridgeConfig) -> Result<Self, KafkaError> {
        let consumer = config
            .kafka
            .client_config(&[
                ("group.id", &config.bridge.group_id),
                ("enable.auto.commit", "false"),
            ])
            .create()?;
        Ok(Self {
            consumer,
            topic: config.topics.input.clone(),
        })
    }

    /// The lag of every input partition, in partition order.
    pub fn read(&self) -> Result<Vec<PartitionLag>, KafkaError> {
        let metadata = self.consumer.fetch_metadata(Some(&self.topic), TIMEOUT)?;
        let mut list = TopicPartitionList::new();
        for topic in metadata.topics().iter().filter(|t| t.name() == self.topic) {
            for partition in topic.partitions() {
                list.add_partition(&self.topic, partition.id());
            }
        }
        let committed = self.consumer.committed_offsets(list, TIMEOUT)?;
        let mut lags = Vec::new();
        for element in committed.elements() {
            let (low, high) =
                self.consumer
                    .fetch_watermarks(&self.topic, element.partition(), TIMEOUT)?;
            let committed = match element.offset() {
                Offset::Offset(n) => Some(n),
                _ => None,
            };
            lags.push(PartitionLag {
                topic: self.topic.clone(),
                partition: element.partition(),
                committed,
                low,
                high,
                lag: (high - committed.unwrap_or(low).max(low)).max(0),
            });
        }
        lags.sort_by_key(|l| l.partition);
        Ok(lags)
    }

    /// Refreshes the lag gauges forever, every [`REFRESH`]; a failed read keeps the last values and logs.
    pub async fn refresh_forever(self: std::sync::Arc<Self>, metrics: BridgeMetrics) {
        loop {
            let reader = self.clone();
            match tokio::task::spawn_blocking(move || reader.read()).await {
                Ok(Ok(lags)) => {
                    for lag in lags {
                        metrics
                            .consumer_lag
                            .get_or_create(&vec![
                                ("topic", lag.topic),
                                ("partition", lag.partition.to_string()),
                            ])
                            .set(lag.lag);
                    }
                }
                Ok(Err(error)) => tracing::debug!(%error, "reading the consumer lag failed"),
                Err(error) => tracing::warn!(%error, "the consumer lag task failed"),
            }
            tokio::time::sleep(REFRESH).await;
        }
    }
}
