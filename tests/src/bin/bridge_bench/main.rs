//! `bridge-bench`: figures for the bridge alone against Apache Kafka (not a test; it prints numbers).
//!
//! 1. Throughput: N events pre-loaded on the ingest topic, then a bridge started (at-least-once, or `--exactly-once`) with
//!    the full fan-out; events/s from its start to `records_in` = N on `/metrics` (includes the group join).
//! 2. Latency: events fed at a fixed rate for some seconds; per event, the time its lifecycle record became
//!    readable at a plain consumer minus the event's own timestamp (set by the feeder when it sends), so
//!    linger, acknowledgement and fetch all count ([`observe`]); p50/p95/p99 over all events, and p50/p99
//!    per second of sending, which shows a backlog building (the broker falls behind).
//! 3. The rig's floor: the same feed at the same rate into a topic the same observer reads; what the
//!    feeder, the broker and one fetch add on this machine, with no bridge at all.
//! 4. The rig's ceiling ([`ceiling`]): the bridge's Kafka traffic for the same number of events (its
//!    producer, one round in flight, commits), with no bridge work; what the broker and the clients allow here.
//!
//! Uses the bridge binary of its own profile: `cargo run --release -p linegate-e2e --bin bridge-bench` for
//! real figures (after `cargo build --release --workspace --bins`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Parser;

mod ceiling;
mod observe;

use linegate_e2e::kafka::create_topic;
use linegate_e2e::process::{usage, wait_for_port};
use linegate_e2e::stack::{bridge_config_with_http, BridgeRun};
use linegate_e2e::{free_port, Kafka};
use linegate_schemas::{
    decode, encode, EdgeEvent, EdgePayload, InspectionEvent, InspectionEventType,
};
use observe::now_ms;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

/// The bridge's allocator, `override` included (librdkafka's `malloc` too), so that the ceiling phase's
/// clients cost what the same clients cost inside the bridge.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    #[arg(long, default_value_t = 2000)]
    batch_max: usize,
    /// The bridge's `batch_wait_ms` (how long a round gathers records).
    #[arg(long, default_value_t = 10)]
    batch_wait_ms: u64,
    /// Extra librdkafka properties for the bridge, `KEY=VALUE` (its `[kafka.client]` table); repeatable.
    #[arg(long = "client")]
    client: Vec<String>,
    /// Run the bridge (and the ceiling) in exactly-once mode: one transaction per round, outputs read
    /// read_committed.
    #[arg(long)]
    exactly_once: bool,
    /// Keep the bridge's log (and config) and print where (set RUST_LOG for more detail).
    #[arg(long)]
    keep_logs: bool,
}

/// Stations the events come from.
const STATIONS: i64 = 24;

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
        outbox_epoch: String::new(),
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
    pub(crate) fn metrics(base: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(base).unwrap();
        write!(stream, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }
}

/// The ingest topic the bridge reads.
const INPUT: &str = "edge.station.events";
/// The topic of the rig-floor phase, read by a plain consumer.
const RIG: &str = "bench.rig";

