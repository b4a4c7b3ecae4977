//! The single writer of the outbox: group commit, sequence assignment, deletion of delivered events.
//!
//! Callers send commands over a channel and await a receipt; the thread takes every command already queued
//! (up to `group_commit_max` rows) into one transaction, so a burst of results costs one fsync, not one each.
//! Nothing is acknowledged upstream before its receipt arrives, and a receipt is sent only after COMMIT.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

use linegate_schemas::EdgeEvent;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::{oneshot, Notify};

use super::schema::{open_for_writing, sqlite_err};
use super::seen::{Seen, SeenIds};
use super::{FullPolicy, OutboxError, OutboxOptions};

/// How often event ids older than the dedup window are forgotten.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

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
    Event { seq: i64 },
    /// An event id seen within the dedup window: not stored again, safe to acknowledge.
    Duplicate,
    /// Stored in the quarantine table.
    Quarantined,
    /// Not stored: the outbox is full (policy `block`). Do not acknowledge; offer it again later.
    Refused,
}

/// One item a source hands to the outbox.
#[derive(Debug, Clone)]
pub enum Intake {
    /// An accepted event; its `seq` is assigned at commit.
    Event(Box<EdgeEvent>),
    /// A payload for the quarantine table.
    Quarantine(QuarantineEntry),
}

/// What an append comes back with: the outcome, and the items themselves.
type Offered = (Result<Vec<Stored>, WriteFailure>, Vec<Intake>);

enum Command {
    Append {
        items: Vec<Intake>,
        /// Answered with the items too, so that a caller that must offer them again needs no copy.
        reply: oneshot::Sender<Offered>,
    },
    DeleteUpTo {
        seq: i64,
        reply: oneshot::Sender<Result<(), WriteFailure>>,
    },
    /// Answered at once, to prove the thread is alive (the systemd watchdog).
    Ping { reply: oneshot::Sender<()> },
}

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct OutboxWriter {
    commands: mpsc::Sender<Command>,
    path: PathBuf,
    level: Arc<LiveLevel>,
}

/// The writer's running count of waiting events and their body bytes, published after every commit, so that
/// a metrics scrape reads two numbers instead of scanning the whole table (seconds on a large backlog).
#[derive(Debug, Default)]
struct LiveLevel {
    depth: std::sync::atomic::AtomicI64,
    bytes: std::sync::atomic::AtomicI64,
}

impl LiveLevel {
    fn publish(&self, level: Level) {
        use std::sync::atomic::Ordering::Relaxed;
        self.depth.store(level.depth, Relaxed);
        self.bytes.store(level.bytes, Relaxed);
    }
}

