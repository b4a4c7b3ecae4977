//! CBOR, the storage encoding of outbox rows written by earlier edge builds (they now store the
//! single-object Avro that Kafka gets): still read after an upgrade, and by the tests that make such rows.

use serde::{de::DeserializeOwned, Serialize};

use crate::SchemaError;

/// Encodes a value for storage.
pub fn to_cbor<T: Serialize>(value: &T) -> Result<Vec<u8>, SchemaError> {
    let mut out = Vec::with_capacity(256);
    ciborium::into_writer(value, &mut out).map_err(|e| SchemaError::Cbor(e.to_string()))?;
    Ok(out)
}

/// Decodes a stored value.
pub fn from_cbor<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SchemaError> {
    ciborium::from_reader(bytes).map_err(|e| SchemaError::Cbor(e.to_string()))
}
