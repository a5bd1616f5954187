//! Amazon CloudWatch (`type: cloudwatch`), as Flagger's cloudwatch.go queries it through the AWS
//! SDK: the query is a JSON array of `MetricDataQuery` (as in `aws cloudwatch get-metric-data
//! --metric-data-queries`), sent as `GetMetricData` over the last ten metric intervals with
//! `MaxDatapoints` 20 to `https://monitoring.<region>.amazonaws.com` (the template's `region` is
//! required) in the Query protocol, signed with SigV4 (see [`crate::aws`] for credentials). The
//! value is the first value of the first result (the newest: CloudWatch answers newest first).
//! Online when a `GetMetricData` without queries is answered, or refused as invalid (400), as
//! Flagger asks.

use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::{MetricProvider, ProviderEnvironment, ProviderError, ProviderSettings, Sample};
use crate::{aws, rest};

/// Flagger's query window: ten metric intervals back from now.
const WINDOW_INTERVALS: u32 = 10;
const MAX_DATAPOINTS: &str = "20";
const TIMEOUT: Duration = Duration::from_secs(10);
const SERVICE: &str = "monitoring";

pub struct CloudWatch {
    region: String,
    endpoint: String,
    client: reqwest::Client,
    environment: ProviderEnvironment,
    window: Duration,
}

impl CloudWatch {
    /// A client for the template's region; an error says what is missing.
    pub fn new(settings: &ProviderSettings<'_>) -> Result<CloudWatch, String> {
        let region = settings
            .region
            .filter(|r| !r.is_empty())
            .ok_or("cloudwatch needs the template's region (e.g. us-east-1)")?;
        let default = format!("https://{SERVICE}.{region}.amazonaws.com");
        Ok(CloudWatch {
            region: region.to_string(),
            endpoint: aws::endpoint(settings.environment, "CLOUDWATCH", &default),
            client: settings.client.clone(),
            environment: settings.environment.clone(),
            window: settings.metric_interval.saturating_mul(WINDOW_INTERVALS),
        })
    }

    /// Sends `GetMetricData` with `queries` (Query-protocol parameters), signed; the XML answer.
    async fn get_metric_data(&self, queries: Vec<(String, String)>) -> Result<String, ProviderError> {
        let end = Timestamp::now();
        let window = SignedDuration::try_from(self.window).unwrap_or(SignedDuration::ZERO);
        let start = end.checked_sub(window).unwrap_or(end);
        let mut form = vec![
            ("Action".to_string(), "GetMetricData".to_string()),
            ("Version".to_string(), "2010-08-01".to_string()),
            ("StartTime".to_string(), iso8601(start)),
            ("EndTime".to_string(), iso8601(end)),
            ("MaxDatapoints".to_string(), MAX_DATAPOINTS.to_string()),
        ];
        form.extend(queries);
        let body = encode_form(&form);
        let credentials = aws::credentials(&self.environment, &self.region, &self.client).await?;
        let url = format!("{}/", self.endpoint);
        let signature = aws::signature_headers(credentials, &self.region, SERVICE, &url, &body)?;
        rest::call(
            || {
                signature
                    .iter()
                    .fold(self.client.post(&url), |request, (name, value)| {
                        request.header(name, value)
                    })
                    .header("content-type", aws::FORM)
                    .body(body.clone())
            },
            TIMEOUT,
        )
        .await
        .map_err(refusal_or_throttling)
    }
}

impl MetricProvider for CloudWatch {
    fn describe(&self) -> String {
        format!("cloudwatch in {} at {}", self.region, self.endpoint)
    }

    fn kind(&self) -> &'static str {
        "cloudwatch"
    }

    fn query<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Sample, ProviderError>> {
        Box::pin(async move {
            let queries: Value = serde_json::from_str(query).map_err(|e| ProviderError::Malformed {
                reason: format!("the query is not a JSON array of MetricDataQuery: {e}"),
            })?;
            if !queries.is_array() {
                return Err(ProviderError::Malformed {
                    reason: "the query must be a JSON array of MetricDataQuery".into(),
                });
            }
            let mut parameters = Vec::new();
            flatten("MetricDataQueries", &queries, &mut parameters);
            let answer = self.get_metric_data(parameters).await?;
            first_value(&answer)
        })
    }

    fn is_online(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            match self.get_metric_data(Vec::new()).await {
                Ok(_) | Err(ProviderError::Http { status: 400, .. }) => Ok(()),
                Err(error) => Err(error),
            }
        })
    }
}

/// `2026-12-01T10:00:00Z`
fn iso8601(at: Timestamp) -> String {
    k8s_openapi::jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", at).unwrap_or_else(|_| at.to_string())
}

fn encode_form(pairs: &[(String, String)]) -> String {
    reqwest::Url::parse("http://form").map_or_else(
        |_| String::new(),
        |mut url| {
            url.query_pairs_mut().extend_pairs(pairs);
            url.query().unwrap_or_default().to_string()
        },
    )
}

