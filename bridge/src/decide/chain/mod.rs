//! The audit hash chain: every audit record names the chain hash of the previous audit record of its chain,
//! so a removed, altered or reordered record breaks a link that `linegate-bridge audit verify` finds.
//!
//! A chain is one station (`station_id`), or, for inputs that could not be decoded, one input partition
//! (`@<topic>/<partition>`). A station's inputs all sit in one input partition in seq order, so its audit
//! records sort by input offset. The chain hash covers the fields that say what happened (not the Avro
//! bytes, so a later schema version or another wire format leaves old hashes valid).
//!
//! At-least-once: a round handled again (after a failed delivery or a killed instance) writes its audit
//! records again with the same `event_id`s but new timestamps, hence new chain hashes: a fork from the same
//! predecessor, which the verifier accepts, while a link that skips records of the chain or names a record
//! that is not there is a break ([`verify_chain`]).

use std::collections::{BTreeMap, HashMap, HashSet};

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

/// Lower-case hex SHA-256 of the fields of `audit` that the chain protects, including its link. Each field
/// is hashed as its length (u64, little endian) and its UTF-8 text, so that no two different field lists
/// hash the same bytes; absent optional fields are empty texts, numbers their decimal text.
pub fn record_hash(audit: &AuditEvent) -> String {
    let mut fields = Fields(Sha256::new());
    fields.text(HASH_TAG);
    fields.text(&audit.event_id);
    fields.number(Some(audit.timestamp));
    fields.text(outcome_name(audit.outcome));
    fields.optional(&audit.subject_event_id);
    fields.optional(&audit.event_type);
    fields.optional(&audit.station_id);
    fields.number(audit.seq);
    fields.optional(&audit.reason);
    fields.text(&audit.source_topic);
    fields.number(Some(audit.source_partition.into()));
    fields.number(Some(audit.source_offset));
    fields.text(&audit.payload_sha256);
    fields.joined(&audit.outputs, ",");
    fields.number(audit.gap_first_seq);
    fields.number(audit.gap_last_seq);
    fields.optional(&audit.prev_audit_sha256);
    hex::encode(fields.0.finalize())
}

/// The length-prefixed field encoding of [`record_hash`], fed straight into the hasher (one audit record
/// per input: no field is copied for it).
struct Fields(Sha256);

impl Fields {
    fn text(&mut self, field: &str) {
        self.0.update((field.len() as u64).to_le_bytes());
        self.0.update(field.as_bytes());
    }

    fn number(&mut self, field: Option<i64>) {
        match field {
            Some(n) => self.text(itoa::Buffer::new().format(n)),
            None => self.text(""),
        }
    }

    /// An optional text, absent as the empty one.
    fn optional(&mut self, field: &Option<String>) {
        self.text(field.as_deref().unwrap_or_default());
    }

    /// `parts` joined by `separator`, as one field.
    fn joined(&mut self, parts: &[String], separator: &str) {
        let separators = parts.len().saturating_sub(1) * separator.len();
        let len: usize = parts.iter().map(String::len).sum::<usize>() + separators;
        self.0.update((len as u64).to_le_bytes());
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                self.0.update(separator.as_bytes());
            }
            self.0.update(part.as_bytes());
        }
    }
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

/// What is wrong with a broken link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The previous hash it names is no record of the chain: a record was removed or altered.
    Missing,
    /// It links past the records of the chain at the input offsets in between (first one given): a
    /// record was handled twice with different chain states, so that history forked.
    Skips {
        /// The first input offset skipped.
        source_offset: i64,
    },
    /// It has no link although records before it have one.
    Unlinked,
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
    /// What is wrong.
    pub fault: Fault,
    /// The previous hash the chain expected (the hash of the record found just before it in input order,
    /// several when that input was handled more than once), or `none`.
    pub expected: String,
    /// The previous hash the record names, or `none`.
    pub found: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fault = match self.fault {
            Fault::Missing => "names a previous record that is not in the topic".to_owned(),
            Fault::Skips { source_offset } => {
                format!("links past the record of input offset {source_offset}")
            }
            Fault::Unlinked => "has no link after linked records".to_owned(),
        };
        write!(
            f,
            "chain {} broken at audit partition {} offset {} (input offset {}, seq {}): it {fault}; expected previous hash {}, found {}",
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
    /// At-least-once repeats: further audit records of an input position already audited.
    pub repeats: usize,
    /// The first break of each broken chain, in chain order.
    pub breaks: Vec<Break>,
}

/// Checks every chain of `records` (any order); see [`verify_chain`] for the rules.
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
        records.sort_by_key(|r| (position(&r.audit), r.partition, r.offset));
        if let Some(broken) = verify_chain(&chain, &records, &mut report) {
            report.breaks.push(broken);
        }
    }
    report
}

/// Where a record sits in its chain's input order: its input offset, and at one offset a GAP record
/// comes before the record's own audit record.
type Position = (i64, bool);

