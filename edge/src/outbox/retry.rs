//! `outbox quarantine retry`: quarantined payloads parsed again (after a fix of the station software or of the
//! config) move into the outbox as events, in one transaction, taking their seq from the same counter as the
//! writer's. Safe beside a running agent: both write under SQLite's write lock (`BEGIN IMMEDIATE`), and the
//! writer reads `next_seq` inside each of its transactions.

use std::path::Path;

use linegate_schemas::EdgeEvent;
use rusqlite::{params, Transaction, TransactionBehavior};

use super::commit::{append_items, finish, read_next_seq, Bound, Level, Numbering};
use super::reader::QuarantinedPayload;
use super::schema::{open_for_writing, read_epoch, sqlite_err};
use super::seen::SeenIds;
use super::{Intake, OutboxError, OutboxOptions, Stored};

/// What a retry did with one quarantined payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Retried {
    /// Parsed and stored under this seq; removed from quarantine.
    Stored {
        /// Its outbox sequence number.
        seq: i64,
    },
    /// Parsed, but its event id was already stored; removed from quarantine.
    Duplicate,
    /// The outbox is full (policy block): left in quarantine for a later retry.
    Refused,
    /// Still not parseable; left in quarantine with the new reason.
    StillBad(String),
    /// Not something a retry can parse (e.g. raw PLC registers); left as it was, reason unchanged.
    NotRetriable(String),
}

/// Why `parse` did not give an event.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryRefusal {
    /// Parsed again and still bad: the quarantine row gets this reason.
    Unparseable(String),
    /// Not retriable at all: the row stays untouched.
    NotRetriable(String),
}

/// Retries the quarantined payloads with ids in `ids` (all when `None`), oldest first. `parse` turns a payload
/// into the event to store, or says why it cannot.
pub fn retry_quarantined(
    path: &Path,
    station_id: &str,
    options: OutboxOptions,
    ids: Option<&[i64]>,
    parse: impl Fn(&QuarantinedPayload) -> Result<EdgeEvent, RetryRefusal>,
) -> Result<Vec<(i64, Retried)>, OutboxError> {
    let err = sqlite_err(path);
    let mut conn = open_for_writing(path, station_id, options.synchronous)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(&err)?;
    let rows = quarantined(&tx, path, ids)?;
    let epoch = read_epoch(&tx, path)?;
    let mut numbering = Numbering {
        next_seq: read_next_seq(&tx, path)?,
        epoch: &epoch,
    };
    let mut level = Level::of(&tx, path)?;
    // Loaded under the write lock: the running writer cannot log an id between this look and the commit.
    let mut seen = SeenIds::load(&tx, path, options.dedup_window_ms, options.dedup_max_ids)?;
    let bound = Bound {
        level,
        max_events: options.max_events,
        max_bytes: options.max_bytes,
        max_age_ms: None,
        policy: super::FullPolicy::Block,
    };
    let mut outcomes = Vec::with_capacity(rows.len());
    for row in &rows {
        let outcome = match parse(row) {
            Err(RetryRefusal::NotRetriable(reason)) => Retried::NotRetriable(reason),
            Err(RetryRefusal::Unparseable(reason)) => {
                tx.execute(
                    "UPDATE quarantine SET reason = ?1 WHERE id = ?2",
                    params![format!("retried: {reason}"), row.id],
                )
                .map_err(&err)?;
                Retried::StillBad(reason)
            }
            Ok(event) => {
                let mut items = [Intake::Event(Box::new(event))];
                let stored = append_items(
                    &tx,
                    path,
                    &mut items,
                    &mut numbering,
                    &mut level,
                    &bound,
                    &mut seen,
                )?;
                let outcome = match stored.first() {
                    Some(Stored::Event { seq }) => Retried::Stored { seq: *seq },
                    Some(Stored::Duplicate) => Retried::Duplicate,
                    _ => Retried::Refused,
                };
                if outcome != Retried::Refused {
                    tx.execute("DELETE FROM quarantine WHERE id = ?1", params![row.id])
                        .map_err(&err)?;
                }
                outcome
            }
        };
        outcomes.push((row.id, outcome));
    }
    finish(tx, path, numbering.next_seq)?;
    Ok(outcomes)
}

/// The quarantined payloads with ids in `ids` (all when `None`), oldest first.
fn quarantined(
    tx: &Transaction<'_>,
    path: &Path,
    ids: Option<&[i64]>,
) -> Result<Vec<QuarantinedPayload>, OutboxError> {
    let err = sqlite_err(path);
    let mut stmt = tx
        .prepare("SELECT id, received_at_ms, source, origin, payload, reason FROM quarantine ORDER BY id")
        .map_err(&err)?;
    let all = stmt
        .query_map([], QuarantinedPayload::from_row)
        .map_err(&err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(&err)?;
    Ok(all
        .into_iter()
        .filter(|row| ids.is_none_or(|ids| ids.contains(&row.id)))
        .collect())
}
