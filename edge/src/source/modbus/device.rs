//! One PLC: connect, run the result handshake, reconnect with backoff. Never panics on the device's
//! behaviour: errors are counted, logged once per state change, and retried.

use std::collections::BTreeMap;
use std::time::Duration;

use linegate_schemas::SystemEventType;
use tokio::sync::watch;
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::Slave;

use super::decode::{build_event, decode, Raw};
use crate::capture::{envelope, now_ms, system_event};
use crate::observe::EdgeMetrics;
use crate::outbox::{Intake, OutboxWriter, QuarantineEntry, Stored};
use linegate_station_config::modbus::{DeviceConfig, Parity, Table, Transport};

/// Why one step with the device failed; the loop reconnects after any of them.
#[derive(Debug, thiserror::Error)]
enum DeviceError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no answer within {0} ms")]
    Timeout(u64),
    #[error("register {address}: {reason}")]
    Modbus { address: u16, reason: String },
    #[error("the outbox writer has stopped")]
    WriterGone,
}

/// Runs one device until `shutdown` turns true.
pub(super) async fn run(
    device: DeviceConfig,
    station_id: String,
    writer: OutboxWriter,
    metrics: EdgeMetrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let source = super::source_name(&device.name);
    metrics.set_source_up(&source, false);
    let mut backoff = Duration::from_millis(device.backoff_min_ms);
    let mut last_problem: Option<String> = None;
    while !*shutdown.borrow() {
        let session = async {
            let mut ctx = connect(&device).await?;
            metrics.set_source_up(&source, true);
            if last_problem.take().is_some() {
                tracing::info!(device = %device.name, "Modbus device answers again");
            } else {
                tracing::info!(device = %device.name, "Modbus device connected");
            }
            backoff = Duration::from_millis(device.backoff_min_ms);
            let mut handshake = Handshake::new(&device, &station_id, &source, &writer, &metrics);
            handshake.run(&mut ctx, &mut shutdown).await
        };
        let outcome = session.await;
        metrics.set_source_up(&source, false);
        match outcome {
            Ok(()) => return,
            Err(DeviceError::WriterGone) => return,
            Err(error) => {
                metrics.modbus_errors.get_or_create(&label(&source)).inc();
                let text = error.to_string();
                if last_problem.as_deref() != Some(text.as_str()) {
                    tracing::warn!(device = %device.name, %error, retry_in = ?backoff, "Modbus device not usable; retrying");
                    last_problem = Some(text);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_millis(device.backoff_max_ms));
    }
}

fn label(source: &str) -> crate::observe::metrics::SourceLabel {
    crate::observe::metrics::SourceLabel {
        source: source.to_owned(),
    }
}

async fn connect(device: &DeviceConfig) -> Result<Context, DeviceError> {
    let slave = Slave(device.unit_id);
    let timeout = Duration::from_millis(device.timeout_ms);
    match device.transport() {
        Transport::Tcp(tcp) => {
            let (host, port) = (&tcp.host, &tcp.port);
            let address = tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map_err(|e| DeviceError::Connect(format!("{host}:{port}: {e}")))?
                .next()
                .ok_or_else(|| DeviceError::Connect(format!("{host}:{port} has no address")))?;
            tokio::time::timeout(
                timeout,
                tokio_modbus::client::tcp::connect_slave(address, slave),
            )
            .await
            .map_err(|_| DeviceError::Timeout(device.timeout_ms))?
            .map_err(|e| DeviceError::Connect(format!("{host}:{port}: {e}")))
        }
        Transport::Rtu(rtu) => {
            use tokio_serial::SerialPortBuilderExt;
            let (path, baud, parity, data_bits, stop_bits) = (
                &rtu.path,
                &rtu.baud,
                &rtu.parity,
                &rtu.data_bits,
                &rtu.stop_bits,
            );
            let port = tokio_serial::new(path, *baud)
                .parity(match parity {
                    Parity::None => tokio_serial::Parity::None,
                    Parity::Even => tokio_serial::Parity::Even,
                    Parity::Odd => tokio_serial::Parity::Odd,
                })
                .data_bits(if *data_bits == 7 {
                    tokio_serial::DataBits::Seven
                } else {
                    tokio_serial::DataBits::Eight
                })
                .stop_bits(if *stop_bits == 2 {
                    tokio_serial::StopBits::Two
                } else {
                    tokio_serial::StopBits::One
                })
                .open_native_async()
                .map_err(|e| DeviceError::Connect(format!("{path}: {e}")))?;
            Ok(tokio_modbus::client::rtu::attach_slave(port, slave))
        }
    }
}

/// The handshake state of one connected device.
struct Handshake<'a> {
    device: &'a DeviceConfig,
    station_id: &'a str,
    source: &'a str,
    writer: &'a OutboxWriter,
    metrics: &'a EdgeMetrics,
}

impl<'a> Handshake<'a> {
    fn new(
        device: &'a DeviceConfig,
        station_id: &'a str,
        source: &'a str,
        writer: &'a OutboxWriter,
        metrics: &'a EdgeMetrics,
    ) -> Self {
        Self {
            device,
            station_id,
            source,
            writer,
            metrics,
        }
    }

    /// Polls the counter; each change is read, committed, then acknowledged. Returns `Ok` on shutdown.
    async fn run(
        &mut self,
        ctx: &mut Context,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), DeviceError> {
        let hs = self.device.handshake;
        let mut acked = self.read_words(ctx, Table::Holding, hs.ack, 1).await?[0];
        let poll = Duration::from_millis(self.device.poll_interval_ms);
        loop {
            let counter = self.read_words(ctx, Table::Holding, hs.counter, 1).await?[0];
            if counter != acked && self.take_result(ctx, acked, counter).await? {
                self.write(ctx, hs.ack, counter).await?;
                acked = counter;
                continue; // another result may be waiting already
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }

    /// Reads the result behind `counter`, commits it (with a loss report if the counter jumped); returns
    /// whether it may be acknowledged.
    async fn take_result(
        &mut self,
        ctx: &mut Context,
        acked: u16,
        counter: u16,
    ) -> Result<bool, DeviceError> {
        let step = counter.wrapping_sub(acked);
        let mut items = Vec::with_capacity(2);
        if step > 0x8000 {
            tracing::warn!(device = %self.device.name, acked, counter, "the PLC result counter went backwards (PLC restarted?); taking its current result");
        } else if step > 1 {
            let lost = step - 1;
            self.metrics
                .results_lost
                .get_or_create(&label(self.source))
                .inc_by(u64::from(lost));
            let message = format!(
                "the result counter of {} jumped from {acked} to {counter}: {lost} results were lost at the station",
                self.device.name
            );
            tracing::error!(device = %self.device.name, acked, counter, lost, "{message}");
            let id = uuid::Uuid::new_v5(
                &linegate_common_namespace(),
                format!(
                    "lost:{}:{}:{acked}:{counter}",
                    self.station_id, self.device.name
                )
                .as_bytes(),
            );
            items.push(Intake::Event(Box::new(system_event(
                self.station_id,
                SystemEventType::ResultsLost,
                self.source,
                message,
                BTreeMap::from([
                    ("device".to_owned(), self.device.name.clone()),
                    ("first_lost".to_owned(), acked.wrapping_add(1).to_string()),
                    ("last_lost".to_owned(), counter.wrapping_sub(1).to_string()),
                    ("lost".to_owned(), lost.to_string()),
                ]),
                Some(id),
            ))));
        }
        items.push(self.read_result(ctx, counter).await?);
        loop {
            let stored = match self.writer.append(items.clone()).await {
                Ok(stored) => stored,
                Err(crate::outbox::OutboxError::WriterGone) => return Err(DeviceError::WriterGone),
                Err(error) => {
                    tracing::error!(device = %self.device.name, %error, "outbox refused a PLC result; not acknowledging it, retrying");
                    tokio::time::sleep(Duration::from_millis(self.device.backoff_min_ms)).await;
                    continue;
                }
            };
            self.metrics.record_stored(self.source, &stored);
            // Outbox full (policy block): not acknowledged, so the PLC keeps the result and the counter; the
            // next poll offers it again (a loss report already stored is recognised by its id).
            return Ok(stored.iter().all(|s| !matches!(s, Stored::Refused)));
        }
    }

    /// Reads every mapped field; a value the map cannot interpret goes to quarantine with the raw registers.
    async fn read_result(
        &mut self,
        ctx: &mut Context,
        counter: u16,
    ) -> Result<Intake, DeviceError> {
        let mut values = Vec::with_capacity(self.device.fields.len());
        let mut raw_dump = Vec::new();
        let mut problem = None;
        for field in &self.device.fields {
            let raw = match (field.address, field.constant.is_some()) {
                (_, true) | (None, _) => Raw::Words(Vec::new()),
                (Some(address), false) => {
                    self.read(ctx, field.table, address, field.width()).await?
                }
            };
            if let Raw::Words(words) = &raw {
                raw_dump.extend(words.iter().flat_map(|w| w.to_be_bytes()));
            }
            match decode(field, &raw) {
                Ok(value) => values.push((field, value)),
                Err(reason) => {
                    problem.get_or_insert(format!(
                        "{} (register {}, {:?}): {reason}",
                        field.target,
                        field.address.unwrap_or(0),
                        field.table
                    ));
                }
            }
        }
        let captured_at_ms = now_ms();
        let built = match problem {
            Some(problem) => Err(problem),
            None => build_event(&values, captured_at_ms),
        };
        Ok(match built {
            Ok(mut event) => {
                let id = uuid::Uuid::new_v5(
                    &linegate_common_namespace(),
                    format!(
                        "result:{}:{}:{counter}:{}",
                        self.station_id,
                        self.device.name,
                        hex::encode(&raw_dump)
                    )
                    .as_bytes(),
                );
                event.event_id = id.hyphenated().to_string();
                Intake::Event(Box::new(envelope(
                    self.station_id,
                    event,
                    None,
                    captured_at_ms,
                )))
            }
            Err(reason) => {
                tracing::warn!(device = %self.device.name, counter, %reason, "quarantined a PLC result");
                Intake::Quarantine(QuarantineEntry {
                    source: self.source.to_owned(),
                    origin: format!("counter {counter}"),
                    payload: raw_dump,
                    reason,
                    received_at_ms: captured_at_ms,
                })
            }
        })
    }

    async fn read_words(
        &mut self,
        ctx: &mut Context,
        table: Table,
        address: u16,
        count: u16,
    ) -> Result<Vec<u16>, DeviceError> {
        match self.read(ctx, table, address, count).await? {
            Raw::Words(words) if words.len() >= usize::from(count) => Ok(words),
            _ => Err(DeviceError::Modbus {
                address,
                reason: "short answer".into(),
            }),
        }
    }

    async fn read(
        &mut self,
        ctx: &mut Context,
        table: Table,
        address: u16,
        count: u16,
    ) -> Result<Raw, DeviceError> {
        let timeout = Duration::from_millis(self.device.timeout_ms);
        let fail = |reason: String| DeviceError::Modbus { address, reason };
        let answer = async {
            Ok::<_, DeviceError>(match table {
                Table::Holding => Raw::Words(flatten(
                    ctx.read_holding_registers(address, count).await,
                    &fail,
                )?),
                Table::Input => Raw::Words(flatten(
                    ctx.read_input_registers(address, count).await,
                    &fail,
                )?),
                Table::Coil => Raw::Bits(flatten(ctx.read_coils(address, count).await, &fail)?),
                Table::Discrete => Raw::Bits(flatten(
                    ctx.read_discrete_inputs(address, count).await,
                    &fail,
                )?),
            })
        };
        tokio::time::timeout(timeout, answer)
            .await
            .map_err(|_| DeviceError::Timeout(self.device.timeout_ms))?
    }

    async fn write(
        &mut self,
        ctx: &mut Context,
        address: u16,
        value: u16,
    ) -> Result<(), DeviceError> {
        let timeout = Duration::from_millis(self.device.timeout_ms);
        let fail = |reason: String| DeviceError::Modbus { address, reason };
        let written = tokio::time::timeout(timeout, ctx.write_single_register(address, value))
            .await
            .map_err(|_| DeviceError::Timeout(self.device.timeout_ms))?;
        flatten(written, &fail)
    }
}

fn flatten<T>(
    result: tokio_modbus::Result<T>,
    fail: &impl Fn(String) -> DeviceError,
) -> Result<T, DeviceError> {
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(exception)) => Err(fail(format!("Modbus exception {exception}"))),
        Err(error) => Err(fail(error.to_string())),
    }
}

/// Namespace of the edge's derived ids (UUID v5); fixed forever.
fn linegate_common_namespace() -> uuid::Uuid {
    uuid::Uuid::from_u128(0x6c69_6e65_6761_7465_8000_0000_0000_0002)
}
