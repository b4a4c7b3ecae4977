//! An independent checker of the delivery promise, in the spirit of Jepsen's Kafka checker: what the stations
//! had acknowledged (the publisher's PUBACKs) against what a reader of its own finds on the topics at the end
//! (read_committed, from the beginning). It shares nothing with the code it checks but the event contract's
//! decoder: no dedup, routing or ledger code of the bridge, no outbox code of the edge.
//!
//! Per station it reports results lost (acknowledged, never on `inspection.lifecycle`), duplicated (an event
//! id there more than once), reordered (a result whose first arrival came after that of a result the
//! station published later: on the ingest topic per station, on the lifecycle topic per inspection, the
//! order each topic's key promises) and phantom (on a topic, never published). Order is judged on
//! (partition, offset), which holds because each key (station, inspection) lives in one partition.
//! Events that are no inspection result (an edge's system reports) are not the stations' and are skipped.
//!
//! A result is named by its event id, or, for a station whose event ids the edge derives (a PLC), by
//! `inspection:<inspection id>`. A result the station announced but never saw acknowledged (a PLC restarted
//! mid-handshake) is indeterminate, as in Jepsen: it may arrive or not, but at most once and never as lost.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use linegate_schemas::{decode, EdgeEvent, EdgePayload, InspectionEvent};

use crate::kafka::Record;

/// What one station had acknowledged, in publish order: the event ids of its results (or
/// `inspection:<id>`).
pub type Published = BTreeMap<String, Vec<String>>;

/// The name of a result published by inspection id (see the module doc).
pub fn by_inspection(inspection_id: &str) -> String {
    format!("inspection:{inspection_id}")
}

/// The verdict on one station.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StationReport {
    /// Results the station had acknowledged.
    pub published: usize,
    /// Distinct results on `inspection.lifecycle`.
    pub delivered: usize,
    /// Acknowledged, never delivered.
    pub lost: usize,
    /// Copies beyond the first on `inspection.lifecycle`.
    pub duplicated: usize,
    /// First arrivals out of publish order (ingest per station, lifecycle per inspection).
    pub reordered: usize,
    /// On a topic, never published by the station.
    pub phantom: usize,
    /// Announced, never acknowledged to the station, and delivered (at most once is allowed).
    pub indeterminate: usize,
}

/// The verdict on a whole run.
#[derive(Debug, Default)]
pub struct Report {
    /// Per station.
    pub stations: BTreeMap<String, StationReport>,
    /// Inspection records of either topic that do not decode, or whose event id no station published.
    pub phantom_unknown: usize,
}

impl Report {
    /// Whether the promise held: nothing lost, invented or reordered, and (`exactly_once`) nothing twice.
    pub fn clean(&self, exactly_once: bool) -> bool {
        self.phantom_unknown == 0
            && self.stations.values().all(|s| {
                s.lost == 0
                    && s.phantom == 0
                    && s.reordered == 0
                    && (!exactly_once || s.duplicated == 0)
            })
    }

    /// One line per station and a total, for the test log and the docs.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "station    published delivered lost duplicated reordered phantom indeterminate\n",
        );
        let mut total = StationReport::default();
        for (station, s) in &self.stations {
            let _ = writeln!(
                out,
                "{station:10} {:9} {:9} {:4} {:10} {:9} {:7} {:13}",
                s.published,
                s.delivered,
                s.lost,
                s.duplicated,
                s.reordered,
                s.phantom,
                s.indeterminate
            );
            total.indeterminate += s.indeterminate;
            total.published += s.published;
            total.delivered += s.delivered;
            total.lost += s.lost;
            total.duplicated += s.duplicated;
            total.reordered += s.reordered;
            total.phantom += s.phantom;
        }
        let t = &total;
        let _ = writeln!(
            out,
            "{:10} {:9} {:9} {:4} {:10} {:9} {:7} {:13}",
            "all",
            t.published,
            t.delivered,
            t.lost,
            t.duplicated,
            t.reordered,
            t.phantom + self.phantom_unknown,
            t.indeterminate
        );
        out
    }
}

