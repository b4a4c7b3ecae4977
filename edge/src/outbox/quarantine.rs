//! The quarantine table's two ways in besides intake, and its bound.
//!
//! An event Kafka refuses for good (too large, an invalid record) is moved out of the sending queue into
//! quarantine with the reason ([`set_aside`]), in the same transaction as the report that says so, so the rows
//! behind it flow and nothing is lost without a trace. The table itself is bounded ([`enforce_bound`]): a
//! publisher of garbage must not fill the disk the results need; the oldest entries go first, counted in
//! `meta.quarantine_dropped`.

use std::path::Path;

use rusqlite::{params, OptionalExtension, Transaction};

use super::schema::{delete_counted, sqlite_err, Oldest};
use super::OutboxError;

/// `source` of a quarantined event that Kafka refused.
pub const SET_ASIDE_SOURCE: &str = "forward";

/// Most entries and payload bytes the quarantine keeps.
#[derive(Debug, Clone, Copy)]
pub struct QuarantineBound {
    /// Most entries.
    pub max_entries: i64,
    /// Most bytes of payloads.
    pub max_bytes: i64,
}

/// Moves the waiting event `seq` into quarantine with `reason`. Returns the bytes of its body, or `None`
/// when no such event waits (already deleted: nothing to do).
pub(super) fn set_aside(
    tx: &Transaction<'_>,
    path: &Path,
    seq: i64,
    reason: &str,
    at_ms: i64,
) -> Result<Option<i64>, OutboxError> {
    let err = sqlite_err(path);
    let row: Option<(String, Vec<u8>)> = tx
        .query_row(
            "SELECT event_id, body FROM events WHERE seq = ?1",
            params![seq],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(&err)?;
    let Some((event_id, body)) = row else {
        return Ok(None);
    };
    tx.execute(
        "INSERT INTO quarantine (received_at_ms, source, origin, payload, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            at_ms,
            SET_ASIDE_SOURCE,
            format!("outbox seq {seq}, event {event_id}"),
            body,
            reason
        ],
    )
    .map_err(&err)?;
    tx.execute("DELETE FROM events WHERE seq = ?1", params![seq])
        .map_err(&err)?;
    Ok(Some(i64::try_from(body.len()).unwrap_or(i64::MAX)))
}

/// Deletes the oldest quarantine entries while the table is over `bound`; counts them in
/// `meta.quarantine_dropped`. Returns how many it deleted.
pub(super) fn enforce_bound(
    tx: &Transaction<'_>,
    path: &Path,
    bound: QuarantineBound,
) -> Result<i64, OutboxError> {
    let err = sqlite_err(path);
    let (mut entries, mut bytes): (i64, i64) = tx
        .query_row(
            "SELECT COUNT(*), COALESCE(SUM(length(payload)), 0) FROM quarantine",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(&err)?;
    let over = |entries: i64, bytes: i64| entries > bound.max_entries || bytes > bound.max_bytes;
    if !over(entries, bytes) {
        return Ok(0);
    }
    let mut last = None;
    let mut dropped = 0;
    {
        let mut stmt = tx
            .prepare("SELECT id, length(payload) FROM quarantine ORDER BY id")
            .map_err(&err)?;
        let mut rows = stmt.query([]).map_err(&err)?;
        // The newest entry always stays: it is what the operator must see first.
        while entries > 1 && over(entries, bytes) {
            let Some(row) = rows.next().map_err(&err)? else {
                break;
            };
            let (id, size): (i64, i64) = (row.get(0).map_err(&err)?, row.get(1).map_err(&err)?);
            entries -= 1;
            bytes -= size;
            last = Some(id);
            dropped += 1;
        }
    }
    if let Some(id) = last {
        delete_counted(tx, path, Oldest::Quarantine { through: id }, dropped)?;
    }
    Ok(dropped)
}
