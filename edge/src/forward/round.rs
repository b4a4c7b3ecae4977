//! One forwarding round: a batch handed to the producer in seq order, its delivery reports, and why it
//! stopped short, told apart as a delay (Kafka away: retry) or a refusal of one event for good (set it aside).

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use super::prefetch::Prepared;

/// One batch handed to the producer: the delivery report of each queued event, in seq order, and why the
/// batch stopped short, if it did.
pub(super) struct Round {
    deliveries: Vec<(i64, DeliveryFuture)>,
    /// Sent alone, to learn whether the broker refuses this event or the batch it was in.
    pub(super) alone: bool,
    /// Why queueing stopped before the end of the batch.
    pub(super) failure: Option<Failure>,
}

/// How a round ended: the confirmed prefix, and the first event that was not confirmed, if any.
pub(super) struct RoundOutcome {
    /// Highest seq of the contiguous confirmed prefix of the round.
    pub(super) confirmed: Option<i64>,
    /// The first event of the round that was not confirmed.
    pub(super) failure: Option<Failure>,
}

/// Why an event was not confirmed.
#[derive(Debug)]
pub(super) struct Failure {
    /// The event.
    pub(super) seq: i64,
    /// Whether sending it again can help.
    pub(super) kind: FailureKind,
    /// For the log and, when it is set aside, the quarantine entry.
    pub(super) reason: String,
}

/// What a failure says about the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailureKind {
    /// Kafka away, a timeout, a full queue: sending it again later can succeed.
    Transient,
    /// This event itself will never be taken (too large for the producer, unreadable from the outbox, or
    /// refused by the broker while it was sent alone): set it aside so the rows behind it flow.
    Poison,
    /// The broker refused, for good, the batch this event was in: it or another event of the batch is to
    /// blame, which only sending it alone can tell.
    BatchRefused,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "event seq {}: {}", self.seq, self.reason)
    }
}

/// Queues `batch` in order; stops at the first event that cannot be encoded or queued, so nothing behind it
/// is sent ahead of it. `alone` marks a round of one event sent to find out which event the broker refuses.
pub(super) fn queue_round(
    producer: &FutureProducer,
    topic: &str,
    station_id: &str,
    batch: &[Prepared],
    alone: bool,
) -> Round {
    let mut deliveries = Vec::with_capacity(batch.len());
    let mut failure = None;
    for event in batch {
        let value = match &event.value {
            Ok(value) => value,
            Err(error) => {
                failure = Some(Failure {
                    seq: event.seq,
                    kind: FailureKind::Poison,
                    reason: format!("cannot be read from the outbox: {error}"),
                });
                break;
            }
        };
        let seq = event.seq.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "station_id",
                value: Some(station_id),
            })
            .insert(Header {
                key: "seq",
                value: Some(seq.as_str()),
            })
            .insert(Header {
                key: "idempotency-key",
                value: Some(event.event_id.as_str()),
            });
        let record = FutureRecord::to(topic)
            .key(station_id)
            .payload(value)
            .headers(headers);
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push((event.seq, delivery)),
            Err((error, _)) => {
                failure = Some(Failure {
                    seq: event.seq,
                    kind: queue_failure_kind(&error),
                    reason: format!("not queued: {error}"),
                });
                break;
            }
        }
    }
    Round {
        deliveries,
        alone,
        failure,
    }
}

/// A refusal by the producer itself concerns that one record (its own size check).
fn queue_failure_kind(error: &KafkaError) -> FailureKind {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidRecord) => {
            FailureKind::Poison
        }
        _ => FailureKind::Transient,
    }
}

/// A broker's refusal that no retry changes: the record batch is too large or invalid.
fn delivery_failure_kind(error: &KafkaError, alone: bool) -> FailureKind {
    match error.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidMessageSize,
        ) if alone => FailureKind::Poison,
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidMessageSize,
        ) => FailureKind::BatchRefused,
        _ => FailureKind::Transient,
    }
}

/// Waits for every delivery report of `round`; the confirmed prefix ends at the first failure, which is
/// the round's failure (an event queued later that could not be queued comes after it).
pub(super) async fn settle(round: Round) -> RoundOutcome {
    let Round {
        deliveries,
        alone,
        failure: queue_failure,
    } = round;
    let mut confirmed = None;
    let mut failure = None;
    for (seq, delivery) in deliveries {
        let refused = match delivery.await {
            Ok(Ok(_)) => None,
            Ok(Err((error, _))) => Some(Failure {
                seq,
                kind: delivery_failure_kind(&error, alone),
                reason: error.to_string(),
            }),
            Err(_) => Some(Failure {
                seq,
                kind: FailureKind::Transient,
                reason: "the producer dropped the delivery".to_owned(),
            }),
        };
        match refused {
            None if failure.is_none() => confirmed = Some(seq),
            None => {}
            Some(refused) => {
                failure.get_or_insert(refused);
            }
        }
    }
    RoundOutcome {
        confirmed,
        failure: failure.or(queue_failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: RDKafkaErrorCode) -> KafkaError {
        KafkaError::MessageProduction(code)
    }

    #[test]
    fn only_a_refusal_of_the_record_itself_sets_it_aside() {
        let too_large = error(RDKafkaErrorCode::MessageSizeTooLarge);
        assert_eq!(queue_failure_kind(&too_large), FailureKind::Poison);
        assert_eq!(
            queue_failure_kind(&error(RDKafkaErrorCode::QueueFull)),
            FailureKind::Transient
        );
        assert_eq!(
            delivery_failure_kind(&too_large, false),
            FailureKind::BatchRefused
        );
        assert_eq!(delivery_failure_kind(&too_large, true), FailureKind::Poison);
        assert_eq!(
            delivery_failure_kind(&error(RDKafkaErrorCode::MessageTimedOut), true),
            FailureKind::Transient
        );
        assert_eq!(
            delivery_failure_kind(&error(RDKafkaErrorCode::NotEnoughReplicas), true),
            FailureKind::Transient
        );
    }
}
