//! Config files: TOML with environment interpolation, parsed into typed structs.
//!
//! `${VAR}` takes the variable (an error if unset), `${VAR:-default}` falls back when unset or empty, `$$` is a
//! literal `$`. Interpolation is done line by line on the raw text, so every error still points at the line the
//! operator wrote. Comment lines are left alone, so a commented-out `${VAR}` never fails a load.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A config file that could not be used; every variant names the file and, where known, the line and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A `${VAR}` without default names a variable that is not set.
    #[error(
        "{path}:{line}: environment variable {var} is not set; set it or write ${{{var}:-default}}"
    )]
    MissingVariable {
        /// The config file.
        path: PathBuf,
        /// Line in the file, from 1.
        line: usize,
        /// Name of the variable.
        var: String,
    },
    /// A `${` without a closing brace, or a variable name with characters a shell would not accept.
    #[error("{path}:{line}: malformed interpolation: {reason}")]
    BadInterpolation {
        /// The config file.
        path: PathBuf,
        /// Line in the file, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// TOML syntax or a value of the wrong type or an unknown key.
    #[error("{path}:{line}:{column}: {message} (in `{text}`)")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// Line in the file, from 1.
        line: usize,
        /// Column in the line, from 1.
        column: usize,
        /// The text of the line.
        text: String,
        /// What is wrong with it.
        message: String,
    },
    /// The file parses but a value is not acceptable.
    #[error("{path}:{line}: key `{key}`: {message}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Line in the file, from 1.
        line: usize,
        /// Dotted path of the key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// A config file after interpolation: its path and text, kept so that later validation errors can point at the
/// line of a key.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    path: PathBuf,
    text: String,
}

impl ConfigFile {
    /// Reads and interpolates `path` with the process environment.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let raw = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_text(path, &raw, |name| std::env::var(name).ok())
    }

    /// Interpolates `raw` with `lookup`; `path` is only used in messages. Tests use it with a fixed environment.
    pub fn from_text(
        path: &Path,
        raw: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut text = String::with_capacity(raw.len());
        for (index, line) in raw.split_inclusive('\n').enumerate() {
            if line.trim_start().starts_with('#') {
                text.push_str(line);
            } else {
                interpolate_line(line, &lookup, &mut text).map_err(|e| e.at(path, index + 1))?;
            }
        }
        Ok(Self {
            path: path.to_owned(),
            text,
        })
    }

    /// The file's path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The interpolated text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Parses the interpolated text into `T`; unknown keys are errors when `T` denies them.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(&self.text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            let (line, column) = line_column(&self.text, offset);
            ConfigError::Parse {
                path: self.path.clone(),
                line,
                column,
                text: self
                    .text
                    .lines()
                    .nth(line - 1)
                    .unwrap_or("")
                    .trim()
                    .to_owned(),
                message: e.message().trim().to_owned(),
            }
        })
    }

    /// An [`ConfigError::Invalid`] for `key` (a dotted path like `kafka.bootstrap`), located at the line where
    /// the key is written, or at the table header when the key was left to its default.
    pub fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            line: find_key_line(&self.text, key),
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// An interpolation error before the file and line are known.
struct LineError {
    missing: Option<String>,
    reason: String,
}

impl LineError {
    fn at(self, path: &Path, line: usize) -> ConfigError {
        match self.missing {
            Some(var) => ConfigError::MissingVariable {
                path: path.to_owned(),
                line,
                var,
            },
            None => ConfigError::BadInterpolation {
                path: path.to_owned(),
                line,
                reason: self.reason,
            },
        }
    }
}

fn interpolate_line(
    line: &str,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), LineError> {
    let mut rest = line;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(inner_start) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let close = inner_start.find('}').ok_or_else(|| LineError {
            missing: None,
            reason: "`${` without a closing `}`".to_owned(),
        })?;
        let inner = &inner_start[..close];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(LineError {
                missing: None,
                reason: format!("`{name}` is not a variable name (letters, digits and _ only)"),
            });
        }
        let value = match (lookup(name).filter(|v| !v.is_empty()), default) {
            (Some(value), _) => value,
            (None, Some(default)) => default.to_owned(),
            (None, None) => {
                return Err(LineError {
                    missing: Some(name.to_owned()),
                    reason: String::new(),
                })
            }
        };
        if value.contains('\n') {
            return Err(LineError {
                missing: None,
                reason: format!(
                    "the value of {name} spans several lines, which a config value may not"
                ),
            });
        }
        out.push_str(&value);
        rest = &inner_start[close + 1..];
    }
    out.push_str(rest);
    Ok(())
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

