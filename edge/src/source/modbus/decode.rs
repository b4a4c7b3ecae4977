//! From register words (or bits) to field values, and from field values to an InspectionEvent.
//!
//! Pure functions: the device loop reads, this file interprets. Errors name the field's target and register so
//! that a wrong map is found from the log line alone.

use std::collections::BTreeMap;

use linegate_schemas::{InspectionEvent, InspectionEventType};

use linegate_station_config::modbus::{FieldSpec, Order, ValueType};

/// What was read for one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    /// Register contents.
    Words(Vec<u16>),
    /// Coil or discrete input states.
    Bits(Vec<bool>),
}

/// A decoded field value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    /// An integer (before scale and offset, or an integer result).
    Int(i64),
    /// A number after scale/offset, or a float type.
    Number(f64),
    /// Text (a string register, an enum entry, or a constant).
    Text(String),
    /// A bit.
    Bool(bool),
}

impl Value {
    fn as_text(&self) -> String {
        match self {
            Value::Int(i) => i.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Text(t) => t.clone(),
            Value::Bool(b) => b.to_string(),
        }
    }

    fn as_number(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Number(n) => Some(*n),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Text(t) => t.trim().parse().ok(),
        }
    }
}

/// Interprets `raw` as `field` says: type, byte and word order, scale and offset, enum table.
pub(super) fn decode(field: &FieldSpec, raw: &Raw) -> Result<Value, String> {
    if let Some(constant) = &field.constant {
        return Ok(Value::Text(constant.clone()));
    }
    let value_type = field.value_type.ok_or("no type")?;
    let value = match raw {
        Raw::Bits(bits) => Value::Bool(*bits.first().ok_or("no bit was read")?),
        Raw::Words(words) => {
            if words.len() < usize::from(field.width()) {
                return Err(format!(
                    "{} registers read, {} needed",
                    words.len(),
                    field.width()
                ));
            }
            let words: Vec<u16> = words
                .iter()
                .map(|w| match field.byte_order {
                    Order::Big => *w,
                    Order::Little => w.swap_bytes(),
                })
                .collect();
            let wide = |n: usize| -> u64 {
                let mut parts: Vec<u16> = words[..n].to_vec();
                if field.word_order == Order::Little {
                    parts.reverse();
                }
                parts
                    .iter()
                    .fold(0u64, |acc, w| (acc << 16) | u64::from(*w))
            };
            match value_type {
                ValueType::U16 => Value::Int(i64::from(words[0])),
                ValueType::I16 => Value::Int(i64::from(words[0] as i16)),
                ValueType::U32 => Value::Int(wide(2) as i64),
                ValueType::I32 => Value::Int(i64::from(wide(2) as u32 as i32)),
                ValueType::U64 => Value::Int(
                    i64::try_from(wide(4)).map_err(|_| "u64 value above i64::MAX".to_owned())?,
                ),
                ValueType::F32 => Value::Number(f64::from(f32::from_bits(wide(2) as u32))),
                ValueType::F64 => Value::Number(f64::from_bits(wide(4))),
                ValueType::Bool => Value::Bool(words[0] != 0),
                ValueType::String => {
                    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
                    let text = String::from_utf8(bytes)
                        .map_err(|_| "the string registers are not UTF-8".to_owned())?;
                    Value::Text(
                        text.trim_end_matches(['\0', ' '])
                            .trim_start_matches('\0')
                            .to_owned(),
                    )
                }
            }
        }
    };
    if let Some(table) = &field.enum_table {
        let key = match &value {
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => u8::from(*b).to_string(),
            other => return Err(format!("{other:?} cannot be looked up in the enum table")),
        };
        return table
            .get(&key)
            .map(|text| Value::Text(text.clone()))
            .ok_or_else(|| format!("value {key} is not in the enum table"));
    }
    Ok(match (&value, field.scale, field.offset) {
        (_, None, None) => value,
        (Value::Int(_) | Value::Number(_), scale, offset) => {
            let n = value.as_number().expect("numeric");
            Value::Number(n * scale.unwrap_or(1.0) + offset.unwrap_or(0.0))
        }
        _ => return Err("scale and offset apply to numbers only".into()),
    })
}

/// Interprets one result block as read (`raws` in the order of `fields`): the event (without its
/// `event_id`), or why not, naming the first field that does not decode and its register. Pure: the device
/// loop reads, this judges; public for the fuzz target and tools.
pub fn interpret(
    fields: &[FieldSpec],
    raws: &[Raw],
    captured_at_ms: i64,
) -> Result<InspectionEvent, String> {
    if fields.len() != raws.len() {
        return Err(format!("{} fields, {} reads", fields.len(), raws.len()));
    }
    let mut values = Vec::with_capacity(fields.len());
    for (field, raw) in fields.iter().zip(raws) {
        let value = decode(field, raw).map_err(|reason| {
            format!(
                "{} (register {}, {:?}): {reason}",
                field.target,
                field.address.unwrap_or(0),
                field.table
            )
        })?;
        values.push((field, value));
    }
    build_event(&values, captured_at_ms)
}

