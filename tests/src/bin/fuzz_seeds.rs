//! Writes the seed corpus of the fuzz targets (`fuzz/`) into a directory, one folder per target, from the
//! project's own code: station documents from the simulator, the edge's events and the bridge's outputs
//! encoded by the contract, the example configs, a valid Modbus block. Made fresh by `scripts/fuzz.sh`, so
//! seeds always follow the current schemas.

use std::path::{Path, PathBuf};

use clap::Parser;
use linegate_bridge::config::{QualityConfig, Routes, TopicNames};
use linegate_bridge::decide::route::{route, InputRecord, RouteContext};
use linegate_bridge::wire::framing::to_confluent;
use linegate_edge::capture::{envelope, PayloadReader};
use linegate_schemas::{Contract, RELEASED};

#[derive(Parser)]
struct Args {
    /// Directory to write `<target>/<n>` files into.
    out: PathBuf,
}

fn write(out: &Path, target: &str, n: usize, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("seed-{n:04}")), bytes)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let out = &args.out;
    let documents = linegate_e2e::station::inspection_documents("ST-SEED", 6, 7);
    let reader = PayloadReader::default();
    let mut avro = Vec::new();
    for (n, document) in documents.iter().enumerate() {
        let json = serde_json::to_vec(document)?;
        let mut cbor = Vec::new();
        ciborium::into_writer(document, &mut cbor)?;
        let mapped = serde_json::json!({
            "result": {"id": document["inspection_id"], "chip": document["chip_id"]},
            "lot": document["batch_id"], "type": document["inspection_type"],
            "verdict": document["status"], "score": document["quality_score"],
            "defects": document["defects"], "at": document["timestamp"], "line": ["L1"],
        });
        write(
            out,
            "station_document",
            4 * n,
            &[&[0u8][..], &json].concat(),
        )?;
        write(
            out,
            "station_document",
            4 * n + 1,
            &[&[1u8][..], &cbor].concat(),
        )?;
        write(
            out,
            "station_document",
            4 * n + 2,
            &[&[2u8][..], &serde_json::to_vec(&mapped)?].concat(),
        )?;
        let (inspection, trace) = reader.read(&json)?;
        let mut event = envelope("ST-SEED", inspection, trace, 1_768_905_000_000);
        event.seq = n as i64 + 1;
        avro.push(linegate_schemas::encode(&event)?);
    }
    // The bridge's outputs of those events: lifecycle, quality and audit records.
    let (topics, quality) = (TopicNames::default(), QualityConfig::default());
    let routes = Routes::defaults(&topics);
    let ctx = RouteContext {
        topics: &topics,
        routes: &routes,
        quality: &quality,
        service_name: "linegate-bridge",
        now_ms: 1_768_905_001_000,
    };
    let inputs = avro.clone();
    for (offset, value) in inputs.iter().enumerate() {
        let record = InputRecord {
            topic: "edge.station.events",
            partition: 0,
            offset: offset as i64,
            key: Some(b"ST-SEED"),
            value,
        };
        avro.extend(route(&record, &ctx).outputs.into_iter().map(|o| o.value));
    }
    let ids: Vec<[u8; 8]> = RELEASED
        .iter()
        .map(|r| Contract::global().identify(r.json).map(|(_, fp)| fp))
        .collect::<Result<_, _>>()?;
    for (n, value) in avro.iter().enumerate() {
        write(out, "avro_single_object", n, value)?;
        let mut framed = value.clone();
        let id = ids
            .iter()
            .position(|fp| value[2..10] == fp[..])
            .unwrap_or(0);
        to_confluent(&mut framed, id as u32);
        write(out, "avro_confluent", n, &framed)?;
    }
    let configs = linegate_e2e::repo_root().join("config");
    for (n, name) in ["edge.example.toml", "edge.modbus.example.toml"]
        .iter()
        .enumerate()
    {
        write(
            out,
            "station_config",
            n,
            &std::fs::read(configs.join(name))?,
        )?;
    }
    // A block the modbus_registers target's map decodes: text, enum values, numbers, the time.
    let mut block: Vec<u16> = b"INSP-001CHP\0\0\0"
        .chunks(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect();
    block.truncate(11);
    block.extend([
        1, 0, 0x2710, 0, 0, 0, 0x019b, 0x8c00, 0, 0x41a4, 0, 0, 0, 0, 0x40,
    ]);
    block.extend([0xfffe, 0, 7, 1]);
    let bytes: Vec<u8> = block.iter().flat_map(|w| w.to_be_bytes()).collect();
    write(out, "modbus_registers", 0, &bytes)?;
    println!("seeds written to {}", out.display());
    Ok(())
}
