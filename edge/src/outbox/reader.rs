//! Reading the outbox in sequence order, for the forwarder and for operators.

use std::path::{Path, PathBuf};

use linegate_schemas::EdgeEvent;
use rusqlite::{params, Connection};

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
