//! Sources: where station results come from. Each hands events to the outbox and acknowledges upstream only
//! with the commit receipt in hand. Every source task runs under [`supervise`], so that one that dies makes
//! the edge unhealthy instead of silently idle.

pub mod modbus;
pub mod mqtt;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::observe::EdgeMetrics;

/// Runs a source task and, when it ends without having been asked to stop (it returned or panicked),
/// logs it, marks its sources down and counts it: `/healthz` turns 503 and the watchdog is starved, so
/// that systemd restarts the edge instead of leaving it silently idle.
pub(crate) fn supervise(
    task: impl std::future::Future<Output = ()> + Send + 'static,
    sources: Vec<String>,
    metrics: &EdgeMetrics,
    stopped: &watch::Receiver<bool>,
) -> JoinHandle<()> {
    let task = tokio::spawn(task);
    let (metrics, stopped) = (metrics.clone(), stopped.clone());
    tokio::spawn(async move {
        let outcome = task.await;
        // Asked to stop, or the agent is going away (the stop signal's sender dropped): no failure.
        if *stopped.borrow() || stopped.has_changed().is_err() {
            return;
        }
        let how = match outcome {
            Ok(()) => "returned".to_owned(),
            Err(error) => error.to_string(),
        };
        tracing::error!(sources = ?sources, how, "a source task stopped unexpectedly: no results are taken from it; restart the edge");
        for source in &sources {
            metrics.set_source_up(source, false);
        }
        metrics.source_failures.inc();
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_source_task_that_dies_is_counted_and_its_source_marked_down() {
        let metrics = EdgeMetrics::default();
        metrics.set_source_up("mqtt", true);
        let (_stop, stopped) = watch::channel(false);
        let panicking = supervise(
            async { panic!("a bug in a source") },
            vec!["mqtt".to_owned()],
            &metrics,
            &stopped,
        );
        panicking.await.unwrap();
        assert_eq!(metrics.source_failures.get(), 1);
        let label = crate::observe::metrics::SourceLabel {
            source: "mqtt".to_owned(),
        };
        // The family's guard is dropped at once: holding it would block the next supervise's writes.
        let up = metrics.source_up.get_or_create(&label).get();
        assert_eq!(up, 0);
        supervise(
            async {},
            vec!["modbus:press".to_owned()],
            &metrics,
            &stopped,
        )
        .await
        .unwrap();
        assert_eq!(
            metrics.source_failures.get(),
            2,
            "a source that returns by itself counts too"
        );
    }

    #[tokio::test]
    async fn a_source_stopped_on_purpose_is_no_failure() {
        let metrics = EdgeMetrics::default();
        let (stop, stopped) = watch::channel(false);
        let mut watching = stopped.clone();
        let task = supervise(
            async move {
                let _ = watching.changed().await;
            },
            vec!["mqtt".to_owned()],
            &metrics,
            &stopped,
        );
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(metrics.source_failures.get(), 0);
    }
}
