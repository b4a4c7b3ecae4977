//! The `linegate-edge` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use linegate_edge::config::EdgeConfig;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(2)
            }
        },
        Command::Run { config } => {
            let config = match EdgeConfig::load(&config) {
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
            match runtime.block_on(linegate_edge::run::run(config)) {
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
