//! linegate-bridge: decodes what the edges send, validates it, and fans it out to the lifecycle, quality and
//! audit topics, or to the dead-letter topic with the reason.
//!
//! The crate is grouped by what each part is:
//! - [`pipeline`]: the I/O loop. Consume a round, hand it to the decisions, produce the outputs, wait for every
//!   acknowledgement, commit the input positions (or do all of it in one Kafka transaction), read the state
//!   back when partitions are assigned. Start reading here.
//! - [`decide`]: the pure decisions. A round, one record's routing, validation, quality and audit outputs, the
//!   dead-letter record, the dedup ledger, the audit chain, the quality windows. No I/O.
//! - [`wire`]: the outputs' wire formats and the Schema Registry client.
//! - [`ops`]: operator tools. Topic creation, the dead-letter reader and redrive, the audit verifier, pushed
//!   station configs (`config keygen|push|show|history`).
//! - [`http`]: the HTTP API, adapting the operator tools and the pipeline's health to requests.
//! - [`config`]: the bridge's config file; [`metrics`]: its Prometheus series.
//!
//! Errors are typed per module; only `main.rs` wraps them for the operator.

pub mod config;
pub mod decide;
pub mod http;
pub mod metrics;
pub mod ops;
pub mod pipeline;
pub mod wire;
