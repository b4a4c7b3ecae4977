//! The `[quality]` table: pass thresholds, alert rules and the tumbling windows of the quality analytics.

use std::collections::BTreeMap;

use linegate_common::conf::{ConfigError, ConfigFile};
use serde::Deserialize;

/// Longest window, lateness or idle time: a window holds its events' figures in memory until it closes.
const WINDOW_SECS_CEILING: u64 = 31 * 24 * 3600;

/// Minimum passing scores: the quality policy, kept in config because it changes with the product.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityConfig {
    /// For inspection types without their own threshold.
    pub default_threshold: f64,
    /// Per inspection type.
    pub thresholds: BTreeMap<String, f64>,
    /// Rules that raise a QUALITY_ALERT.
    pub alerts: AlertRules,
    /// Tumbling windows with fail rate, mean, spread, Cp and Cpk.
    pub windows: WindowConfig,
    /// An event time further ahead of the bridge's clock than this is rejected (class `validation`): one
    /// such event would close its station's windows and leave every real event after it out as late.
    pub event_time_max_ahead_secs: u64,
    /// An event time older than this is rejected; unset (the default) = no bound, since an edge may hold
    /// events for as long as its outbox keeps them.
    pub event_time_max_age_hours: Option<u32>,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            default_threshold: 0.8,
            thresholds: BTreeMap::new(),
            alerts: AlertRules::default(),
            windows: WindowConfig::default(),
            event_time_max_ahead_secs: 3600,
            event_time_max_age_hours: None,
        }
    }
}

/// When one inspection event raises an alert on the quality topic, besides its verdict.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertRules {
    /// Defect severities that raise an alert on any inspection step that reports them.
    pub severities: Vec<String>,
    /// Per inspection type: a completed inspection scoring under this raises an alert.
    pub score_below: BTreeMap<String, f64>,
}

impl Default for AlertRules {
    fn default() -> Self {
        Self {
            severities: vec!["CRITICAL".to_owned()],
            score_below: BTreeMap::new(),
        }
    }
}

impl QualityConfig {
    /// The threshold that applies to `inspection_type`: its own entry, else the default.
    pub fn threshold_for(&self, inspection_type: &str) -> f64 {
        self.thresholds
            .get(inspection_type)
            .copied()
            .unwrap_or(self.default_threshold)
    }

    /// The range of event times accepted at handling time `now_ms`, epoch milliseconds.
    pub fn event_times(&self, now_ms: i64) -> std::ops::RangeInclusive<i64> {
        let ahead =
            i64::try_from(self.event_time_max_ahead_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let oldest = match self.event_time_max_age_hours {
            Some(hours) => now_ms.saturating_sub(i64::from(hours) * 3_600_000).max(0),
            None => 0,
        };
        oldest..=now_ms.saturating_add(ahead)
    }

    /// Checks thresholds, alert rules and windows; errors name the key under `[quality]`.
    pub(super) fn validate(&self, file: &ConfigFile) -> Result<(), ConfigError> {
        if !is_unit_score(self.default_threshold) {
            return Err(file.invalid(
                "quality.default_threshold",
                format!("{} is not a score between 0 and 1", self.default_threshold),
            ));
        }
        for (inspection_type, value) in &self.thresholds {
            if !is_unit_score(*value) {
                return Err(file.invalid(
                    &format!("quality.thresholds.{inspection_type}"),
                    format!("{value} is not a score between 0 and 1"),
                ));
            }
        }
        self.validate_analytics(file)
    }

    fn validate_analytics(&self, file: &ConfigFile) -> Result<(), ConfigError> {
        const SEVERITIES: [&str; 4] = ["LOW", "MEDIUM", "HIGH", "CRITICAL"];
        for severity in &self.alerts.severities {
            if !SEVERITIES.contains(&severity.as_str()) {
                return Err(file.invalid(
                    "quality.alerts.severities",
                    format!("`{severity}` is not LOW, MEDIUM, HIGH or CRITICAL"),
                ));
            }
        }
        for (inspection_type, value) in &self.alerts.score_below {
            if !is_unit_score(*value) {
                return Err(file.invalid(
                    &format!("quality.alerts.score_below.{inspection_type}"),
                    format!("{value} is not a score between 0 and 1"),
                ));
            }
        }
        if self.event_time_max_ahead_secs < 60 {
            return Err(file.invalid(
                "quality.event_time_max_ahead_secs",
                "must be at least 60: station clocks drift, and a tighter bound dead-letters good results",
            ));
        }
        if self.event_time_max_ahead_secs > WINDOW_SECS_CEILING {
            return Err(file.invalid(
                "quality.event_time_max_ahead_secs",
                format!("must be at most {WINDOW_SECS_CEILING} (31 days)"),
            ));
        }
        if self.event_time_max_age_hours == Some(0) {
            return Err(file.invalid(
                "quality.event_time_max_age_hours",
                "must be at least 1, or left out for no bound",
            ));
        }
        let windows = &self.windows;
        if windows.size_secs == 0 {
            return Err(file.invalid("quality.windows.size_secs", "must be at least 1"));
        }
        let durations = [
            ("size_secs", windows.size_secs),
            ("allowed_lateness_secs", windows.allowed_lateness_secs),
            ("idle_close_secs", windows.idle_close_secs),
        ];
        for (key, secs) in durations {
            if secs > WINDOW_SECS_CEILING {
                return Err(file.invalid(
                    &format!("quality.windows.{key}"),
                    format!("{secs} is more than {WINDOW_SECS_CEILING} (31 days)"),
                ));
            }
        }
        for (inspection_type, spec) in &windows.spec {
            let key = format!("quality.windows.spec.{inspection_type}");
            if spec.lsl.is_none() && spec.usl.is_none() {
                return Err(file.invalid(&key, "needs lsl, usl or both"));
            }
            if let (Some(lsl), Some(usl)) = (spec.lsl, spec.usl) {
                if lsl >= usl {
                    return Err(file.invalid(&key, format!("lsl {lsl} is not below usl {usl}")));
                }
            }
        }
        Ok(())
    }
}

/// Window settings from the bridge config (`[quality.windows]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Emit windows at all.
    pub enabled: bool,
    /// Window length in seconds of event time.
    pub size_secs: u64,
    /// How long after a window's end (event time) its events may still arrive.
    pub allowed_lateness_secs: u64,
    /// Close a window anyway when its station sent nothing for this long (processing time).
    pub idle_close_secs: u64,
    /// Specification limits per inspection type, for Cp and Cpk.
    pub spec: BTreeMap<String, SpecLimits>,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            size_secs: 300,
            allowed_lateness_secs: 60,
            idle_close_secs: 600,
            spec: BTreeMap::new(),
        }
    }
}

/// Spec limits of a quality score; either may be absent (a one-sided specification).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecLimits {
    /// Lower specification limit.
    pub lsl: Option<f64>,
    /// Upper specification limit.
    pub usl: Option<f64>,
}

fn is_unit_score(value: f64) -> bool {
    value.is_finite() && (0.0..=1.0).contains(&value)
}
