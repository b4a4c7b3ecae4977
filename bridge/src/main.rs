//! The `linegate-bridge` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use linegate_bridge::config::{BridgeConfig, Loaded};
use linegate_bridge::{admin, pipeline::Pipeline};
use tokio::sync::watch;

/// linegate bridge: validates what the edges send and fans it into lifecycle, quality and audit topics.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge with a config file.
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (path, check_only) = match cli.command {
        Command::Run { config } => (config, false),
        Command::CheckConfig { file } => (file, true),
    };
    let loaded = match BridgeConfig::load(&path) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    if check_only {
        print_summary(&path, &loaded);
        return ExitCode::SUCCESS;
    }
    linegate_common::logging::init(loaded.config.bridge.log_format);
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
    match runtime.block_on(run(loaded)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_summary(path: &std::path::Path, loaded: &Loaded) {
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
        "  topic plan {} with {} topics",
        loaded.plan_path.display(),
        loaded.plan.topics().count()
    );
}

async fn run(loaded: Loaded) -> anyhow::Result<()> {
    let config = loaded.config;
    if config.bridge.create_topics {
        let created = admin::create_missing(&config.kafka, &loaded.plan)
            .await
            .context("provisioning topics")?;
        if !created.is_empty() {
            tracing::info!(topics = ?created, "created missing topics");
        }
    }
    let pipeline = Pipeline::new(config)?;
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        linegate_common::process::shutdown_signal().await;
        tracing::info!("stopping: finishing the round in progress");
        let _ = stop.send(true);
    });
    tracing::info!("linegate-bridge started");
    pipeline.run(stopped).await;
    Ok(())
}
