//! The outputs' wire format: Avro single-object encoding, or, with a `[schema_registry] url`, the Confluent
//! wire format that Kafka Connect, ksqlDB and Flink read as they are.
//!
//! Routing stays pure and always writes single-object encoding; [`WireFormat::frame`] runs between routing
//! and producing and re-frames each Avro output (`C3 01` + fingerprint -> `00` + schema id, the body
//! untouched) with the id of its schema under subject `<topic>-value` (TopicNameStrategy). Ids are cached per
//! (topic, fingerprint), so the registry is asked once per subject and process: a registry that is away
//! only stops rounds that need a subject not yet cached. Such a round waits with backoff
//! ([`WireFormat::frame_waiting`]) and is produced, whole, only when every id is known: an output is
//! produced in the configured wire format or not at all. Dead letters (the input as it was) and the JSON
//! state topic are never touched.
//!
//! `client` is the REST API, `wire` the byte work, `reader` the other direction for tools that read the
//! outputs back (`audit verify`).

mod client;
pub mod framing;
mod reader;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use linegate_schemas::{Contract, SchemaError};
use tokio::sync::watch;

pub use client::{Compatibility, RegistryClient, RegistryMetrics};
use framing::Framing;
pub use reader::{ReadError, SchemaReader};

use crate::config::{output_kinds, BridgeConfig};
use crate::decide::route::Output;

/// Why a schema id could not be had, or a record not framed. [`RegistryError::is_transient`] tells the
/// errors a wait cures (registry away or overloaded) from those an operator must fix.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The HTTP client could not be built.
    #[error("cannot create the schema registry client: {reason}")]
    Client {
        /// What reqwest said.
        reason: String,
    },
    /// No answer: connection refused, DNS, timeout.
    #[error("schema registry at {url} not reachable ({op}): {reason}")]
    Unreachable {
        /// Base URL.
        url: String,
        /// The call.
        op: &'static str,
        /// What failed.
        reason: String,
    },
    /// A 5xx, 408 or 429 answer: the registry is there but cannot serve now.
    #[error("schema registry at {url} cannot serve {op} now: HTTP {status}: {message}")]
    Unavailable {
        /// Base URL.
        url: String,
        /// The call.
        op: &'static str,
        /// HTTP status.
        status: u16,
        /// The registry's message.
        message: String,
    },
    /// The schema is not compatible with the subject's latest version under the subject's compatibility
    /// rule (HTTP 409). Waiting does not help.
    #[error("schema registry refuses the bridge's schema for subject {subject}: incompatible with its latest version ({reasons}). Check the subject's compatibility level and its versions; the bridge's schemas follow the contract's released versions")]
    Incompatible {
        /// The subject.
        subject: String,
        /// The registry's reasons.
        reasons: String,
    },
    /// Another 4xx: unauthorized, invalid schema (42201), unknown subject in a read-only mode, ...
    #[error("schema registry at {url} refused {op}{}: HTTP {status}, error code {code}: {message}", .subject.as_ref().map(|s| format!(" for subject {s}")).unwrap_or_default())]
    Refused {
        /// Base URL.
        url: String,
        /// The call.
        op: &'static str,
        /// The subject, when the call had one.
        subject: Option<String>,
        /// HTTP status.
        status: u16,
        /// The registry's `error_code` (0 if it sent none).
        code: i64,
        /// The registry's message.
        message: String,
    },
    /// A 2xx answer that is not the registry's JSON.
    #[error("the schema registry's answer to {op} is not what its API documents: {reason}")]
    BadAnswer {
        /// The call.
        op: &'static str,
        /// What did not parse.
        reason: String,
    },
    /// `GET /schemas/ids/{id}` found nothing (404).
    #[error("schema id {id} is unknown to the schema registry (was it deleted, or is this another registry?)")]
    UnknownId {
        /// The id.
        id: u32,
    },
    /// An output that should be Avro is not in this build's single-object encoding: a build defect.
    #[error("output to {topic} is not an Avro single-object record of this build (starts with {found}); it cannot be framed for the registry")]
    NotFramable {
        /// Destination topic.
        topic: String,
        /// Its first bytes.
        found: String,
    },
    /// The schema of an id is no version of the contract.
    #[error("schema id {id}: {source}")]
    ForeignSchema {
        /// The id.
        id: u32,
        /// Why it is not ours.
        #[source]
        source: SchemaError,
    },
}

impl RegistryError {
    /// Whether waiting may cure it: the registry is away, overloaded or timing out.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RegistryError::Unreachable { .. } | RegistryError::Unavailable { .. }
        )
    }

    fn for_subject(self, subject: &str) -> Self {
        match self {
            RegistryError::Refused {
                url,
                op,
                status,
                code,
                message,
                ..
            } => RegistryError::Refused {
                url,
                op,
                subject: Some(subject.to_owned()),
                status,
                code,
                message,
            },
            other => other,
        }
    }
}

/// First wait of a round for the registry; doubled per failure up to [`BACKOFF_MAX`] (as the pipeline
/// waits for Kafka).
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest wait, so a registry that is back is noticed soon.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// How outputs are framed; cheap to clone (the pipeline and the replay API share one id cache).
#[derive(Clone, Default)]
pub struct WireFormat {
    confluent: Option<Arc<Confluent>>,
}

/// Per output topic: (writer fingerprint, schema id) pairs already registered.
type IdCache = HashMap<String, Vec<([u8; 8], u32)>>;

struct Confluent {
    client: RegistryClient,
    /// The ids registered so far.
    ids: Mutex<IdCache>,
    /// The DLQ and the state topic: never re-framed.
    untouched: [String; 2],
}

