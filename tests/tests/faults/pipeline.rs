//! The whole path, end to end: station documents over MQTT -> three edges -> Kafka -> bridge -> topics.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use linegate_e2e::kafka::{consume_until_async, station_seqs, Record};
use linegate_e2e::stack::{edge_outbox_command, start_bridge, start_edge, station_topic};
use linegate_e2e::station::{
    document_time_ms, inspection_documents, out_of_range_document, unparseable_payload,
};
use linegate_e2e::{mqtt, Kafka, Mosquitto};
use linegate_schemas::{
    decode, AuditEvent, AuditOutcome, EdgeEvent, InspectionEvent, QualityEvent, QualityVerdict,
};
use serde_json::Value;

const STATIONS: [&str; 3] = ["ST-01", "ST-02", "ST-03"];
const INSPECTIONS_PER_STATION: usize = 110;
const WAIT: Duration = Duration::from_secs(180);
const GRACE: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_from_three_stations_arrive_once_in_order_with_quality_audit_and_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start().unwrap();
    let kafka = Kafka::start().unwrap();
    let bridge = start_bridge(&kafka, "pipeline-test", dir.path()).unwrap();
    let edges: Vec<_> = STATIONS
        .iter()
        .map(|s| start_edge(s, &mosquitto, &kafka, dir.path()).unwrap())
        .collect();

    // What each station publishes: valid documents, one the edge cannot parse, one the bridge must reject.
    let documents: BTreeMap<&str, Vec<Value>> = STATIONS
        .iter()
        .map(|s| (*s, inspection_documents(s, INSPECTIONS_PER_STATION, 7)))
        .collect();
    let mut publishing = Vec::new();
    for (station, docs) in &documents {
        let mut payloads: Vec<Vec<u8>> = docs.iter().map(|d| d.to_string().into_bytes()).collect();
        payloads.insert(docs.len() / 2, unparseable_payload());
        payloads.push(out_of_range_document(station).to_string().into_bytes());
        let topic = station_topic(station);
        let port = mosquitto.port();
        publishing.push(tokio::spawn(async move {
            mqtt::publish_all(port, &format!("sim-{topic}"), &topic, &payloads, 0).await
        }));
    }
    let started = std::time::Instant::now();
    for task in publishing {
        task.await.unwrap().unwrap();
    }
    let valid: usize = documents.values().map(Vec::len).sum();
    assert!(
        valid >= 1000,
        "the test must carry at least 1000 results, has {valid}"
    );
    let by_id: HashMap<String, (&str, usize, &Value)> = documents
        .iter()
        .flat_map(|(station, docs)| {
            docs.iter()
                .enumerate()
                .map(move |(i, d)| (d["event_id"].as_str().unwrap().to_owned(), (*station, i, d)))
        })
        .collect();

    let bootstrap = kafka.bootstrap();
    let lifecycle = consume_until_async(&bootstrap, "inspection.lifecycle", valid, WAIT, GRACE)
        .await
        .unwrap_or_else(|e| {
            let logs: Vec<String> = edges
                .iter()
                .chain([&bridge])
                .map(|p| p.log_tail(15))
                .collect();
            panic!("{e}\n{}", logs.join("\n"))
        });

    eprintln!(
        "{valid} results from {} stations on inspection.lifecycle after {:?}",
        STATIONS.len(),
        started.elapsed()
    );
    // Exactly N, each published result once, with its fields.
    assert_eq!(
        lifecycle.len(),
        valid,
        "lifecycle must hold every valid result exactly once"
    );
    let mut seen = HashMap::new();
    for record in &lifecycle {
        let event: InspectionEvent = decode(&record.value).unwrap();
        let (station, index, document) = by_id
            .get(&event.event_id)
            .expect("an event that was published");
        assert!(
            seen.insert(event.event_id.clone(), ()).is_none(),
            "duplicate {}",
            event.event_id
        );
        assert_eq!(record.header("station_id"), Some(*station));
        assert_eq!(record.key_str(), Some(event.inspection_id.as_str()));
        assert_fields(&event, document, *index);
    }

    // In publish order per station: within each partition, a station's results keep their publish index.
    let mut last_index: HashMap<(i32, String), usize> = HashMap::new();
    for record in &lifecycle {
        let event: InspectionEvent = decode(&record.value).unwrap();
        let (station, index, _) = by_id[&event.event_id];
        if let Some(previous) = last_index.insert((record.partition, station.to_owned()), index) {
            assert!(
                previous < index,
                "{station}: result {index} arrived after {previous} in partition {}",
                record.partition
            );
        }
    }

    // On the ingest topic each station is one partition with seq 1, 2, 3, ... without a gap.
    let ingest = consume_until_async(
        &bootstrap,
        "edge.station.events",
        valid + STATIONS.len(),
        WAIT,
        GRACE,
    )
    .await
    .unwrap();
    assert_eq!(ingest.len(), valid + STATIONS.len());
    for station in STATIONS {
        let seqs = station_seqs(&ingest, station);
        let expected: Vec<i64> =
            (1..=i64::try_from(documents[station].len() + 1).unwrap()).collect();
        assert_eq!(
            seqs, expected,
            "{station}: outbox sequence on edge.station.events"
        );
    }

    // One quality verdict per completed inspection, judged against the example config's thresholds.
    let completed: Vec<&Value> = documents
        .values()
        .flatten()
        .filter(|d| d["event_type"] == "INSPECTION_COMPLETED")
        .collect();
    // And one alert per step that reports a CRITICAL defect (the example config's alerting severity).
    let alerting = documents
        .values()
        .flatten()
        .filter(|d| {
            d["defects"]
                .as_array()
                .is_some_and(|defects| defects.iter().any(|x| x["severity"] == "CRITICAL"))
        })
        .count();
    let quality = consume_until_async(
        &bootstrap,
        "quality.events",
        completed.len() + alerting,
        WAIT,
        GRACE,
    )
    .await
    .unwrap();
    let of_type = |kind: &str| -> Vec<(&Record, QualityEvent)> {
        quality
            .iter()
            .map(|r| (r, decode::<QualityEvent>(&r.value).unwrap()))
            .filter(|(_, q)| q.event_type == kind)
            .collect()
    };
    let alerts = of_type("QUALITY_ALERT");
    assert_eq!(
        alerts.len(),
        alerting,
        "one alert per CRITICAL defect report"
    );
    for (_, alert) in &alerts {
        let (_, _, document) = by_id[alert.source_event_id.as_deref().unwrap()];
        assert!(alert.reason.contains("CRITICAL"), "{alert:?}");
        assert_eq!(
            document["event_id"].as_str(),
            alert.source_event_id.as_deref()
        );
    }
    let verdicts = of_type("QUALITY_VERDICT");
    assert_eq!(verdicts.len(), completed.len());
    for (record, verdict) in verdicts {
        let (station, _, document) = by_id[verdict.source_event_id.as_deref().unwrap()];
        assert_eq!(record.key_str(), Some(station));
        let threshold = match document["inspection_type"].as_str().unwrap() {
            "optical" => 0.85,
            "xray" => 0.90,
            "electrical" => 0.75,
            other => panic!("unexpected inspection type {other}"),
        };
        let score = document["quality_score"].as_f64().unwrap();
        let expected = if score >= threshold {
            QualityVerdict::Pass
        } else {
            QualityVerdict::Fail
        };
        assert_eq!(
            (verdict.threshold, verdict.verdict),
            (Some(threshold), Some(expected)),
            "{verdict:?}"
        );
        assert_eq!(verdict.quality_score, Some(score));
    }

    // One audit record per input: every valid result accepted, each out-of-range one rejected.
    let audit = consume_until_async(
        &bootstrap,
        "audit.events",
        valid + STATIONS.len(),
        WAIT,
        GRACE,
    )
    .await
    .unwrap();
    assert_eq!(audit.len(), valid + STATIONS.len());
    let outcomes = audit
        .iter()
        .map(|r| decode::<AuditEvent>(&r.value).unwrap().outcome)
        .fold(BTreeMap::new(), |mut counts, outcome| {
            *counts.entry(format!("{outcome:?}")).or_insert(0) += 1;
            counts
        });
    assert_eq!(outcomes.get("Accepted"), Some(&valid));
    assert_eq!(outcomes.get("Rejected"), Some(&STATIONS.len()));
    let _ = AuditOutcome::Accepted;

    // The out-of-range result of each station is in the DLQ with its reason and origin.
    let dead = consume_until_async(
        &bootstrap,
        "edge.station.events.dlq",
        STATIONS.len(),
        WAIT,
        GRACE,
    )
    .await
    .unwrap();
    assert_eq!(dead.len(), STATIONS.len());
    for record in &dead {
        assert_dead_letter(record);
    }

    // The unparseable payload of each station is in its edge's quarantine, not lost and not forwarded, and
    // the operator commands show it and an empty queue.
    for station in STATIONS {
        let listed = edge_outbox_command(station, &mosquitto, &kafka, dir.path(), &["quarantine"]);
        let entries: Vec<Value> = listed
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(entries.len(), 1, "{station} quarantine: {listed}");
        assert!(
            entries[0]["reason"]
                .as_str()
                .unwrap()
                .contains("not a station result document"),
            "{listed}"
        );
        assert_eq!(entries[0]["origin"], station_topic(station).as_str());
        assert_eq!(
            entries[0]["payload"].as_str().unwrap().as_bytes(),
            unparseable_payload()
        );
        let stats = edge_outbox_command(station, &mosquitto, &kafka, dir.path(), &["stats"]);
        assert!(stats.contains("waiting      0"), "{stats}");
        let next = format!("next seq     {}", documents[station].len() + 2);
        assert!(stats.contains(&next), "{stats}");
    }
}