/// Judges `ingest` (`edge.station.events`) and `lifecycle` (`inspection.lifecycle`) against `published`.
pub fn check(published: &Published, ingest: &[Record], lifecycle: &[Record]) -> Report {
    check_with(published, &Published::new(), ingest, lifecycle)
}

/// Where a result stands in its station's publish order; `None` for an indeterminate one.
type Indexed<'a> = (&'a str, Option<usize>);

/// [`check`] with results that were announced but never acknowledged (`indeterminate`).
pub fn check_with(
    published: &Published,
    indeterminate: &Published,
    ingest: &[Record],
    lifecycle: &[Record],
) -> Report {
    let mut index: HashMap<&str, Indexed<'_>> = indeterminate
        .iter()
        .flat_map(|(station, ids)| {
            ids.iter()
                .map(move |id| (id.as_str(), (station.as_str(), None)))
        })
        .collect();
    index.extend(published.iter().flat_map(|(station, ids)| {
        ids.iter()
            .enumerate()
            .map(move |(i, id)| (id.as_str(), (station.as_str(), Some(i))))
    }));
    let mut report = Report {
        stations: indeterminate
            .keys()
            .map(|station| (station.clone(), StationReport::default()))
            .collect(),
        phantom_unknown: 0,
    };
    for (station, ids) in published {
        report
            .stations
            .entry(station.clone())
            .or_default()
            .published = ids.len();
    }
    // System reports of the edges are skipped; an undecodable record stays in, as a phantom.
    let ingest_ids = ingest
        .iter()
        .filter_map(|r| match decode::<EdgeEvent>(&r.value) {
            Ok(EdgeEvent {
                station_id,
                payload: EdgePayload::Inspection(i),
                ..
            }) => Some(((r.partition, r.offset), Some((station_id, i)))),
            Ok(_) => None,
            Err(_) => Some(((r.partition, r.offset), None)),
        });
    judge_order(&mut report, &index, ingest_ids, false);
    let lifecycle_ids = lifecycle.iter().map(|r| {
        let decoded = decode::<InspectionEvent>(&r.value).ok();
        (
            (r.partition, r.offset),
            decoded.map(|e| (e.inspection_id.clone(), e)),
        )
    });
    judge_order(&mut report, &index, lifecycle_ids, true);
    report
}

