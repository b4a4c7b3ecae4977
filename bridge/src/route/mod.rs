//! From one input record to its outputs: the bridge's whole decision, with no I/O.
//!
//! An input either is accepted (its InspectionEvent to lifecycle, a QualityEvent for a completed inspection,
//! an AuditEvent) or rejected (the record unchanged to the DLQ with headers saying why, and an AuditEvent).
//! Output ids are UUID v5 of input identities, so the same input always yields the same outputs.

mod outputs;
mod validate;

use linegate_schemas::{AuditOutcome, EdgeEvent, EdgePayload, InspectionEventType};

use crate::config::{QualityConfig, TopicNames};
pub use validate::Rejection;

/// Namespace of linegate's derived ids (UUID v5).
pub const ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6c69_6e65_6761_7465_8000_0000_0000_0001);

/// One consumed record, borrowed from the consumer.
#[derive(Debug, Clone, Copy)]
pub struct InputRecord<'a> {
    /// Topic it was read from.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Record key (the edge sets the station id).
    pub key: Option<&'a [u8]>,
    /// Record value.
    pub value: &'a [u8],
}

/// A record to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Destination topic.
    pub topic: String,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value.
    pub value: Vec<u8>,
    /// Record headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Output {
    /// The value of header `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }
}

/// What routing needs besides the record: names, thresholds, and the clock (passed in for tests).
#[derive(Debug, Clone, Copy)]
pub struct RouteContext<'a> {
    /// Output topic names.
    pub topics: &'a TopicNames,
    /// Quality thresholds.
    pub quality: &'a QualityConfig,
    /// `source_service` of outputs.
    pub service_name: &'a str,
    /// Handling time, epoch milliseconds.
    pub now_ms: i64,
}

/// The outputs of one input and what became of it.
#[derive(Debug, Clone)]
pub struct Routed {
    /// Records to produce, in order; the audit record is last.
    pub outputs: Vec<Output>,
    /// Why the input was rejected, if it was.
    pub rejection: Option<Rejection>,
}

/// Decides what one input record becomes.
pub fn route(record: &InputRecord<'_>, ctx: &RouteContext<'_>) -> Routed {
    let decoded = linegate_schemas::decode::<EdgeEvent>(record.value).map_err(Rejection::decode);
    let event = match decoded {
        Ok(event) => event,
        Err(rejection) => return reject(record, ctx, None, rejection),
    };
    if let Err(rejection) = validate::validate(&event, record.key) {
        return reject(record, ctx, Some(&event), rejection);
    }
    match accept(record, ctx, &event) {
        Ok(outputs) => Routed {
            outputs,
            rejection: None,
        },
        Err(rejection) => reject(record, ctx, Some(&event), rejection),
    }
}

fn accept(
    record: &InputRecord<'_>,
    ctx: &RouteContext<'_>,
    event: &EdgeEvent,
) -> Result<Vec<Output>, Rejection> {
    let EdgePayload::Inspection(inspection) = &event.payload;
    let mut outputs = vec![outputs::lifecycle(ctx, event, inspection)?];
    if inspection.event_type == InspectionEventType::InspectionCompleted {
        outputs.push(outputs::quality(ctx, event, inspection)?);
    }
    let written: Vec<String> = outputs.iter().map(|o| o.topic.clone()).collect();
    outputs.push(outputs::audit(
        record,
        ctx,
        Some(event),
        AuditOutcome::Accepted,
        None,
        written,
    )?);
    Ok(outputs)
}

fn reject(
    record: &InputRecord<'_>,
    ctx: &RouteContext<'_>,
    event: Option<&EdgeEvent>,
    rejection: Rejection,
) -> Routed {
    let dlq = outputs::dead_letter(record, ctx, &rejection);
    let audit = outputs::audit(
        record,
        ctx,
        event,
        AuditOutcome::Rejected,
        Some(rejection.to_string()),
        vec![ctx.topics.dlq.clone()],
    );
    let mut outputs = vec![dlq];
    // The audit record of a rejection holds only strings and numbers we produced; it always encodes.
    outputs.extend(audit.ok());
    Routed {
        outputs,
        rejection: Some(rejection),
    }
}

#[cfg(test)]
mod tests;
