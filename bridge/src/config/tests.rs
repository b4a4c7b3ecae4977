//! The config rules as examples: the shipped example loads, and each mistake names file, line and key.

use std::collections::BTreeMap;

use super::*;

const EXAMPLE: &str = include_str!("../../../config/bridge.example.toml");

/// The example's batch size line, as shipped (the bridge bench sets it through the environment).
const BATCH_MAX_LINE: &str = "batch_max = ${LINEGATE_BRIDGE_BATCH_MAX:-2000}";

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/bridge.example.toml")
}

/// Loads `raw` as if it were the example file (so `topics.toml` resolves) with `env` as the environment.
fn load(raw: &str, env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let file = ConfigFile::from_text(&example_path(), raw, |name| env.get(name).cloned())?;
    BridgeConfig::from_file(&file)
}

fn error(raw: &str) -> String {
    load(raw, &[]).unwrap_err().to_string()
}

fn line_of(raw: &str, start: &str) -> usize {
    raw.lines().position(|l| l.starts_with(start)).unwrap() + 1
}

#[test]
fn example_config_loads_with_defaults() {
    let loaded = load(EXAMPLE, &[]).unwrap();
    let config = &loaded.config;
    assert_eq!(config.bridge.group_id, "linegate-bridge");
    assert_eq!(config.bridge.service_name, "linegate-bridge");
    assert_eq!(config.kafka.bootstrap, "127.0.0.1:9092");
    assert_eq!(config.bridge.log_format, LogFormat::Human);
    assert_eq!(
        (config.bridge.batch_max, config.bridge.batch_wait_ms),
        (2000, 10)
    );
    assert!(config.bridge.create_topics);
    assert_eq!(config.quality.threshold_for("optical"), 0.85);
    assert_eq!(config.quality.threshold_for("xray"), 0.90);
    assert_eq!(config.quality.threshold_for("electrical"), 0.75);
    assert_eq!(config.quality.threshold_for("unknown"), 0.80);
    assert_eq!(config.topics.input, topics::EDGE_EVENTS);
    assert_eq!(config.topics.dlq, "edge.station.events.dlq");
    assert!(loaded.plan_path.ends_with("config/topics.toml"));
    assert_eq!(
        loaded.plan.get("audit.events").unwrap().replication_factor,
        3,
        "production default without LINEGATE_TOPIC_REPLICATION"
    );
}

#[test]
fn example_config_takes_its_settings_from_the_environment() {
    let loaded = load(
        EXAMPLE,
        &[
            ("LINEGATE_BRIDGE_GROUP", "bridge-line-2"),
            ("LINEGATE_KAFKA_BOOTSTRAP", "kafka-1:9093,kafka-2:9093"),
            ("LINEGATE_LOG_FORMAT", "json"),
        ],
    )
    .unwrap();
    assert_eq!(loaded.config.bridge.group_id, "bridge-line-2");
    assert_eq!(loaded.config.kafka.bootstrap, "kafka-1:9093,kafka-2:9093");
    assert_eq!(loaded.config.bridge.log_format, LogFormat::Json);
}

#[test]
fn example_file_on_disk_finds_the_shipped_topic_plan() {
    let loaded = BridgeConfig::load(&example_path()).unwrap();
    for name in [
        topics::EDGE_EVENTS,
        topics::INSPECTION_LIFECYCLE,
        topics::QUALITY_EVENTS,
        topics::AUDIT_EVENTS,
        topics::EDGE_EVENTS_DLQ,
    ] {
        assert!(loaded.plan.get(name).is_some(), "{name}");
    }
}

#[test]
fn out_of_range_threshold_names_file_line_and_key() {
    let raw = EXAMPLE.replace("xray = 0.90", "xray = 1.5");
    let line = line_of(&raw, "xray = ");
    assert!(error(&raw).ends_with(&format!(
        "bridge.example.toml:{line}: key `quality.thresholds.xray`: 1.5 is not a score between 0 and 1"
    )));
    let raw = EXAMPLE.replace("default_threshold = 0.80", "default_threshold = -0.1");
    let line = line_of(&raw, "default_threshold");
    assert!(error(&raw).ends_with(&format!(
        "bridge.example.toml:{line}: key `quality.default_threshold`: -0.1 is not a score between 0 and 1"
    )));
}

#[test]
fn zero_batch_max_is_refused() {
    let raw = EXAMPLE.replace(BATCH_MAX_LINE, "batch_max = 0");
    let line = line_of(&raw, "batch_max");
    assert!(error(&raw).ends_with(&format!(
        ":{line}: key `bridge.batch_max`: must be at least 1"
    )));
}

#[test]
fn empty_group_is_refused() {
    let raw =
        "[bridge]\ngroup_id = \" \"\ntopics_file = \"topics.toml\"\n[kafka]\nbootstrap = \"k:1\"\n";
    assert!(error(raw).ends_with(":2: key `bridge.group_id`: must name the consumer group"));
}

