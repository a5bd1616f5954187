//! The scenarios both operators run, and the script that drives one side through one of them:
//! the same manifests, the same change to the target, the same webhook answers, the same metrics.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use serin_api::{Canary, MetricTemplate};
use serin_testenv::auth_proxy::{BASIC_PASSWORD, BASIC_USER};
use serin_testenv::datadog::{API_KEY, APPLICATION_KEY};
use serin_testenv::fixtures::deployment;
use serin_testenv::traffic::Behaviour;

use crate::sides::{SCENARIO_TIMEOUT, Side};
use crate::trace::{Recorder, Trace};

/// Every Canary of the suite is named so, in a namespace named after its scenario.
pub const NAME: &str = "app";

/// What makes the new revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Image,
    ConfigMap,
    Secret,
    /// A new template whose pods cannot be scheduled, so the canary never becomes ready.
    Unschedulable,
}

/// A webhook answered `first` until the Canary is in `phase` and the hook was called `calls`
/// times, then `then`.
#[derive(Debug, Clone, Copy)]
pub struct Answers {
    pub hook: &'static str,
    pub first: u16,
    pub phase: &'static str,
    pub calls: usize,
    pub then: u16,
}

/// The analysis' metric check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// request-success-rate and request-duration.
    Builtin,
    /// A Prometheus MetricTemplate with variables.
    Template,
    /// That template on the Prometheus behind nginx, with basic auth from its Secret (this
    /// password, right or wrong) and `insecureSkipVerify`.
    TemplateBehindAuth { password: &'static str },
    /// A Datadog MetricTemplate with its keys in a Secret.
    Datadog,
}

/// How a scenario ends.
#[derive(Debug, Clone, Copy)]
pub enum End {
    Phase(&'static str),
    /// Nothing to wait for (a Canary with a mistake in it): look after this long.
    After(Duration),
}

pub struct Scenario {
    /// Also the namespace, the same on both sides.
    pub name: &'static str,
    pub provider: &'static str,
    /// The Canary's `analysis` but its metrics and webhooks.
    pub analysis: Value,
    /// Merged into the Canary's spec.
    pub spec: Value,
    /// The builtin metrics, or a MetricTemplate.
    pub metric: Metric,
    /// Webhook types called (each scenario has one of each unless it says otherwise).
    pub hooks: &'static [&'static str],
    /// The target uses a ConfigMap and a Secret.
    pub configs: bool,
    /// The target has a HorizontalPodAutoscaler (the Canary's `autoscalerRef`).
    pub autoscaler: bool,
    pub change: Change,
    /// `suspend: true` before the change, `false` again after two of Flagger's ticks.
    pub suspended_change: bool,
    pub answers: Option<Answers>,
    /// How the new revision's pods answer (the primary's are healthy).
    pub canary_behaviour: Behaviour,
    pub end: End,
    /// Delete the Canary at the end (with `revertOnDeletion` in `spec`).
    pub delete: bool,
    /// The deliberate differences (docs/compat.md) this scenario shows; see compare.rs.
    pub differences: &'static [&'static str],
}

const EVERY_HOOK: &[&str] = &[
    "confirm-rollout",
    "pre-rollout",
    "rollout",
    "confirm-promotion",
    "post-rollout",
];

/// A gate held (403) until the Canary waited in `phase` for two calls, then opened.
pub fn held(hook: &'static str, phase: &'static str) -> Option<Answers> {
    Some(Answers {
        hook,
        first: 403,
        phase,
        calls: 2,
        then: 200,
    })
}

/// A scenario with a healthy canary and a new image, ending in `Succeeded`.
pub fn scenario(name: &'static str, provider: &'static str, analysis: Value) -> Scenario {
    Scenario {
        name,
        provider,
        analysis,
        spec: json!({}),
        metric: Metric::Builtin,
        hooks: EVERY_HOOK,
        configs: false,
        autoscaler: false,
        change: Change::Image,
        suspended_change: false,
        answers: None,
        canary_behaviour: Behaviour::healthy(),
        end: End::Phase("Succeeded"),
        delete: false,
        differences: &[],
    }
}

