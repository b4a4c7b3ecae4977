//! A walk over an Avro body that checks every length from the wire before anything is allocated.
//!
//! apache-avro reserves room for a block's item count and a string's length as read (up to 512 MiB of
//! items), so a few crafted bytes can make a reader allocate gigabytes and abort. Every linegate input comes
//! from outside the process (the ingest topic, an outbox row, a redriven dead letter), so each body is walked
//! first against its writer schema: a block count, string or bytes length larger than the bytes left is an
//! error, which the reader then reports like any other undecodable record.

use apache_avro::schema::{Name, Namespace};
use apache_avro::Schema;

/// Why a body cannot be what its schema says; names the first impossible length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LengthError(String);

/// Checks that every length in `body` fits in the bytes that follow it, for a body written with `schema`.
pub fn check(schema: &Schema, body: &[u8]) -> Result<(), LengthError> {
    let mut walk = Walk {
        root: schema,
        rest: body,
    };
    walk.value(schema, &None)
}

struct Walk<'s, 'b> {
    /// Where a named type that a `Ref` points to is defined.
    root: &'s Schema,
    rest: &'b [u8],
}

impl<'s> Walk<'s, '_> {
    fn value(&mut self, schema: &Schema, namespace: &Namespace) -> Result<(), LengthError> {
        match schema {
            Schema::Null => Ok(()),
            Schema::Boolean => self.skip(1, "a boolean"),
            Schema::Int
            | Schema::Long
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => self.varint().map(drop),
            Schema::Float => self.skip(4, "a float"),
            Schema::Double => self.skip(8, "a double"),
            Schema::Bytes | Schema::String | Schema::Uuid | Schema::BigDecimal => {
                let len = self.length("a string or bytes length")?;
                self.skip(len, "a string or bytes value")
            }
            Schema::Fixed(fixed) => self.skip(fixed.size, "a fixed value"),
            Schema::Duration => self.skip(12, "a duration"),
            Schema::Decimal(decimal) => self.value(&decimal.inner, namespace),
            Schema::Enum(_) => self.varint().map(drop),
            Schema::Union(union) => {
                let branch = self.varint()?;
                let variant = usize::try_from(branch)
                    .ok()
                    .and_then(|b| union.variants().get(b))
                    .ok_or_else(|| LengthError(format!("union branch {branch} does not exist")))?;
                self.value(variant, namespace)
            }
            Schema::Record(record) => {
                let inner = record.name.namespace.clone().or_else(|| namespace.clone());
                for field in &record.fields {
                    self.value(&field.schema, &inner)?;
                }
                Ok(())
            }
            Schema::Array(array) => self.blocks(namespace, |walk, ns| walk.value(&array.items, ns)),
            Schema::Map(map) => self.blocks(namespace, |walk, ns| {
                let len = walk.length("a map key length")?;
                walk.skip(len, "a map key")?;
                walk.value(&map.types, ns)
            }),
            Schema::Ref { name } => {
                let schema = self.lookup(name, namespace)?;
                self.value(schema, namespace)
            }
        }
    }

    /// The definition of a referenced type: looked up in the schema when met (references are rare, and
    /// resolving every name of every schema per record would cost more than the walk).
    fn lookup(&self, name: &Name, namespace: &Namespace) -> Result<&'s Schema, LengthError> {
        let full = name.fully_qualified_name(namespace);
        find_named(self.root, &full, &None)
            .ok_or_else(|| LengthError(format!("the writer schema names no type {full}")))
    }

    /// An array's or a map's blocks: each count must not exceed the bytes left (every item of the
    /// contract's arrays and maps takes at least one byte).
    fn blocks(
        &mut self,
        namespace: &Namespace,
        mut item: impl FnMut(&mut Self, &Namespace) -> Result<(), LengthError>,
    ) -> Result<(), LengthError> {
        loop {
            let count = self.varint()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                // A negative count is followed by the block's size in bytes.
                let size = self.length("a block size")?;
                if size > self.rest.len() {
                    return Err(LengthError(format!(
                        "a block of {size} bytes with {} bytes left",
                        self.rest.len()
                    )));
                }
            }
            let count = count.unsigned_abs();
            if count > self.rest.len() as u64 {
                return Err(LengthError(format!(
                    "a block of {count} items with {} bytes left",
                    self.rest.len()
                )));
            }
            for _ in 0..count {
                item(self, namespace)?;
            }
        }
    }

    /// A non-negative length that fits in the bytes left.
    fn length(&mut self, what: &str) -> Result<usize, LengthError> {
        let len = self.varint()?;
        usize::try_from(len)
            .ok()
            .filter(|len| *len <= self.rest.len())
            .ok_or_else(|| {
                LengthError(format!(
                    "{what} of {len} with {} bytes left",
                    self.rest.len()
                ))
            })
    }

    fn skip(&mut self, len: usize, what: &str) -> Result<(), LengthError> {
        if len > self.rest.len() {
            return Err(LengthError(format!(
                "{what} of {len} bytes with {} bytes left",
                self.rest.len()
            )));
        }
        self.rest = &self.rest[len..];
        Ok(())
    }

    /// A zig-zag varint (int or long).
    fn varint(&mut self) -> Result<i64, LengthError> {
        let mut value: u64 = 0;
        for (i, byte) in self.rest.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(LengthError("a truncated or overlong varint".to_owned()))
    }
}