/// JSON as Query-protocol parameters: objects by `.`-joined member names, list items as
/// `.member.N` counted from 1 (`MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name`).
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(members) => {
            for (name, member) in members {
                flatten(&format!("{prefix}.{name}"), member, out);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                flatten(&format!("{prefix}.member.{}", index + 1), item, out);
            }
        }
        Value::String(text) => out.push((prefix.to_string(), text.clone())),
        Value::Number(number) => out.push((prefix.to_string(), number.to_string())),
        Value::Bool(flag) => out.push((prefix.to_string(), flag.to_string())),
        Value::Null => {}
    }
}

/// The first value of the first `MetricDataResults` member.
fn first_value(answer: &str) -> Result<Sample, ProviderError> {
    let malformed = |reason: String| ProviderError::Malformed { reason };
    let document = roxmltree::Document::parse(answer).map_err(|e| malformed(e.to_string()))?;
    let results: Vec<_> = document
        .descendants()
        .find(|n| n.has_tag_name("MetricDataResults"))
        .map(|results| results.children().filter(|n| n.has_tag_name("member")).collect())
        .unwrap_or_default();
    let first = results.first().ok_or(ProviderError::NoValues)?;
    let value = first
        .children()
        .find(|n| n.has_tag_name("Values"))
        .and_then(|values| values.children().find(|n| n.has_tag_name("member")))
        .and_then(|member| member.text())
        .ok_or(ProviderError::NoValues)?;
    Sample::of(crate::parse_value(value)?, results.len(), "first")
}

/// CloudWatch says "throttled" with a 400 and the code `Throttling`, and refuses credentials
/// with a 403 or a 400 naming the token.
fn refusal_or_throttling(error: ProviderError) -> ProviderError {
    match error {
        ProviderError::Http { status, body } => {
            let message = aws::error_message(&body);
            if message.starts_with("Throttling") {
                ProviderError::RateLimited { retry_after: None }
            } else if [
                "InvalidClientTokenId",
                "ExpiredToken",
                "UnrecognizedClientException",
                "AccessDenied",
            ]
            .iter()
            .any(|code| message.starts_with(code))
            {
                ProviderError::Refused { status, body: message }
            } else {
                ProviderError::Http { status, body: message }
            }
        }
        ProviderError::Refused { status, body } => ProviderError::Refused {
            status,
            body: aws::error_message(&body),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn queries_become_query_protocol_parameters() {
        let queries = json!([{ "Id": "e1", "Expression": "m1 / 100", "ReturnData": true },
            { "Id": "m1", "ReturnData": false, "MetricStat": { "Period": 60, "Stat": "Sum",
              "Metric": { "Namespace": "AWS/ApplicationELB", "MetricName": "HTTPCode_Target_5XX_Count",
                          "Dimensions": [{ "Name": "LoadBalancer", "Value": "app/web/1" }] } } }]);
        let mut parameters = Vec::new();
        flatten("MetricDataQueries", &queries, &mut parameters);
        let get = |name: &str| parameters.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(get("MetricDataQueries.member.1.Id"), Some("e1"));
        assert_eq!(get("MetricDataQueries.member.1.ReturnData"), Some("true"));
        assert_eq!(get("MetricDataQueries.member.2.MetricStat.Period"), Some("60"));
        assert_eq!(
            get("MetricDataQueries.member.2.MetricStat.Metric.Dimensions.member.1.Value"),
            Some("app/web/1")
        );
        assert_eq!(parameters.len(), 11);
        assert_eq!(
            encode_form(&[("Expression".into(), "m1 / 100".into())]),
            "Expression=m1+%2F+100"
        );
    }

    #[test]
    fn the_first_value_of_the_first_result() {
        let answer = "<GetMetricDataResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\">\
            <GetMetricDataResult><MetricDataResults>\
            <member><Id>e1</Id><Timestamps><member>2026-12-01T10:01:00Z</member><member>2026-12-01T10:00:00Z</member></Timestamps>\
            <Values><member>2.5</member><member>9</member></Values><StatusCode>Complete</StatusCode></member>\
            <member><Id>e2</Id><Values><member>7</member></Values></member>\
            </MetricDataResults></GetMetricDataResult></GetMetricDataResponse>";
        let sample = first_value(answer).expect("a value");
        assert_eq!((sample.value, sample.series, sample.picked), (2.5, 2, "first"));
        let empty = answer.replace("<member>2.5</member><member>9</member>", "");
        assert!(matches!(first_value(&empty), Err(ProviderError::NoValues)));
        assert!(matches!(
            first_value(
                "<GetMetricDataResponse><GetMetricDataResult><MetricDataResults/></GetMetricDataResult></GetMetricDataResponse>"
            ),
            Err(ProviderError::NoValues)
        ));
    }
}
