//! A station config as the centre pushes it: the config text in a signed envelope, the one format both the
//! bridge (`config push`, which signs) and the edge (which verifies before applying) use.
//!
//! On the wire (a record of the compacted topic `linegate.station.config`, key = station id) the envelope is a
//! JSON object; a missing `signature` is an unsigned push, which the edge refuses. The ed25519 signature covers
//! every other field in [`SignedConfig::signed_bytes`]: a fixed tag, then each field length-prefixed (strings)
//! or fixed-width (numbers), so no two envelopes share a byte string. JSON is only the carrier: re-encoding it
//! differently does not change what is signed.
//!
//! Key files are base64 text, one line: the private key file holds the 32-byte ed25519 seed, the public key file
//! the 32-byte public key. A key's fingerprint (`ed25519:` + the first 16 hex digits of the SHA-256 of the
//! public key) names it in envelopes, logs and `config show`; it identifies, it does not authenticate.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Format tag of the envelope and first bytes of what is signed; a new layout gets a new tag.
pub const FORMAT: &str = "linegate.signed-config.v1";

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why an envelope, a key or a key file could not be used. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SignedConfigError {
    /// The record is not a signed-config envelope at all.
    #[error("not a signed config envelope ({FORMAT}): {0}")]
    Malformed(String),
    /// The envelope has no signature.
    #[error("the config is not signed; push it with `linegate-bridge config push --key ...`")]
    Unsigned,
    /// Signed by a key other than the one trusted here.
    #[error("signed by key {signed_by}, but this station trusts key {trusted} ([config_push] public_key)")]
    UnknownKey {
        /// Fingerprint the envelope names.
        signed_by: String,
        /// Fingerprint of the trusted key.
        trusted: String,
    },
    /// The signature does not match the content for the trusted key: altered in transit or forged.
    #[error("the signature does not verify with key {trusted}: the config was altered or signed by another key")]
    BadSignature {
        /// Fingerprint of the trusted key.
        trusted: String,
    },
    /// A key file could not be read.
    #[error("{path}: cannot read the key file: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key (from a file or a config value) is not base64 of 32 bytes.
    #[error("{what}: not an ed25519 key (base64 of 32 bytes, as `linegate-bridge config keygen` writes): {reason}")]
    BadKey {
        /// Where the key came from.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A pushed station config with its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedConfig {
    /// Always [`FORMAT`].
    pub format: String,
    /// The station it is for; must equal the record key and the edge's own id.
    pub station_id: String,
    /// Increases with every push for the station; the edge applies only a version newer than its own.
    pub version: u64,
    /// When it was signed, epoch milliseconds (UTC).
    pub issued_at_ms: i64,
    /// Fingerprint of the signing key (see [`fingerprint`]).
    pub key_id: String,
    /// The station config document (TOML).
    pub config: String,
    /// Base64 ed25519 signature of [`SignedConfig::signed_bytes`]; absent when unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl SignedConfig {
    /// Signs `config` for `station_id` as `version` with `key`.
    pub fn sign(
        station_id: &str,
        version: u64,
        issued_at_ms: i64,
        config: &str,
        key: &SigningKey,
    ) -> Self {
        let mut envelope = Self::unsigned(station_id, version, issued_at_ms, config);
        envelope.key_id = fingerprint(&key.verifying_key());
        let signature = key.sign(&envelope.signed_bytes());
        envelope.signature = Some(BASE64.encode(signature.to_bytes()));
        envelope
    }

    /// An envelope without signature (for tests and for showing what an unsigned push looks like).
    pub fn unsigned(station_id: &str, version: u64, issued_at_ms: i64, config: &str) -> Self {
        Self {
            format: FORMAT.to_owned(),
            station_id: station_id.to_owned(),
            version,
            issued_at_ms,
            key_id: String::new(),
            config: config.to_owned(),
            signature: None,
        }
    }

    /// What the signature covers: the format tag, then station id, version, issue time, key id and config,
    /// strings as u64 big-endian length + UTF-8 bytes, numbers as 8 big-endian bytes.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.config.len() + 128);
        for text in [FORMAT, &self.station_id] {
            put_str(&mut out, text);
        }
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.issued_at_ms.to_be_bytes());
        put_str(&mut out, &self.key_id);
        put_str(&mut out, &self.config);
        out
    }

    /// Parses a record value.
    pub fn from_json(value: &[u8]) -> Result<Self, SignedConfigError> {
        let envelope: Self = serde_json::from_slice(value)
            .map_err(|e| SignedConfigError::Malformed(e.to_string()))?;
        if envelope.format != FORMAT {
            return Err(SignedConfigError::Malformed(format!(
                "format is `{}`",
                envelope.format
            )));
        }
        Ok(envelope)
    }

    /// The record value.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope always serializes")
    }

    /// Checks that `trusted` signed exactly this envelope.
    pub fn verify(&self, trusted: &VerifyingKey) -> Result<(), SignedConfigError> {
        let Some(signature) = self.signature.as_deref().filter(|s| !s.is_empty()) else {
            return Err(SignedConfigError::Unsigned);
        };
        let trusted_id = fingerprint(trusted);
        if self.key_id != trusted_id {
            return Err(SignedConfigError::UnknownKey {
                signed_by: if self.key_id.is_empty() {
                    "(none named)".to_owned()
                } else {
                    self.key_id.clone()
                },
                trusted: trusted_id,
            });
        }
        let bad = || SignedConfigError::BadSignature {
            trusted: trusted_id.clone(),
        };
        let bytes = BASE64.decode(signature).map_err(|_| bad())?;
        let signature = Signature::from_slice(&bytes).map_err(|_| bad())?;
        trusted
            .verify(&self.signed_bytes(), &signature)
            .map_err(|_| bad())
    }
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u64).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// `ed25519:` + the first 16 hex digits of the SHA-256 of the public key.
pub fn fingerprint(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("ed25519:{}", hex::encode(&digest[..8]))
}