/// Counts reorderings per order key (the record's group: station on the ingest topic, inspection on the
/// lifecycle topic) and, for `lifecycle`, deliveries, duplicates and losses.
fn judge_order(
    report: &mut Report,
    index: &HashMap<&str, Indexed<'_>>,
    records: impl Iterator<Item = ((i32, i64), Option<(String, InspectionEvent)>)>,
    lifecycle: bool,
) {
    let mut sorted: Vec<_> = records.collect();
    sorted.sort_by_key(|(position, _)| *position);
    let mut seen: HashSet<String> = HashSet::new();
    let mut latest: HashMap<String, usize> = HashMap::new();
    for (_, decoded) in sorted {
        let Some((group, event)) = decoded else {
            report.phantom_unknown += 1;
            continue;
        };
        let by_inspection = by_inspection(&event.inspection_id);
        let found = [event.event_id.as_str(), by_inspection.as_str()]
            .into_iter()
            .find_map(|name| index.get(name).map(|found| (name.to_owned(), *found)));
        let Some((name, (station, at))) = found else {
            report.phantom_unknown += 1;
            continue;
        };
        let s = report
            .stations
            .get_mut(station)
            .expect("every indexed station has a report");
        if group != station && !lifecycle {
            s.phantom += 1; // an event of this station under another station's id
            continue;
        }
        if !seen.insert(name) {
            if lifecycle {
                s.duplicated += 1;
            }
            continue;
        }
        let Some(at) = at else {
            if lifecycle {
                s.indeterminate += 1;
            }
            continue;
        };
        if lifecycle {
            s.delivered += 1;
        }
        let previous = latest.entry(group).or_insert(at);
        if at < *previous {
            s.reordered += 1;
        } else {
            *previous = at;
        }
    }
    if lifecycle {
        for s in report.stations.values_mut() {
            s.lost = s.published - s.delivered;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, offset: i64, value: Vec<u8>) -> Record {
        Record {
            topic: "t".into(),
            partition,
            offset,
            key: None,
            value,
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }

    /// A lifecycle record of result `id` of inspection `inspection`.
    fn inspection(id: &str, inspection: &str) -> Vec<u8> {
        let EdgePayload::Inspection(mut event) =
            crate::events::inspection_started("ST-1", 1, "LOT").payload
        else {
            unreachable!("an inspection was built")
        };
        event.event_id = id.to_owned();
        event.inspection_id = inspection.to_owned();
        linegate_schemas::encode(&event).unwrap()
    }

    #[test]
    fn the_checker_finds_what_is_lost_twice_out_of_order_or_invented() {
        let ids = |n: usize| {
            (0..n)
                .map(|i| uuid::Uuid::from_u128(i as u128 + 1).to_string())
                .collect::<Vec<_>>()
        };
        let published: Published = [("ST-1".to_owned(), ids(4))].into();
        let id = |i: usize| published["ST-1"][i].clone();
        let phantom = uuid::Uuid::from_u128(99).to_string();
        // Result 0 twice, 2 before 1 (same inspection), 3 lost, one never published.
        let lifecycle = [
            record(0, 0, inspection(&id(0), "I-1")),
            record(0, 1, inspection(&id(2), "I-2")),
            record(0, 2, inspection(&id(1), "I-2")),
            record(0, 3, inspection(&id(0), "I-1")),
            record(0, 4, inspection(&phantom, "I-9")),
        ];
        let report = check(&published, &[], &lifecycle);
        let s = &report.stations["ST-1"];
        assert_eq!(
            (s.published, s.delivered, s.lost, s.duplicated, s.reordered),
            (4, 3, 1, 1, 1)
        );
        assert_eq!(report.phantom_unknown, 1);
        assert!(!report.clean(false));
        let clean = [
            record(0, 0, inspection(&id(0), "I-1")),
            record(1, 0, inspection(&id(1), "I-2")),
            record(0, 1, inspection(&id(2), "I-3")),
            record(1, 1, inspection(&id(3), "I-2")),
            record(0, 2, inspection(&id(0), "I-1")),
        ];
        let report = check(&published, &[], &clean);
        assert!(report.clean(false), "{}", report.table());
        assert!(
            !report.clean(true),
            "a copy is a failure in exactly-once mode"
        );
    }

    #[test]
    fn results_named_by_inspection_and_indeterminate_ones_are_judged_too() {
        let published: Published = [(
            "ST-P".to_owned(),
            vec![by_inspection("P-1"), by_inspection("P-3")],
        )]
        .into();
        let maybe: Published = [("ST-P".to_owned(), vec![by_inspection("P-2")])].into();
        let id = |n: u128| uuid::Uuid::from_u128(n).to_string();
        let lifecycle = [
            record(0, 0, inspection(&id(1), "P-1")),
            record(0, 1, inspection(&id(2), "P-2")),
            record(0, 2, inspection(&id(3), "P-3")),
        ];
        let report = check_with(&published, &maybe, &[], &lifecycle);
        let s = &report.stations["ST-P"];
        assert_eq!((s.delivered, s.lost, s.indeterminate), (2, 0, 1));
        assert!(report.clean(true), "{}", report.table());
        // The indeterminate one twice is a duplicate; an acknowledged one missing is lost.
        let twice = [
            record(0, 0, inspection(&id(1), "P-1")),
            record(0, 1, inspection(&id(2), "P-2")),
            record(0, 2, inspection(&id(4), "P-2")),
        ];
        let report = check_with(&published, &maybe, &[], &twice);
        let s = &report.stations["ST-P"];
        assert_eq!((s.lost, s.duplicated), (1, 1));
        assert!(!report.clean(true));
    }
}
