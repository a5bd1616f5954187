//! InfluxDB (`type: influxdb`). A Flux query is run as Flagger's influxdb.go runs it (through
//! influxdb-client-go): `POST <address>/api/v2/query?org=<org>` with `Authorization: Token
//! <token>`, the answer in annotated CSV; the value is the first record's `_value`, which must be
//! a float. A query that starts with `SELECT` is InfluxQL (serin's addition, for InfluxDB 1.x,
//! whose API 2.x also serves): `GET <address>/query?q=<query>&epoch=ms`, with basic auth from
//! `username` and `password` or the token; the value is the first value column of the first
//! row of the first series.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

use super::{MetricProvider, ProviderError, ProviderSettings, Sample};
use crate::rest;

const TOKEN: &str = "token";
const ORG: &str = "org";
const USERNAME: &str = "username";
const PASSWORD: &str = "password";
/// Flagger's timeout for each query.
const TIMEOUT: Duration = Duration::from_secs(15);
const ONLINE_QUERY: &str = r#"from(bucket: "default") |> range(start: -2h)"#;

pub struct InfluxDb {
    address: String,
    client: reqwest::Client,
    credentials: Credentials,
}

enum Credentials {
    None,
    /// A 2.x token and organization (Flagger's keys).
    Token {
        token: String,
        org: String,
    },
    /// A 1.x user.
    User {
        username: String,
        password: String,
    },
}

/// InfluxQL's JSON answer.
#[derive(Deserialize)]
struct InfluxQlResponse {
    #[serde(default)]
    results: Vec<StatementResult>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct StatementResult {
    #[serde(default)]
    series: Vec<InfluxQlSeries>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct InfluxQlSeries {
    #[serde(default)]
    values: Vec<Vec<serde_json::Value>>,
}

impl InfluxDb {
    /// A client for the template's address; an error says what is missing.
    pub fn new(settings: &ProviderSettings<'_>) -> Result<InfluxDb, String> {
        let address = settings
            .address
            .ok_or("influxdb needs its URL in the template's address")?;
        let credentials = match settings.secret {
            None => Credentials::None,
            Some(_) => credentials(settings.credentials)?,
        };
        Ok(InfluxDb {
            address: address.trim_end_matches('/').to_string(),
            client: settings.client.clone(),
            credentials,
        })
    }

    async fn flux(&self, query: &str) -> Result<Sample, ProviderError> {
        let url = format!("{}/api/v2/query", self.address);
        let body = json!({
            "query": query,
            "type": "flux",
            "dialect": { "header": true, "delimiter": ",", "annotations": ["datatype", "group", "default"],
                         "commentPrefix": "#", "dateTimeFormat": "RFC3339" },
        });
        let org = match &self.credentials {
            Credentials::Token { org, .. } => org.as_str(),
            _ => "",
        };
        let answer = rest::call(
            || {
                self.authorized(self.client.post(&url))
                    .query(&[("org", org)])
                    .header("Accept", "application/csv")
                    .json(&body)
            },
            TIMEOUT,
        )
        .await?;
        first_flux_value(&answer)
    }

    async fn influxql(&self, query: &str) -> Result<Sample, ProviderError> {
        let url = format!("{}/query", self.address);
        let answer = rest::call(
            || {
                self.authorized(self.client.get(&url))
                    .query(&[("q", query), ("epoch", "ms")])
            },
            TIMEOUT,
        )
        .await?;
        let parsed: InfluxQlResponse = crate::parse_json(&answer)?;
        let failed = |message: String| ProviderError::Malformed {
            reason: format!("the query failed: {message}"),
        };
        if let Some(error) = parsed.error {
            return Err(failed(error));
        }
        let statement = parsed.results.into_iter().next().ok_or(ProviderError::NoValues)?;
        if let Some(error) = statement.error {
            return Err(failed(error));
        }
        let series = statement.series.len();
        let row = statement
            .series
            .into_iter()
            .next()
            .and_then(|s| s.values.into_iter().next())
            .ok_or(ProviderError::NoValues)?;
        let value = match row.get(1) {
            None | Some(serde_json::Value::Null) => return Err(ProviderError::NoValues),
            Some(serde_json::Value::Number(number)) => number.as_f64().ok_or(ProviderError::NoValues)?,
            Some(other) => {
                return Err(ProviderError::Malformed {
                    reason: format!("the value {other} is not a number"),
                });
            }
        };
        Sample::of(value, series, "first")
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials {
            Credentials::None => request,
            Credentials::Token { token, .. } => request.header("Authorization", format!("Token {token}")),
            Credentials::User { username, password } => request.basic_auth(username, Some(password)),
        }
    }
}

/// As Flagger, `token` and `org`; or, for InfluxDB 1.x, `username` and `password`.
fn credentials(secret: &std::collections::BTreeMap<String, String>) -> Result<Credentials, String> {
    let needs = format!("influxdb needs {TOKEN} and {ORG} (2.x), or {USERNAME} and {PASSWORD} (1.x)");
    let key = |name: &str| rest::required_key(secret, name, &needs);
    if secret.contains_key(USERNAME) || secret.contains_key(PASSWORD) {
        return Ok(Credentials::User {
            username: key(USERNAME)?,
            password: key(PASSWORD)?,
        });
    }
    Ok(Credentials::Token {
        token: key(TOKEN)?,
        org: key(ORG)?,
    })
}

fn is_influxql(query: &str) -> bool {
    query
        .trim_start()
        .get(..6)
        .is_some_and(|start| start.eq_ignore_ascii_case("select"))
}

/// The first record's `_value` in a Flux answer (annotated CSV, one or more tables, each with its
/// annotation rows and header); an `error` table is the query's failure.
fn first_flux_value(answer: &str) -> Result<Sample, ProviderError> {
    let malformed = |reason: String| ProviderError::Malformed { reason };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(answer.as_bytes());
    let mut header: Option<csv::StringRecord> = None;
    let mut datatypes: Option<csv::StringRecord> = None;
    let mut tables = std::collections::BTreeSet::new();
    let mut first: Option<(String, String)> = None;
    for row in reader.records() {
        let row = row.map_err(|e| malformed(format!("the CSV answer cannot be read: {e}")))?;
        let first_cell = row.get(0).unwrap_or_default();
        if first_cell == "#datatype" {
            datatypes = Some(row);
            header = None;
            continue;
        }
        if first_cell.starts_with('#') || row.iter().all(str::is_empty) {
            continue;
        }
        let Some(columns) = &header else {
            header = Some(row);
            continue;
        };
        let cell = |name: &str| columns.iter().position(|c| c == name).and_then(|i| row.get(i));
        if let Some(error) = cell("error") {
            return Err(malformed(format!("the query failed: {error}")));
        }
        tables.insert(cell("table").unwrap_or_default().to_string());
        if first.is_none() {
            let value = cell("_value").ok_or_else(|| malformed("the records have no _value column".into()))?;
            let datatype = columns
                .iter()
                .position(|c| c == "_value")
                .and_then(|i| datatypes.as_ref()?.get(i))
                .unwrap_or("double");
            first = Some((value.to_string(), datatype.to_string()));
        }
    }
    let (value, datatype) = first.ok_or(ProviderError::NoValues)?;
    if value.is_empty() {
        return Err(ProviderError::NoValues);
    }
    if datatype != "double" {
        return Err(malformed(format!(
            "_value is a {datatype} ({value}); the query must give a float (e.g. |> toFloat())"
        )));
    }
    Sample::of(crate::parse_value(&value)?, tables.len(), "first")
}

impl MetricProvider for InfluxDb {
    fn describe(&self) -> String {
        format!("influxdb at {}", self.address)
    }

    fn kind(&self) -> &'static str {
        "influxdb"
    }

    fn query<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Sample, ProviderError>> {
        Box::pin(async move {
            if is_influxql(query) {
                self.influxql(query).await
            } else {
                self.flux(query).await
            }
        })
    }

    /// As Flagger, a Flux query over the last two hours of bucket `default` answered; with 1.x
    /// credentials, `SHOW DATABASES` answered.
    fn is_online(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            let answer = match self.credentials {
                Credentials::User { .. } => self.influxql_answered("SHOW DATABASES").await,
                _ => self.flux(ONLINE_QUERY).await.map(|_| ()),
            };
            match answer {
                Ok(()) | Err(ProviderError::NoValues) => Ok(()),
                Err(error) => Err(error),
            }
        })
    }
}

