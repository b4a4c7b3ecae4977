//! The single writer of the outbox: group commit, sequence assignment, deletion of delivered events.
//!
//! Callers send commands over a channel and await a receipt; the thread takes every command already queued
//! (up to `group_commit_max` rows) into one transaction, so a burst of results costs one fsync, not one each.
//! Nothing is acknowledged upstream before its receipt arrives, and a receipt is sent only after COMMIT.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

use linegate_schemas::EdgeEvent;
use rusqlite::Connection;
use tokio::sync::{oneshot, Notify};

use super::commit::{commit_group, Bound, Committed, Done, Level};
use super::items::{group_rows, is_disk_full, Command, Intake, Stored, WriteFailure};
use super::schema::{open_for_writing, read_epoch};
use super::seen::SeenIds;
use super::{OutboxError, OutboxOptions};

/// How often event ids older than the dedup window are forgotten.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

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
        let epoch = read_epoch(&conn, path)?;
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
                let thread = WriterThread {
                    conn,
                    path: &thread_path,
                    options,
                    bound,
                    seen,
                    epoch,
                    committed: &committed,
                    live: &thread_live,
                    last_prune: std::time::Instant::now(),
                    disk_full: false,
                };
                thread.run(&inbox);
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

    /// The last [`SourceMark`] committed for `source`, if any.
    pub async fn mark(&self, source: &str) -> Result<Option<String>, OutboxError> {
        let (reply, receipt) = oneshot::channel();
        self.commands
            .send(Command::ReadMark {
                source: source.to_owned(),
                reply,
            })
            .map_err(|_| OutboxError::WriterGone)?;
        receipt
            .await
            .map_err(|_| OutboxError::WriterGone)?
            .map_err(|reason| self.failed(reason))
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

    /// Moves the waiting event `seq` into quarantine with `reason` and stores `report` in the same commit:
    /// Kafka refused the event for good, and the rows behind it must flow. `false` when no such event waited.
    pub async fn set_aside(
        &self,
        seq: i64,
        reason: String,
        report: EdgeEvent,
    ) -> Result<bool, OutboxError> {
        let (reply, receipt) = oneshot::channel();
        self.commands
            .send(Command::SetAside {
                seq,
                reason,
                report: Box::new(report),
                reply,
            })
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

/// The writer thread: its connection and what it keeps between commits.
struct WriterThread<'a> {
    conn: Connection,
    path: &'a Path,
    options: OutboxOptions,
    bound: Bound,
    seen: SeenIds,
    /// The outbox's epoch, stamped on every event stored.
    epoch: String,
    committed: &'a Notify,
    live: &'a LiveLevel,
    last_prune: std::time::Instant,
    disk_full: bool,
}

impl WriterThread<'_> {
    /// Ends when every handle is dropped.
    fn run(mut self, inbox: &mpsc::Receiver<Command>) {
        while let Ok(first) = inbox.recv() {
            let first = match first {
                Command::Ping { reply } => {
                    let _ = reply.send(());
                    continue;
                }
                Command::ReadMark { source, reply } => {
                    let _ = reply.send(self.read_mark(&source));
                    continue;
                }
                other => other,
            };
            let mut group = self.gather(first, inbox);
            let added_events = group.iter().any(|command| match command {
                Command::Append { items, .. } => {
                    items.iter().any(|i| matches!(i, Intake::Event(_)))
                }
                Command::SetAside { .. } => true,
                Command::DeleteUpTo { .. } | Command::Ping { .. } | Command::ReadMark { .. } => {
                    false
                }
            });
            self.prune();
            let outcome = commit_group(
                &mut self.conn,
                self.path,
                &mut group,
                (&self.bound, self.options.quarantine, &self.epoch),
                &mut self.seen,
            );
            match outcome {
                Ok(committed) => {
                    self.seen.committed();
                    self.answer(group, committed);
                    if added_events {
                        self.committed.notify_one();
                    }
                }
                Err(error) => {
                    self.seen.rolled_back();
                    self.fail(group, &error);
                }
            }
        }
    }

    /// `first` and every command already queued behind it, up to `group_commit_max` rows; pings are answered.
    fn gather(&self, first: Command, inbox: &mpsc::Receiver<Command>) -> Vec<Command> {
        let group_commit_max = self.options.group_commit_max.max(1);
        let mut rows = group_rows(&first);
        let mut group = vec![first];
        while rows < group_commit_max {
            match inbox.try_recv() {
                Ok(Command::Ping { reply }) => drop(reply.send(())),
                Ok(Command::ReadMark { source, reply }) => {
                    drop(reply.send(self.read_mark(&source)));
                }
                Ok(next) => {
                    rows += group_rows(&next);
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        group
    }

    /// The source's mark as last committed (reads see only committed transactions).
    fn read_mark(&self, source: &str) -> Result<Option<String>, WriteFailure> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(
                "SELECT mark FROM source_marks WHERE source = ?1",
                [source],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| WriteFailure::Other(e.to_string()))
    }

    fn prune(&mut self) {
        let by_age = self.last_prune.elapsed() >= PRUNE_EVERY;
        if by_age || self.seen.overfull() {
            if let Err(error) = self.seen.prune(&self.conn, self.path, by_age) {
                tracing::warn!(%error, "cannot prune the dedup window; it grows until the next try");
            }
            if by_age {
                self.last_prune = std::time::Instant::now();
            }
        }
    }

    /// The group committed: publish the level, log what the bounds dropped, answer every command.
    fn answer(&mut self, group: Vec<Command>, committed: Committed) {
        let Committed {
            results,
            level,
            dropped,
            quarantine_dropped,
        } = committed;
        self.bound.level = level;
        self.live.publish(level);
        if quarantine_dropped > 0 {
            tracing::warn!(
                dropped = quarantine_dropped,
                max_entries = self.options.quarantine.max_entries,
                max_bytes = self.options.quarantine.max_bytes,
                "quarantine over its bounds: dropped its oldest entries; counted in outbox stats and metrics"
            );
        }
        if dropped > 0 {
            tracing::warn!(
                dropped,
                max_events = self.bound.max_events,
                max_bytes = self.bound.max_bytes,
                max_age_ms = self.bound.max_age_ms,
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
                (Command::SetAside { reply, .. }, Done::SetAside(found)) => {
                    let _ = reply.send(Ok(found));
                }
                _ => unreachable!("results follow commands one to one; pings are answered before"),
            }
        }
        if std::mem::take(&mut self.disk_full) {
            tracing::info!("the outbox has disk space again: taking results");
        }
    }

    /// The group rolled back: every command gets the reason, nothing of it was stored.
    fn fail(&mut self, group: Vec<Command>, error: &OutboxError) {
        let reason = if is_disk_full(error) {
            if !self.disk_full {
                tracing::error!(path = %self.path.display(), "the disk holding the outbox is full: intake stopped, results stay unacknowledged upstream until space is freed; the outbox file is intact");
                self.disk_full = true;
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
                Command::SetAside { reply, .. } => drop(reply.send(Err(reason.clone()))),
                Command::Ping { reply } => drop(reply.send(())),
                Command::ReadMark { reply, .. } => {
                    drop(reply.send(Err(reason.clone())));
                }
            }
        }
    }
}
