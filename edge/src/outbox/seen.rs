//! The dedup window: which event ids the outbox stored lately, so that a result delivered again (an MQTT
//! redelivery after a crash between commit and PUBACK, a PLC report made twice) is stored once.
//!
//! The ids live twice: in the file as an append-only log (`seen_log`, in commit order, so a group commit adds
//! a page or two instead of dirtying one random B-tree page per id, which cost four times the whole insert),
//! and in memory as a set, for the lookup. The set is loaded from the log when the writer starts and follows
//! rows other processes (`outbox quarantine retry`) logged before each transaction. The window ends at
//! `dedup_window_ms` of age or at `max_ids` ids, whichever comes first: the count bounds the memory.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::{params, Connection};

use super::schema::sqlite_err;
use super::OutboxError;

/// Ids over `max_ids` tolerated before pruning, so that pruning runs once per many commits, not every one.
const SLACK_DIVISOR: usize = 10;

/// The ids of the dedup window; ids of the open transaction are pending until it commits.
pub(super) struct SeenIds {
    ids: HashSet<u128>,
    /// Ids the open transaction added to `ids`: a rollback takes them out again.
    pending: Vec<u128>,
    /// The log id of the open transaction's last row.
    pending_up_to: i64,
    /// Highest `seen_log.id` reflected in `ids`.
    loaded_up_to: i64,
    window_ms: i64,
    max_ids: usize,
}

/// What [`SeenIds::remember`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// First time within the window: logged.
    New,
    /// Stored within the window already.
    Again,
}

impl SeenIds {
    /// The window as the log holds it now: the newest `max_ids` ids younger than `window_ms`.
    pub(super) fn load(
        conn: &Connection,
        path: &Path,
        window_ms: i64,
        max_ids: usize,
    ) -> Result<Self, OutboxError> {
        let mut seen = Self {
            ids: HashSet::new(),
            pending: Vec::new(),
            pending_up_to: 0,
            loaded_up_to: 0,
            window_ms,
            max_ids: max_ids.max(1),
        };
        seen.prune(conn, path, true)?;
        seen.follow(conn, path)?;
        Ok(seen)
    }

    /// Takes in ids that another process logged since the last look; call inside the write transaction,
    /// before the first [`SeenIds::remember`], so nothing can be logged between the look and the lookups.
    pub(super) fn follow(&mut self, conn: &Connection, path: &Path) -> Result<(), OutboxError> {
        let err = sqlite_err(path);
        let mut stmt = conn
            .prepare_cached("SELECT id, event_id FROM seen_log WHERE id > ?1 ORDER BY id")
            .map_err(&err)?;
        let mut rows = stmt.query(params![self.loaded_up_to]).map_err(&err)?;
        while let Some(row) = rows.next().map_err(&err)? {
            self.loaded_up_to = row.get(0).map_err(&err)?;
            let text = row.get_ref(1).and_then(|v| Ok(v.as_str()?)).map_err(&err)?;
            if let Some(id) = key(text) {
                self.ids.insert(id);
            }
        }
        Ok(())
    }

    /// Looks `event_id` up and, if it is new, logs it in the open transaction `conn`.
    pub(super) fn remember(
        &mut self,
        conn: &Connection,
        path: &Path,
        event_id: &str,
        at_ms: i64,
    ) -> Result<Seen, OutboxError> {
        // Every event id is a UUID (checked or made at capture); anything else is never taken for a repeat.
        if let Some(id) = key(event_id) {
            if !self.ids.insert(id) {
                return Ok(Seen::Again);
            }
            self.pending.push(id);
        }
        conn.prepare_cached("INSERT INTO seen_log (event_id, seen_at_ms) VALUES (?1, ?2)")
            .and_then(|mut stmt| stmt.execute(params![event_id, at_ms]))
            .map_err(sqlite_err(path))?;
        self.pending_up_to = conn.last_insert_rowid();
        Ok(Seen::New)
    }

    /// The open transaction committed: its ids stay in the window.
    pub(super) fn committed(&mut self) {
        self.pending.clear();
        self.loaded_up_to = self.loaded_up_to.max(self.pending_up_to);
    }

    /// The open transaction rolled back: its ids were never stored.
    pub(super) fn rolled_back(&mut self) {
        for id in self.pending.drain(..) {
            self.ids.remove(&id);
        }
        self.pending_up_to = self.loaded_up_to;
    }

    /// Whether the window holds so many more ids than `max_ids` that it is time to prune.
    pub(super) fn overfull(&self) -> bool {
        self.ids.len() > self.max_ids + self.max_ids / SLACK_DIVISOR
    }

    /// Forgets the ids beyond the window's count and, with `by_age`, those older than the window, in the log
    /// and in memory (one transaction of its own: if it is lost in a crash, the rows are pruned again at the
    /// next start). The count bound is one index lookup; the age bound scans the log (once a minute).
    pub(super) fn prune(
        &mut self,
        conn: &Connection,
        path: &Path,
        by_age: bool,
    ) -> Result<(), OutboxError> {
        let err = sqlite_err(path);
        let max_ids = i64::try_from(self.max_ids).unwrap_or(i64::MAX);
        // Log ids are contiguous (AUTOINCREMENT, deleted only from the oldest end), so the count bound is a
        // cut-off id; the age bound is one too, as rows are logged in time order.
        let newest: Option<i64> = conn
            .query_row("SELECT MAX(id) FROM seen_log", [], |row| row.get(0))
            .map_err(&err)?;
        let mut cutoff = newest.unwrap_or(0).saturating_sub(max_ids);
        if by_age {
            let horizon = crate::capture::now_ms().saturating_sub(self.window_ms);
            let aged: Option<i64> = conn
                .query_row(
                    "SELECT MAX(id) FROM seen_log WHERE seen_at_ms < ?1",
                    params![horizon],
                    |row| row.get(0),
                )
                .map_err(&err)?;
            cutoff = cutoff.max(aged.unwrap_or(0));
        }
        if cutoff <= 0 {
            return Ok(());
        }
        {
            let mut stmt = conn
                .prepare_cached("SELECT event_id FROM seen_log WHERE id <= ?1")
                .map_err(&err)?;
            let mut rows = stmt.query(params![cutoff]).map_err(&err)?;
            while let Some(row) = rows.next().map_err(&err)? {
                let text = row.get_ref(0).and_then(|v| Ok(v.as_str()?)).map_err(&err)?;
                if let Some(id) = key(text) {
                    self.ids.remove(&id);
                }
            }
        }
        conn.execute("DELETE FROM seen_log WHERE id <= ?1", params![cutoff])
            .map_err(&err)?;
        self.ids
            .shrink_to(self.max_ids + self.max_ids / SLACK_DIVISOR);
        Ok(())
    }
}

/// The set's key for an event id: the UUID's 128 bits (exact, no hash collision can make two ids one).
fn key(event_id: &str) -> Option<u128> {
    uuid::Uuid::parse_str(event_id).ok().map(|u| u.as_u128())
}
