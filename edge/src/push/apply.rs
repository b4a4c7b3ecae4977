//! Turning a pushed record into a decision the run loop acts on: resuming the last-known-good config at start,
//! and, for each record, either the config to switch to (kept on disk first) or a CONFIG_REJECTED report.
//! Restarting the sources is `run`'s part; nothing here touches them.

use linegate_station_config::signed::SignedConfigError;

use super::state::{Decision, PushState};
use super::watch::Pushed;
use super::{report, PushMetrics};
use crate::outbox::OutboxWriter;
use linegate_station_config::EdgeConfig;

/// The push state (with `[config_push]`) and the config to start with: the last-known-good pushed config
/// overlaid on `local` if there is one that still verifies and validates, else `local`. Fails only when the
/// trusted key cannot be read (it was checked at load; the file may have gone since).
pub fn resume_pushed(
    local: &EdgeConfig,
) -> Result<(Option<PushState>, EdgeConfig), SignedConfigError> {
    let Some(push_config) = &local.config_push else {
        return Ok((None, local.clone()));
    };
    let mut state = PushState::new(local, push_config)?;
    let config = match state.resume(local) {
        Ok(Some(config)) => {
            tracing::info!(
                version = state.applied_version(),
                "starting with the last-known-good pushed config"
            );
            config
        }
        Ok(None) => local.clone(),
        Err(reason) => {
            tracing::error!(%reason, "the last-known-good pushed config does not apply any more; starting with the local file alone");
            local.clone()
        }
    };
    Ok((Some(state), config))
}

/// Decides about one pushed record: reports a refusal (or a record already in force) and returns None, or
/// keeps the record as last-known-good and returns the config to switch to with its CONFIG_APPLIED report.
pub async fn decide(
    pushed: Pushed,
    state: &mut PushState,
    local: &EdgeConfig,
    writer: &OutboxWriter,
    metrics: &PushMetrics,
) -> Option<(Box<EdgeConfig>, linegate_schemas::EdgeEvent)> {
    let station = local.station.id.as_str();
    let Some(value) = pushed.value else {
        tracing::warn!(partition = pushed.partition, offset = pushed.offset, "a tombstone for this station on the pushed-config topic is ignored; the config in force stays");
        return None;
    };
    let (config, envelope) = match state.consider(local, &value) {
        Decision::Apply { config, envelope } => (config, envelope),
        Decision::AlreadyApplied { envelope } => {
            tracing::info!(version = envelope.version, "pushed config already in force");
            // Stored once (derived id): repeats the report only if a crash came between keeping and reporting.
            report::store(writer, report::applied(station, &envelope)).await;
            return None;
        }
        Decision::Reject { version, reason } => {
            reject(state, local, writer, metrics, version, &reason, &value).await;
            return None;
        }
    };
    let version = envelope.version;
    let applied = report::applied(station, &envelope);
    if let Err(error) = state.keep(*envelope) {
        let reason = format!("cannot keep it as last-known-good in the data directory: {error}");
        reject(
            state,
            local,
            writer,
            metrics,
            Some(version),
            &reason,
            &value,
        )
        .await;
        return None;
    }
    metrics.applied.inc();
    metrics
        .version
        .set(i64::try_from(version).unwrap_or(i64::MAX));
    tracing::info!(version, "pushed config applied: restarting the sources with it; [forward] and [outbox] changes take effect at the next restart");
    Some((config, applied))
}

async fn reject(
    state: &PushState,
    local: &EdgeConfig,
    writer: &OutboxWriter,
    metrics: &PushMetrics,
    version: Option<u64>,
    reason: &str,
    value: &[u8],
) {
    metrics.rejected.inc();
    let claimed = version.map_or_else(|| "unreadable".to_owned(), |v| v.to_string());
    tracing::error!(version = %claimed, %reason, in_force = state.applied_version(), "pushed config refused; the config in force stays");
    let event = report::rejected(
        &local.station.id,
        version,
        reason,
        value,
        state.applied_version(),
    );
    report::store(writer, event).await;
}
