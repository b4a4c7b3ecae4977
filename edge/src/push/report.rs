//! CONFIG_APPLIED / CONFIG_REJECTED system events, written to the outbox so they travel to Kafka in order
//! with the results (and survive a Kafka outage), and the bridge puts them on `audit.events`.
//!
//! Their event ids are derived from what they report, so reconsidering the same record (after a restart the
//! edge reads its latest record again) is stored once within the outbox's dedup window.

use std::collections::BTreeMap;
use std::time::Duration;

use linegate_schemas::{EdgeEvent, SystemEventType};
use linegate_station_config::signed::SignedConfig;
use sha2::{Digest, Sha256};

use crate::capture::system_event;
use crate::outbox::{Intake, OutboxWriter, Stored};

/// `component` of these reports.
pub const COMPONENT: &str = "config_push";

/// How often a report the outbox refused (full, policy `block`) is offered again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

fn namespace() -> uuid::Uuid {
    uuid::Uuid::from_u128(0x6c69_6e65_6761_7465_8000_0000_0000_0005)
}

/// The report of `envelope` applied.
pub fn applied(station: &str, envelope: &SignedConfig) -> EdgeEvent {
    let id = uuid::Uuid::new_v5(
        &namespace(),
        format!(
            "config-applied:{station}:{}:{}",
            envelope.version,
            envelope.signature.as_deref().unwrap_or("")
        )
        .as_bytes(),
    );
    system_event(
        station,
        SystemEventType::ConfigApplied,
        COMPONENT,
        format!(
            "pushed config version {} applied: the sources restarted with it",
            envelope.version
        ),
        BTreeMap::from([
            ("version".to_owned(), envelope.version.to_string()),
            ("issued_at_ms".to_owned(), envelope.issued_at_ms.to_string()),
            ("key_id".to_owned(), envelope.key_id.clone()),
            (
                "config_sha256".to_owned(),
                hex::encode(Sha256::digest(envelope.config.as_bytes())),
            ),
        ]),
        Some(id),
    )
}

/// The report of a record refused for `reason`; `in_force` is the pushed version that stays (0 = the local
/// file alone).
pub fn rejected(
    station: &str,
    version: Option<u64>,
    reason: &str,
    record: &[u8],
    in_force: u64,
) -> EdgeEvent {
    let record_sha256 = hex::encode(Sha256::digest(record));
    let id = uuid::Uuid::new_v5(
        &namespace(),
        format!("config-rejected:{station}:{record_sha256}").as_bytes(),
    );
    let claimed = version.map_or_else(
        || "a pushed config".to_owned(),
        |v| format!("pushed config version {v}"),
    );
    let staying = if in_force == 0 {
        "the local file".to_owned()
    } else {
        format!("pushed version {in_force}")
    };
    let mut details = BTreeMap::from([
        ("reason".to_owned(), reason.to_owned()),
        ("record_sha256".to_owned(), record_sha256),
        ("in_force_version".to_owned(), in_force.to_string()),
    ]);
    if let Some(version) = version {
        details.insert("version".to_owned(), version.to_string());
    }
    system_event(
        station,
        SystemEventType::ConfigRejected,
        COMPONENT,
        format!("{claimed} refused: {reason}; {staying} stays in force"),
        details,
        Some(id),
    )
}

/// Commits `event` to the outbox. If the outbox refuses it (full under policy `block`, disk full), a task
/// offers it again every second until it is stored, so the report is late but not lost.
pub async fn store(writer: &OutboxWriter, event: EdgeEvent) {
    if try_store(writer, &event).await {
        return;
    }
    tracing::warn!(event_type = %event.event_type, "the outbox refused a config report for now; retrying every second");
    let writer = writer.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RETRY_EVERY).await;
            if try_store(&writer, &event).await {
                return;
            }
        }
    });
}

async fn try_store(writer: &OutboxWriter, event: &EdgeEvent) -> bool {
    match writer
        .append(vec![Intake::Event(Box::new(event.clone()))])
        .await
    {
        Ok(stored) => !stored.contains(&Stored::Refused),
        Err(crate::outbox::OutboxError::WriterGone) => {
            tracing::error!(event_type = %event.event_type, message = %event_message(event), "the outbox is closed: this config report is not stored");
            true
        }
        Err(error) => {
            tracing::debug!(%error, "config report not stored yet");
            false
        }
    }
}

fn event_message(event: &EdgeEvent) -> &str {
    match &event.payload {
        linegate_schemas::EdgePayload::System(report) => &report.message,
        _ => "",
    }
}
