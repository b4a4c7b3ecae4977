//! Configs pushed per station, signed: Apache Kafka, Mosquitto, edge and bridge. A valid push changes what the
//! edge does (it takes results from a new MQTT topic); a broken, an unsigned and a wrongly signed push are
//! refused and the config in force keeps working; every outcome reaches `audit.events`; a push made while
//! the edge was stopped is applied when it starts; the last-known-good config is used on a restart while
//! Kafka is away; `config push` refuses a broken file with file:line.

use std::time::Duration;

use linegate_e2e::config_push::{
    bridge_config, config_reports, keygen, metrics, produce_envelope, publish, push, pushed,
    wait_for_count, write_local,
};
use linegate_e2e::kafka::{consume_until_async, station_seqs};
use linegate_e2e::stack::{start_bridge, EdgeRun};
use linegate_e2e::station::inspection_documents;
use linegate_e2e::{free_port, Kafka, Mosquitto};
use linegate_station_config::signed::{self, SignedConfig};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_applied_or_refused_and_every_outcome_reaches_audit_events() {
    const STATION: &str = "ST-PUSH";
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let kafka = Kafka::start().unwrap();
    let mut bridge = start_bridge(&kafka, "push-a", dir.path()).unwrap();
    bridge
        .wait_for_log("linegate-bridge started", WAIT)
        .unwrap();
    let (key, public) = keygen(dir.path());
    let http = free_port();
    let local = dir.path().join("station.toml");
    write_local(
        &local,
        dir.path(),
        STATION,
        &mosquitto,
        &kafka,
        &public,
        http,
    );
    let mut edge = EdgeRun::file(&local, dir.path()).start().unwrap();
    let log = dir.path().join("edge.log");
    wait_for_count(&log, "no config was pushed for this station yet", 1, WAIT);
    let docs = inspection_documents(STATION, 20, 5);
    publish(&mosquitto, "line/a/results", &docs, 0).await;
    consume_until_async(
        &kafka.bootstrap(),
        "edge.station.events",
        10,
        WAIT,
        Duration::ZERO,
    )
    .await
    .unwrap();

    // A valid push: the edge moves to line/b.
    let file = dir.path().join("pushed-v1.toml");
    // A client id of its own: only while the pushed config is in force does anything read line/b.
    std::fs::write(
        &file,
        pushed(&mosquitto, "edge-ST-PUSH-v1", "line/b/results"),
    )
    .unwrap();
    assert_eq!(push(&kafka, STATION, &key, &file), 1);
    wait_for_count(&log, "pushed config applied", 1, WAIT);
    wait_for_count(&log, "MQTT subscribed", 2, WAIT);
    publish(&mosquitto, "line/b/results", &docs, 10).await;

    // A broken config, correctly signed (config push would not make it), an unsigned one, a forged one.
    let signing = signed::read_signing_key(&key).unwrap();
    let now = linegate_common::process::now_ms();
    let broken = "[mqtt]\nhost = \"127.0.0.1\"\nclient_id = \"c\"\ntopics = []\n";
    produce_envelope(
        &kafka,
        STATION,
        &SignedConfig::sign(STATION, 2, now, broken, &signing),
    )
    .await;
    wait_for_count(&log, "pushed config refused", 1, WAIT);
    let elsewhere = pushed(&mosquitto, "edge-ST-PUSH", "line/c/results");
    produce_envelope(
        &kafka,
        STATION,
        &SignedConfig::unsigned(STATION, 3, now, &elsewhere),
    )
    .await;
    wait_for_count(&log, "pushed config refused", 2, WAIT);
    let intruder = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let forged = SignedConfig {
        key_id: signed::fingerprint(&signing.verifying_key()),
        ..SignedConfig::sign(STATION, 4, now, &elsewhere, &intruder)
    };
    produce_envelope(&kafka, STATION, &forged).await;
    wait_for_count(&log, "pushed config refused", 3, WAIT);
    // SIGHUP re-reads the local file and keeps the pushed config over it.
    let text = std::fs::read_to_string(&local)
        .unwrap()
        .replace("line/a/", "line/z/");
    std::fs::write(&local, text).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &edge.pid().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for_count(&log, "config reloaded", 1, WAIT);
    wait_for_count(&log, "MQTT subscribed", 3, WAIT);
    // The config in force still works.
    publish(&mosquitto, "line/b/results", &docs, 20).await;

    let ingest = consume_until_async(
        &kafka.bootstrap(),
        "edge.station.events",
        34,
        WAIT,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert_eq!(
        station_seqs(&ingest, STATION),
        (1..=34).collect::<Vec<i64>>(),
        "30 results and 4 reports, each once, in order"
    );
    let audit = consume_until_async(
        &kafka.bootstrap(),
        "audit.events",
        34,
        WAIT,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let mut reports = config_reports(&audit, &ingest, STATION);
    reports.sort_by_key(|r| r.audit.seq);
    let kinds: Vec<_> = reports
        .iter()
        .map(|r| r.audit.event_type.clone().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "CONFIG_APPLIED",
            "CONFIG_REJECTED",
            "CONFIG_REJECTED",
            "CONFIG_REJECTED"
        ]
    );
    // The switch sits between the results of the two configs: line/a's ten before it, line/b's after.
    assert_eq!(reports[0].audit.seq, Some(11));
    assert_eq!(reports[0].event.details["version"], "1");
    // The audit records say it on their own: the report's words ride along as headers.
    assert_eq!(reports[0].record.header("system.version"), Some("1"));
    for report in &reports[1..] {
        assert_eq!(
            report.record.header("system.reason"),
            Some(report.event.details["reason"].as_str())
        );
    }
    let reasons: Vec<&str> = reports[1..]
        .iter()
        .map(|r| r.event.details["reason"].as_str())
        .collect();
    assert!(
        reasons[0].starts_with("pushed config v2:4: key `mqtt.topics`"),
        "{}",
        reasons[0]
    );
    assert!(reasons[1].contains("not signed"), "{}", reasons[1]);
    assert!(reasons[2].contains("does not verify"), "{}", reasons[2]);
    assert!(reports[1..]
        .iter()
        .all(|r| r.event.details["in_force_version"] == "1"));

    let exported = metrics(http).await;
    assert!(
        exported.contains("linegate_edge_config_push_version 1"),
        "{exported}"
    );
    assert!(
        exported.contains("linegate_edge_config_push_rejected_total 3"),
        "{exported}"
    );

    let public = public.to_str().unwrap();
    let (ok, shown, err) = bridge_config(
        Some(&kafka),
        &["show", "--station", STATION, "--public-key", public],
    );
    assert!(ok, "{err}");
    assert!(
        shown.contains("version 4") && shown.contains("NOT VERIFIED"),
        "{shown}"
    );
    let (ok, history, err) = bridge_config(
        Some(&kafka),
        &["history", "--station", STATION, "--public-key", public],
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 4, "{history}");
    assert!(
        lines[0].contains("version 1") && lines[0].contains("verified with"),
        "{history}"
    );
    assert!(lines[2].contains("UNSIGNED"), "{history}");
    assert!(edge.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_made_while_the_edge_is_stopped_is_applied_at_start_and_kept_through_a_kafka_outage()
{
    const STATION: &str = "ST-AWAY";
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let mut kafka = Kafka::start().unwrap();
    let mut bridge = start_bridge(&kafka, "push-b", dir.path()).unwrap();
    bridge
        .wait_for_log("linegate-bridge started", WAIT)
        .unwrap();
    let (key, public) = keygen(dir.path());
    let local = dir.path().join("station.toml");
    write_local(
        &local,
        dir.path(),
        STATION,
        &mosquitto,
        &kafka,
        &public,
        free_port(),
    );
    let log = dir.path().join("edge.log");
    let mut edge = EdgeRun::file(&local, dir.path()).start().unwrap();
    wait_for_count(&log, "no config was pushed for this station yet", 1, WAIT);
    assert!(edge.terminate(Duration::from_secs(15)));

    // Pushed while the edge is down; a new client id, so only the pushed config receives line/b.
    let file = dir.path().join("pushed-v1.toml");
    std::fs::write(
        &file,
        pushed(&mosquitto, "edge-ST-AWAY-v1", "line/b/results"),
    )
    .unwrap();
    assert_eq!(push(&kafka, STATION, &key, &file), 1);
    let mut edge = EdgeRun::file(&local, dir.path())
        .ready("pushed config applied")
        .start()
        .unwrap();
    wait_for_count(&log, "MQTT subscribed", 3, WAIT);
    let docs = inspection_documents(STATION, 20, 6);
    publish(&mosquitto, "line/b/results", &docs, 0).await;
    consume_until_async(
        &kafka.bootstrap(),
        "edge.station.events",
        11,
        WAIT,
        Duration::ZERO,
    )
    .await
    .unwrap();
    assert!(edge.terminate(Duration::from_secs(15)));

    // Kafka away: the edge starts with its last-known-good config and captures line/b into the outbox.
    kafka.stop();
    let mut edge = EdgeRun::file(&local, dir.path())
        .ready("starting with the last-known-good pushed config")
        .start()
        .unwrap();
    wait_for_count(&log, "MQTT subscribed", 4, WAIT);
    publish(&mosquitto, "line/b/results", &docs, 10).await;
    let waiting = || {
        let output = std::process::Command::new(linegate_e2e::bin_path("linegate-edge"))
            .args(["outbox", "--config", local.to_str().unwrap(), "stats"])
            .output()
            .unwrap();
        let stats = String::from_utf8_lossy(&output.stdout).into_owned();
        stats
            .lines()
            .find_map(|l| l.strip_prefix("waiting"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no waiting count in: {stats}"))
    };
    let deadline = std::time::Instant::now() + WAIT;
    while waiting() < 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "line/b results did not reach the outbox"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Kafka back: everything arrives once, in order; the config applied once is reported once.
    kafka.start_again().unwrap();
    wait_for_count(&log, "pushed config already in force", 1, WAIT);
    let ingest = consume_until_async(
        &kafka.bootstrap(),
        "edge.station.events",
        21,
        Duration::from_secs(120),
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    assert_eq!(
        station_seqs(&ingest, STATION),
        (1..=21).collect::<Vec<i64>>()
    );
    let audit = consume_until_async(
        &kafka.bootstrap(),
        "audit.events",
        21,
        Duration::from_secs(120),
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    let reports = config_reports(&audit, &ingest, STATION);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(
        reports[0].audit.event_type.as_deref(),
        Some("CONFIG_APPLIED")
    );
    assert_eq!(reports[0].event.details["version"], "1");
    assert!(edge.is_running());
}

#[test]
fn config_push_refuses_a_broken_file_with_its_line_and_pushes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path());
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        "[mqtt]\nhost = \"h\"\nclient_id = \"c\"\ntopics = [\"t\"]\nkeep_alive_secs = \"soon\"\n",
    )
    .unwrap();
    // No Kafka at all: the file is judged before anything is contacted.
    let (ok, stdout, stderr) = bridge_config(
        None,
        &[
            "push",
            "--station",
            "ST-01",
            "--key",
            key.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    );
    assert!(!ok, "{stdout}");
    let expected = format!("error: {}:5:", file.display());
    assert!(stderr.starts_with(&expected), "{stderr}");
    assert!(stderr.contains("nothing was pushed"), "{stderr}");
    // Keygen never overwrites a key.
    let (ok, _, stderr) = bridge_config(
        None,
        &["keygen", "--out", dir.path().join("keys").to_str().unwrap()],
    );
    assert!(!ok && stderr.contains("never overwrites"), "{stderr}");
}
