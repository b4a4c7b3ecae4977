//! The `linegate-bridge` command line: `run --config FILE` starts the bridge, `check-config FILE` validates a
//! config and its topic plan without connecting anywhere (exit 0 when valid, 2 with the error otherwise),
//! `audit verify --config FILE [--topic T]` checks the audit hash chains (exit 0 intact, 1 broken),
//! `config keygen|push|show|history` manages the configs pushed to stations (see `station_config_cli.rs` and `ops/station_config/`).
//!
//! Only this file uses anyhow: it adds the step that failed to the crate's typed errors for the operator.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use linegate_bridge::config::{BridgeConfig, Loaded};
use linegate_bridge::metrics::BridgeMetrics;
use linegate_bridge::ops::{redrive, topics as admin, verify};
use linegate_bridge::wire::{RegistryMetrics, SchemaReader, WireFormat};
use linegate_bridge::{http, pipeline::Pipeline};
use tokio::sync::watch;

mod station_config_cli;

/// The bridge allocates and frees several small buffers per output (headers, values, delivery reports) on
/// several threads; mimalloc's per-thread heaps cost less CPU there than glibc's arenas (bridge-bench).
/// Its `override` feature also serves librdkafka's C `malloc`/`free` (a copy of every output and each of
/// its headers); docs/dev/measurements.md has the figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code of an invalid config, for scripts and `check-config`.
const EXIT_INVALID_CONFIG: u8 = 2;

/// linegate bridge: validates what the edges send and fans it into lifecycle, quality and audit topics.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge with a config file until SIGTERM or Ctrl-C.
    Run {
        /// Bridge config file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Check a bridge config and its topic plan; exit code 2 when not valid.
    CheckConfig {
        /// Bridge config file (TOML).
        file: PathBuf,
    },
    /// Dead-letter operations.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Audit trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Station configs pushed over Kafka, signed (keygen, push, show, history).
    Config {
        #[command(subcommand)]
        command: station_config_cli::ConfigCommand,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Send chosen dead letters back to their source topic (after a fix) with attempt + 1; prints what it did.
    Redrive {
        /// Bridge config file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// DLQ topic to read (default: [topics] dlq of the config).
        #[arg(long)]
        topic: Option<String>,
        /// Only this DLQ partition (default: every partition; offsets then apply to each).
        #[arg(long)]
        partition: Option<i32>,
        /// One DLQ offset.
        #[arg(long, conflicts_with_all = ["from_offset", "to_offset", "all"])]
        offset: Option<i64>,
        /// First DLQ offset of a range (with --to-offset).
        #[arg(long, requires = "to_offset")]
        from_offset: Option<i64>,
        /// Last DLQ offset of a range, inclusive.
        #[arg(long, requires = "from_offset")]
        to_offset: Option<i64>,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
        /// Print what would be sent; send nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Re-read the audit topic and check every station's hash chain; exit 1 at the first break of any chain.
    Verify {
        /// Bridge config file (TOML): where Kafka is, and the default audit topic.
        #[arg(long)]
        config: PathBuf,
        /// Audit topic to check instead of the config's topics.audit.
        #[arg(long)]
        topic: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (path, check_only, audit_topic) = match cli.command {
        Command::Run { config } => (config, false, None),
        Command::CheckConfig { file } => (file, true, None),
        Command::Dlq { command } => return dlq(command),
        Command::Config { command } => return station_config_cli::run(command),
        Command::Audit {
            command: AuditCommand::Verify { config, topic },
        } => (config, false, Some(topic)),
    };
    let loaded = match BridgeConfig::load(&path) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_INVALID_CONFIG);
        }
    };
    if check_only {
        print_summary(&path, &loaded);
        return ExitCode::SUCCESS;
    }
    if let Some(topic) = audit_topic {
        let topic = topic.unwrap_or_else(|| loaded.config.topics.audit.clone());
        return audit_verify(&loaded, &topic);
    }
    linegate_common::logging::init(loaded.config.bridge.log_format);
    let runtime = match linegate_common::process::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(loaded)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_summary(path: &Path, loaded: &Loaded) {
    let config = &loaded.config;
    println!("{}: valid", path.display());
    println!(
        "  group {} on {}",
        config.bridge.group_id, config.kafka.bootstrap
    );
    println!(
        "  {} -> {}, {}, {} (dead letters: {})",
        config.topics.input,
        config.topics.lifecycle,
        config.topics.quality,
        config.topics.audit,
        config.topics.dlq
    );
    println!(
        "  rounds of up to {} records, waiting up to {} ms",
        config.bridge.batch_max, config.bridge.batch_wait_ms
    );
    println!(
        "  delivery {:?}, dedup window {} h, state topic {}",
        config.delivery.mode, config.delivery.dedup_window_hours, config.topics.state
    );
    match config.schema_registry.enabled() {
        true => println!(
            "  outputs in the Confluent wire format, schemas under <topic>-value at {}",
            config.schema_registry.url
        ),
        false => println!("  outputs in Avro single-object encoding (no schema registry)"),
    }
    let thresholds: Vec<String> = config
        .quality
        .thresholds
        .iter()
        .map(|(kind, value)| format!("{kind} {value}"))
        .collect();
    println!(
        "  quality thresholds: default {}{}{}",
        config.quality.default_threshold,
        if thresholds.is_empty() { "" } else { ", " },
        thresholds.join(", ")
    );
    println!(
        "  topic plan {} with {} topics{}",
        loaded.plan_path.display(),
        loaded.plan.topics().count(),
        if config.bridge.create_topics {
            " (missing ones are created at start)"
        } else {
            " (not created by the bridge)"
        }
    );
}

async fn run(loaded: Loaded) -> anyhow::Result<()> {
    let config = loaded.config;
    if config.bridge.create_topics {
        let created = admin::create_missing(&config.kafka, &loaded.plan)
            .await
            .with_context(|| {
                format!(
                    "creating the topics of {} (set bridge.create_topics = false if they are managed elsewhere)",
                    loaded.plan_path.display()
                )
            })?;
        if !created.is_empty() {
            tracing::info!(topics = ?created, "created missing topics");
        }
    }
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = BridgeMetrics::register(&mut registry);
    let wire = WireFormat::from_config(&config, RegistryMetrics::register(&mut registry))?;
    if wire.is_confluent() {
        // A registry that is away is fine here (the rounds wait for it); one that refuses a schema is not.
        let cached = wire.warm_up(&config).await.with_context(|| {
            format!(
                "registering the output schemas with {}",
                config.schema_registry.url
            )
        })?;
        tracing::info!(
            url = config.schema_registry.url,
            schemas = cached,
            "outputs in the Confluent wire format"
        );
    }
    let pipeline = Pipeline::new(config.clone(), &mut registry)
        .await
        .context("starting the pipeline")?
        .with_metrics(metrics.clone())
        .with_wire_format(wire.clone());
    if let Some(listen) = config.http.listen {
        http::start(listen, config.clone(), loaded.plan, registry, metrics, wire)
            .await
            .context("starting the HTTP server")?;
    }
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        linegate_common::process::shutdown_signal().await;
        tracing::info!("stopping: finishing the round in progress");
        let _ = stop.send(true);
    });
    tracing::info!("linegate-bridge started");
    pipeline.run(stopped).await?;
    Ok(())
}

