//! The Confluent wire format as the bridge's reader takes it: framing, the schema id standing for a
//! released writer schema (here: the id picks one), re-framing to single-object, decoding. Also: a
//! single-object record re-framed to Confluent and back is the same bytes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use linegate_bridge::wire::framing::{framing, to_confluent, to_single_object, Framing};
use linegate_schemas::{decode, AuditEvent, Contract, EdgeEvent, QualityEvent, RELEASED};

fn fingerprints() -> &'static [[u8; 8]] {
    static ALL: OnceLock<Vec<[u8; 8]>> = OnceLock::new();
    ALL.get_or_init(|| {
        RELEASED
            .iter()
            .map(|r| Contract::global().identify(r.json).expect("released").1)
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    match framing(data) {
        Framing::Confluent(id) => {
            let all = fingerprints();
            let single = to_single_object(data, &all[id as usize % all.len()]);
            let _ = decode::<EdgeEvent>(&single);
            let _ = decode::<AuditEvent>(&single);
            let _ = decode::<QualityEvent>(&single);
        }
        Framing::SingleObject(fingerprint) => {
            let mut framed = data.to_vec();
            to_confluent(&mut framed, 7);
            assert_eq!(framing(&framed), Framing::Confluent(7));
            assert_eq!(to_single_object(&framed, &fingerprint), data);
        }
        Framing::Other => {}
    }
});