#[test]
fn unknown_key_is_refused_with_its_line() {
    let raw = EXAMPLE.replace(BATCH_MAX_LINE, "batch_max = 500\nbatch_size = 3");
    let line = line_of(&raw, "batch_size");
    let message = error(&raw);
    assert!(message.contains(&format!(":{line}:")), "{message}");
    assert!(message.contains("batch_size"), "{message}");
}

#[test]
fn missing_topic_plan_names_the_key_and_the_path() {
    let message =
        error(&EXAMPLE.replace("${LINEGATE_TOPICS_FILE:-topics.toml}", "no-such-plan.toml"));
    let line = line_of(EXAMPLE, "topics_file");
    assert!(
        message.contains(&format!(":{line}: key `bridge.topics_file`: "))
            && message.contains("no-such-plan.toml is not a file"),
        "{message}"
    );
}

#[test]
fn an_output_that_is_the_input_is_refused() {
    let raw = EXAMPLE.replace(
        "dlq = \"edge.station.events.dlq\"",
        "dlq = \"edge.station.events\"",
    );
    assert!(error(&raw).contains("key `topics.dlq`: `edge.station.events` is also the input topic"));
}

#[test]
fn a_topic_missing_from_the_plan_is_refused_when_the_bridge_creates_topics() {
    let raw = EXAMPLE.replace("quality = \"quality.events\"", "quality = \"quality.v2\"");
    let line = line_of(&raw, "quality = ");
    assert!(error(&raw).contains(&format!(
        ":{line}: key `topics.quality`: `quality.v2` is not in the topic plan"
    )));
    let unmanaged = raw.replace("create_topics = true", "create_topics = false");
    assert!(load(&unmanaged, &[]).is_ok());
}

#[test]
fn a_routing_key_that_is_no_family_or_event_type_is_refused_with_its_line() {
    let raw = EXAMPLE.replace("[routing]\n", "[routing]\nINSPECTION_DONE = [\"x\"]\n");
    let line = line_of(&raw, "INSPECTION_DONE");
    let message = error(&raw);
    assert!(
        message.contains(&format!(
            ":{line}: key `routing.INSPECTION_DONE`: `INSPECTION_DONE` is neither"
        )),
        "{message}"
    );
    assert!(message.contains("INSPECTION_COMPLETED"), "{message}");
}

#[test]
fn a_routed_topic_must_be_in_the_plan_and_not_the_input() {
    let with = |entry: &str| EXAMPLE.replace("[routing]\n", &format!("[routing]\n{entry}\n"));
    let raw = with("DRIFT_DETECTED = [\"inference.workflow\", \"ml.drift\"]");
    let line = line_of(&raw, "DRIFT_DETECTED");
    let message = error(&raw);
    assert!(
        message.contains(&format!(
            ":{line}: key `routing.DRIFT_DETECTED`: `ml.drift` is not in the topic plan"
        )),
        "{message}"
    );
    let message = error(&with("system = [\"edge.station.events\"]"));
    assert!(
        message.contains("`edge.station.events` is the input topic"),
        "{message}"
    );
    let loaded = load(&with("system = [\"audit.events\"]\ninspection = []"), &[]).unwrap();
    assert_eq!(
        loaded.config.routes.all_topics().collect::<Vec<_>>(),
        [
            "audit.events",
            "inference.workflow",
            "manufacturing.lifecycle"
        ]
    );
}

#[test]
fn the_example_has_no_schema_registry_unless_the_environment_names_one() {
    let loaded = load(EXAMPLE, &[]).unwrap();
    assert!(!loaded.config.schema_registry.enabled());
    let loaded = load(
        EXAMPLE,
        &[
            ("LINEGATE_SCHEMA_REGISTRY_URL", "http://registry:8081/sr/"),
            ("LINEGATE_SCHEMA_REGISTRY_USER", "key"),
            ("LINEGATE_SCHEMA_REGISTRY_PASSWORD", "secret"),
        ],
    )
    .unwrap();
    let registry = &loaded.config.schema_registry;
    assert_eq!(
        registry.base_url().unwrap().as_str(),
        "http://registry:8081/sr/"
    );
    assert_eq!(registry.credentials(), Some(("key", "secret")));
    assert_eq!(registry.timeout(), std::time::Duration::from_secs(5));
}

