//! The builtin `request-success-rate` (percent of non-5xx) and `request-duration` (p99 in
//! milliseconds) queries, per traffic provider, over the provider's own series.

use serin_api::canary::Provider;

pub struct Builtin {
    pub query: &'static str,
    /// Factor from the query's unit to the metric's (seconds to milliseconds for durations).
    pub scale: f64,
}

/// Pods of the target: `<target>-<replicaset hash>-<pod suffix>`.
const HTTP_SUCCESS_RATE: &str = r#"
sum(rate(http_request_duration_seconds_count{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",status!~"5.*"}[{{ interval }}]))
/
sum(rate(http_request_duration_seconds_count{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}[{{ interval }}]))
* 100"#;

const HTTP_DURATION: &str = r#"
histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}[{{ interval }}])) by (le))"#;

pub fn query(provider: Provider, metric: &str) -> Option<Builtin> {
    match (provider, metric) {
        (Provider::Kubernetes | Provider::GatewayApiV1 | Provider::GatewayApiV1beta1, "request-success-rate") => {
            Some(Builtin {
                query: HTTP_SUCCESS_RATE,
                scale: 1.0,
            })
        }
        (Provider::Kubernetes | Provider::GatewayApiV1 | Provider::GatewayApiV1beta1, "request-duration") => {
            Some(Builtin {
                query: HTTP_DURATION,
                scale: 1000.0,
            })
        }
        _ => None,
    }
}
