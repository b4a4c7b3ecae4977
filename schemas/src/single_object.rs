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

    /// Appends the Avro body to `out` straight from the message, without building an Avro `Value` first
    /// (that tree, its validation and apache-avro's per-record field map cost more than anything else the
    /// bridge did per record; docs/dev/measurements.md).
    /// `Ok(false)` when this kind has no such path or the direct writer could not take the value: the
    /// caller then takes the `Value` path, which stays the reference and words any error.
    fn write_direct(&self, _out: &mut Vec<u8>) -> Result<bool, SchemaError> {
        Ok(false)
    }

    /// Encodes the Avro binary body alone, for wire formats that carry the schema id elsewhere
    /// (e.g. the Confluent registry format).
    fn to_datum(&self) -> Result<Vec<u8>, SchemaError> {
        let mut direct = Vec::with_capacity(256);
        if self.write_direct(&mut direct)? {
            return Ok(direct);
        }
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
    let fingerprint = Contract::global().current(M::KIND).fingerprint;
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
    out.extend_from_slice(&fingerprint);
    if message.write_direct(&mut out)? {
        return Ok(out);
    }
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
    let too_long = |e: crate::lengths::LengthError| SchemaError::Avro {
        kind: M::KIND.name(),
        reason: e.to_string(),
    };
    if contract.current(M::KIND).is(&fingerprint) {
        crate::lengths::check(&contract.current(M::KIND).schema, &bytes[HEADER_LEN..])
            .map_err(too_long)?;
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
    crate::lengths::check(writer, body).map_err(too_long)?;
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

/// The text of a uuid field, for the check the direct writer does not make.
trait UuidText {
    fn uuid_text(&self) -> Option<&str>;
}

impl UuidText for String {
    fn uuid_text(&self) -> Option<&str> {
        Some(self)
    }
}

impl UuidText for Option<String> {
    fn uuid_text(&self) -> Option<&str> {
        self.as_deref()
    }
}

/// Writes `message`'s body with apache-avro's schema-aware serializer, which walks the serde form in field
/// order. It is given no named types, so a schema that refers to one by name makes it fail, and the caller
/// falls back; `tests/contract.rs` holds its bytes to the reference path for every kind and symbol.
fn write_serde<M: serde::Serialize>(
    kind: MessageKind,
    message: &M,
    out: &mut Vec<u8>,
) -> Result<bool, SchemaError> {
    let schema = &Contract::global().current(kind).schema;
    let start = out.len();
    match apache_avro::write_avro_datum_ref(schema, message, out) {
        Ok(_) => Ok(true),
        Err(_) => {
            out.truncate(start);
            Ok(false)
        }
    }
}

/// The uuid check of the `Value` path (the direct writer takes any string for a uuid), in its words.
fn check_uuid(kind: MessageKind, field: &str, text: Option<&str>) -> Result<(), SchemaError> {
    match text {
        Some(text) if apache_avro::Uuid::parse_str(text).is_err() => {
            let value = Value::Record(vec![(field.to_owned(), Value::String(text.to_owned()))]);
            crate::cached::typed_uuids(kind, value)
                .map(drop)
                .map_err(|e| mapping(kind, e))
        }
        _ => Ok(()),
    }
}

macro_rules! serde_message {
    ($ty:ty, $kind:expr, uuids: [$($uuid:ident),*]) => {
        impl $ty {
            /// Its top-level uuid fields, which the direct writer checks (held to the schema by a test).
            #[doc(hidden)]
            pub const UUID_FIELDS: &'static [&'static str] = &[$(stringify!($uuid)),*];

            fn check_uuids(&self) -> Result<(), SchemaError> {
                $(check_uuid($kind, stringify!($uuid), UuidText::uuid_text(&self.$uuid))?;)*
                Ok(())
            }
        }

        impl AvroMessage for $ty {
            const KIND: MessageKind = $kind;
            fn write_direct(&self, out: &mut Vec<u8>) -> Result<bool, SchemaError> {
                self.check_uuids()?;
                write_serde(Self::KIND, self, out)
            }
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

serde_message!(InspectionEvent, MessageKind::InspectionEvent, uuids: [event_id]);
serde_message!(QualityEvent, MessageKind::QualityEvent, uuids: [event_id, source_event_id]);
serde_message!(AuditEvent, MessageKind::AuditEvent, uuids: [event_id]);
serde_message!(SystemEvent, MessageKind::SystemEvent, uuids: [event_id]);
serde_message!(ManufacturingEvent, MessageKind::ManufacturingEvent, uuids: [event_id]);
serde_message!(InferenceEvent, MessageKind::InferenceEvent, uuids: [event_id]);

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
    #[serde(default)]
    outbox_epoch: String,
}

impl AvroMessage for EdgeEvent {
    const KIND: MessageKind = MessageKind::EdgeEvent;

    /// The derived serde form fits the schema: `EdgePayload`'s variants are the union's branches in order.
    fn write_direct(&self, out: &mut Vec<u8>) -> Result<bool, SchemaError> {
        check_uuid(Self::KIND, "event_id", Some(&self.event_id))?;
        match &self.payload {
            EdgePayload::Inspection(event) => event.check_uuids()?,
            EdgePayload::System(event) => event.check_uuids()?,
            EdgePayload::Manufacturing(event) => event.check_uuids()?,
            EdgePayload::Inference(event) => event.check_uuids()?,
        }
        write_serde(Self::KIND, self, out)
    }

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
            (
                "outbox_epoch".into(),
                Value::String(self.outbox_epoch.clone()),
            ),
            ("payload".into(), payload),
        ]);
        crate::cached::typed_uuids(Self::KIND, value).map_err(|e| mapping(Self::KIND, e))
    }

    fn from_avro(value: Value) -> Result<Self, SchemaError> {
        let Value::Record(mut fields) = value else {
            return Err(mapping(Self::KIND, "the body is not a record"));
        };
        // The payload is taken out of the record, not cloned; the envelope reads the rest.
        let taken = fields
            .iter_mut()
            .find(|(name, _)| name == "payload")
            .map(|(_, value)| std::mem::replace(value, Value::Null));
        let payload = match taken {
            Some(Value::Union(branch, inner)) => {
                let inner = *inner;
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
            Some(other) => {
                return Err(mapping(
                    Self::KIND,
                    format!("unknown payload branch {other:?}"),
                ))
            }
            None => return Err(mapping(Self::KIND, "the payload field is missing")),
        };
        let e: Envelope =
            apache_avro::from_value(&Value::Record(fields)).map_err(|e| mapping(Self::KIND, e))?;
        Ok(EdgeEvent {
            event_type: e.event_type,
            event_id: e.event_id,
            timestamp: e.timestamp,
            trace_id: e.trace_id,
            source_service: e.source_service,
            schema_version: e.schema_version,
            station_id: e.station_id,
            seq: e.seq,
            outbox_epoch: e.outbox_epoch,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct writer checks the uuid fields its macro lists; they must be the schema's.
    #[test]
    fn the_listed_uuid_fields_are_the_schemas() {
        let listed = [
            (MessageKind::InspectionEvent, InspectionEvent::UUID_FIELDS),
            (MessageKind::QualityEvent, QualityEvent::UUID_FIELDS),
            (MessageKind::AuditEvent, AuditEvent::UUID_FIELDS),
            (MessageKind::SystemEvent, SystemEvent::UUID_FIELDS),
            (
                MessageKind::ManufacturingEvent,
                ManufacturingEvent::UUID_FIELDS,
            ),
            (MessageKind::InferenceEvent, InferenceEvent::UUID_FIELDS),
            (MessageKind::EdgeEvent, &["event_id"]),
        ];
        for (kind, fields) in listed {
            assert_eq!(crate::cached::uuid_fields(kind), fields, "{kind:?}");
        }
    }
}
