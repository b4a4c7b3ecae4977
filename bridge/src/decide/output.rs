//! A record to produce, as every decision returns it, and the namespace of the ids derived for them.

use std::borrow::Cow;

/// Namespace of linegate's derived ids (UUID v5). Fixed forever: changing it would change every derived
/// id, and a re-sent output would no longer match the first one.
pub const ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6c69_6e65_6761_7465_8000_0000_0000_0001);

/// A record to produce, as plain data so that tests can inspect it.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Destination topic.
    pub topic: String,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value.
    pub value: Vec<u8>,
    /// Record headers, in order. Names are mostly fixed words: borrowed, not allocated per record.
    pub headers: Vec<(Cow<'static, str>, Vec<u8>)>,
}

impl Output {
    /// The value of header `name`, as text; for tests and logs.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }
}
