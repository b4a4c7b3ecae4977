//! The durable outbox: a SQLite file (WAL) where every accepted event waits until Kafka has it.
//!
//! One writer thread owns all writes ([`writer`]) and commits whatever is queued in one transaction (group
//! commit); it assigns the gapless per-station `seq` at commit time. Readers ([`reader`]) use their own
//! connection, which WAL lets run beside the writer. The outbox knows nothing about Kafka or MQTT.

mod commit;
mod items;
mod quarantine;
mod reader;
mod retry;
mod schema;
mod seen;
mod writer;

pub use items::{Intake, QuarantineEntry, SourceMark, Stored};
pub use linegate_station_config::outbox::{FullPolicy, Synchronous};
use linegate_station_config::OutboxConfig;
pub use quarantine::{QuarantineBound, SET_ASIDE_SOURCE};
pub use reader::{EncodedEvent, OutboxReader, OutboxStats, QuarantinedPayload, StoredEvent};
pub use retry::{retry_quarantined, Retried, RetryRefusal};
pub use writer::OutboxWriter;

use std::path::PathBuf;

/// Why the outbox cannot do what was asked; intake stops acknowledging while this persists.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// SQLite failed (disk full, permissions, corruption).
    #[error("outbox {path}: {source}")]
    Sqlite {
        /// The outbox file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The file belongs to another station; mixing two stations' sequences would corrupt both.
    #[error("outbox {path} belongs to station {found}, not {expected}; point data_dir elsewhere or move the file")]
    WrongStation {
        /// The outbox file.
        path: PathBuf,
        /// The station this edge runs as.
        expected: String,
        /// The station the file belongs to.
        found: String,
    },
    /// A stored row cannot be read back.
    #[error("outbox {path}: row seq {seq} is unreadable: {reason}")]
    BadRow {
        /// The outbox file.
        path: PathBuf,
        /// Sequence number of the row.
        seq: i64,
        /// What went wrong.
        reason: String,
    },
    /// The file system of the outbox is full: SQLite rolled the transaction back, the file is intact.
    #[error("the disk holding the outbox {path} is full: intake has stopped and results stay unacknowledged upstream (MQTT broker, PLC) until space is freed")]
    DiskFull {
        /// The outbox file.
        path: PathBuf,
    },
    /// A commit failed for another reason; nothing of it was stored or acknowledged.
    #[error("outbox {path}: commit failed, nothing of it was acknowledged: {reason}")]
    Commit {
        /// The outbox file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The writer thread could not be started.
    #[error("cannot start the outbox writer thread: {0}")]
    Thread(std::io::Error),
    /// The writer thread is gone (the agent is shutting down or crashed).
    #[error("the outbox writer has stopped")]
    WriterGone,
}

/// How the writer commits and deduplicates.
#[derive(Debug, Clone, Copy)]
pub struct OutboxOptions {
    /// fsync policy.
    pub synchronous: Synchronous,
    /// Most rows in one transaction.
    pub group_commit_max: usize,
    /// How long an event id is remembered to drop a resend of the same result, in milliseconds.
    pub dedup_window_ms: i64,
    /// Most event ids remembered (the newest), which bounds the window's memory: about 20 bytes per id.
    pub dedup_max_ids: usize,
    /// Most events waiting for Kafka.
    pub max_events: i64,
    /// Most bytes of waiting event bodies.
    pub max_bytes: i64,
    /// Under `drop_oldest`, events older than this are dropped too; `None`: no age bound.
    pub max_age_ms: Option<i64>,
    /// What happens at `max_events`.
    pub full_policy: FullPolicy,
    /// Most entries and bytes the quarantine table keeps (the oldest are dropped, counted).
    pub quarantine: QuarantineBound,
}

impl OutboxOptions {
    /// The writer's options from the station's `[outbox]` table.
    pub fn from_config(config: &OutboxConfig) -> Self {
        Self {
            synchronous: config.synchronous,
            group_commit_max: config.group_commit_max,
            dedup_window_ms: i64::from(config.dedup_window_hours) * 3_600_000,
            dedup_max_ids: config.dedup_max_ids,
            max_events: i64::try_from(config.max_events).unwrap_or(i64::MAX),
            max_bytes: i64::try_from(config.max_bytes).unwrap_or(i64::MAX),
            max_age_ms: config
                .max_age_hours
                .map(|hours| i64::from(hours) * 3_600_000),
            full_policy: config.full_policy,
            quarantine: QuarantineBound {
                max_entries: i64::try_from(config.quarantine_max_entries).unwrap_or(i64::MAX),
                max_bytes: i64::try_from(config.quarantine_max_bytes).unwrap_or(i64::MAX),
            },
        }
    }
}