/// Builds the event from decoded fields; `captured_at_ms` is the time unless a `timestamp` field is mapped.
/// The caller sets `event_id`.
pub(super) fn build_event(
    values: &[(&FieldSpec, Value)],
    captured_at_ms: i64,
) -> Result<InspectionEvent, String> {
    let mut text: BTreeMap<&str, String> = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    let mut score = None;
    let mut timestamp = captured_at_ms;
    let mut event_type = InspectionEventType::InspectionCompleted;
    for (field, value) in values {
        match field.target.as_str() {
            "quality_score" => {
                score = Some(
                    value
                        .as_number()
                        .ok_or_else(|| format!("quality_score: {value:?} is not a number"))?,
                );
            }
            "timestamp" => {
                timestamp = value
                    .as_number()
                    .map(|n| n as i64)
                    .ok_or_else(|| format!("timestamp: {value:?} is not epoch milliseconds"))?;
            }
            "event_type" => {
                let symbol = value.as_text();
                event_type = InspectionEventType::ALL
                    .into_iter()
                    .find(|t| t.symbol() == symbol)
                    .ok_or_else(|| {
                        format!("event_type: `{symbol}` is not an inspection event type")
                    })?;
            }
            target => match target.strip_prefix("metadata.") {
                Some(key) => {
                    metadata.insert(key.to_owned(), value.as_text());
                }
                None => {
                    text.insert(target, value.as_text());
                }
            },
        }
    }
    let mut take = |name: &str| text.remove(name).unwrap_or_default();
    Ok(InspectionEvent {
        event_id: String::new(),
        event_type,
        timestamp,
        inspection_id: take("inspection_id"),
        batch_id: take("batch_id"),
        chip_id: take("chip_id"),
        inspection_type: take("inspection_type"),
        status: take("status"),
        quality_score: score,
        defects: Vec::new(),
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use linegate_station_config::modbus::Table;

    fn spec(value_type: ValueType) -> FieldSpec {
        FieldSpec {
            target: "metadata.x".into(),
            constant: None,
            table: Table::Holding,
            address: Some(10),
            value_type: Some(value_type),
            length: None,
            byte_order: Order::Big,
            word_order: Order::Big,
            scale: None,
            offset: None,
            enum_table: None,
        }
    }

    fn words(w: &[u16]) -> Raw {
        Raw::Words(w.to_vec())
    }

    #[test]
    fn integers_follow_type_and_word_order() {
        assert_eq!(
            decode(&spec(ValueType::U16), &words(&[65535])),
            Ok(Value::Int(65535))
        );
        assert_eq!(
            decode(&spec(ValueType::I16), &words(&[65535])),
            Ok(Value::Int(-1))
        );
        assert_eq!(
            decode(&spec(ValueType::U32), &words(&[0x0001, 0x0002])),
            Ok(Value::Int(0x0001_0002))
        );
        let little = FieldSpec {
            word_order: Order::Little,
            ..spec(ValueType::U32)
        };
        assert_eq!(
            decode(&little, &words(&[0x0001, 0x0002])),
            Ok(Value::Int(0x0002_0001))
        );
        assert_eq!(
            decode(&spec(ValueType::I32), &words(&[0xFFFF, 0xFFFE])),
            Ok(Value::Int(-2))
        );
        assert_eq!(
            decode(&spec(ValueType::U64), &words(&[0, 0, 1, 0])),
            Ok(Value::Int(65536))
        );
    }

    #[test]
    fn floats_and_byte_order() {
        let bits = 0.93f32.to_bits();
        let w = [(bits >> 16) as u16, bits as u16];
        assert_eq!(
            decode(&spec(ValueType::F32), &words(&w)),
            Ok(Value::Number(f64::from(0.93f32)))
        );
        let swapped = FieldSpec {
            byte_order: Order::Little,
            ..spec(ValueType::F32)
        };
        let w_swapped = [w[0].swap_bytes(), w[1].swap_bytes()];
        assert_eq!(
            decode(&swapped, &words(&w_swapped)),
            Ok(Value::Number(f64::from(0.93f32)))
        );
        let d = 0.125f64.to_bits();
        let w4 = [
            (d >> 48) as u16,
            (d >> 32) as u16,
            (d >> 16) as u16,
            d as u16,
        ];
        assert_eq!(
            decode(&spec(ValueType::F64), &words(&w4)),
            Ok(Value::Number(0.125))
        );
    }

    #[test]
    fn strings_scale_and_enums() {
        let text = FieldSpec {
            length: Some(3),
            ..spec(ValueType::String)
        };
        assert_eq!(
            decode(&text, &words(&[0x4142, 0x4300, 0x0000])),
            Ok(Value::Text("ABC".into()))
        );
        let scaled = FieldSpec {
            scale: Some(0.001),
            offset: Some(0.5),
            ..spec(ValueType::U16)
        };
        assert_eq!(decode(&scaled, &words(&[250])), Ok(Value::Number(0.75)));
        let status = FieldSpec {
            enum_table: Some(BTreeMap::from([
                ("0".into(), "PASSED".into()),
                ("1".into(), "FAILED".into()),
            ])),
            ..spec(ValueType::U16)
        };
        assert_eq!(
            decode(&status, &words(&[1])),
            Ok(Value::Text("FAILED".into()))
        );
        assert_eq!(
            decode(&status, &words(&[7])),
            Err("value 7 is not in the enum table".into())
        );
        assert_eq!(
            decode(&spec(ValueType::Bool), &Raw::Bits(vec![true])),
            Ok(Value::Bool(true))
        );
    }
}