fn blue_green() -> Value {
    json!({ "interval": "10s", "threshold": 2, "iterations": 2 })
}

pub fn weighted() -> Value {
    json!({ "interval": "10s", "threshold": 2, "stepWeight": 50, "maxWeight": 50 })
}

pub fn all() -> Vec<Scenario> {
    vec![
        scenario("blue-green", "kubernetes", blue_green()),
        // A progressive analysis on the kubernetes provider, which cannot shift weights: Flagger
        // runs blue/green with 10 iterations.
        scenario(
            "blue-green-default-iterations",
            "kubernetes",
            json!({ "interval": "10s", "threshold": 2, "stepWeight": 20, "maxWeight": 40 }),
        ),
        scenario(
            "progressive",
            "gatewayapi:v1",
            json!({ "interval": "10s", "threshold": 2, "stepWeights": [10, 30], "stepWeightPromotion": 50 }),
        ),
        scenario(
            "progressive-step-weight",
            "gatewayapi:v1",
            json!({ "interval": "10s", "threshold": 2, "stepWeight": 20, "maxWeight": 40 }),
        ),
        scenario("ab-testing", "gatewayapi:v1", ab_testing()),
        Scenario {
            differences: &["blue-green-switch-weight"],
            ..scenario(
                "mirroring",
                "gatewayapi:v1",
                json!({ "interval": "10s", "threshold": 2, "iterations": 2, "mirror": true }),
            )
        },
        Scenario {
            canary_behaviour: Behaviour::failing(),
            end: End::Phase("Failed"),
            ..scenario("rollback", "kubernetes", blue_green())
        },
        Scenario {
            answers: held("confirm-rollout", "Waiting"),
            ..scenario("confirm-rollout", "gatewayapi:v1", weighted())
        },
        Scenario {
            hooks: &[
                "confirm-rollout",
                "pre-rollout",
                "rollout",
                "confirm-traffic-increase",
                "confirm-promotion",
                "post-rollout",
            ],
            answers: held("confirm-traffic-increase", "Progressing"),
            ..scenario("confirm-traffic-increase", "gatewayapi:v1", weighted())
        },
        Scenario {
            answers: held("confirm-promotion", "WaitingPromotion"),
            differences: &["waiting-promotion-status"],
            ..scenario("confirm-promotion", "gatewayapi:v1", weighted())
        },
        Scenario {
            hooks: &["pre-rollout", "rollout", "rollback", "post-rollout"],
            // 403: no rollback yet; 200 once the canary has had traffic for two checks.
            answers: Some(Answers {
                hook: "rollback",
                first: 403,
                phase: "Progressing",
                calls: 2,
                then: 200,
            }),
            end: End::Phase("Failed"),
            ..scenario(
                "rollback-webhook",
                "gatewayapi:v1",
                json!({ "interval": "10s", "threshold": 2, "stepWeight": 20, "maxWeight": 80 }),
            )
        },
        Scenario {
            spec: json!({ "skipAnalysis": true }),
            differences: &["skip-analysis-phases"],
            ..scenario("skip-analysis", "kubernetes", blue_green())
        },
        Scenario {
            suspended_change: true,
            ..scenario("suspend", "kubernetes", blue_green())
        },
        Scenario {
            configs: true,
            change: Change::ConfigMap,
            ..scenario("configmap-change", "kubernetes", blue_green())
        },
        Scenario {
            configs: true,
            change: Change::Secret,
            ..scenario("secret-change", "kubernetes", blue_green())
        },
        Scenario {
            autoscaler: true,
            ..scenario("autoscaler", "gatewayapi:v1", weighted())
        },
        Scenario {
            spec: json!({ "revertOnDeletion": true }),
            delete: true,
            differences: &["revert-keeps-the-apex"],
            ..scenario("revert-on-deletion", "gatewayapi:v1", weighted())
        },
        Scenario {
            spec: json!({ "progressDeadlineSeconds": 30 }),
            change: Change::Unschedulable,
            end: End::Phase("Failed"),
            ..scenario("progress-deadline", "kubernetes", blue_green())
        },
        Scenario {
            metric: Metric::Template,
            ..scenario("metric-template", "kubernetes", blue_green())
        },
        // Metric providers behind credentials: Prometheus with basic auth behind nginx (right
        // and wrong password), and Datadog's API.
        Scenario {
            metric: Metric::TemplateBehindAuth {
                password: BASIC_PASSWORD,
            },
            ..scenario("metric-template-basic-auth", "kubernetes", blue_green())
        },
        Scenario {
            metric: Metric::TemplateBehindAuth { password: "wrong" },
            end: End::Phase("Failed"),
            ..scenario("metric-template-refused", "kubernetes", blue_green())
        },
        Scenario {
            metric: Metric::Datadog,
            ..scenario("metric-datadog", "kubernetes", blue_green())
        },
        Scenario {
            spec: json!({ "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "missing" } }),
            end: End::After(Duration::from_secs(25)),
            ..scenario("missing-target", "kubernetes", blue_green())
        },
        // Istio: the VirtualService and DestinationRules of Flagger's istio.go, with the
        // service fields its tutorial sets (the API server checks them against Istio's CRDs).
        Scenario {
            spec: istio_service(),
            ..scenario(
                "istio-progressive",
                "istio",
                json!({ "interval": "10s", "threshold": 2, "stepWeight": 20, "maxWeight": 40 }),
            )
        },
        Scenario {
            spec: istio_service(),
            ..scenario("istio-ab-testing", "istio", ab_testing())
        },
        // NGINX: the canary Ingress beside the user's, with ingress-nginx's canary annotations.
        scenario(
            "nginx-progressive",
            "nginx",
            json!({ "interval": "10s", "threshold": 2, "stepWeight": 20, "maxWeight": 40 }),
        ),
        scenario("nginx-ab-testing", "nginx", ab_testing()),
        // The SMI TrafficSplit in the versions Linkerd (v1alpha1, weights as quantities) and
        // OSM (v1alpha2) use, with each mesh's builtin queries.
        scenario(
            "linkerd-progressive",
            "linkerd",
            json!({ "interval": "10s", "threshold": 2, "stepWeight": 20, "maxWeight": 40 }),
        ),
        // Gloo: Upstreams and a RouteTable; A/B by header matchers on the route.
        scenario(
            "gloo-progressive",
            "gloo",
            json!({ "interval": "10s", "threshold": 2, "stepWeight": 20, "maxWeight": 40 }),
        ),
        scenario("gloo-ab-testing", "gloo", ab_testing()),
        // App Mesh v1beta2: VirtualNodes before the primary, VirtualRouters and VirtualServices.
        scenario(
            "appmesh-progressive",
            "appmesh:v1beta2",
            json!({ "interval": "10s", "threshold": 2, "stepWeight": 20, "maxWeight": 40 }),
        ),
        scenario("appmesh-ab-testing", "appmesh:v1beta2", ab_testing()),
        scenario(
            "smi-v1alpha3-progressive",
            "smi:v1alpha3",
            json!({ "interval": "10s", "threshold": 2, "stepWeight": 20, "maxWeight": 40 }),
        ),
        scenario(
            "osm-progressive",
            "osm",
            json!({ "interval": "10s", "threshold": 2, "stepWeights": [10, 40] }),
        ),
        Scenario {
            differences: &["blue-green-switch-weight"],
            ..scenario(
                "istio-mirroring",
                "istio",
                json!({ "interval": "10s", "threshold": 2, "iterations": 2, "mirror": true, "mirrorWeight": 50 }),
            )
        },
    ]
}

/// A/B testing by header and by cookie.
fn ab_testing() -> Value {
    json!({ "interval": "10s", "threshold": 2, "iterations": 2, "match": [
        { "headers": { "x-canary": { "exact": "insider" } } },
        { "headers": { "cookie": { "regex": "^(.*?;)?(canary=always)(;.*)?$" } } }
    ] })
}

fn istio_service() -> Value {
    json!({ "service": {
        "gateways": ["public-gateway.istio-system.svc.cluster.local"],
        "hosts": ["app.example.com"],
        "trafficPolicy": { "tls": { "mode": "DISABLE" } },
        "retries": { "attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure,refused-stream" },
        "match": [{ "uri": { "prefix": "/" } }],
        "rewrite": { "uri": "/" },
        "timeout": "30s"
    } })
}

/// Merges `patch` into `value`, objects key by key.
fn merge(value: &mut Value, patch: &Value) {
    match (value, patch) {
        (Value::Object(value), Value::Object(patch)) => {
            for (key, patch) in patch {
                merge(value.entry(key.clone()).or_insert(Value::Null), patch);
            }
        }
        (value, patch) => *value = patch.clone(),
    }
}

fn parse<T: DeserializeOwned>(what: &str, value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| format!("{what} does not parse: {e}"))
}

impl Scenario {
    fn canary(&self, side: &Side) -> Result<Canary, String> {
        let base = format!("{}/{}", side.hooks.url(), self.name);
        let mut analysis = self.analysis.clone();
        analysis["metrics"] = match self.metric {
            Metric::Template | Metric::TemplateBehindAuth { .. } => {
                json!([{ "name": "error-rate", "interval": "1m", "thresholdRange": { "max": 1 },
                         "templateRef": { "name": "error-rate" },
                         "templateVariables": { "errorStatus": "5.*" } }])
            }
            Metric::Datadog => {
                json!([{ "name": "errors", "interval": "1m", "thresholdRange": { "max": 100 },
                         "templateRef": { "name": "datadog-errors" } }])
            }
            Metric::Builtin => json!([
                { "name": "request-success-rate", "interval": "1m", "thresholdRange": { "min": 99 } },
                { "name": "request-duration", "interval": "1m", "thresholdRange": { "max": 500 } }
            ]),
        };
        analysis["webhooks"] = self
            .hooks
            .iter()
            .map(|kind| json!({ "name": kind, "type": kind, "url": format!("{base}/{kind}"), "timeout": "5s" }))
            .collect();
        let mut spec = json!({
            "provider": self.provider,
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": NAME },
            "service": { "port": 9898 },
            "analysis": analysis,
        });
        if self.provider.starts_with("gatewayapi") {
            spec["service"]["gatewayRefs"] = json!([{ "name": "gateway", "namespace": "infra" }]);
        }
        if self.provider == "nginx" {
            spec["ingressRef"] = json!({ "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": NAME });
        }
        if self.autoscaler {
            spec["autoscalerRef"] =
                json!({ "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": NAME });
        }
        merge(&mut spec, &self.spec);
        parse("the Canary", json!({ "metadata": { "name": NAME }, "spec": spec }))
    }

    /// The MetricTemplate of the scenario's metric, with the Secret it reads.
    fn metric_objects(&self, side: &Side) -> Option<(Option<Value>, Value)> {
        let query = "100 - sum(rate(http_request_duration_seconds_count{kubernetes_namespace=\"{{ namespace }}\",kubernetes_pod_name=~\"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\",status!~\"{{ variables.errorStatus }}\"}[{{ interval }}])) / sum(rate(http_request_duration_seconds_count{kubernetes_namespace=\"{{ namespace }}\",kubernetes_pod_name=~\"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\"}[{{ interval }}])) * 100";
        let services = &side.metric_services;
        match self.metric {
            Metric::Builtin => None,
            Metric::Template => Some((
                None,
                json!({ "metadata": { "name": "error-rate" }, "spec": {
                    "provider": { "type": "prometheus", "address": side.metrics_server },
                    "query": query,
                } }),
            )),
            Metric::TemplateBehindAuth { password } => Some((
                Some(json!({ "metadata": { "name": "prometheus-auth" },
                             "stringData": { "username": BASIC_USER, "password": password } })),
                json!({ "metadata": { "name": "error-rate" }, "spec": {
                    "provider": { "type": "prometheus", "address": services.authenticated_prometheus,
                                  "secretRef": { "name": "prometheus-auth" }, "insecureSkipVerify": true },
                    "query": query,
                } }),
            )),
            Metric::Datadog => Some((
                Some(json!({ "metadata": { "name": "datadog" },
                             "stringData": { "datadog_api_key": API_KEY, "datadog_application_key": APPLICATION_KEY } })),
                json!({ "metadata": { "name": "datadog-errors" }, "spec": {
                    "provider": { "type": "datadog", "address": services.datadog, "secretRef": { "name": "datadog" } },
                    "query": "sum:requests.errors{kube_namespace:{{ namespace }},kube_deployment:{{ target }}}.as_count()",
                } }),
            )),
        }
    }

    fn target(&self) -> Result<Deployment, String> {
        let mut target = deployment(NAME, &[("app", NAME)], 1);
        if self.configs || self.change == Change::Unschedulable {
            let mut value = serde_json::to_value(&target).map_err(|e| e.to_string())?;
            if self.configs {
                value["spec"]["template"]["spec"]["containers"][0]["envFrom"] = json!([
                    { "configMapRef": { "name": "app-config" } },
                    { "secretRef": { "name": "app-secret" } }
                ]);
            }
            if self.change == Change::Unschedulable {
                value["spec"]["progressDeadlineSeconds"] = json!(15);
            }
            target = parse("the target", value)?;
        }
        Ok(target)
    }

    async fn create_objects(&self, side: &Side) -> Result<(), String> {
        let client = side.env.client();
        let namespace = self.name;
        let fail = |what: &str| {
            let operator = side.operator;
            let what = what.to_string();
            move |e: kube::Error| format!("{operator}: create {what}: {e}")
        };
        let params = PostParams::default();
        if self.configs {
            let config_map: ConfigMap = parse(
                "the ConfigMap",
                json!({ "metadata": { "name": "app-config" }, "data": { "color": "blue" } }),
            )?;
            Api::namespaced(client.clone(), namespace)
                .create(&params, &config_map)
                .await
                .map_err(fail("the ConfigMap"))?;
            let secret: Secret = parse(
                "the Secret",
                json!({ "metadata": { "name": "app-secret" }, "stringData": { "token": "one" } }),
            )?;
            Api::namespaced(client.clone(), namespace)
                .create(&params, &secret)
                .await
                .map_err(fail("the Secret"))?;
        }
        if let Some((secret, template)) = self.metric_objects(side) {
            if let Some(secret) = secret {
                let secret: Secret = parse("the metric's Secret", secret)?;
                Api::namespaced(client.clone(), namespace)
                    .create(&params, &secret)
                    .await
                    .map_err(fail("the metric's Secret"))?;
            }
            let template: MetricTemplate = parse("the MetricTemplate", template)?;
            Api::namespaced(client.clone(), namespace)
                .create(&params, &template)
                .await
                .map_err(fail("the MetricTemplate"))?;
        }
        Api::namespaced(client.clone(), namespace)
            .create(&params, &self.target()?)
            .await
            .map_err(fail("the Deployment"))?;
        if self.provider == "nginx" {
            let ingress: Ingress = parse(
                "the Ingress",
                json!({ "metadata": { "name": NAME, "annotations": { "kubernetes.io/ingress.class": "nginx" } },
                        "spec": { "rules": [{ "host": "app.example.com", "http": { "paths": [{
                            "pathType": "Prefix", "path": "/",
                            "backend": { "service": { "name": NAME, "port": { "number": 9898 } } } }] } }] } }),
            )?;
            Api::namespaced(client.clone(), namespace)
                .create(&params, &ingress)
                .await
                .map_err(fail("the Ingress"))?;
        }
        if self.autoscaler {
            let autoscaler: HorizontalPodAutoscaler = parse(
                "the HPA",
                json!({ "metadata": { "name": NAME }, "spec": {
                    "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": NAME },
                    "minReplicas": 1, "maxReplicas": 4,
                    "metrics": [{ "type": "Resource", "resource": { "name": "cpu",
                                  "target": { "type": "Utilization", "averageUtilization": 80 } } }]
                } }),
            )?;
            Api::namespaced(client, namespace)
                .create(&params, &autoscaler)
                .await
                .map_err(fail("the HPA"))?;
        }
        Ok(())
    }

    pub async fn make_change(&self, side: &Side) -> Result<(), String> {
        let client = side.env.client();
        let namespace = self.name;
        let params = PatchParams::default();
        let result = match self.change {
            Change::Image => {
                let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "app", "image": "app:2" }] } } } });
                Api::<Deployment>::namespaced(client, namespace)
                    .patch(NAME, &params, &Patch::Strategic(&patch))
                    .await
                    .map(|_| ())
            }
            Change::Unschedulable => {
                let patch = json!({ "spec": { "template": { "spec": {
                    "nodeSelector": { "serin.dev/no-such-node": "true" },
                    "containers": [{ "name": "app", "image": "app:2" }] } } } });
                Api::<Deployment>::namespaced(client, namespace)
                    .patch(NAME, &params, &Patch::Strategic(&patch))
                    .await
                    .map(|_| ())
            }
            Change::ConfigMap => Api::<ConfigMap>::namespaced(client, namespace)
                .patch(
                    "app-config",
                    &params,
                    &Patch::Merge(json!({ "data": { "color": "green" } })),
                )
                .await
                .map(|_| ()),
            Change::Secret => Api::<Secret>::namespaced(client, namespace)
                .patch(
                    "app-secret",
                    &params,
                    &Patch::Merge(json!({ "stringData": { "token": "two" } })),
                )
                .await
                .map(|_| ()),
        };
        result.map_err(|e| format!("{}: {:?}: {e}", side.operator, self.change))
    }

    async fn suspend(&self, side: &Side, suspend: bool) -> Result<(), String> {
        Api::<Canary>::namespaced(side.env.client(), self.name)
            .patch(
                NAME,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "suspend": suspend } })),
            )
            .await
            .map(|_| ())
            .map_err(|e| format!("{}: suspend {suspend}: {e}", side.operator))
    }

    /// Runs the scenario on `side` and returns what the operator did.
    pub async fn run(&self, side: &Side) -> Result<Trace, String> {
        let namespace = self.name;
        let recorder = self.create(side).await?;
        if let End::After(wait) = self.end {
            tokio::time::sleep(wait).await;
            return Ok(recorder.finish(side, namespace, NAME).await);
        }
        self.wait_for(side, &recorder, "Initialized").await?;

        if self.suspended_change {
            self.suspend(side, true).await?;
            self.make_change(side).await?;
            // Two of Flagger's ticks, in which nothing may start.
            tokio::time::sleep(Duration::from_secs(25)).await;
            self.suspend(side, false).await?;
        } else {
            self.make_change(side).await?;
        }

        if let Some(answers) = self.answers {
            self.wait_for(side, &recorder, answers.phase).await?;
            let path = format!("/{namespace}/{}", answers.hook);
            let deadline = tokio::time::Instant::now() + SCENARIO_TIMEOUT;
            while side.hooks.calls_to(&path).len() < answers.calls {
                if tokio::time::Instant::now() > deadline {
                    return Err(format!(
                        "{}: {} was not called {} times",
                        side.operator, answers.hook, answers.calls
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            side.hooks.answer(&path, answers.then, "answered by the scenario");
        }
        if let End::Phase(phase) = self.end {
            self.wait_for(side, &recorder, phase).await?;
            self.wait_for_post_rollout(side, phase).await?;
        }
        if self.delete {
            self.delete_canary(side).await?;
        }
        Ok(recorder.finish(side, namespace, NAME).await)
    }

    /// Creates the namespace, the objects and the Canary, with the webhooks answering as the
    /// scenario says; the returned recorder saw every status the Canary had.
    pub async fn create(&self, side: &Side) -> Result<Recorder, String> {
        let namespace = self.name;
        side.namespace(namespace).await?;
        if let Some(answers) = self.answers {
            side.hooks.answer(
                &format!("/{namespace}/{}", answers.hook),
                answers.first,
                "held by the scenario",
            );
        }
        self.create_objects(side).await?;
        let recorder = Recorder::start(side, namespace, NAME).await?;
        Api::<Canary>::namespaced(side.env.client(), namespace)
            .create(&PostParams::default(), &self.canary(side)?)
            .await
            .map_err(|e| format!("{}: create the Canary: {e}", side.operator))?;
        Ok(recorder)
    }

    /// Deletes the Canary, waits until its finalizer let it go and then until the garbage
    /// collector removed what it owned (the primary, the Services), so the final objects compared
    /// are the same on both sides however busy the controller-manager is.
    async fn delete_canary(&self, side: &Side) -> Result<(), String> {
        let api = Api::<Canary>::namespaced(side.env.client(), self.name);
        let uid = api
            .get(NAME)
            .await
            .map_err(|e| format!("{}: read the Canary: {e}", side.operator))?
            .metadata
            .uid
            .unwrap_or_default();
        api.delete(NAME, &DeleteParams::default())
            .await
            .map_err(|e| format!("{}: delete the Canary: {e}", side.operator))?;
        let deadline = tokio::time::Instant::now() + SCENARIO_TIMEOUT;
        while api.get_opt(NAME).await.ok().flatten().is_some() {
            if tokio::time::Instant::now() > deadline {
                return Err(format!("{}: the Canary was never let go", side.operator));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        loop {
            let owned = self.owned_by(side, &uid).await;
            if owned.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "{}: the garbage collector left {owned:?}, owned by the deleted Canary",
                    side.operator
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The Deployments, Services and HorizontalPodAutoscalers of the scenario's namespace that
    /// name `uid` as an owner.
    async fn owned_by(&self, side: &Side, uid: &str) -> Vec<String> {
        let client = side.env.client();
        let owned = |kind: &str, meta: &kube::api::ObjectMeta| {
            let is_owned = meta.owner_references.iter().flatten().any(|owner| owner.uid == uid);
            is_owned.then(|| format!("{kind}/{}", meta.name.clone().unwrap_or_default()))
        };
        let mut found = Vec::new();
        if let Ok(list) = Api::<Deployment>::namespaced(client.clone(), self.name)
            .list(&Default::default())
            .await
        {
            found.extend(list.items.iter().filter_map(|d| owned("Deployment", &d.metadata)));
        }
        if let Ok(list) = Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), self.name)
            .list(&Default::default())
            .await
        {
            found.extend(list.items.iter().filter_map(|s| owned("Service", &s.metadata)));
        }
        if let Ok(list) = Api::<HorizontalPodAutoscaler>::namespaced(client, self.name)
            .list(&Default::default())
            .await
        {
            found.extend(
                list.items
                    .iter()
                    .filter_map(|h| owned("HorizontalPodAutoscaler", &h.metadata)),
            );
        }
        found
    }

    /// Both operators call post-rollout after they wrote the final phase: waits for that call,
    /// then for as long again as it took, so that a second call (a difference) would be seen.
    async fn wait_for_post_rollout(&self, side: &Side, phase: &str) -> Result<(), String> {
        if !self.hooks.contains(&"post-rollout") || !matches!(phase, "Succeeded" | "Failed") {
            return Ok(());
        }
        let path = format!("/{}/post-rollout", self.name);
        let started = tokio::time::Instant::now();
        let deadline = started + SCENARIO_TIMEOUT;
        while side.hooks.calls_to(&path).is_empty() {
            if tokio::time::Instant::now() > deadline {
                return Err(format!("{}: post-rollout was not called after {phase}", side.operator));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(started.elapsed().max(Duration::from_secs(2))).await;
        Ok(())
    }

    pub async fn wait_for(&self, side: &Side, recorder: &Recorder, phase: &str) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + SCENARIO_TIMEOUT;
        loop {
            if recorder.steps().iter().any(|s| s.phase == phase) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                let steps: Vec<String> = recorder.steps().iter().map(|s| s.to_string()).collect();
                return Err(format!(
                    "{}: scenario {} did not reach {phase} within {SCENARIO_TIMEOUT:?}; steps {steps:?}; log {:?}",
                    side.operator,
                    self.name,
                    side.log_path()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
