//! Operator commands on a station's outbox (`linegate-edge outbox ...`). They only read, so they are safe
//! beside a running agent (WAL lets a reader run next to the writer).

use std::io::Write;

use anyhow::Context;

use crate::config::EdgeConfig;
use crate::outbox::OutboxReader;

fn open(config: &EdgeConfig) -> anyhow::Result<OutboxReader> {
    let path = config.outbox_path();
    anyhow::ensure!(
        path.exists(),
        "there is no outbox at {} yet: the agent has not run with this config",
        path.display()
    );
    OutboxReader::open(&path).with_context(|| format!("opening {}", path.display()))
}

/// `outbox stats`: depth, oldest waiting event, next seq, quarantine, size.
pub fn stats(config: &EdgeConfig, out: &mut impl Write) -> anyhow::Result<()> {
    let stats = open(config)?.stats()?;
    writeln!(out, "station      {}", config.station.id)?;
    writeln!(out, "outbox       {}", config.outbox_path().display())?;
    writeln!(out, "waiting      {}", stats.depth)?;
    match (stats.oldest_seq, stats.oldest_captured_at_ms) {
        (Some(seq), Some(at)) => {
            let age_s = (crate::capture::now_ms() - at).max(0) as f64 / 1000.0;
            writeln!(out, "oldest       seq {seq}, captured {age_s:.1} s ago")?;
        }
        _ => writeln!(out, "oldest       -")?,
    }
    writeln!(out, "next seq     {}", stats.next_seq)?;
    writeln!(out, "quarantined  {}", stats.quarantined)?;
    writeln!(out, "file bytes   {}", stats.file_bytes)?;
    Ok(())
}

/// `outbox peek`: the next events waiting for Kafka, one JSON object per line.
pub fn peek(config: &EdgeConfig, limit: usize, out: &mut impl Write) -> anyhow::Result<()> {
    for stored in open(config)?.read_after(0, limit)? {
        writeln!(out, "{}", serde_json::to_string(&stored.event)?)?;
    }
    Ok(())
}

/// `outbox quarantine list`: quarantined payloads with their reason, one JSON object per line.
pub fn quarantine_list(
    config: &EdgeConfig,
    limit: usize,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    for entry in open(config)?.quarantine(limit)? {
        let line = serde_json::json!({
            "id": entry.id,
            "received_at_ms": entry.received_at_ms,
            "source": entry.source,
            "origin": entry.origin,
            "reason": entry.reason,
            "payload": String::from_utf8_lossy(&entry.payload),
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}
