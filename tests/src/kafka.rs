//! Kafka helpers for tests: readiness, reading a whole topic, producing a raw record.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// One record as read back.
#[derive(Debug, Clone)]
pub struct Record {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Vec<u8>,
    /// Headers in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Record timestamp, epoch ms (the producer's create time unless the topic logs append time).
    pub timestamp_ms: Option<i64>,
}

impl Record {
    /// Header `name` as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Key as text.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }
}

/// Which records a reader sees of a topic written in transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Committed transactions and records written without one (what a downstream consumer must use).
    ReadCommitted,
    /// Everything, aborted transactions included.
    ReadUncommitted,
}

impl Isolation {
    fn setting(self) -> &'static str {
        match self {
            Self::ReadCommitted => "read_committed",
            Self::ReadUncommitted => "read_uncommitted",
        }
    }
}

fn consumer(bootstrap: &str) -> anyhow::Result<BaseConsumer> {
    consumer_with(bootstrap, Isolation::ReadCommitted)
}

fn consumer_with(bootstrap: &str, isolation: Isolation) -> anyhow::Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("isolation.level", isolation.setting())
        .set(
            "group.id",
            format!("linegate-test-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?)
}

/// Waits until the broker answers a metadata request.
pub fn wait_ready(bootstrap: &str, timeout: Duration) -> anyhow::Result<()> {
    let consumer = consumer(bootstrap)?;
    let deadline = Instant::now() + timeout;
    loop {
        match consumer.fetch_metadata(None, Duration::from_secs(2)) {
            Ok(_) => return Ok(()),
            Err(error) if Instant::now() > deadline => {
                bail!("Kafka at {bootstrap} not ready: {error}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Reads `topic` (read_committed) from the beginning of every partition until at least `expected` records
/// arrived, then for `grace` more to catch extras. Fails with the count if `timeout` passes first.
pub fn consume_until(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
    grace: Duration,
) -> anyhow::Result<Vec<Record>> {
    consume_isolated(
        bootstrap,
        topic,
        expected,
        (timeout, grace),
        Isolation::ReadCommitted,
    )
}

/// [`consume_until`] with the given isolation; `(timeout, grace)` as there.
pub fn consume_isolated(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    (timeout, grace): (Duration, Duration),
    isolation: Isolation,
) -> anyhow::Result<Vec<Record>> {
    let consumer = consumer_with(bootstrap, isolation)?;
    let deadline = Instant::now() + timeout;
    let partitions = loop {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
        let count = metadata
            .ok()
            .and_then(|m| m.topics().first().map(|t| t.partitions().len()))
            .unwrap_or(0);
        if count > 0 {
            break count;
        }
        if Instant::now() > deadline {
            bail!("topic {topic} does not exist on {bootstrap}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, i32::try_from(partition)?, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut records = Vec::new();
    let mut grace_end: Option<Instant> = None;
    loop {
        if records.len() >= expected && grace_end.is_none() {
            grace_end = Some(Instant::now() + grace);
        }
        if grace_end.is_some_and(|end| Instant::now() >= end) {
            return Ok(records);
        }
        if Instant::now() > deadline {
            bail!(
                "{topic}: {} of {expected} records arrived within {timeout:?}",
                records.len()
            );
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => records.push(Record {
                timestamp_ms: message.timestamp().to_millis(),
                topic: message.topic().to_owned(),
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().unwrap_or_default().to_vec(),
                headers: message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            Some(Err(error)) => eprintln!("consume {topic}: {error}"),
            None => {}
        }
    }
}

/// Produces one raw record and waits for its acknowledgement.
pub async fn produce(
    bootstrap: &str,
    topic: &str,
    key: Option<&[u8]>,
    value: &[u8],
) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "30000")
        .create()?;
    let mut record = FutureRecord::to(topic)
        .payload(value)
        .headers(OwnedHeaders::new());
    if let Some(key) = key {
        record = record.key(key);
    }
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(error, _)| error)
        .with_context(|| format!("producing to {topic}"))?;
    Ok(())
}

/// Produces `records` (key, value) in order with one producer and waits for every acknowledgement.
pub async fn produce_many(
    bootstrap: &str,
    topic: &str,
    records: &[(Option<Vec<u8>>, Vec<u8>)],
) -> anyhow::Result<()> {
    produce_many_to(bootstrap, topic, None, records).await
}

/// [`produce_many`] into `partition` when given (else the default partitioner's choice by key): a test
/// that needs records on every partition places them there.
pub async fn produce_many_to(
    bootstrap: &str,
    topic: &str,
    partition: Option<i32>,
    records: &[(Option<Vec<u8>>, Vec<u8>)],
) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "30000")
        .create()?;
    let mut deliveries = Vec::with_capacity(records.len());
    for (key, value) in records {
        let mut record = FutureRecord::to(topic).payload(value);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        if let Some(key) = key {
            record = record.key(key);
        }
        deliveries.push(
            producer
                .send_result(record)
                .map_err(|(error, _)| error)
                .with_context(|| format!("queueing to {topic}"))?,
        );
    }
    for delivery in deliveries {
        delivery
            .await
            .context("producer dropped")?
            .map_err(|(error, _)| error)
            .with_context(|| format!("producing to {topic}"))?;
    }
    Ok(())
}

/// [`consume_until`] from async code, on a blocking thread.
pub async fn consume_until_async(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
    grace: Duration,
) -> anyhow::Result<Vec<Record>> {
    let (bootstrap, topic) = (bootstrap.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || consume_until(&bootstrap, &topic, expected, timeout, grace))
        .await?
}

/// The outbox sequence numbers of `station`'s EdgeEvents, in the order they were read.
pub fn station_seqs(records: &[Record], station: &str) -> Vec<i64> {
    records
        .iter()
        .filter(|r| r.key_str() == Some(station))
        .map(|r| {
            linegate_schemas::decode::<linegate_schemas::EdgeEvent>(&r.value)
                .expect("an EdgeEvent")
                .seq
        })
        .collect()
}

/// Creates a topic (a test without a bridge has nobody else to do it); an existing topic is fine.
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    create_topic_with(bootstrap, topic, partitions, &[]).await
}

/// [`create_topic`] with topic configs, e.g. `("max.message.bytes", "1000")`.
pub async fn create_topic_with(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::types::RDKafkaErrorCode;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let new_topic = configs.iter().fold(
        NewTopic::new(topic, partitions, TopicReplication::Fixed(1)),
        |new_topic, (key, value)| new_topic.set(key, value),
    );
    for result in admin
        .create_topics(&[new_topic], &AdminOptions::new())
        .await?
    {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("cannot create topic {name}: {code}"),
        }
    }
    Ok(())
}

/// The configs of `topic` as the broker reports them (`describe_configs`), name to value.
pub async fn topic_config(
    bootstrap: &str,
    topic: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await?;
    let resource = described
        .into_iter()
        .next()
        .context("no answer to describe_configs")?
        .map_err(|code| anyhow::anyhow!("describe_configs {topic}: {code}"))?;
    Ok(resource
        .entries
        .into_iter()
        .filter_map(|entry| Some((entry.name, entry.value?)))
        .collect())
}

/// Offsets the consumer group `group` committed on partitions `0..partitions` of `topic`, summed (a
/// partition without a committed offset counts 0).
pub fn committed_total(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()?;
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10))?;
    Ok(committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(n) => n,
            _ => 0,
        })
        .sum())
}

/// Commits offset 0 on partitions `0..partitions` of `topic` for `group`, as an operator's offset reset
/// would: the group's next member reads the topic again from the start. Call it with the group's instances
/// stopped: Apache Kafka refuses a commit from outside a group that has members (kafka was not tried).
pub fn rewind_group(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition_offset(topic, partition, Offset::Offset(0))?;
    }
    consumer
        .commit(&list, rdkafka::consumer::CommitMode::Sync)
        .with_context(|| format!("rewinding group {group} on {topic}"))?;
    Ok(())
}
