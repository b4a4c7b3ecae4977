//! What linegate writes, read by Avro implementations no one here wrote (Java Avro's `BinaryMessageDecoder`
//! with a `SchemaStore` of the released schemas, and fastavro; `linegate_e2e::interop`): every record of the
//! ingest topic (written by the edge, plus inference and manufacturing events encoded by linegate's
//! contract as another station's edge would), lifecycle, quality, audit, inference, manufacturing and the
//! dead letters, in single-object encoding and, with a registry (the labelled stand-in), in the Confluent
//! wire format. Each reader must find
//! every writer schema, both must print the same values, and those must be the values linegate decodes.

use std::path::PathBuf;
use std::time::Duration;

use linegate_e2e::interop::{label, schema_file, Readers};
use linegate_e2e::kafka::{consume_until_async, produce_many, Record};
use linegate_e2e::stack::{start_edge, station_topic, BridgeRun};
use linegate_e2e::station::{inspection_documents, out_of_range_document};
use linegate_e2e::{mqtt, Kafka, Mosquitto, SchemaRegistryStandIn};
use linegate_schemas::{
    decode, encode, AuditEvent, EdgeEvent, EdgePayload, InferenceEvent, InferenceEventType,
    InspectionEvent, ManufacturingEvent, ManufacturingEventType, QualityEvent,
};
use serde_json::{json, Value};

const STATION: &str = "ST-I1";
const INSPECTIONS: usize = 40;
const WAIT: Duration = Duration::from_secs(120);
const GRACE: Duration = Duration::from_secs(2);

/// The fields each kind's record must show to any reader, as linegate decodes it.
fn expected(topic: &str, value: &[u8], registry: Option<&SchemaRegistryStandIn>) -> Value {
    fn get<M: linegate_schemas::AvroMessage>(
        value: &[u8],
        registry: Option<&SchemaRegistryStandIn>,
    ) -> M {
        match registry {
            Some(registry) => registry.decode::<M>(value).unwrap().1,
            None => decode::<M>(value).unwrap(),
        }
    }
    match topic {
        "inspection.lifecycle" => {
            let e: InspectionEvent = get(value, registry);
            json!({"event_id": e.event_id, "inspection_id": e.inspection_id, "quality_score": e.quality_score})
        }
        "quality.events" => {
            let e: QualityEvent = get(value, registry);
            json!({"event_id": e.event_id, "event_type": e.event_type, "station_id": e.station_id})
        }
        "inference.workflow" => {
            let e: InferenceEvent = get(value, registry);
            json!({"event_id": e.event_id, "model_name": e.model_name, "confidence": e.confidence})
        }
        "manufacturing.lifecycle" => {
            let e: ManufacturingEvent = get(value, registry);
            json!({"event_id": e.event_id, "batch_id": e.batch_id, "quantity": e.quantity})
        }
        "audit.events" => {
            let e: AuditEvent = get(value, registry);
            json!({"event_id": e.event_id, "subject_event_id": e.subject_event_id, "source_offset": e.source_offset})
        }
        // The ingest topic and the dead letters hold the edge's records, single-object always.
        _ => {
            let e: EdgeEvent = decode(value).unwrap();
            json!({"event_id": e.event_id, "station_id": e.station_id, "seq": e.seq})
        }
    }
}

/// Inference and manufacturing events of station `ST-I2`, as input records.
fn other_families() -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    let station = "ST-I2";
    let inference = EdgePayload::Inference(InferenceEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_type: InferenceEventType::InferenceCompleted,
        timestamp: 1_768_905_000_000,
        inspection_id: "ST-I2-insp-1".into(),
        model_name: "defect-net".into(),
        model_version: "3".into(),
        prediction: Some("ok".into()),
        confidence: Some(0.97),
        latency_ms: Some(9),
        metadata: [("gpu".to_owned(), "0".to_owned())].into(),
    });
    let manufacturing = EdgePayload::Manufacturing(ManufacturingEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        event_type: ManufacturingEventType::LotStarted,
        timestamp: 1_768_905_000_100,
        batch_id: "LOT-7".into(),
        lot_id: Some("L-7".into()),
        product_id: None,
        quantity: Some(500),
        status: "STARTED".into(),
        metadata: Default::default(),
    });
    [inference, manufacturing]
        .into_iter()
        .enumerate()
        .map(|(i, payload)| {
            let event =
                linegate_e2e::events::edge_event(station, i as i64 + 1, 1_768_905_000_000, payload);
            (Some(station.as_bytes().to_vec()), encode(&event).unwrap())
        })
        .collect()
}

