//! The framing stage without a registry: cached ids re-frame a routed round, dead letters and state stay as
//! they were, and a missing id leaves the whole round untouched.

use std::path::Path;

use linegate_common::conf::ConfigFile;
use linegate_schemas::{
    decode, encode, AuditEvent, Defect, EdgeEvent, EdgePayload, InspectionEvent,
    InspectionEventType, MessageKind,
};

use super::framing::{framing, Framing};
use super::*;
use crate::config::SchemaRegistryConfig;
use crate::decide::route::{route, InputRecord, RouteContext};

const EXAMPLE: &str = include_str!("../../../config/bridge.example.toml");

/// The example config with `url` as the registry (port 1 on loopback: refused at once).
fn config(url: &str) -> BridgeConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/bridge.example.toml");
    let url = url.to_owned();
    let file = ConfigFile::from_text(&path, EXAMPLE, |name| {
        (name == "LINEGATE_SCHEMA_REGISTRY_URL").then(|| url.clone())
    })
    .unwrap();
    BridgeConfig::from_file(&file).unwrap().config
}

fn event(seq: i64, score: f64) -> EdgeEvent {
    let id = format!("7f3c2b1a-5d1e-4c8e-9a51-3b1f0c2d4e{seq:02}");
    EdgeEvent {
        event_type: "INSPECTION_COMPLETED".into(),
        event_id: id.clone(),
        timestamp: 1_768_905_000_999,
        trace_id: "trace-1".into(),
        source_service: "linegate-edge".into(),
        schema_version: "1.0.0".into(),
        station_id: "ST-01".into(),
        seq,
        outbox_epoch: String::new(),
        payload: EdgePayload::Inspection(InspectionEvent {
            event_id: id,
            event_type: InspectionEventType::InspectionCompleted,
            timestamp: 1_768_905_000_250,
            inspection_id: "insp-9".into(),
            batch_id: "B-1".into(),
            chip_id: "C-9".into(),
            inspection_type: "optical".into(),
            status: "PASSED".into(),
            quality_score: Some(score),
            defects: vec![Defect {
                defect_type: "scratch".into(),
                severity: "LOW".into(),
                confidence: 0.5,
                location: "x=1".into(),
            }],
            metadata: Default::default(),
        }),
    }
}

/// The outputs of an accepted event, a rejected one (score out of range), and a state record.
fn round(config: &BridgeConfig) -> Vec<Output> {
    let ctx = RouteContext {
        topics: &config.topics,
        routes: &config.routes,
        quality: &config.quality,
        service_name: "linegate-bridge",
        now_ms: 1_768_905_001_000,
    };
    let mut outputs = Vec::new();
    for (offset, event) in [(1, event(1, 0.93)), (2, event(2, 1.7))] {
        let value = encode(&event).unwrap();
        let record = InputRecord {
            topic: "edge.station.events",
            partition: 0,
            offset,
            key: Some(b"ST-01"),
            value: &value,
        };
        outputs.extend(route(&record, &ctx).outputs);
    }
    outputs.push(Output {
        topic: config.topics.state.clone(),
        key: Some(b"g/ST-01".to_vec()),
        value: br#"{"seq":2}"#.to_vec(),
        headers: Vec::new(),
    });
    outputs
}

fn topics(outputs: &[Output]) -> Vec<&str> {
    outputs.iter().map(|o| o.topic.as_str()).collect()
}

