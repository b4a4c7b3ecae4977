//! The Modbus register decoder: one result block of a register map with every value type, byte and word
//! order, scale, offset and enum, from register contents the fuzzer chooses (including short reads).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use linegate_edge::source::modbus::{interpret, Raw};
use linegate_station_config::modbus::FieldSpec;

const FIELDS: &str = r#"
fields = [
  { target = "inspection_id", address = 0, type = "string", length = 8 },
  { target = "chip_id", address = 8, type = "string", length = 3, byte_order = "little" },
  { target = "batch_id", constant = "LOT-FUZZ" },
  { target = "inspection_type", address = 11, type = "u16", enum = { "0" = "optical", "1" = "electrical" } },
  { target = "status", address = 12, type = "bool", enum = { "0" = "PASSED", "1" = "FAILED" } },
  { target = "quality_score", address = 13, type = "i32", word_order = "little", scale = 0.0001, offset = -1.5 },
  { target = "timestamp", address = 15, type = "u64" },
  { target = "event_type", address = 19, type = "u16", enum = { "0" = "INSPECTION_COMPLETED", "1" = "BOGUS" } },
  { target = "metadata.f32", address = 20, type = "f32" },
  { target = "metadata.f64", address = 22, type = "f64", byte_order = "little", word_order = "little" },
  { target = "metadata.i16", address = 26, type = "i16", scale = 2.5 },
  { target = "metadata.u32", address = 27, type = "u32" },
  { target = "metadata.coil", table = "coil", address = 3, type = "bool" },
]
"#;

#[derive(serde::Deserialize)]
struct Map {
    fields: Vec<FieldSpec>,
}

fn fields() -> &'static [FieldSpec] {
    static FIELDS_PARSED: OnceLock<Vec<FieldSpec>> = OnceLock::new();
    FIELDS_PARSED.get_or_init(|| toml::from_str::<Map>(FIELDS).expect("the map parses").fields)
}

fuzz_target!(|data: &[u8]| {
    // Each field takes its width in words from the input, or fewer when the input runs out (a short read).
    let mut words = data
        .chunks(2)
        .map(|pair| u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    let raws: Vec<Raw> = fields()
        .iter()
        .map(|field| {
            let taken: Vec<u16> = words.by_ref().take(usize::from(field.width())).collect();
            match field.table {
                linegate_station_config::modbus::Table::Coil
                | linegate_station_config::modbus::Table::Discrete => {
                    Raw::Bits(taken.iter().map(|w| *w != 0).collect())
                }
                _ => Raw::Words(taken),
            }
        })
        .collect();
    let _ = interpret(fields(), &raws, 1_700_000_000_000);
});
