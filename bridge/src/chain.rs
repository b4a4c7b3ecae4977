//! The audit hash chain: every audit record names the chain hash of the previous audit record of its chain,
//! so a removed, altered or reordered record breaks a link that `linegate-bridge audit verify` finds.
//!
//! A chain is one station (`station_id`), or, for inputs that could not be decoded, one input partition
//! (`@<topic>/<partition>`). A station's inputs all sit in one input partition in seq order, so its audit
//! records sort by input offset. The chain hash covers the fields that say what happened (not the Avro
//! bytes, so a later schema version or another wire format leaves old hashes valid).
//!
//! At-least-once: a round repeated after a failed delivery writes its audit records again with the same
//! `event_id` and the same previous hash but a new timestamp, hence a new chain hash. The verifier accepts
//! such a repeat (same event id, same link) and lets the next record link to either copy.

use std::collections::{BTreeMap, HashSet};

use linegate_schemas::{AuditEvent, AuditOutcome};
use sha2::{Digest, Sha256};

/// Version tag hashed first, so that a future change of the hashed fields is recognisable.
const HASH_TAG: &str = "linegate-audit-chain-v1";

/// The chain an audit record belongs to: its station, or its input partition when the input had none.
pub fn chain_key(station_id: Option<&str>, source_topic: &str, source_partition: i32) -> String {
    match station_id {
        Some(station) => station.to_owned(),
        None => format!("@{source_topic}/{source_partition}"),
    }
}

/// Lower-case hex SHA-256 of the fields of `audit` that the chain protects, including its link.
pub fn record_hash(audit: &AuditEvent) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let fields = [
        HASH_TAG.to_owned(),
        audit.event_id.clone(),
        audit.timestamp.to_string(),
        outcome_name(audit.outcome).to_owned(),
        opt(&audit.subject_event_id),
        opt(&audit.event_type),
        opt(&audit.station_id),
        num(audit.seq),
        opt(&audit.reason),
        audit.source_topic.clone(),
        audit.source_partition.to_string(),
        audit.source_offset.to_string(),
        audit.payload_sha256.clone(),
        audit.outputs.join(","),
        num(audit.gap_first_seq),
        num(audit.gap_last_seq),
        opt(&audit.prev_audit_sha256),
    ];
    let mut hasher = Sha256::new();
    for field in fields {
        // Length-prefixed, so that no two different field lists hash the same bytes.
        hasher.update((field.len() as u64).to_le_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn outcome_name(outcome: AuditOutcome) -> &'static str {
    match outcome {
        AuditOutcome::Accepted => "ACCEPTED",
        AuditOutcome::Rejected => "REJECTED",
        AuditOutcome::Duplicate => "DUPLICATE",
        AuditOutcome::Gap => "GAP",
    }
}

/// An audit record as read back, with where it sits in the audit topic.
#[derive(Debug, Clone)]
pub struct Located {
    /// Audit topic partition.
    pub partition: i32,
    /// Audit topic offset.
    pub offset: i64,
    /// The decoded record.
    pub audit: AuditEvent,
}

/// The first broken link of a chain: enough to find the record and see what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The chain (station id, or `@topic/partition`).
    pub chain: String,
    /// Audit topic partition of the record whose link is broken.
    pub partition: i32,
    /// Its audit topic offset.
    pub offset: i64,
    /// Its input offset and seq, to place it in the station's history.
    pub source_offset: i64,
    /// Its seq, when it had one.
    pub seq: Option<i64>,
    /// The previous hash the chain expected (the hash of the preceding record found), or `none`.
    pub expected: String,
    /// The previous hash the record names, or `none`.
    pub found: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "chain {} broken at audit partition {} offset {} (input offset {}, seq {}): expected previous hash {}, found {}",
            self.chain,
            self.partition,
            self.offset,
            self.source_offset,
            self.seq.map_or("-".to_owned(), |s| s.to_string()),
            self.expected,
            self.found
        )
    }
}

/// What a verification found.
#[derive(Debug, Default)]
pub struct Report {
    /// Chains checked.
    pub chains: usize,
    /// Records checked.
    pub records: usize,
    /// Records without a link (a chain's first record, or written by a v1 bridge before the chain began).
    pub unlinked: usize,
    /// At-least-once repeats of a record (same event id and link), accepted.
    pub repeats: usize,
    /// The first break of each broken chain, in chain order.
    pub breaks: Vec<Break>,
}

/// Checks every chain of `records` (any order). A chain's first record may name a predecessor that is no
/// longer in the topic (retention); every later record must name the chain hash of the one before it.
pub fn verify(records: Vec<Located>) -> Report {
    let mut report = Report::default();
    let mut chains: BTreeMap<String, Vec<Located>> = BTreeMap::new();
    for record in records {
        let a = &record.audit;
        let key = chain_key(a.station_id.as_deref(), &a.source_topic, a.source_partition);
        chains.entry(key).or_default().push(record);
    }
    for (chain, mut records) in chains {
        report.chains += 1;
        report.records += records.len();
        // Input order; at one input offset a GAP record comes before the record's own audit record.
        records.sort_by_key(|r| {
            let gap_last = r.audit.outcome != AuditOutcome::Gap;
            (r.audit.source_offset, gap_last, r.partition, r.offset)
        });
        if let Some(broken) = verify_chain(&chain, &records, &mut report) {
            report.breaks.push(broken);
        }
    }
    report
}

fn verify_chain(chain: &str, records: &[Located], report: &mut Report) -> Option<Break> {
    // Hashes the next record may link to, and the link of the group of copies being read.
    let mut heads: Option<HashSet<String>> = None;
    // Until a record with a link is seen, records without one (v1, or the chain's start) are accepted.
    let mut linked_seen = false;
    let mut group: Option<(String, Option<String>, HashSet<String>)> = None;
    for record in records {
        let audit = &record.audit;
        let hash = record_hash(audit);
        if let Some((event_id, link, hashes)) = &mut group {
            if *event_id == audit.event_id && *link == audit.prev_audit_sha256 {
                report.repeats += 1;
                hashes.insert(hash);
                continue;
            }
        }
        if let Some((_, _, hashes)) = group.take() {
            heads = Some(hashes);
        }
        let linked = match (&heads, &audit.prev_audit_sha256) {
            // The first record of a chain: any link (older records may have expired).
            (None, _) => true,
            (Some(heads), Some(prev)) => heads.contains(prev),
            (Some(_), None) => !linked_seen,
        };
        if !linked {
            let mut expected: Vec<&String> = heads.iter().flatten().collect();
            expected.sort();
            return Some(Break {
                chain: chain.to_owned(),
                partition: record.partition,
                offset: record.offset,
                source_offset: audit.source_offset,
                seq: audit.seq,
                expected: expected
                    .into_iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" or "),
                found: audit
                    .prev_audit_sha256
                    .clone()
                    .unwrap_or_else(|| "none".to_owned()),
            });
        }
        match audit.prev_audit_sha256 {
            Some(_) => linked_seen = true,
            None => report.unlinked += 1,
        }
        group = Some((
            audit.event_id.clone(),
            audit.prev_audit_sha256.clone(),
            HashSet::from([hash]),
        ));
    }
    None
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
