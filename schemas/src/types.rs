//! Rust mirrors of the Avro records. Field names and order follow the `.avsc` files exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::families::{InferenceEvent, ManufacturingEvent, SystemEvent};

/// Lifecycle step of an inspection (issue-005's `InspectionEventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InspectionEventType {
    /// The inspection was created for a chip.
    InspectionCreated,
    /// The station started inspecting.
    InspectionStarted,
    /// The inspection finished with a result; the bridge judges its quality.
    InspectionCompleted,
    /// The inspection could not be carried out.
    InspectionFailed,
    /// The station found a defect.
    DefectDetected,
    /// A quality assessment was made.
    QualityAssessed,
}

impl InspectionEventType {
    /// Every symbol, in schema order.
    pub const ALL: [InspectionEventType; 6] = [
        InspectionEventType::InspectionCreated,
        InspectionEventType::InspectionStarted,
        InspectionEventType::InspectionCompleted,
        InspectionEventType::InspectionFailed,
        InspectionEventType::DefectDetected,
        InspectionEventType::QualityAssessed,
    ];

    /// The Avro symbol, e.g. `INSPECTION_COMPLETED`.
    pub fn symbol(self) -> &'static str {
        match self {
            InspectionEventType::InspectionCreated => "INSPECTION_CREATED",
            InspectionEventType::InspectionStarted => "INSPECTION_STARTED",
            InspectionEventType::InspectionCompleted => "INSPECTION_COMPLETED",
            InspectionEventType::InspectionFailed => "INSPECTION_FAILED",
            InspectionEventType::DefectDetected => "DEFECT_DETECTED",
            InspectionEventType::QualityAssessed => "QUALITY_ASSESSED",
        }
    }
}

/// One defect found on a chip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Defect {
    /// Defect class as the station names it.
    pub defect_type: String,
    /// LOW, MEDIUM, HIGH or CRITICAL.
    pub severity: String,
    /// Classifier confidence, 0.0 to 1.0.
    pub confidence: f64,
    /// Position on the chip in the station's notation.
    pub location: String,
}

/// A lifecycle step of one chip inspection, as the station reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectionEvent {
    /// UUID, stable across resends.
    pub event_id: String,
    /// Lifecycle step.
    pub event_type: InspectionEventType,
    /// Station time of the step, epoch milliseconds (UTC).
    pub timestamp: i64,
    /// Shared by all steps of one inspection; the key on `inspection.lifecycle`.
    pub inspection_id: String,
    /// Production batch (lot).
    pub batch_id: String,
    /// Inspected chip.
    pub chip_id: String,
    /// Kind of inspection; selects the quality threshold.
    pub inspection_type: String,
    /// Station status text.
    pub status: String,
    /// Score 0.0 to 1.0, when the step carries one.
    pub quality_score: Option<f64>,
    /// Defects found; empty when none.
    #[serde(default)]
    pub defects: Vec<Defect>,
    /// Station data without a field of its own.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// The payload union of an [`EdgeEvent`]; new families join at the end, in schema order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EdgePayload {
    /// An inspection lifecycle step.
    Inspection(InspectionEvent),
    /// Something about the agent or the station that operators and auditors must see.
    System(SystemEvent),
    /// A lot or batch milestone.
    Manufacturing(ManufacturingEvent),
    /// A step of the ML inference workflow.
    Inference(InferenceEvent),
}

impl EdgePayload {
    /// The payload's own event type symbol, which the envelope repeats in `event_type`.
    pub fn event_type_symbol(&self) -> &'static str {
        match self {
            EdgePayload::Inspection(e) => e.event_type.symbol(),
            EdgePayload::System(e) => e.event_type.symbol(),
            EdgePayload::Manufacturing(e) => e.event_type.symbol(),
            EdgePayload::Inference(e) => e.event_type.symbol(),
        }
    }

    /// The payload's event id, which the envelope shares.
    pub fn event_id(&self) -> &str {
        match self {
            EdgePayload::Inspection(e) => &e.event_id,
            EdgePayload::System(e) => &e.event_id,
            EdgePayload::Manufacturing(e) => &e.event_id,
            EdgePayload::Inference(e) => &e.event_id,
        }
    }

    /// Name of the family, for routing tables and messages: `inspection`, `system`, `manufacturing` or
    /// `inference`.
    pub fn family(&self) -> &'static str {
        match self {
            EdgePayload::Inspection(_) => "inspection",
            EdgePayload::System(_) => "system",
            EdgePayload::Manufacturing(_) => "manufacturing",
            EdgePayload::Inference(_) => "inference",
        }
    }
}