/// A public key from its base64 text; `what` names where it came from in errors.
pub fn public_key_from_base64(text: &str, what: &str) -> Result<VerifyingKey, SignedConfigError> {
    let bytes = key_bytes(text, what)?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| SignedConfigError::BadKey {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

/// Reads a public key file.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, SignedConfigError> {
    public_key_from_base64(&read_key_file(path)?, &path.display().to_string())
}

/// Reads a private key file (the 32-byte seed).
pub fn read_signing_key(path: &Path) -> Result<SigningKey, SignedConfigError> {
    let bytes = key_bytes(&read_key_file(path)?, &path.display().to_string())?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// The base64 text of a private key file.
pub fn signing_key_text(key: &SigningKey) -> String {
    BASE64.encode(key.to_bytes())
}

/// The base64 text of a public key file (and of `[config_push] public_key`).
pub fn public_key_text(key: &VerifyingKey) -> String {
    BASE64.encode(key.as_bytes())
}

fn read_key_file(path: &Path) -> Result<String, SignedConfigError> {
    std::fs::read_to_string(path).map_err(|source| SignedConfigError::KeyFile {
        path: path.to_owned(),
        source,
    })
}

fn key_bytes(text: &str, what: &str) -> Result<[u8; 32], SignedConfigError> {
    let bad = |reason: String| SignedConfigError::BadKey {
        what: what.to_owned(),
        reason,
    };
    let bytes = BASE64.decode(text.trim()).map_err(|e| bad(e.to_string()))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| bad(format!("{} bytes", bytes.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_signed_envelope_verifies_after_a_json_round_trip() {
        let signed = SignedConfig::sign("ST-01", 3, 1_700_000_000_000, "[mqtt]\n", &key(1));
        let back = SignedConfig::from_json(&signed.to_json()).unwrap();
        assert_eq!(back, signed);
        back.verify(&key(1).verifying_key()).unwrap();
    }

    #[test]
    fn any_changed_field_breaks_the_signature() {
        let signed = SignedConfig::sign("ST-01", 3, 1_700_000_000_000, "[mqtt]\n", &key(1));
        let trusted = key(1).verifying_key();
        let altered = [
            SignedConfig {
                station_id: "ST-02".into(),
                ..signed.clone()
            },
            SignedConfig {
                version: 4,
                ..signed.clone()
            },
            SignedConfig {
                issued_at_ms: 1,
                ..signed.clone()
            },
            SignedConfig {
                config: "[mqtt]\n ".into(),
                ..signed
            },
        ];
        for envelope in altered {
            let error = envelope.verify(&trusted).unwrap_err();
            assert!(
                matches!(error, SignedConfigError::BadSignature { .. }),
                "{error}"
            );
        }
    }

    #[test]
    fn field_boundaries_are_part_of_what_is_signed() {
        let a = SignedConfig::unsigned("ST-0", 1, 2, "1x");
        let b = SignedConfig::unsigned("ST-01", 1, 2, "x");
        assert_ne!(a.signed_bytes(), b.signed_bytes());
    }

    #[test]
    fn unsigned_and_foreign_keys_are_refused_with_their_reason() {
        let trusted = key(1).verifying_key();
        let unsigned = SignedConfig::unsigned("ST-01", 1, 2, "x");
        assert!(matches!(
            unsigned.verify(&trusted),
            Err(SignedConfigError::Unsigned)
        ));
        let foreign = SignedConfig::sign("ST-01", 1, 2, "x", &key(2));
        let error = foreign.verify(&trusted).unwrap_err().to_string();
        assert!(error.starts_with("signed by key ed25519:"), "{error}");
        let forged = SignedConfig {
            key_id: fingerprint(&trusted),
            ..foreign
        };
        assert!(matches!(
            forged.verify(&trusted),
            Err(SignedConfigError::BadSignature { .. })
        ));
    }

    #[test]
    fn keys_survive_their_text_form() {
        let signing = key(7);
        let text = public_key_text(&signing.verifying_key());
        let public = public_key_from_base64(&text, "test").unwrap();
        assert_eq!(fingerprint(&public), fingerprint(&signing.verifying_key()));
        let error = public_key_from_base64("AAAA", "edge.toml key")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("edge.toml key: not an ed25519 key"),
            "{error}"
        );
    }

    #[test]
    fn another_format_is_malformed() {
        let mut envelope = SignedConfig::unsigned("ST-01", 1, 2, "x");
        envelope.format = "v0".into();
        assert!(matches!(
            SignedConfig::from_json(&envelope.to_json()),
            Err(SignedConfigError::Malformed(_))
        ));
    }
}
