//! Prints how long the contract's codecs take per event, to show where the edge's per-event CPU goes:
//! `cargo run --release -p linegate-schemas --example codec_speed`.

use std::collections::BTreeMap;
use std::time::Instant;

use linegate_schemas::{
    decode, encode, from_cbor, to_cbor, Defect, EdgeEvent, EdgePayload, InspectionEvent,
    InspectionEventType,
};

const ROUNDS: u32 = 50_000;

fn sample(seq: i64) -> EdgeEvent {
    let event_id = format!("7f3c2b1a-5d1e-4c8e-9a51-{seq:012}");
    EdgeEvent {
        event_type: "INSPECTION_COMPLETED".into(),
        event_id: event_id.clone(),
        timestamp: 1_768_905_000_000 + seq,
        trace_id: format!("trace-{seq}"),
        source_service: "linegate-edge".into(),
        schema_version: linegate_schemas::SCHEMA_VERSION.into(),
        station_id: "ST-01".into(),
        seq,
        outbox_epoch: String::new(),
        payload: EdgePayload::Inspection(InspectionEvent {
            event_id,
            event_type: InspectionEventType::InspectionCompleted,
            timestamp: 1_768_905_000_000 + seq,
            inspection_id: format!("insp-{seq}"),
            batch_id: "LOT-7".into(),
            chip_id: format!("chip-{seq}"),
            inspection_type: "optical".into(),
            status: "PASSED".into(),
            quality_score: Some(0.93),
            defects: vec![Defect {
                defect_type: "scratch".into(),
                severity: "LOW".into(),
                confidence: 0.4,
                location: "x=12,y=40".into(),
            }],
            metadata: BTreeMap::from([
                ("recipe".into(), "R-12".into()),
                ("operator".into(), "op-3".into()),
            ]),
        }),
    }
}

fn time(name: &str, mut op: impl FnMut(i64)) {
    let start = Instant::now();
    for i in 0..ROUNDS {
        op(i64::from(i));
    }
    let per = start.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
    println!(
        "{name:<34} {per:>8.2} µs/event  ({:>9.0} events/s on one core)",
        1e6 / per
    );
}

fn main() {
    if std::env::args().any(|a| a == "--parts") {
        parts();
        return;
    }
    let event = sample(1);
    let avro = encode(&event).unwrap();
    let cbor = to_cbor(&event).unwrap();
    println!(
        "one inspection event: {} bytes Avro single-object, {} bytes CBOR",
        avro.len(),
        cbor.len()
    );
    time("Avro single-object encode", |i| {
        std::hint::black_box(encode(&sample(i)).unwrap());
    });
    time("Avro single-object decode", |_| {
        std::hint::black_box(decode::<EdgeEvent>(&avro).unwrap());
    });
    time("CBOR encode (outbox rows of earlier builds)", |i| {
        std::hint::black_box(to_cbor(&sample(i)).unwrap());
    });
    time("CBOR decode (outbox rows of earlier builds)", |_| {
        std::hint::black_box(from_cbor::<EdgeEvent>(&cbor).unwrap());
    });
    time("building the sample (baseline)", |i| {
        std::hint::black_box(sample(i));
    });
}

#[allow(dead_code)]
fn parts() {
    use linegate_schemas::{AvroMessage, Contract, MessageKind};
    let schema = Contract::global()
        .current(MessageKind::EdgeEvent)
        .schema
        .clone();
    time("  part: to_avro (value tree)", |i| {
        std::hint::black_box(sample(i).to_avro().unwrap());
    });
    time("  part: to_avro + resolve", |i| {
        std::hint::black_box(sample(i).to_avro().unwrap().resolve(&schema).unwrap());
    });
    let resolved = sample(1).to_avro().unwrap().resolve(&schema).unwrap();
    time("  part: to_avro_datum of resolved", |_| {
        std::hint::black_box(apache_avro::to_avro_datum(&schema, resolved.clone()).unwrap());
    });
    let mut writer =
        apache_avro::GenericSingleObjectWriter::new_with_capacity(&schema, 1024).unwrap();
    time("  part: cached writer of resolved", |_| {
        let mut out = Vec::with_capacity(512);
        writer.write_value_ref(&resolved, &mut out).unwrap();
        std::hint::black_box(out);
    });
    let bytes = encode(&sample(1)).unwrap();
    time("  part: from_avro_datum, no reader", |_| {
        let mut body = &bytes[10..];
        std::hint::black_box(apache_avro::from_avro_datum(&schema, &mut body, None).unwrap());
    });
}
