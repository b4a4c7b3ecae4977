//! The registry's REST API, the three calls the bridge needs: register a schema under a subject, fetch a
//! schema by id, and test compatibility against a subject's latest version (Confluent Schema Registry API
//! v1; Apicurio and Karapace serve the same paths).
//!
//! Every call is counted (`linegate_bridge_schema_registry_requests_total{op}`, `..._errors_total{op}`), and
//! the registry's reachability is logged once per change, not once per retry.

use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use reqwest::{header, StatusCode, Url};
use serde::Deserialize;

use super::RegistryError;
use crate::config::SchemaRegistryConfig;
use crate::metrics::TopicLabels;

/// The registry's own media type; a plain `application/json` is accepted too, but this is what its clients send.
const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Counters and the reachability gauge of the registry calls.
#[derive(Clone, Default)]
pub struct RegistryMetrics {
    /// Requests sent, per operation.
    pub requests: Family<TopicLabels, Counter>,
    /// Requests that failed (unreachable, refused, unexpected answer), per operation.
    pub errors: Family<TopicLabels, Counter>,
    /// 1 when the last request reached the registry, 0 when it did not.
    pub up: Gauge,
}

impl RegistryMetrics {
    /// Creates the series under the `linegate_bridge_schema_registry` prefix.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let r = registry.sub_registry_with_prefix("linegate_bridge_schema_registry");
        r.register(
            "requests",
            "Schema registry requests, per operation",
            metrics.requests.clone(),
        );
        r.register(
            "errors",
            "Schema registry requests that failed, per operation",
            metrics.errors.clone(),
        );
        r.register(
            "up",
            "1 when the last schema registry request reached it",
            metrics.up.clone(),
        );
        metrics
    }
}

/// A client of one registry.
pub struct RegistryClient {
    http: reqwest::Client,
    base: Url,
    credentials: Option<(String, String)>,
    metrics: RegistryMetrics,
    away: AtomicBool,
}

/// A `{"error_code": N, "message": "..."}` body.
#[derive(Deserialize)]
struct ErrorBody {
    error_code: Option<i64>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct Id {
    id: u32,
}

#[derive(Deserialize)]
struct SchemaText {
    schema: String,
}

/// What the registry says about a schema's compatibility with a subject's latest version.
#[derive(Debug, Deserialize)]
pub struct Compatibility {
    /// Whether the schema may be registered.
    pub is_compatible: bool,
    /// Why not (with `?verbose=true`; not every registry sends them).
    #[serde(default)]
    pub messages: Vec<String>,
}

impl RegistryClient {
    /// A client of the configured registry; `None` without a `url`.
    pub fn new(
        config: &SchemaRegistryConfig,
        metrics: RegistryMetrics,
    ) -> Result<Option<Self>, RegistryError> {
        let Some(base) = config.base_url() else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .timeout(config.timeout())
            .connect_timeout(config.timeout())
            .build()
            .map_err(|e| RegistryError::Client { reason: chain(&e) })?;
        Ok(Some(Self {
            http,
            base,
            credentials: config
                .credentials()
                .map(|(u, p)| (u.to_owned(), p.to_owned())),
            metrics,
            away: AtomicBool::new(false),
        }))
    }

    /// The base URL, for messages.
    pub fn url(&self) -> &Url {
        &self.base
    }

    /// `POST /subjects/{subject}/versions`: registers `schema` (or finds it registered) and returns its id.
    /// A 409 is [`RegistryError::Incompatible`] with the registry's reasons.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let url = self.url_of(&["subjects", subject, "versions"]);
        let body = serde_json::json!({ "schema": schema }).to_string();
        let answer = self.send("register", self.http.post(url).body(body)).await;
        match answer {
            Err(RegistryError::Refused { status: 409, .. }) => {
                let reasons = match self.compatibility(subject, schema).await {
                    Ok(found) if !found.messages.is_empty() => found.messages.join("; "),
                    _ => "the registry gave no details".to_owned(),
                };
                Err(RegistryError::Incompatible {
                    subject: subject.to_owned(),
                    reasons,
                })
            }
            Err(error) => Err(error.for_subject(subject)),
            Ok(text) => Ok(parse::<Id>("register", &text)?.id),
        }
    }

