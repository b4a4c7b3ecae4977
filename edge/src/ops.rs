//! Operator commands on a station's outbox (`linegate-edge outbox ...`). All but `quarantine retry` only read;
//! all are safe beside a running agent (WAL lets readers run next to the writer, and the retry writes under
//! SQLite's write lock like the agent).

use std::io::Write;

use anyhow::Context;

use crate::outbox::{OutboxReader, Retried, RetryRefusal};
use linegate_station_config::EdgeConfig;

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
    writeln!(
        out,
        "waiting      {} ({} bytes)",
        stats.depth, stats.event_bytes
    )?;
    writeln!(
        out,
        "dropped      {} (policy drop_oldest, all time)",
        stats.dropped_events
    )?;
    match (stats.oldest_seq, stats.oldest_captured_at_ms) {
        (Some(seq), Some(at)) => {
            let age_s = (crate::capture::now_ms() - at).max(0) as f64 / 1000.0;
            writeln!(out, "oldest       seq {seq}, captured {age_s:.1} s ago")?;
        }
        _ => writeln!(out, "oldest       -")?,
    }
    writeln!(out, "next seq     {}", stats.next_seq)?;
    let epoch = if stats.epoch.is_empty() {
        "- (a file of a build before outbox epochs)"
    } else {
        &stats.epoch
    };
    writeln!(out, "epoch        {epoch}")?;
    writeln!(
        out,
        "quarantined  {} ({} dropped by the quarantine bounds, all time)",
        stats.quarantined, stats.quarantine_dropped
    )?;
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

/// `outbox quarantine retry`: parses quarantined MQTT payloads again (with the config's current format and
/// mapping) and moves those that are now station
/// result documents into the outbox (seq assigned as for any event). Prints one JSON line per payload and
/// returns how many are still quarantined. Payloads of other sources (Modbus keeps raw registers) are left.
pub fn quarantine_retry(
    config: &EdgeConfig,
    ids: Option<&[i64]>,
    out: &mut impl Write,
) -> anyhow::Result<usize> {
    let path = config.outbox_path();
    anyhow::ensure!(
        path.exists(),
        "there is no outbox at {} yet: the agent has not run with this config",
        path.display()
    );
    let station = config.station.id.clone();
    let reader = config
        .mqtt
        .as_ref()
        .map(crate::capture::PayloadReader::for_source)
        .unwrap_or_default();
    let outcomes = crate::outbox::retry_quarantined(
        &path,
        &station,
        crate::outbox::OutboxOptions::from_config(&config.outbox),
        ids,
        |row| {
            if row.source != "mqtt" {
                return Err(RetryRefusal::NotRetriable(format!(
                    "payloads from {} cannot be parsed again (only MQTT documents can)",
                    row.source
                )));
            }
            let (event, trace_id) = reader
                .read(&row.payload)
                .map_err(|e| RetryRefusal::Unparseable(e.to_string()))?;
            Ok(crate::capture::envelope(
                &station,
                event,
                trace_id,
                crate::capture::now_ms(),
            ))
        },
    )
    .with_context(|| format!("retrying the quarantine of {}", path.display()))?;
    let mut still = 0;
    for (id, outcome) in &outcomes {
        let line = match outcome {
            Retried::Stored { seq } => {
                serde_json::json!({"id": id, "outcome": "stored", "seq": seq})
            }
            Retried::Duplicate => serde_json::json!({"id": id, "outcome": "duplicate"}),
            Retried::Refused => {
                still += 1;
                serde_json::json!({"id": id, "outcome": "outbox_full"})
            }
            Retried::StillBad(reason) => {
                still += 1;
                serde_json::json!({"id": id, "outcome": "still_quarantined", "reason": reason})
            }
            Retried::NotRetriable(reason) => {
                still += 1;
                serde_json::json!({"id": id, "outcome": "not_retriable", "reason": reason})
            }
        };
        writeln!(out, "{line}")?;
    }
    Ok(still)
}
