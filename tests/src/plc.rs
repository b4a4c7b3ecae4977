//! A station PLC simulator on a real Modbus server (tokio-modbus), over TCP or RTU on a serial path: it holds
//! registers and produces results with the handshake the edge expects (write the block, bump the counter,
//! wait until the edge writes the counter into the acknowledge register).

use std::future::{ready, Ready};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_modbus::{ExceptionCode, Request, Response};

/// Register map the simulator and the tests' station configs share.
pub mod map {
    /// Result counter (bumped by the PLC).
    pub const COUNTER: u16 = 0;
    /// Acknowledge register (written by the edge).
    pub const ACK: u16 = 1;
    /// inspection_id: 8 registers of text.
    pub const INSPECTION_ID: u16 = 10;
    /// chip_id: 8 registers of text.
    pub const CHIP_ID: u16 = 20;
    /// status: 0 = PASSED, 1 = FAILED.
    pub const STATUS: u16 = 30;
    /// quality score x 10000.
    pub const SCORE: u16 = 31;
    /// temperature, f32 big-endian words.
    pub const TEMPERATURE: u16 = 32;
    /// cycle number, u32 with the low word first.
    pub const CYCLE: u16 = 34;
}

/// The `[modbus]` section of a station config for a simulator device named `name` reached by `transport`
/// (TOML lines such as `transport = "tcp"`, `host = ...`, `port = ...`).
pub fn device_toml(name: &str, transport: &str) -> String {
    format!(
        r#"
[[modbus.devices]]
name = "{name}"
{transport}
unit_id = 1
poll_interval_ms = 20
timeout_ms = 1000
backoff_min_ms = 100
backoff_max_ms = 1000
handshake = {{ counter = {counter}, ack = {ack} }}
fields = [
  {{ target = "inspection_id", address = {iid}, type = "string", length = 8 }},
  {{ target = "chip_id", address = {chip}, type = "string", length = 8 }},
  {{ target = "batch_id", constant = "LOT-PLC" }},
  {{ target = "inspection_type", constant = "electrical" }},
  {{ target = "status", address = {status}, type = "u16", enum = {{ "0" = "PASSED", "1" = "FAILED" }} }},
  {{ target = "quality_score", address = {score}, type = "u16", scale = 0.0001 }},
  {{ target = "metadata.temperature", address = {temp}, type = "f32" }},
  {{ target = "metadata.cycle", address = {cycle}, type = "u32", word_order = "little" }},
]
"#,
        counter = map::COUNTER,
        ack = map::ACK,
        iid = map::INSPECTION_ID,
        chip = map::CHIP_ID,
        status = map::STATUS,
        score = map::SCORE,
        temp = map::TEMPERATURE,
        cycle = map::CYCLE,
    )
}

/// One result as the PLC writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlcResult {
    /// Up to 16 characters.
    pub inspection_id: String,
    /// Up to 16 characters.
    pub chip_id: String,
    /// PASSED (false) or FAILED (true).
    pub failed: bool,
    /// Score x 10000.
    pub score_e4: u16,
    /// Temperature.
    pub temperature: f32,
    /// Cycle number.
    pub cycle: u32,
}

impl PlcResult {
    /// Result number `n` of a test run.
    pub fn numbered(n: u32) -> Self {
        Self {
            inspection_id: format!("PLC-{n:06}"),
            chip_id: format!("CHIP-{n:06}"),
            failed: n % 7 == 0,
            score_e4: 7000 + (n % 3000) as u16,
            temperature: 20.5 + n as f32 / 4.0,
            cycle: 70_000 + n,
        }
    }
}

type Registers = Arc<Mutex<Vec<u16>>>;

#[derive(Clone)]
struct PlcService {
    registers: Registers,
}

impl tokio_modbus::server::Service for PlcService {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Response, ExceptionCode>>;

    fn call(&self, request: Self::Request) -> Self::Future {
        let mut registers = self.registers.lock().expect("registers");
        let range = |addr: u16, count: u16| {
            let (start, end) = (usize::from(addr), usize::from(addr) + usize::from(count));
            (end <= registers.len()).then_some(start..end)
        };
        ready(match request {
            Request::ReadHoldingRegisters(addr, count) => match range(addr, count) {
                Some(r) => Ok(Response::ReadHoldingRegisters(registers[r].to_vec())),
                None => Err(ExceptionCode::IllegalDataAddress),
            },
            Request::ReadInputRegisters(addr, count) => match range(addr, count) {
                Some(r) => Ok(Response::ReadInputRegisters(registers[r].to_vec())),
                None => Err(ExceptionCode::IllegalDataAddress),
            },
            Request::WriteSingleRegister(addr, value) => match registers.get_mut(usize::from(addr))
            {
                Some(slot) => {
                    *slot = value;
                    Ok(Response::WriteSingleRegister(addr, value))
                }
                None => Err(ExceptionCode::IllegalDataAddress),
            },
            _ => Err(ExceptionCode::IllegalFunction),
        })
    }
}

