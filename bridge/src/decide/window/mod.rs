//! Quality windows: tumbling event-time windows per station and inspection type, with allowed lateness.
//!
//! Completed inspections are observed in the order the bridge reads them (each station's events are in one
//! partition, in seq order). A station's watermark is the latest event time it reported minus the allowed
//! lateness; a window closes when the watermark passes its end, or when its station has been silent for
//! `idle_close_secs` (a line that stops must still get its last window). An event for a window that already
//! closed is late: it is counted, logged, and left out of the figures (its lifecycle record and verdict are
//! not affected).
//!
//! Restart safety: the open windows of a station are state that must survive a restart and a rebalance.
//! [`Windows::snapshot`] gives a station's open windows and seq high-water as plain data for the pipeline to
//! store with its other per-station state, and [`Windows::restore`] puts them back when the station's
//! partition is assigned again. Records read again after a restart are recognised by the station's seq
//! high-water and counted once. A window emitted before a crash whose round was not committed is emitted
//! again with the same id (UUID v5 of station, type, start and size), so downstream can recognise it.

mod output;
mod stats;

use std::collections::{BTreeMap, HashMap};

pub use crate::config::{SpecLimits, WindowConfig};
pub use output::output;
pub use stats::{Accumulator, Figures};

/// One completed inspection, as the windows need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Station.
    pub station_id: String,
    /// Station outbox seq (replays are recognised by it).
    pub seq: i64,
    /// Inspection type.
    pub inspection_type: String,
    /// Event time, epoch milliseconds.
    pub event_time: i64,
    /// Reported score.
    pub score: Option<f64>,
    /// Whether the verdict was FAIL.
    pub failed: bool,
    /// Trace id, carried to the window record.
    pub trace_id: String,
}

/// A window that closed, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedWindow {
    /// Station.
    pub station_id: String,
    /// Inspection type.
    pub inspection_type: String,
    /// Start (inclusive), epoch milliseconds.
    pub start: i64,
    /// End (exclusive).
    pub end: i64,
    /// The figures.
    pub figures: Figures,
    /// The limits they were computed against.
    pub spec: SpecLimits,
    /// Trace id of the last event in the window.
    pub trace_id: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct OpenWindow {
    acc: Accumulator,
    trace_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct StationClock {
    max_event_time: i64,
    high_seq: i64,
    last_seen_ms: i64,
}

/// A station's open windows and clock, as data to store and restore.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StationSnapshot {
    /// Station.
    pub station_id: String,
    clock: StationClock,
    windows: Vec<(String, i64, OpenWindow)>,
}

/// The open windows of the partitions this instance reads.
pub struct Windows {
    config: WindowConfig,
    size_ms: i64,
    lateness_ms: i64,
    open: BTreeMap<(String, String, i64), OpenWindow>,
    stations: HashMap<String, StationClock>,
    late: u64,
}

impl Windows {
    /// Empty windows with `config`.
    pub fn new(config: WindowConfig) -> Self {
        Self {
            size_ms: i64::try_from(config.size_secs.max(1).saturating_mul(1000))
                .unwrap_or(i64::MAX),
            lateness_ms: i64::try_from(config.allowed_lateness_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
            config,
            open: BTreeMap::new(),
            stations: HashMap::new(),
            late: 0,
        }
    }

    /// Adds one completed inspection seen at processing time `now_ms`; returns the windows it closed.
    pub fn observe(&mut self, obs: Observation, now_ms: i64) -> Vec<ClosedWindow> {
        if !self.config.enabled {
            return Vec::new();
        }
        let clock = self.stations.entry(obs.station_id.clone()).or_default();
        clock.last_seen_ms = now_ms;
        if obs.seq <= clock.high_seq {
            return Vec::new(); // read again after a restart, or sent twice: already counted
        }
        clock.high_seq = obs.seq;
        let watermark = clock.max_event_time.saturating_sub(self.lateness_ms);
        let start = obs.event_time.div_euclid(self.size_ms) * self.size_ms;
        if clock.max_event_time > 0 && start + self.size_ms <= watermark {
            self.late += 1;
            tracing::warn!(
                station = %obs.station_id,
                seq = obs.seq,
                event_time = obs.event_time,
                "a completed inspection arrived after its quality window closed; it is not in the window figures"
            );
            return Vec::new();
        }
        clock.max_event_time = clock.max_event_time.max(obs.event_time);
        let window = self
            .open
            .entry((obs.station_id.clone(), obs.inspection_type.clone(), start))
            .or_insert_with(|| OpenWindow {
                acc: Accumulator::default(),
                trace_id: String::new(),
            });
        window.acc.add(obs.score, obs.failed);
        window.trace_id = obs.trace_id;
        let station = obs.station_id;
        let watermark = self.stations[&station]
            .max_event_time
            .saturating_sub(self.lateness_ms);
        self.close_where(|(s, _, start), size| *s == station && start + size <= watermark)
    }

    /// Closes the windows of stations silent for `idle_close_secs` at processing time `now_ms`.
    pub fn close_idle(&mut self, now_ms: i64) -> Vec<ClosedWindow> {
        let idle_ms =
            i64::try_from(self.config.idle_close_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let idle: Vec<String> = self
            .stations
            .iter()
            .filter(|(_, clock)| now_ms.saturating_sub(clock.last_seen_ms) >= idle_ms)
            .map(|(station, _)| station.clone())
            .collect();
        if idle.is_empty() {
            return Vec::new();
        }
        self.close_where(|(s, _, _), _| idle.contains(s))
    }

    /// The station's open windows and clock, to store with the pipeline's per-station state.
    pub fn snapshot(&self, station_id: &str) -> Option<StationSnapshot> {
        let clock = self.stations.get(station_id)?.clone();
        let windows = self
            .open
            .range((station_id.to_owned(), String::new(), i64::MIN)..)
            .take_while(|((s, _, _), _)| s == station_id)
            .map(|((_, kind, start), w)| (kind.clone(), *start, w.clone()))
            .collect();
        Some(StationSnapshot {
            station_id: station_id.to_owned(),
            clock,
            windows,
        })
    }

    /// Forgets every open window and station clock (before the windows of the partitions owned now are
    /// restored), keeping the settings and the count of late events.
    pub fn clear(&mut self) {
        self.open.clear();
        self.stations.clear();
    }

    /// Puts a stored station state back, replacing what this instance holds for the station.
    pub fn restore(&mut self, snapshot: StationSnapshot) {
        let station = snapshot.station_id;
        self.open.retain(|(s, _, _), _| *s != station);
        for (kind, start, window) in snapshot.windows {
            self.open.insert((station.clone(), kind, start), window);
        }
        self.stations.insert(station, snapshot.clock);
    }

    /// Events that arrived after their window closed, since start.
    pub fn late_count(&self) -> u64 {
        self.late
    }

    fn close_where(
        &mut self,
        closes: impl Fn(&(String, String, i64), i64) -> bool,
    ) -> Vec<ClosedWindow> {
        let keys: Vec<_> = self
            .open
            .keys()
            .filter(|key| closes(key, self.size_ms))
            .cloned()
            .collect();
        keys.into_iter()
            .map(|key| {
                let window = self.open.remove(&key).expect("key listed above");
                let (station_id, inspection_type, start) = key;
                let spec = self
                    .config
                    .spec
                    .get(&inspection_type)
                    .copied()
                    .unwrap_or_default();
                ClosedWindow {
                    figures: window.acc.figures(spec),
                    spec,
                    station_id,
                    inspection_type,
                    start,
                    end: start + self.size_ms,
                    trace_id: window.trace_id,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
