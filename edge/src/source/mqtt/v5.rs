//! The MQTT 5 session: clean start off and a session expiry that never ends, so the broker keeps QoS 1
//! results while the edge is away (in MQTT 5 a session without an expiry interval ends with the connection).
//! The same shape as `v311.rs`, with MQTT 5's packet types, except for the PUBACKs: rumqttc's MQTT 5 event
//! loop does not expose its connection, so they go through its request queue, sized so that it never fills
//! (a broker cannot have more than 65,535 publishes unacknowledged: packet ids are 16 bits). There they leave
//! one per poll; MQTT 5 intake is slower than 3.1.1 for it, but holds the same bound.

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Packet, Publish, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};

use super::connection::ConnectionLog;
use super::{Received, Ticket, CLOSE_TIMEOUT};
use crate::observe::EdgeMetrics;
use linegate_station_config::MqttConfig;

/// MQTT 5's "the session never expires" (0xFFFFFFFF seconds).
const SESSION_NEVER_EXPIRES: u32 = u32::MAX;
/// Room in the request queue for a PUBACK of every packet id, plus subscriptions and the DISCONNECT.
const REQUEST_QUEUE: usize = 65_536 + 64;

/// The event loop and client of one MQTT 5 session.
pub(super) struct Session5 {
    client: AsyncClient,
    eventloop: EventLoop,
    log: ConnectionLog,
    connection: u64,
}

impl Session5 {
    /// The session (not connected yet: the first poll connects).
    pub(super) fn connect(config: &MqttConfig, metrics: EdgeMetrics) -> Self {
        let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
        options.set_keep_alive(Duration::from_secs(config.keep_alive_secs.max(5)));
        options.set_clean_start(false);
        options.set_session_expiry_interval(Some(SESSION_NEVER_EXPIRES));
        options.set_manual_acks(true);
        options.set_max_packet_size(Some(linegate_station_config::MAX_PACKET_BYTES as u32));
        // Tells the broker the bound (validated <= 65535); the session keeps it also when a broker does not.
        options.set_receive_maximum(Some(u16::try_from(config.max_unacked).unwrap_or(u16::MAX)));
        let (client, eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
        Self {
            client,
            eventloop,
            log: ConnectionLog::new(config, metrics),
            connection: 0,
        }
    }

    /// Drops what the event loop read but not yet returned: after an error or a DISCONNECT those
    /// publishes are stale, the broker sends them again on the next connection, in order, and taking the
    /// stale copies first could reorder them.
    fn forget_buffered(&mut self) {
        self.eventloop.state.events.clear();
    }
}

impl super::Session for Session5 {
    async fn next(&mut self) -> Option<Received> {
        match self.eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                self.connection += 1;
                self.log.connected(ack.session_present);
                for topic in &self.log.topics {
                    if let Err(error) = self.client.try_subscribe(topic, QoS::AtLeastOnce) {
                        tracing::error!(%topic, %error, "cannot queue the MQTT subscription");
                    }
                }
                None
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .find(|code| !matches!(code, SubscribeReasonCode::Success(_)))
                    .map(|code| format!("{code:?}"));
                self.log.subscribed(refused);
                None
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => Some(Received {
                ticket: Ticket {
                    connection: self.connection,
                    pkid: (publish.qos != QoS::AtMostOnce).then_some(publish.pkid),
                },
                topic: String::from_utf8_lossy(&publish.topic).into_owned(),
                payload: publish.payload,
            }),
            Ok(_) => None,
            Err(error) => {
                self.forget_buffered();
                self.log.failed(&error).await;
                None
            }
        }
    }

    async fn ack(&mut self, tickets: &[Ticket]) {
        let current = self.connection;
        for ticket in tickets.iter().filter(|t| t.connection == current) {
            let Some(pkid) = ticket.pkid else { continue };
            let mut publish = Publish::new("", QoS::AtLeastOnce, "", None);
            publish.pkid = pkid;
            if let Err(error) = self.client.try_ack(&publish) {
                // Cannot happen while the queue has room for every packet id; the broker sends it again.
                tracing::warn!(%error, pkid, "cannot queue an MQTT PUBACK");
            }
        }
    }

    async fn disconnect(&mut self) {
        if self.client.try_disconnect().is_ok() {
            // Read on until the broker closes: closing first, with publishes unread, would make the kernel
            // reset the connection and the broker discard our last PUBACKs with it.
            let closed = tokio::time::timeout(CLOSE_TIMEOUT, async {
                while self.eventloop.poll().await.is_ok() {}
            })
            .await;
            if closed.is_err() {
                tracing::warn!(
                    "the MQTT broker did not close the connection after DISCONNECT; dropping it"
                );
            }
        }
        self.forget_buffered();
        self.eventloop.clean();
    }
}
