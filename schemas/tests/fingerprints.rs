//! Fingerprints as other Avro implementations compute them: the specification's test vectors, and every
//! released schema against the values Java Avro's `SchemaNormalization.parsingFingerprint64` gave
//! (`interop/java-fingerprints.tsv`, `interop/java-spec-vectors.tsv`, made by `interop/regen.sh`).
//! Records with the fingerprints earlier builds wrote still decode.

use linegate_schemas::canonical::{fingerprint, parsing_canonical_form};
use linegate_schemas::*;
use serde_json::Value;

const JAVA_FINGERPRINTS: &str = include_str!("../../interop/java-fingerprints.tsv");
const JAVA_SPEC_VECTORS: &str = include_str!("../../interop/java-spec-vectors.tsv");

/// The data lines of a TSV (comment lines start with `#`), split at tabs.
fn rows(tsv: &str) -> Vec<Vec<&str>> {
    tsv.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn canonical_forms_and_fingerprints_match_the_spec_vectors_as_java_computes_them() {
    let vectors = rows(JAVA_SPEC_VECTORS);
    assert!(vectors.len() >= 15, "{} vectors", vectors.len());
    for row in vectors {
        let (schema, form, little_endian) = (row[0], row[1], row[3]);
        let json: Value = serde_json::from_str(schema).unwrap();
        assert_eq!(parsing_canonical_form(&json).unwrap(), form, "{schema}");
        assert_eq!(hex(&fingerprint(&json).unwrap()), little_endian, "{schema}");
    }
}

#[test]
fn every_released_schema_has_the_fingerprint_java_avro_gives_it() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut checked = 0;
    for row in rows(JAVA_FINGERPRINTS) {
        let (path, little_endian) = (row[0], row[2]);
        if !path.starts_with("schemas/released/") {
            continue;
        }
        let text = std::fs::read_to_string(format!("{root}/{path}")).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(hex(&fingerprint(&json).unwrap()), little_endian, "{path}");
        checked += 1;
    }
    assert_eq!(
        checked,
        RELEASED.len(),
        "every released schema is in the Java table"
    );
}

#[test]
fn this_build_writes_the_fingerprint_java_avro_gives_the_current_schema() {
    let java: Vec<Vec<&str>> = rows(JAVA_FINGERPRINTS);
    for kind in MessageKind::ALL {
        let path = format!("schemas/avro/{}.avsc", kind.file_stem());
        let row = java
            .iter()
            .find(|r| r[0] == path)
            .unwrap_or_else(|| panic!("{path} is not in the Java table"));
        let current = Contract::global().current(kind);
        assert_eq!(hex(&current.fingerprint), row[2], "{path}");
        // The example: inspection.lifecycle records carried 1b6d8882967c8b60 before.
        assert_ne!(current.fingerprint, current.legacy_fingerprint, "{path}");
    }
}

#[test]
fn records_with_the_fingerprint_earlier_builds_wrote_still_decode() {
    let event = InspectionEvent {
        event_id: "7f3c2b1a-5d1e-4c8e-9a51-3b1f0c2d4e5f".into(),
        event_type: InspectionEventType::InspectionCompleted,
        timestamp: 1_768_905_000_250,
        inspection_id: "insp-1".into(),
        batch_id: "LOT-1".into(),
        chip_id: "CHIP-1".into(),
        inspection_type: "optical".into(),
        status: "DONE".into(),
        quality_score: Some(0.93),
        defects: vec![],
        metadata: Default::default(),
    };
    let mut bytes = encode(&event).unwrap();
    let current = Contract::global().current(MessageKind::InspectionEvent);
    assert_eq!(bytes[2..10], current.fingerprint, "written conformant");
    assert_eq!(hex(&current.legacy_fingerprint), "1b6d8882967c8b60");
    bytes[2..10].copy_from_slice(&current.legacy_fingerprint);
    assert_eq!(decode::<InspectionEvent>(&bytes).unwrap(), event);
}