#[test]
fn a_bad_schema_registry_section_names_file_line_and_key() {
    let url = |value: &str| load(EXAMPLE, &[("LINEGATE_SCHEMA_REGISTRY_URL", value)]);
    let line = line_of(EXAMPLE, "url = ");
    let message = url("https://registry:8081").unwrap_err().to_string();
    assert!(
        message.contains(&format!(":{line}: key `schema_registry.url`: "))
            && message.contains("no TLS client"),
        "{message}"
    );
    let message = url("registry:8081").unwrap_err().to_string();
    assert!(message.contains("is not http"), "{message}");
    let message = url("http://user:pw@registry:8081").unwrap_err().to_string();
    assert!(message.contains("not into the URL"), "{message}");
    let message = load(
        EXAMPLE,
        &[
            ("LINEGATE_SCHEMA_REGISTRY_URL", "http://registry:8081"),
            ("LINEGATE_SCHEMA_REGISTRY_USER", "key"),
        ],
    )
    .unwrap_err()
    .to_string();
    let line = line_of(EXAMPLE, "password = ");
    assert!(
        message.contains(&format!(
            ":{line}: key `schema_registry.password`: basic auth needs both"
        )),
        "{message}"
    );
    let raw = EXAMPLE.replace("timeout_ms = 5000", "timeout_ms = 5000\nretries = 3");
    let message = error(&raw);
    let line = line_of(&raw, "retries");
    assert!(
        message.contains(&format!(":{line}:")) && message.contains("retries"),
        "{message}"
    );
}

#[test]
fn with_a_registry_a_topic_may_carry_one_record_type_only() {
    let raw = EXAMPLE.replace("[routing]\n", "[routing]\nsystem = [\"audit.events\"]\n");
    assert!(load(&raw, &[]).is_ok(), "fine in single-object encoding");
    let message = load(&raw, &[("LINEGATE_SCHEMA_REGISTRY_URL", "http://r:8081")])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(
            "topic `audit.events` would carry SystemEvent and AuditEvent; with a registry its subject \
             `audit.events-value` holds one record type"
        ),
        "{message}"
    );
    let loaded = load(
        EXAMPLE,
        &[("LINEGATE_SCHEMA_REGISTRY_URL", "http://r:8081")],
    )
    .unwrap();
    let kinds = output_kinds(&loaded.config);
    assert_eq!(
        kinds.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "audit.events",
            "inference.workflow",
            "inspection.lifecycle",
            "manufacturing.lifecycle",
            "quality.events"
        ]
    );
}

#[test]
fn an_incremental_rebalance_protocol_is_refused_at_its_line() {
    let cooperative = EXAMPLE.replace(
        "# [kafka.client]\n",
        "[kafka.client]\n\"partition.assignment.strategy\" = \"cooperative-sticky\"\n",
    );
    let err = error(&cooperative);
    let line = line_of(&cooperative, "\"partition.assignment.strategy\"");
    assert!(
        err.contains(&format!(
            ":{line}: key `kafka.client.\"partition.assignment.strategy\"`: `cooperative-sticky` rebalances incrementally"
        )),
        "{err}"
    );
    let consumer = EXAMPLE.replace(
        "# [kafka.client]\n",
        "[kafka.client]\n\"group.protocol\" = \"consumer\"\n",
    );
    let err = error(&consumer);
    assert!(
        err.contains("`consumer` assigns partitions incrementally"),
        "{err}"
    );
    let eager = EXAMPLE.replace(
        "# [kafka.client]\n",
        "[kafka.client]\n\"partition.assignment.strategy\" = \"roundrobin\"\n\"group.protocol\" = \"classic\"\n",
    );
    load(&eager, &[]).unwrap();
}

#[test]
fn window_durations_beyond_their_ceiling_are_refused_at_their_line() {
    let env = [("LINEGATE_WINDOW_SECS", "18446744073709551")];
    let err = load(EXAMPLE, &env).unwrap_err().to_string();
    let line = line_of(EXAMPLE, "size_secs =");
    assert!(
        err.contains(&format!(
            ":{line}: key `quality.windows.size_secs`: 18446744073709551 is more than 2678400 (31 days)"
        )),
        "{err}"
    );
    let env = [("LINEGATE_WINDOW_IDLE_SECS", "9999999999")];
    let err = load(EXAMPLE, &env).unwrap_err().to_string();
    assert!(
        err.contains("key `quality.windows.idle_close_secs`"),
        "{err}"
    );
}

#[test]
fn event_time_bounds_too_tight_are_refused_at_their_line() {
    let raw = EXAMPLE.replace(
        "event_time_max_ahead_secs = 3600",
        "event_time_max_ahead_secs = 5",
    );
    let line = line_of(&raw, "event_time_max_ahead_secs");
    let err = error(&raw);
    assert!(
        err.contains(&format!(
            ":{line}: key `quality.event_time_max_ahead_secs`: must be at least 60"
        )),
        "{err}"
    );
    let raw = EXAMPLE.replace(
        "# event_time_max_age_hours = 720",
        "event_time_max_age_hours = 0",
    );
    assert!(error(&raw).contains("key `quality.event_time_max_age_hours`: must be at least 1"));
}
