//! What the outbox tests share: the options they start from and a writer for station ST-01.

use std::path::Path;
use std::sync::Arc;

use linegate_edge::outbox::{
    FullPolicy, OutboxOptions, OutboxWriter, QuarantineBound, Synchronous,
};
use tokio::sync::Notify;

/// Durable, small groups, a one-hour dedup window, bounds far away: each test overrides what it is about.
pub(crate) const OPTIONS: OutboxOptions = OutboxOptions {
    synchronous: Synchronous::Full,
    group_commit_max: 100,
    dedup_window_ms: 3_600_000,
    dedup_max_ids: 100_000,
    max_events: 1_000_000,
    max_bytes: i64::MAX,
    max_age_ms: None,
    full_policy: FullPolicy::Block,
    quarantine: QuarantineBound {
        max_entries: 10_000,
        max_bytes: 64 << 20,
    },
};

/// A writer of station ST-01's outbox at `path`.
pub(crate) fn writer(path: &Path, options: OutboxOptions) -> OutboxWriter {
    OutboxWriter::start(path, "ST-01", options, Arc::new(Notify::new())).unwrap()
}
