//! Publishing station documents over MQTT QoS 1, waiting for every PUBACK.

use std::time::Duration;

use anyhow::bail;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

/// Publishes `payloads` to `topic` in order with QoS 1 and returns when the broker acknowledged all of them.
/// `rate` limits messages per second (0 = as fast as the broker takes them).
pub async fn publish_all(
    port: u16,
    client_id: &str,
    topic: &str,
    payloads: &[Vec<u8>],
    rate: u32,
) -> anyhow::Result<()> {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let sender = {
        let client = client.clone();
        let topic = topic.to_owned();
        let payloads = payloads.to_vec();
        tokio::spawn(async move {
            let pause = (rate > 0).then(|| Duration::from_secs_f64(1.0 / f64::from(rate)));
            for payload in payloads {
                client
                    .publish(&topic, QoS::AtLeastOnce, false, payload)
                    .await?;
                if let Some(pause) = pause {
                    tokio::time::sleep(pause).await;
                }
            }
            anyhow::Ok(())
        })
    };
    let mut acked = 0;
    while acked < payloads.len() {
        match tokio::time::timeout(Duration::from_secs(30), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                bail!("MQTT publish to port {port} failed after {acked} acks: {error}")
            }
            Err(_) => bail!(
                "MQTT: no progress for 30 s after {acked} of {} acks",
                payloads.len()
            ),
        }
    }
    sender.await??;
    let _ = client.disconnect().await;
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_secs(2), eventloop.poll()).await {
        if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
            break;
        }
    }
    Ok(())
}

/// Publishes `payloads` to `topic` in order with QoS 1, one at a time, each until the broker acknowledged
/// it: a broker that dies or refuses is reconnected to and the payload sent again, so this survives a
/// Mosquitto kill -9. While `gate` holds [`Flow::Hold`] it waits before the next payload; at
/// [`Flow::Stop`] it ends. `rate` as in [`publish_all`]. Returns how many payloads (the first ones) were
/// acknowledged, or errs after `patience` without progress.
pub async fn publish_through_faults(
    port: u16,
    client_id: &str,
    topic: &str,
    payloads: &[Vec<u8>],
    rate: u32,
    mut gate: tokio::sync::watch::Receiver<Flow>,
    patience: Duration,
) -> anyhow::Result<usize> {
    let mut pace = Pace::new(rate);
    let mut next = 0;
    let mut progress = tokio::time::Instant::now();
    while next < payloads.len() {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 10);
        'session: while next < payloads.len() {
            while *gate.borrow() == Flow::Hold {
                let _ = gate.changed().await;
                progress = tokio::time::Instant::now();
                pace.restart();
            }
            if *gate.borrow() == Flow::Stop {
                return Ok(next);
            }
            client
                .publish(topic, QoS::AtLeastOnce, false, payloads[next].clone())
                .await?;
            loop {
                match tokio::time::timeout(Duration::from_secs(5), eventloop.poll()).await {
                    Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => break,
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) | Err(_) => {
                        if progress.elapsed() > patience {
                            bail!("MQTT: no acknowledgement on port {port} for {patience:?} after {next} of {} payloads", payloads.len());
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        break 'session; // a new connection sends this payload again
                    }
                }
            }
            next += 1;
            progress = tokio::time::Instant::now();
            pace.one_sent().await;
        }
    }
    Ok(next)
}

/// Keeps a publisher at `rate` payloads per second on average by a schedule, not a pause after each
/// payload (a pause would add each round trip and the timer's rounding, and fall far short at hundreds per
/// second); a publisher more than a second behind (it waited for a broker) starts a new schedule instead of
/// bursting.
struct Pace {
    every: Option<Duration>,
    start: tokio::time::Instant,
    sent: u32,
}

impl Pace {
    fn new(rate: u32) -> Self {
        let every = (rate > 0).then(|| Duration::from_secs_f64(1.0 / f64::from(rate)));
        Self {
            every,
            start: tokio::time::Instant::now(),
            sent: 0,
        }
    }

    fn restart(&mut self) {
        (self.start, self.sent) = (tokio::time::Instant::now(), 0);
    }

    async fn one_sent(&mut self) {
        let Some(every) = self.every else { return };
        self.sent += 1;
        let due = self.start + every * self.sent;
        if tokio::time::Instant::now() > due + Duration::from_secs(1) {
            self.restart();
        } else {
            tokio::time::sleep_until(due).await;
        }
    }
}

/// What [`publish_through_faults`] is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Publish.
    Go,
    /// Wait before the next payload.
    Hold,
    /// End after the current payload.
    Stop,
}
