//! Why the pipeline cannot start or go on.

use rdkafka::error::KafkaError;

use crate::pipeline::transaction::TxnError;
use crate::wire::RegistryError;

/// Why the pipeline cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The consumer or producer could not be created (a librdkafka property in `[kafka.client]` is wrong).
    #[error("cannot create the Kafka {client} (check [kafka] and [kafka.client]): {source}")]
    Client {
        /// `consumer` or `producer`.
        client: &'static str,
        /// What librdkafka said.
        #[source]
        source: KafkaError,
    },
    /// The subscription to the input topic was refused.
    #[error("cannot subscribe to {topic}: {source}")]
    Subscribe {
        /// The input topic.
        topic: String,
        /// What librdkafka said.
        #[source]
        source: KafkaError,
    },
    /// Exactly-once mode cannot start or go on (no transactions on the broker, or fenced by another
    /// process with the same instance id).
    #[error(transparent)]
    Transactions(#[from] TxnError),
    /// The schema registry refuses an output schema (incompatible, unauthorized): waiting does not cure it,
    /// and producing in another format would break the configured wire format.
    #[error("the outputs cannot be framed for the schema registry: {0}")]
    Registry(#[from] RegistryError),
}