    /// `GET /schemas/ids/{id}`: the schema text of an id.
    pub async fn schema(&self, id: u32) -> Result<String, RegistryError> {
        let url = self.url_of(&["schemas", "ids", &id.to_string()]);
        match self.send("schema_by_id", self.http.get(url)).await {
            Err(RegistryError::Refused { status: 404, .. }) => Err(RegistryError::UnknownId { id }),
            Err(error) => Err(error),
            Ok(text) => Ok(parse::<SchemaText>("schema_by_id", &text)?.schema),
        }
    }

    /// `POST /compatibility/subjects/{subject}/versions/latest?verbose=true`.
    pub async fn compatibility(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<Compatibility, RegistryError> {
        let mut url = self.url_of(&["compatibility", "subjects", subject, "versions", "latest"]);
        url.set_query(Some("verbose=true"));
        let body = serde_json::json!({ "schema": schema }).to_string();
        let text = self
            .send("compatibility", self.http.post(url).body(body))
            .await
            .map_err(|e| e.for_subject(subject))?;
        parse("compatibility", &text)
    }

    /// The base URL with `segments` appended, each percent-encoded (a subject may hold any character).
    fn url_of(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http URL has a path")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// Sends one request with the registry's headers and returns the body of a 2xx answer.
    async fn send(
        &self,
        op: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<String, RegistryError> {
        let labels = vec![("op", op.to_owned())];
        self.metrics.requests.get_or_create(&labels).inc();
        let mut request = request
            .header(header::ACCEPT, MEDIA_TYPE)
            .header(header::CONTENT_TYPE, MEDIA_TYPE);
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, Some(password));
        }
        let result = match request.send().await {
            Err(error) => Err(RegistryError::Unreachable {
                url: self.base.to_string(),
                op,
                reason: chain(&error),
            }),
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                if status.is_success() {
                    Ok(text)
                } else {
                    Err(self.refusal(op, status, &text))
                }
            }
        };
        let reached = !matches!(
            result,
            Err(RegistryError::Unreachable { .. } | RegistryError::Unavailable { .. })
        );
        if result.is_err() {
            self.metrics.errors.get_or_create(&labels).inc();
        }
        self.metrics.up.set(i64::from(reached));
        if reached && self.away.swap(false, Ordering::SeqCst) {
            tracing::info!(url = %self.base, "schema registry reachable again");
        } else if !reached && !self.away.swap(true, Ordering::SeqCst) {
            if let Err(error) = &result {
                tracing::warn!(%error, "schema registry not reachable: rounds that need a schema id not yet cached wait (nothing is produced, offsets stay uncommitted) and retry with backoff");
            }
        }
        result
    }

    fn refusal(&self, op: &'static str, status: StatusCode, text: &str) -> RegistryError {
        let body: Option<ErrorBody> = serde_json::from_str(text).ok();
        let message = body
            .as_ref()
            .and_then(|b| b.message.clone())
            .unwrap_or_else(|| text.chars().take(200).collect());
        let code = body.and_then(|b| b.error_code).unwrap_or(0);
        let transient = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT;
        if transient {
            return RegistryError::Unavailable {
                url: self.base.to_string(),
                op,
                status: status.as_u16(),
                message,
            };
        }
        RegistryError::Refused {
            url: self.base.to_string(),
            op,
            subject: None,
            status: status.as_u16(),
            code,
            message: match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => format!(
                    "{message} (check schema_registry.username and schema_registry.password)"
                ),
                _ => message,
            },
        }
    }
}

fn parse<T: for<'de> Deserialize<'de>>(op: &'static str, text: &str) -> Result<T, RegistryError> {
    serde_json::from_str(text).map_err(|e| RegistryError::BadAnswer {
        op,
        reason: format!(
            "{e} in `{}` (is schema_registry.url a schema registry?)",
            text.chars().take(120).collect::<String>()
        ),
    })
}

/// An error with its sources, because reqwest's own message leaves out why a connection failed.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
