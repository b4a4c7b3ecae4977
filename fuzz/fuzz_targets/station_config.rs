//! The station config loader: `${VAR}` / `${VAR:-default}` interpolation line by line, TOML parsing, then
//! validation. Any text must give a config or an error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use linegate_common::conf::ConfigFile;
use linegate_station_config::EdgeConfig;

fn lookup(name: &str) -> Option<String> {
    match name {
        "LINEGATE_STATION_ID" => Some("ST-FUZZ".into()),
        "LINEGATE_KAFKA_BOOTSTRAP" => Some("127.0.0.1:9092".into()),
        "EMPTY" => Some(String::new()),
        "QUOTE" => Some("\"\n[x]".into()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = ConfigFile::from_text(Path::new("fuzz.toml"), text, lookup) else {
        return;
    };
    if let Err(error) = EdgeConfig::from_file(&file) {
        let _ = error.to_string();
    }
});
