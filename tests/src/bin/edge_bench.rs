//! Edge benchmark: prints figures, asserts nothing. Real Mosquitto and Apache Kafka on loopback, the real
//! `linegate-edge` of the same profile as this binary (build with `--release` for release figures):
//!
//! 1. MQTT QoS 1 -> durable outbox (synchronous=full) -> Kafka: results per second, end to end.
//! 2. A backlog of `--backlog` events written into an outbox while the edge is down, then drained to Kafka.
//! 3. The edge's peak RSS (VmHWM) and CPU time per phase, and its CPU while idle for 10 s.
//! 4. The broker's ceiling: the same events, already encoded, from a bare idempotent producer with the
//!    edge's settings, so that the edge's figures can be read against what the broker takes at all.
//! 5. The MQTT side's ceiling: phase 1's publishing into a subscriber that only acknowledges.
//!
//! `cargo build --release --workspace --bins && target/release/edge-bench`

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use linegate_e2e::kafka::create_topic;
use linegate_e2e::process::usage;
use linegate_e2e::stack::{outbox_path, station_topic, EdgeRun};
use linegate_e2e::station::inspection_documents;
use linegate_e2e::{free_port, mqtt, ChildProcess, Kafka, Mosquitto};
use linegate_edge::capture::{envelope, now_ms, parse_document};
use linegate_edge::outbox::{
    FullPolicy, Intake, OutboxOptions, OutboxWriter, QuarantineBound, Synchronous,
};

#[derive(Parser)]
#[command(about = "Measures linegate-edge throughput, backlog drain, memory and CPU")]
struct Args {
    /// Results published over MQTT in phase 1.
    #[arg(long, default_value_t = 50_000)]
    results: usize,
    /// Parallel MQTT publishers in phase 1.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Events in the backlog of phase 2.
    #[arg(long, default_value_t = 1_000_000)]
    backlog: usize,
}

