//! What the edge and the bridge share beyond the event contract.
//!
//! - [`conf`]: reading TOML config files with `${VAR}` / `${VAR:-default}` interpolation, with errors that name
//!   the file, the line and the key.
//! - [`topics`]: the topic plan (`config/topics.toml`): names, partitions, retention, cleanup policy.
//! - [`kafka`]: the Kafka client settings block both binaries accept.
//! - [`logging`]: tracing set-up, human or JSON.
//! - [`process`]: clock, runtime and stop signal of a daemon.
//! - [`signed_config`]: the signed envelope of a pushed station config, signing and verifying it.
//!
//! This crate opens no connections: it turns files into validated values.

pub mod conf;
pub mod kafka;
pub mod logging;
pub mod process;
pub mod signed_config;
pub mod topics;

pub use conf::{ConfigError, ConfigFile};
