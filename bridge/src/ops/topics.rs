//! Creating the topics of the plan that do not exist yet, at start, so that a fresh cluster (or one with
//! `auto.create.topics.enable=false`) is ready before the first record is routed.
//!
//! Existing topics are never altered: partitions, retention and cleanup of a live topic are an operator's
//! call. A topic config the broker refuses is an error, not something to drop silently: a compacted
//! `audit.events` created without `cleanup.policy=compact` would be a different topic.
//! Apache Kafka refuses an unknown config, an invalid value or a replication factor above its brokers
//! (InvalidConfig, InvalidReplicationFactor): the bridge then stops, naming the topic.

use std::time::Duration;

use linegate_common::kafka::KafkaConfig;
use linegate_common::topics::TopicPlan;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

/// How long the broker may take to create the topics.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why topics could not be provisioned.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The admin client could not be created or the request failed as a whole (broker unreachable).
    #[error("cannot create topics on {bootstrap}: {source}")]
    Kafka {
        /// Where we tried.
        bootstrap: String,
        /// What librdkafka said.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The broker refused to create one topic (e.g. a replication factor above the broker count: set
    /// `[defaults] replication_factor` in the topic plan, or LINEGATE_TOPIC_REPLICATION).
    #[error(
        "the broker refused to create topic {topic}: {code} (check its entry in the topic plan)"
    )]
    Refused {
        /// The topic.
        topic: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
}

/// Creates every planned topic that is missing, with its partitions, replication factor, `retention.ms`,
/// `cleanup.policy` and further configs; returns the names it created ("already exists" is not an error).
pub async fn create_missing(
    kafka: &KafkaConfig,
    plan: &TopicPlan,
) -> Result<Vec<String>, AdminError> {
    let kafka_err = |source| AdminError::Kafka {
        bootstrap: kafka.bootstrap.clone(),
        source,
    };
    let admin: AdminClient<DefaultClientContext> =
        kafka.client_config(&[]).create().map_err(kafka_err)?;
    let retention: Vec<String> = plan.topics().map(|t| t.retention_ms.to_string()).collect();
    let new_topics: Vec<NewTopic<'_>> = plan
        .topics()
        .zip(&retention)
        .map(|(topic, retention)| {
            let new = NewTopic::new(
                &topic.name,
                topic.partitions,
                TopicReplication::Fixed(topic.replication_factor),
            )
            .set("retention.ms", retention)
            .set("cleanup.policy", topic.cleanup_policy.as_kafka());
            (topic.config.iter()).fold(new, |new, (key, value)| new.set(key, value))
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(CREATE_TIMEOUT));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(kafka_err)?;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(name) => created.push(name),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = %name, "topic exists; left as it is");
            }
            Err((topic, code)) => return Err(AdminError::Refused { topic, code }),
        }
    }
    Ok(created)
}
