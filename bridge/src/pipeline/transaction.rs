//! Exactly-once mode: a transactional producer per instance, a start-up check that the broker really
//! supports transactions, and the commit of one round (outputs, state and input offsets in one transaction).
//!
//! The pattern is librdkafka's consume-transform-produce (rust-rdkafka `examples/transactions.rs`): begin,
//! produce every output, `send_offsets_to_transaction` with the consumer's group metadata, commit. Consumers
//! of the outputs must read with `isolation.level=read_committed`, or they also see aborted rounds.
//! `transactional.id` is `<group_id>-<instance_id>`: a restarted instance calls `init_transactions` with the
//! same id, which bumps the epoch and fences a zombie (an old process of the same instance still producing),
//! whose next transactional call then fails with a fatal "fenced" error and stops it.
//!
//! Three ways a round's transaction can fail ([`TxnError`]): it was aborted (the round is read again with
//! the same producer); the producer is unusable but nobody else owns its id (a fatal error, e.g. after the
//! broker restarted mid-transaction, or an abort that itself failed: the pipeline creates a new producer,
//! whose `init_transactions` aborts whatever the old one left open); or it was fenced. librdkafka says
//! "fenced" both when a newer process took over the id and when the broker aborted a transaction that stayed
//! open longer than `transaction.timeout.ms` (the process was paused, or Kafka stalled): the pipeline tells
//! them apart by the transaction's age, replacing the producer after a timeout and stopping otherwise.

use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;

use crate::decide::route::Output;
use crate::pipeline::produce::{self, OutputProducer};
use rdkafka::TopicPartitionList;

use linegate_common::kafka::KafkaConfig;

/// Key prefix of the probe record written to the state topic at start; the state loader ignores it.
pub const PROBE_KEY_PREFIX: &str = "#probe/";
/// Limit of each transactional call; a broker that does not answer within it is treated as unable.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the broker lets a transaction stay open before it aborts it (and fences its producer epoch).
const TRANSACTION_TIMEOUT_MS: &str = "60000";

/// Why exactly-once mode cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// The broker lacks transactions (or refused the probe): the bridge must not start in this mode.
    #[error(
        "delivery.mode = \"exactly_once\" needs Kafka transactions, but the broker at {bootstrap} did not \
         complete a probe transaction ({step} failed: {source}). Use a broker that grants transactions to \
         this client (Apache Kafka 0.11 or later; transaction.max.timeout.ms at least 60000; with ACLs, Write on \
         its transactional id), or set delivery.mode = \"at_least_once\""
    )]
    Unsupported {
        /// Bootstrap servers.
        bootstrap: String,
        /// The call that failed.
        step: &'static str,
        /// What librdkafka said (in the message already, so not repeated as a cause).
        source: KafkaError,
    },
    /// Another process with this instance's transactional.id took over: this one is a zombie and must stop;
    /// its open transaction is aborted by the broker.
    #[error("transactional producer {transactional_id} was fenced ({step}: {source}): another process runs with the same delivery.instance_id; this one stops so that only one writes")]
    Fenced {
        /// The id.
        transactional_id: String,
        /// The call that failed.
        step: &'static str,
        /// What librdkafka said.
        #[source]
        source: KafkaError,
    },
    /// The producer can no longer be used (a fatal error other than fencing, or its transaction could not be
    /// aborted): a new one takes over the same transactional.id.
    #[error("transactional producer {transactional_id} is unusable ({step}: {source}); a new one replaces it")]
    Fatal {
        /// The id.
        transactional_id: String,
        /// The call that failed.
        step: &'static str,
        /// What librdkafka said.
        #[source]
        source: KafkaError,
    },
    /// A round's transaction failed and was aborted; the round is read again and repeated.
    #[error("transaction aborted ({step}: {source}); the round is repeated")]
    Aborted {
        /// The call that failed.
        step: &'static str,
        /// What librdkafka said.
        #[source]
        source: KafkaError,
    },
}

/// The `transactional.id` of an instance.
pub fn transactional_id(group_id: &str, instance_id: &str) -> String {
    format!("{group_id}-{instance_id}")
}

/// Creates the transactional producer, initialises it (fencing older epochs of the same id) and commits
/// one probe transaction with one record on `probe_topic`. Any failure means the broker cannot give
/// exactly-once delivery, and the bridge must not start.
pub async fn start(
    kafka: &KafkaConfig,
    transactional_id: &str,
    probe_topic: &str,
) -> Result<OutputProducer, TxnError> {
    let unsupported = |step, source| TxnError::Unsupported {
        bootstrap: kafka.bootstrap.clone(),
        step,
        source,
    };
    let producer = produce::configured(kafka, &transactional_settings(transactional_id))
        .map_err(|e| unsupported("creating the producer", e))?;
    blocking(|| producer.init_transactions(CALL_TIMEOUT))
        .map_err(|e| unsupported("init_transactions", e))?;
    blocking(|| producer.begin_transaction()).map_err(|e| unsupported("begin_transaction", e))?;
    let key = format!("{PROBE_KEY_PREFIX}{transactional_id}");
    let probe = Output {
        topic: probe_topic.to_owned(),
        key: Some(key.into_bytes()),
        value: b"probe".to_vec(),
        headers: Vec::new(),
    };
    if let Err(error) = produce::deliver_all(&producer, &[probe]).await {
        let _ = blocking(|| producer.abort_transaction(CALL_TIMEOUT));
        return Err(unsupported(
            "producing the probe record",
            error.into_kafka(),
        ));
    }
    if let Err(error) = blocking(|| producer.commit_transaction(CALL_TIMEOUT)) {
        let _ = blocking(|| producer.abort_transaction(CALL_TIMEOUT));
        return Err(unsupported("commit_transaction (EndTxn)", error));
    }
    Ok(producer)
}

