//! The MQTT 3.1.1 session: clean session off, so the broker keeps QoS 1 results while the edge is away.

use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, SubscribeReasonCode,
};

use super::{Acker, ConnectionLog, Received};
use crate::config::MqttConfig;
use crate::observe::EdgeMetrics;

/// The event loop and client of one MQTT 3.1.1 connection.
pub(super) struct Session311 {
    client: AsyncClient,
    eventloop: EventLoop,
    log: ConnectionLog,
}

impl Session311 {
    /// The session (not connected yet: the first poll connects) and the acker of its publishes.
    pub(super) fn connect(config: &MqttConfig, metrics: EdgeMetrics) -> (Self, Acker) {
        let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
        options.set_keep_alive(Duration::from_secs(config.keep_alive_secs.max(5)));
        options.set_clean_session(false);
        options.set_manual_acks(true);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, eventloop) = AsyncClient::new(options, 1024);
        let log = ConnectionLog::new(config, metrics);
        let acker = Acker::V311(client.clone());
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

impl super::Session for Session311 {
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
                    .any(|code| matches!(code, SubscribeReasonCode::Failure));
                self.log.subscribed(refused.then(|| "failure".to_owned()));
                None
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => Some(Received::V311(publish)),
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
