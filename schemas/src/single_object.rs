//! Avro single-object encoding: `C3 01`, the 8-byte little-endian CRC-64-AVRO fingerprint of the
//! writer schema, then the Avro binary body. No registry is needed: the reader finds the writer
//! schema among the released versions by fingerprint and resolves it to the current schema.

use apache_avro::types::Value;
use serde::Deserialize;

use crate::contract::{Contract, MessageKind};
use crate::families::{InferenceEvent, ManufacturingEvent, SystemEvent};
use crate::types::{AuditEvent, EdgeEvent, EdgePayload, InspectionEvent, QualityEvent};
use crate::SchemaError;

/// The two marker bytes every single-object message starts with.
pub const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;

/// A message of the contract that converts to and from an Avro value of its schema.
pub trait AvroMessage: Sized {
    /// Which schema the message is written with.
    const KIND: MessageKind;
    /// Converts to an (unresolved) Avro value.
    fn to_avro(&self) -> Result<Value, SchemaError>;
    /// Converts from a value already resolved to the current schema.
    fn from_avro(value: Value) -> Result<Self, SchemaError>;

    /// Encodes the Avro binary body alone, for wire formats that carry the schema id elsewhere
    /// (e.g. the Confluent registry format).
    fn to_datum(&self) -> Result<Vec<u8>, SchemaError> {
        let value = self.to_avro()?;
        if let Some(mut encoded) = crate::cached::encode(Self::KIND, &value) {
            encoded.drain(..HEADER_LEN);
            return Ok(encoded);
        }
        one_shot_datum(Self::KIND, value)
    }
}

/// The reference encoding: resolves `value` against the current schema and encodes it, all from scratch.
fn one_shot_datum(kind: MessageKind, value: Value) -> Result<Vec<u8>, SchemaError> {
    let schema = &Contract::global().current(kind).schema;
    let value = value.resolve(schema).map_err(|e| mapping(kind, e))?;
    apache_avro::to_avro_datum(schema, value).map_err(|e| mapping(kind, e))
}

/// Encodes `message` in single-object encoding with the current schema of its kind.
pub fn encode<M: AvroMessage>(message: &M) -> Result<Vec<u8>, SchemaError> {
    let value = message.to_avro()?;
    if let Some(encoded) = crate::cached::encode(M::KIND, &value) {
        return Ok(encoded);
    }
    encode_one_shot(M::KIND, value)
}

