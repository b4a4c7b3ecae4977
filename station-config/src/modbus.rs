//! The `[modbus]` section: devices, how to reach them, the result handshake, and the register map.
//!
//! Everything is checked at load (`validate`), so a typo in an address or a type is an error naming the device
//! and the field before the agent starts, not a wrong value on the line later.

use std::collections::BTreeMap;

use linegate_common::conf::{ConfigError, ConfigFile};
use serde::Deserialize;

/// The Modbus source: one entry per PLC.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusConfig {
    /// The PLCs of this station.
    pub devices: Vec<DeviceConfig>,
}

/// One PLC.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Name in logs and metrics (`modbus:<name>`), and part of every event id from this device.
    pub name: String,
    /// Modbus TCP: `tcp = { host = "10.0.0.7", port = 502 }`; exactly one of `tcp` and `rtu`.
    pub tcp: Option<TcpTransport>,
    /// Modbus RTU: `rtu = { path = "/dev/ttyUSB0", baud = 19200, parity = "even" }`.
    pub rtu: Option<RtuTransport>,
    /// Modbus unit (slave) id.
    #[serde(default = "default_unit")]
    pub unit_id: u8,
    /// How often the result counter is read.
    #[serde(default = "default_poll")]
    pub poll_interval_ms: u64,
    /// Longest wait for one request.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// First wait before reconnecting after an error; doubled up to `backoff_max_ms`.
    #[serde(default = "default_backoff_min")]
    pub backoff_min_ms: u64,
    /// Longest wait between reconnects.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
    /// The result handshake registers.
    pub handshake: Handshake,
    /// Where each InspectionEvent field comes from.
    pub fields: Vec<FieldSpec>,
}

/// Modbus TCP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpTransport {
    /// Host name or address.
    pub host: String,
    /// Port (502 by default).
    #[serde(default = "default_port")]
    pub port: u16,
}

/// Modbus RTU on a serial line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtuTransport {
    /// Device path, e.g. `/dev/ttyUSB0`.
    pub path: String,
    /// Baud rate.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// `none`, `even` or `odd`.
    #[serde(default)]
    pub parity: Parity,
    /// 7 or 8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    /// 1 or 2.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
}

/// How a device is reached, once validated.
#[derive(Debug, Clone, Copy)]
pub enum Transport<'a> {
    /// Modbus TCP.
    Tcp(&'a TcpTransport),
    /// Modbus RTU.
    Rtu(&'a RtuTransport),
}

impl DeviceConfig {
    /// The transport; validation guarantees exactly one is set.
    pub fn transport(&self) -> Transport<'_> {
        match (&self.tcp, &self.rtu) {
            (Some(tcp), _) => Transport::Tcp(tcp),
            (None, Some(rtu)) => Transport::Rtu(rtu),
            (None, None) => unreachable!("validated: a device has tcp or rtu"),
        }
    }
}

/// Serial parity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    /// No parity bit.
    #[default]
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// The registers of the result handshake: the PLC bumps `counter` (holding register, u16) after writing a
/// result; the edge commits the result and then writes the counter value into `ack`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handshake {
    /// Holding register the PLC increments per result.
    pub counter: u16,
    /// Holding register the edge writes the committed counter value into.
    pub ack: u16,
}

/// The four Modbus tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// Read/write 16-bit registers (function 3).
    #[default]
    Holding,
    /// Read-only 16-bit registers (function 4).
    Input,
    /// Read/write bits (function 1).
    Coil,
    /// Read-only bits (function 2).
    Discrete,
}

/// How registers are read into a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// Unsigned 16 bits.
    U16,
    /// Signed 16 bits.
    I16,
    /// Unsigned 32 bits (2 registers).
    U32,
    /// Signed 32 bits (2 registers).
    I32,
    /// Unsigned 64 bits (4 registers).
    U64,
    /// IEEE 754 single (2 registers).
    F32,
    /// IEEE 754 double (4 registers).
    F64,
    /// A coil or discrete input, or a register that is non-zero.
    Bool,
    /// Fixed-length text, two bytes per register, trailing NULs and spaces removed.
    String,
}

/// Order of bytes in a register, or of registers in a multi-register value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Most significant first (Modbus convention).
    #[default]
    Big,
    /// Least significant first.
    Little,
}

/// One InspectionEvent field (or metadata entry) and where it comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// `event_type`, `inspection_id`, `batch_id`, `chip_id`, `inspection_type`, `status`, `quality_score`,
    /// `timestamp` (epoch ms) or `metadata.<key>`.
    pub target: String,
    /// A fixed value instead of a register (e.g. the inspection type of a single-purpose station).
    pub constant: Option<String>,
    /// Table of the register.
    #[serde(default)]
    pub table: Table,
    /// Address of the (first) register or bit.
    pub address: Option<u16>,
    /// Value type.
    #[serde(rename = "type")]
    pub value_type: Option<ValueType>,
    /// Registers of a `string`.
    pub length: Option<u16>,
    /// Byte order within a register.
    #[serde(default)]
    pub byte_order: Order,
    /// Register order of 32- and 64-bit values.
    #[serde(default)]
    pub word_order: Order,
    /// Multiplied with a numeric value (before `offset`).
    pub scale: Option<f64>,
    /// Added to a numeric value (after `scale`).
    pub offset: Option<f64>,
    /// Text for integer values, e.g. `{ "0" = "PASSED", "1" = "FAILED" }`.
    #[serde(rename = "enum")]
    pub enum_table: Option<BTreeMap<String, String>>,
}