fn assert_fields(event: &InspectionEvent, document: &Value, index: usize) {
    let text = |key: &str| document[key].as_str().unwrap().to_owned();
    assert_eq!(
        event.event_type.symbol(),
        text("event_type"),
        "document {index}"
    );
    assert_eq!(event.inspection_id, text("inspection_id"));
    assert_eq!(event.batch_id, text("batch_id"));
    assert_eq!(event.chip_id, text("chip_id"));
    assert_eq!(event.inspection_type, text("inspection_type"));
    assert_eq!(event.status, text("status"));
    assert_eq!(event.timestamp, document_time_ms(document));
    assert_eq!(event.quality_score, document["quality_score"].as_f64());
    let defects = document["defects"].as_array().unwrap();
    assert_eq!(event.defects.len(), defects.len());
    for (defect, expected) in event.defects.iter().zip(defects) {
        assert_eq!(defect.severity, expected["severity"].as_str().unwrap());
        assert_eq!(defect.confidence, expected["confidence"].as_f64().unwrap());
    }
    assert_eq!(
        event.metadata["recipe"],
        document["metadata"]["recipe"].as_str().unwrap()
    );
}

fn assert_dead_letter(record: &Record) {
    assert_eq!(record.header("error.class"), Some("validation"));
    let message = record.header("error.message").unwrap();
    assert!(
        message.starts_with("quality_score 1.7 is outside 0..1"),
        "{message}"
    );
    assert_eq!(record.header("source.topic"), Some("edge.station.events"));
    assert!(record
        .header("source.offset")
        .unwrap()
        .parse::<i64>()
        .is_ok());
    let event: EdgeEvent = decode(&record.value).expect("the DLQ keeps the record unchanged");
    assert_eq!(record.key_str(), Some(event.station_id.as_str()));
}
