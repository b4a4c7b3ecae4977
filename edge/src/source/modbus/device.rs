//! One PLC: connect, run the result handshake, reconnect with backoff. Never panics on the device's
//! behaviour: errors are counted, logged once per state change, and retried.

use std::collections::BTreeMap;
use std::time::Duration;

use linegate_schemas::SystemEventType;
use tokio::sync::watch;
use tokio_modbus::client::Context;

use super::connect::{connect, read, read_words, write, DeviceError};
use super::decode::{interpret, Raw};
use super::history::{id_key, Mark};
use crate::capture::{envelope, now_ms, system_event};
use crate::observe::EdgeMetrics;
use crate::outbox::{Intake, OutboxError, OutboxWriter, QuarantineEntry, SourceMark, Stored};
use linegate_station_config::modbus::{DeviceConfig, Table};

/// Runs one device until `shutdown` turns true.
pub(super) async fn run(
    device: DeviceConfig,
    station_id: String,
    writer: OutboxWriter,
    metrics: EdgeMetrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let source = super::source_name(&device.name);
    metrics.set_source_up(&source, false);
    let Some(mut history) = load_history(&device, &source, &writer, &mut shutdown).await else {
        return;
    };
    let mut backoff = Duration::from_millis(device.backoff_min_ms);
    let mut last_problem: Option<String> = None;
    while !*shutdown.borrow() {
        let session = async {
            let mut ctx = connect(&device).await?;
            metrics.set_source_up(&source, true);
            if last_problem.take().is_some() {
                tracing::info!(device = %device.name, "Modbus device answers again");
            } else {
                tracing::info!(device = %device.name, "Modbus device connected");
            }
            backoff = Duration::from_millis(device.backoff_min_ms);
            let mut handshake = Handshake {
                device: &device,
                station_id: &station_id,
                source: &source,
                writer: &writer,
                metrics: &metrics,
                history: &mut history,
            };
            handshake.run(&mut ctx, &mut shutdown).await
        };
        let outcome = session.await;
        metrics.set_source_up(&source, false);
        match outcome {
            Ok(()) => return,
            Err(DeviceError::WriterGone) => return,
            Err(error) => {
                metrics.modbus_errors.get_or_create(&label(&source)).inc();
                let text = error.to_string();
                if last_problem.as_deref() != Some(text.as_str()) {
                    tracing::warn!(device = %device.name, %error, retry_in = ?backoff, "Modbus device not usable; retrying");
                    last_problem = Some(text);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_millis(device.backoff_max_ms));
    }
}

/// The handshake history committed for `source`, read before the first connection; retried while the
/// outbox cannot answer. `None` once shut down or the writer is gone.
async fn load_history(
    device: &DeviceConfig,
    source: &str,
    writer: &OutboxWriter,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Option<Mark>> {
    loop {
        match writer.mark(source).await {
            Ok(text) => {
                let mark = text.as_deref().and_then(Mark::decode);
                if let (Some(text), None) = (&text, mark) {
                    tracing::warn!(device = %device.name, mark = %text, "unreadable handshake history in the outbox; starting a new one");
                }
                return Some(mark);
            }
            Err(OutboxError::WriterGone) => return None,
            Err(error) => {
                tracing::error!(device = %device.name, %error, "cannot read the handshake history from the outbox; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(device.backoff_max_ms)) => {}
            _ = shutdown.changed() => return None,
        }
    }
}

fn label(source: &str) -> crate::observe::metrics::SourceLabel {
    crate::observe::metrics::SourceLabel {
        source: source.to_owned(),
    }
}

/// The handshake state of one connected device.
struct Handshake<'a> {
    device: &'a DeviceConfig,
    station_id: &'a str,
    source: &'a str,
    writer: &'a OutboxWriter,
    metrics: &'a EdgeMetrics,
    /// The last result taken, as committed; see [`super::history`].
    history: &'a mut Option<Mark>,
}

impl Handshake<'_> {
    /// Polls the counter; each change is read, committed, then acknowledged. Returns `Ok` on shutdown.
    async fn run(
        &mut self,
        ctx: &mut Context,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), DeviceError> {
        let hs = self.device.handshake;
        let mut acked = read_words(ctx, self.device, Table::Holding, hs.ack, 1).await?[0];
        let poll = Duration::from_millis(self.device.poll_interval_ms);
        loop {
            let counter = read_words(ctx, self.device, Table::Holding, hs.counter, 1).await?[0];
            if counter != acked && counter.wrapping_sub(acked) > 0x8000 {
                // Backwards within a session (a PLC behind a gateway or on a serial line restarted): with its
                // acknowledge register reset to the counter, it has nothing pending.
                let ack = read_words(ctx, self.device, Table::Holding, hs.ack, 1).await?[0];
                if ack == counter {
                    acked = ack;
                }
            }
            self.settle_if_gone(acked, counter).await?;
            if counter != acked && self.take_result(ctx, acked, counter).await? {
                write(ctx, self.device, hs.ack, counter).await?;
                acked = counter;
                self.remember_acknowledged().await?;
                continue; // another result may be waiting already
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    /// Reads the result behind `counter`, commits it (with a loss report if the counter jumped); returns
    /// whether it may be acknowledged.
    async fn take_result(
        &mut self,
        ctx: &mut Context,
        acked: u16,
        counter: u16,
    ) -> Result<bool, DeviceError> {
        let step = counter.wrapping_sub(acked);
        let era = Mark::era_of(*self.history, acked, counter);
        let mut items = Vec::with_capacity(3);
        if step > 0x8000 {
            tracing::warn!(device = %self.device.name, acked, counter, "the PLC result counter went backwards (PLC restarted?); taking its current result");
        } else if step > 1 {
            let lost = step - 1;
            self.metrics
                .results_lost
                .get_or_create(&label(self.source))
                .inc_by(u64::from(lost));
            let message = format!(
                "the result counter of {} jumped from {acked} to {counter}: {lost} results were lost at the station",
                self.device.name
            );
            tracing::error!(device = %self.device.name, acked, counter, lost, "{message}");
            let key = id_key(
                "lost",
                self.station_id,
                &self.device.name,
                era,
                &format!("{acked}:{counter}"),
            );
            let id = uuid::Uuid::new_v5(&linegate_common_namespace(), key.as_bytes());
            items.push(Intake::Event(Box::new(system_event(
                self.station_id,
                SystemEventType::ResultsLost,
                self.source,
                message,
                BTreeMap::from([
                    ("device".to_owned(), self.device.name.clone()),
                    ("first_lost".to_owned(), acked.wrapping_add(1).to_string()),
                    ("last_lost".to_owned(), counter.wrapping_sub(1).to_string()),
                    ("lost".to_owned(), lost.to_string()),
                ]),
                Some(id),
            ))));
        }
        items.push(self.read_result(ctx, era, counter).await?);
        let mark = Mark {
            era,
            counter,
            ack_before: acked,
            acknowledged: false,
        };
        items.push(Intake::Mark(SourceMark {
            source: self.source.to_owned(),
            mark: mark.encode(),
        }));
        loop {
            let stored = match self.writer.append(items.clone()).await {
                Ok(stored) => stored,
                Err(OutboxError::WriterGone) => return Err(DeviceError::WriterGone),
                Err(error) => {
                    tracing::error!(device = %self.device.name, %error, "outbox refused a PLC result; not acknowledging it, retrying");
                    tokio::time::sleep(Duration::from_millis(self.device.backoff_min_ms)).await;
                    continue;
                }
            };
            self.metrics.record_stored(self.source, &stored);
            // Outbox full (policy block): not acknowledged, so the PLC keeps the result and the counter; the
            // next poll offers it again (a loss report already stored is recognised by its id).
            let taken = stored.iter().all(|s| !matches!(s, Stored::Refused));
            if taken {
                *self.history = Some(mark);
            }
            return Ok(taken);
        }
    }

    /// The last result taken, still unacknowledged in the mark, is no longer offered when the PLC shows
    /// another counter or acknowledges it (the edge's own write before a crash): from now on its counter
    /// value, seen again, is a new result.
    async fn settle_if_gone(&mut self, ack: u16, counter: u16) -> Result<(), DeviceError> {
        match *self.history {
            Some(mark)
                if !mark.acknowledged && (counter != mark.counter || ack == mark.counter) =>
            {
                self.remember_acknowledged().await
            }
            _ => Ok(()),
        }
    }

    /// Commits that the last result taken is acknowledged: from now on its counter value, seen again, is a
    /// new result (the PLC restarted). A failed commit is logged; the mark in memory still holds.
    async fn remember_acknowledged(&mut self) -> Result<(), DeviceError> {
        let Some(mark) = self.history.as_mut() else {
            return Ok(());
        };
        mark.acknowledged = true;
        let item = Intake::Mark(SourceMark {
            source: self.source.to_owned(),
            mark: mark.encode(),
        });
        match self.writer.append(vec![item]).await {
            Ok(_) => Ok(()),
            Err(OutboxError::WriterGone) => Err(DeviceError::WriterGone),
            Err(error) => {
                tracing::warn!(device = %self.device.name, %error, "cannot commit that a PLC result was acknowledged; an edge restart now would take the next same-counter result after a PLC restart for a read again");
                Ok(())
            }
        }
    }

    /// Reads every mapped field; a value the map cannot interpret goes to quarantine with the raw registers.
    async fn read_result(
        &mut self,
        ctx: &mut Context,
        era: u64,
        counter: u16,
    ) -> Result<Intake, DeviceError> {
        let mut raws = Vec::with_capacity(self.device.fields.len());
        let mut raw_dump = Vec::new();
        for field in &self.device.fields {
            let raw = match (field.address, field.constant.is_some()) {
                (_, true) | (None, _) => Raw::Words(Vec::new()),
                (Some(address), false) => {
                    read(ctx, self.device, field.table, address, field.width()).await?
                }
            };
            if let Raw::Words(words) = &raw {
                raw_dump.extend(words.iter().flat_map(|w| w.to_be_bytes()));
            }
            raws.push(raw);
        }
        let captured_at_ms = now_ms();
        let built = interpret(&self.device.fields, &raws, captured_at_ms);
        Ok(match built {
            Ok(mut event) => {
                let key = id_key(
                    "result",
                    self.station_id,
                    &self.device.name,
                    era,
                    &format!("{counter}:{}", hex::encode(&raw_dump)),
                );
                let id = uuid::Uuid::new_v5(&linegate_common_namespace(), key.as_bytes());
                event.event_id = id.hyphenated().to_string();
                Intake::Event(Box::new(envelope(
                    self.station_id,
                    event,
                    None,
                    captured_at_ms,
                )))
            }
            Err(reason) => {
                tracing::warn!(device = %self.device.name, counter, %reason, "quarantined a PLC result");
                Intake::Quarantine(QuarantineEntry {
                    source: self.source.to_owned(),
                    origin: format!("counter {counter}"),
                    payload: raw_dump,
                    reason,
                    received_at_ms: captured_at_ms,
                })
            }
        })
    }
}

/// Namespace of the edge's derived ids (UUID v5); fixed forever.
fn linegate_common_namespace() -> uuid::Uuid {
    uuid::Uuid::from_u128(0x6c69_6e65_6761_7465_8000_0000_0000_0002)
}
