//! What `config show` and `config history` print: one record per line in history, the full record with its
//! config text in show, each with whether its signature verifies with the key the operator names.

use std::io::Write;

use ed25519_dalek::VerifyingKey;
use linegate_station_config::signed::{self, SignedConfig};
use sha2::{Digest, Sha256};

use super::PushedRecord;

/// The signature verdict of `envelope`: `verified` only when checked against `trusted`.
pub fn verdict(envelope: &SignedConfig, trusted: Option<&VerifyingKey>) -> String {
    match (trusted, envelope.signature.as_deref()) {
        (_, None | Some("")) => "UNSIGNED".to_owned(),
        (Some(key), Some(_)) => match envelope.verify(key) {
            Ok(()) => format!("verified with {}", signed::fingerprint(key)),
            Err(error) => format!("NOT VERIFIED: {error}"),
        },
        (None, Some(_)) => "signed, not checked (pass --public-key to check)".to_owned(),
    }
}

/// RFC 3339 UTC time of epoch milliseconds (the number itself if out of range).
pub fn time_of(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// One line per record: position, version, issue time, key, verdict, size and hash of the config.
pub fn history(
    out: &mut impl Write,
    topic: &str,
    records: &[PushedRecord],
    trusted: Option<&VerifyingKey>,
) -> std::io::Result<()> {
    for record in records {
        let at = format!("{topic}/{}/{}", record.partition, record.offset);
        match &record.envelope {
            Ok(envelope) => writeln!(
                out,
                "{at}  version {}  issued {}  key {}  {}  config {} bytes sha256:{}",
                envelope.version,
                time_of(envelope.issued_at_ms),
                if envelope.key_id.is_empty() {
                    "(none)"
                } else {
                    &envelope.key_id
                },
                verdict(envelope, trusted),
                envelope.config.len(),
                &hex::encode(Sha256::digest(envelope.config.as_bytes()))[..16],
            )?,
            Err(reason) => writeln!(out, "{at}  {reason}")?,
        }
    }
    Ok(())
}

/// The latest record in full, config text included.
pub fn show(
    out: &mut impl Write,
    topic: &str,
    station: &str,
    latest: &PushedRecord,
    trusted: Option<&VerifyingKey>,
) -> std::io::Result<()> {
    let at = format!("{topic}/{}/{}", latest.partition, latest.offset);
    let envelope = match &latest.envelope {
        Ok(envelope) => envelope,
        Err(reason) => {
            return writeln!(out, "station {station}: latest record {at}: {reason}");
        }
    };
    writeln!(out, "station {station}: version {}", envelope.version)?;
    writeln!(out, "  issued    {}", time_of(envelope.issued_at_ms))?;
    writeln!(out, "  key       {}", envelope.key_id)?;
    writeln!(out, "  signature {}", verdict(envelope, trusted))?;
    writeln!(out, "  record    {at}")?;
    let refused = envelope.signature.as_deref().unwrap_or("").is_empty()
        || trusted.is_some_and(|key| envelope.verify(key).is_err());
    if refused {
        writeln!(
            out,
            "  an edge trusting this key refuses this record and keeps the config it applied last \
             (its CONFIG_REJECTED is on audit.events); push a good config to replace it"
        )?;
    }
    writeln!(out, "--- config ---")?;
    write!(out, "{}", envelope.config)?;
    if !envelope.config.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn the_verdict_says_whether_it_was_checked_and_how_it_went() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let signed = SignedConfig::sign("ST-01", 1, 0, "x", &key);
        let public = key.verifying_key();
        assert!(verdict(&signed, Some(&public)).starts_with("verified with ed25519:"));
        assert!(verdict(&signed, None).starts_with("signed, not checked"));
        let other = SigningKey::from_bytes(&[4; 32]).verifying_key();
        assert!(verdict(&signed, Some(&other)).starts_with("NOT VERIFIED: signed by key"));
        let unsigned = SignedConfig::unsigned("ST-01", 1, 0, "x");
        assert_eq!(verdict(&unsigned, Some(&public)), "UNSIGNED");
    }

    #[test]
    fn show_prints_the_text_and_warns_about_a_record_an_edge_refuses() {
        let record = PushedRecord {
            partition: 0,
            offset: 7,
            envelope: Ok(SignedConfig::unsigned(
                "ST-01",
                2,
                1_768_905_000_250,
                "[mqtt]\n",
            )),
        };
        let mut out = Vec::new();
        show(&mut out, "t", "ST-01", &record, None).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("station ST-01: version 2\n  issued    2026-01-20T10:30:00.25Z"),
            "{text}"
        );
        assert!(
            text.contains("an edge trusting this key refuses this record"),
            "{text}"
        );
        assert!(text.ends_with("--- config ---\n[mqtt]\n"), "{text}");
    }
}
