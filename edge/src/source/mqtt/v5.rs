//! The MQTT 5 session: clean start off and a session expiry that never ends, so the broker keeps QoS 1
//! results while the edge is away (in MQTT 5 a session without an expiry interval ends with the connection).

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::Outgoing;

use super::{Acker, ConnectionLog, Received};
use crate::config::MqttConfig;
use crate::observe::EdgeMetrics;

/// MQTT 5's "the session never expires" (0xFFFFFFFF seconds).
const SESSION_NEVER_EXPIRES: u32 = u32::MAX;

/// The event loop and client of one MQTT 5 connection.
pub(super) struct Session5 {
    client: AsyncClient,
    eventloop: EventLoop,
    log: ConnectionLog,
}

impl Session5 {
    /// The session (not connected yet: the first poll connects) and the acker of its publishes.
    pub(super) fn connect(config: &MqttConfig, metrics: EdgeMetrics) -> (Self, Acker) {
        let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
        options.set_keep_alive(Duration::from_secs(config.keep_alive_secs.max(5)));
        options.set_clean_start(false);
        options.set_session_expiry_interval(Some(SESSION_NEVER_EXPIRES));
        options.set_manual_acks(true);
        options.set_max_packet_size(Some(1 << 20));
        let (client, eventloop) = AsyncClient::new(options, 1024);
        let log = ConnectionLog::new(config, metrics);
        let acker = Acker::V5(client.clone());
        (
            Self {
                client,
                eventloop,
                log,
            },
            acker,
        )
    }
}

impl super::Session for Session5 {
    async fn next(&mut self) -> Option<Received> {
        match self.eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
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
            Ok(Event::Incoming(Packet::Publish(publish))) => Some(Received::V5(publish)),
            Ok(_) => None,
            Err(error) => {
                self.log.failed(&error).await;
                None
            }
        }
    }

    async fn disconnect(&mut self) {
        let _ = self.client.try_disconnect();
        while let Ok(event) = self.eventloop.poll().await {
            if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
                break;
            }
        }
    }
}
