//! The event families that joined the payload union after inspections: each round-trips inside an
//! EdgeEvent and on its own, and an enum symbol a newer writer adds reads as `OTHER` here.

use std::collections::BTreeMap;

use apache_avro::types::Value;
use apache_avro::Schema;
use linegate_schemas::*;

fn system() -> SystemEvent {
    SystemEvent {
        event_id: "2a0c2a4e-58f1-4b43-9b0e-4f4c1f6f2d11".into(),
        event_type: SystemEventType::ResultsLost,
        timestamp: 1_763_800_000_000,
        component: "modbus:press-1".into(),
        message: "the PLC result counter jumped from 7 to 10: 2 results were lost at the station"
            .into(),
        details: BTreeMap::from([
            ("first_lost".into(), "8".into()),
            ("last_lost".into(), "9".into()),
        ]),
    }
}

fn manufacturing() -> ManufacturingEvent {
    ManufacturingEvent {
        event_id: "3a0c2a4e-58f1-4b43-9b0e-4f4c1f6f2d11".into(),
        event_type: ManufacturingEventType::LotStarted,
        timestamp: 1_763_800_000_001,
        batch_id: "B-7".into(),
        lot_id: Some("LOT-7-1".into()),
        product_id: None,
        quantity: Some(2500),
        status: "STARTED".into(),
        metadata: BTreeMap::new(),
    }
}

fn inference() -> InferenceEvent {
    InferenceEvent {
        event_id: "4a0c2a4e-58f1-4b43-9b0e-4f4c1f6f2d11".into(),
        event_type: InferenceEventType::InferenceCompleted,
        timestamp: 1_763_800_000_002,
        inspection_id: "insp-1".into(),
        model_name: "defect-net".into(),
        model_version: "3.1.0".into(),
        prediction: Some("SCRATCH".into()),
        confidence: Some(0.91),
        latency_ms: Some(38),
        metadata: BTreeMap::from([("gpu".into(), "0".into())]),
    }
}

fn envelope(payload: EdgePayload) -> EdgeEvent {
    EdgeEvent {
        event_type: payload.event_type_symbol().into(),
        event_id: payload.event_id().into(),
        timestamp: 1_763_800_000_456,
        trace_id: "trace-1".into(),
        source_service: "linegate-edge".into(),
        schema_version: SCHEMA_VERSION.into(),
        station_id: "st-01".into(),
        seq: 9,
        outbox_epoch: String::new(),
        payload,
    }
}

#[test]
fn every_family_round_trips_inside_an_edge_event() {
    for payload in [
        EdgePayload::System(system()),
        EdgePayload::Manufacturing(manufacturing()),
        EdgePayload::Inference(inference()),
    ] {
        let event = envelope(payload);
        assert_eq!(
            decode::<EdgeEvent>(&encode(&event).unwrap()).unwrap(),
            event
        );
        assert_eq!(
            from_cbor::<EdgeEvent>(&to_cbor(&event).unwrap()).unwrap(),
            event
        );
    }
}

#[test]
fn every_family_round_trips_on_its_own() {
    assert_eq!(
        decode::<SystemEvent>(&encode(&system()).unwrap()).unwrap(),
        system()
    );
    assert_eq!(
        decode::<ManufacturingEvent>(&encode(&manufacturing()).unwrap()).unwrap(),
        manufacturing()
    );
    assert_eq!(
        decode::<InferenceEvent>(&encode(&inference()).unwrap()).unwrap(),
        inference()
    );
}

#[test]
fn every_symbol_round_trips() {
    for &kind in SystemEventType::ALL {
        let event = SystemEvent {
            event_type: kind,
            ..system()
        };
        assert_eq!(
            decode::<SystemEvent>(&encode(&event).unwrap()).unwrap(),
            event
        );
        assert_eq!(SystemEventType::from_symbol(kind.symbol()), Some(kind));
    }
    for &kind in ManufacturingEventType::ALL {
        let event = ManufacturingEvent {
            event_type: kind,
            ..manufacturing()
        };
        assert_eq!(
            decode::<ManufacturingEvent>(&encode(&event).unwrap()).unwrap(),
            event
        );
    }
    for &kind in InferenceEventType::ALL {
        let event = InferenceEvent {
            event_type: kind,
            ..inference()
        };
        assert_eq!(
            decode::<InferenceEvent>(&encode(&event).unwrap()).unwrap(),
            event
        );
    }
}

#[test]
fn a_symbol_from_a_newer_writer_reads_as_other() {
    let current = &Contract::global().current(MessageKind::SystemEvent);
    let newer_json = current.json.replace(
        "\"OUTBOX_DROPPED\"",
        "\"OUTBOX_DROPPED\", \"SOMETHING_NEW\"",
    );
    let newer = Schema::parse_str(&newer_json).unwrap();
    let value = Value::Record(vec![
        ("event_id".into(), Value::Uuid(uuid::Uuid::nil())),
        ("event_type".into(), Value::Enum(7, "SOMETHING_NEW".into())),
        ("timestamp".into(), Value::TimestampMillis(1)),
        ("component".into(), Value::String("x".into())),
        ("message".into(), Value::String("y".into())),
        ("details".into(), Value::Map(Default::default())),
    ]);
    let body = apache_avro::to_avro_datum(&newer, value).unwrap();
    let read =
        apache_avro::from_avro_datum(&newer, &mut body.as_slice(), Some(&current.schema)).unwrap();
    let Value::Record(fields) = read else {
        panic!("not a record")
    };
    assert_eq!(fields[1].1, Value::Enum(0, "OTHER".into()));
}

#[test]
fn an_edge_event_written_with_v1_reads_with_the_current_schema() {
    // v1 had only the inspection branch; its bytes must still decode now that the union grew.
    let v1 = RELEASED
        .iter()
        .find(|r| r.kind == MessageKind::EdgeEvent && r.version == 1)
        .unwrap();
    let v1 = Schema::parse_str(v1.json).unwrap();
    let current = &Contract::global().current(MessageKind::EdgeEvent).schema;
    apache_avro::schema_compatibility::SchemaCompatibility::can_read(&v1, current).unwrap();
}

#[test]
fn the_cached_encoder_writes_the_reference_bytes_for_every_family() {
    // Map entries come out in hash order on either path: compare lengths and what decodes.
    fn same<M: AvroMessage + PartialEq + std::fmt::Debug>(message: &M) {
        let reference = encode_one_shot(M::KIND, message.to_avro().unwrap()).unwrap();
        let cached = encode(message).unwrap();
        assert_eq!(cached.len(), reference.len(), "{:?}", M::KIND);
        assert_eq!(
            decode::<M>(&cached).unwrap(),
            decode::<M>(&reference).unwrap()
        );
    }
    same(&system());
    same(&manufacturing());
    same(&inference());
    for payload in [
        EdgePayload::System(system()),
        EdgePayload::Manufacturing(manufacturing()),
        EdgePayload::Inference(inference()),
    ] {
        let event = envelope(payload);
        assert!(
            event.write_direct(&mut Vec::new()).unwrap(),
            "the edge event fell back to the Value path"
        );
        same(&event);
    }
}
