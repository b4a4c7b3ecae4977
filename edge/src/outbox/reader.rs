//! Reading the outbox in sequence order, for the forwarder and for operators.

use std::path::{Path, PathBuf};

use linegate_schemas::EdgeEvent;
use rusqlite::{params, Connection, OptionalExtension};

use super::schema::{open_for_reading, sqlite_err};
use super::OutboxError;

/// An event as stored, with its sequence number.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Outbox sequence number (also inside `event`).
    pub seq: i64,
    /// The event exactly as committed.
    pub event: EdgeEvent,
}

/// A read connection to the outbox.
pub struct OutboxReader {
    path: PathBuf,
    conn: Connection,
}

impl OutboxReader {
    /// Opens a reader on an outbox the writer has created.
    pub fn open(path: &Path) -> Result<Self, OutboxError> {
        Ok(Self {
            path: path.to_owned(),
            conn: open_for_reading(path)?,
        })
    }

    /// Up to `limit` events with `seq > after`, oldest first.
    pub fn read_after(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>, OutboxError> {
        let err = sqlite_err(&self.path);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")
            .map_err(&err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![after, limit], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .map_err(&err)?;
        let mut events = Vec::new();
        for row in rows {
            let (seq, body) = row.map_err(&err)?;
            let event: EdgeEvent =
                linegate_schemas::from_cbor(&body).map_err(|e| OutboxError::BadRow {
                    path: self.path.clone(),
                    seq,
                    reason: e.to_string(),
                })?;
            events.push(StoredEvent { seq, event });
        }
        Ok(events)
    }

    /// Number of events waiting for Kafka.
    pub fn depth(&self) -> Result<i64, OutboxError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))
            .map_err(sqlite_err(&self.path))
    }

    /// Number of quarantined payloads.
    pub fn quarantined(&self) -> Result<i64, OutboxError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM quarantine", [], |row| row.get(0))
            .map_err(sqlite_err(&self.path))
    }

    /// The next sequence number the writer will assign.
    pub fn next_seq(&self) -> Result<i64, OutboxError> {
        let value: String = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'next_seq'", [], |row| {
                row.get(0)
            })
            .map_err(sqlite_err(&self.path))?;
        value.parse().map_err(|_| OutboxError::BadRow {
            path: self.path.clone(),
            seq: 0,
            reason: format!("meta next_seq `{value}` is not a number"),
        })
    }
}

/// The state of an outbox at a glance, for operators and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxStats {
    /// Events waiting for Kafka.
    pub depth: i64,
    /// Lowest waiting seq, if any.
    pub oldest_seq: Option<i64>,
    /// Capture time of the oldest waiting event, epoch milliseconds.
    pub oldest_captured_at_ms: Option<i64>,
    /// The seq the next event will get.
    pub next_seq: i64,
    /// Payloads in quarantine.
    pub quarantined: i64,
    /// Size of the database file (without WAL), bytes.
    pub file_bytes: i64,
    /// Bytes of the waiting events' bodies (what `max_bytes` bounds).
    pub event_bytes: i64,
    /// Events dropped by policy `drop_oldest` since the outbox was created.
    pub dropped_events: i64,
}

/// One quarantined payload.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantinedPayload {
    /// Row id, for later retry.
    pub id: i64,
    /// Receive time, epoch milliseconds.
    pub received_at_ms: i64,
    /// Source (`mqtt`).
    pub source: String,
    /// Where within the source (MQTT topic).
    pub origin: String,
    /// The payload as received.
    pub payload: Vec<u8>,
    /// Why it was not accepted.
    pub reason: String,
}

impl OutboxReader {
    /// Depth, oldest waiting event, sequence, quarantine and size, counted from the file (a scan of every
    /// waiting event: for the operator's `outbox stats`, not for a metrics scrape).
    pub fn stats(&self) -> Result<OutboxStats, OutboxError> {
        let (depth, event_bytes) = self
            .conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(length(body)), 0) FROM events",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(sqlite_err(&self.path))?;
        self.stats_with_level(depth, event_bytes)
    }

    /// [`OutboxReader::stats`] with depth and bytes as the running writer counts them; every other figure is
    /// an index lookup, so a scrape costs the same on an empty outbox and on a backlog of millions.
    pub fn stats_with_level(
        &self,
        depth: i64,
        event_bytes: i64,
    ) -> Result<OutboxStats, OutboxError> {
        let err = sqlite_err(&self.path);
        let (oldest_seq, oldest_captured_at_ms) = self
            .conn
            .query_row(
                "SELECT seq, captured_at_ms FROM events ORDER BY seq LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(&err)?
            .unwrap_or((None, None));
        let file_bytes = self
            .conn
            .query_row(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                [],
                |row| row.get(0),
            )
            .map_err(&err)?;
        let dropped_events = self
            .conn
            .query_row(
                "SELECT COALESCE(CAST(value AS INTEGER), 0) FROM meta WHERE key = 'dropped_events'",
                [],
                |row| row.get::<_, Option<i64>>(0),
            )
            .optional()
            .map_err(&err)?
            .flatten()
            .unwrap_or(0);
        Ok(OutboxStats {
            event_bytes,
            dropped_events,
            depth,
            oldest_seq,
            oldest_captured_at_ms,
            next_seq: self.next_seq()?,
            quarantined: self.quarantined()?,
            file_bytes,
        })
    }

    /// Up to `limit` quarantined payloads, oldest first.
    pub fn quarantine(&self, limit: usize) -> Result<Vec<QuarantinedPayload>, OutboxError> {
        let err = sqlite_err(&self.path);
        let mut stmt = self
            .conn
            .prepare("SELECT id, received_at_ms, source, origin, payload, reason FROM quarantine ORDER BY id LIMIT ?1")
            .map_err(&err)?;
        let rows = stmt
            .query_map(
                params![i64::try_from(limit).unwrap_or(i64::MAX)],
                QuarantinedPayload::from_row,
            )
            .map_err(&err)?;
        rows.collect::<Result<_, _>>().map_err(&err)
    }
}

impl QuarantinedPayload {
    /// The columns `id, received_at_ms, source, origin, payload, reason`, in that order.
    pub(super) fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(QuarantinedPayload {
            id: row.get(0)?,
            received_at_ms: row.get(1)?,
            source: row.get(2)?,
            origin: row.get(3)?,
            payload: row.get(4)?,
            reason: row.get(5)?,
        })
    }
}
