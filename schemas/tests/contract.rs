//! The event contract as a specification: every kind round-trips, every released version stays
//! readable, and a schema change cannot ship without a backward-compatible release.

use std::collections::BTreeMap;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use linegate_schemas::*;

fn inspection() -> InspectionEvent {
    InspectionEvent {
        event_id: "7f0c2a4e-58f1-4b43-9b0e-4f4c1f6f2d11".into(),
        event_type: InspectionEventType::InspectionCompleted,
        timestamp: 1_763_800_000_123,
        inspection_id: "insp-000042".into(),
        batch_id: "LOT-2026-11-A".into(),
        chip_id: "chip-9".into(),
        inspection_type: "VISUAL".into(),
        status: "COMPLETED".into(),
        quality_score: Some(0.93),
        defects: vec![Defect {
            defect_type: "SCRATCH".into(),
            severity: "LOW".into(),
            confidence: 0.71,
            location: "x=12,y=40".into(),
        }],
        metadata: BTreeMap::from([("recipe".into(), "R7".into())]),
    }
}

fn edge_event() -> EdgeEvent {
    let payload = inspection();
    EdgeEvent {
        event_type: payload.event_type.symbol().into(),
        event_id: payload.event_id.clone(),
        timestamp: 1_763_800_000_456,
        trace_id: "trace-1".into(),
        source_service: "linegate-edge".into(),
        schema_version: SCHEMA_VERSION.into(),
        station_id: "st-01".into(),
        seq: 7,
        outbox_epoch: "0b3e1d5c-8f6a-4c1e-9d2b-5a7f3e9c1b24".into(),
        payload: EdgePayload::Inspection(payload),
    }
}

fn quality() -> QualityEvent {
    QualityEvent {
        event_id: "0b6f0d5c-9d4f-5a7e-8d43-0c1d2e3f4a5b".into(),
        event_type: "QUALITY_VERDICT".into(),
        timestamp: 1,
        trace_id: "t".into(),
        source_service: "linegate-bridge".into(),
        schema_version: SCHEMA_VERSION.into(),
        source_event_id: Some("7f0c2a4e-58f1-4b43-9b0e-4f4c1f6f2d11".into()),
        station_id: "st-01".into(),
        seq: Some(7),
        inspection_id: Some("insp-000042".into()),
        batch_id: Some("LOT".into()),
        chip_id: Some("chip-9".into()),
        inspection_type: "VISUAL".into(),
        quality_score: None,
        threshold: Some(0.8),
        verdict: Some(QualityVerdict::Fail),
        defect_count: Some(0),
        reason: "no score reported".into(),
        window: None,
    }
}

fn quality_window() -> QualityEvent {
    QualityEvent {
        event_type: "QUALITY_WINDOW".into(),
        source_event_id: None,
        seq: None,
        inspection_id: None,
        batch_id: None,
        chip_id: None,
        threshold: None,
        verdict: None,
        defect_count: None,
        quality_score: Some(0.91),
        reason: "window closed".into(),
        window: Some(QualityWindow {
            start: 0,
            end: 300_000,
            count: 40,
            fail_count: 2,
            fail_rate: 0.05,
            scored_count: 40,
            mean_score: Some(0.91),
            stddev_score: Some(0.02),
            lsl: Some(0.8),
            usl: None,
            cp: None,
            cpk: Some(1.83),
        }),
        ..quality()
    }
}

fn audit() -> AuditEvent {
    AuditEvent {
        event_id: "1b6f0d5c-9d4f-5a7e-8d43-0c1d2e3f4a5b".into(),
        timestamp: 2,
        source_service: "linegate-bridge".into(),
        schema_version: SCHEMA_VERSION.into(),
        outcome: AuditOutcome::Rejected,
        subject_event_id: None,
        event_type: None,
        station_id: Some("st-01".into()),
        seq: Some(3),
        reason: Some("not an Avro single-object message".into()),
        source_topic: "edge.station.events".into(),
        source_partition: 0,
        source_offset: 99,
        payload_sha256: "ab".repeat(32),
        outputs: vec!["edge.station.events.dlq".into()],
        prev_audit_sha256: Some("cd".repeat(32)),
        gap_first_seq: None,
        gap_last_seq: None,
    }
}

