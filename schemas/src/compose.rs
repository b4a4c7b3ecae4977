//! Builds self-contained schemas out of the one-record-per-file `.avsc` sources.
//!
//! A file may name a record of another file by its full name; composing inlines that record's
//! definition at its first use, as the Avro spec requires of a standalone schema (and as its
//! fingerprint, taken over the Parsing Canonical Form, expects).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// Inlines every named reference of `root` found in `library` (full name -> JSON definition).
pub(crate) fn compose(root: &Value, library: &HashMap<String, Value>) -> Value {
    let mut defined = HashSet::new();
    inline(root, library, &mut defined)
}

/// The full name (`namespace.name`) a record definition declares.
pub(crate) fn full_name(definition: &Value) -> Option<String> {
    let name = definition.get("name")?.as_str()?;
    if name.contains('.') {
        return Some(name.to_owned());
    }
    match definition.get("namespace").and_then(Value::as_str) {
        Some(ns) => Some(format!("{ns}.{name}")),
        None => Some(name.to_owned()),
    }
}

fn inline(value: &Value, library: &HashMap<String, Value>, defined: &mut HashSet<String>) -> Value {
    match value {
        Value::String(name) => match library.get(name) {
            Some(definition) if defined.insert(name.clone()) => {
                inline(definition, library, defined)
            }
            _ => value.clone(),
        },
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| inline(v, library, defined)).collect())
        }
        Value::Object(map) => {
            if let Some(name) = full_name(value).filter(|_| map.contains_key("fields")) {
                defined.insert(name);
            }
            let mut out = map.clone();
            for key in ["type", "items", "values", "fields"] {
                if let Some(child) = map.get(key) {
                    out.insert(key.to_owned(), inline(child, library, defined));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inlines_a_referenced_record_once_and_names_it_afterwards() {
        let point = json!({"type": "record", "name": "P", "namespace": "x", "fields": [{"name": "v", "type": "int"}]});
        let library = HashMap::from([("x.P".to_owned(), point.clone())]);
        let root = json!({"type": "record", "name": "R", "namespace": "x", "fields": [
            {"name": "a", "type": "x.P"}, {"name": "b", "type": {"type": "array", "items": "x.P"}}]});
        let composed = compose(&root, &library);
        assert_eq!(composed["fields"][0]["type"], point);
        assert_eq!(composed["fields"][1]["type"]["items"], json!("x.P"));
    }
}
