//! One group commit of the outbox writer: deletes, appends with seq assignment, set-asides and the bounds,
//! all in one IMMEDIATE transaction. Nothing here is visible to anyone before COMMIT.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::items::Command;
use super::quarantine::{enforce_bound, set_aside, QuarantineBound};
use super::schema::{delete_counted, sqlite_err, Oldest};
use super::seen::{Seen, SeenIds};
use super::{FullPolicy, Intake, OutboxError, Stored};

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
        delete_counted(tx, path, Oldest::Events { through: seq }, dropped)?;
    }
    Ok(dropped)
}

/// Where a stored event's numbers come from: the seq counter (read inside the transaction) and the
/// outbox's epoch (made with the file).
pub(super) struct Numbering<'e> {
    /// The seq the next stored event gets.
    pub(super) next_seq: i64,
    /// The outbox's epoch.
    pub(super) epoch: &'e str,
}

/// What one command of a committed group did.
pub(super) enum Done {
    Appended(Vec<Stored>),
    Deleted,
    /// Whether the event was there to set aside.
    SetAside(bool),
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
pub(super) struct Committed {
    pub(super) results: Vec<Done>,
    pub(super) level: Level,
    pub(super) dropped: i64,
    /// Quarantine entries deleted by its bound.
    pub(super) quarantine_dropped: i64,
}

pub(super) fn commit_group(
    conn: &mut Connection,
    path: &Path,
    group: &mut [Command],
    (bound, quarantine, epoch): (&Bound, QuarantineBound, &str),
    seen: &mut SeenIds,
) -> Result<Committed, OutboxError> {
    let err = sqlite_err(path);
    let mut dropped_total = 0;
    // IMMEDIATE: take the write lock before reading next_seq, so an operator's `quarantine retry` in another
    // process can never hand out the same seq.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(&err)?;
    let mut numbering = Numbering {
        next_seq: read_next_seq(&tx, path)?,
        epoch,
    };
    seen.follow(&tx, path)?;
    let mut results: Vec<Option<Done>> = group.iter().map(|_| None).collect();
    let mut level = bound.level;
    apply_deletes(&tx, path, group, &mut results, &mut level)?;
    let mut quarantined = false;
    for (command, result) in group.iter_mut().zip(results.iter_mut()) {
        match command {
            Command::Append { items, .. } => {
                let stored =
                    append_items(&tx, path, items, &mut numbering, &mut level, bound, seen)?;
                quarantined |= stored.contains(&Stored::Quarantined);
                *result = Some(Done::Appended(stored));
            }
            Command::SetAside {
                seq,
                reason,
                report,
                ..
            } => {
                let found = set_aside(&tx, path, *seq, reason, crate::capture::now_ms())?;
                if let Some(bytes) = found {
                    level.depth -= 1;
                    level.bytes -= bytes;
                    quarantined = true;
                    let mut items = [Intake::Event(report.clone())];
                    append_items(
                        &tx,
                        path,
                        &mut items,
                        &mut numbering,
                        &mut level,
                        bound,
                        seen,
                    )?;
                }
                *result = Some(Done::SetAside(found.is_some()));
            }
            Command::DeleteUpTo { .. } | Command::Ping { .. } | Command::ReadMark { .. } => {}
        }
    }
    if bound.policy == FullPolicy::DropOldest {
        dropped_total = drop_oldest(&tx, path, &mut level, bound)?;
    }
    let quarantine_dropped = if quarantined {
        enforce_bound(&tx, path, quarantine)?
    } else {
        0
    };
    finish(tx, path, numbering.next_seq)?;
    Ok(Committed {
        results: results
            .into_iter()
            .map(|r| r.expect("every command has a result"))
            .collect(),
        level,
        dropped: dropped_total,
        quarantine_dropped,
    })
}

/// The group's Kafka confirmations: the rows up to each confirmed seq deleted first, so that the room they
/// free is usable by the group's appends.
fn apply_deletes(
    tx: &Transaction<'_>,
    path: &Path,
    group: &[Command],
    results: &mut [Option<Done>],
    level: &mut Level,
) -> Result<(), OutboxError> {
    let err = sqlite_err(path);
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
                *level = Level::of(tx, path)?;
            }
            *result = Some(Done::Deleted);
        }
    }
    Ok(())
}

/// Stores the next seq and commits the group's transaction.
pub(super) fn finish(tx: Transaction<'_>, path: &Path, next_seq: i64) -> Result<(), OutboxError> {
    let err = sqlite_err(path);
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'next_seq'",
        params![next_seq.to_string()],
    )
    .map_err(&err)?;
    tx.commit().map_err(&err)
}

pub(super) fn append_items(
    tx: &Transaction<'_>,
    path: &Path,
    items: &mut [Intake],
    numbering: &mut Numbering<'_>,
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
                let seq = numbering.next_seq;
                // Set in place: a failed transaction is retried with new seqs anyway.
                event.seq = seq;
                numbering.epoch.clone_into(&mut event.outbox_epoch);
                let stored = &**event;
                let body = linegate_schemas::encode(stored).map_err(|e| OutboxError::BadRow {
                    path: path.to_owned(),
                    seq,
                    reason: e.to_string(),
                })?;
                insert_event
                    .execute(params![seq, stored.event_id, stored.timestamp, body])
                    .map_err(&err)?;
                numbering.next_seq += 1;
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
            Intake::Mark(mark) => {
                tx.prepare_cached(
                    "INSERT INTO source_marks (source, mark) VALUES (?1, ?2) \
                     ON CONFLICT (source) DO UPDATE SET mark = excluded.mark",
                )
                .and_then(|mut upsert| upsert.execute(params![mark.source, mark.mark]))
                .map_err(&err)?;
                seqs.push(Stored::Marked);
            }
        }
    }
    Ok(seqs)
}
