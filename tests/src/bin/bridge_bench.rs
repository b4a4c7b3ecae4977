//! `bridge-bench`: figures for the bridge alone against a real tansu (not a test; it prints numbers).
//!
//! 1. Throughput: N events pre-loaded on the ingest topic, then a bridge started in at-least-once mode with
//!    the full fan-out; events/s from its start to `records_in` = N on `/metrics` (includes the group join).
//! 2. Latency: events fed at a fixed rate for some seconds; per event, lifecycle record timestamp (set by the
//!    bridge's producer when it sends) minus the event's own timestamp (set by the feeder when it sends);
//!    p50/p95/p99 over all events.
//!
//! Uses the bridge binary of its own profile: `cargo run --release -p linegate-e2e --bin bridge-bench` for
//! real figures (after `cargo build --release --workspace --bins`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Parser;
use linegate_e2e::kafka::consume_until;
use linegate_e2e::process::{usage, wait_for_port};
use linegate_e2e::stack::{bridge_config_with_http, start_bridge_with_config};
use linegate_e2e::{free_port, Tansu};
use linegate_schemas::{
    decode, encode, EdgeEvent, EdgePayload, InspectionEvent, InspectionEventType,
};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

#[derive(Parser)]
struct Args {
    /// Events pre-loaded for the throughput phase.
    #[arg(long, default_value_t = 50_000)]
    events: i64,
    /// Feed rate of the latency phase, events/s.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Length of the latency phase, seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The bridge's `batch_max` (records per round).
    #[arg(long, default_value_t = 500)]
    batch_max: usize,
    /// The bridge's `batch_wait_ms` (how long a round gathers records).
    #[arg(long, default_value_t = 10)]
    batch_wait_ms: u64,
    /// Extra librdkafka properties for the bridge, `KEY=VALUE` (its `[kafka.client]` table); repeatable.
    #[arg(long = "client")]
    client: Vec<String>,
    /// Keep the bridge's log (and config) and print where (set RUST_LOG for more detail).
    #[arg(long)]
    keep_logs: bool,
}

/// Stations the events come from.
const STATIONS: i64 = 24;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The `n`th event of the run: `seq` within its station, `n` in its chip id (which phase it belongs to).
fn event(station: &str, seq: i64, n: i64) -> Vec<u8> {
    let event_id = uuid::Uuid::new_v4().to_string();
    let now = now_ms();
    encode(&EdgeEvent {
        event_type: InspectionEventType::InspectionCompleted.symbol().to_owned(),
        event_id: event_id.clone(),
        timestamp: now,
        trace_id: format!("t-{seq}"),
        source_service: "bench".to_owned(),
        schema_version: linegate_schemas::SCHEMA_VERSION.to_owned(),
        station_id: station.to_owned(),
        seq,
        payload: EdgePayload::Inspection(InspectionEvent {
            event_id,
            event_type: InspectionEventType::InspectionCompleted,
            timestamp: now,
            inspection_id: format!("{station}-{seq}"),
            batch_id: "LOT".to_owned(),
            chip_id: format!("chip-{n}"),
            inspection_type: "optical".to_owned(),
            status: "DONE".to_owned(),
            quality_score: Some(0.9),
            defects: vec![],
            metadata: BTreeMap::new(),
        }),
    })
    .unwrap()
}

