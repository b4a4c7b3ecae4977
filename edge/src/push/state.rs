//! The decision about one pushed record, and the last-known-good config on disk.
//!
//! A record is applied only when all of these hold, checked in this order (the first failure is the reason
//! reported): it is a signed-config envelope; it is signed; by the trusted key; the signature verifies; it is
//! for this station; its version is newer than the one in force; the overlay on the local file passes the
//! full config validation; it is stored on disk as last-known-good. Anything less leaves the config in force
//! untouched: a bad config never replaces a good one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use linegate_common::conf::ConfigError;
use linegate_station_config::signed::{SignedConfig, SignedConfigError};

use linegate_station_config::EdgeConfig;
use linegate_station_config::{overlay, ConfigPushConfig};

/// File name of the last-known-good pushed config under the data directory.
pub const LAST_KNOWN_GOOD: &str = "pushed-config.json";

/// What to do with one record of the station's key.
#[derive(Debug)]
pub enum Decision {
    /// Verified and valid: run `config` and keep `envelope` (call [`PushState::keep`] first).
    Apply {
        /// The overlaid config.
        config: Box<EdgeConfig>,
        /// The record, to keep as last-known-good.
        envelope: Box<SignedConfig>,
    },
    /// The record is the pushed config already in force (seen again after a restart).
    AlreadyApplied {
        /// Its envelope.
        envelope: Box<SignedConfig>,
    },
    /// Refused; the config in force stays.
    Reject {
        /// The version the record claims, when it could be read.
        version: Option<u64>,
        /// Why, for the operator.
        reason: String,
    },
}

/// The trusted key and the pushed config in force.
pub struct PushState {
    station: String,
    trusted: VerifyingKey,
    last_known_good: PathBuf,
    applied: Option<SignedConfig>,
}

impl PushState {
    /// The state of an edge with `local` as its local config and `push` as its `[config_push]`; nothing
    /// applied yet (see [`PushState::resume`]).
    pub fn new(local: &EdgeConfig, push: &ConfigPushConfig) -> Result<Self, SignedConfigError> {
        Ok(Self {
            station: local.station.id.clone(),
            trusted: push.trusted_key()?,
            last_known_good: local.station.data_dir.join(LAST_KNOWN_GOOD),
            applied: None,
        })
    }