/// InspectionEvent fields a device must map (a register or a constant).
const REQUIRED: [&str; 5] = [
    "inspection_id",
    "batch_id",
    "chip_id",
    "inspection_type",
    "status",
];
const OPTIONAL: [&str; 3] = ["event_type", "quality_score", "timestamp"];

impl FieldSpec {
    /// Registers (or bits) the field occupies.
    pub fn width(&self) -> u16 {
        match self.value_type {
            Some(ValueType::U32 | ValueType::I32 | ValueType::F32) => 2,
            Some(ValueType::U64 | ValueType::F64) => 4,
            Some(ValueType::String) => self.length.unwrap_or(1),
            _ => 1,
        }
    }
}

impl ModbusConfig {
    /// Checks every device; errors name `modbus.devices[i]` and the field.
    pub fn validate(&self, file: &ConfigFile) -> Result<(), ConfigError> {
        if self.devices.is_empty() {
            return Err(file.invalid("modbus.devices", "lists no device"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, device) in self.devices.iter().enumerate() {
            let key = |k: &str| format!("modbus.devices[{i}].{k}");
            if device.name.is_empty() || !names.insert(device.name.as_str()) {
                return Err(file.invalid(&key("name"), "must be set and unique"));
            }
            if device.poll_interval_ms == 0 || device.timeout_ms == 0 {
                return Err(file.invalid(
                    &key("poll_interval_ms"),
                    "poll_interval_ms and timeout_ms must be at least 1",
                ));
            }
            if device.backoff_min_ms == 0 || device.backoff_max_ms < device.backoff_min_ms {
                return Err(file.invalid(
                    &key("backoff_min_ms"),
                    "backoff_min_ms must be at least 1 and not above backoff_max_ms",
                ));
            }
            if device.handshake.counter == device.handshake.ack {
                return Err(file.invalid(
                    &key("handshake"),
                    "counter and ack must be different registers",
                ));
            }
            match (&device.tcp, &device.rtu) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(file.invalid(
                        &key("tcp"),
                        format!(
                            "device {} needs exactly one of `tcp` and `rtu`",
                            device.name
                        ),
                    ))
                }
                (None, Some(rtu)) => {
                    if !(rtu.data_bits == 7 || rtu.data_bits == 8)
                        || !(rtu.stop_bits == 1 || rtu.stop_bits == 2)
                    {
                        return Err(file.invalid(
                            &key("rtu"),
                            "data_bits must be 7 or 8 and stop_bits 1 or 2",
                        ));
                    }
                }
                (Some(_), None) => {}
            }
            for (j, field) in device.fields.iter().enumerate() {
                let at = format!("modbus.devices[{i}].fields[{j}]");
                check_field(field).map_err(|msg| {
                    file.invalid(&at, format!("({} `{}`): {msg}", device.name, field.target))
                })?;
            }
            for required in REQUIRED {
                if !device.fields.iter().any(|f| f.target == required) {
                    return Err(file.invalid(
                        &key("fields"),
                        format!(
                            "device {} maps no `{required}`: add a field with a register or a constant",
                            device.name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check_field(field: &FieldSpec) -> Result<(), String> {
    let target = field.target.as_str();
    let known = REQUIRED.contains(&target)
        || OPTIONAL.contains(&target)
        || target
            .strip_prefix("metadata.")
            .is_some_and(|k| !k.is_empty());
    if !known {
        return Err(format!(
            "unknown target; use one of {}, {} or metadata.<key>",
            REQUIRED.join(", "),
            OPTIONAL.join(", ")
        ));
    }
    match (&field.constant, field.address, field.value_type) {
        (Some(_), None, None) => return Ok(()),
        (Some(_), _, _) => return Err("a constant has no address or type".into()),
        (None, Some(_), Some(_)) => {}
        (None, _, _) => return Err("needs `address` and `type`, or a `constant`".into()),
    }
    let value_type = field.value_type.expect("checked above");
    let bit_table = matches!(field.table, Table::Coil | Table::Discrete);
    if bit_table && value_type != ValueType::Bool {
        return Err("coils and discrete inputs hold bits: use type = \"bool\"".into());
    }
    if value_type == ValueType::String && field.length.unwrap_or(0) == 0 {
        return Err("a string needs `length` (registers, two characters each)".into());
    }
    if u32::from(field.address.unwrap_or(0)) + u32::from(field.width()) > 65536 {
        return Err("runs past register 65535".into());
    }
    if let Some(table) = &field.enum_table {
        for key in table.keys() {
            if key.parse::<i64>().is_err() {
                return Err(format!("enum key `{key}` is not an integer"));
            }
        }
    }
    Ok(())
}

fn default_unit() -> u8 {
    1
}
fn default_poll() -> u64 {
    100
}
fn default_timeout() -> u64 {
    1000
}
fn default_backoff_min() -> u64 {
    500
}
fn default_backoff_max() -> u64 {
    30_000
}
fn default_port() -> u16 {
    502
}
fn default_baud() -> u32 {
    19_200
}
fn default_data_bits() -> u8 {
    8
}
fn default_stop_bits() -> u8 {
    1
}