impl OutboxWriter {
    /// Opens the outbox and starts its writer thread. `committed` is notified after every commit that added
    /// events, so the forwarder wakes without polling.
    pub fn start(
        path: &Path,
        station_id: &str,
        options: OutboxOptions,
        committed: Arc<Notify>,
    ) -> Result<Self, OutboxError> {
        let conn = open_for_writing(path, station_id, options.synchronous)?;
        let level = Level::of(&conn, path)?;
        let seen = SeenIds::load(&conn, path, options.dedup_window_ms, options.dedup_max_ids)?;
        let bound = Bound {
            level,
            max_events: options.max_events,
            max_bytes: options.max_bytes,
            max_age_ms: options.max_age_ms,
            policy: options.full_policy,
        };
        let (commands, inbox) = mpsc::channel();
        let thread_path = path.to_owned();
        let live = Arc::new(LiveLevel::default());
        live.publish(level);
        let thread_live = Arc::clone(&live);
        std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || {
                write_loop(
                    conn,
                    &thread_path,
                    inbox,
                    options,
                    Window { bound, seen },
                    &committed,
                    &thread_live,
                )
            })
            .map_err(OutboxError::Thread)?;
        Ok(Self {
            commands,
            path: path.to_owned(),
            level: live,
        })
    }

    /// Events waiting for Kafka and the bytes of their bodies, as of the last commit.
    pub fn level(&self) -> (i64, i64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.level.depth.load(Relaxed),
            self.level.bytes.load(Relaxed),
        )
    }

    /// Commits `items` durably; returns what became of each, in order.
    pub async fn append(&self, items: Vec<Intake>) -> Result<Vec<Stored>, OutboxError> {
        self.offer(items).await.0
    }

    /// [`OutboxWriter::append`] that also hands the items back (a stored event with its `seq` set), so that
    /// intake can offer the refused rest again without keeping a copy of every item. Empty when the writer
    /// is gone.
    pub async fn offer(
        &self,
        items: Vec<Intake>,
    ) -> (Result<Vec<Stored>, OutboxError>, Vec<Intake>) {
        let (reply, receipt) = oneshot::channel();
        if self
            .commands
            .send(Command::Append { items, reply })
            .is_err()
        {
            return (Err(OutboxError::WriterGone), Vec::new());
        }
        match receipt.await {
            Ok((result, items)) => (result.map_err(|reason| self.failed(reason)), items),
            Err(_) => (Err(OutboxError::WriterGone), Vec::new()),
        }
    }

    /// Returns once the writer thread took a command: proof that it is not stuck.
    pub async fn ping(&self) -> Result<(), OutboxError> {
        let (reply, receipt) = oneshot::channel();
        self.commands
            .send(Command::Ping { reply })
            .map_err(|_| OutboxError::WriterGone)?;
        receipt.await.map_err(|_| OutboxError::WriterGone)
    }

    /// Deletes every event with `seq <= seq`: Kafka has confirmed them.
    pub async fn delete_up_to(&self, seq: i64) -> Result<(), OutboxError> {
        let (reply, receipt) = oneshot::channel();
        self.commands
            .send(Command::DeleteUpTo { seq, reply })
            .map_err(|_| OutboxError::WriterGone)?;
        receipt
            .await
            .map_err(|_| OutboxError::WriterGone)?
            .map_err(|reason| self.failed(reason))
    }

    fn failed(&self, failure: WriteFailure) -> OutboxError {
        match failure {
            WriteFailure::DiskFull => OutboxError::DiskFull {
                path: self.path.clone(),
            },
            WriteFailure::Other(reason) => OutboxError::Commit {
                path: self.path.clone(),
                reason,
            },
        }
    }
}

/// What the writer keeps between commits besides the connection: the size bound and the dedup window.
struct Window {
    bound: Bound,
    seen: SeenIds,
}

