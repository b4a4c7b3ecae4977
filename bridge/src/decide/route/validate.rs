//! What makes an EdgeEvent acceptable: ids, identity, ranges. Each failure is a typed [`Problem`] whose
//! message names the field and the value, and the [`Rejection`] around it names the event, so a dead letter
//! can be traced back to its station and outbox row without decoding it.
//!
//! Shape (JSON keys, types) is the edge's job; this module judges values and consistency, which only the
//! bridge can do for every station the same way.

use std::ops::RangeInclusive;

use linegate_schemas::{EdgeEvent, EdgePayload, InspectionEvent, SchemaError};

/// Why an input was rejected. [`Rejection::class`] becomes the DLQ's `error.class` header and the
/// `Display` text its `error.message`, so operators can filter by class and read the rest.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// The bytes are not an EdgeEvent of any released schema version.
    #[error("not a readable EdgeEvent: {0}")]
    Decode(#[source] SchemaError),
    /// The event decodes but a value is wrong.
    #[error("{problem} (event {event_id}, station {station_id}, seq {seq})")]
    Invalid {
        /// What is wrong.
        problem: Problem,
        /// Envelope event id, as sent.
        event_id: String,
        /// Envelope station id, as sent.
        station_id: String,
        /// Outbox sequence number, as sent.
        seq: i64,
    },
    /// The record is larger than the bridge takes: its outputs could exceed what Kafka accepts.
    #[error("the record is {bytes} bytes, more than the {max} the bridge takes")]
    TooLarge {
        /// Size of the record value.
        bytes: usize,
        /// The bound.
        max: usize,
    },
    /// The event counts in an outbox epoch its station has replaced (a newer outbox sends now).
    #[error("station {station_id} seq {seq} is from outbox epoch `{epoch}`, which the station replaced; a second PC with this station id, or an old outbox sending late")]
    StaleEpoch {
        /// The event's epoch.
        epoch: String,
        /// Its station.
        station_id: String,
        /// Its seq.
        seq: i64,
    },
    /// An output of an accepted event could not be encoded: a defect of this build, not of the input. The
    /// input still goes to the DLQ so that it is not lost and can be replayed after a fix.
    #[error("cannot encode the {output} output: {source}")]
    Encode {
        /// Which output (`lifecycle`, `quality`, `audit`).
        output: &'static str,
        /// Why the contract refused it.
        #[source]
        source: SchemaError,
    },
}

impl Rejection {
    /// The `error.class` header: `decode`, `validation`, `size`, `stale` or `encode`.
    pub fn class(&self) -> &'static str {
        match self {
            Rejection::Decode(_) => "decode",
            Rejection::Invalid { .. } => "validation",
            Rejection::TooLarge { .. } => "size",
            Rejection::StaleEpoch { .. } => "stale",
            Rejection::Encode { .. } => "encode",
        }
    }

    /// The validation problem, if that is why the input was rejected.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Rejection::Invalid { problem, .. } => Some(problem),
            _ => None,
        }
    }

    fn invalid(event: &EdgeEvent, problem: Problem) -> Self {
        Rejection::Invalid {
            problem,
            event_id: event.event_id.clone(),
            station_id: event.station_id.clone(),
            seq: event.seq,
        }
    }
}

/// One validation rule that an event broke. The messages quote the offending value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    /// The envelope's event id does not parse as a UUID.
    #[error("event_id `{0}` is not a UUID")]
    EventIdNotUuid(String),
    /// The payload carries another event id than the envelope.
    #[error("payload event_id `{payload}` differs from the envelope's")]
    PayloadEventIdDiffers {
        /// The payload's event id.
        payload: String,
    },
    /// The envelope's event type is not the payload's.
    #[error("envelope event_type `{envelope}` differs from the payload's `{payload}`")]
    EventTypeDiffers {
        /// The envelope's event type.
        envelope: String,
        /// The payload's event type symbol.
        payload: &'static str,
    },
    /// No station id: the event cannot be attributed.
    #[error("station_id is empty")]
    EmptyStationId,
    /// The record key is not the station id, so the record may sit in another station's partition and
    /// lose its order.
    #[error("record key `{0}` is not the station_id")]
    KeyNotStation(String),
    /// The outbox sequence number starts at 1.
    #[error("seq {0} is not a positive outbox sequence number")]
    SeqNotPositive(i64),
    /// A required identifier is empty or blank.
    #[error("{0} is empty")]
    EmptyField(&'static str),
    /// The quality score is not a number within 0..1.
    #[error("quality_score {0} is outside 0..1")]
    ScoreOutOfRange(f64),
    /// A defect confidence is not a number within 0..1.
    #[error("defects[{index}].confidence {value} is outside 0..1")]
    ConfidenceOutOfRange {
        /// Position of the defect in the list.
        index: usize,
        /// The confidence sent.
        value: f64,
    },
    /// An inference confidence is not a number within 0..1.
    #[error("confidence {0} is outside 0..1")]
    InferenceConfidenceOutOfRange(f64),
    /// A manufacturing quantity is negative.
    #[error("quantity {0} is negative")]
    NegativeQuantity(i64),
    /// An inspection's event time is outside what `[quality] event_time_max_ahead_secs` /
    /// `event_time_max_age_hours` accept at handling time (never before 1970).
    #[error("event time {timestamp} is outside the accepted {first}..={last} (epoch ms; [quality] event_time_max_ahead_secs, event_time_max_age_hours)")]
    EventTimeOutOfRange {
        /// The payload's timestamp.
        timestamp: i64,
        /// The oldest accepted.
        first: i64,
        /// The latest accepted.
        last: i64,
    },
    /// A defect severity is not one of the documented four.
    #[error("defects[{index}].severity `{value}` is not LOW, MEDIUM, HIGH or CRITICAL")]
    UnknownSeverity {
        /// Position of the defect in the list.
        index: usize,
        /// The severity sent.
        value: String,
    },
}

