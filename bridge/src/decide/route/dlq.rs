//! The dead letter: a rejected input, byte for byte, with headers saying why and where it came from, so it
//! can be inspected, fixed upstream and replayed.

use linegate_schemas::EdgeEvent;

use super::{bound, derived_id, event_headers, InputRecord, Output, Rejection, RouteContext};

/// The header a redriven record carries: `<dlq topic>/<partition>/<offset>` of its dead letter. The pipeline
/// judges such a record again even when its (station, seq) was handled, since handling it failed.
pub const REDRIVE_OF: &str = "redrive.of";

/// The dead letter of `record`: same key, same value (both bounded, [`bound::dead_letter`]), `reason` (cut
/// to its bound) and origin headers first, then the common
/// headers (provenance when the input decoded, and an `idempotency-key` of UUID v5 of
/// `dlq:<topic>:<partition>:<offset>` so a repeated dead letter is recognisable). `attempt` is 1: the bridge
/// does not retry rejected inputs itself.
pub(super) fn output(
    record: &InputRecord<'_>,
    ctx: &RouteContext<'_>,
    event: Option<&EdgeEvent>,
    rejection: &Rejection,
    reason: &str,
) -> Output {
    let text = |s: &str| s.as_bytes().to_vec();
    let mut headers = vec![
        ("error.class".into(), text(rejection.class())),
        ("error.message".into(), text(reason)),
        ("source.topic".into(), text(record.topic)),
        (
            "source.partition".into(),
            text(&record.partition.to_string()),
        ),
        ("source.offset".into(), text(&record.offset.to_string())),
        ("first.seen.ms".into(), text(&ctx.now_ms.to_string())),
        ("attempt".into(), text("1")),
    ];
    let id = derived_id(&format!(
        "dlq:{}:{}:{}",
        record.topic, record.partition, record.offset
    ));
    headers.extend(event_headers(event, &id));
    let mut letter = Output {
        topic: ctx.topics.dlq.clone(),
        key: record.key.map(<[u8]>::to_vec),
        value: record.value.to_vec(),
        headers,
    };
    bound::dead_letter(&mut letter);
    letter
}
