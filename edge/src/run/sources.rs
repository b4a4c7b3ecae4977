//! The sources of one config generation: started together, supervised, stopped together on a reload.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::observe::EdgeMetrics;
use crate::outbox::OutboxWriter;
use crate::source;
use linegate_station_config::EdgeConfig;

/// How long the sources get to commit and acknowledge what they hold after SIGTERM.
const SOURCE_STOP: Duration = Duration::from_secs(8);

/// The running sources of one config generation, with their own stop signal so a reload can replace them
/// while the outbox writer and the forwarder go on.
pub(super) struct Sources {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Sources {
    /// No sources: what stands in while one generation is replaced by the next.
    pub(super) fn none() -> Self {
        Self {
            stop: watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    pub(super) fn start(config: &EdgeConfig, writer: &OutboxWriter, metrics: &EdgeMetrics) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        if let Some(mqtt) = config.mqtt.clone() {
            let task = source::mqtt::run(
                mqtt,
                config.station.id.clone(),
                writer.clone(),
                metrics.clone(),
                stopped.clone(),
            );
            let names = vec![source::mqtt::SOURCE.to_owned()];
            tasks.push(source::supervise(task, names, metrics, &stopped));
        }
        if let Some(modbus) = config.modbus.clone() {
            // Each device task is supervised inside, so that one dead PLC loop is noticed alone.
            tasks.push(tokio::spawn(source::modbus::run(
                modbus,
                config.station.id.clone(),
                writer.clone(),
                metrics.clone(),
                stopped,
            )));
        }
        Self { stop, tasks }
    }

    /// Lets every source commit and acknowledge what it holds, within [`SOURCE_STOP`].
    pub(super) async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if tokio::time::timeout(SOURCE_STOP, task).await.is_err() {
                tracing::warn!("a source did not stop in time");
            }
        }
    }
}

/// The sources `/healthz` watches: `mqtt` and `modbus:<device>`.
pub(super) fn watched_sources(config: &EdgeConfig) -> Vec<String> {
    let mut sources = Vec::new();
    if config.mqtt.is_some() {
        sources.push(source::mqtt::SOURCE.to_owned());
    }
    for device in config.modbus.iter().flat_map(|m| &m.devices) {
        sources.push(source::modbus::source_name(&device.name));
    }
    sources
}
