//! `linegate-bridge config ...`: the centre's side of pushed station configs.
//!
//! `keygen` makes the ed25519 key pair; `push` validates a station config exactly as the edge will (the
//! station config contract, `linegate_station_config::overlay`, that the edge applies), numbers it, signs it and publishes it to the compacted topic
//! `linegate.station.config` keyed by station id; `show` and `history` read the topic back. The edge side is
//! `linegate_edge::push` (another binary); the envelope is `linegate_station_config::signed`.

pub mod print;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use linegate_common::conf::ConfigError;
use linegate_common::kafka::KafkaConfig;
use linegate_station_config::signed::{self, SignedConfig, SignedConfigError};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;

use crate::pipeline::state::{self, ReadBackError};

/// File names `keygen` writes.
pub const PRIVATE_KEY_FILE: &str = "config-signing.key";
/// See [`PRIVATE_KEY_FILE`].
pub const PUBLIC_KEY_FILE: &str = "config-signing.pub";

/// How long reading the topic back may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long Kafka may take to acknowledge a push.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a `config` command failed.
#[derive(Debug, thiserror::Error)]
pub enum StationConfigError {
    /// The file to push is not a valid station config (file:line, key).
    #[error("{0}; nothing was pushed")]
    Invalid(#[from] ConfigError),
    /// `--station` is not a station id.
    #[error("--station {0}; nothing was pushed")]
    Station(linegate_station_config::BadStationId),
    /// A key or key file is not usable.
    #[error(transparent)]
    Key(#[from] SignedConfigError),
    /// The topic could not be read back.
    #[error(transparent)]
    ReadBack(#[from] ReadBackError),
    /// Kafka did not take the push.
    #[error("cannot publish to {topic}: {source}")]
    Publish {
        /// The topic.
        topic: String,
        /// What librdkafka said.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// `--version` is not above what is on the topic.
    #[error("--version {requested} is not above version {current} already pushed for station {station}; an edge applies only newer versions")]
    Version {
        /// Asked for.
        requested: u64,
        /// Highest on the topic.
        current: u64,
        /// The station.
        station: String,
    },
    /// `keygen` found a key where it would write one.
    #[error("{0} exists: keygen never overwrites a key (move it away first; edges trust the old one until their config changes)")]
    Exists(PathBuf),
    /// A key file could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl StationConfigError {
    /// Whether the operator's input was wrong (exit code 2) rather than the environment (exit code 1).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Self::Invalid(_)
                | Self::Station(_)
                | Self::Key(_)
                | Self::Version { .. }
                | Self::Exists(_)
        )
    }
}

/// Writes a new key pair into `dir` (created if missing); refuses to overwrite an existing key. Returns the
/// key pair's public half.
pub fn keygen(dir: &Path) -> Result<ed25519_dalek::VerifyingKey, StationConfigError> {
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::AlreadyExists => StationConfigError::Exists(path),
            _ => StationConfigError::Write { path, source },
        }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let private = dir.join(PRIVATE_KEY_FILE);
    let public = dir.join(PUBLIC_KEY_FILE);
    if public.exists() {
        return Err(StationConfigError::Exists(public));
    }
    write_new(&private, &signed::signing_key_text(&key), 0o600).map_err(write_err(&private))?;
    write_new(
        &public,
        &signed::public_key_text(&key.verifying_key()),
        0o644,
    )
    .map_err(write_err(&public))?;
    Ok(key.verifying_key())
}

fn write_new(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(format!("{text}\n").as_bytes())?;
    file.sync_all()
}

/// One record of a station's key on the topic.
#[derive(Debug)]
pub struct PushedRecord {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// The envelope, or why the value is not one (a tombstone says so).
    pub envelope: Result<SignedConfig, String>,
}

/// Every record of `station` still on `topic` (compaction may have removed older ones), in log order.
pub fn history(
    kafka: &KafkaConfig,
    topic: &str,
    station: &str,
) -> Result<Vec<PushedRecord>, StationConfigError> {
    let records = state::read_all(kafka, topic, false, READ_TIMEOUT)?;
    Ok(records
        .iter()
        .filter(|r| r.key() == Some(station.as_bytes()))
        .map(|r| PushedRecord {
            partition: r.partition(),
            offset: r.offset(),
            envelope: match r.payload() {
                Some(value) => SignedConfig::from_json(value).map_err(|e| e.to_string()),
                None => Err("tombstone (ignored by the edge)".to_owned()),
            },
        })
        .collect())
}

/// What `push` did.
#[derive(Debug)]
pub struct Pushed {
    /// The envelope published.
    pub envelope: SignedConfig,
    /// Where it landed.
    pub partition: i32,
    /// Where it landed.
    pub offset: i64,
}

/// What to push.
pub struct PushRequest<'a> {
    /// Target station.
    pub station: &'a str,
    /// Station config document to push.
    pub file: &'a Path,
    /// Private key file.
    pub key_file: &'a Path,
    /// Version to use instead of the next one.
    pub version: Option<u64>,
}

/// Validates `request.file` as the edge will, then signs it as the next version (or `request.version`) and
/// publishes it; nothing is published when any check fails.
pub async fn push(
    kafka: &KafkaConfig,
    topic: &str,
    request: PushRequest<'_>,
) -> Result<Pushed, StationConfigError> {
    let station = request.station;
    linegate_station_config::check_station_id(station).map_err(StationConfigError::Station)?;
    linegate_station_config::overlay::check_for_push(request.file, station)?;
    let text = std::fs::read_to_string(request.file).map_err(|source| ConfigError::Read {
        path: request.file.to_owned(),
        source,
    })?;
    let key = signed::read_signing_key(request.key_file)?;
    let (kafka_owned, topic_owned, station_owned) =
        (kafka.clone(), topic.to_owned(), station.to_owned());
    let existing =
        tokio::task::spawn_blocking(move || history(&kafka_owned, &topic_owned, &station_owned))
            .await
            .expect("the read-back thread does not panic")?;
    let current = existing
        .iter()
        .filter_map(|r| r.envelope.as_ref().ok().map(|e| e.version))
        .max()
        .unwrap_or(0);
    let version = match request.version {
        Some(requested) if requested <= current => {
            return Err(StationConfigError::Version {
                requested,
                current,
                station: station.to_owned(),
            })
        }
        Some(requested) => requested,
        None => current + 1,
    };
    let envelope = SignedConfig::sign(
        station,
        version,
        linegate_common::process::now_ms(),
        &text,
        &key,
    );
    let publish_err = |source| StationConfigError::Publish {
        topic: topic.to_owned(),
        source,
    };
    let producer: FutureProducer = kafka
        .client_config(&[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "30000"),
        ])
        .create()
        .map_err(publish_err)?;
    let value = envelope.to_json();
    let record = FutureRecord::to(topic).key(station).payload(&value);
    let delivered = producer
        .send(record, PUBLISH_TIMEOUT)
        .await
        .map_err(|(error, _)| publish_err(error))?;
    Ok(Pushed {
        envelope,
        partition: delivered.partition,
        offset: delivered.offset,
    })
}
