//! linegate-bridge: decodes what the edges send, validates it, and fans it out to the lifecycle, quality and
//! audit topics, or to the dead-letter topic with the reason.
//!
//! Start reading at [`pipeline`], the consume -> route -> produce -> commit loop. [`consume`] is its input
//! side (group consumer, offsets to commit); [`route`] is the whole decision for one record and does no I/O;
//! [`produce`] delivers a round's outputs and waits for every acknowledgement; [`registry`] frames them for a
//! Confluent Schema Registry when one is configured; [`admin`] creates the missing topics of the plan at start; [`config`] loads and validates
//! the config file; [`metrics`] and [`http`] are the operations side, [`deadletters`] and [`redrive`] read the
//! DLQ back and send fixed records home; [`station_config`] is `config keygen|push|show|history`, the centre's side
//! of pushed station configs. Errors are typed per module; only `main.rs` wraps them for the operator.

pub mod admin;
pub mod chain;
pub mod config;
pub mod consume;
pub mod deadletters;
pub mod dedup;
pub mod http;
pub mod inflight;
pub mod metrics;
pub mod pipeline;
pub mod produce;
pub mod redrive;
pub mod registry;
pub mod round;
pub mod route;
pub mod state;
pub mod station_config;
pub mod txn;
pub mod verify;
pub mod window;
