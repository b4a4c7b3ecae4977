//! systemd integration (`Type=notify`): READY once the agent runs, WATCHDOG pings while its loops are alive,
//! STOPPING on shutdown. Outside systemd (no NOTIFY_SOCKET) every call is a no-op.
//!
//! The watchdog proves liveness, not just that the process exists: a ping is sent only when the forwarder
//! loop has beaten recently and the outbox writer answered a round trip, so a stuck loop lets systemd restart
//! the agent.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use sd_notify::NotifyState;
use tokio::sync::watch;

use crate::outbox::OutboxWriter;

/// A loop's last sign of life, epoch milliseconds.
#[derive(Clone, Default)]
pub struct Heartbeat(Arc<AtomicI64>);

impl Heartbeat {
    /// Records that the loop is alive now.
    pub fn beat(&self) {
        self.0
            .store(linegate_common::process::now_ms(), Ordering::Relaxed);
    }

    /// Milliseconds since the last beat.
    pub fn age_ms(&self) -> i64 {
        linegate_common::process::now_ms() - self.0.load(Ordering::Relaxed)
    }
}

/// Tells systemd the agent is ready.
pub fn ready() {
    notify(&[NotifyState::Ready, NotifyState::Status("running")]);
}

/// Tells systemd the agent is stopping.
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

fn notify(state: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(false, state) {
        tracing::warn!(%error, "cannot notify systemd");
    }
}

/// Pings the systemd watchdog at half its interval while `forwarder` beats, `writer` answers and no source
/// task has died (`source_failures`); does nothing when the unit has no `WatchdogSec`.
pub fn spawn_watchdog(
    forwarder: Heartbeat,
    writer: OutboxWriter,
    source_failures: Counter,
    mut shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    let interval = Duration::from_micros(usec / 2);
    let stale_ms = i64::try_from(usec / 1000).unwrap_or(i64::MAX);
    tracing::info!(interval = ?interval, "systemd watchdog enabled");
    Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            let forwarder_alive = forwarder.age_ms() < stale_ms;
            let writer_alive = tokio::time::timeout(interval, writer.ping())
                .await
                .is_ok_and(|r| r.is_ok());
            let sources_alive = source_failures.get() == 0;
            if forwarder_alive && writer_alive && sources_alive {
                notify(&[NotifyState::Watchdog]);
            } else {
                tracing::error!(
                    forwarder_alive,
                    writer_alive,
                    sources_alive,
                    "a loop of the agent stopped answering; withholding the watchdog ping so systemd restarts it"
                );
            }
        }
    }))
}
