//! Opening the outbox file: pragmas, tables, and the station check.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{OutboxError, Synchronous};

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq            INTEGER PRIMARY KEY,  -- gapless per station, assigned at commit
    event_id       TEXT NOT NULL,
    captured_at_ms INTEGER NOT NULL,
    body           BLOB NOT NULL         -- the EdgeEvent as Kafka gets it (Avro single-object), seq included;
                                         -- CBOR in files written before that, still read
);
CREATE TABLE IF NOT EXISTS seen_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,  -- commit order; deleted only from the oldest end
    event_id   TEXT NOT NULL,                      -- ids of events stored within the dedup window
    seen_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at_ms INTEGER NOT NULL,
    source         TEXT NOT NULL,        -- e.g. mqtt
    origin         TEXT NOT NULL,        -- e.g. the MQTT topic
    payload        BLOB NOT NULL,
    reason         TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS source_marks (
    source TEXT PRIMARY KEY,             -- e.g. modbus:press-1
    mark   TEXT NOT NULL                 -- the source's own bookkeeping, committed with its results
);
";

pub(super) fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> OutboxError + '_ {
    move |source| OutboxError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

/// The oldest rows a bound drops: waiting events up to a seq, or quarantine entries up to an id.
pub(super) enum Oldest {
    /// `events` rows with `seq <= through`; counted in `meta.dropped_events`.
    Events {
        /// The last seq dropped.
        through: i64,
    },
    /// `quarantine` rows with `id <= through`; counted in `meta.quarantine_dropped`.
    Quarantine {
        /// The last id dropped.
        through: i64,
    },
}

/// Deletes the `oldest` rows and adds `count` to their drop counter, in the caller's transaction: a
/// policy drop is never silent.
pub(super) fn delete_counted(
    tx: &Transaction<'_>,
    path: &Path,
    oldest: Oldest,
    count: i64,
) -> Result<(), OutboxError> {
    let err = sqlite_err(path);
    let (delete, counter, through) = match oldest {
        Oldest::Events { through } => (
            "DELETE FROM events WHERE seq <= ?1",
            "dropped_events",
            through,
        ),
        Oldest::Quarantine { through } => (
            "DELETE FROM quarantine WHERE id <= ?1",
            "quarantine_dropped",
            through,
        ),
    };
    tx.execute(delete, params![through]).map_err(&err)?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + ?2",
        params![counter, count],
    )
    .map_err(&err)?;
    Ok(())
}

/// Opens (creating if needed) the outbox for `station_id` with the writer's pragmas.
pub(super) fn open_for_writing(
    path: &Path,
    station_id: &str,
    synchronous: Synchronous,
) -> Result<Connection, OutboxError> {
    let err = sqlite_err(path);
    let conn = Connection::open(path).map_err(&err)?;
    let sync = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA busy_timeout=5000;"
    ))
    .map_err(&err)?;
    conn.execute_batch(TABLES).map_err(&err)?;
    migrate_seen(&conn).map_err(&err)?;
    let found: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'station_id'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(&err)?;
    match found {
        Some(found) if found != station_id => {
            return Err(OutboxError::WrongStation {
                path: path.to_owned(),
                expected: station_id.to_owned(),
                found,
            })
        }
        Some(_) => {}
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('station_id', ?1)",
                params![station_id],
            )
            .map_err(&err)?;
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', '1')",
                [],
            )
            .map_err(&err)?;
            // A new file is a new sequence: the epoch tells the centre so (dedup keys on it). A file made by
            // an earlier build has none and keeps the empty epoch, so its sequence goes on as it was.
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('outbox_epoch', ?1)",
                params![uuid::Uuid::new_v4().hyphenated().to_string()],
            )
            .map_err(&err)?;
        }
    }
    Ok(conn)
}

/// The outbox's epoch, made with the file; empty for a file made before outboxes had one.
pub(super) fn read_epoch(conn: &Connection, path: &Path) -> Result<String, OutboxError> {
    Ok(conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'outbox_epoch'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(sqlite_err(path))?
        .unwrap_or_default())
}

/// Moves the ids of an outbox written before the dedup log (table `seen`, keyed by id) into `seen_log`, oldest
/// first, in one transaction.
fn migrate_seen(conn: &Connection) -> rusqlite::Result<()> {
    let old: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'seen')",
        [],
        |row| row.get(0),
    )?;
    if old {
        conn.execute_batch(
            "BEGIN IMMEDIATE;
             INSERT INTO seen_log (event_id, seen_at_ms)
                 SELECT event_id, seen_at_ms FROM seen ORDER BY seen_at_ms, event_id;
             DROP TABLE seen;
             COMMIT;",
        )?;
    }
    Ok(())
}

/// Opens a read connection; the writer must have created the file.
pub(super) fn open_for_reading(path: &Path) -> Result<Connection, OutboxError> {
    let err = sqlite_err(path);
    let conn = Connection::open(path).map_err(&err)?;
    conn.execute_batch("PRAGMA busy_timeout=5000;")
        .map_err(&err)?;
    Ok(conn)
}
