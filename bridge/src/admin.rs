//! Creating the topics of the plan that do not exist yet. Existing topics are never altered.

use std::time::Duration;

use linegate_common::kafka::KafkaConfig;
use linegate_common::topics::TopicPlan;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

/// Why topics could not be provisioned.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The admin client could not be created or the request failed as a whole.
    #[error("cannot create topics on {bootstrap}: {source}")]
    Kafka {
        bootstrap: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The broker refused to create a topic.
    #[error("the broker refused to create topic {topic}: {code}")]
    Refused {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// Creates every planned topic that is missing; returns the names it created.
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
            NewTopic::new(
                &topic.name,
                topic.partitions,
                TopicReplication::Fixed(topic.replication_factor),
            )
            .set("retention.ms", retention)
            .set("cleanup.policy", topic.cleanup_policy.as_kafka())
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(kafka_err)?;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(AdminError::Refused { topic, code }),
        }
    }
    Ok(created)
}