/// p50/p95/p99/max of sorted latencies in ms.
fn percentiles(sorted: &[i64]) -> String {
    let pct = |p: f64| sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)];
    format!(
        "p50 {} ms, p95 {} ms, p99 {} ms, max {} ms",
        pct(0.50),
        pct(0.95),
        pct(0.99),
        sorted.last().copied().unwrap_or_default()
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let kafka = Kafka::start()?;
    let bootstrap = kafka.bootstrap();
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let config = bridge_config_with_http(dir.path(), port, None)?;
    let shipped = std::fs::read_to_string(&config)?;
    let line = "batch_max = ${LINEGATE_BRIDGE_BATCH_MAX:-2000}";
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
    if args.exactly_once {
        let mode = "mode = \"${LINEGATE_DELIVERY_MODE:-at_least_once}\"";
        let instance = "instance_id = \"${LINEGATE_BRIDGE_INSTANCE:-}\"";
        anyhow::ensure!(
            text.contains(mode) && text.contains(instance),
            "the bridge example config no longer has `{mode}` and `{instance}`; update bridge-bench"
        );
        text = text
            .replace(mode, "mode = \"exactly_once\"")
            .replace(instance, "instance_id = \"bench-1\"");
    }
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
    let mut bridge = BridgeRun::new(&kafka, "bench", dir.path())
        .config(&config)
        .start()?;
    wait_for_port(&mut bridge, port, Duration::from_secs(60))?;
    bridge.terminate(Duration::from_secs(30));

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()?;
    let send_all = |producer: &FutureProducer, topic: &str, from: i64, count: i64| {
        let mut deliveries = Vec::new();
        for n in from..from + count {
            // Round robin over the stations, each with its own gapless seq, as edges send them: a seq that
            // skipped would make every event a GAP (an extra audit record and a warning each).
            let station = format!("ST-{:02}", (n - 1) % STATIONS);
            let value = event(&station, (n - 1) / STATIONS + 1, n);
            loop {
                match producer.send_result(FutureRecord::to(topic).key(&station).payload(&value)) {
                    Ok(d) => break deliveries.push(d),
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        }
        deliveries
    };
    for d in send_all(&producer, INPUT, 1, args.events) {
        d.await?.map_err(|(e, _)| e)?;
    }
    println!("pre-loaded {} events", args.events);

    let started = Instant::now();
    let mut bridge = BridgeRun::new(&kafka, "bench", dir.path())
        .config(&config)
        .start()?;
    wait_for_port(&mut bridge, port, Duration::from_secs(60))?;
    let pid = bridge.pid().expect("the bridge runs");
    let broker = kafka.pid().expect("kafka runs");
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
        "throughput: {} events in {:.2} s = {:.0} events/s (bridge start to all consumed, full fan-out, {})",
        args.events,
        elapsed.as_secs_f64(),
        args.events as f64 / elapsed.as_secs_f64(),
        if args.exactly_once {
            "exactly-once"
        } else {
            "at-least-once"
        }
    );
    println!(
        "steady: {:.0} events in {:.2} s = {:.0} events/s once records flowed; bridge CPU {:.2} s = {:.1} us per event, broker CPU {:.2} s",
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
    let feed = |topic: &'static str, first: i64| {
        let (producer, send_all) = (&producer, &send_all);
        async move {
            let tick = Duration::from_millis(10);
            let per_tick = (args.rate / 100).max(1) as i64;
            let (mut sent, mut deliveries, mut next) = (0, Vec::new(), Instant::now());
            while sent < total {
                deliveries.extend(send_all(
                    producer,
                    topic,
                    first + sent,
                    per_tick.min(total - sent),
                ));
                sent += per_tick;
                next += tick;
                tokio::time::sleep_until(next.into()).await;
            }
            for d in deliveries {
                d.await?.map_err(|(e, _)| e)?;
            }
            anyhow::Ok(())
        }
    };
    // Lifecycle records of this phase only: chip numbers after the pre-loaded events.
    let preloaded = args.events;
    let this_phase = move |value: &[u8]| {
        let event: InspectionEvent = decode(value).ok()?;
        let n: i64 = event.chip_id.strip_prefix("chip-")?.parse().ok()?;
        (n > preloaded).then_some(event.timestamp)
    };
    let lifecycle = "inspection.lifecycle";
    let feed_input = feed(INPUT, args.events + 1);
    let cpu_before = [usage(pid).0, usage(broker).0, usage(std::process::id()).0];
    let phase_started = Instant::now();
    let latencies = observe::latencies(
        &bootstrap,
        lifecycle,
        total as usize,
        this_phase,
        feed_input,
    )
    .await?;
    let sorted = latencies.sorted();
    println!(
        "latency at {} events/s for {} s ({} events, input sent -> lifecycle record readable): {}",
        args.rate,
        args.seconds,
        sorted.len(),
        percentiles(&sorted)
    );
    println!(
        "  per second of sending (p50/p99 ms): {}",
        latencies.per_second()
    );
    let share =
        |now: f64, before: f64| (now - before) * 100.0 / phase_started.elapsed().as_secs_f64();
    println!(
        "CPU during the latency phase (of 100 % per core): bridge {:.0} %, broker {:.0} %, feeder and observer {:.0} %",
        share(usage(pid).0, cpu_before[0]),
        share(usage(broker).0, cpu_before[1]),
        share(usage(std::process::id()).0, cpu_before[2]),
    );
    bridge.terminate(Duration::from_secs(30));

    create_topic(&bootstrap, RIG, 12).await?;
    let any_event = |value: &[u8]| decode::<EdgeEvent>(value).ok().map(|e| e.timestamp);
    let (broker_before, rig_started) = (usage(broker).0, Instant::now());
    let rig = observe::latencies(&bootstrap, RIG, total as usize, any_event, feed(RIG, 1)).await?;
    println!(
        "rig floor at {} events/s (the same feed into a topic read by the same observer, no bridge): {}; broker CPU {:.0} %",
        args.rate,
        percentiles(&rig.sorted()),
        (usage(broker).0 - broker_before) * 100.0 / rig_started.elapsed().as_secs_f64()
    );
    println!("  per second of sending (p50/p99 ms): {}", rig.per_second());
    ceiling::create_topics(&bootstrap).await?;
    for d in send_all(&producer, ceiling::INPUT, 1, args.events) {
        d.await?.map_err(|(e, _)| e)?;
    }
    let broker = kafka.pid().expect("kafka runs");
    let wait = Duration::from_millis(args.batch_wait_ms);
    let top = ceiling::run(
        &bootstrap,
        args.events as usize,
        args.batch_max,
        wait,
        broker,
        args.exactly_once,
    )
    .await?;
    let seconds = top.elapsed.as_secs_f64();
    println!(
        "rig ceiling: {} events in {:.2} s = {:.0} events/s (the bridge's Kafka traffic, no bridge work); client CPU {:.1} us per event, broker CPU {:.1} us per event",
        top.events,
        seconds,
        top.events as f64 / seconds,
        top.client_cpu * 1e6 / top.events as f64,
        top.broker_cpu * 1e6 / top.events as f64,
    );
    if let Some((transactions, committing)) = top.transactions {
        println!(
            "  {transactions} transactions of up to {} events (one per round, batch_wait_ms {}): {:.1} ms each in send_offsets + commit",
            args.batch_max,
            args.batch_wait_ms,
            committing.as_secs_f64() * 1e3 / transactions.max(1) as f64
        );
    }
    if args.keep_logs {
        println!("bridge log and config kept in {}", dir.keep().display());
    }
    Ok(())
}
