//! Metric checks: the range a value must fall in, the verdict, and the message that shows the
//! measured value (Flagger only says that a check failed).

use std::collections::BTreeMap;

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
    pub message: String,
}

/// Judges `value` against `range`, with a message like `request-success-rate 97.50 is below the minimum 99`.
pub fn judge(name: &str, value: f64, range: &ThresholdRange) -> Verdict {
    let shown = format!("{name} {value:.2}");
    if let Some(min) = range.min.filter(|min| value < *min) {
        return Verdict {
            passed: false,
            message: format!("{shown} is below the minimum {min}"),
        };
    }
    if let Some(max) = range.max.filter(|max| value > *max) {
        return Verdict {
            passed: false,
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
        message: format!("{shown} is {bounds}"),
    }
}

/// Values a query template can use, as `{{ name }}` or `{{ variables.key }}`.
#[derive(Debug, Clone, Default)]
pub struct TemplateValues<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub target: &'a str,
    pub service: &'a str,
    pub ingress: &'a str,
    pub route: &'a str,
    pub interval: &'a str,
    pub variables: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown template variable {{{{ {0} }}}}; use name, namespace, target, service, ingress, route, interval or variables.<key>"
    )]
    Unknown(String),
    #[error("unclosed {{{{ in the query template")]
    Unclosed,
}

/// Renders a MetricTemplate query: `{{ namespace }}`, `{{ variables.quantile }}` and so on.
pub fn render(template: &str, values: &TemplateValues) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
        let key = after[..end].trim().trim_start_matches('.');
        let value = match key {
            "name" => values.name,
            "namespace" => values.namespace,
            "target" => values.target,
            "service" => values.service,
            "ingress" => values.ingress,
            "route" => values.route,
            "interval" => values.interval,
            other => other
                .strip_prefix("variables.")
                .and_then(|k| values.variables.get(k))
                .map(String::as_str)
                .ok_or_else(|| TemplateError::Unknown(other.to_string()))?,
        };
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
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

    #[test]
    fn renders_templates() {
        let values = TemplateValues {
            name: "podinfo",
            namespace: "test",
            target: "podinfo",
            interval: "1m",
            variables: BTreeMap::from([("quantile".to_string(), "0.99".to_string())]),
            ..Default::default()
        };
        let query = "histogram_quantile({{ variables.quantile }}, rate(x{ns=\"{{namespace}}\",pod=~\"{{ .target }}-.*\"}[{{ interval }}]))";
        assert_eq!(
            render(query, &values),
            Ok("histogram_quantile(0.99, rate(x{ns=\"test\",pod=~\"podinfo-.*\"}[1m]))".to_string())
        );
        assert_eq!(
            render("{{ nope }}", &values),
            Err(TemplateError::Unknown("nope".into()))
        );
        assert_eq!(
            render("{{ variables.missing }}", &values),
            Err(TemplateError::Unknown("variables.missing".into()))
        );
        assert_eq!(render("x {{ namespace", &values), Err(TemplateError::Unclosed));
    }
}
