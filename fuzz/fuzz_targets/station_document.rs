//! The MQTT payload reader: JSON or CBOR, in linegate's document shape or mapped by JSON pointers. The
//! first byte chooses the reader; the rest is the payload. A document that parses is also encoded, as the
//! edge does next (a panic there is found; an encoding error is the edge's to report).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use linegate_edge::capture::{envelope, PayloadFormat, PayloadReader};

fn mapping() -> BTreeMap<String, String> {
    [
        ("inspection_id", "/result/id"),
        ("chip_id", "/result/chip"),
        ("batch_id", "/lot"),
        ("inspection_type", "/type"),
        ("status", "/verdict"),
        ("quality_score", "/score"),
        ("defects", "/defects"),
        ("timestamp", "/at"),
        ("metadata.line", "/line/0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, payload)) = data.split_first() else {
        return;
    };
    let reader = PayloadReader {
        format: if choice & 1 == 0 {
            PayloadFormat::Json
        } else {
            PayloadFormat::Cbor
        },
        mapping: (choice & 2 != 0).then(mapping),
    };
    if let Ok((inspection, trace_id)) = reader.read(payload) {
        let event = envelope("ST-FUZZ", inspection, trace_id, 1_700_000_000_000);
        let _ = linegate_schemas::encode(&event);
    }
});