#[test]
fn every_kind_round_trips_through_single_object_encoding() {
    assert_eq!(
        decode::<EdgeEvent>(&encode(&edge_event()).unwrap()).unwrap(),
        edge_event()
    );
    assert_eq!(
        decode::<InspectionEvent>(&encode(&inspection()).unwrap()).unwrap(),
        inspection()
    );
    assert_eq!(
        decode::<QualityEvent>(&encode(&quality()).unwrap()).unwrap(),
        quality()
    );
    assert_eq!(
        decode::<QualityEvent>(&encode(&quality_window()).unwrap()).unwrap(),
        quality_window()
    );
    assert_eq!(
        decode::<AuditEvent>(&encode(&audit()).unwrap()).unwrap(),
        audit()
    );
}

#[test]
fn every_inspection_event_type_round_trips() {
    for kind in InspectionEventType::ALL {
        let event = InspectionEvent {
            event_type: kind,
            quality_score: None,
            defects: vec![],
            ..inspection()
        };
        assert_eq!(
            decode::<InspectionEvent>(&encode(&event).unwrap()).unwrap(),
            event
        );
    }
}

#[test]
fn encoding_starts_with_marker_and_current_fingerprint() {
    let bytes = encode(&edge_event()).unwrap();
    assert_eq!(bytes[..2], SINGLE_OBJECT_MAGIC);
    assert_eq!(
        bytes[2..10],
        Contract::global()
            .current(MessageKind::EdgeEvent)
            .fingerprint
    );
}