impl InfluxDb {
    async fn influxql_answered(&self, query: &str) -> Result<(), ProviderError> {
        let url = format!("{}/query", self.address);
        rest::call(
            || self.authorized(self.client.get(&url)).query(&[("q", query)]),
            TIMEOUT,
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_TABLES: &str = "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,double,string\r
#group,false,false,true,true,false,true\r
#default,_result,,,,,\r
,result,table,_start,_stop,_value,service\r
,,0,2026-12-01T10:00:00Z,2026-12-01T10:05:00Z,0.25,\"web, primary\"\r
,,1,2026-12-01T10:00:00Z,2026-12-01T10:05:00Z,0.75,web-canary\r
\r
";

    #[test]
    fn the_first_record_of_an_annotated_csv_answer() {
        let sample = first_flux_value(TWO_TABLES).expect("a value");
        assert_eq!((sample.value, sample.series, sample.picked), (0.25, 2, "first"));
        assert!(matches!(first_flux_value(""), Err(ProviderError::NoValues)));
        let empty_value = TWO_TABLES.replace(",0.25,", ",,");
        assert!(matches!(first_flux_value(&empty_value), Err(ProviderError::NoValues)));
        let long = TWO_TABLES.replace(",double,", ",long,").replace("0.25", "3");
        let error = first_flux_value(&long).map_err(|e| e.to_string()).expect_err("a long");
        assert!(error.contains("_value is a long (3)"), "{error}");
        let failed = "#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n,error,reference\r\n,\"type error 1:1-1:5: undefined identifier frm\",\r\n";
        let error = first_flux_value(failed)
            .map_err(|e| e.to_string())
            .expect_err("an error table");
        assert!(error.contains("undefined identifier frm"), "{error}");
    }

    #[test]
    fn influxql_is_told_by_its_select() {
        assert!(is_influxql("  SELECT mean(\"value\") FROM cpu"));
        assert!(is_influxql("select 1"));
        assert!(!is_influxql("from(bucket: \"b\") |> range(start: -5m)"));
        assert!(!is_influxql("sel"));
    }
}
