//! Avro single-object decoding of every message kind (the ingest topic, the outbox rows, the outputs read
//! back). Whatever decodes must encode again to bytes that decode to the same encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use linegate_schemas::{
    decode, encode, AuditEvent, AvroMessage, EdgeEvent, InspectionEvent, QualityEvent, SystemEvent,
};

fn round_trip<M: AvroMessage>(data: &[u8]) {
    if let Ok(message) = decode::<M>(data) {
        if let Ok(bytes) = encode(&message) {
            let again: M = decode(&bytes).expect("an encoded message decodes");
            assert_eq!(encode(&again).expect("and encodes again"), bytes);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<EdgeEvent>(data);
    round_trip::<AuditEvent>(data);
    round_trip::<QualityEvent>(data);
    round_trip::<InspectionEvent>(data);
    round_trip::<SystemEvent>(data);
});