/// Opens the transaction of a round.
pub fn begin(producer: &OutputProducer, transactional_id: &str) -> Result<(), TxnError> {
    blocking(|| producer.begin_transaction())
        .map_err(|e| classify(producer, transactional_id, "begin", e))
}

/// Adds the round's input offsets to the transaction and commits it; the outputs were produced and
/// acknowledged inside it already. On a non-fatal error the transaction is aborted.
pub fn commit(
    producer: &OutputProducer,
    transactional_id: &str,
    offsets: &TopicPartitionList,
    group: &ConsumerGroupMetadata,
) -> Result<(), TxnError> {
    blocking(|| producer.send_offsets_to_transaction(offsets, group, CALL_TIMEOUT))
        .and_then(|()| blocking(|| producer.commit_transaction(CALL_TIMEOUT)))
        .map_err(|e| abort(producer, transactional_id, "commit", e))
}

/// Aborts the open transaction after `error` at `step`, and says what the pipeline must do next. An abort
/// that fails itself leaves the producer in a state no later call can leave: it is reported as fatal, so the
/// producer is replaced.
pub fn abort(
    producer: &OutputProducer,
    transactional_id: &str,
    step: &'static str,
    error: KafkaError,
) -> TxnError {
    let failure = classify(producer, transactional_id, step, error);
    if matches!(failure, TxnError::Aborted { .. }) {
        if let Err(error) = blocking(|| producer.abort_transaction(CALL_TIMEOUT)) {
            return match classify(producer, transactional_id, "abort", error) {
                TxnError::Aborted { step, source } => TxnError::Fatal {
                    transactional_id: transactional_id.to_owned(),
                    step,
                    source,
                },
                other => other,
            };
        }
    }
    failure
}

/// Creates a producer for `transactional_id` and initialises it: the broker aborts what an earlier producer
/// of the id left open and fences it. Used to replace a producer that failed fatally, or whose transaction
/// the broker aborted for its age.
pub fn reopen(kafka: &KafkaConfig, transactional_id: &str) -> Result<OutputProducer, TxnError> {
    let fatal = |step, source| TxnError::Fatal {
        transactional_id: transactional_id.to_owned(),
        step,
        source,
    };
    let producer = produce::configured(kafka, &transactional_settings(transactional_id))
        .map_err(|e| fatal("creating the producer", e))?;
    blocking(|| producer.init_transactions(CALL_TIMEOUT))
        .map_err(|e| classify(&producer, transactional_id, "init_transactions", e))?;
    Ok(producer)
}

/// The transaction timeout in force: `[kafka.client]`'s `transaction.timeout.ms` if set, else linegate's.
/// The broker aborts a transaction open longer than this and bumps the producer's epoch, which librdkafka
/// then reports exactly as it reports a fencing by another process.
pub fn transaction_timeout(kafka: &KafkaConfig) -> Duration {
    let ms = kafka
        .client
        .get("transaction.timeout.ms")
        .map_or(TRANSACTION_TIMEOUT_MS, String::as_str);
    Duration::from_millis(ms.parse().unwrap_or(60_000))
}

fn transactional_settings(transactional_id: &str) -> [(&str, &str); 2] {
    [
        ("transactional.id", transactional_id),
        ("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS),
    ]
}

/// What an error means for the pipeline. librdkafka reports a fatal state of the producer in many ways (a
/// delivery failing with `Fatal`, a transactional call's flag); the producer's own fatal error says which it
/// was, so a fenced producer is told apart from one that merely needs replacing.
fn classify(
    producer: &OutputProducer,
    transactional_id: &str,
    step: &'static str,
    source: KafkaError,
) -> TxnError {
    let code = match &source {
        KafkaError::Transaction(error) => Some(error.code()),
        other => other.rdkafka_error_code(),
    };
    let underlying = producer.client().fatal_error().map(|(code, _)| code);
    let fatal = underlying.is_some()
        || match &source {
            KafkaError::Transaction(error) => error.is_fatal(),
            _ => matches!(code, Some(RDKafkaErrorCode::Fatal)),
        };
    let fenced = [code, underlying].into_iter().flatten().any(|code| {
        matches!(
            code,
            RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::Fenced
        )
    });
    let transactional_id = transactional_id.to_owned();
    if fenced {
        TxnError::Fenced {
            transactional_id,
            step,
            source,
        }
    } else if fatal {
        TxnError::Fatal {
            transactional_id,
            step,
            source,
        }
    } else {
        TxnError::Aborted { step, source }
    }
}

/// Runs a blocking librdkafka call without stalling the other tasks of the runtime.
fn blocking<T>(call: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(call)
}
