//! A **test stand-in for Confluent Schema Registry**, not the real thing: no registry server can be installed
//! on the build machines, so the tests run this small server that follows the registry's documented REST
//! API for the calls linegate makes. It is not used outside tests and is not a registry to deploy.
//!
//! What it does, as the real registry documents it: `POST /subjects/{subject}/versions` registers a schema
//! (the same schema gets the same id, globally; a new schema for a subject becomes its next version if it
//! is BACKWARD compatible with the latest one, else 409), `GET /schemas/ids/{id}`, `GET /subjects`,
//! `GET /subjects/{subject}/versions`, and `POST /compatibility/subjects/{subject}/versions/latest`
//! (`is_compatible`, with `messages` when not). Errors are `{"error_code", "message"}` with the registry's
//! codes (40401, 40403, 409, 42201). Not done: modes, deletes, references, per-subject compatibility levels
//! (always BACKWARD, the registry's default), schema types other than Avro, auth. Schemas are the same
//! when their Avro Parsing Canonical Form is (the real one compares its own normalised text).
//!
//! It keeps its store across [`SchemaRegistryStandIn::stop`] and [`SchemaRegistryStandIn::start_again`] on
//! the same port, like a real registry whose store is a Kafka topic, so a test can take it away and bring
//! it back. It runs on its own thread and runtime, so a test blocked in a synchronous call cannot starve it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use linegate_schemas::{AvroMessage, Contract};

use crate::process::free_port;

/// The registry's media type, which its answers carry.
const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// What the stand-in stores: schemas by id (id = index + 1) and each subject's versions as ids.
#[derive(Default)]
struct Store {
    schemas: Vec<(String, String)>,
    subjects: BTreeMap<String, Vec<u32>>,
    requests: Vec<String>,
}

type Shared = Arc<Mutex<Store>>;

/// The running server: its stop signal and thread.
struct Server {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// The stand-in registry on a loopback port (see the module docs: a test stand-in, not the real thing).
pub struct SchemaRegistryStandIn {
    port: u16,
    store: Shared,
    server: Option<Server>,
}

impl SchemaRegistryStandIn {
    /// Starts on a free port with an empty store.
    pub fn start() -> anyhow::Result<Self> {
        let mut registry = Self {
            port: free_port(),
            store: Shared::default(),
            server: None,
        };
        registry.start_again()?;
        Ok(registry)
    }

