//! The state read-back on assignment against a state topic with a long history: a million state records
//! (a thousand stations of this group, a thousand updates each, and a hundred thousand records of another
//! group), as a topic that has not compacted yet would hold. The bridge restores the latest state of each of
//! its stations, folding while it reads (its peak memory grows by less than the history's size: holding the
//! records, as the read-back did before, takes several times that), and judges by it.

use std::time::Duration;

use linegate_e2e::delivery::{inputs, outcomes};
use linegate_e2e::kafka::{consume_until_async, produce_many};
use linegate_e2e::process::usage;
use linegate_e2e::stack::BridgeRun;
use linegate_e2e::Kafka;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

const GROUP: &str = "readback";
const STATE: &str = "linegate.bridge.state";
const STATIONS: usize = 1_000;
const UPDATES: usize = 1_000;
const FOREIGN: usize = 100_000;

/// One state record as the bridge writes it: `seq` handled last, at a position of an input partition this
/// test never writes (so only the seq decides), seen now (within the dedup window).
fn state_json(seq: usize, now_ms: i64) -> String {
    format!(
        r#"{{"seq":{seq},"head":"{seq:064x}","topic":"edge.station.events","partition":99,"offset":{seq},"seen_ms":{now_ms}}}"#
    )
}

/// Writes the million records; returns how many bytes of values that was.
fn write_history(bootstrap: &str) -> usize {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "50")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .unwrap();
    let now_ms = linegate_common::process::now_ms();
    let mut bytes = 0;
    let mut send = |key: &str, value: &str| {
        bytes += value.len();
        let mut record = BaseRecord::to(STATE).key(key).payload(value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    producer.poll(Duration::from_millis(50));
                    record = returned;
                }
            }
        }
    };
    for update in 1..=UPDATES {
        for station in 0..STATIONS {
            send(
                &format!("{GROUP}/ST-R{station:04}"),
                &state_json(update, now_ms),
            );
        }
        if update <= FOREIGN / STATIONS {
            for station in 0..STATIONS {
                send(
                    &format!("other/ST-R{station:04}"),
                    &state_json(update * 7, now_ms),
                );
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    bytes
}

/// `text` without the terminal colour codes of the log.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_state_records_are_folded_to_the_latest_per_station_in_bounded_memory() {
    let kafka = Kafka::start().unwrap();
    let bootstrap = kafka.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    // The first start creates the topics of the plan, the state topic among them.
    let mut bridge = BridgeRun::new(&kafka, GROUP, dir.path())
        .instance("-empty")
        .start()
        .unwrap();
    bridge
        .wait_for_log("dedup state restored", Duration::from_secs(120))
        .unwrap();
    let (_, empty_kb) = usage(bridge.pid().unwrap());
    assert!(bridge.terminate(Duration::from_secs(20)));
    let history = bootstrap.clone();
    let bytes = tokio::task::spawn_blocking(move || write_history(&history))
        .await
        .unwrap();

    let mut bridge = BridgeRun::new(&kafka, GROUP, dir.path()).start().unwrap();
    bridge
        .wait_for_log("dedup state restored", Duration::from_secs(180))
        .unwrap();
    let (_, peak_kb) = usage(bridge.pid().unwrap());
    eprintln!(
        "state read-back: {} records ({} MB of values), bridge peak RSS {} MB (with an empty state topic {} MB)",
        STATIONS * UPDATES + FOREIGN,
        bytes / 1_000_000,
        peak_kb / 1024,
        empty_kb / 1024
    );
    let log = plain(&bridge.log_tail(50));
    let read_back = log
        .lines()
        .find(|l| l.contains("state topic read back"))
        .unwrap_or_default();
    eprintln!("{read_back}");
    assert!(
        peak_kb < empty_kb + 200 * 1024,
        "peak RSS {peak_kb} kB while reading back {} MB ({empty_kb} kB with an empty state topic)",
        bytes / 1_000_000
    );
    assert!(
        read_back.contains(&format!("records={}", STATIONS * UPDATES + FOREIGN))
            && read_back.contains(&format!("chains={STATIONS}")),
        "every record read, only this group's stations kept, once each: {read_back}"
    );

    // Judged by the latest state of each station: seq 1000 was handled, 1001 is new; seq 700 of the
    // foreign group's numbers means nothing here.
    let mut records = inputs("ST-R0007", UPDATES as i64, 2);
    records.extend(inputs("ST-R0008", 700, 1));
    produce_many(&bootstrap, "edge.station.events", &records)
        .await
        .unwrap();
    let audit = consume_until_async(
        &bootstrap,
        "audit.events",
        3,
        Duration::from_secs(60),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    let outcomes = outcomes(&audit);
    assert_eq!(outcomes.get("Duplicate"), Some(&2), "{outcomes:?}");
    assert_eq!(outcomes.get("Accepted"), Some(&1), "{outcomes:?}");
}
