//! The `[config_push]` section of the local file: whom to trust for pushed configs and where to find them.

use std::path::PathBuf;

use ed25519_dalek::VerifyingKey;
use linegate_common::conf::{ConfigError, ConfigFile};
use serde::Deserialize;

use crate::signed;

/// The `[config_push]` section of the local file: whom to trust and where to look.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPushConfig {
    /// The centre's public key, base64 (the text of the `.pub` file `linegate-bridge config keygen` writes).
    pub public_key: Option<String>,
    /// Or the path of that `.pub` file.
    pub public_key_file: Option<PathBuf>,
    /// The compacted topic of pushed configs.
    #[serde(default = "default_topic")]
    pub topic: String,
}

fn default_topic() -> String {
    linegate_common::topics::STATION_CONFIG.to_owned()
}

impl ConfigPushConfig {
    /// Checks that exactly one key is given and that it is an ed25519 public key.
    pub(crate) fn validate(&self, file: &ConfigFile) -> Result<(), ConfigError> {
        match (&self.public_key, &self.public_key_file) {
            (Some(_), Some(_)) => {
                return Err(file.invalid(
                    "config_push.public_key_file",
                    "set public_key or public_key_file, not both",
                ))
            }
            (None, None) => {
                return Err(file.invalid(
                    "config_push.public_key",
                    "set public_key (base64) or public_key_file: the edge refuses pushes it cannot verify",
                ))
            }
            _ => {}
        }
        if let Err(error) = self.trusted_key() {
            let key = if self.public_key.is_some() {
                "config_push.public_key"
            } else {
                "config_push.public_key_file"
            };
            return Err(file.invalid(key, error.to_string()));
        }
        if self.topic.is_empty() {
            return Err(file.invalid("config_push.topic", "must name a topic"));
        }
        Ok(())
    }

    /// The public key pushes must be signed with.
    pub fn trusted_key(&self) -> Result<VerifyingKey, signed::SignedConfigError> {
        match (&self.public_key, &self.public_key_file) {
            (Some(text), _) => signed::public_key_from_base64(text, "[config_push] public_key"),
            (None, Some(path)) => signed::read_public_key(path),
            (None, None) => Err(signed::SignedConfigError::BadKey {
                what: "[config_push]".to_owned(),
                reason: "no key configured".to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use linegate_common::conf::ConfigFile;

    use crate::EdgeConfig;

    fn load(push_section: &str) -> Result<(), String> {
        let text = format!(
            "[station]\nid = \"ST-01\"\ndata_dir = \"/tmp/x\"\n[kafka]\nbootstrap = \"k:9092\"\n[mqtt]\nhost = \"h\"\nclient_id = \"c\"\ntopics = [\"t\"]\n[config_push]\n{push_section}"
        );
        let file = ConfigFile::from_text(Path::new("edge.toml"), &text, |_| None).unwrap();
        let config: EdgeConfig = file.parse().map_err(|e| e.to_string())?;
        config.validate(&file).map_err(|e| e.to_string())
    }

    #[test]
    fn a_valid_public_key_loads() {
        load("public_key = \"7cxbN10w1+RjxXfOB02gAXYgsvHfNv45d4L1CUWIYdE=\"\n").unwrap();
    }

    #[test]
    fn a_bad_or_missing_key_is_an_error_at_its_line() {
        let error = load("public_key = \"AAAA\"\n").unwrap_err();
        assert!(
            error.starts_with("edge.toml:11: key `config_push.public_key`: [config_push] public_key: not an ed25519 key"),
            "{error}"
        );
        let error = load("topic = \"x\"\n").unwrap_err();
        assert!(
            error.starts_with("edge.toml:10: key `config_push.public_key`: set public_key"),
            "{error}"
        );
        let error = load("public_key_file = \"/nonexistent/key.pub\"\n").unwrap_err();
        assert!(
            error.contains("config_push.public_key_file")
                && error.contains("cannot read the key file"),
            "{error}"
        );
    }
}
