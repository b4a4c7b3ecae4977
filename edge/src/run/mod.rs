//! `linegate-edge run`: wires outbox, forwarder and sources together and shuts them down in order.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::forward;
use crate::observe::{self, EdgeMetrics, Heartbeat};
use crate::outbox::{OutboxReader, OutboxWriter};
use crate::push::apply::{decide, resume_pushed};
use crate::push::state::PushState;
use crate::push::{report, watch::Pushed, PushMetrics};

mod sources;

use linegate_station_config::EdgeConfig;
use sources::{watched_sources, Sources};

/// How long the forwarder gets to finish its round after the sources stopped.
const FORWARD_STOP: Duration = Duration::from_secs(5);

/// Runs the agent until SIGTERM or SIGINT; SIGHUP re-reads `config_path` and restarts the sources with it.
/// `local` is the local file's config; with `[config_push]`, a pushed config is overlaid on it (the
/// last-known-good one at start, then each new one the centre pushes).
pub async fn run(local: EdgeConfig, config_path: &Path) -> anyhow::Result<()> {
    let mut agent = Agent::start(local).await?;
    match agent.serve(config_path).await? {
        Exit::Stop => {
            agent.stop().await;
            Ok(())
        }
        Exit::Forwarder(result) => result,
    }
}

/// Why [`Agent::serve`] returned.
enum Exit {
    /// SIGTERM or SIGINT: stop in order.
    Stop,
    /// The forwarder ended by itself (a fatal Kafka error or a panic): the agent ends with its outcome.
    Forwarder(anyhow::Result<()>),
}

/// Everything a running edge holds, in the order it was started; [`Agent::stop`] takes it down in reverse.
struct Agent {
    /// The local file's config (SIGHUP replaces it).
    local: EdgeConfig,
    /// The pushed config in force, with `[config_push]`.
    push: Option<PushState>,
    push_metrics: PushMetrics,
    writer: OutboxWriter,
    metrics: EdgeMetrics,
    /// Stops the forwarder, the HTTP server, the watchdog and the push watcher.
    stop: watch::Sender<bool>,
    forwarder: JoinHandle<Result<(), forward::ForwardError>>,
    watchdog: Option<JoinHandle<()>>,
    sources: Sources,
    /// Kept here so that `pushes` never closes, with or without a watcher.
    push_sender: mpsc::Sender<Pushed>,
    pushes: mpsc::Receiver<Pushed>,
}

