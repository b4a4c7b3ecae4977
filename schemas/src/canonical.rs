//! The Parsing Canonical Form of a schema and its CRC-64-AVRO fingerprint, as the Avro specification defines
//! them ("Parsing Canonical Form for Schemas", "Schema Fingerprints"), computed from the schema's JSON.
//!
//! apache-avro's own canonical form keeps a primitive that carries a logical type as `{"type":"string"}`
//! instead of `"string"` (AVRO-4004), so its fingerprint differs from what Java's
//! `SchemaNormalization.parsingFingerprint64`, fastavro and every other reader compute for any schema with a
//! `uuid` or `timestamp-millis` field. Writers use this module's fingerprint; readers accept both (see
//! [`crate::Contract`]).

use std::collections::HashSet;

use apache_avro::rabin::Rabin;
use digest::Digest;
use serde_json::{Map, Value};

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// Why a schema has no canonical form: its JSON is not a schema.
#[derive(Debug, thiserror::Error)]
#[error("not an Avro schema: {0}")]
pub struct NotASchema(String);

/// The Parsing Canonical Form of `schema`: primitives in their simple form, full names, only the attributes
/// that matter for parsing (`name`, `type`, `fields`, `symbols`, `items`, `values`, `size`, in that order), a
/// named type spelled out where it is defined and referred to by its full name after that, no whitespace.
pub fn parsing_canonical_form(schema: &Value) -> Result<String, NotASchema> {
    let mut out = String::new();
    write(schema, "", &mut HashSet::new(), &mut out)?;
    Ok(out)
}

/// The CRC-64-AVRO (Rabin) fingerprint of the Parsing Canonical Form, in the little-endian byte order that
/// single-object encoding writes after `C3 01`.
pub fn fingerprint(schema: &Value) -> Result<[u8; 8], NotASchema> {
    let form = parsing_canonical_form(schema)?;
    Ok(Rabin::digest(form.as_bytes()).into())
}

fn write(
    schema: &Value,
    namespace: &str,
    defined: &mut HashSet<String>,
    out: &mut String,
) -> Result<(), NotASchema> {
    match schema {
        Value::String(name) => {
            let name = if PRIMITIVES.contains(&name.as_str()) {
                name.clone()
            } else {
                full_name(name, None, namespace)
            };
            push_string(&name, out);
            Ok(())
        }
        Value::Array(branches) => {
            out.push('[');
            for (i, branch) in branches.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(branch, namespace, defined, out)?;
            }
            out.push(']');
            Ok(())
        }
        Value::Object(object) => write_object(object, namespace, defined, out),
        other => Err(NotASchema(format!("{other} is not a schema"))),
    }
}

fn write_object(
    object: &Map<String, Value>,
    namespace: &str,
    defined: &mut HashSet<String>,
    out: &mut String,
) -> Result<(), NotASchema> {
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        // {"type": {...}} or {"type": [...]}: the attribute is itself the schema.
        Some(inner) => return write(inner, namespace, defined, out),
        None => return Err(NotASchema("an object without \"type\"".to_owned())),
    };
    if PRIMITIVES.contains(&kind) {
        push_string(kind, out);
        return Ok(());
    }
    match kind {
        "record" | "error" | "enum" | "fixed" => {
            let name = object
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| NotASchema(format!("a {kind} without a name")))?;
            let own_namespace = object.get("namespace").and_then(Value::as_str);
            let full = full_name(name, own_namespace, namespace);
            if !defined.insert(full.clone()) {
                push_string(&full, out);
                return Ok(());
            }
            let inner_namespace = full.rsplit_once('.').map_or("", |(ns, _)| ns).to_owned();
            out.push_str("{\"name\":");
            push_string(&full, out);
            out.push_str(",\"type\":");
            push_string(if kind == "error" { "error" } else { kind }, out);
            match kind {
                "enum" => write_symbols(object, out)?,
                "fixed" => {
                    let size = object
                        .get("size")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| NotASchema(format!("fixed {full} without a size")))?;
                    out.push_str(&format!(",\"size\":{size}"));
                }
                _ => write_fields(object, &inner_namespace, defined, out)?,
            }
            out.push('}');
            Ok(())
        }
        "array" => write_container(object, "items", namespace, defined, out),
        "map" => write_container(object, "values", namespace, defined, out),
        // A named type referred to as {"type": "com.example.Name"}.
        name => write(&Value::String(name.to_owned()), namespace, defined, out),
    }
}

fn write_fields(
    object: &Map<String, Value>,
    namespace: &str,
    defined: &mut HashSet<String>,
    out: &mut String,
) -> Result<(), NotASchema> {
    let fields = object
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| NotASchema("a record without fields".to_owned()))?;
    out.push_str(",\"fields\":[");
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let name = field
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| NotASchema("a field without a name".to_owned()))?;
        let schema = field
            .get("type")
            .ok_or_else(|| NotASchema(format!("field {name} without a type")))?;
        out.push_str("{\"name\":");
        push_string(name, out);
        out.push_str(",\"type\":");
        write(schema, namespace, defined, out)?;
        out.push('}');
    }
    out.push(']');
    Ok(())
}

fn write_symbols(object: &Map<String, Value>, out: &mut String) -> Result<(), NotASchema> {
    let symbols = object
        .get("symbols")
        .and_then(Value::as_array)
        .ok_or_else(|| NotASchema("an enum without symbols".to_owned()))?;
    out.push_str(",\"symbols\":[");
    for (i, symbol) in symbols.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let symbol = symbol
            .as_str()
            .ok_or_else(|| NotASchema("an enum symbol that is no string".to_owned()))?;
        push_string(symbol, out);
    }
    out.push(']');
    Ok(())
}

fn write_container(
    object: &Map<String, Value>,
    attribute: &str,
    namespace: &str,
    defined: &mut HashSet<String>,
    out: &mut String,
) -> Result<(), NotASchema> {
    let inner = object
        .get(attribute)
        .ok_or_else(|| NotASchema(format!("a container without \"{attribute}\"")))?;
    let kind = if attribute == "items" { "array" } else { "map" };
    out.push_str(&format!("{{\"type\":\"{kind}\",\"{attribute}\":"));
    write(inner, namespace, defined, out)?;
    out.push('}');
    Ok(())
}

/// `name` if it has a dot, else qualified by its own namespace attribute, else by the enclosing one.
fn full_name(name: &str, own_namespace: Option<&str>, enclosing: &str) -> String {
    if name.contains('.') {
        return name.to_owned();
    }
    match own_namespace.unwrap_or(enclosing) {
        "" => name.to_owned(),
        namespace => format!("{namespace}.{name}"),
    }
}

/// A JSON string literal with only `"` and `\` escaped, and control characters as `\uXXXX`: the spec's
/// [STRINGS] rule keeps every other character as UTF-8.
fn push_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