/// The record, enum or fixed named `full` within `schema`.
fn find_named<'s>(schema: &'s Schema, full: &Name, namespace: &Namespace) -> Option<&'s Schema> {
    let named = |name: &Name| &name.fully_qualified_name(namespace) == full;
    match schema {
        Schema::Record(record) => {
            if named(&record.name) {
                return Some(schema);
            }
            let inner = record.name.namespace.clone().or_else(|| namespace.clone());
            record
                .fields
                .iter()
                .find_map(|field| find_named(&field.schema, full, &inner))
        }
        Schema::Enum(e) if named(&e.name) => Some(schema),
        Schema::Fixed(f) if named(&f.name) => Some(schema),
        Schema::Array(array) => find_named(&array.items, full, namespace),
        Schema::Map(map) => find_named(&map.types, full, namespace),
        Schema::Union(union) => union
            .variants()
            .iter()
            .find_map(|variant| find_named(variant, full, namespace)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(json: &str) -> Schema {
        Schema::parse_str(json).unwrap()
    }

    fn zigzag(n: i64) -> Vec<u8> {
        let mut v = ((n << 1) ^ (n >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            if v < 0x80 {
                out.push(v as u8);
                return out;
            }
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
    }

    #[test]
    fn an_item_count_beyond_the_bytes_left_is_refused_before_any_allocation() {
        let strings = schema(r#"{"type":"array","items":"string"}"#);
        let mut body = zigzag(1 << 29);
        body.extend([2, b'a', 0]);
        let error = check(&strings, &body).unwrap_err();
        assert!(error.0.contains("block of 536870912 items"), "{error}");
        let mut good = zigzag(2);
        good.extend([2, b'a', 2, b'b', 0]);
        check(&strings, &good).unwrap();
    }

    #[test]
    fn a_string_longer_than_the_bytes_left_is_refused() {
        let record = schema(
            r#"{"type":"record","name":"R","fields":[{"name":"s","type":"string"},{"name":"m","type":{"type":"map","values":"long"}}]}"#,
        );
        let mut body = zigzag(1_000_000);
        body.extend(b"abc");
        assert!(check(&record, &body).unwrap_err().0.contains("string"));
        let mut good = zigzag(3);
        good.extend(b"abc");
        good.extend(zigzag(1));
        good.extend(zigzag(1));
        good.push(b'k');
        good.extend(zigzag(-5));
        good.push(0);
        check(&record, &good).unwrap();
        let mut bad_map = zigzag(0);
        bad_map.extend(zigzag(-3));
        bad_map.extend(zigzag(1 << 40));
        assert!(check(&record, &bad_map)
            .unwrap_err()
            .0
            .contains("block size"));
    }

    #[test]
    fn a_reference_is_followed_to_its_definition() {
        let record = schema(
            r#"{"type":"record","name":"R","namespace":"n","fields":[
                {"name":"a","type":{"type":"record","name":"D","fields":[{"name":"s","type":"string"}]}},
                {"name":"b","type":{"type":"array","items":"D"}}]}"#,
        );
        let mut good = zigzag(1);
        good.push(b'x');
        good.extend(zigzag(1));
        good.extend(zigzag(1));
        good.push(b'y');
        good.push(0);
        check(&record, &good).unwrap();
        let mut bad = zigzag(1);
        bad.push(b'x');
        bad.extend(zigzag(1));
        bad.extend(zigzag(99));
        assert!(check(&record, &bad).unwrap_err().0.contains("string"));
    }

    #[test]
    fn a_union_branch_that_does_not_exist_is_refused() {
        let union = schema(r#"["null","string"]"#);
        assert!(check(&union, &zigzag(7)).is_err());
        check(&union, &zigzag(0)).unwrap();
    }
}
