//! Graphite (`type: graphite`), as Flagger's graphite.go queries it: the query is the render
//! API's query string (e.g. `target=summarize(app.errors,'1min','sum')&from=-1min`), whitespace
//! collapsed, sent to `GET <address>/render` with `format=json`; the value is the last non-null
//! datapoint of the last target that has one. The `secretRef`, if any, holds `username` and
//! `password` (basic auth). Online when `target=test` answers, with or without values.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{MetricProvider, ProviderError, ProviderSettings, Sample};
use crate::rest;

const USERNAME: &str = "username";
const PASSWORD: &str = "password";
/// Flagger's timeout for each call.
const TIMEOUT: Duration = Duration::from_secs(5);
const ONLINE_QUERY: &str = "target=test";

pub struct Graphite {
    address: String,
    client: reqwest::Client,
    basic: Option<(String, String)>,
}

#[derive(Deserialize)]
struct Target {
    #[serde(default)]
    datapoints: Vec<(serde_json::Value, serde_json::Value)>,
}

impl Graphite {
    /// A client for the template's address; an error says what is missing.
    pub fn new(settings: &ProviderSettings<'_>) -> Result<Graphite, String> {
        let address = settings
            .address
            .ok_or("graphite needs graphite-web's URL in the template's address")?;
        let basic = match settings.secret {
            None => None,
            Some(_) => {
                let needs = format!("graphite needs {USERNAME} and {PASSWORD}");
                let key = |name: &str| rest::required_key(settings.credentials, name, &needs);
                Some((key(USERNAME)?, key(PASSWORD)?))
            }
        };
        Ok(Graphite {
            address: address.trim_end_matches('/').to_string(),
            client: settings.client.clone(),
            basic,
        })
    }

    async fn render(&self, query: &str) -> Result<Sample, ProviderError> {
        let query = query.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut parameters: Vec<(String, String)> = reqwest::Url::parse(&format!("http://graphite/render?{query}"))
            .map_err(|e| ProviderError::Malformed {
                reason: format!("the query is not a render query string: {e}"),
            })?
            .query_pairs()
            .filter(|(name, _)| name != "format")
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        parameters.push(("format".into(), "json".into()));
        let url = format!("{}/render", self.address);
        let body = rest::call(
            || {
                let request = self.client.get(&url).query(&parameters);
                match &self.basic {
                    Some((user, password)) => request.basic_auth(user, Some(password)),
                    None => request,
                }
            },
            TIMEOUT,
        )
        .await?;
        let targets: Vec<Target> = crate::parse_json(&body)?;
        let mut value = None;
        for target in &targets {
            for (point, _) in &target.datapoints {
                if let Some(found) = number(point)? {
                    value = Some(found);
                }
            }
        }
        Sample::of(value.ok_or(ProviderError::NoValues)?, targets.len(), "last")
    }
}

/// A datapoint's value: a number, a number as a string, or null.
fn number(point: &serde_json::Value) -> Result<Option<f64>, ProviderError> {
    match point {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(number) => Ok(number.as_f64()),
        serde_json::Value::String(text) => crate::parse_value(text).map(Some),
        other => Err(ProviderError::Malformed {
            reason: format!("the datapoint {other} is not a number"),
        }),
    }
}

impl MetricProvider for Graphite {
    fn describe(&self) -> String {
        format!("graphite at {}", self.address)
    }

    fn kind(&self) -> &'static str {
        "graphite"
    }

    fn query<'a>(&'a self, query: &'a str) -> BoxFuture<'a, Result<Sample, ProviderError>> {
        Box::pin(self.render(query))
    }

    fn is_online(&self) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async move {
            match self.render(ONLINE_QUERY).await {
                Ok(_) | Err(ProviderError::NoValues) => Ok(()),
                Err(error) => Err(error),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datapoints_are_numbers_strings_or_null() {
        assert_eq!(number(&serde_json::json!(1.5)).ok().flatten(), Some(1.5));
        assert_eq!(number(&serde_json::json!("2.5")).ok().flatten(), Some(2.5));
        assert_eq!(number(&serde_json::json!(null)).ok().flatten(), None);
        assert!(number(&serde_json::json!("many")).is_err());
        assert!(number(&serde_json::json!([1])).is_err());
    }
}
