//! Keptn (`type: keptn`), as Flagger's keptn.go reads it from the cluster: the query names a
//! Keptn resource, `keptnmetric/<namespace>/<name>` (the KeptnMetric's `status.value`) or
//! `analysis/<namespace>/<AnalysisDefinition>[/<timeframe, default 1m>[/<key=value;…>]]` (an
//! Analysis is created for the definition, waited for up to 10 s until its `status.state` is
//! `Completed`, read as 1 when `status.pass` and 0 when not, and deleted). The query is read in
//! lower case, as Flagger does. Online: always, as Flagger.

use std::time::Duration;

use futures::future::BoxFuture;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

use super::{MetricProvider, ProviderError, ProviderSettings, Sample};

const GROUP: &str = "metrics.keptn.sh";
const VERSION: &str = "v1beta1";
const ANALYSIS_TIMEOUT: Duration = Duration::from_secs(10);
const ANALYSIS_POLL: Duration = Duration::from_secs(1);
const FORMAT: &str = "the query must be keptnmetric/<namespace>/<name> or \
                      analysis/<namespace>/<AnalysisDefinition>[/<timeframe>[/<key=value;…>]]";

pub struct Keptn {
    client: kube::Client,
}

/// A parsed query.
#[derive(Debug, PartialEq)]
enum Resource {
    Metric {
        namespace: String,
        name: String,
    },
    Analysis {
        namespace: String,
        definition: String,
        timeframe: String,
        arguments: serde_json::Map<String, Value>,
    },
}

impl Keptn {
    pub fn new(settings: &ProviderSettings<'_>) -> Result<Keptn, String> {
        let client = settings
            .cluster
            .ok_or("keptn reads the cluster's API, which this caller has no client for")?;
        Ok(Keptn { client: client.clone() })
    }

    fn api(&self, namespace: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
        let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, kind), plural);
        Api::namespaced_with(self.client.clone(), namespace, &resource)
    }

    async fn metric(&self, namespace: &str, name: &str) -> Result<Sample, ProviderError> {
        let unreadable = |e: kube::Error| ProviderError::Unreachable {
            reason: format!("KeptnMetric {namespace}/{name} cannot be read: {e}"),
        };
        let metric = self
            .api(namespace, "KeptnMetric", "keptnmetrics")
            .get_opt(name)
            .await
            .map_err(unreadable)?
            .ok_or_else(|| ProviderError::Malformed {
                reason: format!("KeptnMetric {namespace}/{name} not found"),
            })?;
        let value = metric.data["status"]["value"].as_str().ok_or(ProviderError::NoValues)?;
        Sample::of(crate::parse_value(value)?, 1, "only")
    }

    async fn analysis(
        &self,
        namespace: &str,
        definition: &str,
        timeframe: &str,
        arguments: &serde_json::Map<String, Value>,
    ) -> Result<Sample, ProviderError> {
        let api = self.api(namespace, "Analysis", "analyses");
        let failed = |what: &str, e: kube::Error| ProviderError::Unreachable {
            reason: format!("Keptn Analysis for {namespace}/{definition}: {what}: {e}"),
        };
        let analysis: DynamicObject = serde_json::from_value(json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": "Analysis",
            "metadata": { "generateName": format!("{definition}-"), "namespace": namespace },
            "spec": {
                "analysisDefinition": { "name": definition },
                "timeframe": { "recent": timeframe },
                "args": arguments,
            },
        }))
        .map_err(|e| ProviderError::Malformed { reason: e.to_string() })?;
        let created = api
            .create(&PostParams::default(), &analysis)
            .await
            .map_err(|e| failed("cannot be created", e))?;
        let name = created.metadata.name.clone().unwrap_or_default();
        let verdict = self.wait_for_verdict(&api, &name).await;
        if let Err(error) = api.delete(&name, &DeleteParams::default()).await {
            tracing::warn!(%error, namespace, analysis = name, "the Keptn Analysis could not be deleted");
        }
        let passed = verdict
            .map_err(|e| failed("cannot be read", e))?
            .ok_or(ProviderError::Timeout {
                after: ANALYSIS_TIMEOUT,
            })?;
        Sample::of(if passed { 1.0 } else { 0.0 }, 1, "only")
    }

    /// `status.pass` once the Analysis is `Completed`; `None` after [`ANALYSIS_TIMEOUT`].
    async fn wait_for_verdict(&self, api: &Api<DynamicObject>, name: &str) -> Result<Option<bool>, kube::Error> {
        let deadline = tokio::time::Instant::now() + ANALYSIS_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(ANALYSIS_POLL).await;
            let analysis = api.get(name).await?;
            let status = &analysis.data["status"];
            if status["state"] == "Completed"
                && let Some(passed) = status["pass"].as_bool()
            {
                return Ok(Some(passed));
            }
        }
        Ok(None)
    }
}

/// Flagger's query format, read in lower case.
fn parse(query: &str) -> Result<Resource, ProviderError> {
    let query = query.trim().to_lowercase();
    let parts: Vec<&str> = query.split('/').collect();
    let malformed = || ProviderError::Malformed { reason: FORMAT.into() };
    if parts.len() < 3 || parts[1].is_empty() || parts[2].is_empty() {
        return Err(malformed());
    }
    let (namespace, name) = (parts[1].to_string(), parts[2].to_string());
    match parts[0] {
        "keptnmetric" | "keptnmetrics" => Ok(Resource::Metric { namespace, name }),
        "analysis" | "analyses" => Ok(Resource::Analysis {
            namespace,
            definition: name,
            timeframe: parts.get(3).copied().unwrap_or("1m").to_string(),
            arguments: parts
                .get(4)
                .into_iter()
                .flat_map(|arguments| arguments.split(';'))
                .filter_map(|pair| match pair.split('=').collect::<Vec<_>>()[..] {
                    [key, value] => Some((key.to_string(), Value::String(value.to_string()))),
                    _ => None,
                })
                .collect(),
        }),
        _ => Err(malformed()),
    }
}

impl MetricProvider for Keptn {
    fn describe(&self) -> String {
        "keptn".into()
    }

    fn kind(&self) -> &'static str {
        "keptn"
    }

    fn query<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Sample, ProviderError>> {
        Box::pin(async move {
            match parse(query)? {
                Resource::Metric { namespace, name } => self.metric(&namespace, &name).await,
                Resource::Analysis {
                    namespace,
                    definition,
                    timeframe,
                    arguments,
                } => self.analysis(&namespace, &definition, &timeframe, &arguments).await,
            }
        })
    }

    fn is_online(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_in_flaggers_format() {
        assert_eq!(
            parse("KeptnMetric/Shop/Error-Rate\n").ok(),
            Some(Resource::Metric {
                namespace: "shop".into(),
                name: "error-rate".into()
            })
        );
        let Ok(Resource::Analysis {
            timeframe, arguments, ..
        }) = parse("analysis/shop/slo/5m/service=web;bad;team=a")
        else {
            panic!("an analysis");
        };
        assert_eq!(timeframe, "5m");
        assert_eq!(
            serde_json::Value::Object(arguments),
            json!({ "service": "web", "team": "a" })
        );
        assert!(matches!(
            parse("analysis/shop/slo"),
            Ok(Resource::Analysis { timeframe, .. }) if timeframe == "1m"
        ));
        for wrong in ["keptnmetric/shop", "metric/shop/x", "keptnmetric//x"] {
            assert!(parse(wrong).is_err(), "{wrong}");
        }
    }
}
