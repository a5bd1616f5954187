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

/// ingress-nginx's controller metrics for the requests its canary routing saw (`canary!=""`),
/// by the user's Ingress (Flagger's pkg/metrics/observers/nginx.go); the duration is the mean
/// response time, already in milliseconds.
const NGINX_SUCCESS_RATE: &str = r#"
sum(rate(nginx_ingress_controller_requests{namespace="{{ namespace }}",ingress="{{ ingress }}",canary!="",status!~"5.*"}[{{ interval }}]))
/
sum(rate(nginx_ingress_controller_requests{namespace="{{ namespace }}",ingress="{{ ingress }}",canary!=""}[{{ interval }}]))
* 100"#;

const NGINX_DURATION: &str = r#"
sum(rate(nginx_ingress_controller_response_duration_seconds_sum{namespace="{{ namespace }}",ingress="{{ ingress }}",canary!=""}[{{ interval }}]))
/
sum(rate(nginx_ingress_controller_response_duration_seconds_count{namespace="{{ namespace }}",ingress="{{ ingress }}",canary!=""}[{{ interval }}]))
* 1000"#;

/// Linkerd's proxy metrics for the target's inbound requests (Flagger's
/// pkg/metrics/observers/linkerd.go); durations in milliseconds.
const LINKERD_SUCCESS_RATE: &str = r#"
sum(rate(response_total{namespace="{{ namespace }}",deployment=~"{{ target }}",classification!="failure",direction="inbound"}[{{ interval }}]))
/
sum(rate(response_total{namespace="{{ namespace }}",deployment=~"{{ target }}",direction="inbound"}[{{ interval }}]))
* 100"#;

const LINKERD_DURATION: &str = r#"
histogram_quantile(0.99, sum(rate(response_latency_ms_bucket{namespace="{{ namespace }}",deployment=~"{{ target }}",direction="inbound"}[{{ interval }}])) by (le))"#;

/// Open Service Mesh's Envoy metrics for the target Deployment (Flagger's
/// pkg/metrics/observers/osm.go); durations in milliseconds.
const OSM_SUCCESS_RATE: &str = r#"
sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_kind="Deployment",destination_name="{{ target }}",response_code!~"5.*"}[{{ interval }}]))
/
sum(rate(osm_request_total{destination_namespace="{{ namespace }}",destination_kind="Deployment",destination_name="{{ target }}"}[{{ interval }}]))
* 100"#;

const OSM_DURATION: &str = r#"
histogram_quantile(0.99, sum(rate(osm_request_duration_ms_bucket{destination_namespace="{{ namespace }}",destination_kind="Deployment",destination_name="{{ target }}"}[{{ interval }}])) by (le))"#;

/// Gloo's Envoy cluster stats for the canary's Upstream (`<namespace>-<target>-canaryupstream-
/// <port>_<namespace>`; Flagger's pkg/metrics/observers/gloo.go); durations in milliseconds.
const GLOO_SUCCESS_RATE: &str = r#"
sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+",envoy_response_code!~"5.*"}[{{ interval }}]))
/
sum(rate(envoy_cluster_upstream_rq{envoy_cluster_name=~"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+"}[{{ interval }}]))
* 100"#;

const GLOO_DURATION: &str = r#"
histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=~"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+"}[{{ interval }}])) by (le))"#;

/// App Mesh's Envoy stats of the target's pods (Flagger's pkg/metrics/observers/appmesh.go);
/// durations in milliseconds.
const APP_MESH_SUCCESS_RATE: &str = r#"
sum(rate(envoy_cluster_upstream_rq{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)",envoy_response_code!~"5.*"}[{{ interval }}]))
/
sum(rate(envoy_cluster_upstream_rq{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}[{{ interval }}]))
* 100"#;

const APP_MESH_DURATION: &str = r#"
histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{kubernetes_namespace="{{ namespace }}",kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"}[{{ interval }}])) by (le))"#;

pub fn query(provider: Provider, metric: &str) -> Option<Builtin> {
    // (success-rate query, duration query, factor from the duration query's unit to milliseconds)
    let (success_rate, duration, duration_scale) = match provider {
        Provider::Kubernetes | Provider::GatewayApiV1 | Provider::GatewayApiV1beta1 => {
            (HTTP_SUCCESS_RATE, HTTP_DURATION, 1000.0)
        }
        // Flagger's observer factory gives the smi:* providers Istio's queries.
        Provider::Istio | Provider::SmiV1alpha1 | Provider::SmiV1alpha2 | Provider::SmiV1alpha3 => {
            (ISTIO_SUCCESS_RATE, ISTIO_DURATION, 1.0)
        }
        Provider::Linkerd => (LINKERD_SUCCESS_RATE, LINKERD_DURATION, 1.0),
        Provider::Osm => (OSM_SUCCESS_RATE, OSM_DURATION, 1.0),
        Provider::Gloo => (GLOO_SUCCESS_RATE, GLOO_DURATION, 1.0),
        Provider::AppMeshV1beta2 => (APP_MESH_SUCCESS_RATE, APP_MESH_DURATION, 1.0),
        Provider::Nginx => (NGINX_SUCCESS_RATE, NGINX_DURATION, 1.0),
        _ => return None,
    };
    match metric {
        "request-success-rate" => Some(Builtin {
            query: success_rate,
            scale: 1.0,
        }),
        "request-duration" => Some(Builtin {
            query: duration,
            scale: duration_scale,
        }),
        _ => None,
    }
}