    /// At start: the last-known-good config overlaid on `local`, if there is one and it still verifies and
    /// validates (the local file or the trusted key may have changed since). `Ok(None)`: there is none.
    pub fn resume(&mut self, local: &EdgeConfig) -> Result<Option<EdgeConfig>, String> {
        let value = match std::fs::read(&self.last_known_good) {
            Ok(value) => value,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(format!(
                    "cannot read {}: {error}",
                    self.last_known_good.display()
                ))
            }
        };
        let envelope = SignedConfig::from_json(&value).map_err(|e| e.to_string())?;
        let config = self.check(local, &envelope)?;
        self.applied = Some(envelope);
        Ok(Some(config))
    }

    /// Version of the pushed config in force; 0 when none.
    pub fn applied_version(&self) -> u64 {
        self.applied.as_ref().map_or(0, |e| e.version)
    }

    /// Decides about a record value of the station's key.
    pub fn consider(&self, local: &EdgeConfig, value: &[u8]) -> Decision {
        let envelope = match SignedConfig::from_json(value) {
            Ok(envelope) => envelope,
            Err(error) => {
                return Decision::Reject {
                    version: None,
                    reason: error.to_string(),
                }
            }
        };
        let version = Some(envelope.version);
        if self.applied.as_ref() == Some(&envelope) {
            return Decision::AlreadyApplied {
                envelope: Box::new(envelope),
            };
        }
        if let Err(error) = envelope.verify(&self.trusted) {
            return Decision::Reject {
                version,
                reason: error.to_string(),
            };
        }
        if envelope.version <= self.applied_version() {
            return Decision::Reject {
                version,
                reason: format!(
                    "version {} is not newer than version {} in force; push again (config push numbers versions itself)",
                    envelope.version,
                    self.applied_version()
                ),
            };
        }
        match self.check(local, &envelope) {
            Ok(config) => Decision::Apply {
                config: Box::new(config),
                envelope: Box::new(envelope),
            },
            Err(reason) => Decision::Reject { version, reason },
        }
    }

    /// Signature, station and validation of `envelope` over `local`.
    fn check(&self, local: &EdgeConfig, envelope: &SignedConfig) -> Result<EdgeConfig, String> {
        envelope.verify(&self.trusted).map_err(|e| e.to_string())?;
        if envelope.station_id != self.station {
            return Err(format!(
                "the config is for station `{}`, this is `{}`",
                envelope.station_id, self.station
            ));
        }
        self.overlay(local, envelope).map_err(|e| e.to_string())
    }

    fn overlay(
        &self,
        local: &EdgeConfig,
        envelope: &SignedConfig,
    ) -> Result<EdgeConfig, ConfigError> {
        let name = format!("pushed config v{}", envelope.version);
        let pushed = overlay::read_pushed(&name, &envelope.config)?;
        overlay::apply(local, &pushed)
    }

    /// The config to run after SIGHUP re-read the local file: the pushed config in force overlaid on the new
    /// `local`, or `local` alone when none is in force.
    pub fn reapply(&self, local: EdgeConfig) -> Result<EdgeConfig, ConfigError> {
        match &self.applied {
            Some(envelope) => self.overlay(&local, envelope),
            None => Ok(local),
        }
    }

    /// Stores `envelope` as last-known-good (write, fsync, rename, fsync the directory), then makes it the
    /// config in force. On error nothing changed: the previous file and config stay.
    pub fn keep(&mut self, envelope: SignedConfig) -> std::io::Result<()> {
        write_atomically(&self.last_known_good, &envelope.to_json())?;
        self.applied = Some(envelope);
        Ok(())
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("json.new");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use linegate_common::conf::ConfigFile;

    const BODY: &str = "[mqtt]\nhost = \"h\"\nclient_id = \"c\"\ntopics = [\"b\"]\n";

    fn setup(dir: &Path) -> (EdgeConfig, PushState, SigningKey) {
        let key = SigningKey::from_bytes(&[9; 32]);
        let text = format!(
            "[station]\nid = \"ST-01\"\ndata_dir = \"{}\"\n[kafka]\nbootstrap = \"k:9092\"\n[mqtt]\nhost = \"h\"\nclient_id = \"c\"\ntopics = [\"a\"]\n[config_push]\npublic_key = \"{}\"\n",
            dir.display(),
            linegate_station_config::signed::public_key_text(&key.verifying_key())
        );
        let local: EdgeConfig = ConfigFile::from_text(Path::new("edge.toml"), &text, |_| None)
            .unwrap()
            .parse()
            .unwrap();
        let state = PushState::new(&local, local.config_push.as_ref().unwrap()).unwrap();
        (local, state, key)
    }

    fn reason(decision: Decision) -> String {
        match decision {
            Decision::Reject { reason, .. } => reason,
            other => panic!("not rejected: {other:?}"),
        }
    }

    #[test]
    fn a_valid_push_is_applied_kept_and_resumed_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (local, mut state, key) = setup(dir.path());
        let envelope = SignedConfig::sign("ST-01", 1, 5, BODY, &key);
        let Decision::Apply { config, envelope } = state.consider(&local, &envelope.to_json())
        else {
            panic!("not applied");
        };
        assert_eq!(config.mqtt.unwrap().topics, ["b"]);
        state.keep(*envelope.clone()).unwrap();
        assert!(matches!(
            state.consider(&local, &envelope.to_json()),
            Decision::AlreadyApplied { .. }
        ));
        let (_, mut restarted, _) = setup(dir.path());
        let resumed = restarted.resume(&local).unwrap().unwrap();
        assert_eq!(resumed.mqtt.unwrap().topics, ["b"]);
        assert_eq!(restarted.applied_version(), 1);
    }

    #[test]
    fn stale_unsigned_foreign_and_invalid_pushes_are_rejected_with_their_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (local, mut state, key) = setup(dir.path());
        state
            .keep(SignedConfig::sign("ST-01", 3, 5, BODY, &key))
            .unwrap();
        let stale = SignedConfig::sign("ST-01", 3, 6, BODY, &key);
        assert!(
            reason(state.consider(&local, &stale.to_json())).contains("not newer than version 3")
        );
        let unsigned = SignedConfig::unsigned("ST-01", 4, 6, BODY);
        assert!(reason(state.consider(&local, &unsigned.to_json())).contains("not signed"));
        let other = SignedConfig::sign("ST-01", 4, 6, BODY, &SigningKey::from_bytes(&[1; 32]));
        assert!(reason(state.consider(&local, &other.to_json())).starts_with("signed by key"));
        let elsewhere = SignedConfig::sign("ST-02", 4, 6, BODY, &key);
        assert!(
            reason(state.consider(&local, &elsewhere.to_json())).contains("for station `ST-02`")
        );
        let broken = SignedConfig::sign("ST-01", 4, 6, "[mqtt]\nhost = \"h\"\n", &key);
        assert!(reason(state.consider(&local, &broken.to_json())).starts_with("pushed config v4:"));
        assert!(reason(state.consider(&local, b"{}")).starts_with("not a signed config envelope"));
        assert_eq!(state.applied_version(), 3);
    }
}
