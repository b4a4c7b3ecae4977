//! The linegate event contract, shared by the edge and the bridge.
//!
//! It holds the Avro schemas (`avro/*.avsc`, one file per record), every released version of them
//! (`released/`), the Rust types that mirror them, and the two encodings an event takes:
//! Avro single-object encoding (on Kafka and in the edge's outbox) and CBOR (outbox rows of earlier builds).
//!
//! This crate does no I/O: schemas are compiled into the binary so that an edge that was never online
//! can still encode, and a reader finds the writer schema of any released version by its fingerprint.

mod cached;
pub mod canonical;
mod compose;
mod contract;
mod error;
mod families;
pub mod lengths;
mod single_object;
mod storage;
mod types;

pub use contract::{Contract, MessageKind, ReleasedSchema, RELEASED};
pub use error::SchemaError;
pub use families::{
    InferenceEvent, InferenceEventType, ManufacturingEvent, ManufacturingEventType, SystemEvent,
    SystemEventType,
};
pub use single_object::{decode, encode, encode_one_shot, AvroMessage, SINGLE_OBJECT_MAGIC};
pub use storage::{from_cbor, to_cbor};
pub use types::{
    AuditEvent, AuditOutcome, Defect, EdgeEvent, EdgePayload, InspectionEvent, InspectionEventType,
    QualityEvent, QualityVerdict, QualityWindow,
};

/// Semantic version of this contract, written into every envelope's `schema_version`.
pub const SCHEMA_VERSION: &str = "1.0.0";
