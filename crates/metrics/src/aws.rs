//! Calling an AWS API as the AWS SDKs do from a pod: credentials from the SDKs' chain as far as
//! an operator in a cluster needs it (the `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN` variables, then IAM Roles for Service Accounts: `AWS_ROLE_ARN` and
//! `AWS_WEB_IDENTITY_TOKEN_FILE` exchanged with STS `AssumeRoleWithWebIdentity`, cached until
//! shortly before they expire), endpoints overridable with `AWS_ENDPOINT_URL_<SERVICE>` /
//! `AWS_ENDPOINT_URL`, and each request signed with Signature Version 4 by AWS's own
//! `aws-sigv4` crate. The Query protocol's answers and errors are XML.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use k8s_openapi::jiff::Timestamp;

use crate::{ProviderEnvironment, ProviderError, rest};

/// How long before their expiry cached STS credentials are renewed.
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(300);
const STS_TIMEOUT: Duration = Duration::from_secs(10);

/// Temporary credentials obtained from STS, by role and token file.
#[derive(Default)]
pub struct CredentialCache {
    assumed: Mutex<HashMap<(String, String), (Credentials, SystemTime)>>,
}

/// The credentials to sign with, from the environment's chain.
pub async fn credentials(
    environment: &ProviderEnvironment,
    region: &str,
    client: &reqwest::Client,
) -> Result<Credentials, ProviderError> {
    let variable = |name: &str| environment.variable(name).filter(|v| !v.is_empty());
    if let (Some(key), Some(secret)) = (variable("AWS_ACCESS_KEY_ID"), variable("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Credentials::new(
            key,
            secret,
            variable("AWS_SESSION_TOKEN"),
            None,
            "environment",
        ));
    }
    let (Some(role), Some(token_file)) = (variable("AWS_ROLE_ARN"), variable("AWS_WEB_IDENTITY_TOKEN_FILE")) else {
        return Err(ProviderError::Unauthenticated {
            reason: "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_ROLE_ARN and \
                   AWS_WEB_IDENTITY_TOKEN_FILE (IAM Roles for Service Accounts) in the operator's environment"
                .into(),
        });
    };
    let key = (role.clone(), token_file.clone());
    let cached = environment
        .aws_credentials()
        .assumed
        .lock()
        .ok()
        .and_then(|cache| cache.get(&key).cloned());
    if let Some((credentials, renew_at)) = cached
        && SystemTime::now() < renew_at
    {
        return Ok(credentials);
    }
    let token = std::fs::read_to_string(&token_file).map_err(|e| ProviderError::Unauthenticated {
        reason: format!("the web identity token file {token_file} cannot be read: {e}"),
    })?;
    let session = variable("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "serin".into());
    let endpoint = endpoint(environment, "STS", &format!("https://sts.{region}.amazonaws.com"));
    let answer = rest::call(
        || {
            client.post(&endpoint).form(&[
                ("Action", "AssumeRoleWithWebIdentity"),
                ("Version", "2011-06-15"),
                ("RoleArn", role.as_str()),
                ("RoleSessionName", session.as_str()),
                ("WebIdentityToken", token.trim()),
            ])
        },
        STS_TIMEOUT,
    )
    .await
    .map_err(|error| match error {
        ProviderError::Http { status, body } | ProviderError::Refused { status, body } => {
            ProviderError::Unauthenticated {
                reason: format!("STS refused role {role} ({status}): {}", error_message(&body)),
            }
        }
        other => other,
    })?;
    let (credentials, expiration) = assumed_credentials(&answer)?;
    let renew_at = SystemTime::from(expiration)
        .checked_sub(RENEW_BEFORE_EXPIRY)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if let Ok(mut cache) = environment.aws_credentials().assumed.lock() {
        cache.insert(key, (credentials.clone(), renew_at));
    }
    Ok(credentials)
}

/// `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`, else `default`.
pub fn endpoint(environment: &ProviderEnvironment, service: &str, default: &str) -> String {
    environment
        .variable(&format!("AWS_ENDPOINT_URL_{service}"))
        .or_else(|| environment.variable("AWS_ENDPOINT_URL"))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
        .trim_end_matches('/')
        .to_string()
}

/// The SigV4 headers for a POST of the form `body` to `url`.
pub fn signature_headers(
    credentials: Credentials,
    region: &str,
    service: &str,
    url: &str,
    body: &str,
) -> Result<Vec<(String, String)>, ProviderError> {
    let failed = |reason: String| ProviderError::Malformed {
        reason: format!("the request cannot be signed: {reason}"),
    };
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| failed(e.to_string()))?
        .into();
    let headers = [("content-type", FORM)];
    let request = SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body.as_bytes()))
        .map_err(|e| failed(e.to_string()))?;
    let (instructions, _) = sign(request, &params).map_err(|e| failed(e.to_string()))?.into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect())
}

pub const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// The `Code: Message` of an AWS XML error answer, or the answer itself.
pub fn error_message(body: &str) -> String {
    let Ok(document) = roxmltree::Document::parse(body) else {
        return body.to_string();
    };
    let text = |name: &str| {
        document
            .descendants()
            .find(|n| n.has_tag_name(name))
            .and_then(|n| n.text())
            .map(str::to_string)
    };
    match (text("Code"), text("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => body.to_string(),
    }
}

/// The credentials and their expiry in STS's `AssumeRoleWithWebIdentity` answer.
fn assumed_credentials(answer: &str) -> Result<(Credentials, Timestamp), ProviderError> {
    let malformed = |reason: String| ProviderError::Malformed {
        reason: format!("STS: {reason}"),
    };
    let document = roxmltree::Document::parse(answer).map_err(|e| malformed(e.to_string()))?;
    let field = |name: &str| {
        document
            .descendants()
            .find(|n| n.has_tag_name("Credentials"))
            .and_then(|c| c.children().find(|n| n.has_tag_name(name)))
            .and_then(|n| n.text())
            .map(str::trim)
            .map(str::to_string)
            .ok_or_else(|| malformed(format!("the answer has no Credentials.{name}")))
    };
    let expiration: Timestamp = field("Expiration")?
        .parse()
        .map_err(|e| malformed(format!("Expiration: {e}")))?;
    let credentials = Credentials::new(
        field("AccessKeyId")?,
        field("SecretAccessKey")?,
        Some(field("SessionToken")?),
        Some(SystemTime::from(expiration)),
        "web-identity",
    );
    Ok((credentials, expiration))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_read_as_code_and_message() {
        let body = "<ErrorResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\"><Error><Type>Sender</Type>\
                    <Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>";
        assert_eq!(error_message(body), "Throttling: Rate exceeded");
        assert_eq!(error_message("not xml"), "not xml");
    }

    #[test]
    fn sts_answers_give_credentials_and_their_expiry() {
        let answer = "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
            <AssumeRoleWithWebIdentityResult><Credentials><SessionToken>token</SessionToken>\
            <SecretAccessKey>secret</SecretAccessKey><Expiration>2026-12-01T12:00:00Z</Expiration>\
            <AccessKeyId>ASIAEXAMPLE</AccessKeyId></Credentials></AssumeRoleWithWebIdentityResult>\
            </AssumeRoleWithWebIdentityResponse>";
        let (credentials, expiration) = assumed_credentials(answer).expect("credentials");
        assert_eq!(credentials.access_key_id(), "ASIAEXAMPLE");
        assert_eq!(credentials.session_token(), Some("token"));
        assert_eq!(expiration.to_string(), "2026-12-01T12:00:00Z");
        assert!(assumed_credentials("<Other/>").is_err());
    }
}
