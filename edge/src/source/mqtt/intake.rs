//! The intake task: commits received publishes to the outbox in groups and only then hands their tickets
//! back to the session, which writes the PUBACKs.

use std::ops::ControlFlow;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Received, Ticket, SOURCE};
use crate::capture::{envelope, now_ms, PayloadReader};
use crate::observe::EdgeMetrics;
use crate::outbox::{Intake, OutboxWriter, QuarantineEntry, Stored};

/// What the intake task needs besides its inbox and the way back to the session.
pub(super) struct IntakeSettings {
    pub(super) station_id: String,
    pub(super) batch_max: usize,
    /// Larger payloads go to quarantine unread (`mqtt.max_payload_bytes`).
    pub(super) max_payload_bytes: usize,
    pub(super) reader: PayloadReader,
    pub(super) writer: OutboxWriter,
    pub(super) metrics: EdgeMetrics,
}

/// Commits what the session passes on, in groups, and hands back the tickets of what is stored.
pub(super) async fn run(
    mut inbox: mpsc::Receiver<Received>,
    acks: mpsc::UnboundedSender<Ticket>,
    settings: IntakeSettings,
) {
    let IntakeSettings {
        station_id,
        batch_max,
        max_payload_bytes,
        reader,
        writer,
        metrics,
    } = settings;
    while let Some(first) = inbox.recv().await {
        let publishes = gather(first, &mut inbox, batch_max);
        let items: Vec<Intake> = publishes
            .iter()
            .map(|publish| to_intake(publish, &station_id, &reader, max_payload_bytes))
            .collect();
        // The payloads are parsed: keep only what the PUBACKs need.
        let tickets: Vec<Ticket> = publishes.into_iter().map(|p| p.ticket).collect();
        if store_then_ack(items, tickets, &writer, &metrics, &acks)
            .await
            .is_break()
        {
            return;
        }
    }
}

/// `first` and what else is already queued, up to `batch_max`: one outbox commit.
fn gather(
    first: Received,
    inbox: &mut mpsc::Receiver<Received>,
    batch_max: usize,
) -> Vec<Received> {
    let mut publishes = vec![first];
    while publishes.len() < batch_max {
        match inbox.try_recv() {
            Ok(publish) => publishes.push(publish),
            Err(_) => break,
        }
    }
    publishes
}

/// Offers the same items (same event ids) until the outbox took all of them; each is acknowledged only once
/// it is stored. A full outbox (policy block) takes a prefix, or nothing, and the rest waits here,
/// unacknowledged, so the broker stops sending once its in-flight window is used up. Breaks when the writer
/// or the session is gone (the broker redelivers what was not acknowledged).
async fn store_then_ack(
    mut items: Vec<Intake>,
    mut tickets: Vec<Ticket>,
    writer: &OutboxWriter,
    metrics: &EdgeMetrics,
    acks: &mpsc::UnboundedSender<Ticket>,
) -> ControlFlow<()> {
    let mut backoff = Duration::from_millis(100);
    let mut full_logged = false;
    while !items.is_empty() {
        let (result, offered) = writer.offer(std::mem::take(&mut items)).await;
        items = offered;
        let stored = match result {
            Ok(stored) => stored,
            Err(crate::outbox::OutboxError::WriterGone) => return ControlFlow::Break(()),
            Err(error) => {
                tracing::error!(%error, "outbox refused results; not acknowledging them, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        metrics.record_stored(SOURCE, &stored);
        let taken = stored
            .iter()
            .take_while(|s| !matches!(s, Stored::Refused))
            .count();
        let repeats = stored
            .iter()
            .filter(|s| matches!(s, Stored::Duplicate))
            .count();
        if repeats > 0 {
            tracing::info!(
                repeats,
                "results delivered again were acknowledged and not stored twice"
            );
        }
        for ticket in tickets.drain(..taken) {
            if acks.send(ticket).is_err() {
                return ControlFlow::Break(());
            }
        }
        items.drain(..taken);
        if !items.is_empty() {
            if !full_logged {
                tracing::warn!(
                    waiting = items.len(),
                    "outbox full: not acknowledging new results until Kafka takes some"
                );
                full_logged = true;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        } else if full_logged {
            tracing::info!("outbox has room again: taking results");
        }
    }
    ControlFlow::Continue(())
}

fn to_intake(
    publish: &Received,
    station_id: &str,
    reader: &PayloadReader,
    max_payload_bytes: usize,
) -> Intake {
    let received_at_ms = now_ms();
    let read = if publish.payload.len() > max_payload_bytes {
        Err(format!(
            "payload of {} bytes is larger than mqtt.max_payload_bytes ({max_payload_bytes})",
            publish.payload.len()
        ))
    } else {
        reader
            .read(&publish.payload)
            .map_err(|error| error.to_string())
    };
    match read {
        Ok((event, trace_id)) => Intake::Event(Box::new(envelope(
            station_id,
            event,
            trace_id,
            received_at_ms,
        ))),
        Err(error) => {
            let topic = publish.topic.clone();
            tracing::warn!(%topic, %error, "quarantined an MQTT payload");
            Intake::Quarantine(QuarantineEntry {
                source: "mqtt".to_owned(),
                origin: topic,
                payload: publish.payload.to_vec(),
                reason: error,
                received_at_ms,
            })
        }
    }
}
