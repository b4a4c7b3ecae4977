//! The Modbus source: station PLCs over Modbus TCP or RTU, with the result handshake.
//!
//! The PLC writes a result block, then increments a result counter register. The edge sees the change, reads
//! the block, commits the event to the outbox, and only then writes the counter value into the acknowledge
//! register: a result is acknowledged to the PLC only once it is durable. The event id is derived from the
//! station, the device, the handshake's era (see [`history`]), the counter value and the block's bytes, so a
//! result read again after a crash between commit and acknowledgement is recognised by the outbox and stored
//! once, while a new result with the same registers after a PLC restart or a counter wrap is stored. A
//! counter that jumps by more than one is reported as results lost at the station (a metric and a
//! RESULTS_LOST system event).

mod connect;
mod decode;
mod device;
mod history;

pub use decode::{interpret, Raw};
pub use linegate_station_config::ModbusConfig;

use tokio::sync::watch;

use crate::observe::EdgeMetrics;
use crate::outbox::OutboxWriter;

/// The source name of device `device` in logs, metrics and `/healthz`: `modbus:<device>`.
pub fn source_name(device: &str) -> String {
    format!("modbus:{device}")
}

/// Runs every device of `config` until `shutdown` turns true, each under [`super::supervise`].
pub async fn run(
    config: ModbusConfig,
    station_id: String,
    writer: OutboxWriter,
    metrics: EdgeMetrics,
    shutdown: watch::Receiver<bool>,
) {
    let tasks: Vec<_> = config
        .devices
        .into_iter()
        .map(|device| {
            let names = vec![source_name(&device.name)];
            let task = device::run(
                device,
                station_id.clone(),
                writer.clone(),
                metrics.clone(),
                shutdown.clone(),
            );
            super::supervise(task, names, &metrics, &shutdown)
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}
