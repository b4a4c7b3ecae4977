//! Mosquitto and tansu on free loopback ports, started through `scripts/run-*.sh` like the demo does.

use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{free_port, repo_root, wait_for_port, ChildProcess};

const START_TIMEOUT: Duration = Duration::from_secs(20);

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

/// A tansu Kafka-API broker.
pub struct Tansu {
    port: u16,
    storage: String,
    dir: TempDir,
    process: Option<ChildProcess>,
}

impl Tansu {
    /// Starts a broker whose data lives in memory (lost when it stops).
    pub fn start_memory() -> anyhow::Result<Self> {
        Self::start_with("memory://tansu/".to_owned(), tempfile::tempdir()?)
    }

    /// Starts a broker whose data lives in a SQLite file, so that it survives [`Tansu::stop`].
    pub fn start_sqlite() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        // tansu reads `sqlite://PATH` with PATH relative to its working directory; an absolute path needs
        // the extra slash of `sqlite:////abs/path`.
        let storage = format!("sqlite:///{}", dir.path().join("tansu.db").display());
        Self::start_with(storage, dir)
    }

    fn start_with(storage: String, dir: TempDir) -> anyhow::Result<Self> {
        let mut broker = Self {
            port: free_port(),
            storage,
            dir,
            process: None,
        };
        broker.start_again()?;
        Ok(broker)
    }

    /// (Re)starts on the same port and storage; returns when it answers a metadata request.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        let script = repo_root().join("scripts/run-tansu.sh");
        let mut process = ChildProcess::spawn(
            "tansu",
            &script,
            &[&self.port.to_string(), &self.storage],
            &[],
            &self.log_path(),
        )?;
        wait_for_port(&mut process, self.port, START_TIMEOUT)?;
        crate::kafka::wait_ready(&self.bootstrap(), START_TIMEOUT)
            .map_err(|e| anyhow::anyhow!("{e}\n{}", process.log_tail(20)))?;
        self.process = Some(process);
        Ok(())
    }

    /// Stops the broker (SIGKILL).
    pub fn stop(&mut self) {
        self.process.take();
    }

    /// The broker's process id while it runs (the run script execs it), to read its CPU time.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ChildProcess::pid)
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("tansu.log")
    }
}