fn dlq(command: DlqCommand) -> ExitCode {
    let DlqCommand::Redrive {
        config,
        topic,
        partition,
        offset,
        from_offset,
        to_offset,
        all,
        dry_run,
    } = command;
    let loaded = match BridgeConfig::load(&config) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_INVALID_CONFIG);
        }
    };
    let range = match redrive::range(partition, offset, from_offset, to_offset, all) {
        Ok(range) => range,
        Err(message) => {
            eprintln!("error: {message} (--offset N, --from-offset A --to-offset B, or --all)");
            return ExitCode::from(EXIT_INVALID_CONFIG);
        }
    };
    let config = loaded.config;
    let dlq_topic = topic.unwrap_or_else(|| config.topics.dlq.clone());
    let result = linegate_common::process::runtime()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            runtime
                .block_on(redrive::redrive(
                    &config.kafka,
                    &dlq_topic,
                    &config.topics.input,
                    range,
                    dry_run,
                ))
                .map_err(anyhow::Error::from)
        });
    let report = match result {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    print_redrive(&report, &config.topics.input);
    if report.skipped > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One line per dead letter redriven (or that would be, or was skipped), then the totals.
fn print_redrive(report: &redrive::Report, input: &str) {
    for r in &report.records {
        let target = r.to_topic.as_deref().unwrap_or("?");
        match (&r.skipped, r.to_partition, r.to_offset) {
            (Some(why), _, _) => println!(
                "skipped {}/{}/{}: {why}",
                report.dlq_topic, r.dlq_partition, r.dlq_offset
            ),
            (None, Some(p), Some(o)) => println!(
                "sent {}/{}/{} -> {target}/{p}/{o} (attempt {})",
                report.dlq_topic, r.dlq_partition, r.dlq_offset, r.attempt
            ),
            (None, _, _) => println!(
                "would send {}/{}/{} -> {target} (attempt {})",
                report.dlq_topic, r.dlq_partition, r.dlq_offset, r.attempt
            ),
        }
    }
    println!(
        "{} {} record(s) from {} to {}, {} skipped",
        if report.dry_run {
            "would redrive"
        } else {
            "redrove"
        },
        report.sent,
        report.dlq_topic,
        input,
        report.skipped
    );
}

/// Prints what `audit verify` found; exit 0 when every chain is intact, 1 otherwise.
fn audit_verify(loaded: &Loaded, topic: &str) -> ExitCode {
    let timeout = std::time::Duration::from_secs(300);
    let config = &loaded.config;
    let verified = linegate_common::process::runtime()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
        .and_then(|runtime| {
            let reader = SchemaReader::new(&config.schema_registry).map_err(|e| e.to_string())?;
            runtime
                .block_on(verify::verify_topic(&config.kafka, topic, timeout, &reader))
                .map_err(|e| e.to_string())
        });
    let verified = match verified {
        Ok(verified) => verified,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let report = &verified.report;
    println!(
        "{topic}: {} audit records in {} chains ({} at-least-once repeats, {} without a link; {} replay records left out)",
        report.records, report.chains, report.repeats, report.unlinked, verified.replayed
    );
    for (partition, offset, reason) in &verified.undecodable {
        println!("not an audit record at partition {partition} offset {offset}: {reason}");
    }
    for broken in &report.breaks {
        println!("BROKEN: {broken}");
    }
    if report.breaks.is_empty() && verified.undecodable.is_empty() {
        println!("every chain is intact");
        ExitCode::SUCCESS
    } else {
        println!(
            "{} broken chains, {} foreign records",
            report.breaks.len(),
            verified.undecodable.len()
        );
        ExitCode::FAILURE
    }
}
