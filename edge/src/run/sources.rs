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
            tasks.push(supervise(task, vec!["mqtt".to_owned()], metrics, &stopped));
        }
        if let Some(modbus) = config.modbus.clone() {
            let names = modbus
                .devices
                .iter()
                .map(|d| format!("modbus:{}", d.name))
                .collect();
            let task = source::modbus::run(
                modbus,
                config.station.id.clone(),
                writer.clone(),
                metrics.clone(),
                stopped.clone(),
            );
            tasks.push(supervise(task, names, metrics, &stopped));
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

/// Runs a source task and, when it ends without having been asked to stop (it returned or panicked),
/// logs it, marks its sources down and counts it: `/healthz` turns 503 and the watchdog is starved, so
/// that systemd restarts the edge instead of leaving it silently idle.
fn supervise(
    task: impl std::future::Future<Output = ()> + Send + 'static,
    sources: Vec<String>,
    metrics: &EdgeMetrics,
    stopped: &watch::Receiver<bool>,
) -> JoinHandle<()> {
    let task = tokio::spawn(task);
    let (metrics, stopped) = (metrics.clone(), stopped.clone());
    tokio::spawn(async move {
        let outcome = task.await;
        if *stopped.borrow() {
            return;
        }
        let how = match outcome {
            Ok(()) => "returned".to_owned(),
            Err(error) => error.to_string(),
        };
        tracing::error!(sources = ?sources, how, "a source task stopped unexpectedly: no results are taken from it; restart the edge");
        for source in &sources {
            metrics.set_source_up(source, false);
        }
        metrics.source_failures.inc();
    })
}

/// The sources `/healthz` watches: `mqtt` and `modbus:<device>`.
pub(super) fn watched_sources(config: &EdgeConfig) -> Vec<String> {
    let mut sources = Vec::new();
    if config.mqtt.is_some() {
        sources.push("mqtt".to_owned());
    }
    for device in config.modbus.iter().flat_map(|m| &m.devices) {
        sources.push(format!("modbus:{}", device.name));
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_source_task_that_dies_is_counted_and_its_source_marked_down() {
        let metrics = EdgeMetrics::default();
        metrics.set_source_up("mqtt", true);
        let (_stop, stopped) = watch::channel(false);
        let panicking = supervise(
            async { panic!("a bug in a source") },
            vec!["mqtt".to_owned()],
            &metrics,
            &stopped,
        );
        panicking.await.unwrap();
        assert_eq!(metrics.source_failures.get(), 1);
        let label = crate::observe::metrics::SourceLabel {
            source: "mqtt".to_owned(),
        };
        // The family's guard is dropped at once: holding it would block the next supervise's writes.
        let up = metrics.source_up.get_or_create(&label).get();
        assert_eq!(up, 0);
        supervise(
            async {},
            vec!["modbus:press".to_owned()],
            &metrics,
            &stopped,
        )
        .await
        .unwrap();
        assert_eq!(
            metrics.source_failures.get(),
            2,
            "a source that returns by itself counts too"
        );
    }

    #[tokio::test]
    async fn a_source_stopped_on_purpose_is_no_failure() {
        let metrics = EdgeMetrics::default();
        let (stop, stopped) = watch::channel(false);
        let mut watching = stopped.clone();
        let task = supervise(
            async move {
                let _ = watching.changed().await;
            },
            vec!["mqtt".to_owned()],
            &metrics,
            &stopped,
        );
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(metrics.source_failures.get(), 0);
    }
}