/// A running simulated PLC.
pub struct PlcSim {
    registers: Registers,
    port: u16,
    server: Option<JoinHandle<()>>,
}

impl PlcSim {
    /// Serves Modbus TCP on a free loopback port.
    pub async fn start_tcp() -> anyhow::Result<Self> {
        let mut sim = Self {
            registers: Arc::new(Mutex::new(vec![0; 100])),
            port: crate::process::free_port(),
            server: None,
        };
        sim.serve_tcp().await?;
        Ok(sim)
    }

    /// Serves Modbus RTU on the serial device `path` (e.g. one end of a socat pty pair).
    pub fn start_rtu(path: &str) -> anyhow::Result<Self> {
        let registers: Registers = Arc::new(Mutex::new(vec![0; 100]));
        let server = tokio_modbus::server::rtu::Server::new_from_path(path, 19_200)?;
        let service = PlcService {
            registers: Arc::clone(&registers),
        };
        let task = tokio::spawn(async move {
            let _ = server.serve_forever(service).await;
        });
        Ok(Self {
            registers,
            port: 0,
            server: Some(task),
        })
    }

    async fn serve_tcp(&mut self) -> anyhow::Result<()> {
        // SO_REUSEADDR: a restarted PLC binds its port again while old connections sit in TIME_WAIT.
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], self.port)))?;
        let listener: TcpListener = socket.listen(64)?;
        let server = tokio_modbus::server::tcp::Server::new(listener);
        let service = PlcService {
            registers: Arc::clone(&self.registers),
        };
        self.server = Some(tokio::spawn(async move {
            let on_connected = |stream, address| {
                let service = service.clone();
                async move {
                    tokio_modbus::server::tcp::accept_tcp_connection(stream, address, |_| {
                        Ok(Some(service.clone()))
                    })
                }
            };
            let _ = server.serve(&on_connected, |_| {}).await;
        }));
        Ok(())
    }

    /// The TCP port (0 for RTU).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops serving: connections drop, as when the PLC powers off. Registers are kept (retentive memory).
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    /// Drops every connection and serves again on the same port, as a PLC that restarts.
    pub async fn restart_tcp(&mut self) -> anyhow::Result<()> {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await; // the listener and connections are closed once the task is gone
        }
        self.serve_tcp().await
    }

    /// Powers off, then on with memory lost: connections drop, the counter and acknowledge register read
    /// `at` when it serves again (never while the old connections still see it).
    pub async fn power_cycle(&mut self, at: u16) -> anyhow::Result<()> {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
        self.set(map::COUNTER, &[at]);
        self.set(map::ACK, &[at]);
        self.serve_tcp().await
    }

    /// One register.
    pub fn get(&self, address: u16) -> u16 {
        self.registers.lock().expect("registers")[usize::from(address)]
    }

    /// Sets registers from `address` on.
    pub fn set(&self, address: u16, words: &[u16]) {
        let mut registers = self.registers.lock().expect("registers");
        let start = usize::from(address);
        registers[start..start + words.len()].copy_from_slice(words);
    }

    /// Writes `result` into the block (without touching the counter).
    pub fn write_block(&self, result: &PlcResult) {
        self.set(map::INSPECTION_ID, &text(&result.inspection_id, 8));
        self.set(map::CHIP_ID, &text(&result.chip_id, 8));
        self.set(map::STATUS, &[u16::from(result.failed)]);
        self.set(map::SCORE, &[result.score_e4]);
        let t = result.temperature.to_bits();
        self.set(map::TEMPERATURE, &[(t >> 16) as u16, t as u16]);
        self.set(
            map::CYCLE,
            &[result.cycle as u16, (result.cycle >> 16) as u16],
        );
    }

    /// Increments the counter by `step` (more than 1 simulates results lost at the station).
    pub fn bump(&self, step: u16) -> u16 {
        let next = self.get(map::COUNTER).wrapping_add(step);
        self.set(map::COUNTER, &[next]);
        next
    }

    /// The full handshake of one result: block, counter, then wait for the edge's acknowledgement.
    pub async fn produce(&self, result: &PlcResult, timeout: Duration) -> anyhow::Result<()> {
        self.write_block(result);
        let counter = self.bump(1);
        self.wait_ack(counter, timeout).await
    }

    /// Waits until the acknowledge register holds `counter`.
    pub async fn wait_ack(&self, counter: u16, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.get(map::ACK) != counter {
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the edge did not acknowledge counter {counter} within {timeout:?} (ack = {})",
                    self.get(map::ACK)
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

impl Drop for PlcSim {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `s` as `registers` registers, two bytes each, NUL-padded.
fn text(s: &str, registers: usize) -> Vec<u16> {
    let mut bytes = s.as_bytes().to_vec();
    bytes.resize(registers * 2, 0);
    bytes
        .chunks(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .collect()
}
