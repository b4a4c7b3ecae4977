//! Mosquitto and Apache Kafka on free loopback ports, started through `scripts/run-*.sh` like the demo does.

use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{free_port, repo_root, wait_for_port, ChildProcess};

/// A cold JVM on a busy 2-core machine (two tests starting brokers while others build) can take a while.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A Mosquitto broker with persistence in a temporary directory.
pub struct Mosquitto {
    port: u16,
    dir: TempDir,
    process: Option<ChildProcess>,
}

impl Mosquitto {
    /// Starts a broker on a free port.
    pub fn start() -> anyhow::Result<Self> {
        let mut broker = Self {
            port: free_port(),
            dir: tempfile::tempdir()?,
            process: None,
        };
        broker.start_again()?;
        Ok(broker)
    }

    /// (Re)starts on the same port and state directory.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        let script = repo_root().join("scripts/run-mosquitto.sh");
        let data = self.dir.path().join("data");
        let mut process = ChildProcess::spawn(
            "mosquitto",
            &script,
            &[
                &self.port.to_string(),
                data.to_str().expect("utf-8 temp path"),
            ],
            &[],
            &self.dir.path().join("mosquitto.log"),
        )?;
        wait_for_port(&mut process, self.port, START_TIMEOUT)?;
        self.process = Some(process);
        Ok(())
    }

    /// Stops the broker (SIGKILL).
    pub fn stop(&mut self) {
        self.process.take();
    }

    /// The broker's process id while it runs, to read its CPU time.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ChildProcess::pid)
    }

    /// The broker's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's log so far (connections with their protocol version, e.g. `(p5, c0, k30)`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

/// An Apache Kafka node (KRaft, broker and controller combined) started by `scripts/run-kafka.sh`, with its
/// data in a temporary directory that outlives [`Kafka::stop`], so [`Kafka::start_again`] restarts the same
/// broker (same directory and ports) with its topics, offsets and transactions.
pub struct Kafka {
    port: u16,
    controller_port: u16,
    dir: TempDir,
    starts: u32,
    process: Option<ChildProcess>,
}

impl Kafka {
    /// Formats a fresh broker on free ports and starts it; returns when it serves requests.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with_properties("")
    }

    /// [`Kafka::start`] with extra `server.properties` lines, e.g. a lower `transaction.max.timeout.ms`.
    pub fn start_with_properties(properties: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("extra.properties"), properties)?;
        let mut broker = Self {
            port: free_port(),
            controller_port: free_port(),
            dir,
            starts: 0,
            process: None,
        };
        broker.start_again()?;
        Ok(broker)
    }

    /// (Re)starts on the same directory and ports; returns when the broker logged that it started and
    /// answers a metadata request.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let script = repo_root().join("scripts/run-kafka.sh");
        let data = self.dir.path().join("node");
        let extra = self.dir.path().join("extra.properties");
        let mut process = ChildProcess::spawn(
            "kafka",
            &script,
            &[
                data.to_str().expect("utf-8 temp path"),
                &self.port.to_string(),
                &self.controller_port.to_string(),
            ],
            &[(
                "LINEGATE_KAFKA_EXTRA_PROPERTIES",
                extra.display().to_string(),
            )],
            &self.log_path(),
        )?;
        process.wait_for_log("Kafka Server started", START_TIMEOUT)?;
        crate::kafka::wait_ready(&self.bootstrap(), START_TIMEOUT)
            .map_err(|e| anyhow::anyhow!("{e}\n{}", process.log_tail(20)))?;
        self.process = Some(process);
        Ok(())
    }

    /// Stops the broker with SIGKILL: a crash, so the next start recovers its logs.
    pub fn stop(&mut self) {
        self.process.take();
    }

    /// The broker's process id while it runs (the run script execs it), to read its CPU time or signal it.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ChildProcess::pid)
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's output of its latest start, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process
            .as_ref()
            .map(|p| p.log_tail(lines))
            .unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("kafka-{}.log", self.starts))
    }
}
