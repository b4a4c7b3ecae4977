//! What the writer is given and what it answers: intake items, their outcome, and the commands of its queue.

use linegate_schemas::EdgeEvent;
use tokio::sync::oneshot;

use super::OutboxError;

/// A payload that could not be turned into an event: kept with its reason rather than lost or retried forever.
#[derive(Debug, Clone)]
pub struct QuarantineEntry {
    /// Which source received it, e.g. `mqtt`.
    pub source: String,
    /// Where within the source, e.g. the MQTT topic.
    pub origin: String,
    /// The payload as received.
    pub payload: Vec<u8>,
    /// Why it was not accepted.
    pub reason: String,
    /// Receive time, epoch milliseconds.
    pub received_at_ms: i64,
}

/// What the outbox did with one [`Intake`] item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored under this sequence number.
    Event {
        /// The event's outbox sequence number.
        seq: i64,
    },
    /// An event id seen within the dedup window: not stored again, safe to acknowledge.
    Duplicate,
    /// Stored in the quarantine table.
    Quarantined,
    /// Not stored: the outbox is full (policy `block`). Do not acknowledge; offer it again later.
    Refused,
    /// A [`SourceMark`] stored (replacing the source's previous one).
    Marked,
}

/// A source's own bookkeeping, committed in the same transaction as the items before it, so that what the
/// source remembers (e.g. a PLC handshake's history) is never ahead of or behind what the outbox holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMark {
    /// The source that owns the mark, e.g. `modbus:press-1`.
    pub source: String,
    /// Opaque to the outbox; the source parses it.
    pub mark: String,
}

/// One item a source hands to the outbox.
#[derive(Debug, Clone)]
pub enum Intake {
    /// An accepted event; its `seq` is assigned at commit.
    Event(Box<EdgeEvent>),
    /// A payload for the quarantine table.
    Quarantine(QuarantineEntry),
    /// The source's mark to keep, replacing its previous one.
    Mark(SourceMark),
}

/// What an append comes back with: the outcome, and the items themselves.
pub(super) type Offered = (Result<Vec<Stored>, WriteFailure>, Vec<Intake>);

/// What the writer thread is asked to do.
pub(super) enum Command {
    Append {
        items: Vec<Intake>,
        /// Answered with the items too, so that a caller that must offer them again needs no copy.
        reply: oneshot::Sender<Offered>,
    },
    DeleteUpTo {
        seq: i64,
        reply: oneshot::Sender<Result<(), WriteFailure>>,
    },
    /// Moves a waiting event Kafka refused for good into quarantine and stores `report` (which says so) in
    /// the same transaction.
    SetAside {
        seq: i64,
        reason: String,
        report: Box<EdgeEvent>,
        reply: oneshot::Sender<Result<bool, WriteFailure>>,
    },
    /// Answered at once, to prove the thread is alive (the systemd watchdog).
    Ping { reply: oneshot::Sender<()> },
    /// Answered at once with the source's last committed [`SourceMark`], if any.
    ReadMark {
        source: String,
        reply: oneshot::Sender<Result<Option<String>, WriteFailure>>,
    },
}

/// Why the writer thread refused a command, as sent back to the caller.
#[derive(Debug, Clone)]
pub(super) enum WriteFailure {
    /// SQLITE_FULL: the file system is full.
    DiskFull,
    /// Anything else, as text.
    Other(String),
}

/// Whether `error` is SQLITE_FULL.
pub(super) fn is_disk_full(error: &OutboxError) -> bool {
    matches!(
        error,
        OutboxError::Sqlite {
            source: rusqlite::Error::SqliteFailure(e, _),
            ..
        } if e.code == rusqlite::ErrorCode::DiskFull
    )
}

/// How many rows `command` adds to a group commit.
pub(super) fn group_rows(command: &Command) -> usize {
    match command {
        Command::Append { items, .. } => items.len().max(1),
        Command::DeleteUpTo { .. }
        | Command::SetAside { .. }
        | Command::Ping { .. }
        | Command::ReadMark { .. } => 1,
    }
}