impl Agent {
    /// Opens the outbox, then starts the forwarder, the HTTP endpoint, the watchdog, the sources and the
    /// pushed-config watcher, and tells systemd the edge is ready.
    async fn start(local: EdgeConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&local.station.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                local.station.data_dir.display()
            )
        })?;
        let (push, config) = resume_pushed(&local).context("[config_push]")?;
        let outbox_path = config.outbox_path();
        let committed = Arc::new(Notify::new());
        let writer = OutboxWriter::start(
            &outbox_path,
            &config.station.id,
            crate::outbox::OutboxOptions::from_config(&config.outbox),
            Arc::clone(&committed),
        )?;
        let reader = OutboxReader::open(&outbox_path)?;
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = EdgeMetrics::register(&mut registry);
        let push_metrics = PushMetrics::register(&mut registry);
        if let Some(state) = &push {
            push_metrics
                .version
                .set(i64::try_from(state.applied_version()).unwrap_or(i64::MAX));
        }
        log_started(&config, &outbox_path, &reader)?;
        let (stop, stopped) = watch::channel(false);
        let heartbeat = Heartbeat::default();
        heartbeat.beat();
        let forwarder = tokio::spawn(forward::run(
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
        if let Some(http) = &config.http {
            let state = observe::http::HttpState {
                registry,
                metrics: metrics.clone(),
                reader: std::sync::Mutex::new(OutboxReader::open(&outbox_path)?),
                writer: writer.clone(),
                sources: watched_sources(&config),
            };
            serve_http(http.listen, state, stopped.clone()).await?;
        }
        let watchdog = observe::systemd::spawn_watchdog(
            heartbeat,
            writer.clone(),
            metrics.source_failures.clone(),
            stopped.clone(),
        );
        let sources = Sources::start(&config, &writer, &metrics);
        let (push_sender, pushes) = mpsc::channel::<Pushed>(4);
        if push.is_some() {
            watch_pushes(&local, push_sender.clone(), stopped)?;
        }
        observe::systemd::ready();
        Ok(Self {
            local,
            push,
            push_metrics,
            writer,
            metrics,
            stop,
            forwarder,
            watchdog,
            sources,
            push_sender,
            pushes,
        })
    }

    /// Serves until a stop signal or the forwarder's end, handling SIGHUP reloads and pushed configs.
    async fn serve(&mut self, config_path: &Path) -> anyhow::Result<Exit> {
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("cannot listen for SIGHUP")?;
        loop {
            tokio::select! {
                _ = linegate_common::process::shutdown_signal() => {
                    tracing::info!("stopping: finishing in-flight results");
                    return Ok(Exit::Stop);
                }
                _ = hangup.recv() => self.reload(config_path).await,
                Some(pushed) = self.pushes.recv() => self.apply_pushed(pushed).await,
                result = &mut self.forwarder => {
                    return Ok(Exit::Forwarder(match result {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(error)) => Err(error.into()),
                        Err(panic) => Err(anyhow::anyhow!("the forwarder stopped unexpectedly: {panic}")),
                    }));
                }
            }
        }
    }

    /// SIGHUP: the sources restart with the file at `config_path` (with the pushed config in force overlaid),
    /// if it is valid; otherwise the running config stays.
    async fn reload(&mut self, config_path: &Path) {
        let Some(new_local) = reload(config_path, &self.local) else {
            return;
        };
        let new = match &self.push {
            Some(state) => match state.reapply(new_local.clone()) {
                Ok(new) => new,
                Err(error) => {
                    tracing::error!(%error, version = state.applied_version(), "config reload refused: the pushed config in force does not fit the new local file; the running config stays");
                    return;
                }
            },
            None => new_local.clone(),
        };
        self.restart_sources(&new).await;
        self.local = new_local;
        tracing::info!("config reloaded: sources restarted with it; [kafka], [forward], [outbox], [http] and [config_push] changes take effect at the next restart");
    }

    /// A pushed config: applied if [`decide`] accepts it, with its report between the old and the new sources.
    async fn apply_pushed(&mut self, pushed: Pushed) {
        let Some(state) = self.push.as_mut() else {
            return;
        };
        let decided = decide(pushed, state, &self.local, &self.writer, &self.push_metrics).await;
        if let Some((new, applied)) = decided {
            // Old sources finish first, so every result before the report was captured under the old config
            // and every result after it under the new one.
            let old = std::mem::replace(&mut self.sources, Sources::none());
            old.stop().await;
            report::store(&self.writer, applied).await;
            self.sources = Sources::start(&new, &self.writer, &self.metrics);
        }
    }

    async fn restart_sources(&mut self, config: &EdgeConfig) {
        let old = std::mem::replace(&mut self.sources, Sources::none());
        old.stop().await;
        self.sources = Sources::start(config, &self.writer, &self.metrics);
    }

    /// Stops in order: systemd told, the writer handle dropped, the stop signal sent, the sources finish what
    /// they hold, the forwarder its round (within [`FORWARD_STOP`]).
    async fn stop(self) {
        let Self {
            writer,
            stop,
            mut forwarder,
            watchdog,
            sources,
            push_sender,
            ..
        } = self;
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
        drop(push_sender);
        tracing::info!("linegate-edge stopped");
    }
}

/// The local `/metrics` and `/healthz` endpoint.
async fn serve_http(
    listen: std::net::SocketAddr,
    state: observe::http::HttpState,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    observe::http::start(listen, state, stopped)
        .await
        .map(drop)
        .with_context(|| format!("cannot listen on {listen} (http.listen)"))
}

/// Starts the watcher of the station's pushed configs, when `[config_push]` is set.
fn watch_pushes(
    local: &EdgeConfig,
    pushes: mpsc::Sender<Pushed>,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let Some(push_config) = &local.config_push else {
        return Ok(());
    };
    crate::push::watch::spawn(
        local.kafka.clone(),
        push_config.topic.clone(),
        local.station.id.clone(),
        pushes,
        stopped,
    )
    .map(drop)
    .context("cannot start the pushed-config watcher")
}

/// Where the edge runs from and what waits in its outbox.
fn log_started(config: &EdgeConfig, outbox: &Path, reader: &OutboxReader) -> anyhow::Result<()> {
    tracing::info!(
        station = %config.station.id,
        outbox = %outbox.display(),
        waiting = reader.depth()?,
        next_seq = reader.next_seq()?,
        "linegate-edge started"
    );
    Ok(())
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
