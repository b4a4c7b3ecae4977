//! The MQTT source: QoS 1 subscriptions with manual acknowledgements.
//!
//! Two tasks, as rumqttc intends: the event loop task owns the connection (it alone polls, reconnects and
//! subscribes) and passes publishes on; the intake task takes what is queued, commits it to the outbox in one
//! group, and only then queues the PUBACKs. A payload that is not a station result document is committed to the
//! quarantine table and then acknowledged, so it neither blocks the topic nor disappears.

use std::collections::VecDeque;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, SubscribeReasonCode};
use tokio::sync::{mpsc, watch};

use crate::capture::{envelope, now_ms, PayloadReader};
use crate::config::MqttConfig;
use crate::observe::EdgeMetrics;
use crate::outbox::{Intake, OutboxWriter, QuarantineEntry, Stored};

/// The source label of this source's metrics.
const SOURCE: &str = "mqtt";
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(30);
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// Runs the MQTT source until `shutdown` turns true; then commits and acknowledges what it already received.
pub async fn run(
    config: MqttConfig,
    station_id: String,
    writer: OutboxWriter,
    metrics: EdgeMetrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
    options.set_keep_alive(Duration::from_secs(config.keep_alive_secs.max(5)));
    options.set_clean_session(false);
    options.set_manual_acks(true);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let (publishes, inbox) = mpsc::channel(config.intake_batch_max * 4);
    let intake = tokio::spawn(intake_loop(
        inbox,
        client.clone(),
        writer,
        station_id,
        config.intake_batch_max,
        metrics.clone(),
        config.payload_reader(),
    ));

    let mut connection = ConnectionState::new(&config, metrics);
    // The event loop must keep polling while intake is busy: intake's PUBACKs travel through it. Publishes
    // wait here for room in the intake channel; the broker's in-flight window (unacknowledged QoS 1
    // messages) bounds how many.
    let mut waiting: VecDeque<Publish> = VecDeque::new();
    loop {
        tokio::select! {
            event = eventloop.poll() => {
                if let Some(publish) = connection.handle(event, &client).await {
                    waiting.push_back(publish);
                }
            }
            permit = publishes.reserve(), if !waiting.is_empty() => match permit {
                Ok(permit) => permit.send(waiting.pop_front().expect("not empty")),
                Err(_) => break, // intake stopped: the outbox writer is gone
            },
            _ = shutdown.changed() => break,
        }
    }
    // Let intake commit and ack what it has, while the event loop keeps sending the acks out.
    drop(publishes);
    let flush = async {
        let mut intake = intake;
        loop {
            tokio::select! {
                _ = &mut intake => break,
                event = eventloop.poll() => { connection.handle(event, &client).await; }
            }
        }
        let _ = client.try_disconnect();
        while let Ok(event) = eventloop.poll().await {
            if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
    };
    if tokio::time::timeout(SHUTDOWN_FLUSH, flush).await.is_err() {
        tracing::warn!(
            "MQTT shutdown did not finish in time; the broker redelivers unacknowledged results"
        );
    }
}

/// Connection bookkeeping of the event loop task: logs once per state change, backs off on errors.
struct ConnectionState {
    host: String,
    port: u16,
    topics: Vec<String>,
    connected: bool,
    backoff: Duration,
    metrics: EdgeMetrics,
}

impl ConnectionState {
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

    /// Reacts to one event-loop outcome; returns a publish to take in.
    async fn handle(
        &mut self,
        event: Result<Event, rumqttc::ConnectionError>,
        client: &AsyncClient,
    ) -> Option<Publish> {
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                tracing::info!(host = %self.host, port = self.port, session_present = ack.session_present, "MQTT connected");
                self.connected = true;
                self.metrics.set_source_up(SOURCE, true);
                self.backoff = Duration::from_millis(250);
                for topic in &self.topics {
                    if let Err(error) = client.try_subscribe(topic, QoS::AtLeastOnce) {
                        tracing::error!(%topic, %error, "cannot queue the MQTT subscription");
                    }
                }
                None
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|code| matches!(code, SubscribeReasonCode::Failure))
                {
                    tracing::error!(topics = ?self.topics, "the MQTT broker refused a subscription; check its ACL");
                } else {
                    tracing::info!(topics = ?self.topics, "MQTT subscribed");
                }
                None
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => Some(publish),
            Ok(_) => None,
            Err(error) => {
                if self.connected {
                    tracing::warn!(host = %self.host, port = self.port, %error, "MQTT connection lost; reconnecting");
                    self.connected = false;
                    self.metrics.set_source_up(SOURCE, false);
                } else {
                    tracing::debug!(%error, "MQTT connect failed");
                }
                tokio::time::sleep(self.backoff).await;
                self.backoff = (self.backoff * 2).min(RECONNECT_BACKOFF_MAX);
                None
            }
        }
    }
}

async fn intake_loop(
    mut inbox: mpsc::Receiver<Publish>,
    client: AsyncClient,
    writer: OutboxWriter,
    station_id: String,
    batch_max: usize,
    metrics: EdgeMetrics,
    reader: PayloadReader,
) {
    while let Some(first) = inbox.recv().await {
        let mut batch = vec![first];
        while batch.len() < batch_max {
            match inbox.try_recv() {
                Ok(publish) => batch.push(publish),
                Err(_) => break,
            }
        }
        let mut publishes = batch;
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
                if client.ack(&publish).await.is_err() {
                    return; // event loop gone; the broker redelivers what was not acknowledged
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

fn to_intake(publish: &Publish, station_id: &str, reader: &PayloadReader) -> Intake {
    let received_at_ms = now_ms();
    match reader.read(&publish.payload) {
        Ok((event, trace_id)) => Intake::Event(Box::new(envelope(
            station_id,
            event,
            trace_id,
            received_at_ms,
        ))),
        Err(error) => {
            tracing::warn!(topic = %publish.topic, %error, "quarantined an MQTT payload");
            Intake::Quarantine(QuarantineEntry {
                source: "mqtt".to_owned(),
                origin: publish.topic.clone(),
                payload: publish.payload.to_vec(),
                reason: error.to_string(),
                received_at_ms,
            })
        }
    }
}
