//! The two framings of an Avro record on Kafka, and the rewrite between them. Pure byte work, no I/O.
//!
//! Single-object encoding (Avro spec): `C3 01`, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer
//! schema, the Avro binary body. Confluent wire format: `00`, the 4-byte big-endian schema id the registry
//! issued, the same Avro binary body. Only the header differs, so a record is re-framed without decoding it.

use linegate_schemas::SINGLE_OBJECT_MAGIC;

/// Length of the single-object header (marker and fingerprint).
pub const SINGLE_OBJECT_HEADER: usize = 10;
/// Length of the Confluent header (magic byte and schema id).
pub const CONFLUENT_HEADER: usize = 5;
/// The Confluent wire format's magic byte.
pub const CONFLUENT_MAGIC: u8 = 0;

/// How a record value is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Single-object encoding with this writer fingerprint.
    SingleObject([u8; 8]),
    /// Confluent wire format with this schema id.
    Confluent(u32),
    /// Neither (JSON, a foreign format, or too short).
    Other,
}

/// The framing of `value`. A Confluent record needs at least its header and a body byte is not required
/// (an Avro record of only empty fields is zero bytes long).
pub fn framing(value: &[u8]) -> Framing {
    if value.len() >= SINGLE_OBJECT_HEADER && value[..2] == SINGLE_OBJECT_MAGIC {
        let fingerprint: [u8; 8] = value[2..SINGLE_OBJECT_HEADER].try_into().expect("8 bytes");
        return Framing::SingleObject(fingerprint);
    }
    if value.len() >= CONFLUENT_HEADER && value[0] == CONFLUENT_MAGIC {
        let id = u32::from_be_bytes(value[1..CONFLUENT_HEADER].try_into().expect("4 bytes"));
        return Framing::Confluent(id);
    }
    Framing::Other
}

/// Rewrites a single-object `value` in place into the Confluent wire format with schema `id`. The caller
/// checked the framing with [`framing`]; the body is kept byte for byte.
pub fn to_confluent(value: &mut Vec<u8>, id: u32) {
    debug_assert!(matches!(framing(value), Framing::SingleObject(_)));
    let mut header = [0u8; CONFLUENT_HEADER];
    header[0] = CONFLUENT_MAGIC;
    header[1..].copy_from_slice(&id.to_be_bytes());
    value.splice(..SINGLE_OBJECT_HEADER, header);
}

/// A Confluent-framed `value` as single-object encoding with the writer `fingerprint` its schema id stands
/// for, so the contract's decoder reads it like any other record.
pub fn to_single_object(value: &[u8], fingerprint: &[u8; 8]) -> Vec<u8> {
    let body = &value[CONFLUENT_HEADER..];
    let mut out = Vec::with_capacity(SINGLE_OBJECT_HEADER + body.len());
    out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
    out.extend_from_slice(fingerprint);
    out.extend_from_slice(body);
    out
}

/// The first bytes of `value` in hex, for messages about a record that is not what was expected.
pub fn head_hex(value: &[u8]) -> String {
    if value.is_empty() {
        return "nothing".to_owned();
    }
    value
        .iter()
        .take(4)
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use linegate_schemas::{AuditEvent, AuditOutcome, Contract, MessageKind};

    fn audit() -> AuditEvent {
        AuditEvent {
            event_id: "7f3c2b1a-5d1e-4c8e-9a51-3b1f0c2d4e5f".into(),
            timestamp: 1_768_905_000_000,
            source_service: "linegate-bridge".into(),
            schema_version: linegate_schemas::SCHEMA_VERSION.into(),
            outcome: AuditOutcome::Accepted,
            subject_event_id: None,
            event_type: Some("INSPECTION_COMPLETED".into()),
            station_id: Some("ST-A".into()),
            seq: Some(7),
            reason: None,
            source_topic: "edge.station.events".into(),
            source_partition: 0,
            source_offset: 41,
            payload_sha256: "00".repeat(32),
            outputs: vec!["inspection.lifecycle".into()],
            prev_audit_sha256: None,
            gap_first_seq: None,
            gap_last_seq: None,
        }
    }

    #[test]
    fn the_single_object_header_becomes_magic_zero_and_the_big_endian_id_and_the_body_stays() {
        let single = linegate_schemas::encode(&audit()).unwrap();
        let fingerprint = Contract::global()
            .current(MessageKind::AuditEvent)
            .fingerprint;
        assert_eq!(framing(&single), Framing::SingleObject(fingerprint));
        let mut value = single.clone();
        to_confluent(&mut value, 0x0102_0304);
        assert_eq!(&value[..5], &[0x00, 0x01, 0x02, 0x03, 0x04]);
        assert_eq!(&value[5..], &single[10..], "the Avro body is untouched");
        let mut expected = vec![0, 1, 2, 3, 4];
        expected.extend(linegate_schemas::AvroMessage::to_datum(&audit()).unwrap());
        assert_eq!(value, expected, "what a Confluent serializer would write");
        assert_eq!(framing(&value), Framing::Confluent(0x0102_0304));
        let back = to_single_object(&value, &fingerprint);
        assert_eq!(back, single);
        assert_eq!(
            linegate_schemas::decode::<AuditEvent>(&back).unwrap(),
            audit()
        );
    }

    #[test]
    fn json_short_values_and_foreign_bytes_are_neither_framing() {
        assert_eq!(framing(b"{\"seq\":1}"), Framing::Other);
        assert_eq!(framing(&[0, 0, 0]), Framing::Other);
        assert_eq!(framing(&[0xC3, 0x01, 1, 2]), Framing::Other);
        assert_eq!(framing(&[0, 0, 0, 0, 9]), Framing::Confluent(9));
        assert_eq!(head_hex(&[0xC3, 0x01]), "C3 01");
        assert_eq!(head_hex(&[]), "nothing");
    }
}
