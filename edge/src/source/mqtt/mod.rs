//! The MQTT source: QoS 1 subscriptions with manual acknowledgements, over MQTT 3.1.1 or 5.
//!
//! Two tasks: the session task owns the connection (it alone polls, reconnects, subscribes and writes
//! PUBACKs) and passes publishes on; the intake task (`intake.rs`) commits them to the outbox in groups and
//! only then hands their tickets back. A payload that is not a station result document is committed to the
//! quarantine table and then acknowledged, so it neither blocks the topic nor disappears.
//!
//! **The bound.** The session holds at most `mqtt.max_unacked` publishes (received, PUBACK not written; over
//! MQTT 5 not queued) and stops reading the connection at the bound until intake hands tickets back; TCP
//! then holds the broker back, and the broker keeps the rest. A broker's own window is not enough: Mosquitto 2.0.11 sends
//! past `max_inflight_messages` (and, over MQTT 5, past our receive maximum) while the outbox is the
//! bottleneck (docs/dev/workarounds.md). PUBACKs are written by the session itself, a whole group in
//! one flush, straight to the connection: rumqttc's request queue sends one request per poll and reading
//! is part of every poll, so through it the acknowledgements could neither keep up with reading nor go out
//! while reading is paused.
//!
//! **Tickets.** A PUBACK is written only on the connection its publish arrived on. After a reconnect the
//! broker sends every unacknowledged publish again (persistent session), so a ticket of an earlier
//! connection is dropped: its publish comes again and is stored once (by event id).
//!
//! The protocol versions differ only in their session (`v311.rs`, `v5.rs`: connect options, packets).

mod connection;
mod intake;
mod v311;
mod v5;

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::observe::EdgeMetrics;
use crate::outbox::OutboxWriter;
use intake::IntakeSettings;
use linegate_station_config::{MqttConfig, MqttProtocol};

/// The source label of this source's metrics.
pub(crate) const SOURCE: &str = "mqtt";
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);
/// How long a session waits for the broker to close the connection after its DISCONNECT.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long writing a group of PUBACKs may take before the connection counts as broken.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Most tickets taken back from intake at once (one flush).
const ACK_GROUP_MAX: usize = 4096;

/// Which PUBACK a publish needs: its packet id on the connection it arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ticket {
    /// Counts CONNACKs of this session: a packet id means something only on its own connection.
    connection: u64,
    /// `None` for a QoS 0 publish, which is not acknowledged.
    pkid: Option<u16>,
}

/// A publish as received, in either protocol version.
#[derive(Debug)]
struct Received {
    ticket: Ticket,
    topic: String,
    payload: Bytes,
}

/// One protocol version's connection: used by the session task alone.
trait Session {
    /// Polls the event loop once, handles connection events (subscribing after each CONNACK, backing off
    /// after errors) and returns a publish to take in, if this poll brought one.
    fn next(&mut self) -> impl std::future::Future<Output = Option<Received>> + Send;

    /// Writes the PUBACKs of the tickets of the current connection, flushed once; a connection that cannot
    /// take them is dropped (the next poll reconnects, the broker sends the publishes again).
    fn ack(&mut self, tickets: &[Ticket]) -> impl std::future::Future<Output = ()> + Send;

    /// Queues a DISCONNECT and polls until the broker closed the connection (bounded by
    /// [`CLOSE_TIMEOUT`]).
    fn disconnect(&mut self) -> impl std::future::Future<Output = ()> + Send;
}

/// Runs the MQTT source until `shutdown` turns true; then commits and acknowledges what it already received.
pub async fn run(
    config: MqttConfig,
    station_id: String,
    writer: OutboxWriter,
    metrics: EdgeMetrics,
    shutdown: watch::Receiver<bool>,
) {
    let intake = IntakeSettings {
        station_id,
        batch_max: config.intake_batch_max,
        max_payload_bytes: config.max_payload_bytes,
        reader: crate::capture::PayloadReader::for_source(&config),
        writer,
        metrics: metrics.clone(),
    };
    let max_unacked = config.max_unacked;
    match config.protocol {
        MqttProtocol::V311 => {
            let session = v311::Session311::connect(&config, metrics);
            drive(session, max_unacked, intake, shutdown).await;
        }
        MqttProtocol::V5 => {
            let session = v5::Session5::connect(&config, metrics);
            drive(session, max_unacked, intake, shutdown).await;
        }
    }
}

async fn drive(
    mut session: impl Session,
    max_unacked: usize,
    settings: IntakeSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let unacked = settings.metrics.mqtt_unacked.clone();
    let (publishes, inbox) = mpsc::channel(settings.batch_max * 4);
    // Unbounded, yet never more than `max_unacked` tickets: one per publish held.
    let (acks, mut stored) = mpsc::unbounded_channel();
    let intake = tokio::spawn(intake::run(inbox, acks, settings));
    // Publishes wait here for room in the intake channel.
    let mut waiting: VecDeque<Received> = VecDeque::new();
    let mut held = 0;
    let mut tickets = Vec::new();
    loop {
        unacked.set(i64::try_from(held).unwrap_or(i64::MAX));
        tokio::select! {
            received = session.next(), if held < max_unacked => {
                if let Some(received) = received {
                    held += 1;
                    waiting.push_back(received);
                }
            },
            permit = publishes.reserve(), if !waiting.is_empty() => match permit {
                Ok(permit) => permit.send(waiting.pop_front().expect("not empty")),
                Err(_) => break, // intake stopped: the outbox writer is gone
            },
            taken = stored.recv_many(&mut tickets, ACK_GROUP_MAX) => {
                if taken == 0 {
                    break; // intake stopped
                }
                session.ack(&tickets).await;
                held -= taken;
                tickets.clear();
            },
            _ = shutdown.changed() => break,
        }
    }
    // Let intake commit what it has, while the session writes the PUBACKs.
    drop(publishes);
    let flush = async {
        loop {
            tokio::select! {
                taken = stored.recv_many(&mut tickets, ACK_GROUP_MAX) => {
                    if taken == 0 {
                        break;
                    }
                    session.ack(&tickets).await;
                    tickets.clear();
                },
                _ = session.next() => {}
            }
        }
        session.disconnect().await;
    };
    if tokio::time::timeout(SHUTDOWN_FLUSH, flush).await.is_err() {
        tracing::warn!(
            "MQTT shutdown did not finish in time; the broker redelivers unacknowledged results"
        );
    }
    intake.abort();
    unacked.set(0);
}
