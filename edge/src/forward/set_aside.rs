//! An event Kafka refuses for good leaves the sending queue: it moves to the outbox's quarantine with the
//! reason, and an `OUTBOX_DROPPED` system event, stored in the same commit, tells the centre which seq is
//! missing and why (the bridge also records the gap in the audit chain).

use std::collections::BTreeMap;

use linegate_schemas::{EdgeEvent, SystemEventType};

use crate::capture::system_event;
use crate::observe::EdgeMetrics;
use crate::outbox::{OutboxError, OutboxWriter};

use super::round::Failure;

/// `component` of the report.
pub(super) const COMPONENT: &str = "forward";

fn namespace() -> uuid::Uuid {
    uuid::Uuid::from_u128(0x6c69_6e65_6761_7465_8000_0000_0000_0006)
}

/// The report of event `event_id` (seq `failure.seq`) set aside. Its id is derived from the event's, so a
/// report made again after a crash between the commit and the next round is stored once.
fn report(station: &str, event_id: &str, failure: &Failure) -> EdgeEvent {
    let id = uuid::Uuid::new_v5(
        &namespace(),
        format!("set-aside:{station}:{event_id}").as_bytes(),
    );
    system_event(
        station,
        SystemEventType::OutboxDropped,
        COMPONENT,
        format!(
            "Kafka refused event seq {} for good ({}); it is kept in the outbox quarantine and the events after it are sent",
            failure.seq, failure.reason
        ),
        BTreeMap::from([
            ("seq".to_owned(), failure.seq.to_string()),
            ("event_id".to_owned(), event_id.to_owned()),
            ("reason".to_owned(), failure.reason.clone()),
            ("kept_in".to_owned(), "quarantine".to_owned()),
        ]),
        Some(id),
    )
}

/// Moves the refused event into quarantine with its report; counted and logged.
pub(super) async fn set_aside(
    writer: &OutboxWriter,
    metrics: &EdgeMetrics,
    station: &str,
    event_id: &str,
    failure: &Failure,
) -> Result<(), OutboxError> {
    let reason = format!("Kafka refused it for good: {}", failure.reason);
    let found = writer
        .set_aside(failure.seq, reason, report(station, event_id, failure))
        .await?;
    if found {
        metrics.record_stored(COMPONENT, &[crate::outbox::Stored::Quarantined]);
        tracing::error!(
            seq = failure.seq,
            event_id,
            reason = %failure.reason,
            "Kafka refused an event for good: set aside in the outbox quarantine (linegate-edge outbox quarantine); the events after it flow"
        );
    }
    Ok(())
}
