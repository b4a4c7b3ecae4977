//! The Modbus source against a real Modbus TCP server (the PLC simulator) and Apache Kafka: results taken with
//! the handshake arrive on Kafka in order with every mapped field decoded, a PLC that restarts mid-handshake
//! loses and repeats nothing, a counter jump is reported as results lost at the station, and results whose
//! counter values and registers repeat (a PLC that lost its memory, a counter wrap) are each stored.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use linegate_e2e::kafka::{consume_until_async, create_topic};
use linegate_e2e::plc::{device_toml, map, PlcResult, PlcSim};
use linegate_e2e::stack::{EdgeRun, StationToml};
use linegate_e2e::{free_port, Kafka};
use linegate_schemas::{decode, EdgeEvent, EdgePayload, SystemEventType};

const STATION: &str = "ST-PLC";
const ACK_WAIT: Duration = Duration::from_secs(20);

fn station_config(
    dir: &Path,
    kafka: &Kafka,
    transport: &str,
    http_port: u16,
) -> std::path::PathBuf {
    StationToml::new(STATION, &dir.join("edge-data"), kafka)
        .http(http_port)
        .tables(&device_toml("press-1", transport))
        .write(&dir.join("station.toml"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plc_results_arrive_once_in_order_across_plc_restarts_and_a_counter_jump() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::start().unwrap();
    create_topic(&kafka.bootstrap(), "edge.station.events", 3)
        .await
        .unwrap();
    let mut plc = PlcSim::start_tcp().await.unwrap();
    let http_port = free_port();
    let transport = format!("tcp = {{ host = \"127.0.0.1\", port = {} }}", plc.port());
    let config = station_config(dir.path(), &kafka, &transport, http_port);
    let _edge = EdgeRun::file(&config, dir.path())
        .ready("Modbus device connected")
        .start()
        .unwrap();

    let mut sent = Vec::new();
    for n in 1..=150 {
        let result = PlcResult::numbered(n);
        plc.produce(&result, ACK_WAIT).await.unwrap();
        sent.push(result);
    }
    // The PLC powers off right after announcing a result, five times: the edge reconnects and takes it.
    for n in 151..=155 {
        let result = PlcResult::numbered(n);
        plc.write_block(&result);
        let counter = plc.bump(1);
        plc.restart_tcp().await.unwrap();
        plc.wait_ack(counter, ACK_WAIT).await.unwrap();
        sent.push(result);
    }
    // Two results never reached the edge: the counter jumps by three.
    let result = PlcResult::numbered(156);
    plc.write_block(&result);
    let counter = plc.bump(3);
    plc.wait_ack(counter, ACK_WAIT).await.unwrap();
    sent.push(result);

    let records = consume_until_async(
        &kafka.bootstrap(),
        "edge.station.events",
        sent.len() + 1,
        Duration::from_secs(60),
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert_eq!(
        records.len(),
        sent.len() + 1,
        "each result once, plus one loss report"
    );
    let events: Vec<EdgeEvent> = records.iter().map(|r| decode(&r.value).unwrap()).collect();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
    let ids: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), events.len());

    let mut results = Vec::new();
    let mut losses = Vec::new();
    for event in &events {
        match &event.payload {
            EdgePayload::Inspection(inspection) => results.push(inspection.clone()),
            EdgePayload::System(report) => losses.push(report.clone()),
            other => panic!("unexpected {}", other.family()),
        }
    }
    assert_eq!(results.len(), sent.len());
    for (got, want) in results.iter().zip(&sent) {
        assert_eq!(got.inspection_id, want.inspection_id);
        assert_eq!(got.chip_id, want.chip_id);
        assert_eq!(got.batch_id, "LOT-PLC");
        assert_eq!(got.inspection_type, "electrical");
        assert_eq!(got.status, if want.failed { "FAILED" } else { "PASSED" });
        let score = got.quality_score.unwrap();
        assert!(
            (score - f64::from(want.score_e4) * 0.0001).abs() < 1e-9,
            "{score}"
        );
        assert_eq!(
            got.metadata["temperature"],
            f64::from(want.temperature).to_string()
        );
        assert_eq!(got.metadata["cycle"], want.cycle.to_string());
    }
    assert_eq!(losses.len(), 1);
    assert_eq!(losses[0].event_type, SystemEventType::ResultsLost);
    assert_eq!(losses[0].details["lost"], "2");
    assert!(
        losses[0].message.contains("2 results were lost"),
        "{}",
        losses[0].message
    );
    // The loss report is committed with the result that revealed it, before it.
    let loss_at = events
        .iter()
        .position(|e| matches!(e.payload, EdgePayload::System(_)))
        .unwrap();
    assert_eq!(loss_at, events.len() - 2);

    let metrics = reqwest::get(format!("http://127.0.0.1:{http_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("linegate_edge_results_lost_total{source=\"modbus:press-1\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "linegate_edge_captured_total{{source=\"modbus:press-1\"}} {}",
        sent.len() + 1
    )));
}

/// The same registers every time: a PLC that restarts without its memory counts 1, 2, 3 again (twice, the
/// second time across an edge restart, so the handshake's history must come from the outbox), and a counter
/// wraps from 65535 to 0. Each announced result is a new event; none is taken for a result read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_whose_counters_and_registers_repeat_are_each_stored() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::start().unwrap();
    create_topic(&kafka.bootstrap(), "edge.station.events", 1)
        .await
        .unwrap();
    let mut plc = PlcSim::start_tcp().await.unwrap();
    let transport = format!("tcp = {{ host = \"127.0.0.1\", port = {} }}", plc.port());
    let config = station_config(dir.path(), &kafka, &transport, free_port());
    let edge = || {
        EdgeRun::file(&config, dir.path())
            .ready("Modbus device connected")
            .start()
            .unwrap()
    };
    let mut running = edge();
    let same = PlcResult::numbered(1);
    let mut announced = 0;
    for restart in 0..3 {
        if restart > 0 {
            plc.power_cycle(0).await.unwrap();
        }
        if restart == 2 {
            running.kill();
            running = edge();
        }
        for _ in 0..3 {
            plc.produce(&same, ACK_WAIT).await.unwrap();
            announced += 1;
        }
    }
    plc.power_cycle(65534).await.unwrap();
    for _ in 0..3 {
        plc.produce(&same, ACK_WAIT).await.unwrap();
        announced += 1;
    }
    assert_eq!(plc.get(map::ACK), 1, "the counter wrapped: 65535, 0, 1");

    let records = consume_until_async(
        &kafka.bootstrap(),
        "edge.station.events",
        announced,
        Duration::from_secs(60),
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let events: Vec<EdgeEvent> = records.iter().map(|r| decode(&r.value).unwrap()).collect();
    let ids: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(events.len(), announced, "one event per announced result");
    assert_eq!(ids.len(), announced, "each with its own id");
    assert!(events.iter().all(|e| matches!(&e.payload,
        EdgePayload::Inspection(i) if i.inspection_id == same.inspection_id)));
    drop(running);
}

/// Kills socat when the test ends.
struct Socat(std::process::Child);

impl Drop for Socat {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plc_results_arrive_over_modbus_rtu_on_a_serial_line() {
    let dir = tempfile::tempdir().unwrap();
    let (plc_end, edge_end) = (dir.path().join("plc-tty"), dir.path().join("edge-tty"));
    // A virtual null-modem cable: two pseudo-terminals joined by socat.
    let _socat = Socat(
        std::process::Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", plc_end.display()))
            .arg(format!("pty,raw,echo=0,link={}", edge_end.display()))
            .spawn()
            .expect("socat is installed by scripts/setup.sh"),
    );
    for _ in 0..100 {
        if plc_end.exists() && edge_end.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kafka = Kafka::start().unwrap();
    create_topic(&kafka.bootstrap(), "edge.station.events", 3)
        .await
        .unwrap();
    let plc = PlcSim::start_rtu(plc_end.to_str().unwrap()).unwrap();
    let transport = format!(
        "rtu = {{ path = \"{}\", baud = 19200, parity = \"none\" }}",
        edge_end.display()
    );
    let config = station_config(dir.path(), &kafka, &transport, free_port());
    let _edge = EdgeRun::file(&config, dir.path())
        .ready("Modbus device connected")
        .start()
        .unwrap();
    let sent: Vec<PlcResult> = (1..=20).map(PlcResult::numbered).collect();
    for result in &sent {
        plc.produce(result, ACK_WAIT).await.unwrap();
    }
    let records = consume_until_async(
        &kafka.bootstrap(),
        "edge.station.events",
        sent.len(),
        Duration::from_secs(60),
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    let ids: Vec<String> = records
        .iter()
        .map(|r| match decode::<EdgeEvent>(&r.value).unwrap().payload {
            EdgePayload::Inspection(inspection) => inspection.inspection_id,
            other => panic!("unexpected {}", other.family()),
        })
        .collect();
    let want: Vec<String> = sent.iter().map(|r| r.inspection_id.clone()).collect();
    assert_eq!(ids, want);
}
