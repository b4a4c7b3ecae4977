//! linegate-bridge: decodes what the edges send, validates it, and fans it out to the lifecycle, quality and
//! audit topics, or to the dead-letter topic with the reason.
//!
//! [`route`] is the whole decision for one record and does no I/O; [`pipeline`] is the consume-produce-commit
//! loop around it; [`admin`] provisions topics; [`config`] loads and validates the config file.

pub mod admin;
pub mod config;
pub mod pipeline;
pub mod route;
