//! The bridge's operations server (`[http] listen`): `/healthz`, `/metrics` (Prometheus text) and a JSON
//! API under `/api`: topics of the plan, consumer lag, DLQ pages, DLQ redrive and replay.
//!
//! Reading calls are open. Changing calls (POST: redrive, replay) need `Authorization: Bearer <token>` with
//! the `[http] token` of the config; without a configured token they are refused with 403 and a reason, so
//! that a server started without thinking about access can read but never write.

mod lag;
mod replay;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use linegate_common::topics::TopicPlan;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

pub use lag::{LagReader, PartitionLag};
pub use replay::{ReplayRequest, ReplayStatus, Replays};

use crate::config::BridgeConfig;
use crate::metrics::BridgeMetrics;
use crate::ops::deadletters::{self, Range};
use crate::ops::redrive;
use crate::wire::WireFormat;

/// Largest DLQ page.
const PAGE_MAX: usize = 1000;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address is taken or not ours.
    #[error("cannot listen on {addr} ([http] listen): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The lag reader's Kafka client could not be created.
    #[error("cannot create the lag reader: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// What the handlers share.
struct Ctx {
    config: BridgeConfig,
    plan: TopicPlan,
    registry: Registry,
    metrics: BridgeMetrics,
    lag: Arc<LagReader>,
    replays: Replays,
}

type Shared = Arc<Ctx>;

/// Binds `addr` and serves until the process ends; also starts the lag poller of `/metrics`. Returns once
/// listening, so a bind error stops the start. Replays frame their outputs with `wire`.
pub async fn start(
    addr: SocketAddr,
    config: BridgeConfig,
    plan: TopicPlan,
    registry: Registry,
    metrics: BridgeMetrics,
    wire: WireFormat,
) -> Result<SocketAddr, HttpError> {
    let lag = Arc::new(LagReader::new(&config)?);
    tokio::spawn(lag.clone().refresh_forever(metrics.clone()));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let ctx = Arc::new(Ctx {
        replays: Replays::new(&config, metrics.clone(), wire),
        config,
        plan,
        registry,
        metrics,
        lag,
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_text))
        .route("/api/topics", get(topics))
        .route("/api/lag", get(consumer_lag))
        .route("/api/dlq", get(dlq_page))
        .route("/api/dlq/redrive", post(dlq_redrive))
        .route("/api/replay", post(replay_start))
        .route("/api/replay/{id}", get(replay_status))
        .with_state(ctx);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the HTTP server stopped");
        }
    });
    tracing::info!(%bound, "HTTP server listening");
    Ok(bound)
}

/// An API error: status and a JSON `{"error": ...}` body a person can act on.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_GATEWAY, error.to_string())
}

/// Checks the bearer token of a changing call.
fn authorize(ctx: &Ctx, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = ctx.config.http.token.as_deref() else {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "changing calls are disabled: no [http] token is configured".to_owned(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "the bearer token is wrong".to_owned(),
        )),
        None => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "this call changes topics: send Authorization: Bearer <the [http] token>".to_owned(),
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics_text(State(ctx): State<Shared>) -> Response {
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &ctx.registry) {
        return internal(error).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// A topic of the plan and what the bridge uses it for.
#[derive(Serialize)]
struct TopicView {
    name: String,
    role: Option<&'static str>,
    partitions: i32,
    replication_factor: i32,
    retention_ms: i64,
    cleanup_policy: &'static str,
}

async fn topics(State(ctx): State<Shared>) -> Json<Vec<TopicView>> {
    let t = &ctx.config.topics;
    let roles = [
        (&t.input, "input"),
        (&t.lifecycle, "lifecycle"),
        (&t.quality, "quality"),
        (&t.audit, "audit"),
        (&t.dlq, "dlq"),
    ];
    Json(
        ctx.plan
            .topics()
            .map(|topic| TopicView {
                name: topic.name.clone(),
                role: roles
                    .iter()
                    .find(|(name, _)| **name == topic.name)
                    .map(|(_, role)| *role),
                partitions: topic.partitions,
                replication_factor: topic.replication_factor,
                retention_ms: topic.retention_ms,
                cleanup_policy: topic.cleanup_policy.as_kafka(),
            })
            .collect(),
    )
}

async fn consumer_lag(State(ctx): State<Shared>) -> Result<Json<Vec<PartitionLag>>, ApiError> {
    let reader = ctx.lag.clone();
    let lags = tokio::task::spawn_blocking(move || reader.read())
        .await
        .map_err(internal)?
        .map_err(internal)?;
    Ok(Json(lags))
}

/// `GET /api/dlq?partition=P&from=N&limit=L`: a page per partition; `next` says where the next page starts.
#[derive(Deserialize)]
struct PageQuery {
    partition: Option<i32>,
    from: Option<i64>,
    limit: Option<usize>,
}

async fn dlq_page(
    State(ctx): State<Shared>,
    Query(query): Query<PageQuery>,
) -> Result<Json<deadletters::Page>, ApiError> {
    let range = Range {
        partition: query.partition,
        from: query.from,
        to: None,
        limit: query.limit.unwrap_or(100).clamp(1, PAGE_MAX),
    };
    let (kafka, topic) = (ctx.config.kafka.clone(), ctx.config.topics.dlq.clone());
    let page = tokio::task::spawn_blocking(move || deadletters::read(&kafka, &topic, range))
        .await
        .map_err(internal)?
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(Json(page))
}

/// Body of `POST /api/dlq/redrive`: one `offset`, a `from_offset`/`to_offset` range, or `all`; in one
/// `partition` or all of them.
#[derive(Deserialize)]
struct RedriveBody {
    partition: Option<i32>,
    offset: Option<i64>,
    from_offset: Option<i64>,
    to_offset: Option<i64>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    dry_run: bool,
}

async fn dlq_redrive(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<RedriveBody>,
) -> Result<Json<redrive::Report>, ApiError> {
    authorize(&ctx, &headers)?;
    let range = redrive::range(
        body.partition,
        body.offset,
        body.from_offset,
        body.to_offset,
        body.all,
    )
    .map_err(|error| ApiError(StatusCode::BAD_REQUEST, error.to_string()))?;
    let topics = &ctx.config.topics;
    let report = redrive::redrive(
        &ctx.config.kafka,
        &topics.dlq,
        &topics.input,
        range,
        body.dry_run,
    )
    .await
    .map_err(internal)?;
    ctx.metrics.redriven.inc_by(if report.dry_run {
        0
    } else {
        report.sent as u64
    });
    Ok(Json(report))
}

async fn replay_start(
    State(ctx): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<ReplayRequest>,
) -> Result<(StatusCode, Json<ReplayStatus>), ApiError> {
    authorize(&ctx, &headers)?;
    let status = ctx
        .replays
        .start(body)
        .await
        .map_err(|msg| ApiError(StatusCode::BAD_REQUEST, msg))?;
    Ok((StatusCode::ACCEPTED, Json(status)))
}

async fn replay_status(
    State(ctx): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<ReplayStatus>, ApiError> {
    ctx.replays
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no replay {id}")))
}
