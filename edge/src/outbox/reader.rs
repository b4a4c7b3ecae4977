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

/// An event as stored, in the single-object encoding Kafka gets.
#[derive(Debug, Clone)]
pub struct EncodedEvent {
    /// Outbox sequence number (also inside the encoded event).
    pub seq: i64,
    /// The event id, for the `idempotency-key` header.
    pub event_id: String,
    /// The single-object encoded `EdgeEvent`, or why this row cannot be sent.
    pub value: Result<Vec<u8>, String>,
}

/// Decodes a stored body: single-object Avro (what the writer stores), or CBOR (what outboxes written by
/// earlier builds hold; single-object's first byte, 0xC3, is a CBOR tag, never the map CBOR rows start with).
fn decode_body(body: &[u8]) -> Result<EdgeEvent, String> {
    if body.starts_with(&linegate_schemas::SINGLE_OBJECT_MAGIC) {
        linegate_schemas::decode(body).map_err(|e| e.to_string())
    } else {
        linegate_schemas::from_cbor(body).map_err(|e| e.to_string())
    }
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

    /// Up to `limit` events with `seq > after`, oldest first, decoded (for operators and tests).
    pub fn read_after(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>, OutboxError> {
        let mut events = Vec::new();
        self.each_row_after(after, limit, |seq, _event_id, body| {
            let event = decode_body(body).map_err(|reason| self.bad_row(seq, reason))?;
            events.push(StoredEvent { seq, event });
            Ok(())
        })?;
        Ok(events)
    }

    /// Up to `limit` events with `seq > after`, oldest first, as Kafka takes them: a row is stored in the
    /// single-object encoding the forwarder sends, so it is passed on as it is, not decoded.
    pub fn read_encoded_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EncodedEvent>, OutboxError> {
        let mut events = Vec::with_capacity(limit.min(4096));
        self.each_row_after(after, limit, |seq, event_id, body| {
            let value = if body.starts_with(&linegate_schemas::SINGLE_OBJECT_MAGIC) {
                Ok(body.to_vec())
            } else {
                // A row written before the outbox stored Avro (CBOR): encoded now, as it was then.
                decode_body(body)
                    .and_then(|event| linegate_schemas::encode(&event).map_err(|e| e.to_string()))
            };
            events.push(EncodedEvent {
                seq,
                event_id: event_id.to_owned(),
                value,
            });
            Ok(())
        })?;
        Ok(events)
    }

    /// Calls `each(seq, event_id, body)` for up to `limit` rows after `after`, in seq order, without
    /// copying a body it does not keep.
    fn each_row_after(
        &self,
        after: i64,
        limit: usize,
        mut each: impl FnMut(i64, &str, &[u8]) -> Result<(), OutboxError>,
    ) -> Result<(), OutboxError> {
        let err = sqlite_err(&self.path);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, event_id, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(&err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = stmt.query(params![after, limit]).map_err(&err)?;
        while let Some(row) = rows.next().map_err(&err)? {
            let seq: i64 = row.get(0).map_err(&err)?;
            let event_id = row.get_ref(1).and_then(|v| Ok(v.as_str()?)).map_err(&err)?;
            let body = row
                .get_ref(2)
                .and_then(|v| Ok(v.as_blob()?))
                .map_err(&err)?;
            each(seq, event_id, body)?;
        }
        Ok(())
    }

    /// The station this outbox belongs to (set when the file was created).
    pub fn station_id(&self) -> Result<String, OutboxError> {
        self.conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'station_id'",
                [],
                |row| row.get(0),
            )
            .map_err(sqlite_err(&self.path))
    }

    fn bad_row(&self, seq: i64, reason: String) -> OutboxError {
        OutboxError::BadRow {
            path: self.path.clone(),
            seq,
            reason,
        }
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
    /// Quarantine entries dropped by the quarantine's bounds since the outbox was created.
    pub quarantine_dropped: i64,
    /// The outbox's epoch (made with the file; empty for a file of an earlier build).
    pub epoch: String,
}

/// One quarantined payload.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantinedPayload {
    /// Row id, for later retry.
    pub id: i64,
    /// Receive time, epoch milliseconds.
    pub received_at_ms: i64,
    /// Source: `mqtt`, a Modbus device, or `forward` (an event Kafka refused).
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
        Ok(OutboxStats {
            event_bytes,
            dropped_events: self.meta_count("dropped_events")?,
            quarantine_dropped: self.meta_count("quarantine_dropped")?,
            epoch: super::schema::read_epoch(&self.conn, &self.path)?,
            depth,
            oldest_seq,
            oldest_captured_at_ms,
            next_seq: self.next_seq()?,
            quarantined: self.quarantined()?,
            file_bytes,
        })
    }

    /// A counter kept in `meta` (0 when never set).
    fn meta_count(&self, key: &str) -> Result<i64, OutboxError> {
        Ok(self
            .conn
            .query_row(
                "SELECT COALESCE(CAST(value AS INTEGER), 0) FROM meta WHERE key = ?1",
                [key],
                |row| row.get::<_, Option<i64>>(0),
            )
            .optional()
            .map_err(sqlite_err(&self.path))?
            .flatten()
            .unwrap_or(0))
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