/// What an edge sends: the adr-004 envelope, the station's outbox position, and the payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeEvent {
    /// Payload type, e.g. `INSPECTION_COMPLETED`.
    pub event_type: String,
    /// UUID equal to the payload's event id.
    pub event_id: String,
    /// Capture time at the edge, epoch milliseconds (UTC).
    pub timestamp: i64,
    /// Distributed trace id.
    pub trace_id: String,
    /// Producing service.
    pub source_service: String,
    /// Contract version of the producer.
    pub schema_version: String,
    /// Station that produced the event.
    pub station_id: String,
    /// Gapless, increasing outbox sequence number per station and outbox epoch (from 1).
    pub seq: i64,
    /// Identity of the outbox the seq counts in (made with the file); empty from edges of earlier builds.
    /// Dedup keys on (station, epoch, seq), so a new outbox is a new sequence.
    #[serde(default)]
    pub outbox_epoch: String,
    /// The event itself.
    pub payload: EdgePayload,
}

/// PASS or FAIL of a quality judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QualityVerdict {
    /// The score reached the threshold.
    Pass,
    /// The score was under the threshold or missing.
    Fail,
}

/// What the bridge concludes about quality: a verdict on one completed inspection, an alert when a rule
/// fires on one, or the figures of a closed window. The per-inspection fields are `None` on a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityEvent {
    /// UUID derived from what it is about (source event id, or window identity).
    pub event_id: String,
    /// `QUALITY_VERDICT`, `QUALITY_ALERT` or `QUALITY_WINDOW`.
    pub event_type: String,
    /// Event time of the judged step, or the end of the window, epoch milliseconds.
    pub timestamp: i64,
    /// Trace id of the source event (of the event that closed the window).
    pub trace_id: String,
    /// Producing service.
    pub source_service: String,
    /// Contract version of the producer.
    pub schema_version: String,
    /// Judged InspectionEvent's id.
    pub source_event_id: Option<String>,
    /// Station of the judged event or window.
    pub station_id: String,
    /// Outbox sequence number of the judged event.
    pub seq: Option<i64>,
    /// Judged inspection.
    pub inspection_id: Option<String>,
    /// Batch of the chip.
    pub batch_id: Option<String>,
    /// Judged chip.
    pub chip_id: Option<String>,
    /// Kind of inspection.
    pub inspection_type: String,
    /// Score reported by the station (the mean score on a window).
    pub quality_score: Option<f64>,
    /// Minimum passing score applied.
    pub threshold: Option<f64>,
    /// Outcome.
    pub verdict: Option<QualityVerdict>,
    /// Number of reported defects.
    pub defect_count: Option<i32>,
    /// Why the verdict, alert or figures are what they are.
    pub reason: String,
    /// The window's figures on a `QUALITY_WINDOW`.
    #[serde(default)]
    pub window: Option<QualityWindow>,
}

/// Statistics of one tumbling event-time window of one station and inspection type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityWindow {
    /// Start (inclusive), epoch milliseconds.
    pub start: i64,
    /// End (exclusive), epoch milliseconds.
    pub end: i64,
    /// Completed inspections.
    pub count: i64,
    /// Of those, failed.
    pub fail_count: i64,
    /// `fail_count / count`.
    pub fail_rate: f64,
    /// Inspections with a score.
    pub scored_count: i64,
    /// Mean score.
    pub mean_score: Option<f64>,
    /// Sample standard deviation of the score.
    pub stddev_score: Option<f64>,
    /// Lower specification limit.
    pub lsl: Option<f64>,
    /// Upper specification limit.
    pub usl: Option<f64>,
    /// Process capability.
    pub cp: Option<f64>,
    /// Process capability index.
    pub cpk: Option<f64>,
}

/// What the bridge did with an input record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuditOutcome {
    /// Fanned out to its topics.
    Accepted,
    /// Sent to the dead-letter topic.
    Rejected,
    /// Its (station_id, seq) was already handled: an edge resent it; nothing else was written (v2).
    Duplicate,
    /// Sequence numbers before it never arrived; the record itself is still handled (v2).
    Gap,
}

/// The bridge's record of handling one input record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// UUID derived from topic, partition and offset of the input.
    pub event_id: String,
    /// Handling time, epoch milliseconds.
    pub timestamp: i64,
    /// Handling service.
    pub source_service: String,
    /// Contract version of the producer.
    pub schema_version: String,
    /// Outcome.
    pub outcome: AuditOutcome,
    /// Input's event id, if decodable.
    pub subject_event_id: Option<String>,
    /// Input's event type, if decodable.
    pub event_type: Option<String>,
    /// Input's station, if decodable.
    pub station_id: Option<String>,
    /// Input's outbox sequence number, if decodable.
    pub seq: Option<i64>,
    /// Rejection reason.
    pub reason: Option<String>,
    /// Input topic.
    pub source_topic: String,
    /// Input partition.
    pub source_partition: i32,
    /// Input offset.
    pub source_offset: i64,
    /// Hex SHA-256 of the input value.
    pub payload_sha256: String,
    /// Topics written for this input, the audit topic excepted.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Chain hash of the previous audit record of the same chain; None at a chain's start and in v1 records.
    #[serde(default)]
    pub prev_audit_sha256: Option<String>,
    /// GAP: first missing seq.
    #[serde(default)]
    pub gap_first_seq: Option<i64>,
    /// GAP: last missing seq.
    #[serde(default)]
    pub gap_last_seq: Option<i64>,
}
