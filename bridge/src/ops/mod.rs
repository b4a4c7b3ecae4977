//! Operator tools: what the CLI and the HTTP API run besides the pipeline.
//!
//! - [`topics`]: creates the missing topics of the plan at start.
//! - [`deadletters`]: reads the dead-letter topic back; [`redrive`] sends fixed records home.
//! - [`verify`]: verifies the audit chain on `audit.events`.
//! - [`station_config`]: `config keygen|push|show|history`, the centre's side of pushed station configs.

pub mod deadletters;
pub mod redrive;
pub mod station_config;
pub mod topics;
pub mod verify;
