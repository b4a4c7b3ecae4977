//! Running figures of one window: counts, Welford's mean and variance, and process capability.
//!
//! Welford's update keeps the variance exact enough over thousands of scores without storing them, so a
//! window's memory does not grow with its traffic.

/// What a window has seen so far.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Accumulator {
    /// Completed inspections.
    pub count: i64,
    /// Of those, failed against their threshold.
    pub fail_count: i64,
    /// Inspections with a score.
    pub scored: i64,
    mean: f64,
    m2: f64,
}

use crate::config::SpecLimits;

/// The closed window's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Completed inspections.
    pub count: i64,
    /// Failed ones.
    pub fail_count: i64,
    /// `fail_count / count`.
    pub fail_rate: f64,
    /// Inspections with a score.
    pub scored: i64,
    /// Mean score.
    pub mean: Option<f64>,
    /// Sample standard deviation.
    pub stddev: Option<f64>,
    /// (USL - LSL) / 6 sigma, with both limits and spread.
    pub cp: Option<f64>,
    /// min(USL - mean, mean - LSL) / 3 sigma over the limits that are set, with spread.
    pub cpk: Option<f64>,
}

impl Accumulator {
    /// Adds one completed inspection.
    pub fn add(&mut self, score: Option<f64>, failed: bool) {
        self.count += 1;
        if failed {
            self.fail_count += 1;
        }
        if let Some(score) = score {
            self.scored += 1;
            let delta = score - self.mean;
            self.mean += delta / self.scored as f64;
            self.m2 += delta * (score - self.mean);
        }
    }

    /// The figures against `spec`.
    pub fn figures(&self, spec: SpecLimits) -> Figures {
        let mean = (self.scored > 0).then_some(self.mean);
        let stddev = (self.scored > 1).then(|| (self.m2 / (self.scored - 1) as f64).sqrt());
        let sigma = stddev.filter(|s| *s > 0.0);
        let cp = match (spec.lsl, spec.usl, sigma) {
            (Some(lsl), Some(usl), Some(sigma)) => Some((usl - lsl) / (6.0 * sigma)),
            _ => None,
        };
        let cpk = match (mean, sigma) {
            (Some(mean), Some(sigma)) => [
                spec.usl.map(|usl| usl - mean),
                spec.lsl.map(|lsl| mean - lsl),
            ]
            .into_iter()
            .flatten()
            .map(|distance| distance / (3.0 * sigma))
            .reduce(f64::min),
            _ => None,
        };
        Figures {
            count: self.count,
            fail_count: self.fail_count,
            fail_rate: if self.count == 0 {
                0.0
            } else {
                self.fail_count as f64 / self.count as f64
            },
            scored: self.scored,
            mean,
            stddev,
            cp,
            cpk,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn figures_match_the_textbook_formulas() {
        let mut acc = Accumulator::default();
        let scores = [0.90, 0.92, 0.88, 0.94, 0.86];
        for (i, s) in scores.iter().enumerate() {
            acc.add(Some(*s), i == 4);
        }
        let spec = SpecLimits {
            lsl: Some(0.80),
            usl: Some(1.00),
        };
        let f = acc.figures(spec);
        let mean = 0.9;
        let var = scores.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / 4.0;
        let sigma = var.sqrt();
        assert_eq!((f.count, f.fail_count, f.scored), (5, 1, 5));
        assert!(close(f.fail_rate, 0.2));
        assert!(close(f.mean.unwrap(), mean));
        assert!(close(f.stddev.unwrap(), sigma));
        assert!(close(f.cp.unwrap(), 0.2 / (6.0 * sigma)));
        assert!(close(f.cpk.unwrap(), 0.1 / (3.0 * sigma)));
    }

    #[test]
    fn a_one_sided_spec_has_cpk_but_no_cp() {
        let mut acc = Accumulator::default();
        for s in [0.9, 0.95, 0.85] {
            acc.add(Some(s), false);
        }
        let f = acc.figures(SpecLimits {
            lsl: Some(0.8),
            usl: None,
        });
        assert_eq!(f.cp, None);
        assert!(close(f.cpk.unwrap(), (0.9 - 0.8) / (3.0 * 0.05)));
    }

    #[test]
    fn without_spread_or_scores_capability_is_unknown_not_infinite() {
        let mut acc = Accumulator::default();
        acc.add(Some(0.9), false);
        acc.add(Some(0.9), false);
        acc.add(None, true);
        let f = acc.figures(SpecLimits {
            lsl: Some(0.8),
            usl: Some(1.0),
        });
        assert_eq!((f.count, f.scored, f.fail_count), (3, 2, 1));
        assert_eq!(f.stddev, Some(0.0));
        assert_eq!((f.cp, f.cpk), (None, None));
        assert_eq!(
            Accumulator::default().figures(SpecLimits::default()).mean,
            None
        );
    }
}
