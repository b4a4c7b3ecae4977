//! What the edge and the bridge share beyond the event contract.
//!
//! - [`conf`]: reading TOML config files with `${VAR}` / `${VAR:-default}` interpolation, with errors that name
//!   the file, the line and the key.
//! - [`topics`]: the topic plan (`config/topics.toml`): names, partitions, retention, cleanup policy.
//! - [`kafka`]: the Kafka client settings block both binaries accept.
//! - [`logging`]: the log format; with `runtime`, the tracing set-up, human or JSON.
//! - [`process`]: the clock; with `runtime`, the tokio runtime and stop signal of a daemon.
//!
//! This crate opens no connections: it turns files into validated values. The `runtime` feature adds what
//! needs librdkafka or tokio (the Kafka client config, the log subscriber, the daemon runtime); the config
//! contract (`linegate-station-config`) builds without it.

pub mod conf;
pub mod kafka;
pub mod logging;
pub mod process;
pub mod topics;

pub use conf::{ConfigError, ConfigFile};
