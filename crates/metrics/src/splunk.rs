//! Splunk Observability Cloud (SignalFx, `type: splunk`). Flagger's splunk.go runs the query, a
//! SignalFlow program, over SignalFlow's WebSocket; serin runs it over SignalFlow's HTTP
//! interface, which Splunk documents as the same computation with Server-Sent Events:
//! `POST <stream address>/v2/signalflow/execute?start=…&stop=…&immediate=true` (the last ten
//! metric intervals, milliseconds), the program as the body, `X-SF-Token` from the Secret's
//! `sf_token_key`. The stream address is the template's `address` (the API's, e.g.
//! `https://api.us1.signalfx.com`) with `api` turned into `stream`, as Flagger does. As
//! Flagger, data points without a value are dropped, points of more than one time series fail the
//! check, and the value is the last point's. Online when `GET <address>/v2/metric?limit=1`
//! answers 200.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{MetricProvider, ProviderError, ProviderSettings, Sample};
use crate::rest;

const TOKEN: &str = "sf_token_key";
/// Flagger's query window: ten metric intervals back from now.
const WINDOW_INTERVALS: u32 = 10;
/// Flagger's timeout for each call.
const TIMEOUT: Duration = Duration::from_secs(5);

pub struct Splunk {
    api: String,
    stream: String,
    client: reqwest::Client,
    token: String,
    window: Duration,
}

/// A `data` message: one compute iteration's points.
#[derive(Deserialize)]
struct DataMessage {
    #[serde(default)]
    data: Vec<Point>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Point {
    ts_id: String,
    value: Option<f64>,
}

impl Splunk {
    /// A client for the realm's API at `address`; an error says what is missing.
    pub fn new(settings: &ProviderSettings<'_>) -> Result<Splunk, String> {
        let address = settings
            .address
            .ok_or("splunk needs the realm's API URL in the template's address (e.g. https://api.us1.signalfx.com)")?
            .trim_end_matches('/');
        Ok(Splunk {
            api: address.to_string(),
            stream: address.replacen("api", "stream", 1),
            client: settings.client.clone(),
            token: rest::required_key(settings.credentials, TOKEN, &format!("splunk needs {TOKEN}"))?,
            window: settings.metric_interval.saturating_mul(WINDOW_INTERVALS),
        })
    }
}

/// The value of a SignalFlow computation's event stream.
fn last_value(stream: &str) -> Result<Sample, ProviderError> {
    let stream = stream.replace("\r\n", "\n");
    let mut points = Vec::new();
    for event in stream.split("\n\n") {
        let mut kind = "message";
        let mut data = String::new();
        for line in event.lines() {
            if let Some(name) = line.strip_prefix("event:") {
                kind = name.trim();
            } else if let Some(part) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(part.strip_prefix(' ').unwrap_or(part));
            }
        }
        match kind {
            "data" => {
                let message: DataMessage = crate::parse_json(&data)?;
                points.extend(message.data.into_iter().filter(|p| p.value.is_some()));
            }
            "error" => {
                return Err(ProviderError::Malformed {
                    reason: format!("the SignalFlow program failed: {data}"),
                });
            }
            "control-message" if data.contains("CHANNEL_ABORT") => {
                return Err(ProviderError::Malformed {
                    reason: format!("the computation was aborted: {data}"),
                });
            }
            _ => {}
        }
    }
    let series: BTreeSet<&str> = points.iter().map(|p| p.ts_id.as_str()).collect();
    if series.len() > 1 {
        return Err(ProviderError::Malformed {
            reason: format!(
                "{} time series where one is needed: aggregate the program's output (e.g. .sum())",
                series.len()
            ),
        });
    }
    let value = points.last().and_then(|p| p.value).ok_or(ProviderError::NoValues)?;
    Sample::of(value, 1, "last")
}

impl MetricProvider for Splunk {
    fn describe(&self) -> String {
        format!("splunk at {}", self.stream)
    }

    fn kind(&self) -> &'static str {
        "splunk"
    }

    fn query<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Sample, ProviderError>> {
        Box::pin(async move {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let start = now.saturating_sub(self.window.as_millis());
            let url = format!("{}/v2/signalflow/execute", self.stream);
            let stream = rest::call(
                || {
                    self.client
                        .post(&url)
                        .header("X-SF-Token", &self.token)
                        .header("Content-Type", "text/plain")
                        .header("Accept", "text/event-stream")
                        .query(&[
                            ("start", start.to_string()),
                            ("stop", now.to_string()),
                            ("immediate", "true".to_string()),
                        ])
                        .body(query.to_string())
                },
                TIMEOUT,
            )
            .await?;
            last_value(&stream)
        })
    }

    fn is_online(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let url = format!("{}/v2/metric", self.api);
            rest::call(
                || {
                    self.client
                        .get(&url)
                        .header("X-SF-Token", &self.token)
                        .query(&[("limit", "1")])
                },
                TIMEOUT,
            )
            .await
            .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "event: control-message\ndata: {\"type\":\"control-message\",\"event\":\"STREAM_START\"}\n\n\
        event: metadata\ndata: {\"type\":\"metadata\",\"tsId\":\"AAAAAKE5\"}\n\n\
        event: data\ndata: {\"logicalTimestampMs\":1,\"data\":[{\"tsId\":\"AAAAAKE5\",\"value\":1.5}]}\n\n\
        event: data\ndata: {\"logicalTimestampMs\":2,\"data\":[{\"tsId\":\"AAAAAKE5\",\"value\":2.5}]}\n\n\
        event: data\ndata: {\"logicalTimestampMs\":3,\"data\":[{\"tsId\":\"AAAAAKE5\",\"value\":null}]}\n\n\
        event: control-message\ndata: {\"type\":\"control-message\",\"event\":\"END_OF_CHANNEL\"}\n\n";

    #[test]
    fn the_last_point_of_the_one_time_series() {
        let sample = last_value(STREAM).expect("a value");
        assert_eq!((sample.value, sample.picked), (2.5, "last"));
        let two = STREAM.replacen(
            "\"tsId\":\"AAAAAKE5\",\"value\":2.5",
            "\"tsId\":\"BBBBBKE5\",\"value\":2.5",
            1,
        );
        let error = last_value(&two).map_err(|e| e.to_string()).expect_err("two series");
        assert!(error.contains("2 time series where one is needed"), "{error}");
        let empty = "event: control-message\ndata: {\"event\":\"END_OF_CHANNEL\"}\n\n";
        assert!(matches!(last_value(empty), Err(ProviderError::NoValues)));
        let aborted = "event: control-message\ndata: {\"event\":\"CHANNEL_ABORT\",\"abortInfo\":{\"sf_job_abortReason\":\"quota\"}}\n\n";
        assert!(last_value(aborted).is_err());
    }
}
