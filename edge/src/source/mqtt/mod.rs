//! The MQTT source: QoS 1 subscriptions with manual acknowledgements, over MQTT 3.1.1 or 5.
//!
//! Two tasks, as rumqttc intends: the session task owns the connection (it alone polls, reconnects and
//! subscribes) and passes publishes on; the intake task takes what is queued, commits it to the outbox in one
//! group, and only then queues the PUBACKs. A payload that is not a station result document is committed to the
//! quarantine table and then acknowledged, so it neither blocks the topic nor disappears.
//!
//! The protocol versions differ only in their session (`v311.rs`, `v5.rs`: connect options, packets, how a
//! PUBACK is queued); driving the session and the intake are shared here.

mod v311;
mod v5;

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::capture::{envelope, now_ms, PayloadReader};
use crate::config::{MqttConfig, MqttProtocol};
use crate::observe::EdgeMetrics;
use crate::outbox::{Intake, OutboxWriter, QuarantineEntry, Stored};

/// The source label of this source's metrics.
const SOURCE: &str = "mqtt";
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(30);
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// A publish as received, in either protocol version, kept whole until it is acknowledged.
#[derive(Debug)]
enum Received {
    V311(rumqttc::Publish),
    V5(rumqttc::v5::mqttbytes::v5::Publish),
}

impl Received {
    fn payload(&self) -> &[u8] {
        match self {
            Received::V311(p) => &p.payload,
            Received::V5(p) => &p.payload,
        }
    }

    fn topic(&self) -> String {
        match self {
            Received::V311(p) => p.topic.clone(),
            Received::V5(p) => String::from_utf8_lossy(&p.topic).into_owned(),
        }
    }
}

