//! The `[outbox]` table: durability, bounds of the waiting events, the dedup window and the quarantine.

use linegate_common::conf::{ConfigError, ConfigFile};
use serde::Deserialize;

/// Most rows in one outbox transaction: beyond it one commit holds the write lock for seconds.
const GROUP_COMMIT_CEILING: usize = 100_000;

/// How hard each commit is pushed to disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync on every commit: an acknowledged event survives power loss (default).
    #[default]
    Full,
    /// fsync at WAL checkpoints only: survives a crash of the agent, not of the machine.
    Normal,
}

/// What a full outbox does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FullPolicy {
    /// Stop taking results (default): they are not acknowledged, so the MQTT broker keeps them upstream.
    #[default]
    Block,
    /// Take new results and delete the oldest waiting ones, counted and logged.
    DropOldest,
}

/// Outbox settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// `full` (survives power loss) or `normal` (survives an agent crash only).
    pub synchronous: Synchronous,
    /// Most rows committed in one transaction.
    pub group_commit_max: usize,
    /// Hours an event id is remembered, so a result the station (or MQTT) delivers again is stored once.
    pub dedup_window_hours: u32,
    /// Most event ids remembered (the newest): the window ends at `dedup_window_hours` or at this many ids,
    /// whichever comes first. It bounds the memory (about 20 bytes per id) and must cover what MQTT may
    /// deliver again after a crash (`mqtt.max_unacked`).
    pub dedup_max_ids: usize,
    /// Most events waiting for Kafka; at the limit `full_policy` applies.
    pub max_events: u64,
    /// Most bytes of waiting events (their stored bodies); at the limit `full_policy` applies.
    pub max_bytes: u64,
    /// Under `drop_oldest`, events waiting longer than this are dropped too. Under `block` the age is only
    /// reported (metrics, /healthz, `outbox stats`): blocking new results would not make old ones leave.
    pub max_age_hours: Option<u32>,
    /// `block` (stop acknowledging; upstream holds the results) or `drop_oldest` (counted and logged).
    pub full_policy: FullPolicy,
    /// Most entries the quarantine keeps; beyond it the oldest are dropped, counted.
    pub quarantine_max_entries: u64,
    /// Most payload bytes the quarantine keeps; beyond it the oldest are dropped, counted.
    pub quarantine_max_bytes: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            group_commit_max: 1000,
            dedup_window_hours: 168,
            dedup_max_ids: 100_000,
            max_events: 10_000_000,
            max_bytes: 8 << 30,
            max_age_hours: None,
            full_policy: FullPolicy::Block,
            quarantine_max_entries: 10_000,
            quarantine_max_bytes: 64 << 20,
        }
    }
}

impl OutboxConfig {
    /// Checks the bounds; every error names the key.
    pub(super) fn validate(&self, file: &ConfigFile) -> Result<(), ConfigError> {
        if self.max_events == 0 {
            return Err(file.invalid("outbox.max_events", "must be at least 1"));
        }
        if self.max_bytes < 1 << 20 {
            return Err(file.invalid("outbox.max_bytes", "must be at least 1048576 (1 MiB)"));
        }
        if self.max_age_hours == Some(0) {
            return Err(file.invalid(
                "outbox.max_age_hours",
                "must be at least 1, or absent for no age bound",
            ));
        }
        if self.group_commit_max == 0 {
            return Err(file.invalid("outbox.group_commit_max", "must be at least 1"));
        }
        if self.dedup_max_ids < 1000 {
            return Err(file.invalid("outbox.dedup_max_ids", "must be at least 1000"));
        }
        if self.group_commit_max > GROUP_COMMIT_CEILING {
            return Err(file.invalid(
                "outbox.group_commit_max",
                format!("must be at most {GROUP_COMMIT_CEILING}"),
            ));
        }
        if self.dedup_window_hours == 0 || self.dedup_window_hours > 24 * 366 {
            return Err(file.invalid(
                "outbox.dedup_window_hours",
                "must be between 1 and 8784 (a year)",
            ));
        }
        if self.quarantine_max_entries == 0 {
            return Err(file.invalid("outbox.quarantine_max_entries", "must be at least 1"));
        }
        if self.quarantine_max_bytes < 2 << 20 {
            return Err(file.invalid(
                "outbox.quarantine_max_bytes",
                "must be at least 2097152 (2 MiB): the largest MQTT payload must fit",
            ));
        }
        Ok(())
    }
}