fn metric(base: &str, series: &str) -> f64 {
    let text = http_get::metrics(base);
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

mod http_get {
    /// A minimal HTTP GET of `/metrics` without an async runtime.
    pub fn metrics(base: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(base).unwrap();
        write!(stream, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tansu = Tansu::start_memory()?;
    let bootstrap = tansu.bootstrap();
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let config = bridge_config_with_http(dir.path(), port, None)?;
    let shipped = std::fs::read_to_string(&config)?;
    let line = "batch_max = ${LINEGATE_BRIDGE_BATCH_MAX:-500}";
    anyhow::ensure!(
        shipped.contains(line),
        "the bridge example config no longer has the line `{line}`; update bridge-bench"
    );
    let wait_line = "batch_wait_ms = 10";
    anyhow::ensure!(
        shipped.contains(wait_line),
        "the bridge example config no longer has the line `{wait_line}`; update bridge-bench"
    );
    let mut text = shipped
        .replace(line, &format!("batch_max = {}", args.batch_max))
        .replace(
            wait_line,
            &format!("batch_wait_ms = {}", args.batch_wait_ms),
        );
    if !args.client.is_empty() {
        text.push_str("\n[kafka.client]\n");
        for property in &args.client {
            let (key, value) = property
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--client {property}: expected KEY=VALUE"))?;
            text.push_str(&format!("{key:?} = {value:?}\n"));
        }
    }
    std::fs::write(&config, text)?;
    let addr = format!("127.0.0.1:{port}");
    // A first start creates the topics of the plan.
    let mut bridge = start_bridge_with_config(&tansu, "bench", &config, dir.path())?;
    wait_for_port(&mut bridge, port, Duration::from_secs(60))?;
    bridge.terminate(Duration::from_secs(30));

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()?;
    let send_all = |producer: &FutureProducer, from: i64, count: i64| {
        let mut deliveries = Vec::new();
        for n in from..from + count {
            // Round robin over the stations, each with its own gapless seq, as edges send them: a seq that
            // skipped would make every event a GAP (an extra audit record and a warning each).
            let station = format!("ST-{:02}", (n - 1) % STATIONS);
            let value = event(&station, (n - 1) / STATIONS + 1, n);
            loop {
                match producer.send_result(
                    FutureRecord::to("edge.station.events")
                        .key(&station)
                        .payload(&value),
                ) {
                    Ok(d) => break deliveries.push(d),
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        }
        deliveries
    };
    for d in send_all(&producer, 1, args.events) {
        d.await?.map_err(|(e, _)| e)?;
    }
    println!("pre-loaded {} events", args.events);

    let started = Instant::now();
    let mut bridge = start_bridge_with_config(&tansu, "bench", &config, dir.path())?;
    wait_for_port(&mut bridge, port, Duration::from_secs(60))?;
    let pid = bridge.pid().expect("the bridge runs");
    let broker = tansu.pid().expect("tansu runs");
    let records_in = "linegate_bridge_records_in_total{topic=\"edge.station.events\"}";
    // The steady rate is taken from the first poll that saw records flowing (after the group join and the
    // state read-back) to the last one; the poll interval bounds its error.
    let mut flowing: Option<(Instant, f64, f64, f64)> = None;
    loop {
        let consumed = metric(&addr, records_in);
        if consumed > 0.0 && flowing.is_none() {
            flowing = Some((Instant::now(), consumed, usage(pid).0, usage(broker).0));
        }
        if consumed >= args.events as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let (cpu, broker_cpu) = (usage(pid).0, usage(broker).0);
    let (since, at, cpu_at, broker_at) = flowing.expect("records were consumed");
    let steady = since.elapsed().as_secs_f64();
    println!(
        "throughput: {} events in {:.2} s = {:.0} events/s (bridge start to all consumed, full fan-out, at-least-once)",
        args.events,
        elapsed.as_secs_f64(),
        args.events as f64 / elapsed.as_secs_f64()
    );
    println!(
        "steady: {:.0} events in {:.2} s = {:.0} events/s once records flowed; bridge CPU {:.2} s = {:.1} us per event, tansu CPU {:.2} s",
        args.events as f64 - at,
        steady,
        (args.events as f64 - at) / steady,
        cpu - cpu_at,
        (cpu - cpu_at) * 1e6 / (args.events as f64 - at),
        broker_cpu - broker_at
    );
    while metric(
        &addr,
        "linegate_bridge_records_out_total{topic=\"audit.events\"}",
    ) < args.events as f64
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let total = (args.rate * args.seconds) as i64;
    let tick = Duration::from_millis(10);
    let per_tick = (args.rate / 100).max(1) as i64;
    let mut sent = 0;
    let mut deliveries = Vec::new();
    let mut next = Instant::now();
    while sent < total {
        deliveries.extend(send_all(
            &producer,
            args.events + 1 + sent,
            per_tick.min(total - sent),
        ));
        sent += per_tick;
        next += tick;
        tokio::time::sleep_until(next.into()).await;
    }
    for d in deliveries {
        d.await?.map_err(|(e, _)| e)?;
    }
    let expected = (args.events + total) as usize;
    let bs = bootstrap.clone();
    let records = tokio::task::spawn_blocking(move || {
        consume_until(
            &bs,
            "inspection.lifecycle",
            expected,
            Duration::from_secs(300),
            Duration::from_millis(500),
        )
    })
    .await??;
    let mut latencies: Vec<i64> = records
        .iter()
        .filter_map(|r| {
            let event: InspectionEvent = decode(&r.value).ok()?;
            let n: i64 = event.chip_id.strip_prefix("chip-")?.parse().ok()?;
            (n > args.events).then_some(r.timestamp_ms? - event.timestamp)
        })
        .collect();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "latency at {} events/s for {} s ({} events): p50 {} ms, p95 {} ms, p99 {} ms, max {} ms",
        args.rate,
        args.seconds,
        latencies.len(),
        pct(0.50),
        pct(0.95),
        pct(0.99),
        latencies.last().unwrap()
    );
    bridge.terminate(Duration::from_secs(30));
    if args.keep_logs {
        println!("bridge log and config kept in {}", dir.keep().display());
    }
    Ok(())
}
