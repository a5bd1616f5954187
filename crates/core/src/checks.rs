//! Metric checks: the range a value must fall in, the verdict, and the message that shows the
//! measured value (Flagger only says that a check failed). Queries are rendered by
//! [`crate::query_template`].

use serin_api::canary::{CanaryMetric, ThresholdRange};

/// The range a metric's value must fall in. The deprecated `threshold` is a minimum for
/// `request-success-rate` and a maximum for anything else, as Flagger reads it.
pub fn range(metric: &CanaryMetric) -> ThresholdRange {
    if let Some(range) = metric.threshold_range {
        return range;
    }
    match metric.threshold {
        Some(threshold) if metric.name == "request-success-rate" => ThresholdRange {
            min: Some(threshold),
            max: None,
        },
        Some(threshold) => ThresholdRange {
            min: None,
            max: Some(threshold),
        },
        None => ThresholdRange::default(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub passed: bool,
    /// What was measured, in the metric's unit.
    pub value: f64,
    pub message: String,
}

/// Judges `value` against `range`, with a message like `request-success-rate 97.50 is below the minimum 99`.
pub fn judge(name: &str, value: f64, range: &ThresholdRange) -> Verdict {
    let shown = format!("{name} {value:.2}");
    if let Some(min) = range.min.filter(|min| value < *min) {
        return Verdict {
            passed: false,
            value,
            message: format!("{shown} is below the minimum {min}"),
        };
    }
    if let Some(max) = range.max.filter(|max| value > *max) {
        return Verdict {
            passed: false,
            value,
            message: format!("{shown} is above the maximum {max}"),
        };
    }
    let bounds = match (range.min, range.max) {
        (Some(min), Some(max)) => format!("within [{min}, {max}]"),
        (Some(min), None) => format!("at least {min}"),
        (None, Some(max)) => format!("at most {max}"),
        (None, None) => "with no range to meet".to_string(),
    };
    Verdict {
        passed: true,
        value,
        message: format!("{shown} is {bounds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(min: Option<f64>, max: Option<f64>) -> ThresholdRange {
        ThresholdRange { min, max }
    }

    #[test]
    fn judges_against_the_range_and_shows_the_value() {
        let cases = [
            (
                97.5,
                range(Some(99.0), None),
                false,
                "request-success-rate 97.50 is below the minimum 99",
            ),
            (
                99.5,
                range(Some(99.0), None),
                true,
                "request-success-rate 99.50 is at least 99",
            ),
            (
                600.0,
                range(None, Some(500.0)),
                false,
                "request-success-rate 600.00 is above the maximum 500",
            ),
            (
                5.0,
                range(Some(1.0), Some(10.0)),
                true,
                "request-success-rate 5.00 is within [1, 10]",
            ),
        ];
        for (value, range, passed, message) in cases {
            assert_eq!(
                judge("request-success-rate", value, &range),
                Verdict {
                    passed,
                    value,
                    message: message.into()
                }
            );
        }
    }

    #[test]
    fn deprecated_threshold_is_min_for_success_rate_and_max_otherwise() {
        let metric = |name: &str| CanaryMetric {
            name: name.into(),
            threshold: Some(5.0),
            ..Default::default()
        };
        assert_eq!(super::range(&metric("request-success-rate")), range(Some(5.0), None));
        assert_eq!(super::range(&metric("request-duration")), range(None, Some(5.0)));
        let both = CanaryMetric {
            threshold_range: Some(range(Some(1.0), None)),
            ..metric("x")
        };
        assert_eq!(super::range(&both), range(Some(1.0), None), "thresholdRange wins");
    }
}
