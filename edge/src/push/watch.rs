//! The Kafka consumer of the pushed-config topic: the only code on the edge besides the forwarder that
//! talks to Kafka, on its own thread so a slow or absent broker never holds up the run loop.
//!
//! It assigns every partition of the topic (no consumer group, nothing committed) and reads from the
//! beginning. Records whose key is not the station id are skipped. Until it has caught up with the end of the
//! topic as it was when it connected, it only remembers the last record of the station's key, and hands over
//! that one: what was pushed while the edge was away is the latest record, not the whole history. After that
//! every new record of the key is handed over as it arrives. When the topic does not exist yet or Kafka is
//! away it waits and tries again; librdkafka reconnects by itself once connected.

use std::collections::HashMap;
use std::time::Duration;

use linegate_common::kafka::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

/// A record of the station's key.
#[derive(Debug)]
pub struct Pushed {
    /// The record value; None for a tombstone.
    pub value: Option<Vec<u8>>,
    /// Where it was read, for logs.
    pub partition: i32,
    /// Where it was read, for logs.
    pub offset: i64,
}

/// Pause between attempts while the topic cannot be read.
const RETRY_EVERY: Duration = Duration::from_secs(5);
/// Longest a single poll blocks, so a stop is noticed quickly.
const POLL: Duration = Duration::from_millis(300);

/// Starts the watcher thread; it ends when `stopped` turns true or the receiver of `records` is dropped.
pub fn spawn(
    kafka: KafkaConfig,
    topic: String,
    station: String,
    records: mpsc::Sender<Pushed>,
    stopped: watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("config-push".to_owned())
        .spawn(move || {
            let watcher = Watcher {
                kafka,
                topic,
                station,
                records,
                stopped,
            };
            watcher.run();
        })
}

struct Watcher {
    kafka: KafkaConfig,
    topic: String,
    station: String,
    records: mpsc::Sender<Pushed>,
    stopped: watch::Receiver<bool>,
}

impl Watcher {
    fn stopping(&self) -> bool {
        *self.stopped.borrow() || self.records.is_closed()
    }

    fn run(&self) {
        let mut warned = false;
        while !self.stopping() {
            match self.connect() {
                Ok((consumer, ends)) => {
                    if warned {
                        tracing::info!(topic = %self.topic, "pushed-config topic readable again");
                    }
                    self.follow(&consumer, ends);
                    return;
                }
                Err(reason) => {
                    if !warned {
                        tracing::warn!(topic = %self.topic, %reason, "cannot read the pushed-config topic yet; running with the config in force, retrying every 5 s");
                        warned = true;
                    }
                    self.pause(RETRY_EVERY);
                }
            }
        }
    }

    fn pause(&self, total: Duration) {
        let step = Duration::from_millis(100);
        let mut waited = Duration::ZERO;
        while waited < total && !self.stopping() {
            std::thread::sleep(step);
            waited += step;
        }
    }

    /// A consumer assigned to every partition from the beginning, and each partition's end at this moment.
    fn connect(&self) -> Result<(BaseConsumer, HashMap<i32, i64>), String> {
        let group = format!("linegate-edge-config-{}", self.station);
        let consumer: BaseConsumer = self
            .kafka
            .client_config(&[
                ("group.id", &group),
                ("enable.auto.commit", "false"),
                ("enable.partition.eof", "false"),
                ("auto.offset.reset", "earliest"),
            ])
            .create()
            .map_err(|e| e.to_string())?;
        let metadata = consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == self.topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(format!(
                "topic {} does not exist (the bridge creates it from config/topics.toml)",
                self.topic
            ));
        }
        let mut ends = HashMap::new();
        let mut assignment = TopicPartitionList::new();
        for partition in partitions {
            let (low, high) = consumer
                .fetch_watermarks(&self.topic, partition, Duration::from_secs(5))
                .map_err(|e| e.to_string())?;
            if high > low {
                ends.insert(partition, high);
            }
            assignment
                .add_partition_offset(&self.topic, partition, Offset::Beginning)
                .map_err(|e| e.to_string())?;
        }
        consumer.assign(&assignment).map_err(|e| e.to_string())?;
        Ok((consumer, ends))
    }

    /// Catches up (keeping only the latest record of the key), hands it over, then hands over each new one.
    fn follow(&self, consumer: &BaseConsumer, mut ends: HashMap<i32, i64>) {
        let mut latest: Option<Pushed> = None;
        let mut caught_up = false;
        while !self.stopping() {
            if let Some(received) = consumer.poll(POLL) {
                match received {
                    Ok(message) => {
                        if message.key() == Some(self.station.as_bytes()) {
                            let pushed = Pushed {
                                value: message.payload().map(<[u8]>::to_vec),
                                partition: message.partition(),
                                offset: message.offset(),
                            };
                            if !caught_up {
                                latest = Some(pushed);
                            } else if self.records.blocking_send(pushed).is_err() {
                                return;
                            }
                        }
                    }
                    Err(error) => tracing::debug!(%error, "pushed-config consumer"),
                }
            }
            if caught_up {
                continue;
            }
            // The position moves past compacted-away offsets and control records too.
            if let Ok(position) = consumer.position() {
                for element in position.elements() {
                    if let Offset::Offset(at) = element.offset() {
                        if ends.get(&element.partition()).is_some_and(|end| at >= *end) {
                            ends.remove(&element.partition());
                        }
                    }
                }
            }
            if ends.is_empty() {
                caught_up = true;
                match latest.take() {
                    Some(pushed) => {
                        if self.records.blocking_send(pushed).is_err() {
                            return;
                        }
                    }
                    None => {
                        tracing::info!(topic = %self.topic, "no config was pushed for this station yet");
                    }
                }
            }
        }
    }
}
