//! Bounds on what an input can make the bridge write: no input, however large or strange, may produce a
//! dead letter or an audit record that Kafka refuses, since a record the producer refuses is retried and
//! would stop the group on that input for good.

use sha2::{Digest, Sha256};

use super::Output;

/// Largest input taken (bytes of the record value); a larger one is rejected, so that no output re-encoding
/// it can exceed the producer's `message.max.bytes` (1,000,000).
pub const INPUT_MAX: usize = 900_000;
/// Longest rejection reason kept, in the audit record and the `error.message` header.
pub(super) const REASON_MAX: usize = 1024;
/// Longest value of a header or a string field copied from the input.
pub(super) const FIELD_MAX: usize = 256;
/// Largest dead letter (key, value and headers); above it the value is left out, the input stays on its
/// topic at `source.topic` / `source.partition` / `source.offset`.
const DEAD_LETTER_MAX: usize = 900_000;
/// Longest dead-letter key kept; a longer one is replaced by its SHA-256.
const KEY_MAX: usize = 1024;

/// `text` cut to at most `max` bytes at a character boundary, saying so.
pub(super) fn text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let marker = format!("... ({} bytes, cut)", text.len());
    let mut end = max.saturating_sub(marker.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", &text[..end])
}

/// Makes `letter` fit: header values and the key cut, the value left out if the whole would not fit.
pub(super) fn dead_letter(letter: &mut Output) {
    for (_, value) in &mut letter.headers {
        if value.len() > REASON_MAX {
            *value = text(&String::from_utf8_lossy(value), REASON_MAX).into_bytes();
        }
    }
    if let Some(key) = letter.key.as_mut().filter(|key| key.len() > KEY_MAX) {
        let original = key.len();
        *key = hex::encode(Sha256::digest(&*key)).into_bytes();
        letter.headers.push((
            "key.omitted.bytes".into(),
            original.to_string().into_bytes(),
        ));
    }
    let headers: usize = letter.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    let size = letter.value.len() + headers + letter.key.as_ref().map_or(0, Vec::len);
    if size > DEAD_LETTER_MAX {
        let value = std::mem::take(&mut letter.value);
        letter.headers.push((
            "value.omitted.bytes".into(),
            value.len().to_string().into_bytes(),
        ));
        letter.headers.push((
            "value.sha256".into(),
            hex::encode(Sha256::digest(&value)).into_bytes(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_a_character_boundary_and_says_so() {
        assert_eq!(text("short", 10), "short");
        let long = "é".repeat(600);
        let cut = text(&long, 100);
        assert!(cut.len() <= 100, "{}", cut.len());
        assert!(cut.ends_with("... (1200 bytes, cut)"), "{cut}");
    }

    #[test]
    fn a_dead_letter_too_large_for_kafka_keeps_its_headers_and_names_what_it_left_out() {
        let mut letter = Output {
            topic: "dlq".into(),
            key: Some(vec![b'k'; 5000]),
            value: vec![7; 1_000_000],
            headers: vec![("error.message".into(), vec![b'x'; 600_000])],
        };
        dead_letter(&mut letter);
        assert!(letter.value.is_empty());
        assert_eq!(letter.key.as_ref().map(Vec::len), Some(64));
        assert!(letter.headers[0].1.len() <= REASON_MAX);
        let header = |name: &str| {
            letter
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        };
        assert_eq!(header("value.omitted.bytes").as_deref(), Some("1000000"));
        assert_eq!(header("key.omitted.bytes").as_deref(), Some("5000"));
        assert_eq!(header("value.sha256").map(|h| h.len()), Some(64));

        let mut small = Output {
            topic: "dlq".into(),
            key: Some(b"ST-01".to_vec()),
            value: vec![1, 2, 3],
            headers: vec![("error.message".into(), b"bad".to_vec())],
        };
        dead_letter(&mut small);
        assert_eq!(small.value, vec![1, 2, 3]);
        assert_eq!(small.headers.len(), 1);
    }
}