/// Resident memory by kind (heap and stacks, mapped files such as the binary, shared), from /proc.
fn memory_split(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    ["VmRSS", "RssAnon", "RssFile", "RssShmem"]
        .iter()
        .filter_map(|key| {
            let line = status.lines().find(|l| l.starts_with(&format!("{key}:")))?;
            Some(
                line.split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn forwarded(port: u16) -> u64 {
    let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("linegate_edge_forwarded_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

async fn wait_forwarded(port: u16, target: u64) -> Duration {
    let started = Instant::now();
    while forwarded(port).await < target {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

fn start(
    station: &str,
    mosquitto: &Mosquitto,
    kafka: &Kafka,
    dir: &Path,
    http: u16,
) -> ChildProcess {
    EdgeRun::example(station, mosquitto, kafka, dir)
        .envs(&[("LINEGATE_HTTP_LISTEN", format!("127.0.0.1:{http}"))])
        .start()
        .expect("edge starts")
}

/// Writes `count` events for `station` into its outbox, as the edge's writer would, in big groups.
async fn fill_outbox(path: &Path, station: &str, count: usize) -> Duration {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let options = OutboxOptions {
        synchronous: Synchronous::Full,
        group_commit_max: 10_000,
        dedup_window_ms: 0,
        dedup_max_ids: 100_000,
        max_events: i64::MAX,
        max_bytes: i64::MAX,
        max_age_ms: None,
        full_policy: FullPolicy::Block,
        quarantine: QuarantineBound {
            max_entries: 10_000,
            max_bytes: 64 << 20,
        },
    };
    let writer =
        OutboxWriter::start(path, station, options, Arc::new(tokio::sync::Notify::new())).unwrap();
    let templates = inspection_documents(station, 250, 3);
    let started = Instant::now();
    let mut made = 0;
    while made < count {
        let items: Vec<Intake> = (0..10_000.min(count - made))
            .map(|i| {
                let mut doc = templates[(made + i) % templates.len()].clone();
                doc["event_id"] = serde_json::Value::String(uuid::Uuid::new_v4().to_string());
                let (event, trace) = parse_document(doc.to_string().as_bytes()).unwrap();
                Intake::Event(Box::new(envelope(station, event, trace, now_ms())))
            })
            .collect();
        made += items.len();
        writer.append(items).await.unwrap();
    }
    started.elapsed()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let mosquitto = Mosquitto::start()?;
    let kafka = Kafka::start()?;
    create_topic(&kafka.bootstrap(), "edge.station.events", 12).await?;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "edge-bench ({profile} build), Mosquitto + Apache Kafka on loopback, synchronous=full"
    );

    // 1. MQTT -> outbox -> Kafka.
    let http = free_port();
    let mut edge = start("BENCH-MQTT", &mosquitto, &kafka, dir.path(), http);
    let pid = edge.pid().expect("edge pid");
    let (cpu0, _) = usage(pid);
    let others = [
        mosquitto.pid().expect("mosquitto pid"),
        kafka.pid().expect("kafka pid"),
        std::process::id(),
    ];
    let others0 = others.map(|pid| usage(pid).0);
    let per = args.results / args.publishers;
    let total = per * args.publishers;
    let payloads = payloads("BENCH-MQTT", args.publishers, per);
    let started = Instant::now();
    publish(mosquitto.port(), "BENCH-MQTT", payloads).await?;
    let published = started.elapsed();
    wait_forwarded(http, total as u64).await;
    let end_to_end = started.elapsed();
    let (cpu1, hwm1) = usage(pid);
    println!(
        "1. MQTT QoS 1 -> outbox -> Kafka: {total} results in {:.2} s = {:.0} results/s end to end \
         (all PUBACKs after {:.2} s = {:.0}/s); edge CPU {:.1} s ({:.0} % of one core), peak RSS {:.1} MB",
        end_to_end.as_secs_f64(),
        total as f64 / end_to_end.as_secs_f64(),
        published.as_secs_f64(),
        total as f64 / published.as_secs_f64(),
        cpu1 - cpu0,
        100.0 * (cpu1 - cpu0) / end_to_end.as_secs_f64(),
        hwm1 as f64 / 1024.0,
    );

    let others1 = others.map(|pid| usage(pid).0);
    println!(
        "   CPU meanwhile: Mosquitto {:.1} s, Kafka {:.1} s, the publishers (this process) {:.1} s",
        others1[0] - others0[0],
        others1[1] - others0[1],
        others1[2] - others0[2],
    );
    println!("   edge memory now: {}", memory_split(pid));

    // 3a. Idle.
    let (idle0, _) = usage(pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (idle1, _) = usage(pid);
    println!(
        "3. idle for 10 s: edge CPU {:.3} s ({:.2} % of one core)",
        idle1 - idle0,
        10.0 * (idle1 - idle0)
    );
    edge.terminate(Duration::from_secs(10));

    // 2. Backlog drain.
    let station = "BENCH-BACKLOG";
    let fill = fill_outbox(&outbox_path(station, dir.path()), station, args.backlog).await;
    println!(
        "2a. outbox filled with {} events in {:.2} s = {:.0} events/s (group commit of 10,000, synchronous=full)",
        args.backlog,
        fill.as_secs_f64(),
        args.backlog as f64 / fill.as_secs_f64()
    );
    let http = free_port();
    let broker_pid = kafka.pid().expect("kafka pid");
    let (broker0, _) = usage(broker_pid);
    let started = Instant::now();
    let mut edge = start(station, &mosquitto, &kafka, dir.path(), http);
    let pid = edge.pid().expect("edge pid");
    wait_forwarded(http, args.backlog as u64).await;
    let drain = started.elapsed();
    let (cpu, hwm) = usage(pid);
    let (broker1, _) = usage(broker_pid);
    println!(
        "2b. backlog of {} drained to Kafka in {:.2} s = {:.0} events/s (from edge start); edge CPU {:.1} s \
         ({:.1} µs per event), peak RSS {:.1} MB; broker CPU meanwhile {:.1} s",
        args.backlog,
        drain.as_secs_f64(),
        args.backlog as f64 / drain.as_secs_f64(),
        cpu,
        cpu * 1e6 / args.backlog as f64,
        hwm as f64 / 1024.0,
        broker1 - broker0,
    );
    edge.terminate(Duration::from_secs(10));

    // 4. The broker's ceiling with the same records.
    let (rate, broker_cpu) = broker_ceiling(&kafka, args.backlog.min(300_000)).await?;
    println!(
        "4. broker ceiling: a bare idempotent producer (acks=all, lz4, linger 5 ms) delivers {rate:.0} \
         pre-encoded events/s to Kafka; broker CPU {broker_cpu:.1} s"
    );
    // 5. The MQTT rig's ceiling: the same publishing into a subscriber that does nothing but acknowledge.
    let (rate, mosquitto_cpu, own_cpu) = mqtt_ceiling(&mosquitto, args.publishers, per).await?;
    println!(
        "5. MQTT ceiling: the same {total} results from {} publishers through Mosquitto into a bare QoS 1 \
         subscriber (rumqttc, acknowledges at once, stores nothing): {rate:.0} results/s; CPU Mosquitto \
         {mosquitto_cpu:.1} s, publishers and subscriber (this process) {own_cpu:.1} s",
        args.publishers
    );

    Ok(())
}

/// `per` result documents for each of `publishers`, each with its own event id.
fn payloads(station: &str, publishers: usize, per: usize) -> Vec<Vec<Vec<u8>>> {
    let docs = inspection_documents(station, per / 3 + 1, 9);
    (0..publishers)
        .map(|_| {
            (0..per)
                .map(|i| {
                    let mut doc = docs[i % docs.len()].clone();
                    doc["event_id"] = serde_json::Value::String(uuid::Uuid::new_v4().to_string());
                    doc.to_string().into_bytes()
                })
                .collect()
        })
        .collect()
}

/// Publishes every payload at QoS 1 to the station's topic, one MQTT client per list, in parallel; returns
/// when the broker has acknowledged all of them.
async fn publish(port: u16, station: &str, payloads: Vec<Vec<Vec<u8>>>) -> anyhow::Result<()> {
    let topic = station_topic(station);
    let mut publishers = Vec::new();
    for (p, payloads) in payloads.into_iter().enumerate() {
        let topic = topic.clone();
        publishers.push(tokio::spawn(async move {
            mqtt::publish_all(port, &format!("bench-{p}"), &topic, &payloads, 0).await
        }));
    }
    for p in publishers {
        p.await??;
    }
    Ok(())
}

/// Results per second from the publishers into a subscriber that only acknowledges, and the CPU seconds of
/// Mosquitto and of this process meanwhile: what the MQTT side takes on this machine before any edge work.
async fn mqtt_ceiling(
    mosquitto: &Mosquitto,
    publishers: usize,
    per: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let station = "BENCH-CEILING";
    let total = publishers * per;
    let mut options = MqttOptions::new("bench-bare-subscriber", "127.0.0.1", mosquitto.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_inflight(u16::MAX);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    client
        .subscribe(station_topic(station), QoS::AtLeastOnce)
        .await?;
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
            break;
        }
    }
    let received = tokio::spawn(async move {
        let mut count = 0;
        while count < total {
            if let Event::Incoming(Packet::Publish(_)) = eventloop.poll().await? {
                count += 1;
            }
        }
        anyhow::Ok(Instant::now())
    });
    let payloads = payloads(station, publishers, per);
    let pids = [mosquitto.pid().expect("mosquitto pid"), std::process::id()];
    let cpu0 = pids.map(|pid| usage(pid).0);
    let started = Instant::now();
    publish(mosquitto.port(), station, payloads).await?;
    let done = received.await??;
    let cpu1 = pids.map(|pid| usage(pid).0);
    let elapsed = done.duration_since(started).as_secs_f64();
    Ok((total as f64 / elapsed, cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]))
}

/// Events per second a bare producer with the edge's settings gets through, and the broker's CPU for it.
async fn broker_ceiling(kafka: &Kafka, count: usize) -> anyhow::Result<(f64, f64)> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let station = "BENCH-CEILING";
    let templates = inspection_documents(station, 250, 4);
    let values: Vec<Vec<u8>> = templates
        .iter()
        .enumerate()
        .map(|(seq, doc)| {
            let (event, trace) = parse_document(doc.to_string().as_bytes()).unwrap();
            let mut event = envelope(station, event, trace, now_ms());
            event.seq = seq as i64 + 1;
            linegate_schemas::encode(&event).unwrap()
        })
        .collect();
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let broker_pid = kafka.pid().expect("kafka pid");
    let (cpu0, _) = usage(broker_pid);
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(count);
    for i in 0..count {
        let record = FutureRecord::to("edge.station.events")
            .key(station)
            .payload(&values[i % values.len()]);
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push(delivery),
            Err((error, _)) => anyhow::bail!("queueing: {error}"),
        }
    }
    for delivery in deliveries {
        delivery.await?.map_err(|(error, _)| error)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu1, _) = usage(broker_pid);
    Ok((count as f64 / elapsed, cpu1 - cpu0))
}
