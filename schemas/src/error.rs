//! Errors of the event contract: each names the message kind and what did not fit.

/// Why an event could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A bundled .avsc file is broken; this is a build defect, never an input problem.
    #[error("bundled schema {name} is invalid: {reason}")]
    BadBundledSchema {
        /// Name of the schema file.
        name: String,
        /// What did not fit.
        reason: String,
    },
    /// The bytes do not start with the Avro single-object marker C3 01.
    #[error("not an Avro single-object message: expected marker C3 01, found {found}")]
    NotSingleObject {
        /// The first bytes, hex.
        found: String,
    },
    /// The writer's fingerprint is not a released version of the expected message kind.
    #[error("unknown writer schema fingerprint {fingerprint} for {kind}: the producer uses a schema this build does not know")]
    UnknownFingerprint {
        /// The message kind.
        kind: &'static str,
        /// The writer fingerprint, hex.
        fingerprint: String,
    },
    /// A schema given as text (e.g. fetched from a schema registry by id) is not valid Avro, or is none of
    /// the released or current versions of this build's contract.
    #[error("not a schema of this contract: {reason}")]
    UnknownSchema {
        /// What did not fit.
        reason: String,
    },
    /// The body does not decode with the writer schema or does not resolve to the reader schema.
    #[error("{kind} body does not decode: {reason}")]
    Avro {
        /// The message kind.
        kind: &'static str,
        /// What did not fit.
        reason: String,
    },
    /// A value does not fit the schema of its message kind.
    #[error("{kind} does not fit its schema: {reason}")]
    Mapping {
        /// The message kind.
        kind: &'static str,
        /// What did not fit.
        reason: String,
    },
    /// CBOR storage encoding failed.
    #[error("CBOR storage encoding failed: {0}")]
    Cbor(String),
}