    /// (Re)starts on the same port with the same store; returns once it accepts connections.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if self.server.is_some() {
            return Ok(());
        }
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (bound, bound_rx) = std::sync::mpsc::channel();
        let (port, store) = (self.port, self.store.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(serve(port, store, stopped, bound));
        });
        bound_rx
            .recv()
            .context("the stand-in registry thread ended")?
            .with_context(|| format!("stand-in registry cannot listen on port {}", self.port))?;
        self.server = Some(Server { stop, thread });
        Ok(())
    }

    /// Stops the server: the port refuses connections and open connections are closed. The store stays.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.stop.send(());
            let _ = server.thread.join();
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Registers `schema` under `subject` directly (as another producer would), e.g. to seed a subject.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, String> {
        register(&mut self.lock(), subject, schema).map_err(|(_, _, message)| message)
    }

    /// The schema text of `id`.
    pub fn schema(&self, id: u32) -> Option<String> {
        let store = self.lock();
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        store.schemas.get(index).map(|(text, _)| text.clone())
    }

    /// The ids of `subject`'s versions, oldest first.
    pub fn subject_ids(&self, subject: &str) -> Vec<u32> {
        self.lock()
            .subjects
            .get(subject)
            .cloned()
            .unwrap_or_default()
    }

    /// Every subject.
    pub fn subjects(&self) -> Vec<String> {
        self.lock().subjects.keys().cloned().collect()
    }

    /// The requests served so far, as `METHOD /path STATUS`.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// Decodes a Confluent-framed record the way a Confluent deserializer does: magic 0, the id, the writer
    /// schema by id (from this store, so it works while the server is stopped), then the Avro body. Returns
    /// the id with the message. Independent of the bridge's own reader on purpose.
    pub fn decode<M: AvroMessage>(&self, value: &[u8]) -> anyhow::Result<(u32, M)> {
        anyhow::ensure!(
            value.len() >= 5 && value[0] == 0,
            "not the Confluent wire format: starts with {:02X?}",
            &value[..value.len().min(4)]
        );
        let id = u32::from_be_bytes(value[1..5].try_into()?);
        let schema = self
            .schema(id)
            .with_context(|| format!("schema id {id} was never issued by the stand-in"))?;
        let (_, fingerprint) = Contract::global().identify(&schema)?;
        let mut single = vec![0xC3, 0x01];
        single.extend_from_slice(&fingerprint);
        single.extend_from_slice(&value[5..]);
        Ok((id, linegate_schemas::decode::<M>(&single)?))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for SchemaRegistryStandIn {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(
    port: u16,
    store: Shared,
    stopped: tokio::sync::oneshot::Receiver<()>,
    bound: std::sync::mpsc::Sender<std::io::Result<()>>,
) {
    let listener = match listen(port) {
        Ok(listener) => listener,
        Err(error) => {
            let _ = bound.send(Err(error));
            return;
        }
    };
    let _ = bound.send(Ok(()));
    let app = Router::new()
        .route("/subjects", get(subjects))
        .route(
            "/subjects/{subject}/versions",
            get(versions).post(register_version),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route(
            "/compatibility/subjects/{subject}/versions/latest",
            post(compatibility),
        )
        .fallback(|| async { answer(StatusCode::NOT_FOUND, error(404, "HTTP 404 Not Found")) })
        .layer(axum::middleware::from_fn_with_state(store.clone(), log))
        .with_state(store);
    // Returning drops the runtime with every connection task, so open keep-alive connections close too.
    let server = std::future::IntoFuture::into_future(axum::serve(listener, app));
    tokio::select! {
        _ = server => {}
        _ = stopped => {}
    }
}

/// A listener with SO_REUSEADDR, so a restart on the same port does not wait for TIME_WAIT.
fn listen(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(64)
}

async fn log(
    State(store): State<Shared>,
    method: Method,
    uri: Uri,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let line = format!("{method} {} {}", uri.path(), response.status().as_u16());
    store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .requests
        .push(line);
    response
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, MEDIA_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn error(code: u32, message: &str) -> serde_json::Value {
    serde_json::json!({ "error_code": code, "message": message })
}

/// The `schema` of a request body, parsed; the error is the message of a 422 (error code 42201).
fn schema_of(body: &[u8]) -> Result<(String, Schema), String> {
    let request: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("Invalid request: {e}"))?;
    if request
        .get("schemaType")
        .is_some_and(|t| t.as_str() != Some("AVRO"))
    {
        return Err("the stand-in serves Avro schemas only".to_owned());
    }
    let text = request
        .get("schema")
        .and_then(|s| s.as_str())
        .ok_or_else(|| "Empty schema".to_owned())?;
    let schema = Schema::parse_str(text).map_err(|e| format!("Invalid schema {text}: {e}"))?;
    Ok((text.to_owned(), schema))
}

fn invalid(message: &str) -> Response {
    answer(StatusCode::UNPROCESSABLE_ENTITY, error(42201, message))
}

/// BACKWARD: the new schema must read what the subject's latest version wrote.
fn backward(store: &Store, subject: &str, schema: &Schema) -> Result<(), String> {
    let Some(latest) = store.subjects.get(subject).and_then(|ids| ids.last()) else {
        return Ok(());
    };
    let (text, _) = &store.schemas[*latest as usize - 1];
    let latest = Schema::parse_str(text).map_err(|e| e.to_string())?;
    SchemaCompatibility::can_read(&latest, schema).map_err(|e| {
        format!(
            "the new schema cannot read data written with version {} of {subject}: {e}",
            store.subjects[subject].len()
        )
    })
}

fn register(
    store: &mut Store,
    subject: &str,
    text: &str,
) -> Result<u32, (StatusCode, u32, String)> {
    let schema = Schema::parse_str(text).map_err(|e| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            format!("Invalid schema: {e}"),
        )
    })?;
    let canonical = schema.canonical_form();
    let existing = store
        .schemas
        .iter()
        .position(|(_, c)| *c == canonical)
        .map(|i| i as u32 + 1);
    if let Some(id) = existing {
        if store
            .subjects
            .get(subject)
            .is_some_and(|ids| ids.contains(&id))
        {
            return Ok(id);
        }
    }
    backward(store, subject, &schema).map_err(|reason| {
        (
            StatusCode::CONFLICT,
            409,
            format!("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{reason}]"),
        )
    })?;
    let id = existing.unwrap_or_else(|| {
        store.schemas.push((text.to_owned(), canonical));
        store.schemas.len() as u32
    });
    store
        .subjects
        .entry(subject.to_owned())
        .or_default()
        .push(id);
    Ok(id)
}

async fn register_version(
    State(store): State<Shared>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Response {
    let (text, _) = match schema_of(&body) {
        Ok(parsed) => parsed,
        Err(message) => return invalid(&message),
    };
    let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
    match register(&mut store, &subject, &text) {
        Ok(id) => answer(StatusCode::OK, serde_json::json!({ "id": id })),
        Err((status, code, message)) => answer(status, error(code, &message)),
    }
}

async fn schema_by_id(State(store): State<Shared>, Path(id): Path<u32>) -> Response {
    let store = store.lock().unwrap_or_else(|p| p.into_inner());
    match id
        .checked_sub(1)
        .and_then(|i| store.schemas.get(i as usize))
    {
        Some((text, _)) => answer(StatusCode::OK, serde_json::json!({ "schema": text })),
        None => answer(StatusCode::NOT_FOUND, error(40403, "Schema not found")),
    }
}

async fn subjects(State(store): State<Shared>) -> Response {
    let store = store.lock().unwrap_or_else(|p| p.into_inner());
    let names: Vec<&String> = store.subjects.keys().collect();
    answer(StatusCode::OK, serde_json::json!(names))
}

async fn versions(State(store): State<Shared>, Path(subject): Path<String>) -> Response {
    let store = store.lock().unwrap_or_else(|p| p.into_inner());
    match store.subjects.get(&subject) {
        Some(ids) => answer(
            StatusCode::OK,
            serde_json::json!((1..=ids.len()).collect::<Vec<_>>()),
        ),
        None => answer(
            StatusCode::NOT_FOUND,
            error(40401, &format!("Subject '{subject}' not found.")),
        ),
    }
}

async fn compatibility(
    State(store): State<Shared>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Response {
    let (_, schema) = match schema_of(&body) {
        Ok(parsed) => parsed,
        Err(message) => return invalid(&message),
    };
    let store = store.lock().unwrap_or_else(|p| p.into_inner());
    if !store.subjects.contains_key(&subject) {
        return answer(
            StatusCode::NOT_FOUND,
            error(40401, &format!("Subject '{subject}' not found.")),
        );
    }
    match backward(&store, &subject, &schema) {
        Ok(()) => answer(StatusCode::OK, serde_json::json!({ "is_compatible": true })),
        Err(reason) => answer(
            StatusCode::OK,
            serde_json::json!({ "is_compatible": false, "messages": [reason] }),
        ),
    }
}
