//! The whole pipeline, and delivery under faults: station documents over MQTT through edges, Kafka and the
//! bridge to the topics; exactly-once through kills and fencing; the broker restarted; what goes wrong at a
//! station.
//!
//! One binary per theme (`scripts/test.sh` runs them as tiers); each module was a test binary of its own and
//! starts the brokers it needs.

mod checked;
mod checked_infra;
mod eos_recovery;
mod exactly_once;
mod kafka_restart;
mod pipeline;
mod soak;
mod station_faults;

use linegate_e2e::delivery::{GRACE, WAIT};
use linegate_e2e::kafka::{consume_until_async, Record};
use linegate_e2e::Kafka;

/// The records of `topic`, waited for until there are `n`, or what is there once the wait is over: a
/// shortfall is the checker's to report (as lost), not a timeout's.
async fn read_topic(kafka: &Kafka, topic: &str, n: usize) -> Vec<Record> {
    match consume_until_async(&kafka.bootstrap(), topic, n, WAIT, GRACE).await {
        Ok(records) => records,
        Err(error) => {
            eprintln!("{topic}: {error}; judging what is there");
            consume_until_async(&kafka.bootstrap(), topic, 0, WAIT, GRACE)
                .await
                .unwrap()
        }
    }
}

/// A number from the environment (the long forms of the checked runs), or `default`.
fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sends signal `name` (`-STOP`, `-CONT`, ...) to process `pid`.
fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([name, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {name} {pid}");
}
