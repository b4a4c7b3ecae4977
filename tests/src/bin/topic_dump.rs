//! Shows what arrived on linegate's topics as a plant engineer wants to see it: per topic the count against
//! what was expected, the quality verdicts against the completed inspections, one record decoded as JSON, and
//! every dead letter with its reason. Used by the demo.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Parser;
use linegate_e2e::kafka::{consume_until, Record};
use linegate_schemas::{
    decode, AuditEvent, EdgeEvent, InspectionEvent, InspectionEventType, QualityEvent,
};

const LIFECYCLE: &str = "inspection.lifecycle";
const QUALITY: &str = "quality.events";
const VERDICT: &str = "QUALITY_VERDICT";

/// Reads topics from the beginning and reports what is there.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Kafka bootstrap, host:port.
    #[arg(long)]
    bootstrap: String,
    /// A topic and what to wait for: `name=N` (exactly N), `name>=N` (at least N) or `name` (whatever is
    /// there). `quality.events` listed after `inspection.lifecycle` is also waited for until it holds one
    /// verdict per completed inspection.
    #[arg(long = "topic", value_parser = parse_expectation)]
    topics: Vec<Expectation>,
    /// How long to wait for each topic's expected count.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Topic whose first record is printed decoded, as JSON.
    #[arg(long, default_value = LIFECYCLE)]
    show: String,
}

/// What one topic should hold.
#[derive(Clone)]
struct Expectation {
    topic: String,
    count: usize,
    at_least: bool,
}

fn parse_expectation(text: &str) -> Result<Expectation, String> {
    let (topic, count, at_least) = match (text.split_once(">="), text.split_once('=')) {
        (Some((topic, n)), _) => (topic, Some(n), true),
        (None, Some((topic, n))) => (topic, Some(n), false),
        (None, None) => (text, None, true),
    };
    let count = match count {
        Some(n) => n.parse().map_err(|_| format!("`{n}` is not a count"))?,
        None => 0,
    };
    Ok(Expectation {
        topic: topic.to_owned(),
        count,
        at_least,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let timeout = Duration::from_secs(args.timeout_secs);
    let mut short = false;
    let mut completed = None;
    let mut read = BTreeMap::new();
    println!("== what arrived (each topic read from the beginning, read_committed)");
    for expectation in &args.topics {
        let topic = expectation.topic.as_str();
        let records = match read_topic(&args.bootstrap, expectation, completed, timeout) {
            Ok(records) => records,
            Err(error) => {
                println!("   {topic:26} {error}");
                short = true;
                continue;
            }
        };
        let count_ok = records.len() == expectation.count
            || (expectation.at_least && records.len() >= expectation.count);
        let wanted = match (expectation.at_least, expectation.count) {
            (true, 0) => String::new(),
            (true, n) => format!("expected at least {n}"),
            (false, n) => format!("expected {n}"),
        };
        let mut line = format!("   {topic:26} {:6} records  {wanted}", records.len());
        if topic == LIFECYCLE {
            completed = Some(completed_inspections(&records));
        }
        let verdicts_ok = match (topic, completed) {
            (QUALITY, Some(completed)) => {
                let kinds = quality_kinds(&records);
                let verdicts = kinds.get(VERDICT).copied().unwrap_or(0);
                let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
                line += &format!(
                    "  ({}; {completed} completed inspections on {LIFECYCLE})",
                    kinds.join(", ")
                );
                verdicts == completed
            }
            _ => true,
        };
        let ok = count_ok && verdicts_ok;
        short |= !ok;
        println!("{line}  {}", if ok { "ok" } else { "MISSING" });
        read.insert(topic.to_owned(), records);
    }
    if let Some(record) = read.get(&args.show).and_then(|records| records.first()) {
        println!(
            "== one record of {}, decoded (key {}, partition {}, offset {}):",
            args.show,
            record.key_str().unwrap_or("-"),
            record.partition,
            record.offset
        );
        println!("{}", as_json(&args.show, record));
    }
    for (topic, records) in read.iter().filter(|(topic, _)| topic.ends_with(".dlq")) {
        println!("== dead letters on {topic} ({}):", records.len());
        for record in records {
            println!("   {}", dead_letter(record));
        }
    }
    if short {
        anyhow::bail!("some topics did not receive what was expected");
    }
    Ok(())
}

/// The records of one topic, waited for until its expectation is met; `quality.events` also until it
/// holds `completed` verdicts, when that is known.
fn read_topic(
    bootstrap: &str,
    expectation: &Expectation,
    completed: Option<usize>,
    timeout: Duration,
) -> anyhow::Result<Vec<Record>> {
    let grace = Duration::from_secs(2);
    let started = Instant::now();
    let mut wanted = expectation.count;
    loop {
        let records = consume_until(bootstrap, &expectation.topic, wanted, timeout, grace)?;
        let missing = match (expectation.topic.as_str(), completed) {
            (QUALITY, Some(completed)) => {
                let verdicts = quality_kinds(&records).get(VERDICT).copied().unwrap_or(0);
                completed.saturating_sub(verdicts)
            }
            _ => 0,
        };
        if missing == 0 || started.elapsed() > timeout {
            return Ok(records);
        }
        wanted = records.len() + missing;
    }
}

fn completed_inspections(records: &[Record]) -> usize {
    records
        .iter()
        .filter_map(|r| decode::<InspectionEvent>(&r.value).ok())
        .filter(|event| event.event_type == InspectionEventType::InspectionCompleted)
        .count()
}

/// Quality events by type.
fn quality_kinds(records: &[Record]) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for event in records
        .iter()
        .filter_map(|r| decode::<QualityEvent>(&r.value).ok())
    {
        *kinds.entry(event.event_type).or_insert(0) += 1;
    }
    kinds
}

fn as_json(topic: &str, record: &Record) -> String {
    fn pretty<T: serde::Serialize>(decoded: Result<T, linegate_schemas::SchemaError>) -> String {
        match decoded {
            Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_else(|e| e.to_string()),
            Err(error) => format!("undecodable: {error}"),
        }
    }
    match topic {
        "edge.station.events" => pretty(decode::<EdgeEvent>(&record.value)),
        LIFECYCLE => pretty(decode::<InspectionEvent>(&record.value)),
        QUALITY => pretty(decode::<QualityEvent>(&record.value)),
        "audit.events" => pretty(decode::<AuditEvent>(&record.value)),
        _ => format!("{} bytes", record.value.len()),
    }
}

fn dead_letter(record: &Record) -> String {
    format!(
        "key {} {}/{}@{}: class {}: {}",
        record.key_str().unwrap_or("-"),
        record.header("source.topic").unwrap_or("?"),
        record.header("source.partition").unwrap_or("?"),
        record.header("source.offset").unwrap_or("?"),
        record.header("error.class").unwrap_or("?"),
        record.header("error.message").unwrap_or("?"),
    )
}
