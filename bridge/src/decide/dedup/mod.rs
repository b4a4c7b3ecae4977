//! Dedup of what edges send twice, gap reports, and the chain heads: the per-chain ledger, with no I/O.
//!
//! An edge numbers each station's events 1, 2, 3... without gaps within one outbox file (its epoch) and sends
//! them in order; one that crashed between Kafka's acknowledgement and its own bookkeeping sends the last ones
//! again with the same seq. Per station the ledger keeps the epoch, the high-water seq and the seqs reported
//! missing: a seq at or under the high-water mark is a resend (DUPLICATE, nothing but an audit record is
//! written) unless it fills a reported gap (then it is handled, late); a seq more than one above it means
//! events never arrived (GAP, reported, the event itself still handled). A new epoch (a re-imaged station PC,
//! a deleted outbox) starts a new sequence; an event of an epoch the station replaced is stale and goes to the
//! dead letters. The window bounds how long a high-water mark is trusted without an epoch (edges of earlier
//! builds): a station silent for longer starts afresh.
//!
//! The ledger also remembers, per chain, the input position last handled and the chain hash of the last audit
//! record. It is written to the compacted state topic with the round's outputs, before the offsets are
//! committed (in exactly-once mode: in the same transaction), and re-read on every partition assignment, so
//! it survives restarts and rebalances. An input at or before the position the ledger already holds is the
//! repeat of a round whose outputs and state were written but whose offsets were not committed: it is skipped
//! (its outputs exist), counted and logged.

use std::collections::{BTreeSet, HashMap};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

mod chain_state;

use chain_state::in_missing;
pub use chain_state::{ChainState, Numbered, MISSING_MAX, RETIRED_MAX};

use crate::decide::route::Output;
use crate::decide::window::StationSnapshot;

/// What to do with one input, by its (chain, seq) and position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Fresh,
    /// Its round was already written (state and outputs), only the offset commit was lost: skip it.
    Replay,
    /// An edge resent it: seq at or under `last`, the station's high-water seq. Audit only.
    Duplicate {
        /// The station's high-water seq.
        last: i64,
    },
    /// Seqs `first..=last` never arrived; report, then handle it.
    Gap {
        /// First missing seq.
        first: i64,
        /// Last missing seq.
        last: i64,
    },
    /// From an outbox epoch the station has replaced: not handled as a result, set aside as a dead letter.
    Stale,
}

/// Counters of the dedup decisions.
#[derive(Debug, Clone, Default)]
pub struct DedupMetrics {
    /// Inputs recognised as an edge's resend.
    pub duplicates: Counter,
    /// Gaps reported.
    pub gaps: Counter,
    /// Seqs missing in the reported gaps.
    pub missing_seqs: Counter,
    /// Inputs skipped as repeats of an already written round.
    pub replays: Counter,
    /// Inputs from an outbox epoch the station replaced.
    pub stale: Counter,
    /// Late inputs that filled a reported gap.
    pub filled: Counter,
}

impl DedupMetrics {
    /// Registers the counters under `linegate_bridge_dedup_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let sub = registry.sub_registry_with_prefix("linegate_bridge_dedup");
        sub.register(
            "duplicates",
            "Inputs recognised as an edge's resend of a handled (station, seq)",
            metrics.duplicates.clone(),
        );
        sub.register(
            "gaps",
            "Gaps reported in a station's seq",
            metrics.gaps.clone(),
        );
        sub.register(
            "missing_seqs",
            "Sequence numbers missing in reported gaps",
            metrics.missing_seqs.clone(),
        );
        sub.register(
            "stale",
            "Inputs from an outbox epoch their station replaced (to the dead letters)",
            metrics.stale.clone(),
        );
        sub.register(
            "filled",
            "Late inputs that filled a reported gap (handled)",
            metrics.filled.clone(),
        );
        sub.register(
            "replays",
            "Inputs skipped because their round was already written but not committed",
            metrics.replays.clone(),
        );
        metrics
    }
}

/// The ledger of one bridge instance: every chain of its group, as last read or written.
#[derive(Debug)]
pub struct Ledger {
    group: String,
    window_ms: i64,
    chains: HashMap<String, ChainState>,
    dirty: BTreeSet<String>,
    metrics: DedupMetrics,
}

impl Ledger {
    /// An empty ledger of consumer group `group` trusting high-water seqs for `window_ms`.
    pub fn new(group: &str, window_ms: i64, metrics: DedupMetrics) -> Self {
        Self {
            group: group.to_owned(),
            window_ms,
            chains: HashMap::new(),
            dirty: BTreeSet::new(),
            metrics,
        }
    }

    /// The state-topic key of `chain`: the group comes first, so bridges of several groups can share it.
    pub fn state_key(&self, chain: &str) -> String {
        format!("{}/{chain}", self.group)
    }

    /// Replaces the ledger with what was read from the state topic (records of other groups are ignored).
    /// Every chain is kept, whoever owns its partition now: a station's records may arrive on a partition
    /// this instance owns although its last one came from another. A chain becomes dirty (and its state is
    /// written) only when this instance handles a record of it or closes its windows, and only the windows
    /// of owned partitions are restored ([`Ledger::window_snapshots`]).
    pub fn replace(&mut self, records: impl IntoIterator<Item = (String, ChainState)>) {
        let prefix = format!("{}/", self.group);
        self.chains = records
            .into_iter()
            .filter_map(|(key, state)| Some((key.strip_prefix(&prefix)?.to_owned(), state)))
            .collect();
        self.dirty.clear();
    }

    /// Number of chains known.
    pub fn len(&self) -> usize {
        self.chains.len()
    }