#[test]
fn fingerprint_matches_the_avro_spec_test_vector() {
    // CRC-64-AVRO of the canonical form `"int"`, from the Avro project's test data, as a signed long.
    let schema = Schema::parse_str(r#""int""#).unwrap();
    let bytes = schema.fingerprint::<apache_avro::rabin::Rabin>().bytes;
    assert_eq!(
        i64::from_le_bytes(bytes.try_into().unwrap()),
        8247732601305521295
    );
}

#[test]
fn an_event_of_another_kind_is_refused_by_fingerprint() {
    let err = decode::<EdgeEvent>(&encode(&inspection()).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            SchemaError::UnknownFingerprint {
                kind: "EdgeEvent",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn bytes_without_the_marker_are_refused_with_what_was_found() {
    let err = decode::<EdgeEvent>(b"{\"json\": true}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "not an Avro single-object message: expected marker C3 01, found 7B 22"
    );
}

#[test]
fn a_truncated_body_is_refused() {
    let bytes = encode(&edge_event()).unwrap();
    assert!(matches!(
        decode::<EdgeEvent>(&bytes[..bytes.len() - 5]),
        Err(SchemaError::Avro { .. })
    ));
}

#[test]
fn an_invalid_uuid_does_not_encode() {
    let event = EdgeEvent {
        event_id: "not-a-uuid".into(),
        ..edge_event()
    };
    assert!(matches!(
        encode(&event),
        Err(SchemaError::Mapping {
            kind: "EdgeEvent",
            ..
        })
    ));
}

#[test]
fn cbor_storage_round_trips() {
    assert_eq!(
        from_cbor::<EdgeEvent>(&to_cbor(&edge_event()).unwrap()).unwrap(),
        edge_event()
    );
}

#[test]
fn current_schema_of_every_kind_is_released() {
    // A schema change must be released: add released/<kind>/v<N+1>.avsc and list it in RELEASED.
    // LINEGATE_RELEASE_SCHEMAS=1 prints the composed schema to put there.
    let contract = Contract::global();
    for kind in MessageKind::ALL {
        let current = contract.current(kind);
        if std::env::var_os("LINEGATE_RELEASE_SCHEMAS").is_some() {
            println!("== {}\n{}", kind.file_stem(), current.json);
        }
        assert!(
            contract.writer(kind, &current.fingerprint).is_some(),
            "the current {} schema is not released: add it under schemas/released/{}/",
            kind.name(),
            kind.file_stem()
        );
    }
}

#[test]
fn current_schema_reads_every_released_version() {
    let contract = Contract::global();
    for released in RELEASED {
        let writer = Schema::parse_str(released.json).unwrap();
        let reader = &contract.current(released.kind).schema;
        SchemaCompatibility::can_read(&writer, reader).unwrap_or_else(|e| {
            panic!(
                "{} v{} is not readable by the current schema: {e}",
                released.kind.name(),
                released.version
            )
        });
    }
}

#[test]
fn each_release_reads_the_one_before() {
    for kind in MessageKind::ALL {
        let mut versions: Vec<_> = RELEASED.iter().filter(|r| r.kind == kind).collect();
        versions.sort_by_key(|r| r.version);
        assert_eq!(
            versions.first().map(|r| r.version),
            Some(1),
            "{} has no v1",
            kind.name()
        );
        for pair in versions.windows(2) {
            assert_eq!(
                pair[1].version,
                pair[0].version + 1,
                "{} versions have a gap",
                kind.name()
            );
            let old = Schema::parse_str(pair[0].json).unwrap();
            let new = Schema::parse_str(pair[1].json).unwrap();
            SchemaCompatibility::can_read(&old, &new).unwrap_or_else(|e| {
                panic!(
                    "{} v{} cannot read v{}: {e}",
                    kind.name(),
                    pair[1].version,
                    pair[0].version
                )
            });
        }
    }
}

#[test]
fn every_released_file_is_listed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("released");
    let mut on_disk = 0;
    for kind in std::fs::read_dir(&dir).unwrap() {
        on_disk += std::fs::read_dir(kind.unwrap().path()).unwrap().count();
    }
    assert_eq!(
        on_disk,
        RELEASED.len(),
        "a file under released/ is not listed in RELEASED"
    );
}

#[test]
fn every_field_of_every_source_schema_has_a_doc() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("avro");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for field in json["fields"].as_array().unwrap() {
            assert!(
                field["doc"].is_string(),
                "{}: field {} has no doc",
                path.display(),
                field["name"]
            );
        }
    }
}

/// The cached codec (names resolved once) writes what the one-shot reference path writes: the same bytes,
/// except that apache-avro writes the entries of a map (metadata, details) in hash order on either path.
fn same_as_reference<M: AvroMessage + PartialEq + std::fmt::Debug>(message: &M) {
    let reference = encode_one_shot(M::KIND, message.to_avro().unwrap()).unwrap();
    let cached = encode(message).unwrap();
    assert_eq!(cached.len(), reference.len(), "{:?}", M::KIND);
    assert_eq!(cached[..10], reference[..10], "{:?} header", M::KIND);
    assert_eq!(
        decode::<M>(&cached).unwrap(),
        decode::<M>(&reference).unwrap()
    );
    assert_eq!(
        &message.to_datum().unwrap()[..],
        &cached[10..],
        "{:?} datum",
        M::KIND
    );
}

#[test]
fn the_cached_encoder_writes_the_reference_bytes_for_every_kind() {
    same_as_reference(&edge_event());
    same_as_reference(&inspection());
    same_as_reference(&quality());
    same_as_reference(&quality_window());
    same_as_reference(&audit());
    for kind in InspectionEventType::ALL {
        same_as_reference(&InspectionEvent {
            event_type: kind,
            quality_score: None,
            ..inspection()
        });
    }
}

/// `encode` writes the bridge's outputs straight from the structs (no Avro `Value`); that path must be the
/// one taken, for every symbol and with optional fields both set and empty, and write the reference bytes.
#[test]
fn the_direct_writer_takes_every_output_kind_and_symbol_and_matches_the_reference() {
    fn direct<M: AvroMessage + PartialEq + std::fmt::Debug>(message: &M) {
        let mut out = Vec::new();
        assert!(
            message.write_direct(&mut out).unwrap(),
            "{:?} fell back to the Value path",
            M::KIND
        );
        same_as_reference(message);
    }
    for outcome in [
        AuditOutcome::Accepted,
        AuditOutcome::Rejected,
        AuditOutcome::Duplicate,
        AuditOutcome::Gap,
    ] {
        direct(&AuditEvent { outcome, ..audit() });
    }
    direct(&AuditEvent {
        subject_event_id: None,
        event_type: None,
        station_id: None,
        seq: None,
        reason: None,
        prev_audit_sha256: None,
        gap_first_seq: Some(3),
        gap_last_seq: Some(9),
        ..audit()
    });
    for verdict in [QualityVerdict::Pass, QualityVerdict::Fail] {
        direct(&QualityEvent {
            verdict: Some(verdict),
            ..quality()
        });
    }
    direct(&quality_window());
    direct(&edge_event());
    let mut bare = inspection();
    bare.metadata.clear();
    bare.defects.clear();
    for kind in InspectionEventType::ALL {
        direct(&InspectionEvent {
            event_type: kind,
            ..inspection()
        });
        direct(&InspectionEvent {
            event_type: kind,
            quality_score: None,
            ..bare.clone()
        });
    }
}

#[test]
fn an_invalid_uuid_does_not_encode_in_any_kind_that_has_one() {
    let bad = "not-a-uuid".to_owned();
    let errors = [
        encode(&InspectionEvent {
            event_id: bad.clone(),
            ..inspection()
        }),
        encode(&AuditEvent {
            event_id: bad.clone(),
            ..audit()
        }),
        encode(&QualityEvent {
            source_event_id: Some(bad),
            ..quality()
        }),
    ];
    for error in errors {
        let error = error.unwrap_err().to_string();
        assert!(error.contains("`not-a-uuid` is not a UUID"), "{error}");
    }
}

#[test]
fn without_maps_the_cached_encoder_writes_the_reference_bytes_exactly() {
    let mut event = inspection();
    event.metadata.clear();
    let reference =
        encode_one_shot(MessageKind::InspectionEvent, event.to_avro().unwrap()).unwrap();
    assert_eq!(encode(&event).unwrap(), reference);
}

/// What a schema registry hands back for an id (the text as registered, or reformatted without docs) is
/// recognised as the contract's schema, so a Confluent-framed record decodes with the right writer.
#[test]
fn a_schema_text_from_a_registry_is_identified_by_its_fingerprint() {
    let contract = Contract::global();
    for released in RELEASED {
        let (kind, _) = contract.identify(released.json).unwrap();
        assert_eq!(
            kind,
            released.kind,
            "{} v{}",
            released.kind.name(),
            released.version
        );
    }
    for kind in MessageKind::ALL {
        let current = contract.current(kind);
        // As a registry may hand it back: compacted, and without docs.
        let mut json: serde_json::Value = serde_json::from_str(&current.json).unwrap();
        assert_eq!(
            contract.identify(&json.to_string()).unwrap(),
            (kind, current.fingerprint),
            "{}",
            kind.name()
        );
        strip_docs(&mut json);
        assert!(!json.to_string().contains("\"doc\""));
        assert_eq!(
            contract.identify(&json.to_string()).unwrap(),
            (kind, current.fingerprint),
            "{} without docs",
            kind.name()
        );
        assert_eq!(contract.current_kind(&current.fingerprint), Some(kind));
    }
    let foreign = r#"{"type":"record","name":"Other","fields":[{"name":"x","type":"int"}]}"#;
    assert!(matches!(
        contract.identify(foreign),
        Err(SchemaError::UnknownSchema { .. })
    ));
    assert!(matches!(
        contract.identify("not json"),
        Err(SchemaError::UnknownSchema { .. })
    ));
}

fn strip_docs(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("doc");
            map.values_mut().for_each(strip_docs);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_docs),
        _ => {}
    }
}