/// Queues PUBACKs on the session's client; cheap to clone.
#[derive(Clone)]
enum Acker {
    V311(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

impl Acker {
    /// Queues the PUBACK of `received`; an error means the session task is gone.
    async fn ack(&self, received: &Received) -> Result<(), ()> {
        match (self, received) {
            (Acker::V311(client), Received::V311(p)) => client.ack(p).await.map_err(drop),
            (Acker::V5(client), Received::V5(p)) => client.ack(p).await.map_err(drop),
            _ => unreachable!("a session acknowledges only its own publishes"),
        }
    }
}

/// One protocol version's connection: polled by the session task alone.
trait Session {
    /// Polls the event loop once, handles connection events (subscribing after each CONNACK, backing off
    /// after errors) and returns a publish to take in, if this poll brought one.
    fn next(&mut self) -> impl std::future::Future<Output = Option<Received>> + Send;

    /// Queues a DISCONNECT and polls until it went out.
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
        reader: config.payload_reader(),
        writer,
        metrics: metrics.clone(),
    };
    match config.protocol {
        MqttProtocol::V311 => {
            let (session, acker) = v311::Session311::connect(&config, metrics);
            drive(session, acker, intake, shutdown).await;
        }
        MqttProtocol::V5 => {
            let (session, acker) = v5::Session5::connect(&config, metrics);
            drive(session, acker, intake, shutdown).await;
        }
    }
}

/// What the intake task needs besides its inbox and acker.
struct IntakeSettings {
    station_id: String,
    batch_max: usize,
    reader: PayloadReader,
    writer: OutboxWriter,
    metrics: EdgeMetrics,
}

async fn drive(
    mut session: impl Session,
    acker: Acker,
    settings: IntakeSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let (publishes, inbox) = mpsc::channel(settings.batch_max * 4);
    let intake = tokio::spawn(intake_loop(inbox, acker, settings));
    // The session must keep polling while intake is busy: intake's PUBACKs travel through it. Publishes wait
    // here for room in the intake channel; the broker's in-flight window (unacknowledged QoS 1 messages)
    // bounds how many.
    let mut waiting: VecDeque<Received> = VecDeque::new();
    loop {
        tokio::select! {
            received = session.next() => waiting.extend(received),
            permit = publishes.reserve(), if !waiting.is_empty() => match permit {
                Ok(permit) => permit.send(waiting.pop_front().expect("not empty")),
                Err(_) => break, // intake stopped: the outbox writer is gone
            },
            _ = shutdown.changed() => break,
        }
    }
    // Let intake commit and ack what it has, while the session keeps sending the acks out.
    drop(publishes);
    let flush = async {
        let mut intake = intake;
        loop {
            tokio::select! {
                _ = &mut intake => break,
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
}

/// Logs and meters the connection once per state change and paces reconnects; shared by both versions.
struct ConnectionLog {
    host: String,
    port: u16,
    topics: Vec<String>,
    connected: bool,
    backoff: Duration,
    metrics: EdgeMetrics,
}

impl ConnectionLog {
    fn new(config: &MqttConfig, metrics: EdgeMetrics) -> Self {
        metrics.set_source_up(SOURCE, false);
        Self {
            metrics,
            host: config.host.clone(),
            port: config.port,
            topics: config.topics.clone(),
            connected: false,
            backoff: Duration::from_millis(250),
        }
    }

    fn connected(&mut self, session_present: bool) {
        tracing::info!(host = %self.host, port = self.port, session_present, "MQTT connected");
        self.connected = true;
        self.metrics.set_source_up(SOURCE, true);
        self.backoff = Duration::from_millis(250);
    }

    fn subscribed(&self, refused: Option<String>) {
        match refused {
            Some(reason) => tracing::error!(
                topics = ?self.topics,
                reason,
                "the MQTT broker refused a subscription; check its ACL"
            ),
            None => tracing::info!(topics = ?self.topics, "MQTT subscribed"),
        }
    }

    async fn failed(&mut self, error: &(dyn std::fmt::Display + Sync)) {
        if self.connected {
            tracing::warn!(host = %self.host, port = self.port, %error, "MQTT connection lost; reconnecting");
            self.connected = false;
            self.metrics.set_source_up(SOURCE, false);
        } else {
            tracing::debug!(%error, "MQTT connect failed");
        }
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(RECONNECT_BACKOFF_MAX);
    }
}

async fn intake_loop(mut inbox: mpsc::Receiver<Received>, acker: Acker, settings: IntakeSettings) {
    let IntakeSettings {
        station_id,
        batch_max,
        reader,
        writer,
        metrics,
    } = settings;
    while let Some(first) = inbox.recv().await {
        let mut publishes = vec![first];
        while publishes.len() < batch_max {
            match inbox.try_recv() {
                Ok(publish) => publishes.push(publish),
                Err(_) => break,
            }
        }
        let mut items: Vec<Intake> = publishes
            .iter()
            .map(|publish| to_intake(publish, &station_id, &reader))
            .collect();
        // Offer the same items (same event ids) until the outbox took all of them; each is acknowledged only
        // once it is stored. A full outbox (policy block) takes a prefix, or nothing, and the rest waits here,
        // unacknowledged, so the broker stops sending once its in-flight window is used up.
        let mut backoff = Duration::from_millis(100);
        let mut full_logged = false;
        while !items.is_empty() {
            let stored = match writer.append(items.clone()).await {
                Ok(stored) => stored,
                Err(crate::outbox::OutboxError::WriterGone) => return,
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
            for publish in publishes.drain(..taken) {
                if acker.ack(&publish).await.is_err() {
                    return; // session gone; the broker redelivers what was not acknowledged
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
    }
}

fn to_intake(publish: &Received, station_id: &str, reader: &PayloadReader) -> Intake {
    let received_at_ms = now_ms();
    match reader.read(publish.payload()) {
        Ok((event, trace_id)) => Intake::Event(Box::new(envelope(
            station_id,
            event,
            trace_id,
            received_at_ms,
        ))),
        Err(error) => {
            let topic = publish.topic();
            tracing::warn!(%topic, %error, "quarantined an MQTT payload");
            Intake::Quarantine(QuarantineEntry {
                source: "mqtt".to_owned(),
                origin: topic,
                payload: publish.payload().to_vec(),
                reason: error.to_string(),
                received_at_ms,
            })
        }
    }
}
