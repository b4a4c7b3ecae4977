//! The local HTTP endpoint: `/metrics` (Prometheus text) and `/healthz` (JSON; 200 when healthy, 503 with the
//! problems otherwise). Read-only: nothing here changes the agent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::metrics::EdgeMetrics;
use crate::outbox::{OutboxReader, OutboxStats};

/// What the handlers read.
pub struct HttpState {
    /// Every registered series.
    pub registry: Registry,
    /// The edge's own series (health is judged from them).
    pub metrics: EdgeMetrics,
    /// A reader of the outbox, for the gauges at scrape time.
    pub reader: Mutex<OutboxReader>,
    /// The outbox writer, whose running depth and size a scrape reads instead of counting rows.
    pub writer: crate::outbox::OutboxWriter,
    /// Sources whose connection state matters to health, e.g. `mqtt`.
    pub sources: Vec<String>,
}

/// Binds `listen` now (so a taken port is a start-up error naming the address) and serves until `shutdown`.
pub async fn start(
    listen: SocketAddr,
    state: HttpState,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(listen).await?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(Arc::new(state));
    tracing::info!(%listen, "serving /metrics and /healthz");
    Ok(tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(%error, "the metrics endpoint stopped");
        }
    }))
}

async fn refresh_outbox(state: &Arc<HttpState>) -> Result<OutboxStats, String> {
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || {
        let reader = state
            .reader
            .lock()
            .map_err(|_| "outbox reader poisoned".to_owned())?;
        let (depth, bytes) = state.writer.level();
        let stats = reader
            .stats_with_level(depth, bytes)
            .map_err(|e| e.to_string())?;
        state
            .metrics
            .set_outbox(&stats, linegate_common::process::now_ms());
        Ok(stats)
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    if let Err(error) = refresh_outbox(&state).await {
        tracing::warn!(%error, "cannot read the outbox for /metrics; its gauges keep their last values");
    }
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode the metrics: {error}"),
        ),
    }
}

/// The `/healthz` body.
#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    kafka: &'static str,
    sources: Vec<SourceHealth>,
    outbox: Option<OutboxHealth>,
    problems: Vec<String>,
}

#[derive(Debug, Serialize)]
struct SourceHealth {
    source: String,
    connected: bool,
}

#[derive(Debug, Serialize)]
struct OutboxHealth {
    depth: i64,
    bytes: i64,
    oldest_age_seconds: f64,
    quarantined: i64,
    next_seq: i64,
}

async fn healthz(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    let mut problems = Vec::new();
    let outbox = match refresh_outbox(&state).await {
        Ok(stats) => Some(OutboxHealth {
            depth: stats.depth,
            bytes: stats.file_bytes,
            oldest_age_seconds: state.metrics.outbox_oldest_age_seconds.get(),
            quarantined: stats.quarantined,
            next_seq: stats.next_seq,
        }),
        Err(error) => {
            problems.push(format!("the outbox cannot be read: {error}"));
            None
        }
    };
    let kafka_up = state.metrics.kafka_up.get() == 1;
    if !kafka_up {
        let waiting = outbox.as_ref().map_or(0, |o| o.depth);
        problems.push(format!(
            "Kafka is not reachable; {waiting} events wait in the outbox and are sent when it returns"
        ));
    }
    let sources: Vec<SourceHealth> = state
        .sources
        .iter()
        .map(|source| SourceHealth {
            source: source.clone(),
            connected: state
                .metrics
                .source_up
                .get_or_create(&super::metrics::SourceLabel {
                    source: source.clone(),
                })
                .get()
                == 1,
        })
        .collect();
    for source in sources.iter().filter(|s| !s.connected) {
        problems.push(format!("source {} is not connected", source.source));
    }
    let failures = state.metrics.source_failures.get();
    if failures > 0 {
        problems.push(format!(
            "{failures} source task(s) stopped unexpectedly (see the log); restart the edge"
        ));
    }
    let code = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let health = Health {
        status: if problems.is_empty() {
            "ok"
        } else {
            "degraded"
        },
        kafka: if kafka_up { "up" } else { "down" },
        sources,
        outbox,
        problems,
    };
    (code, Json(health))
}