#[tokio::test]
async fn cached_ids_reframe_every_avro_output_and_leave_dead_letters_and_state_alone() {
    let config = config("http://127.0.0.1:1");
    let wire = WireFormat::from_config(&config, RegistryMetrics::default()).unwrap();
    assert!(wire.is_confluent());
    wire.cache("inspection.lifecycle", MessageKind::InspectionEvent, 11);
    wire.cache("quality.events", MessageKind::QualityEvent, 12);
    wire.cache("audit.events", MessageKind::AuditEvent, 13);
    let before = round(&config);
    assert_eq!(
        topics(&before),
        [
            "inspection.lifecycle",
            "quality.events",
            "audit.events",
            "edge.station.events.dlq",
            "audit.events",
            "linegate.bridge.state"
        ]
    );
    let mut after = before.clone();
    wire.frame(&mut after).await.unwrap();
    for (old, new) in before.iter().zip(&after) {
        assert_eq!((&old.key, &old.headers), (&new.key, &new.headers));
        match old.topic.as_str() {
            "edge.station.events.dlq" | "linegate.bridge.state" => {
                assert_eq!(old.value, new.value, "{} untouched", old.topic);
            }
            topic => {
                let id = match topic {
                    "inspection.lifecycle" => 11,
                    "quality.events" => 12,
                    _ => 13,
                };
                assert_eq!(framing(&new.value), Framing::Confluent(id), "{topic}");
                assert_eq!(new.value[5..], old.value[10..], "{topic}: same Avro body");
            }
        }
    }
    let reader = SchemaReader::new(&config.schema_registry).unwrap();
    assert!(
        matches!(
            reader.decode::<AuditEvent>(&after[2].value),
            Err(ReadError::Schema { id: 13, .. })
        ),
        "an id not learnt is not guessed"
    );
    let plain = SchemaReader::new(&SchemaRegistryConfig::default()).unwrap();
    let error = plain.decode::<AuditEvent>(&after[2].value).unwrap_err();
    assert!(
        error.to_string().contains("no [schema_registry] url"),
        "{error}"
    );
    assert_eq!(
        plain.decode::<AuditEvent>(&before[2].value).unwrap(),
        decode::<AuditEvent>(&before[2].value).unwrap()
    );
}

#[tokio::test]
async fn a_missing_id_with_the_registry_away_leaves_the_whole_round_unchanged() {
    let config = config("http://127.0.0.1:1");
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = RegistryMetrics::register(&mut registry);
    let wire = WireFormat::from_config(&config, metrics).unwrap();
    wire.cache("inspection.lifecycle", MessageKind::InspectionEvent, 11);
    wire.cache("audit.events", MessageKind::AuditEvent, 13);
    let before = round(&config);
    let mut outputs = before.clone();
    let error = wire.frame(&mut outputs).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
    assert_eq!(outputs, before, "nothing framed while an id is missing");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        "linegate_bridge_schema_registry_requests_total{op=\"register\"} 1",
        "linegate_bridge_schema_registry_errors_total{op=\"register\"} 1",
        "linegate_bridge_schema_registry_up 0",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }

    let (stop, stopped) = watch::channel(false);
    let waiting = wire.frame_waiting(&mut outputs, &stopped);
    let stopper = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        stop.send(true).unwrap();
    };
    let (framed, ()) = tokio::join!(waiting, stopper);
    assert!(!framed.unwrap(), "a stop ends the wait without framing");
    assert_eq!(outputs, before);
}

#[tokio::test]
async fn without_a_registry_outputs_stay_single_object_and_a_foreign_output_is_refused() {
    let config = config("");
    let wire = WireFormat::from_config(&config, RegistryMetrics::default()).unwrap();
    assert!(!wire.is_confluent());
    let before = round(&config);
    let mut outputs = before.clone();
    wire.frame(&mut outputs).await.unwrap();
    assert_eq!(outputs, before);

    let confluent =
        WireFormat::from_config(&config_with_url(), RegistryMetrics::default()).unwrap();
    let mut foreign = vec![Output {
        topic: "quality.events".into(),
        key: None,
        value: b"{}".to_vec(),
        headers: Vec::new(),
    }];
    let error = confluent.frame(&mut foreign).await.unwrap_err();
    assert!(!error.is_transient());
    assert!(
        error
            .to_string()
            .contains("output to quality.events is not an Avro single-object"),
        "{error}"
    );
}

fn config_with_url() -> BridgeConfig {
    config("http://127.0.0.1:1")
}