/// Line of `key` (dotted path) in a TOML text: the `name =` line inside the `[table]` header, else the header,
/// else line 1. Good enough for the flat, hand-written files linegate reads.
fn find_key_line(text: &str, key: &str) -> usize {
    // A quoted last segment may hold dots: `kafka.client."security.protocol"`.
    let quoted = key.strip_suffix('"').and_then(|k| k.rsplit_once(".\""));
    let (table, leaf) = match quoted.or_else(|| key.rsplit_once('.')) {
        Some((table, leaf)) => (table, leaf),
        None => ("", key),
    };
    let mut current = String::new();
    let mut header_line = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(header) = trimmed.strip_prefix('[') {
            current = header
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
            if current == table && header_line.is_none() {
                header_line = Some(index + 1);
            }
            continue;
        }
        if current == table {
            let name = trimmed
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            if trimmed.contains('=') && name == leaf {
                return index + 1;
            }
        }
    }
    header_line.unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(raw: &str, env: &[(&str, &str)]) -> Result<ConfigFile, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ConfigFile::from_text(Path::new("station.toml"), raw, move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only parsed, to check the errors
    struct Sample {
        kafka: SampleKafka,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only parsed, to check the errors
    struct SampleKafka {
        bootstrap: String,
        #[serde(default)]
        linger_ms: u32,
    }

    #[test]
    fn variable_and_default_are_substituted() {
        let file = load("a = \"${HOST}:${PORT:-9092}\"\n", &[("HOST", "k1")]).unwrap();
        assert_eq!(file.text(), "a = \"k1:9092\"\n");
    }

    #[test]
    fn empty_variable_takes_the_default() {
        let file = load("a = \"${HOST:-local}\"\n", &[("HOST", "")]).unwrap();
        assert_eq!(file.text(), "a = \"local\"\n");
    }

    #[test]
    fn double_dollar_is_a_literal_dollar() {
        let file = load("a = \"$${HOST} costs $5\"\n", &[]).unwrap();
        assert_eq!(file.text(), "a = \"${HOST} costs $5\"\n");
    }

    #[test]
    fn missing_variable_names_file_line_and_variable() {
        let err = load("# ${IGNORED}\n[kafka]\nbootstrap = \"${KAFKA}\"\n", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "station.toml:3: environment variable KAFKA is not set; set it or write ${KAFKA:-default}"
        );
    }

    #[test]
    fn unclosed_interpolation_is_reported() {
        let err = load("a = \"${HOST\"\n", &[]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("station.toml:1: malformed interpolation"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_names_line_and_text() {
        let file = load(
            "[kafka]\nbootstrap = \"k:9092\"\nlinger_ms = \"soon\"\n",
            &[],
        )
        .unwrap();
        let err = file.parse::<Sample>().unwrap_err().to_string();
        assert!(err.starts_with("station.toml:3:"), "{err}");
        assert!(err.contains("linger_ms = \"soon\""), "{err}");
    }

    #[test]
    fn unknown_key_is_an_error_at_its_line() {
        let file = load("[kafka]\nbootstrap = \"k\"\nbootstrp = \"x\"\n", &[]).unwrap();
        let err = file.parse::<Sample>().unwrap_err().to_string();
        assert!(err.starts_with("station.toml:3:"), "{err}");
        assert!(err.contains("unknown field `bootstrp`"), "{err}");
    }

    #[test]
    fn invalid_value_points_at_the_key_line() {
        let file = load("[mqtt]\nport = 1\n[kafka]\n\nbootstrap = \"\"\n", &[]).unwrap();
        let err = file
            .invalid("kafka.bootstrap", "must not be empty")
            .to_string();
        assert_eq!(
            err,
            "station.toml:5: key `kafka.bootstrap`: must not be empty"
        );
        let err = file.invalid("kafka.linger_ms", "too big").to_string();
        assert_eq!(err, "station.toml:3: key `kafka.linger_ms`: too big");
    }
}
