//! The pure decisions of the bridge: what a round of input records becomes. Nothing here does I/O; the
//! pipeline delivers what these return.
//!
//! - [`output`]: the record to produce that every decision returns.
//! - [`round`]: one round of records, in order, through dedup, routing, the chain and the windows.
//! - [`route`]: the whole decision for one record (validation, the lifecycle, quality and audit outputs, the
//!   dead-letter record with its reason and bounds).
//! - [`dedup`]: the ledger of each station's outbox epoch and sequence (duplicate, gap, stale).
//! - [`chain`]: the tamper-evident audit chain and its verification.
//! - [`window`]: the quality windows (mean, spread, Cp, Cpk) and the records of a closed window.

pub mod chain;
pub mod dedup;
pub mod output;
pub mod round;
pub mod route;
pub mod window;
