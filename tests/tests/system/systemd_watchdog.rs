//! The edge under the packaged unit's `Type=notify` + `WatchdogSec=30s`, with systemd's side played by a unix
//! datagram socket (NOTIFY_SOCKET, WATCHDOG_USEC): READY arrives once the edge runs, and WATCHDOG pings keep
//! coming while a forwarding round waits for a Kafka that is away. Before the forwarder beat its heartbeat
//! while waiting, a Kafka outage longer than the watchdog interval got a healthy edge restarted.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use linegate_e2e::process::{bin_path, free_port, repo_root, ChildProcess};
use linegate_e2e::station::inspection_documents;
use linegate_e2e::{mqtt, Mosquitto};

const STATION: &str = "ST-WD";
/// The watchdog interval the edge is given; it pings at half of it while its loops are alive.
const WATCHDOG: Duration = Duration::from_secs(12);
/// How long the pings are watched while the round waits: two watchdog intervals, enough for a stale
/// heartbeat to show as a withheld ping and a gap.
const OBSERVE: Duration = Duration::from_secs(25);

/// Datagrams from the edge until `deadline`, each with when it arrived.
fn receive_until(socket: &UnixDatagram, deadline: Instant) -> Vec<(Instant, String)> {
    let mut received = Vec::new();
    let mut buf = [0_u8; 4096];
    while Instant::now() < deadline {
        socket
            .set_read_timeout(Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ))
            .unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            received.push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
    }
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_pings_go_on_while_a_round_waits_for_an_absent_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let config = repo_root().join("config/edge.example.toml");
    // Nothing listens on this port: every round waits for Kafka (delivery_timeout_ms is 300 s).
    let absent_kafka = format!("127.0.0.1:{}", free_port());
    // systemd names the watched process in WATCHDOG_PID (sd-notify ignores WATCHDOG_USEC without it); sh
    // passes its own pid, which `exec` hands to the edge.
    let edge_bin = bin_path("linegate-edge");
    let mut edge = ChildProcess::spawn(
        "linegate-edge",
        std::path::Path::new("/bin/sh"),
        &[
            "-c",
            "WATCHDOG_PID=$$ exec \"$0\" run --config \"$1\"",
            edge_bin.to_str().unwrap(),
            config.to_str().unwrap(),
        ],
        &[
            ("LINEGATE_STATION_ID", STATION.to_owned()),
            (
                "LINEGATE_DATA_DIR",
                dir.path().join("data").display().to_string(),
            ),
            ("LINEGATE_MQTT_PORT", mosquitto.port().to_string()),
            ("LINEGATE_KAFKA_BOOTSTRAP", absent_kafka),
            ("LINEGATE_HTTP_LISTEN", format!("127.0.0.1:{}", free_port())),
            ("NOTIFY_SOCKET", socket_path.display().to_string()),
            ("WATCHDOG_USEC", WATCHDOG.as_micros().to_string()),
        ],
        &dir.path().join("edge.log"),
    )
    .unwrap();
    edge.wait_for_log("MQTT subscribed", Duration::from_secs(20))
        .unwrap();
    let startup = receive_until(&socket, Instant::now() + Duration::from_millis(200));
    assert!(
        startup.iter().any(|(_, m)| m.contains("READY=1")),
        "no READY=1: {startup:?}"
    );

    let documents: Vec<Vec<u8>> = inspection_documents(STATION, 2, 7)
        .iter()
        .map(|d| serde_json::to_vec(d).unwrap())
        .collect();
    mqtt::publish_all(
        mosquitto.port(),
        "watchdog-test-station",
        &format!("stations/{STATION}/results"),
        &documents,
        0,
    )
    .await
    .unwrap();
    let start = Instant::now();
    let pings: Vec<Instant> = receive_until(&socket, start + OBSERVE)
        .into_iter()
        .filter(|(_, m)| m.contains("WATCHDOG=1"))
        .map(|(at, _)| at)
        .collect();

    // The round was really waiting: every result is still in the outbox.
    let stats = std::process::Command::new(bin_path("linegate-edge"))
        .args(["outbox", "--config", config.to_str().unwrap(), "stats"])
        .env("LINEGATE_STATION_ID", STATION)
        .env("LINEGATE_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&stats.stdout).into_owned();
    let waiting = format!("waiting      {} (", documents.len());
    assert!(
        stats.contains(&waiting),
        "the results should wait for Kafka: {stats}"
    );
    let log = edge.log_tail(200);
    assert!(
        !log.contains("withholding the watchdog ping"),
        "the edge withheld a ping while only Kafka was away:\n{log}"
    );
    let mut last = start;
    for at in &pings {
        assert!(
            at.duration_since(last) < WATCHDOG,
            "{:?} without a ping: systemd would have restarted the edge",
            at.duration_since(last)
        );
        last = *at;
    }
    assert!(
        start + OBSERVE - last < WATCHDOG,
        "no ping in the last {:?}; pings at {:?}",
        start + OBSERVE - last,
        pings
            .iter()
            .map(|p| p.duration_since(start))
            .collect::<Vec<_>>()
    );
    assert!(edge.is_running());
}
