//! Realistic station result documents, deterministic for a seed, shared by the simulator and the tests.

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A small deterministic generator (xorshift64*): same seed, same documents.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[(self.next() % options.len() as u64) as usize]
    }
}

const INSPECTION_TYPES: [&str; 3] = ["optical", "xray", "electrical"];
const SEVERITIES: [&str; 4] = ["LOW", "MEDIUM", "HIGH", "CRITICAL"];
const DEFECT_TYPES: [&str; 4] = ["scratch", "void", "bridge", "misalignment"];

/// The documents of `inspections` inspections at `station`, in publish order. Each inspection is
/// INSPECTION_CREATED, INSPECTION_STARTED, sometimes DEFECT_DETECTED, then INSPECTION_COMPLETED with a score
/// (or, rarely, INSPECTION_FAILED). Timestamps alternate between RFC 3339 and epoch milliseconds.
pub fn inspection_documents(station: &str, inspections: usize, seed: u64) -> Vec<Value> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut clock_ms: i64 = 1_768_905_000_000 + i64::try_from(seed % 1_000_000).unwrap_or(0);
    let mut documents = Vec::new();
    for n in 0..inspections {
        let inspection_id = format!("{station}-insp-{seed}-{n:06}");
        let inspection_type = rng.pick(&INSPECTION_TYPES);
        let batch_id = format!("LOT-{}", 100 + n / 50);
        let chip_id = format!("{station}-CHIP-{n:06}");
        let mut steps: Vec<(&str, &str)> = vec![
            ("INSPECTION_CREATED", "CREATED"),
            ("INSPECTION_STARTED", "RUNNING"),
        ];
        let defective = rng.unit() < 0.2;
        if defective {
            steps.push(("DEFECT_DETECTED", "RUNNING"));
        }
        if rng.unit() < 0.05 {
            steps.push(("INSPECTION_FAILED", "ABORTED"));
        } else {
            steps.push(("INSPECTION_COMPLETED", "DONE"));
        }
        for (event_type, status) in steps {
            clock_ms += 1 + i64::try_from(rng.next() % 400).unwrap_or(0);
            let defects = if defective
                && event_type != "INSPECTION_CREATED"
                && event_type != "INSPECTION_STARTED"
            {
                json!([{
                    "defect_type": rng.pick(&DEFECT_TYPES),
                    "severity": rng.pick(&SEVERITIES),
                    "confidence": (rng.unit() * 1000.0).round() / 1000.0,
                    "location": format!("x={},y={}", rng.next() % 64, rng.next() % 64),
                }])
            } else {
                json!([])
            };
            let mut document = json!({
                "event_type": event_type,
                "event_id": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{inspection_id}:{event_type}").as_bytes()).to_string(),
                "timestamp": timestamp(clock_ms, documents.len()),
                "inspection_id": inspection_id,
                "batch_id": batch_id,
                "chip_id": chip_id,
                "inspection_type": inspection_type,
                "status": status,
                "defects": defects,
                "metadata": {"recipe": format!("R{}", 1 + rng.next() % 9), "operator": format!("op-{}", 1 + rng.next() % 5)},
            });
            if event_type == "INSPECTION_COMPLETED" {
                let score = (0.6 + rng.unit() * 0.4) * if defective { 0.9 } else { 1.0 };
                document["quality_score"] = json!((score * 10_000.0).round() / 10_000.0);
            }
            documents.push(document);
        }
    }
    documents
}

fn timestamp(ms: i64, index: usize) -> Value {
    if index % 2 == 0 {
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .expect("valid time");
        json!(at.format(&Rfc3339).expect("formattable"))
    } else {
        json!(ms)
    }
}

/// The station time of a document in epoch milliseconds, whichever form it was written in.
pub fn document_time_ms(document: &Value) -> i64 {
    match &document["timestamp"] {
        Value::Number(n) => n.as_i64().expect("integer ms"),
        Value::String(s) => {
            let at = OffsetDateTime::parse(s, &Rfc3339).expect("RFC 3339");
            i64::try_from(at.unix_timestamp_nanos() / 1_000_000).expect("fits")
        }
        other => panic!("timestamp {other}"),
    }
}

/// A payload the edge cannot parse (it is quarantined there, never forwarded).
pub fn unparseable_payload() -> Vec<u8> {
    b"{\"event_type\": \"INSPECTION_CREATED\", oops".to_vec()
}

/// A well-formed document whose score is out of range: the edge forwards it, the bridge rejects it to the DLQ.
pub fn out_of_range_document(station: &str) -> Value {
    let mut document = inspection_documents(station, 1, 424_242)
        .pop()
        .expect("one document");
    document["event_type"] = json!("INSPECTION_COMPLETED");
    document["event_id"] = json!(uuid::Uuid::new_v4().to_string());
    document["quality_score"] = json!(1.7);
    document
}