    /// True when no chain is known.
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
    }

    /// Chain hash of the last audit record of `chain`.
    pub fn head(&self, chain: &str) -> Option<&str> {
        self.chains.get(chain)?.head.as_deref()
    }

    /// Judges the input at `topic/partition/offset` of `chain` with its numbers (None when undecodable),
    /// and counts the decision.
    pub fn judge(
        &self,
        chain: &str,
        position: (&str, i32, i64),
        numbered: Option<Numbered<'_>>,
        now_ms: i64,
    ) -> Verdict {
        let verdict = self.decide(chain, position, numbered, now_ms);
        match verdict {
            Verdict::Fresh => {
                if self.fills_gap(chain, numbered) {
                    self.metrics.filled.inc();
                }
            }
            Verdict::Stale => {
                self.metrics.stale.inc();
            }
            Verdict::Replay => {
                self.metrics.replays.inc();
            }
            Verdict::Duplicate { .. } => {
                self.metrics.duplicates.inc();
            }
            Verdict::Gap { first, last } => {
                self.metrics.gaps.inc();
                self.metrics
                    .missing_seqs
                    .inc_by(u64::try_from(last - first + 1).unwrap_or(0));
            }
        }
        verdict
    }

    fn decide(
        &self,
        chain: &str,
        (topic, partition, offset): (&str, i32, i64),
        numbered: Option<Numbered<'_>>,
        now_ms: i64,
    ) -> Verdict {
        let Some(state) = self.chains.get(chain) else {
            return Verdict::Fresh;
        };
        if state.topic == topic && state.partition == partition && offset <= state.offset {
            return Verdict::Replay;
        }
        let (Some(Numbered { seq, epoch }), Some(last)) = (numbered, state.seq) else {
            return Verdict::Fresh;
        };
        if epoch != state.epoch {
            if state.retired.iter().any(|retired| retired == epoch) {
                return Verdict::Stale;
            }
            // A new outbox: its sequence starts at 1.
            return if seq > 1 {
                Verdict::Gap {
                    first: 1,
                    last: seq - 1,
                }
            } else {
                Verdict::Fresh
            };
        }
        if epoch.is_empty() && now_ms.saturating_sub(state.seen_ms) > self.window_ms {
            return Verdict::Fresh;
        }
        if seq <= last {
            if in_missing(&state.missing, seq) {
                Verdict::Fresh
            } else {
                Verdict::Duplicate { last }
            }
        } else if seq > last + 1 {
            Verdict::Gap {
                first: last + 1,
                last: seq - 1,
            }
        } else {
            Verdict::Fresh
        }
    }

    /// Whether `numbered` is a late seq of `chain` that fills a reported gap.
    fn fills_gap(&self, chain: &str, numbered: Option<Numbered<'_>>) -> bool {
        let (Some(state), Some(n)) = (self.chains.get(chain), numbered) else {
            return false;
        };
        n.epoch == state.epoch
            && state.seq.is_some_and(|last| n.seq <= last)
            && in_missing(&state.missing, n.seq)
    }

    /// Records that the input at `position` of `chain` was handled: its numbers move the sequence on (a
    /// duplicate or a stale input passes None and leaves it), `head` is the chain hash of its last audit
    /// record.
    pub fn advance(
        &mut self,
        chain: &str,
        (topic, partition, offset): (&str, i32, i64),
        numbered: Option<Numbered<'_>>,
        head: Option<String>,
        now_ms: i64,
    ) {
        let window_ms = self.window_ms;
        let entry = self
            .chains
            .entry(chain.to_owned())
            .or_insert_with(|| ChainState {
                seq: None,
                head: None,
                topic: topic.to_owned(),
                partition,
                offset,
                seen_ms: now_ms,
                windows: None,
                epoch: numbered.map(|n| n.epoch.to_owned()).unwrap_or_default(),
                retired: Vec::new(),
                missing: Vec::new(),
            });
        if let Some(numbered) = numbered {
            entry.step(numbered, now_ms, window_ms);
        }
        if head.is_some() {
            entry.head = head;
        }
        entry.topic = topic.to_owned();
        entry.partition = partition;
        entry.offset = offset;
        entry.seen_ms = now_ms;
        self.dirty.insert(chain.to_owned());
    }

    /// Marks `chain` as changed without a new input (its quality windows closed while the station was idle),
    /// so that its state is written with this round.
    pub fn touch(&mut self, chain: &str) {
        if self.chains.contains_key(chain) {
            self.dirty.insert(chain.to_owned());
        }
    }

    /// The open quality windows kept in the states of the chains whose last input came from a partition
    /// `owns`, to put back into the windows after a read-back. Another instance's stations are left out:
    /// restored here, their windows would close twice (idle here, live there) and their state, written again
    /// from here, would move a station's high-water seq, offset and chain head backwards.
    pub fn window_snapshots(
        &self,
        owns: impl Fn(&str, i32) -> bool,
    ) -> impl Iterator<Item = &StationSnapshot> {
        self.chains
            .values()
            .filter(move |state| owns(&state.topic, state.partition))
            .filter_map(|state| state.windows.as_ref())
    }

    /// The state records of the chains changed since the last call, to produce with the round; each carries
    /// its station's open windows as `windows` gives them for the chain.
    pub fn take_outputs(
        &mut self,
        state_topic: &str,
        windows: impl Fn(&str) -> Option<StationSnapshot>,
    ) -> Vec<Output> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .filter_map(|chain| {
                let key = self.state_key(&chain);
                let state = self.chains.get_mut(&chain)?;
                state.windows = windows(&chain);
                Some(Output {
                    topic: state_topic.to_owned(),
                    key: Some(key.into_bytes()),
                    value: serde_json::to_vec(state).expect("plain data serialises"),
                    headers: Vec::new(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