fn position(audit: &AuditEvent) -> Position {
    (audit.source_offset, audit.outcome != AuditOutcome::Gap)
}

/// How one record's link stands, before the excuses of [`verify_chain`].
enum Link {
    /// It names a record of the chain that may precede it.
    Sound,
    /// No link.
    None,
    Missing,
    Skips(Position),
}

/// One chain, sorted by [`position`]. Every link must name a record of the chain, and one that may come
/// just before it: at the preceding position of the chain, or at the same or a later one (the input was
/// read again after its state had advanced, e.g. audited DUPLICATE after a lost commit). At-least-once
/// handling forks a chain legitimately: a round written again by an input's next owner links from the same
/// predecessor as the first copy, and the records a killed instance got out of an unacknowledged round may
/// name predecessors that never arrived. So a missing link is accepted at the chain's first position
/// (older records may have expired) and where another audit record of the same input is soundly linked;
/// nothing else is. A record without a link is accepted only before the first linked one.
fn verify_chain(chain: &str, records: &[Located], report: &mut Report) -> Option<Break> {
    let hashes: Vec<String> = records.iter().map(|r| record_hash(&r.audit)).collect();
    let ranks = Ranks::of(records);
    let links = links(records, &hashes, &ranks);
    let soundly_linked: HashSet<&str> = records
        .iter()
        .zip(&links)
        .filter(|(_, link)| matches!(link, Link::Sound))
        .map(|(r, _)| r.audit.event_id.as_str())
        .collect();
    let mut seen_ids = HashSet::new();
    let mut linked_seen = false;
    for (i, (record, link)) in records.iter().zip(&links).enumerate() {
        let audit = &record.audit;
        if !seen_ids.insert(audit.event_id.as_str()) {
            report.repeats += 1;
        }
        let fault = match link {
            Link::Sound => None,
            Link::None if !linked_seen => None,
            Link::None => Some(Fault::Unlinked),
            Link::Missing if position(audit) == ranks.positions[0] => None,
            Link::Missing if soundly_linked.contains(audit.event_id.as_str()) => None,
            Link::Missing => Some(Fault::Missing),
            Link::Skips((source_offset, _)) => Some(Fault::Skips {
                source_offset: *source_offset,
            }),
        };
        match link {
            Link::None => report.unlinked += 1,
            _ => linked_seen = true,
        }
        if let Some(fault) = fault {
            return Some(broken_at(chain, records, &hashes, &ranks, (i, fault)));
        }
    }
    None
}

/// The distinct positions of one sorted chain, so that a record's rank is the index of its position.
struct Ranks {
    positions: Vec<Position>,
}

impl Ranks {
    fn of(records: &[Located]) -> Self {
        let mut positions: Vec<Position> = records.iter().map(|r| position(&r.audit)).collect();
        positions.dedup();
        Self { positions }
    }

    fn rank(&self, p: Position) -> usize {
        self.positions
            .binary_search(&p)
            .expect("every position is listed")
    }
}

/// What each record's `prev_audit_sha256` names: a record that may precede it, one that leaves positions
/// out, no record of the chain, or nothing.
fn links(records: &[Located], hashes: &[String], ranks: &Ranks) -> Vec<Link> {
    let at: HashMap<&str, Position> = hashes
        .iter()
        .zip(records)
        .map(|(hash, r)| (hash.as_str(), position(&r.audit)))
        .collect();
    records
        .iter()
        .map(|record| {
            let Some(prev) = &record.audit.prev_audit_sha256 else {
                return Link::None;
            };
            let (own, Some(&before)) = (ranks.rank(position(&record.audit)), at.get(prev.as_str()))
            else {
                return Link::Missing;
            };
            match ranks.rank(before) {
                linked if linked + 1 < own => Link::Skips(ranks.positions[linked + 1]),
                _ => Link::Sound,
            }
        })
        .collect()
}

/// The break at record `i`: where it is, and the hashes its link should have named (those of the records
/// at the position before its own).
fn broken_at(
    chain: &str,
    records: &[Located],
    hashes: &[String],
    ranks: &Ranks,
    (i, fault): (usize, Fault),
) -> Break {
    let record = &records[i];
    let audit = &record.audit;
    let own = ranks.rank(position(audit));
    let mut expected: Vec<&String> = (0..i)
        .filter(|&j| own > 0 && ranks.rank(position(&records[j].audit)) == own - 1)
        .map(|j| &hashes[j])
        .collect();
    expected.sort();
    Break {
        chain: chain.to_owned(),
        partition: record.partition,
        offset: record.offset,
        source_offset: audit.source_offset,
        seq: audit.seq,
        fault,
        expected: match expected.is_empty() {
            true => "none".to_owned(),
            false => expected
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(" or "),
        },
        found: audit
            .prev_audit_sha256
            .clone()
            .unwrap_or_else(|| "none".to_owned()),
    }
}

#[cfg(test)]
mod tests;