impl Confluent {
    fn cached(&self, topic: &str, fingerprint: &[u8; 8]) -> Option<u32> {
        let ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.get(topic)?
            .iter()
            .find(|(f, _)| f == fingerprint)
            .map(|(_, id)| *id)
    }

    /// Registers the current schema with `fingerprint` under `<topic>-value` and caches its id.
    async fn register(&self, topic: &str, fingerprint: [u8; 8]) -> Result<u32, RegistryError> {
        let contract = Contract::global();
        let kind =
            contract
                .current_kind(&fingerprint)
                .ok_or_else(|| RegistryError::NotFramable {
                    topic: topic.to_owned(),
                    found: format!("fingerprint {}", hex::encode(fingerprint)),
                })?;
        let subject = format!("{topic}-value");
        let id = self
            .client
            .register(&subject, &contract.current(kind).json)
            .await?;
        tracing::info!(subject, id, kind = kind.name(), "schema registered");
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        let entry = ids.entry(topic.to_owned()).or_default();
        if !entry.iter().any(|(f, _)| *f == fingerprint) {
            entry.push((fingerprint, id));
        }
        Ok(id)
    }
}

impl WireFormat {
    /// Single-object encoding: outputs pass unchanged.
    pub fn single_object() -> Self {
        Self::default()
    }

    /// The format `config` asks for: Confluent with a registry URL, else single-object.
    pub fn from_config(
        config: &BridgeConfig,
        metrics: RegistryMetrics,
    ) -> Result<Self, RegistryError> {
        let Some(client) = RegistryClient::new(&config.schema_registry, metrics)? else {
            return Ok(Self::single_object());
        };
        Ok(Self {
            confluent: Some(Arc::new(Confluent {
                client,
                ids: Mutex::default(),
                untouched: [config.topics.dlq.clone(), config.topics.state.clone()],
            })),
        })
    }

    /// Puts an id into the cache as if registered (unit tests have no registry).
    #[cfg(test)]
    fn cache(&self, topic: &str, kind: linegate_schemas::MessageKind, id: u32) {
        let confluent = self.confluent.as_ref().expect("a Confluent format");
        let fingerprint = Contract::global().current(kind).fingerprint;
        let mut ids = confluent.ids.lock().unwrap();
        ids.entry(topic.to_owned())
            .or_default()
            .push((fingerprint, id));
    }

    /// Whether outputs are written in the Confluent wire format.
    pub fn is_confluent(&self) -> bool {
        self.confluent.is_some()
    }

    /// Registers the schema of every output topic of `config` now, so that rounds find their ids cached.
    /// A registry that is away is not an error here (the rounds wait for it); one that refuses a schema is,
    /// so that an incompatible subject stops the start with the reason. Returns how many ids are cached.
    pub async fn warm_up(&self, config: &BridgeConfig) -> Result<usize, RegistryError> {
        let Some(confluent) = &self.confluent else {
            return Ok(0);
        };
        let mut cached = 0;
        for (topic, kinds) in output_kinds(config) {
            for kind in kinds {
                let fingerprint = Contract::global().current(kind).fingerprint;
                if confluent.cached(&topic, &fingerprint).is_some() {
                    cached += 1;
                    continue;
                }
                match confluent.register(&topic, fingerprint).await {
                    Ok(_) => cached += 1,
                    // Logged by the client; the first round that needs the id waits for it.
                    Err(error) if error.is_transient() => return Ok(cached),
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(cached)
    }

    /// Re-frames every Avro output for the registry, or none: on an error `outputs` are unchanged. Asks the
    /// registry only for (topic, schema) pairs not cached yet.
    pub async fn frame(&self, outputs: &mut [Output]) -> Result<(), RegistryError> {
        let Some(confluent) = &self.confluent else {
            return Ok(());
        };
        let framed = |o: &Output| !confluent.untouched.contains(&o.topic);
        let mut missing: Vec<(&str, [u8; 8])> = Vec::new();
        for output in outputs.iter().filter(|o| framed(o)) {
            let Framing::SingleObject(fingerprint) = framing::framing(&output.value) else {
                return Err(RegistryError::NotFramable {
                    topic: output.topic.clone(),
                    found: framing::head_hex(&output.value),
                });
            };
            let pair = (output.topic.as_str(), fingerprint);
            if confluent.cached(pair.0, &fingerprint).is_none() && !missing.contains(&pair) {
                missing.push(pair);
            }
        }
        let missing: Vec<(String, [u8; 8])> = missing
            .into_iter()
            .map(|(t, f)| (t.to_owned(), f))
            .collect();
        for (topic, fingerprint) in missing {
            confluent.register(&topic, fingerprint).await?;
        }
        for output in outputs.iter_mut().filter(|o| framed(o)) {
            let Framing::SingleObject(fingerprint) = framing::framing(&output.value) else {
                unreachable!("checked above");
            };
            let id = confluent
                .cached(&output.topic, &fingerprint)
                .expect("registered above");
            framing::to_confluent(&mut output.value, id);
        }
        Ok(())
    }

    /// [`WireFormat::frame`], waiting with backoff while the registry is away. Returns false when `shutdown`
    /// came first (nothing framed: the round must stay uncommitted); an error an operator must fix is
    /// returned at once.
    pub async fn frame_waiting(
        &self,
        outputs: &mut [Output],
        shutdown: &watch::Receiver<bool>,
    ) -> Result<bool, RegistryError> {
        let mut shutdown = shutdown.clone();
        let mut backoff = BACKOFF_MIN;
        loop {
            match self.frame(outputs).await {
                Ok(()) => return Ok(true),
                Err(error) if error.is_transient() => {
                    tracing::debug!(%error, retry_in = ?backoff, "round waits for the schema registry");
                    if *shutdown.borrow() {
                        return Ok(false);
                    }
                    tokio::select! {
                        _ = shutdown.changed() => return Ok(false),
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests;
