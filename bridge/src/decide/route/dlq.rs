//! The dead letter: a rejected input, byte for byte, with headers saying why and where it came from, so it
//! can be inspected, fixed upstream and replayed.

use linegate_schemas::EdgeEvent;
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::Message;

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

/// Pipeline hook: when `input` is a redriven record (it has an `attempt` header) and was rejected again,
/// its new dead letter carries the input's `attempt`, `first.seen.ms` and `redrive.of` instead of the
/// defaults of a first rejection.
pub fn carry_attempt(input: &OwnedMessage, outputs: &mut [Output], dlq_topic: &str) {
    let Some(headers) = input.headers() else {
        return;
    };
    let carried: Vec<(&str, Vec<u8>)> = headers
        .iter()
        .filter(|h| matches!(h.key, "attempt" | "first.seen.ms" | "redrive.of"))
        .filter_map(|h| h.value.map(|v| (h.key, v.to_vec())))
        .collect();
    if carried.is_empty() {
        return;
    }
    for output in outputs.iter_mut().filter(|o| o.topic == dlq_topic) {
        for (key, value) in &carried {
            match output.headers.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value.clone(),
                None => output
                    .headers
                    .push(((*key).to_owned().into(), value.clone())),
            }
        }
    }
}
