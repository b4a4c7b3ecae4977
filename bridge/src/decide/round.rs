//! A round's records through the ledger and the router: dedup, gap reports and the audit chain around the
//! per-record decision of [`crate::decide::route`]. No I/O: the pipeline delivers what this returns.
//!
//! Per record, in input order: decode once; find its chain (station, or input partition); ask the ledger.
//! A replay is skipped; a resend yields a DUPLICATE audit record only; a gap yields a GAP audit record, then
//! the record is routed as usual; each audit record links to the chain's previous one, and the ledger
//! advances. The state records of the chains that changed come last, so they are written with the round.

use linegate_schemas::EdgeEvent;
use rdkafka::message::OwnedMessage;
use rdkafka::Message;

use crate::decide::chain;
use crate::decide::dedup::{Ledger, Numbered, Verdict};
use crate::decide::route::{self, InputRecord, Link, Output, RouteContext};
use crate::decide::window::{self, Windows};

/// What a round handled, by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Inputs accepted and fanned out.
    pub accepted: u64,
    /// Inputs sent to the dead-letter topic.
    pub rejected: u64,
    /// Edge resends recognised (audit only).
    pub duplicates: u64,
    /// Gaps reported.
    pub gaps: u64,
    /// Inputs of an already written round, skipped.
    pub replays: u64,
}

impl Counts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: Counts) {
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.duplicates += other.duplicates;
        self.gaps += other.gaps;
        self.replays += other.replays;
    }

    /// Inputs handled in any way.
    pub fn total(&self) -> u64 {
        self.accepted + self.rejected + self.duplicates + self.replays
    }
}

/// Called for every routed record before its outputs are taken (redrive headers, metrics).
pub type RoutedHook<'h> = dyn Fn(&OwnedMessage, &mut route::Routed) + 'h;

/// Appends the outputs of `batch` to `outputs` (state records last) and says what became of its records.
/// Accepted completed inspections also feed `windows`; a window they close is written right after them.
pub fn route_batch(
    batch: &[OwnedMessage],
    ctx: &RouteContext<'_>,
    ledger: &mut Ledger,
    windows: &mut Windows,
    hook: &RoutedHook<'_>,
    outputs: &mut Vec<Output>,
) -> Counts {
    let mut counts = Counts::default();
    outputs.reserve(batch.len() * 3 + 1);
    for message in batch {
        let record = InputRecord {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key(),
            value: message.payload().unwrap_or_default(),
        };
        let mut round = Round {
            ctx,
            ledger: &mut *ledger,
            windows: &mut *windows,
            outputs: &mut *outputs,
            counts: &mut counts,
        };
        round.one(message, &record, hook);
    }
    outputs.extend(ledger.take_outputs(&ctx.topics.state, |chain| windows.snapshot(chain)));
    counts
}

/// What one record's handling reads and changes.
struct Round<'a, 'c> {
    ctx: &'a RouteContext<'c>,
    ledger: &'a mut Ledger,
    windows: &'a mut Windows,
    outputs: &'a mut Vec<Output>,
    counts: &'a mut Counts,
}

/// Where a record sits: its chain (the station, or the partition for an undecodable input) and its position.
struct At<'r> {
    chain: String,
    position: (&'r str, i32, i64),
    /// Its outbox epoch and seq, when it decoded.
    numbered: Option<Numbered<'r>>,
}

impl Round<'_, '_> {
    /// One record: the ledger's verdict, then a replay skipped, a duplicate or a stale event answered with
    /// its audit or dead-letter record, a gap reported before the event, and the event routed.
    fn one(&mut self, message: &OwnedMessage, record: &InputRecord<'_>, hook: &RoutedHook<'_>) {
        let decoded = linegate_schemas::decode::<EdgeEvent>(record.value);
        let station = decoded.as_ref().ok().map(|event| event.station_id.as_str());
        let numbers = (decoded.as_ref().ok()).map(|event| (event.seq, event.outbox_epoch.clone()));
        let numbered = numbers
            .as_ref()
            .map(|(seq, epoch)| Numbered { seq: *seq, epoch });
        let at = At {
            chain: chain::chain_key(station, record.topic, record.partition),
            position: (record.topic, record.partition, record.offset),
            numbered,
        };
        let mut verdict = self
            .ledger
            .judge(&at.chain, at.position, at.numbered, self.ctx.now_ms);
        if matches!(verdict, Verdict::Duplicate { .. }) && redriven(message) {
            // An operator redrove this dead letter after a fix: judge it again, do not take it for a resend.
            verdict = Verdict::Fresh;
        }
        let mut head = self.ledger.head(&at.chain).map(str::to_owned);
        match (verdict, &decoded) {
            (Verdict::Replay, _) => {
                self.counts.replays += 1;
                tracing::debug!(
                    partition = record.partition,
                    offset = record.offset,
                    "skipped: this round's outputs and state were already written"
                );
                return;
            }
            (Verdict::Duplicate { last }, Ok(event)) => {
                return self.duplicate(record, event, last, &at, head.as_deref());
            }
            (Verdict::Stale, Ok(event)) => return self.stale(record, event, &at, head),
            (Verdict::Gap { first, last }, Ok(event)) => {
                if let Some(hash) = self.gap(record, event, (first, last), head.as_deref()) {
                    head = Some(hash);
                }
            }
            _ => {}
        }
        self.route(message, record, decoded, hook, &at, head);
    }