const SEVERITIES: [&str; 4] = ["LOW", "MEDIUM", "HIGH", "CRITICAL"];

fn is_unit_score(value: f64) -> bool {
    value.is_finite() && (0.0..=1.0).contains(&value)
}

/// Checks an event; `key` is the record key, which the edge sets to the station id, and `times` the event
/// times accepted now. Returns the first rule broken, in the order of the envelope first, then the payload.
pub(super) fn validate(
    event: &EdgeEvent,
    key: Option<&[u8]>,
    times: &RangeInclusive<i64>,
) -> Result<(), Rejection> {
    check(event, key, times).map_err(|problem| Rejection::invalid(event, problem))
}

fn check(
    event: &EdgeEvent,
    key: Option<&[u8]>,
    times: &RangeInclusive<i64>,
) -> Result<(), Problem> {
    if uuid::Uuid::parse_str(&event.event_id).is_err() {
        return Err(Problem::EventIdNotUuid(event.event_id.clone()));
    }
    // Equal to a valid UUID, so the payload's id is a UUID too.
    if event.payload.event_id() != event.event_id {
        return Err(Problem::PayloadEventIdDiffers {
            payload: event.payload.event_id().to_owned(),
        });
    }
    if event.payload.event_type_symbol() != event.event_type {
        return Err(Problem::EventTypeDiffers {
            envelope: event.event_type.clone(),
            payload: event.payload.event_type_symbol(),
        });
    }
    if event.station_id.trim().is_empty() {
        return Err(Problem::EmptyStationId);
    }
    if let Some(key) = key {
        if key != event.station_id.as_bytes() {
            return Err(Problem::KeyNotStation(
                String::from_utf8_lossy(key).into_owned(),
            ));
        }
    }
    if event.seq < 1 {
        return Err(Problem::SeqNotPositive(event.seq));
    }
    // Inspections only: their event time drives the quality windows; system reports (a config applied, a
    // result set aside) are worth keeping whatever the station's clock says.
    if let EdgePayload::Inspection(inspection) = &event.payload {
        if !times.contains(&inspection.timestamp) {
            return Err(Problem::EventTimeOutOfRange {
                timestamp: inspection.timestamp,
                first: *times.start(),
                last: *times.end(),
            });
        }
    }
    match &event.payload {
        EdgePayload::Inspection(inspection) => check_inspection(inspection),
        EdgePayload::Manufacturing(milestone) => {
            non_empty(&[("batch_id", &milestone.batch_id)])?;
            match milestone.quantity {
                Some(quantity) if quantity < 0 => Err(Problem::NegativeQuantity(quantity)),
                _ => Ok(()),
            }
        }
        EdgePayload::Inference(step) => {
            non_empty(&[
                ("inspection_id", &step.inspection_id),
                ("model_name", &step.model_name),
            ])?;
            match step.confidence {
                Some(confidence) if !is_unit_score(confidence) => {
                    Err(Problem::InferenceConfidenceOutOfRange(confidence))
                }
                _ => Ok(()),
            }
        }
        EdgePayload::System(report) => non_empty(&[("message", &report.message)]),
    }
}

fn non_empty(fields: &[(&'static str, &String)]) -> Result<(), Problem> {
    match fields.iter().find(|(_, value)| value.trim().is_empty()) {
        Some((field, _)) => Err(Problem::EmptyField(field)),
        None => Ok(()),
    }
}

fn check_inspection(inspection: &InspectionEvent) -> Result<(), Problem> {
    non_empty(&[
        ("inspection_id", &inspection.inspection_id),
        ("chip_id", &inspection.chip_id),
    ])?;
    if let Some(score) = inspection.quality_score {
        if !is_unit_score(score) {
            return Err(Problem::ScoreOutOfRange(score));
        }
    }
    for (index, defect) in inspection.defects.iter().enumerate() {
        if !is_unit_score(defect.confidence) {
            return Err(Problem::ConfidenceOutOfRange {
                index,
                value: defect.confidence,
            });
        }
        if !SEVERITIES.contains(&defect.severity.as_str()) {
            return Err(Problem::UnknownSeverity {
                index,
                value: defect.severity.clone(),
            });
        }
    }
    Ok(())
}