/// Publishes one station's results (and one the bridge rejects) through a real edge and bridge, then reads
/// back every topic linegate wrote.
async fn run_pipeline(registry: Option<&SchemaRegistryStandIn>) -> (Kafka, Vec<Record>) {
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let kafka = Kafka::start().unwrap();
    let env: Vec<_> = registry
        .map(|r| ("LINEGATE_SCHEMA_REGISTRY_URL", r.url()))
        .into_iter()
        .collect();
    let _bridge = BridgeRun::new(&kafka, "interop", dir.path())
        .envs(&env)
        .start()
        .unwrap();
    let _edge = start_edge(STATION, &mosquitto, &kafka, dir.path()).unwrap();
    let documents = inspection_documents(STATION, INSPECTIONS, 18);
    let mut payloads: Vec<Vec<u8>> = documents
        .iter()
        .map(|d| d.to_string().into_bytes())
        .collect();
    payloads.push(out_of_range_document(STATION).to_string().into_bytes());
    mqtt::publish_all(
        mosquitto.port(),
        "sim-interop",
        &station_topic(STATION),
        &payloads,
        0,
    )
    .await
    .unwrap();
    produce_many(&kafka.bootstrap(), "edge.station.events", &other_families())
        .await
        .unwrap();
    let completed = documents
        .iter()
        .filter(|d| d["event_type"] == "INSPECTION_COMPLETED")
        .count();
    let bootstrap = kafka.bootstrap();
    let mut records = Vec::new();
    for (topic, count) in [
        ("edge.station.events", payloads.len() + 2),
        ("inspection.lifecycle", documents.len()),
        ("quality.events", completed),
        ("audit.events", payloads.len() + 2),
        ("inference.workflow", 1),
        ("manufacturing.lifecycle", 1),
        ("edge.station.events.dlq", 1),
    ] {
        records.extend(
            consume_until_async(&bootstrap, topic, count, WAIT, GRACE)
                .await
                .unwrap(),
        );
    }
    (kafka, records)
}

/// Both readers decode every record, print the same lines, and show linegate's values.
fn check(
    readers: &Readers,
    records: &[Record],
    confluent: &[(u32, PathBuf)],
    registry: Option<&SchemaRegistryStandIn>,
) {
    let java = readers.java(records, confluent).unwrap();
    let fastavro = readers.fastavro(records, confluent).unwrap();
    assert_eq!(
        java.len(),
        records.len(),
        "Java Avro printed a line per record"
    );
    assert_eq!(
        java, fastavro,
        "Java Avro and fastavro read the same values"
    );
    for (record, (line_label, decoded)) in records.iter().zip(&java) {
        assert_eq!(*line_label, label(record));
        let decoded: Value = serde_json::from_str(decoded).unwrap();
        let want = expected(&record.topic, &record.value, registry);
        for (field, value) in want.as_object().unwrap() {
            assert_eq!(&decoded[field], value, "{line_label}: {field} in {decoded}");
        }
    }
    eprintln!(
        "{} records read alike by Java Avro and fastavro",
        records.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_avro_and_fastavro_read_every_single_object_record_linegate_wrote() {
    let readers = Readers::fetch().unwrap();
    let (_kafka, records) = run_pipeline(None).await;
    assert!(records.iter().all(|r| r.value.starts_with(&[0xC3, 0x01])));
    check(&readers, &records, &[], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_avro_and_fastavro_read_the_confluent_framed_outputs_by_the_registry_schemas() {
    let readers = Readers::fetch().unwrap();
    let registry = SchemaRegistryStandIn::start().unwrap();
    let (_kafka, records) = run_pipeline(Some(&registry)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut confluent = Vec::new();
    for record in records.iter().filter(|r| r.value.first() == Some(&0)) {
        let id = u32::from_be_bytes(record.value[1..5].try_into().unwrap());
        if !confluent.iter().any(|(known, _)| *known == id) {
            let text = registry
                .schema(id)
                .expect("the id was issued by the registry");
            confluent.push((
                id,
                schema_file(dir.path(), &format!("{id}.avsc"), &text).unwrap(),
            ));
        }
    }
    assert!(
        confluent.len() >= 5,
        "lifecycle, quality, audit, inference and manufacturing are framed: {confluent:?}"
    );
    check(&readers, &records, &confluent, Some(&registry));
}
