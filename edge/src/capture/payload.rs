//! What an MQTT payload may look like: the station result document in JSON or CBOR, either in linegate's own
//! shape or in the station software's shape, mapped field by field with JSON pointers (RFC 6901).

use std::collections::BTreeMap;

use linegate_schemas::InspectionEvent;
use serde_json::{Map, Value};

use linegate_station_config::mqtt::{MqttConfig, PayloadFormat};

use super::document::{parse_value, DocumentError};

/// Reads payloads of one subscription into events.
#[derive(Debug, Clone, Default)]
pub struct PayloadReader {
    /// Encoding.
    pub format: PayloadFormat,
    /// Document key (or `metadata.<key>`) -> JSON pointer into the payload; `None`: the payload is already a
    /// station result document.
    pub mapping: Option<BTreeMap<String, String>>,
}

impl PayloadReader {
    /// How the MQTT source `config` reads its payloads.
    pub fn for_source(config: &MqttConfig) -> Self {
        Self {
            format: config.format,
            mapping: config.mapping.clone(),
        }
    }

    /// The event and trace id of one payload, or why it is not one (naming the pointer or field).
    pub fn read(&self, payload: &[u8]) -> Result<(InspectionEvent, Option<String>), DocumentError> {
        let value: Value = match self.format {
            PayloadFormat::Json => serde_json::from_slice(payload)?,
            PayloadFormat::Cbor => {
                ciborium::from_reader(payload).map_err(|e| DocumentError::Cbor(e.to_string()))?
            }
        };
        let document = match &self.mapping {
            None => value,
            Some(mapping) => map(&value, mapping)?,
        };
        parse_value(document)
    }
}

/// Builds a station result document out of `value` by the pointers of `mapping`. A pointer that finds
/// nothing leaves its key out, so a required key then fails parsing with the pointer named.
fn map(value: &Value, mapping: &BTreeMap<String, String>) -> Result<Value, DocumentError> {
    let mut document = Map::new();
    let mut metadata = Map::new();
    for (target, pointer) in mapping {
        let Some(found) = value.pointer(pointer) else {
            if matches!(
                target.as_str(),
                "event_id" | "quality_score" | "defects" | "metadata" | "trace_id"
            ) || target.starts_with("metadata.")
            {
                continue;
            }
            return Err(DocumentError::Mapping {
                target: target.clone(),
                pointer: pointer.clone(),
            });
        };
        match target.strip_prefix("metadata.") {
            Some(key) => {
                let text = match found {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                metadata.insert(key.to_owned(), Value::String(text));
            }
            None => {
                document.insert(target.clone(), found.clone());
            }
        }
    }
    if !metadata.is_empty() {
        let entry = document
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(existing) = entry {
            existing.extend(metadata);
        }
    }
    Ok(Value::Object(document))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OTHER_SHAPE: &str = r#"{
        "result": {"id": "R-9", "kind": "INSPECTION_COMPLETED", "at": 1768905000250,
                   "verdict": "PASSED", "score": 0.91},
        "part": {"serial": "C-9", "lot": "L-2"},
        "station": {"program": "optical", "operator": "op-4"}
    }"#;

    fn mapping() -> BTreeMap<String, String> {
        [
            ("event_type", "/result/kind"),
            ("timestamp", "/result/at"),
            ("inspection_id", "/result/id"),
            ("batch_id", "/part/lot"),
            ("chip_id", "/part/serial"),
            ("inspection_type", "/station/program"),
            ("status", "/result/verdict"),
            ("quality_score", "/result/score"),
            ("metadata.operator", "/station/operator"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn a_mapped_json_payload_becomes_an_event() {
        let reader = PayloadReader {
            format: PayloadFormat::Json,
            mapping: Some(mapping()),
        };
        let (event, _) = reader.read(OTHER_SHAPE.as_bytes()).unwrap();
        assert_eq!(
            (
                event.inspection_id.as_str(),
                event.chip_id.as_str(),
                event.batch_id.as_str()
            ),
            ("R-9", "C-9", "L-2")
        );
        assert_eq!(event.quality_score, Some(0.91));
        assert_eq!(event.metadata["operator"], "op-4");
    }

    #[test]
    fn a_cbor_payload_reads_like_json() {
        let value: Value = serde_json::from_str(OTHER_SHAPE).unwrap();
        let mut cbor = Vec::new();
        ciborium::into_writer(&value, &mut cbor).unwrap();
        let reader = PayloadReader {
            format: PayloadFormat::Cbor,
            mapping: Some(mapping()),
        };
        let (event, _) = reader.read(&cbor).unwrap();
        assert_eq!(event.inspection_id, "R-9");
        assert_eq!(event.timestamp, 1_768_905_000_250);
    }

    #[test]
    fn a_pointer_that_finds_nothing_is_named() {
        let mut broken = mapping();
        broken.insert("chip_id".into(), "/part/serial_no".into());
        let reader = PayloadReader {
            format: PayloadFormat::Json,
            mapping: Some(broken),
        };
        let error = reader.read(OTHER_SHAPE.as_bytes()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "mapping: JSON pointer /part/serial_no (for chip_id) finds nothing in the payload"
        );
    }

    #[test]
    fn json_bytes_sent_as_cbor_are_refused_with_the_format() {
        let reader = PayloadReader {
            format: PayloadFormat::Cbor,
            mapping: None,
        };
        let error = reader.read(b"{\"a\":1}").unwrap_err();
        assert!(error.to_string().starts_with("not CBOR:"), "{error}");
    }
}
