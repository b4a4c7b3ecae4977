//! What the ledger keeps per chain, and how one event's numbers move it: the epoch, the high-water seq and
//! the ranges reported missing.

use serde::{Deserialize, Serialize};

use crate::decide::window::StationSnapshot;

/// What the ledger holds for one chain (a station, or an input partition for undecodable inputs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainState {
    /// Highest seq handled; None for a chain of undecodable inputs.
    pub seq: Option<i64>,
    /// Chain hash of the last audit record of the chain.
    pub head: Option<String>,
    /// Input topic of the last handled record.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// When it was handled (epoch ms): the dedup window counts from here.
    pub seen_ms: i64,
    /// The station's open quality windows as of this record, so that a window open across a restart or a
    /// rebalance closes with every event in it. Absent in state written before windows were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<StationSnapshot>,
    /// The outbox epoch `seq` counts in; empty for edges of builds before epochs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// Epochs the station replaced, oldest first (at most [`RETIRED_MAX`]): their events are stale.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
    /// Seq ranges of the current epoch reported missing (GAP) and not yet filled, oldest first (at most
    /// [`MISSING_MAX`]): an event in one is handled when it arrives late.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<(i64, i64)>,
}

/// Replaced epochs remembered per station.
pub const RETIRED_MAX: usize = 8;
/// Missing seq ranges remembered per station; beyond it the oldest is forgotten (logged).
pub const MISSING_MAX: usize = 64;

/// The numbers of a decoded input: its seq and the outbox epoch it counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numbered<'a> {
    /// Outbox sequence number.
    pub seq: i64,
    /// Outbox epoch ("" from edges of earlier builds).
    pub epoch: &'a str,
}

impl ChainState {
    /// Moves the sequence on by one handled input: a new epoch (or, without epochs, an expired window)
    /// starts it again; a higher seq raises the high-water mark and records what it skipped; a lower one
    /// fills a reported gap.
    pub(super) fn step(
        &mut self,
        Numbered { seq, epoch }: Numbered<'_>,
        now_ms: i64,
        window_ms: i64,
    ) {
        let expired = epoch.is_empty() && now_ms.saturating_sub(self.seen_ms) > window_ms;
        match self.seq {
            Some(_) if epoch != self.epoch => {
                let replaced = std::mem::replace(&mut self.epoch, epoch.to_owned());
                self.retired
                    .retain(|retired| *retired != replaced && retired != epoch);
                self.retired.push(replaced);
                if self.retired.len() > RETIRED_MAX {
                    self.retired.remove(0);
                }
                self.missing.clear();
                if seq > 1 {
                    self.missing.push((1, seq - 1));
                }
                self.seq = Some(seq);
            }
            None => self.seq = Some(seq),
            Some(_) if expired => {
                self.missing.clear();
                self.seq = Some(seq);
            }
            Some(last) if seq > last => {
                if seq > last + 1 {
                    self.missing.push((last + 1, seq - 1));
                    if self.missing.len() > MISSING_MAX {
                        let (first, last) = self.missing.remove(0);
                        tracing::warn!(first, last, "forgot the oldest reported gap of a station: a late fill of it will be taken as a resend");
                    }
                }
                self.seq = Some(seq);
            }
            Some(_) => self.fill(seq),
        }
    }

    /// Takes `seq` out of the missing ranges.
    pub(super) fn fill(&mut self, seq: i64) {
        let Some(at) = self
            .missing
            .iter()
            .position(|&(a, b)| (a..=b).contains(&seq))
        else {
            return;
        };
        let (first, last) = self.missing.remove(at);
        if seq < last {
            self.missing.insert(at, (seq + 1, last));
        }
        if first < seq {
            self.missing.insert(at, (first, seq - 1));
        }
    }
}

pub(super) fn in_missing(missing: &[(i64, i64)], seq: i64) -> bool {
    missing
        .iter()
        .any(|&(first, last)| (first..=last).contains(&seq))
}
