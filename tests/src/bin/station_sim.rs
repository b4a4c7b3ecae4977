//! Station simulator: publishes realistic station result documents over MQTT QoS 1 at a chosen rate.

use clap::Parser;
use linegate_e2e::{mqtt, station};

/// Publishes inspection results for one or more stations, like station software does.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// MQTT broker port on 127.0.0.1.
    #[arg(long, default_value_t = 1883)]
    mqtt_port: u16,
    /// Stations, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "ST-01")]
    stations: Vec<String>,
    /// Inspections per station (each is 3 to 4 documents).
    #[arg(long, default_value_t = 50)]
    inspections: usize,
    /// Documents per second per station (0 = as fast as the broker takes them).
    #[arg(long, default_value_t = 0)]
    rate: u32,
    /// Topic; `{station}` is replaced by the station id.
    #[arg(long, default_value = "stations/{station}/results")]
    topic_template: String,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also publish this many unparseable payloads per station (the edge quarantines them).
    #[arg(long, default_value_t = 0)]
    malformed: usize,
    /// Also publish this many out-of-range documents per station (the bridge dead-letters them).
    #[arg(long, default_value_t = 0)]
    invalid: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut tasks = Vec::new();
    for station_id in &args.stations {
        let mut payloads: Vec<Vec<u8>> =
            station::inspection_documents(station_id, args.inspections, args.seed)
                .iter()
                .map(|d| d.to_string().into_bytes())
                .collect();
        payloads.extend((0..args.malformed).map(|_| station::unparseable_payload()));
        payloads.extend((0..args.invalid).map(|_| {
            station::out_of_range_document(station_id)
                .to_string()
                .into_bytes()
        }));
        let topic = args.topic_template.replace("{station}", station_id);
        let client_id = format!("station-sim-{station_id}-{}", std::process::id());
        let (port, rate) = (args.mqtt_port, args.rate);
        println!(
            "{station_id}: publishing {} payloads to {topic}",
            payloads.len()
        );
        tasks.push(tokio::spawn(async move {
            mqtt::publish_all(port, &client_id, &topic, &payloads, rate).await
        }));
    }
    for task in tasks {
        task.await??;
    }
    println!("all payloads acknowledged by the broker");
    Ok(())
}