/// [`encode`] by the reference path alone; public for the test that holds the cached path to it.
#[doc(hidden)]
pub fn encode_one_shot(kind: MessageKind, value: Value) -> Result<Vec<u8>, SchemaError> {
    let fingerprint = Contract::global().current(kind).fingerprint;
    let body = one_shot_datum(kind, value)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
    out.extend_from_slice(&fingerprint);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a single-object message of kind `M`, written with any released version of its schema.
pub fn decode<M: AvroMessage>(bytes: &[u8]) -> Result<M, SchemaError> {
    if bytes.len() < HEADER_LEN || bytes[..2] != SINGLE_OBJECT_MAGIC {
        let found = bytes
            .iter()
            .take(2)
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(SchemaError::NotSingleObject {
            found: if found.is_empty() {
                "nothing".into()
            } else {
                found
            },
        });
    }
    let fingerprint: [u8; 8] = bytes[2..HEADER_LEN].try_into().expect("slice of 8 bytes");
    let contract = Contract::global();
    if fingerprint == contract.current(M::KIND).fingerprint {
        if let Some(value) = crate::cached::decode(M::KIND, bytes) {
            return M::from_avro(value);
        }
    }
    let writer =
        contract
            .writer(M::KIND, &fingerprint)
            .ok_or_else(|| SchemaError::UnknownFingerprint {
                kind: M::KIND.name(),
                fingerprint: fingerprint.iter().map(|b| format!("{b:02x}")).collect(),
            })?;
    let mut body = &bytes[HEADER_LEN..];
    let reader = &contract.current(M::KIND).schema;
    let value = apache_avro::from_avro_datum(writer, &mut body, Some(reader)).map_err(|e| {
        SchemaError::Avro {
            kind: M::KIND.name(),
            reason: e.to_string(),
        }
    })?;
    if !body.is_empty() {
        return Err(SchemaError::Avro {
            kind: M::KIND.name(),
            reason: format!("{} trailing bytes after the body", body.len()),
        });
    }
    M::from_avro(value)
}

fn mapping(kind: MessageKind, e: impl std::fmt::Display) -> SchemaError {
    SchemaError::Mapping {
        kind: kind.name(),
        reason: e.to_string(),
    }
}

macro_rules! serde_message {
    ($ty:ty, $kind:expr) => {
        impl AvroMessage for $ty {
            const KIND: MessageKind = $kind;
            fn to_avro(&self) -> Result<Value, SchemaError> {
                let value = apache_avro::to_value(self).map_err(|e| mapping(Self::KIND, e))?;
                crate::cached::typed_uuids(Self::KIND, value).map_err(|e| mapping(Self::KIND, e))
            }
            fn from_avro(value: Value) -> Result<Self, SchemaError> {
                apache_avro::from_value(&value).map_err(|e| mapping(Self::KIND, e))
            }
        }
    };
}

serde_message!(InspectionEvent, MessageKind::InspectionEvent);
serde_message!(QualityEvent, MessageKind::QualityEvent);
serde_message!(AuditEvent, MessageKind::AuditEvent);
serde_message!(SystemEvent, MessageKind::SystemEvent);
serde_message!(ManufacturingEvent, MessageKind::ManufacturingEvent);
serde_message!(InferenceEvent, MessageKind::InferenceEvent);

/// The envelope fields of an [`EdgeEvent`]; the payload union is converted by hand because serde
/// has no notion of an Avro union branch.
#[derive(Deserialize)]
struct Envelope {
    event_type: String,
    event_id: String,
    timestamp: i64,
    trace_id: String,
    source_service: String,
    schema_version: String,
    station_id: String,
    seq: i64,
}

impl AvroMessage for EdgeEvent {
    const KIND: MessageKind = MessageKind::EdgeEvent;

    fn to_avro(&self) -> Result<Value, SchemaError> {
        let payload = match &self.payload {
            EdgePayload::Inspection(event) => Value::Union(0, Box::new(event.to_avro()?)),
            EdgePayload::System(event) => Value::Union(1, Box::new(event.to_avro()?)),
            EdgePayload::Manufacturing(event) => Value::Union(2, Box::new(event.to_avro()?)),
            EdgePayload::Inference(event) => Value::Union(3, Box::new(event.to_avro()?)),
        };
        let value = Value::Record(vec![
            ("event_type".into(), Value::String(self.event_type.clone())),
            ("event_id".into(), Value::String(self.event_id.clone())),
            ("timestamp".into(), Value::Long(self.timestamp)),
            ("trace_id".into(), Value::String(self.trace_id.clone())),
            (
                "source_service".into(),
                Value::String(self.source_service.clone()),
            ),
            (
                "schema_version".into(),
                Value::String(self.schema_version.clone()),
            ),
            ("station_id".into(), Value::String(self.station_id.clone())),
            ("seq".into(), Value::Long(self.seq)),
            ("payload".into(), payload),
        ]);
        crate::cached::typed_uuids(Self::KIND, value).map_err(|e| mapping(Self::KIND, e))
    }

    fn from_avro(value: Value) -> Result<Self, SchemaError> {
        let Value::Record(fields) = &value else {
            return Err(mapping(Self::KIND, "the body is not a record"));
        };
        let payload = match fields.iter().find(|(name, _)| name == "payload") {
            Some((_, Value::Union(branch, inner))) => {
                let inner = (**inner).clone();
                match branch {
                    0 => EdgePayload::Inspection(InspectionEvent::from_avro(inner)?),
                    1 => EdgePayload::System(SystemEvent::from_avro(inner)?),
                    2 => EdgePayload::Manufacturing(ManufacturingEvent::from_avro(inner)?),
                    3 => EdgePayload::Inference(InferenceEvent::from_avro(inner)?),
                    other => {
                        return Err(mapping(
                            Self::KIND,
                            format!("unknown payload branch {other}"),
                        ))
                    }
                }
            }
            Some((_, other)) => {
                return Err(mapping(
                    Self::KIND,
                    format!("unknown payload branch {other:?}"),
                ))
            }
            None => return Err(mapping(Self::KIND, "the payload field is missing")),
        };
        let e: Envelope = apache_avro::from_value(&value).map_err(|e| mapping(Self::KIND, e))?;
        Ok(EdgeEvent {
            event_type: e.event_type,
            event_id: e.event_id,
            timestamp: e.timestamp,
            trace_id: e.trace_id,
            source_service: e.source_service,
            schema_version: e.schema_version,
            station_id: e.station_id,
            seq: e.seq,
            payload,
        })
    }
}
