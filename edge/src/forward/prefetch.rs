//! Reading ahead of the sender: outbox rows (stored as Kafka takes them) are read on a blocking thread while
//! the forwarder task hands the previous batches to librdkafka and waits for their confirmations, so the two
//! halves of the per-event work run on two cores.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::outbox::OutboxReader;

/// Batches read ahead of the sender, at most: enough to keep the sender busy, little memory.
const BATCHES_AHEAD: usize = 2;
/// How often an empty outbox is read again without a commit signal (a missed signal costs at most this).
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// One outbox event ready for Kafka: stored in the encoding Kafka gets, so reading is all there is to do.
pub(super) type Prepared = crate::outbox::EncodedEvent;

/// A running read-ahead from one position; dropping it stops the reading.
pub(super) struct Prefetch {
    /// Batches in seq order, each non-empty, the first one right after the start position.
    pub batches: mpsc::Receiver<Vec<Prepared>>,
    task: JoinHandle<()>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a read-ahead reads from and how.
#[derive(Clone)]
pub(super) struct Source {
    /// The forwarder's read connection.
    pub reader: Arc<Mutex<OutboxReader>>,
    /// Notified after each commit that added events.
    pub committed: Arc<Notify>,
    /// Events per batch.
    pub batch_max: usize,
    /// Wait after a failed read.
    pub retry_backoff: Duration,
}

impl Prefetch {
    /// Starts reading the events after seq `after`.
    pub(super) fn start(source: Source, after: i64) -> Self {
        let (sender, batches) = mpsc::channel(BATCHES_AHEAD);
        let task = tokio::spawn(read_ahead(source, after, sender));
        Self { batches, task }
    }
}

async fn read_ahead(source: Source, mut after: i64, batches: mpsc::Sender<Vec<Prepared>>) {
    loop {
        match read_prepared(&source.reader, after, source.batch_max).await {
            Ok(batch) if batch.is_empty() => {
                tokio::select! {
                    _ = source.committed.notified() => {}
                    _ = tokio::time::sleep(IDLE_RECHECK) => {}
                    _ = batches.closed() => return,
                }
            }
            Ok(batch) => {
                after = batch.last().map_or(after, |event| event.seq);
                if batches.send(batch).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot read the outbox; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(source.retry_backoff) => {}
                    _ = batches.closed() => return,
                }
            }
        }
    }
}

/// Up to `limit` events after `after`, read on a blocking thread.
async fn read_prepared(
    reader: &Arc<Mutex<OutboxReader>>,
    after: i64,
    limit: usize,
) -> Result<Vec<Prepared>, String> {
    let reader = Arc::clone(reader);
    tokio::task::spawn_blocking(move || {
        let reader = reader
            .lock()
            .map_err(|_| "outbox reader poisoned".to_owned())?;
        reader
            .read_encoded_after(after, limit)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The waiting event `seq`, if it still waits.
pub(super) async fn read_one(
    reader: &Arc<Mutex<OutboxReader>>,
    seq: i64,
) -> Result<Option<Prepared>, String> {
    let batch = read_prepared(reader, seq - 1, 1).await?;
    Ok(batch.into_iter().find(|event| event.seq == seq))
}
