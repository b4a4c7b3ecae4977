//! The consume -> route -> produce -> commit loop (at-least-once).
//!
//! A round takes up to `batch_max` records, routes them in order, produces every output, waits until Kafka
//! acknowledged all of them, and only then commits the consumer offsets. A failed delivery repeats the round's
//! sends, so an output may be written twice (its id and `idempotency-key` header are the same both times) but
//! never lost. Exactly-once with Kafka transactions is a later mode: tansu 0.6.0, the broker of the tests, does
//! not route EndTxn, so a transactional commit cannot succeed against it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::config::BridgeConfig;
use crate::route::{route, InputRecord, Output, RouteContext};

const RETRY_BACKOFF: Duration = Duration::from_secs(1);
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Why the pipeline cannot run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The consumer or producer could not be created, or the subscription failed.
    #[error("Kafka client set-up failed (check [kafka]): {0}")]
    Client(#[from] rdkafka::error::KafkaError),
}

/// Consumer and producer of one bridge instance.
pub struct Pipeline {
    consumer: StreamConsumer,
    producer: FutureProducer,
    config: BridgeConfig,
}

impl Pipeline {
    /// Creates the clients and subscribes to the input topic.
    pub fn new(config: BridgeConfig) -> Result<Self, PipelineError> {
        let consumer: StreamConsumer = config
            .kafka
            .client_config(&[
                ("group.id", &config.bridge.group_id),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", "earliest"),
                ("enable.partition.eof", "false"),
            ])
            .create()?;
        consumer.subscribe(&[&config.topics.input])?;
        let producer: FutureProducer = config
            .kafka
            .client_config(&[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "5"),
                ("compression.type", "lz4"),
                ("message.timeout.ms", "60000"),
            ])
            .create()?;
        Ok(Self {
            consumer,
            producer,
            config,
        })
    }

    /// Runs rounds until `shutdown` turns true; the round in progress is finished and committed first.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut totals = Totals::default();
        let mut last_summary = Instant::now();
        loop {
            let Some(batch) = self.next_batch(&mut shutdown).await else {
                break;
            };
            self.process(&batch, &mut totals, &shutdown).await;
            if last_summary.elapsed() >= SUMMARY_EVERY {
                tracing::info!(
                    accepted = totals.accepted,
                    rejected = totals.rejected,
                    "bridge progress"
                );
                last_summary = Instant::now();
            }
        }
        tracing::info!(
            accepted = totals.accepted,
            rejected = totals.rejected,
            "bridge stopped"
        );
    }

    async fn next_batch(&self, shutdown: &mut watch::Receiver<bool>) -> Option<Vec<OwnedMessage>> {
        let first = loop {
            tokio::select! {
                received = self.consumer.recv() => match received {
                    Ok(message) => break message.detach(),
                    Err(error) => {
                        tracing::warn!(%error, "consume failed; retrying");
                        tokio::time::sleep(RETRY_BACKOFF).await;
                    }
                },
                _ = shutdown.changed() => return None,
            }
        };
        let mut batch = vec![first];
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(self.config.bridge.batch_wait_ms);
        while batch.len() < self.config.bridge.batch_max {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message.detach()),
                Ok(Err(error)) => tracing::warn!(%error, "consume failed"),
                Err(_) => break,
            }
        }
        Some(batch)
    }

    async fn process(
        &self,
        batch: &[OwnedMessage],
        totals: &mut Totals,
        shutdown: &watch::Receiver<bool>,
    ) {
        let ctx = RouteContext {
            topics: &self.config.topics,
            quality: &self.config.quality,
            service_name: &self.config.bridge.service_name,
            now_ms: linegate_common::process::now_ms(),
        };
        let mut outputs = Vec::new();
        for message in batch {
            let record = InputRecord {
                topic: message.topic(),
                partition: message.partition(),
                offset: message.offset(),
                key: message.key(),
                value: message.payload().unwrap_or_default(),
            };
            let routed = route(&record, &ctx);
            match &routed.rejection {
                Some(rejection) => {
                    totals.rejected += 1;
                    tracing::warn!(
                        partition = record.partition,
                        offset = record.offset,
                        class = rejection.class,
                        %rejection,
                        "input rejected to the dead-letter topic"
                    );
                }
                None => totals.accepted += 1,
            }
            outputs.extend(routed.outputs);
        }
        while let Err(error) = self.deliver(&outputs).await {
            tracing::warn!(%error, outputs = outputs.len(), "output delivery failed; offsets not committed, retrying the round");
            if *shutdown.borrow() {
                return; // uncommitted: the next owner of these partitions repeats them
            }
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
        self.commit(batch);
    }

    async fn deliver(&self, outputs: &[Output]) -> Result<(), String> {
        let mut deliveries = Vec::with_capacity(outputs.len());
        for output in outputs {
            let mut headers = OwnedHeaders::new_with_capacity(output.headers.len());
            for (key, value) in &output.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value),
                });
            }
            let mut record = FutureRecord::to(&output.topic)
                .payload(&output.value)
                .headers(headers);
            if let Some(key) = &output.key {
                record = record.key(key);
            }
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((error, _)) => {
                    return Err(format!(
                        "cannot queue an output to {}: {error}",
                        output.topic
                    ))
                }
            }
        }
        let mut failure = None;
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => failure = Some(error.to_string()),
                Err(_) => failure = Some("the producer dropped a delivery".to_owned()),
            }
        }
        failure.map_or(Ok(()), Err)
    }

    fn commit(&self, batch: &[OwnedMessage]) {
        let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for message in batch {
            let entry = next
                .entry((message.topic(), message.partition()))
                .or_insert(0);
            *entry = (*entry).max(message.offset() + 1);
        }
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            if let Err(error) =
                offsets.add_partition_offset(topic, partition, Offset::Offset(offset))
            {
                tracing::error!(%error, topic, partition, "cannot build the offset commit");
            }
        }
        if let Err(error) = self.consumer.commit(&offsets, CommitMode::Sync) {
            // After a rebalance the partitions may belong to another instance, which repeats them.
            tracing::warn!(%error, "offset commit failed; these records will be handled again");
        }
    }
}

#[derive(Default)]
struct Totals {
    accepted: u64,
    rejected: u64,
}
