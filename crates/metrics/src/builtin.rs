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

/// Istio's standard metrics as the destination's sidecar reports them (Flagger's
/// pkg/metrics/observers/istio.go); durations are already in milliseconds.
const ISTIO_SUCCESS_RATE: &str = r#"
sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload=~"{{ target }}",response_code!~"5.*"}[{{ interval }}]))
/
sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload=~"{{ target }}"}[{{ interval }}]))
* 100"#;

const ISTIO_DURATION: &str = r#"
histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload=~"{{ target }}"}[{{ interval }}])) by (le))"#;

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
        (Provider::Istio, "request-success-rate") => Some(Builtin {
            query: ISTIO_SUCCESS_RATE,
            scale: 1.0,
        }),
        (Provider::Istio, "request-duration") => Some(Builtin {
            query: ISTIO_DURATION,
            scale: 1.0,
        }),
        _ => None,
    }
}
