//! Shows what arrived on linegate's topics: counts, and the first records decoded. Used by the demo.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use linegate_e2e::kafka::{consume_until, Record};
use linegate_schemas::{decode, AuditEvent, EdgeEvent, InspectionEvent, QualityEvent};

/// Reads topics from the beginning and prints what is there.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Kafka bootstrap, host:port.
    #[arg(long)]
    bootstrap: String,
    /// Topics and the number of records to wait for, e.g. inspection.lifecycle=600 (0: whatever is there).
    #[arg(long = "topic", value_parser = parse_expectation)]
    topics: Vec<(String, usize)>,
    /// How long to wait for each topic's expected count.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Records to print per topic.
    #[arg(long, default_value_t = 2)]
    show: usize,
}

fn parse_expectation(text: &str) -> Result<(String, usize), String> {
    match text.split_once('=') {
        Some((topic, n)) => Ok((
            topic.to_owned(),
            n.parse().map_err(|_| format!("`{n}` is not a count"))?,
        )),
        None => Ok((text.to_owned(), 0)),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut short = false;
    for (topic, expected) in &args.topics {
        let timeout = Duration::from_secs(args.timeout_secs);
        let records = match consume_until(
            &args.bootstrap,
            topic,
            *expected,
            timeout,
            Duration::from_secs(2),
        ) {
            Ok(records) => records,
            Err(error) => {
                println!("== {topic}: {error}");
                short = true;
                continue;
            }
        };
        let per_partition = records.iter().fold(BTreeMap::new(), |mut counts, r| {
            *counts.entry(r.partition).or_insert(0) += 1;
            counts
        });
        println!(
            "== {topic}: {} records (expected {expected}) over {} partitions",
            records.len(),
            per_partition.len()
        );
        for record in records.iter().take(args.show) {
            println!("   {}", describe(topic, record));
        }
    }
    if short {
        anyhow::bail!("some topics did not receive what was expected");
    }
    Ok(())
}

fn describe(topic: &str, record: &Record) -> String {
    let key = record.key_str().unwrap_or("-");
    let body = match topic {
        t if t.ends_with(".dlq") => format!(
            "error.class={} error.message={:?} source={}/{}@{}",
            record.header("error.class").unwrap_or("?"),
            record.header("error.message").unwrap_or("?"),
            record.header("source.topic").unwrap_or("?"),
            record.header("source.partition").unwrap_or("?"),
            record.header("source.offset").unwrap_or("?"),
        ),
        "edge.station.events" => decoded(decode::<EdgeEvent>(&record.value)),
        "inspection.lifecycle" => decoded(decode::<InspectionEvent>(&record.value)),
        "quality.events" => decoded(decode::<QualityEvent>(&record.value)),
        "audit.events" => decoded(decode::<AuditEvent>(&record.value)),
        _ => format!("{} bytes", record.value.len()),
    };
    format!("p{}@{} key={key} {body}", record.partition, record.offset)
}

fn decoded<T: std::fmt::Debug>(result: Result<T, linegate_schemas::SchemaError>) -> String {
    match result {
        Ok(value) => format!("{value:?}"),
        Err(error) => format!("undecodable: {error}"),
    }
}
