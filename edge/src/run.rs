//! `linegate-edge run`: wires outbox, forwarder and sources together and shuts them down in order.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{watch, Notify};

use crate::config::EdgeConfig;
use crate::observe::{self, EdgeMetrics, Heartbeat};
use crate::outbox::{OutboxReader, OutboxWriter};
use crate::{forward, source};

/// How long the sources get to commit and acknowledge what they hold after SIGTERM.
const SOURCE_STOP: Duration = Duration::from_secs(8);
/// How long the forwarder gets to finish its round after the sources stopped.
const FORWARD_STOP: Duration = Duration::from_secs(5);

/// Runs the agent until SIGTERM or SIGINT; SIGHUP re-reads `config_path` and restarts the sources with it.
pub async fn run(mut config: EdgeConfig, config_path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.station.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.station.data_dir.display()
        )
    })?;
    let outbox_path = config.outbox_path();
    let committed = Arc::new(Notify::new());
    let writer = OutboxWriter::start(
        &outbox_path,
        &config.station.id,
        config.outbox_options(),
        Arc::clone(&committed),
    )?;
    let reader = OutboxReader::open(&outbox_path)?;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = EdgeMetrics::register(&mut registry);
    tracing::info!(
        station = %config.station.id,
        outbox = %outbox_path.display(),
        waiting = reader.depth()?,
        next_seq = reader.next_seq()?,
        "linegate-edge started"
    );

    let (stop, stopped) = watch::channel(false);
    let heartbeat = Heartbeat::default();
    heartbeat.beat();
    let mut forwarder = tokio::spawn(forward::run(
        config.kafka.clone(),
        config.forward.clone(),
        forward::ForwardParts {
            reader,
            writer: writer.clone(),
            committed,
            metrics: metrics.clone(),
            heartbeat: heartbeat.clone(),
        },
        stopped.clone(),
    ));
    let mut sources_watched = Vec::new();
    if config.mqtt.is_some() {
        sources_watched.push("mqtt".to_owned());
    }
    for device in config.modbus.iter().flat_map(|m| &m.devices) {
        sources_watched.push(format!("modbus:{}", device.name));
    }
    if let Some(http) = &config.http {
        let state = observe::http::HttpState {
            registry,
            metrics: metrics.clone(),
            reader: std::sync::Mutex::new(OutboxReader::open(&outbox_path)?),
            writer: writer.clone(),
            sources: sources_watched,
        };
        observe::http::start(http.listen, state, stopped.clone())
            .await
            .with_context(|| format!("cannot listen on {} (http.listen)", http.listen))?;
    }
    let watchdog = observe::systemd::spawn_watchdog(heartbeat, writer.clone(), stopped.clone());
    let mut sources = Sources::start(&config, &writer, &metrics);
    observe::systemd::ready();

    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    loop {
        tokio::select! {
            _ = linegate_common::process::shutdown_signal() => {
                tracing::info!("stopping: finishing in-flight results");
                break;
            }
            _ = hangup.recv() => {
                if let Some(new) = reload(config_path, &config) {
                    sources.stop().await;
                    sources = Sources::start(&new, &writer, &metrics);
                    config = new;
                    tracing::info!("config reloaded: sources restarted with it; [kafka], [forward], [outbox] and [http] changes take effect at the next restart");
                }
            }
            result = &mut forwarder => {
                return match result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => Err(error.into()),
                    Err(panic) => Err(anyhow::anyhow!("the forwarder stopped unexpectedly: {panic}")),
                };
            }
        }
    }
    observe::systemd::stopping();
    drop(writer);
    let _ = stop.send(true);
    drop(watchdog);
    sources.stop().await;
    if tokio::time::timeout(FORWARD_STOP, &mut forwarder)
        .await
        .is_err()
    {
        tracing::warn!(
            "the forwarder did not finish its round in time; unconfirmed events stay in the outbox"
        );
        forwarder.abort();
    }
    tracing::info!("linegate-edge stopped");
    Ok(())
}

/// The running sources of one config generation, with their own stop signal so a reload can replace them
/// while the outbox writer and the forwarder go on.
struct Sources {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Sources {
    fn start(config: &EdgeConfig, writer: &OutboxWriter, metrics: &EdgeMetrics) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        if let Some(mqtt) = config.mqtt.clone() {
            tasks.push(tokio::spawn(source::mqtt::run(
                mqtt,
                config.station.id.clone(),
                writer.clone(),
                metrics.clone(),
                stopped.clone(),
            )));
        }
        if let Some(modbus) = config.modbus.clone() {
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
    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if tokio::time::timeout(SOURCE_STOP, task).await.is_err() {
                tracing::warn!("a source did not stop in time");
            }
        }
    }
}

/// The config at `path` if it is valid and keeps what a reload cannot change; otherwise logs why the running
/// config stays.
fn reload(path: &Path, running: &EdgeConfig) -> Option<EdgeConfig> {
    match EdgeConfig::load(path) {
        Err(error) => {
            tracing::error!(%error, "config reload refused; the running config stays");
            None
        }
        Ok(new)
            if new.station.id != running.station.id
                || new.station.data_dir != running.station.data_dir =>
        {
            tracing::error!("config reload refused: station.id and station.data_dir can only change with a restart; the running config stays");
            None
        }
        Ok(new) => Some(new),
    }
}
