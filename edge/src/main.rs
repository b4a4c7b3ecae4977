//! The `linegate-edge` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use linegate_station_config::EdgeConfig;

/// linegate edge agent: captures station results, commits them to a local outbox, forwards them to Kafka.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent with a station config.
    Run {
        /// Station config file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Check a station config and print what it sets up; exit code 2 when it is not valid.
    CheckConfig {
        /// Station config file (TOML).
        file: PathBuf,
    },
    /// Look into the station's outbox (read-only; safe while the agent runs).
    Outbox {
        /// Station config file (TOML), which says where the outbox is.
        #[arg(long)]
        config: PathBuf,
        #[command(subcommand)]
        action: OutboxAction,
    },
}

#[derive(Subcommand)]
enum OutboxAction {
    /// Waiting events, oldest age, next sequence number, quarantine size.
    Stats,
    /// The next events waiting for Kafka, as JSON lines.
    Peek {
        /// How many.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Quarantined payloads with their reasons, as JSON lines (`quarantine retry` parses them again).
    Quarantine {
        /// How many to list.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(subcommand)]
        action: Option<QuarantineAction>,
    },
}

#[derive(Subcommand)]
enum QuarantineAction {
    /// List quarantined payloads (the default).
    List,
    /// Parse quarantined payloads again; those that now parse move into the outbox and on to Kafka.
    Retry {
        /// Only these quarantine ids (as listed); repeatable.
        #[arg(long = "id", required_unless_present = "all")]
        ids: Vec<i64>,
        /// Every quarantined payload.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

fn outbox_command(config: PathBuf, action: OutboxAction) -> ExitCode {
    let config = match EdgeConfig::load(&config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    let result = match action {
        OutboxAction::Stats => linegate_edge::ops::stats(&config, &mut out),
        OutboxAction::Peek { limit } => linegate_edge::ops::peek(&config, limit, &mut out),
        OutboxAction::Quarantine {
            limit,
            action: None | Some(QuarantineAction::List),
        } => linegate_edge::ops::quarantine_list(&config, limit, &mut out),
        OutboxAction::Quarantine {
            action: Some(QuarantineAction::Retry { ids, all }),
            ..
        } => {
            let ids = (!all).then_some(ids.as_slice());
            match linegate_edge::ops::quarantine_retry(&config, ids, &mut out) {
                Ok(0) => Ok(()),
                Ok(still) => {
                    eprintln!("{still} payloads stay in quarantine");
                    return ExitCode::from(1);
                }
                Err(error) => Err(error),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Gives glibc's malloc one arena, unless `MALLOC_ARENA_MAX` says otherwise. By default glibc gives each
/// busy thread (tokio workers, librdkafka's, SQLite's blocking calls) an arena of its own and keeps what was
/// freed in each, so RSS grows to several times the heap; one arena keeps it near the heap for a little more
/// CPU per event (docs/dev/measurements.md). A station PC short of CPU rather than memory sets
/// `MALLOC_ARENA_MAX=8` in the unit's environment. The musl build has its own
/// allocator and needs nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it is called before any thread is started.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    match cli.command {
        Command::Outbox { config, action } => outbox_command(config, action),
        Command::CheckConfig { file } => match EdgeConfig::load(&file) {
            Ok(config) => {
                println!("{}: valid", file.display());
                println!(
                    "  station {} with outbox {}",
                    config.station.id,
                    config.outbox_path().display()
                );
                println!(
                    "  kafka {} topic {}",
                    config.kafka.bootstrap, config.forward.topic
                );
                if let Some(mqtt) = &config.mqtt {
                    println!(
                        "  mqtt {}:{} as {} on {}",
                        mqtt.host,
                        mqtt.port,
                        mqtt.client_id,
                        mqtt.topics.join(", ")
                    );
                }
                if let Some(push) = &config.config_push {
                    let key = push
                        .trusted_key()
                        .map(|k| linegate_station_config::signed::fingerprint(&k))
                        .unwrap_or_default();
                    println!(
                        "  pushed configs from {} signed by {key}; [station], [kafka], [config_push] and [http] stay local",
                        push.topic
                    );
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(2)
            }
        },
        Command::Run { config: path } => {
            let config = match EdgeConfig::load(&path) {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(2);
                }
            };
            linegate_common::logging::init(config.station.log_format);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("error: cannot start the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(linegate_edge::run::run(config, &path)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error:#}");
                    eprintln!("error: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
