//! The `config` subcommands of `linegate-bridge`: argument parsing and printing around
//! [`linegate_bridge::ops::station_config`]. Exit codes: 0 done, 2 the operator's input is wrong (a broken config
//! file, a bad key, a version not above the current one), 1 anything else (Kafka away, nothing pushed yet).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use linegate_bridge::config::BridgeConfig;
use linegate_bridge::ops::station_config::{
    self, print, PushRequest, StationConfigError, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE,
};
use linegate_common::kafka::KafkaConfig;
use linegate_station_config::signed;

/// Exit code of wrong input.
const EXIT_INVALID: u8 = 2;

#[derive(Subcommand)]
pub(crate) enum ConfigCommand {
    /// Make the ed25519 key pair that signs pushed configs: DIR/config-signing.key (private, mode 0600, stays
    /// at the centre) and DIR/config-signing.pub (goes into every station's [config_push]).
    Keygen {
        /// Directory for the two files (created if missing; existing keys are never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Validate FILE as the station's config exactly as the edge will, sign it as the next version and
    /// publish it; prints the version pushed. A file that does not validate is not pushed (exit 2).
    Push {
        /// Bridge config file (TOML): where Kafka is.
        #[arg(long)]
        config: PathBuf,
        /// Station id (the record key; the edge with this id applies it).
        #[arg(long)]
        station: String,
        /// Private key file written by `config keygen`.
        #[arg(long)]
        key: PathBuf,
        /// Pushed-config topic.
        #[arg(long, default_value = linegate_common::topics::STATION_CONFIG)]
        topic: String,
        /// Version to push instead of the next one (must be above every version on the topic for the station,
        /// e.g. after the topic was recreated while edges still hold a higher one).
        #[arg(long)]
        version: Option<u64>,
        /// Station config document (TOML) to push.
        file: PathBuf,
    },
    /// The station's current pushed config: version, issue time, signer key, whether it verifies, the text.
    Show {
        /// Bridge config file (TOML): where Kafka is.
        #[arg(long)]
        config: PathBuf,
        /// Station id.
        #[arg(long)]
        station: String,
        /// Pushed-config topic.
        #[arg(long, default_value = linegate_common::topics::STATION_CONFIG)]
        topic: String,
        /// Public key file to verify signatures with (without it they are not checked).
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Every version of the station's config still on the topic (compaction removes older ones), one a line.
    History {
        /// Bridge config file (TOML): where Kafka is.
        #[arg(long)]
        config: PathBuf,
        /// Station id.
        #[arg(long)]
        station: String,
        /// Pushed-config topic.
        #[arg(long, default_value = linegate_common::topics::STATION_CONFIG)]
        topic: String,
        /// Public key file to verify signatures with (without it they are not checked).
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
}

/// Runs one `config` subcommand.
pub(crate) fn run(command: ConfigCommand) -> ExitCode {
    match execute(command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            let invalid = error
                .downcast_ref::<StationConfigError>()
                .is_some_and(StationConfigError::is_invalid_input)
                || error.downcast_ref::<signed::SignedConfigError>().is_some()
                || error
                    .downcast_ref::<linegate_common::conf::ConfigError>()
                    .is_some();
            if invalid {
                ExitCode::from(EXIT_INVALID)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn kafka_of(config: &Path) -> anyhow::Result<KafkaConfig> {
    Ok(BridgeConfig::load(config)?.config.kafka)
}

fn execute(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Keygen { out } => keygen(&out),
        ConfigCommand::Push {
            config,
            station,
            key,
            topic,
            version,
            file,
        } => push(
            &config,
            &topic,
            PushRequest {
                station: &station,
                file: &file,
                key_file: &key,
                version,
            },
        ),
        ConfigCommand::Show {
            config,
            station,
            topic,
            public_key,
        } => {
            let trusted = public_key
                .as_deref()
                .map(signed::read_public_key)
                .transpose()?;
            let records = station_config::history(&kafka_of(&config)?, &topic, &station)?;
            let Some(latest) = records.last() else {
                eprintln!("no config was pushed for station {station} on {topic}");
                return Ok(ExitCode::FAILURE);
            };
            print::show(
                &mut std::io::stdout().lock(),
                &topic,
                &station,
                latest,
                trusted.as_ref(),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::History {
            config,
            station,
            topic,
            public_key,
        } => {
            let trusted = public_key
                .as_deref()
                .map(signed::read_public_key)
                .transpose()?;
            let records = station_config::history(&kafka_of(&config)?, &topic, &station)?;
            if records.is_empty() {
                eprintln!("no config was pushed for station {station} on {topic}");
                return Ok(ExitCode::FAILURE);
            }
            print::history(
                &mut std::io::stdout().lock(),
                &topic,
                &records,
                trusted.as_ref(),
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `config keygen`: a key pair in `out`, and the `[config_push]` lines for the stations.
fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    let public = station_config::keygen(out)?;
    println!(
        "wrote {} (private: keep it at the centre, readable only by whoever pushes)",
        out.join(PRIVATE_KEY_FILE).display()
    );
    println!("wrote {}", out.join(PUBLIC_KEY_FILE).display());
    println!("key {}", signed::fingerprint(&public));
    println!("\nput this into every station's config file:\n\n[config_push]");
    println!("public_key = \"{}\"", signed::public_key_text(&public));
    Ok(ExitCode::SUCCESS)
}

/// `config push`: the file checked as the station would check it, then signed and written to `topic`.
fn push(config: &Path, topic: &str, request: PushRequest<'_>) -> anyhow::Result<ExitCode> {
    // The file first: a broken one is refused before anything else is looked at.
    linegate_station_config::check_station_id(request.station)
        .map_err(StationConfigError::Station)?;
    linegate_station_config::overlay::check_for_push(request.file, request.station)
        .map_err(StationConfigError::from)?;
    let kafka = kafka_of(config)?;
    let station = request.station;
    let pushed = linegate_common::process::runtime()?
        .block_on(station_config::push(&kafka, topic, request))?;
    println!(
        "pushed version {} for station {station} to {topic}/{}/{} (key {})",
        pushed.envelope.version, pushed.partition, pushed.offset, pushed.envelope.key_id
    );
    Ok(ExitCode::SUCCESS)
}