fn write_loop(
    mut conn: Connection,
    path: &Path,
    inbox: mpsc::Receiver<Command>,
    options: OutboxOptions,
    window: Window,
    committed: &Notify,
    live: &LiveLevel,
) {
    let Window {
        mut bound,
        mut seen,
    } = window;
    let group_commit_max = options.group_commit_max.max(1);
    let mut last_prune = std::time::Instant::now();
    let mut disk_full = false;
    // Ends when every handle is dropped.
    while let Ok(first) = inbox.recv() {
        if let Command::Ping { reply } = first {
            let _ = reply.send(());
            continue;
        }
        let mut group = vec![first];
        let mut rows = group_rows(&group[0]);
        while rows < group_commit_max {
            match inbox.try_recv() {
                Ok(Command::Ping { reply }) => drop(reply.send(())),
                Ok(next) => {
                    rows += group_rows(&next);
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let added_events = group.iter().any(|command| {
            matches!(command, Command::Append { items, .. } if items.iter().any(|i| matches!(i, Intake::Event(_))))
        });
        let by_age = last_prune.elapsed() >= PRUNE_EVERY;
        if by_age || seen.overfull() {
            if let Err(error) = seen.prune(&conn, path, by_age) {
                tracing::warn!(%error, "cannot prune the dedup window; it grows until the next try");
            }
            if by_age {
                last_prune = std::time::Instant::now();
            }
        }
        let outcome = commit_group(&mut conn, path, &mut group, &bound, &mut seen);
        if outcome.is_ok() {
            seen.committed();
        } else {
            seen.rolled_back();
        }
        match outcome {
            Ok(Committed {
                results,
                level,
                dropped,
            }) => {
                bound.level = level;
                live.publish(level);
                if dropped > 0 {
                    tracing::warn!(
                        dropped,
                        max_events = bound.max_events,
                        max_bytes = bound.max_bytes,
                        max_age_ms = bound.max_age_ms,
                        "outbox over its bounds: dropped the oldest events (policy drop_oldest); counted in outbox stats and metrics"
                    );
                }
                for (command, result) in group.into_iter().zip(results) {
                    match (command, result) {
                        (Command::Append { reply, items }, Done::Appended(seqs)) => {
                            let _ = reply.send((Ok(seqs), items));
                        }
                        (Command::DeleteUpTo { reply, .. }, Done::Deleted) => {
                            let _ = reply.send(Ok(()));
                        }
                        _ => unreachable!(
                            "results follow commands one to one; pings are answered before"
                        ),
                    }
                }
                if added_events {
                    committed.notify_one();
                }
                if std::mem::take(&mut disk_full) {
                    tracing::info!("the outbox has disk space again: taking results");
                }
            }
            Err(error) => {
                let reason = if is_disk_full(&error) {
                    if !disk_full {
                        tracing::error!(path = %path.display(), "the disk holding the outbox is full: intake stopped, results stay unacknowledged upstream until space is freed; the outbox file is intact");
                        disk_full = true;
                    }
                    WriteFailure::DiskFull
                } else {
                    tracing::error!(%error, "outbox commit failed; nothing of this group is acknowledged");
                    WriteFailure::Other(error.to_string())
                };
                for command in group {
                    match command {
                        Command::Append { reply, items } => {
                            drop(reply.send((Err(reason.clone()), items)));
                        }
                        Command::DeleteUpTo { reply, .. } => drop(reply.send(Err(reason.clone()))),
                        Command::Ping { reply } => drop(reply.send(())),
                    }
                }
            }
        }
    }
}

/// The seq the next event gets, from `meta` (read inside the writing transaction, never cached).
pub(super) fn read_next_seq(tx: &Transaction<'_>, path: &Path) -> Result<i64, OutboxError> {
    tx.query_row("SELECT value FROM meta WHERE key = 'next_seq'", [], |row| {
        row.get::<_, String>(0)
    })
    .map_err(sqlite_err(path))?
    .parse()
    .map_err(|_| OutboxError::BadRow {
        path: path.to_owned(),
        seq: 0,
        reason: "meta next_seq is not a number".into(),
    })
}

/// Policy `drop_oldest`: deletes the oldest events while the outbox is over `max_events` or `max_bytes`, and
/// every event older than `max_age_ms`; counts them in `meta.dropped_events` (kept across restarts, read by
/// stats and metrics). Returns how many it deleted.
fn drop_oldest(
    tx: &Transaction<'_>,
    path: &Path,
    level: &mut Level,
    bound: &Bound,
) -> Result<i64, OutboxError> {
    let err = sqlite_err(path);
    let cutoff = bound
        .max_age_ms
        .map(|age| crate::capture::now_ms().saturating_sub(age));
    let over = |level: &Level| level.depth > bound.max_events || level.bytes > bound.max_bytes;
    let oldest: Option<i64> = tx
        .query_row(
            "SELECT captured_at_ms FROM events ORDER BY seq LIMIT 1",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(&err)?;
    let too_old = |at: i64| cutoff.is_some_and(|cutoff| at < cutoff);
    if !over(level) && !oldest.is_some_and(too_old) {
        return Ok(0);
    }
    let mut last_dropped = None;
    let mut dropped = 0;
    {
        let mut stmt = tx
            .prepare("SELECT seq, length(body), captured_at_ms FROM events ORDER BY seq")
            .map_err(&err)?;
        let mut rows = stmt.query([]).map_err(&err)?;
        while let Some(row) = rows.next().map_err(&err)? {
            let (seq, bytes, at): (i64, i64, i64) = (
                row.get(0).map_err(&err)?,
                row.get(1).map_err(&err)?,
                row.get(2).map_err(&err)?,
            );
            if !over(level) && !too_old(at) {
                break;
            }
            level.depth -= 1;
            level.bytes -= bytes;
            last_dropped = Some(seq);
            dropped += 1;
        }
    }
    if let Some(seq) = last_dropped {
        tx.execute("DELETE FROM events WHERE seq <= ?1", params![seq])
            .map_err(&err)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('dropped_events', ?1) \
             ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + ?1",
            params![dropped],
        )
        .map_err(&err)?;
    }
    Ok(dropped)
}

/// Why the writer thread refused a command, as sent back to the caller.
#[derive(Debug, Clone)]
enum WriteFailure {
    /// SQLITE_FULL: the file system is full.
    DiskFull,
    /// Anything else, as text.
    Other(String),
}

fn is_disk_full(error: &OutboxError) -> bool {
    matches!(
        error,
        OutboxError::Sqlite {
            source: rusqlite::Error::SqliteFailure(e, _),
            ..
        } if e.code == rusqlite::ErrorCode::DiskFull
    )
}

fn group_rows(command: &Command) -> usize {
    match command {
        Command::Append { items, .. } => items.len().max(1),
        Command::DeleteUpTo { .. } | Command::Ping { .. } => 1,
    }
}

enum Done {
    Appended(Vec<Stored>),
    Deleted,
}

/// The outbox's size limit as the writer tracks it; `depth` is updated only after a commit succeeded.
pub(super) struct Bound {
    pub(super) level: Level,
    pub(super) max_events: i64,
    pub(super) max_bytes: i64,
    pub(super) max_age_ms: Option<i64>,
    pub(super) policy: FullPolicy,
}

/// How full the outbox is: waiting events and the bytes of their bodies.
#[derive(Debug, Clone, Copy)]
pub(super) struct Level {
    pub(super) depth: i64,
    pub(super) bytes: i64,
}

impl Level {
    /// Counts what is in the file now.
    pub(super) fn of(conn: &Connection, path: &Path) -> Result<Self, OutboxError> {
        conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(length(body)), 0) FROM events",
            [],
            |row| {
                Ok(Level {
                    depth: row.get(0)?,
                    bytes: row.get(1)?,
                })
            },
        )
        .map_err(sqlite_err(path))
    }

    fn full(&self, bound: &Bound) -> bool {
        self.depth >= bound.max_events || self.bytes >= bound.max_bytes
    }
}

/// What a committed group did: per-command results, and how many old events the drop policy removed.
struct Committed {
    results: Vec<Done>,
    level: Level,
    dropped: i64,
}

fn commit_group(
    conn: &mut Connection,
    path: &Path,
    group: &mut [Command],
    bound: &Bound,
    seen: &mut SeenIds,
) -> Result<Committed, OutboxError> {
    let err = sqlite_err(path);
    let mut dropped_total = 0;
    // IMMEDIATE: take the write lock before reading next_seq, so an operator's `quarantine retry` in another
    // process can never hand out the same seq.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(&err)?;
    let mut next_seq = read_next_seq(&tx, path)?;
    seen.follow(&tx, path)?;
    // Deletes first: room freed by Kafka confirmations in this group is usable by its appends.
    let mut results: Vec<Option<Done>> = group.iter().map(|_| None).collect();
    let mut level = bound.level;
    for (command, result) in group.iter().zip(results.iter_mut()) {
        if let Command::DeleteUpTo { seq, .. } = command {
            let (count, bytes): (i64, i64) = tx
                .query_row(
                    "SELECT COUNT(*), COALESCE(SUM(length(body)), 0) FROM events WHERE seq <= ?1",
                    params![seq],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(&err)?;
            tx.execute("DELETE FROM events WHERE seq <= ?1", params![seq])
                .map_err(&err)?;
            level.depth -= count;
            level.bytes -= bytes;
            if level.depth < 0 || level.bytes < 0 {
                // Rows this writer did not count were added by another process (`outbox quarantine retry`).
                level = Level::of(&tx, path)?;
            }
            *result = Some(Done::Deleted);
        }
    }
    for (command, result) in group.iter_mut().zip(results.iter_mut()) {
        if let Command::Append { items, .. } = command {
            let stored = append_items(&tx, path, items, &mut next_seq, &mut level, bound, seen)?;
            *result = Some(Done::Appended(stored));
        }
    }
    if bound.policy == FullPolicy::DropOldest {
        dropped_total = drop_oldest(&tx, path, &mut level, bound)?;
    }
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'next_seq'",
        params![next_seq.to_string()],
    )
    .map_err(&err)?;
    tx.commit().map_err(&err)?;
    Ok(Committed {
        results: results
            .into_iter()
            .map(|r| r.expect("every command has a result"))
            .collect(),
        level,
        dropped: dropped_total,
    })
}

pub(super) fn append_items(
    tx: &Transaction<'_>,
    path: &Path,
    items: &mut [Intake],
    next_seq: &mut i64,
    level: &mut Level,
    bound: &Bound,
    seen: &mut SeenIds,
) -> Result<Vec<Stored>, OutboxError> {
    let err = sqlite_err(path);
    let committed_at_ms = crate::capture::now_ms();
    let mut insert_event = tx
        .prepare_cached(
            "INSERT INTO events (seq, event_id, captured_at_ms, body) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(&err)?;
    let mut insert_quarantine = tx
        .prepare_cached(
            "INSERT INTO quarantine (received_at_ms, source, origin, payload, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(&err)?;
    let total = items.len();
    let mut seqs = Vec::with_capacity(total);
    for item in items.iter_mut() {
        match item {
            Intake::Event(_) if bound.policy == FullPolicy::Block && level.full(bound) => {
                // Full: refuse this and everything after it, so what is stored stays a prefix in order.
                seqs.extend(std::iter::repeat_n(Stored::Refused, total - seqs.len()));
                break;
            }
            Intake::Event(event) => {
                // A result the station sent again (an MQTT redelivery after a crash between commit and
                // PUBACK) has an event id already seen: acknowledge it, store it once.
                if seen.remember(tx, path, &event.event_id, committed_at_ms)? == Seen::Again {
                    seqs.push(Stored::Duplicate);
                    continue;
                }
                let seq = *next_seq;
                // Set in place: a failed transaction is retried with new seqs anyway.
                event.seq = seq;
                let stored = &**event;
                let body = linegate_schemas::encode(stored).map_err(|e| OutboxError::BadRow {
                    path: path.to_owned(),
                    seq,
                    reason: e.to_string(),
                })?;
                insert_event
                    .execute(params![seq, stored.event_id, stored.timestamp, body])
                    .map_err(&err)?;
                *next_seq += 1;
                level.depth += 1;
                level.bytes += i64::try_from(body.len()).unwrap_or(i64::MAX);
                seqs.push(Stored::Event { seq });
            }
            Intake::Quarantine(entry) => {
                insert_quarantine
                    .execute(params![
                        entry.received_at_ms,
                        entry.source,
                        entry.origin,
                        entry.payload,
                        entry.reason
                    ])
                    .map_err(&err)?;
                seqs.push(Stored::Quarantined);
            }
        }
    }
    Ok(seqs)
}
