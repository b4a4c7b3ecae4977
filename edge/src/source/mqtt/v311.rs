//! The MQTT 3.1.1 session: clean session off, so the broker keeps QoS 1 results while the edge is away.

use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, PubAck, QoS, SubscribeReasonCode,
};

use super::connection::ConnectionLog;
use super::{Received, Ticket, ACK_TIMEOUT, CLOSE_TIMEOUT};
use crate::observe::EdgeMetrics;
use linegate_station_config::{MqttConfig, MAX_PACKET_BYTES};

/// The event loop and client of one MQTT 3.1.1 session.
pub(super) struct Session311 {
    client: AsyncClient,
    eventloop: EventLoop,
    log: ConnectionLog,
    connection: u64,
}

impl Session311 {
    /// The session (not connected yet: the first poll connects).
    pub(super) fn connect(config: &MqttConfig, metrics: EdgeMetrics) -> Self {
        let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
        options.set_keep_alive(Duration::from_secs(config.keep_alive_secs.max(5)));
        options.set_clean_session(false);
        options.set_manual_acks(true);
        options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        // Only subscriptions and the DISCONNECT go through the request queue; PUBACKs are written directly.
        let (client, eventloop) = AsyncClient::new(options, 64);
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

    /// Drops a connection that failed under us; the next poll connects again.
    async fn drop_connection(&mut self, error: &(dyn std::fmt::Display + Sync)) {
        self.forget_buffered();
        self.eventloop.clean();
        self.log.failed(error).await;
    }
}

impl super::Session for Session311 {
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
                    .any(|code| matches!(code, SubscribeReasonCode::Failure));
                self.log.subscribed(refused.then(|| "failure".to_owned()));
                None
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => Some(Received {
                ticket: Ticket {
                    connection: self.connection,
                    pkid: (publish.qos != QoS::AtMostOnce).then_some(publish.pkid),
                },
                topic: publish.topic,
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
        let Some(network) = self.eventloop.network.as_mut() else {
            return; // not connected: the broker sends these publishes again
        };
        let written = tokio::time::timeout(ACK_TIMEOUT, async {
            for ticket in tickets.iter().filter(|t| t.connection == current) {
                if let Some(pkid) = ticket.pkid {
                    network.write(Packet::PubAck(PubAck::new(pkid))).await?;
                }
            }
            network.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => self.drop_connection(&error).await,
            Err(_) => {
                self.drop_connection(&"the broker took no PUBACKs for 10 s")
                    .await;
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