    /// A resend of an event already handled: only a DUPLICATE audit record.
    fn duplicate(
        &mut self,
        record: &InputRecord<'_>,
        event: &EdgeEvent,
        last: i64,
        at: &At<'_>,
        head: Option<&str>,
    ) {
        self.counts.duplicates += 1;
        tracing::info!(
            station = event.station_id,
            seq = event.seq,
            last,
            offset = record.offset,
            "duplicate from an edge: audit record only"
        );
        let link = Link {
            prev: head,
            gap: None,
        };
        match route::duplicate(record, self.ctx, event, last, link) {
            Ok((output, hash)) => {
                self.outputs.push(output);
                (self.ledger).advance(&at.chain, at.position, None, Some(hash), self.ctx.now_ms);
            }
            Err(error) => tracing::error!(%error, "cannot encode a DUPLICATE audit record"),
        }
    }

    /// An event of an outbox its station replaced: dead-lettered (class `stale`), with its audit record.
    fn stale(
        &mut self,
        record: &InputRecord<'_>,
        event: &EdgeEvent,
        at: &At<'_>,
        head: Option<String>,
    ) {
        self.counts.rejected += 1;
        tracing::warn!(
            station = event.station_id,
            seq = event.seq,
            epoch = event.outbox_epoch,
            offset = record.offset,
            "an event of an outbox its station replaced: to {}",
            self.ctx.topics.dlq
        );
        let link = Link {
            prev: head.as_deref(),
            gap: None,
        };
        let routed = route::stale(record, self.ctx, event, link);
        self.outputs.extend(routed.outputs);
        let hash = routed.audit_hash.or(head);
        (self.ledger).advance(&at.chain, at.position, None, hash, self.ctx.now_ms);
    }

    /// Events `first..=last` of the station never arrived: a GAP audit record before the event; its hash.
    fn gap(
        &mut self,
        record: &InputRecord<'_>,
        event: &EdgeEvent,
        (first, last): (i64, i64),
        head: Option<&str>,
    ) -> Option<String> {
        self.counts.gaps += 1;
        tracing::warn!(
            station = event.station_id,
            first,
            last,
            seq = event.seq,
            "gap in a station's seq: events {first}..={last} never arrived"
        );
        let link = Link {
            prev: head,
            gap: Some((first, last)),
        };
        match route::gap(record, self.ctx, event, link) {
            Ok((output, hash)) => {
                self.outputs.push(output);
                Some(hash)
            }
            Err(error) => {
                tracing::error!(%error, "cannot encode a GAP audit record");
                None
            }
        }
    }

    /// The record routed (accepted or rejected), the ledger advanced, and the windows it closes written.
    fn route(
        &mut self,
        message: &OwnedMessage,
        record: &InputRecord<'_>,
        decoded: Result<EdgeEvent, linegate_schemas::SchemaError>,
        hook: &RoutedHook<'_>,
        at: &At<'_>,
        head: Option<String>,
    ) {
        let ctx = self.ctx;
        let link = Link {
            prev: head.as_deref(),
            gap: None,
        };
        let mut routed = route::route_decoded(record, ctx, decoded, link);
        hook(message, &mut routed);
        match &routed.rejection {
            Some(rejection) => {
                self.counts.rejected += 1;
                tracing::warn!(
                    partition = record.partition,
                    offset = record.offset,
                    class = rejection.class(),
                    "input rejected to {}: {rejection}",
                    ctx.topics.dlq
                );
            }
            None => self.counts.accepted += 1,
        }
        self.outputs.extend(routed.outputs);
        let hash = routed.audit_hash.or(head);
        (self.ledger).advance(&at.chain, at.position, at.numbered, hash, ctx.now_ms);
        if let Some(observation) = routed.window_input {
            self.close_windows(observation);
        }
    }

    /// Adds an observation to the windows and writes each window it closes.
    fn close_windows(&mut self, observation: window::Observation) {
        let ctx = self.ctx;
        for closed in self.windows.observe(observation, ctx.now_ms) {
            match window::output(&closed, &ctx.topics.quality, ctx.service_name) {
                Ok(output) => self.outputs.push(output),
                Err(error) => {
                    tracing::error!(%error, "a quality window could not be encoded and is not written");
                }
            }
        }
    }
}

/// Whether `message` is a dead letter an operator redrove (`linegate-bridge dlq redrive` sets `redrive.of`).
fn redriven(message: &OwnedMessage) -> bool {
    use rdkafka::message::Headers;
    message
        .headers()
        .is_some_and(|headers| headers.iter().any(|header| header.key == route::REDRIVE_OF))
}
