//! CBOR, the edge outbox's storage encoding: self-describing, so a stored row never depends on a
//! schema id or fingerprint, and a row written by an older edge still reads after an upgrade.

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
