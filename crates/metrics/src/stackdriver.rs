//! Google Cloud Monitoring (`type: stackdriver`), as Flagger's stackdriver.go queries it: an MQL
//! query run with `timeSeries.query` on `projects/<project>` (here its REST form, `POST
//! <address>/v3/projects/<project>/timeSeries:query`, address `https://monitoring.googleapis.com`
//! unless the template gives one); the value is the first value of the first point of the first
//! time series. The Secret holds `project` and, optionally, `serviceAccountKey` (a key's JSON);
//! without a key the Application Default Credentials are used (GKE Workload Identity). Online
//! when an empty query is answered or refused as invalid (400), as Flagger asks.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

use super::{MetricProvider, ProviderEnvironment, ProviderError, ProviderSettings, Sample};
use crate::{google, rest};

pub const DEFAULT_ADDRESS: &str = "https://monitoring.googleapis.com";
const PROJECT: &str = "project";
const KEY: &str = "serviceAccountKey";
const SCOPE: &str = "https://www.googleapis.com/auth/monitoring.read";
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Stackdriver {
    address: String,
    project: String,
    key: Option<String>,
    client: reqwest::Client,
    environment: ProviderEnvironment,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    #[serde(default)]
    time_series_data: Vec<TimeSeries>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimeSeries {
    #[serde(default)]
    point_data: Vec<Point>,
}

#[derive(Deserialize)]
struct Point {
    #[serde(default)]
    values: Vec<TypedValue>,
}

/// One of Monitoring's typed values; int64 values are strings in JSON.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypedValue {
    double_value: Option<f64>,
    int64_value: Option<String>,
}

impl Stackdriver {
    /// A client for the Secret's project; an error says what is missing.
    pub fn new(settings: &ProviderSettings<'_>) -> Result<Stackdriver, String> {
        let needs = format!("stackdriver needs {PROJECT} (and may have {KEY})");
        if settings.secret.is_none() {
            return Err(format!("stackdriver needs a secretRef: {needs}"));
        }
        let project = rest::required_key(settings.credentials, PROJECT, &needs)?;
        if !project.chars().all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c)) {
            return Err(format!("the secretRef's {PROJECT} {project:?} is not a project ID"));
        }
        Ok(Stackdriver {
            address: settings
                .address
                .unwrap_or(DEFAULT_ADDRESS)
                .trim_end_matches('/')
                .to_string(),
            project,
            key: settings.credentials.get(KEY).cloned(),
            client: settings.client.clone(),
            environment: settings.environment.clone(),
        })
    }

    async fn run(&self, query: &str) -> Result<String, ProviderError> {
        let token = google::token(&self.environment, self.key.as_deref(), SCOPE).await?;
        let url = format!("{}/v3/projects/{}/timeSeries:query", self.address, self.project);
        let body = json!({ "query": query });
        rest::call(|| self.client.post(&url).bearer_auth(&token).json(&body), TIMEOUT)
            .await
            .map_err(|error| match error {
                ProviderError::Http { status, body } => ProviderError::Http {
                    status,
                    body: google_error(&body),
                },
                ProviderError::Refused { status, body } => ProviderError::Refused {
                    status,
                    body: google_error(&body),
                },
                other => other,
            })
    }
}

/// The `status: message` of a Google API error answer, or the answer itself.
fn google_error(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().map(|v| &v["error"]);
    match (
        error.and_then(|e| e["status"].as_str()),
        error.and_then(|e| e["message"].as_str()),
    ) {
        (Some(status), Some(message)) => format!("{status}: {message}"),
        _ => body.to_string(),
    }
}

fn first_value(answer: &str) -> Result<Sample, ProviderError> {
    let parsed: Response = crate::parse_json(answer)?;
    let series = parsed.time_series_data.len();
    let value = parsed
        .time_series_data
        .into_iter()
        .next()
        .and_then(|s| s.point_data.into_iter().next())
        .and_then(|p| p.values.into_iter().next())
        .ok_or(ProviderError::NoValues)?;
    let value = match (value.double_value, value.int64_value) {
        (Some(double), _) => double,
        (None, Some(integer)) => crate::parse_value(&integer)?,
        (None, None) => {
            return Err(ProviderError::Malformed {
                reason: "the first value is neither a double nor an int64".into(),
            });
        }
    };
    Sample::of(value, series, "first")
}

impl MetricProvider for Stackdriver {
    fn describe(&self) -> String {
        format!("stackdriver project {} at {}", self.project, self.address)
    }

    fn kind(&self) -> &'static str {
        "stackdriver"
    }

    fn query<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Sample, ProviderError>> {
        Box::pin(async move { first_value(&self.run(query).await?) })
    }

    fn is_online(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            match self.run("").await {
                Ok(_) | Err(ProviderError::Http { status: 400, .. }) => Ok(()),
                Err(error) => Err(error),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_value_of_the_first_series() {
        let answer = r#"{ "timeSeriesDescriptor": { "pointDescriptors": [{ "key": "value.ratio", "valueType": "DOUBLE" }] },
            "timeSeriesData": [
              { "labelValues": [{ "stringValue": "web" }], "pointData": [
                  { "values": [{ "doubleValue": 0.25 }], "timeInterval": { "endTime": "2026-12-01T10:01:00Z" } },
                  { "values": [{ "doubleValue": 0.5 }], "timeInterval": { "endTime": "2026-12-01T10:00:00Z" } } ] },
              { "labelValues": [{ "stringValue": "web-primary" }], "pointData": [{ "values": [{ "doubleValue": 0.1 }] }] } ] }"#;
        let sample = first_value(answer).expect("a value");
        assert_eq!((sample.value, sample.series, sample.picked), (0.25, 2, "first"));
        let integer = answer.replace(r#"{ "doubleValue": 0.25 }"#, r#"{ "int64Value": "12" }"#);
        assert_eq!(first_value(&integer).expect("a value").value, 12.0);
        assert!(matches!(first_value("{}"), Err(ProviderError::NoValues)));
        let boolean = answer.replace(r#"{ "doubleValue": 0.25 }"#, r#"{ "boolValue": true }"#);
        assert!(matches!(first_value(&boolean), Err(ProviderError::Malformed { .. })));
    }

    #[test]
    fn google_errors_read_as_status_and_message() {
        let body = r#"{ "error": { "code": 400, "message": "Line 1, column 1: syntax error", "status": "INVALID_ARGUMENT" } }"#;
        assert_eq!(google_error(body), "INVALID_ARGUMENT: Line 1, column 1: syntax error");
        assert_eq!(google_error("<html>"), "<html>");
    }
}
