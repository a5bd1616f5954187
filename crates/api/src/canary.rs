//! The `Canary` custom resource (`flagger.app/v1beta1`): what to roll out, how, and the rollout's state.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::duration::DurationError;
use crate::service::CanaryService;

/// Names of the metrics every provider computes without a MetricTemplate.
pub const BUILTIN_METRICS: [&str; 2] = ["request-success-rate", "request-duration"];

/// A Go-style duration (`30s`, `1m`, `1m30s`, `500ms`, `1.5h`), as Flagger's manifests write them.
pub const DURATION_RULE: &str = "self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')";

#[skip_serializing_none]
// clippy reads the repeated keys of printcolumn(...) as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "flagger.app",
    version = "v1beta1",
    kind = "Canary",
    namespaced,
    status = "CanaryStatus",
    category = "all",
    doc = "A Canary rolls every new revision of its target out gradually, checking metrics and webhooks at each step.",
    printcolumn(name = "Status", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Weight", type_ = "string", json_path = ".status.canaryWeight"),
    printcolumn(name = "Suspended", type_ = "boolean", json_path = ".spec.suspend", priority = "1"),
    printcolumn(
        name = "FailedChecks",
        type_ = "string",
        json_path = ".status.failedChecks",
        priority = "1"
    ),
    printcolumn(
        name = "Interval",
        type_ = "string",
        json_path = ".spec.analysis.interval",
        priority = "1"
    ),
    printcolumn(
        name = "Mirror",
        type_ = "boolean",
        json_path = ".spec.analysis.mirror",
        priority = "1"
    ),
    printcolumn(
        name = "StepWeight",
        type_ = "string",
        json_path = ".spec.analysis.stepWeight",
        priority = "1"
    ),
    printcolumn(
        name = "StepWeights",
        type_ = "string",
        json_path = ".spec.analysis.stepWeights",
        priority = "1"
    ),
    printcolumn(
        name = "MaxWeight",
        type_ = "string",
        json_path = ".spec.analysis.maxWeight",
        priority = "1"
    ),
    printcolumn(
        name = "LastTransitionTime",
        type_ = "string",
        json_path = ".status.lastTransitionTime"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CanarySpec {
    /// Traffic provider; defaults to the operator's `-mesh-provider`.
    pub provider: Option<Provider>,
    /// Prometheus address for the builtin metrics; defaults to the operator's `-metrics-server`.
    pub metrics_server: Option<String>,
    /// The Deployment or DaemonSet to roll out.
    pub target_ref: TargetRef,
    pub autoscaler_ref: Option<AutoscalerRef>,
    pub ingress_ref: Option<IngressRef>,
    pub route_ref: Option<RouteRef>,
    pub upstream_ref: Option<UpstreamRef>,
    pub service: CanaryService,
    pub analysis: Option<CanaryAnalysis>,
    /// The `flagger.app/v1alpha3` name of `analysis`, still accepted; `analysis` wins when both are set.
    pub canary_analysis: Option<CanaryAnalysis>,
    /// Seconds a rollout may wait for the canary (or the primary) to become ready; default 600.
    #[schemars(range(min = 0))]
    pub progress_deadline_seconds: Option<i32>,
    /// Promote new revisions without analysis.
    pub skip_analysis: Option<bool>,
    /// Stop acting on this Canary until it is resumed.
    pub suspend: Option<bool>,
    /// On deletion, give traffic and replicas back to the target.
    pub revert_on_deletion: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Provider {
    #[serde(rename = "apisix")]
    Apisix,
    #[serde(rename = "appmesh")]
    AppMesh,
    #[serde(rename = "appmesh:v1beta2")]
    AppMeshV1beta2,
    #[serde(rename = "contour")]
    Contour,
    #[serde(rename = "gatewayapi:v1")]
    GatewayApiV1,
    #[serde(rename = "gatewayapi:v1beta1")]
    GatewayApiV1beta1,
    #[serde(rename = "gloo")]
    Gloo,
    #[serde(rename = "istio")]
    Istio,
    #[serde(rename = "knative")]
    Knative,
    #[serde(rename = "kubernetes")]
    Kubernetes,
    #[serde(rename = "kuma")]
    Kuma,
    #[serde(rename = "linkerd")]
    Linkerd,
    #[serde(rename = "nginx")]
    Nginx,
    #[serde(rename = "osm")]
    Osm,
    #[serde(rename = "skipper")]
    Skipper,
    #[serde(rename = "smi:v1alpha1")]
    SmiV1alpha1,
    #[serde(rename = "smi:v1alpha2")]
    SmiV1alpha2,
    #[serde(rename = "smi:v1alpha3")]
    SmiV1alpha3,
    #[serde(rename = "traefik")]
    Traefik,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    pub api_version: Option<String>,
    pub kind: TargetKind,
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TargetKind {
    #[default]
    Deployment,
    DaemonSet,
    Service,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerRef {
    pub api_version: Option<String>,
    pub kind: AutoscalerKind,
    pub name: String,
    /// KEDA trigger queries for the primary's ScaledObject, by trigger name.
    pub primary_scaler_queries: Option<BTreeMap<String, String>>,
    pub primary_scaler_replicas: Option<ScalerReplicas>,
}

impl AutoscalerRef {
    /// The API version to read the autoscaler with. `autoscaling/v2beta1` is no longer served by
    /// Kubernetes, so manifests that still name it are read as `autoscaling/v2`.
    pub fn effective_api_version(&self) -> &str {
        match self.api_version.as_deref() {
            None | Some("autoscaling/v2beta1") | Some("autoscaling/v2beta2") => match self.kind {
                AutoscalerKind::HorizontalPodAutoscaler => "autoscaling/v2",
                AutoscalerKind::ScaledObject => "keda.sh/v1alpha1",
            },
            Some(other) => other,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AutoscalerKind {
    #[default]
    HorizontalPodAutoscaler,
    ScaledObject,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalerReplicas {
    #[schemars(range(min = 1))]
    pub min_replicas: Option<i32>,
    #[schemars(range(min = 1))]
    pub max_replicas: Option<i32>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressRef {
    pub api_version: Option<String>,
    pub kind: IngressKind,
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum IngressKind {
    #[default]
    Ingress,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteRef {
    pub api_version: Option<String>,
    pub kind: RouteKind,
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RouteKind {
    #[default]
    ApisixRoute,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamRef {
    pub api_version: Option<String>,
    pub kind: UpstreamKind,
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum UpstreamKind {
    #[default]
    Upstream,
}

/// How a new revision is analysed. Which fields are set decides the strategy: `match` with
/// `iterations` is A/B testing, `iterations` alone blue/green, otherwise a progressive canary.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.interval) && has(self.threshold)")
        .message("analysis needs both interval (e.g. 1m) and threshold (failed checks before rollback, e.g. 5)"),
    validation = Rule::new("has(self.iterations) || has(self.stepWeight) || has(self.stepWeights)")
        .message("analysis needs iterations (blue/green or A/B), stepWeight or stepWeights (progressive canary)"),
)]
pub struct CanaryAnalysis {
    /// Time between two steps of the analysis, e.g. `1m`.
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(DURATION_RULE).message("interval must be a duration such as 30s, 1m or 1m30s"))]
    pub interval: Option<String>,
    /// Number of checks for blue/green and A/B testing.
    #[schemars(range(min = 0))]
    pub iterations: Option<i32>,
    /// Mirror the primary's traffic to the canary during blue/green (mesh providers that support it).
    pub mirror: Option<bool>,
    #[schemars(range(min = 0, max = 100))]
    pub mirror_weight: Option<i32>,
    #[schemars(range(min = 0, max = 100))]
    pub max_weight: Option<i32>,
    #[schemars(range(min = 0, max = 100))]
    pub step_weight: Option<i32>,
    #[schemars(length(max = 100), inner(range(min = 0, max = 100)))]
    #[x_kube(validation = Rule::new("self.isSorted() && self.all(w, size(self.filter(x, x == w)) == 1)")
        .message("stepWeights must be strictly increasing, e.g. [5, 10, 25, 50]"))]
    pub step_weights: Option<Vec<i32>>,
    #[schemars(range(min = 0, max = 100))]
    pub step_weight_promotion: Option<i32>,
    /// Failed checks before the canary is rolled back.
    #[schemars(range(min = 0))]
    pub threshold: Option<i32>,
    #[schemars(range(min = 0, max = 100))]
    pub primary_ready_threshold: Option<i32>,
    #[schemars(range(min = 0, max = 100))]
    pub canary_ready_threshold: Option<i32>,
    #[schemars(length(max = 64))]
    pub alerts: Option<Vec<CanaryAlert>>,
    #[schemars(length(max = 64))]
    pub metrics: Option<Vec<CanaryMetric>>,
    #[schemars(length(max = 64))]
    pub webhooks: Option<Vec<CanaryWebhook>>,
    /// Requests that go to the canary during A/B testing.
    #[serde(rename = "match")]
    pub match_: Option<Vec<AnalysisMatch>>,
    pub session_affinity: Option<SessionAffinity>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryAlert {
    pub name: String,
    pub severity: Option<AlertSeverity>,
    pub provider_ref: CrossNamespaceRef,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub enum AlertSeverity {
    /// Unset; read as `info`.
    #[default]
    #[serde(rename = "")]
    Unset,
    #[serde(rename = "info")]
    Info,
    #[serde(rename = "warn")]
    Warn,
    #[serde(rename = "error")]
    Error,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct CrossNamespaceRef {
    pub name: String,
    pub namespace: Option<String>,
}

/// A check run at every step: a builtin metric by name, or a MetricTemplate's query.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "self.name in ['request-success-rate', 'request-duration'] || has(self.templateRef) || has(self.query)"
).message(Message::Expression(
    "'metric ' + self.name + ' needs a templateRef (or the deprecated query); only request-success-rate and request-duration are builtin'".into()
)))]
pub struct CanaryMetric {
    pub name: String,
    /// Window of the query, e.g. `1m` (the default).
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(DURATION_RULE).message("metric interval must be a duration such as 30s or 1m"))]
    pub interval: Option<String>,
    /// Deprecated: use thresholdRange.
    pub threshold: Option<f64>,
    pub threshold_range: Option<ThresholdRange>,
    /// Deprecated: use a MetricTemplate.
    pub query: Option<String>,
    pub template_ref: Option<CrossNamespaceRef>,
    pub template_variables: Option<BTreeMap<String, String>>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.min) || has(self.max)")
    .message("thresholdRange needs min, max or both"))]
pub struct ThresholdRange {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryWebhook {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: Option<HookType>,
    pub url: String,
    /// Per-call timeout, e.g. `10s` (the default).
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(DURATION_RULE).message("webhook timeout must be a duration such as 10s or 1m"))]
    pub timeout: Option<String>,
    #[serde(rename = "muteAlert")]
    pub mute_alert: Option<bool>,
    #[serde(rename = "disableTLS")]
    pub disable_tls: Option<bool>,
    #[schemars(range(min = 0))]
    pub retries: Option<i32>,
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum HookType {
    /// Unset; read as `rollout`.
    #[default]
    #[serde(rename = "")]
    Unset,
    #[serde(rename = "confirm-rollout")]
    ConfirmRollout,
    #[serde(rename = "pre-rollout")]
    PreRollout,
    #[serde(rename = "rollout")]
    Rollout,
    #[serde(rename = "confirm-promotion")]
    ConfirmPromotion,
    #[serde(rename = "post-rollout")]
    PostRollout,
    #[serde(rename = "event")]
    Event,
    #[serde(rename = "rollback")]
    Rollback,
    #[serde(rename = "confirm-traffic-increase")]
    ConfirmTrafficIncrease,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisMatch {
    pub headers: Option<BTreeMap<String, HeaderMatch>>,
    pub query_params: Option<BTreeMap<String, crate::service::StringMatch>>,
    pub source_labels: Option<BTreeMap<String, String>>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct HeaderMatch {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub regex: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionAffinity {
    pub cookie_name: Option<String>,
    pub primary_cookie_name: Option<String>,
    #[schemars(extend("default" = 86400))]
    pub max_age: Option<i32>,
    pub domain: Option<String>,
    pub path: Option<String>,
    pub http_only: Option<bool>,
    pub secure: Option<bool>,
    pub partitioned: Option<bool>,
    pub same_site: Option<SameSite>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    pub phase: Option<Phase>,
    pub failed_checks: Option<i32>,
    pub canary_weight: Option<i32>,
    pub iterations: Option<i32>,
    pub session_affinity_cookie: Option<String>,
    pub previous_session_affinity_cookie: Option<String>,
    pub primary_session_affinity_cookie: Option<String>,
    /// Hashes of the ConfigMaps and Secrets the target uses, by `ConfigMap/<name>` or `Secret/<name>`.
    pub tracked_configs: Option<BTreeMap<String, String>>,
    /// Revision of the target last seen (pod template and tracked configs).
    pub last_applied_spec: Option<String>,
    /// Revision last promoted to the primary.
    pub last_promoted_spec: Option<String>,
    /// When the phase last changed or the last analysis step ran.
    // Written with milliseconds (RFC 3339 allows them; Go's `metav1.Time` reads them) so that
    // steps paced from it are never early.
    #[serde(serialize_with = "precise_time::serialize", default)]
    pub last_transition_time: Option<Time>,
    pub conditions: Option<Vec<CanaryCondition>>,
}

mod precise_time {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(time: &Option<Time>, serializer: S) -> Result<S::Ok, S::Error> {
        match time {
            Some(Time(timestamp)) => {
                let text = k8s_openapi::jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S%.3fZ", *timestamp)
                    .map_err(serde::ser::Error::custom)?;
                serializer.serialize_str(&text)
            }
            None => serializer.serialize_none(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Phase {
    #[default]
    #[serde(rename = "")]
    Unset,
    Initializing,
    Initialized,
    Waiting,
    Progressing,
    WaitingPromotion,
    Promoting,
    Finalising,
    Succeeded,
    Failed,
    Terminating,
    Terminated,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Unset => "",
            Phase::Initializing => "Initializing",
            Phase::Initialized => "Initialized",
            Phase::Waiting => "Waiting",
            Phase::Progressing => "Progressing",
            Phase::WaitingPromotion => "WaitingPromotion",
            Phase::Promoting => "Promoting",
            Phase::Finalising => "Finalising",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Terminating => "Terminating",
            Phase::Terminated => "Terminated",
        }
    }
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub last_update_time: Option<Time>,
    pub last_transition_time: Option<Time>,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// The condition `kubectl wait --for=condition=promoted` waits on.
pub const PROMOTED_CONDITION: &str = "Promoted";

impl CanarySpec {
    /// The analysis, read from `analysis` or its v1alpha3 name `canaryAnalysis`.
    pub fn analysis(&self) -> Option<&CanaryAnalysis> {
        self.analysis.as_ref().or(self.canary_analysis.as_ref())
    }

    /// Name of the generated Services.
    pub fn service_name(&self) -> &str {
        self.service.name.as_deref().unwrap_or(&self.target_ref.name)
    }

    pub fn progress_deadline_seconds(&self) -> i32 {
        self.progress_deadline_seconds
            .unwrap_or(defaults::PROGRESS_DEADLINE_SECONDS)
    }
}

/// Flagger's defaults for what a manifest leaves out.
pub mod defaults {
    use std::time::Duration;

    pub const INTERVAL: Duration = Duration::from_secs(60);
    pub const THRESHOLD: i32 = 1;
    pub const PROGRESS_DEADLINE_SECONDS: i32 = 600;
    pub const READY_THRESHOLD_PERCENT: i32 = 100;
    pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
    pub const METRIC_INTERVAL: &str = "1m";
    pub const PORT_NAME: &str = "http";
}

impl CanaryAnalysis {
    /// Time between steps; an error says what is wrong with `interval` (serin's CRD rejects
    /// such values, but a Canary stored under Flagger's CRD may hold one).
    pub fn interval(&self) -> Result<std::time::Duration, DurationError> {
        match &self.interval {
            None => Ok(defaults::INTERVAL),
            Some(text) => crate::duration::parse_positive(text),
        }
    }

    /// Failed checks before a rollback; 0 or less counts as 1, as Flagger's
    /// `GetAnalysisThreshold` (pkg/apis/flagger/v1beta1/canary.go) reads it.
    pub fn threshold(&self) -> i32 {
        self.threshold.filter(|t| *t > 0).unwrap_or(defaults::THRESHOLD)
    }

    pub fn primary_ready_threshold(&self) -> i32 {
        self.primary_ready_threshold
            .unwrap_or(defaults::READY_THRESHOLD_PERCENT)
    }

    pub fn canary_ready_threshold(&self) -> i32 {
        self.canary_ready_threshold.unwrap_or(defaults::READY_THRESHOLD_PERCENT)
    }
}

impl CanaryMetric {
    /// The query window, `1m` unless set.
    pub fn interval(&self) -> &str {
        self.interval.as_deref().unwrap_or(defaults::METRIC_INTERVAL)
    }
}

impl CanaryWebhook {
    pub fn timeout(&self) -> Result<std::time::Duration, DurationError> {
        match &self.timeout {
            None => Ok(defaults::WEBHOOK_TIMEOUT),
            Some(text) => crate::duration::parse_positive(text),
        }
    }

    /// The hook's type; an unset type is a `rollout` hook, as in Flagger.
    pub fn kind(&self) -> HookType {
        match self.type_.unwrap_or_default() {
            HookType::Unset => HookType::Rollout,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_are_flaggers() {
        let analysis = CanaryAnalysis::default();
        assert_eq!(analysis.interval(), Ok(Duration::from_secs(60)));
        assert_eq!(analysis.threshold(), 1);
        assert_eq!(
            (analysis.primary_ready_threshold(), analysis.canary_ready_threshold()),
            (100, 100)
        );
        assert_eq!(CanaryMetric::default().interval(), "1m");
        let hook = CanaryWebhook::default();
        assert_eq!(hook.timeout(), Ok(Duration::from_secs(10)));
        assert_eq!(hook.kind(), HookType::Rollout);
        let spec: CanarySpec = serde_json::from_value(
            serde_json::json!({ "targetRef": { "kind": "Deployment", "name": "a" }, "service": { "port": 80 } }),
        )
        .expect("minimal spec");
        assert_eq!(spec.progress_deadline_seconds(), 600);
        assert_eq!(spec.service_name(), "a");
    }

    #[test]
    fn set_values_win_over_defaults() {
        let analysis = CanaryAnalysis {
            interval: Some("1m30s".into()),
            threshold: Some(5),
            ..Default::default()
        };
        assert_eq!(analysis.interval(), Ok(Duration::from_secs(90)));
        assert_eq!(analysis.threshold(), 5);
        let zero = CanaryAnalysis {
            threshold: Some(0),
            interval: Some("-1s".into()),
            ..Default::default()
        };
        assert_eq!(zero.threshold(), 1, "a threshold of 0 counts as 1");
        assert_eq!(zero.interval(), Err(DurationError::NotPositive("-1s".into())));
        let hook = CanaryWebhook {
            timeout: Some("30s".into()),
            type_: Some(HookType::PreRollout),
            ..Default::default()
        };
        assert_eq!(hook.timeout(), Ok(Duration::from_secs(30)));
        assert_eq!(hook.kind(), HookType::PreRollout);
    }

    #[test]
    fn the_status_keeps_milliseconds_of_its_transition_time() {
        let at = k8s_openapi::jiff::Timestamp::from_millisecond(1_800_000_000_250).expect("time");
        let status = CanaryStatus {
            last_transition_time: Some(Time(at)),
            ..Default::default()
        };
        let json = serde_json::to_value(&status).expect("serialize");
        assert_eq!(json["lastTransitionTime"], "2027-01-15T08:00:00.250Z");
        let back: CanaryStatus = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, status);
        let seconds: CanaryStatus =
            serde_json::from_value(serde_json::json!({ "lastTransitionTime": "2027-01-15T08:00:00Z" }))
                .expect("Go's form");
        assert_eq!(
            seconds.last_transition_time,
            Some(Time(
                at.checked_sub(k8s_openapi::jiff::SignedDuration::from_millis(250))
                    .expect("time")
            ))
        );
    }

    #[test]
    fn canary_analysis_is_read_as_analysis() {
        let legacy: CanarySpec = serde_json::from_value(serde_json::json!({
            "targetRef": { "kind": "Deployment", "name": "a" },
            "service": { "port": 80 },
            "canaryAnalysis": { "interval": "30s", "threshold": 5, "stepWeight": 10 }
        }))
        .expect("v1alpha3 spec");
        assert_eq!(legacy.analysis().and_then(|a| a.step_weight), Some(10));
    }

    #[test]
    fn retired_autoscaling_versions_are_read_as_v2() {
        let hpa = |version: Option<&str>| AutoscalerRef {
            api_version: version.map(String::from),
            kind: AutoscalerKind::HorizontalPodAutoscaler,
            name: "a".into(),
            ..Default::default()
        };
        assert_eq!(
            hpa(Some("autoscaling/v2beta1")).effective_api_version(),
            "autoscaling/v2"
        );
        assert_eq!(
            hpa(Some("autoscaling/v2beta2")).effective_api_version(),
            "autoscaling/v2"
        );
        assert_eq!(hpa(None).effective_api_version(), "autoscaling/v2");
        assert_eq!(hpa(Some("autoscaling/v2")).effective_api_version(), "autoscaling/v2");
        let keda = AutoscalerRef {
            kind: AutoscalerKind::ScaledObject,
            ..hpa(None)
        };
        assert_eq!(keda.effective_api_version(), "keda.sh/v1alpha1");
    }
}
