//! Encoders and decoders of the current schemas with their named types resolved once.
//!
//! apache-avro's one-shot functions (`Value::resolve`, `to_avro_datum`, `from_avro_datum`) resolve the
//! schema's names on every call, which made Avro the edge's and the bridge's main CPU cost
//! (docs/dev/measurements.md). These keep the resolution: a writer per thread and kind (it needs `&mut`), a shared reader
//! per kind. They handle the current schema only; older writer schemas take the one-shot path, and so does
//! any value the cached writer refuses, so that the one-shot path stays the reference for every byte
//! (`tests/contract.rs` holds the two to the same bytes).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use apache_avro::types::Value;
use apache_avro::{GenericSingleObjectReader, GenericSingleObjectWriter};

use crate::contract::{Contract, MessageKind};

thread_local! {
    static WRITERS: RefCell<HashMap<MessageKind, GenericSingleObjectWriter>> = RefCell::new(HashMap::new());
}

/// The single-object encoding of `value` (an unresolved value of `kind`'s current schema), or `None` when the
/// cached writer cannot take it and the caller should use the one-shot path.
pub(crate) fn encode(kind: MessageKind, value: &Value) -> Option<Vec<u8>> {
    WRITERS.with(|writers| {
        let mut writers = writers.borrow_mut();
        let writer = match writers.entry(kind) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let schema = &Contract::global().current(kind).schema;
                entry.insert(GenericSingleObjectWriter::new_with_capacity(schema, 1024).ok()?)
            }
        };
        let mut out = Vec::with_capacity(512);
        writer.write_value_ref(value, &mut out).ok()?;
        Some(out)
    })
}

/// Decodes a single-object message written with `kind`'s current schema (header included), or `None` when
/// the reader cannot take it and the caller should use the one-shot path, which also words the error.
pub(crate) fn decode(kind: MessageKind, bytes: &[u8]) -> Option<Value> {
    static READERS: OnceLock<HashMap<MessageKind, GenericSingleObjectReader>> = OnceLock::new();
    let readers = READERS.get_or_init(|| {
        MessageKind::ALL
            .iter()
            .filter_map(|kind| {
                let schema = Contract::global().current(*kind).schema.clone();
                Some((*kind, GenericSingleObjectReader::new(schema).ok()?))
            })
            .collect()
    });
    let mut rest = bytes;
    let value = readers.get(&kind)?.read_value(&mut rest).ok()?;
    rest.is_empty().then_some(value)
}

/// Turns the strings of `value`'s uuid fields (top level, nullable or not) into parsed UUIDs, as schema
/// resolution would: the cached writer takes any string for a uuid, so an id that is not one must be
/// refused here. The contract has uuids at the top level of its records only (`tests/contract.rs` refuses
/// a bad id of every kind that has one).
pub(crate) fn typed_uuids(kind: MessageKind, value: Value) -> Result<Value, String> {
    let uuid_fields = uuid_fields(kind);
    if uuid_fields.is_empty() {
        return Ok(value);
    }
    let Value::Record(mut fields) = value else {
        return Ok(value);
    };
    let parse = |name: &str, text: &str| {
        apache_avro::Uuid::parse_str(text)
            .map_err(|e| format!("field {name}: `{text}` is not a UUID ({e})"))
    };
    for (name, field) in fields.iter_mut() {
        if !uuid_fields.iter().any(|uuid_field| uuid_field == name) {
            continue;
        }
        match field {
            Value::String(text) => *field = Value::Uuid(parse(name, text)?),
            Value::Union(_, inner) => {
                if let Value::String(text) = inner.as_ref() {
                    **inner = Value::Uuid(parse(name, text)?);
                }
            }
            _ => {}
        }
    }
    Ok(Value::Record(fields))
}

/// Names of the top-level fields of `kind`'s current schema that are uuids, nullable or not; found once.
pub(crate) fn uuid_fields(kind: MessageKind) -> &'static [String] {
    static FIELDS: OnceLock<HashMap<MessageKind, Vec<String>>> = OnceLock::new();
    let fields = FIELDS.get_or_init(|| {
        MessageKind::ALL
            .iter()
            .map(|kind| {
                let names = match &Contract::global().current(*kind).schema {
                    apache_avro::Schema::Record(record) => record
                        .fields
                        .iter()
                        .filter(|field| match &field.schema {
                            apache_avro::Schema::Uuid => true,
                            apache_avro::Schema::Union(union) => union
                                .variants()
                                .iter()
                                .any(|v| matches!(v, apache_avro::Schema::Uuid)),
                            _ => false,
                        })
                        .map(|field| field.name.clone())
                        .collect(),
                    _ => Vec::new(),
                };
                (*kind, names)
            })
            .collect()
    });
    fields.get(&kind).map(Vec::as_slice).unwrap_or(&[])
}
