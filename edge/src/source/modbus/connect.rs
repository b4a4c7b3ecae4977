//! A device's transport: opening Modbus TCP (name resolved at each attempt) or RTU on a serial line, and
//! reading and writing registers, each within the device's timeout.

use std::time::Duration;

use linegate_station_config::modbus::{DeviceConfig, Parity, Table, Transport};
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::Slave;

use super::decode::Raw;

/// Why one step with the device failed; the loop reconnects after any of them.
#[derive(Debug, thiserror::Error)]
pub(super) enum DeviceError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no answer within {0} ms")]
    Timeout(u64),
    #[error("register {address}: {reason}")]
    Modbus { address: u16, reason: String },
    #[error("the outbox writer has stopped")]
    WriterGone,
}

/// A client context for `device`, or why not; the caller retries with backoff.
pub(super) async fn connect(device: &DeviceConfig) -> Result<Context, DeviceError> {
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

pub(super) async fn read_words(
    ctx: &mut Context,
    device: &DeviceConfig,
    table: Table,
    address: u16,
    count: u16,
) -> Result<Vec<u16>, DeviceError> {
    match read(ctx, device, table, address, count).await? {
        Raw::Words(words) if words.len() >= usize::from(count) => Ok(words),
        _ => Err(DeviceError::Modbus {
            address,
            reason: "short answer".into(),
        }),
    }
}

pub(super) async fn read(
    ctx: &mut Context,
    device: &DeviceConfig,
    table: Table,
    address: u16,
    count: u16,
) -> Result<Raw, DeviceError> {
    let timeout = Duration::from_millis(device.timeout_ms);
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
        .map_err(|_| DeviceError::Timeout(device.timeout_ms))?
}

pub(super) async fn write(
    ctx: &mut Context,
    device: &DeviceConfig,
    address: u16,
    value: u16,
) -> Result<(), DeviceError> {
    let timeout = Duration::from_millis(device.timeout_ms);
    let fail = |reason: String| DeviceError::Modbus { address, reason };
    let written = tokio::time::timeout(timeout, ctx.write_single_register(address, value))
        .await
        .map_err(|_| DeviceError::Timeout(device.timeout_ms))?;
    flatten(written, &fail)
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
