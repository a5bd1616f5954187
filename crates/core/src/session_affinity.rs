//! Session affinity (`analysis.sessionAffinity`): a user the weights sent to the canary keeps
//! going to the canary. The canary's responses set a cookie; requests carrying it are routed to
//! the canary whatever the weights. When the canary's weight drops to 0 (promotion done or
//! rollback) that cookie becomes the previous one, which the router expires (`Max-Age=-1`) on
//! the next request that carries it. With `primaryCookieName`, the primary's responses set a
//! cookie too, for one interval, so a user the weights sent to the primary stays there for a
//! step.
//!
//! Cookies are `name=value` strings kept in the status fields Flagger uses
//! (`sessionAffinityCookie`, `primarySessionAffinityCookie`, `previousSessionAffinityCookie`),
//! so a Canary taken over from Flagger keeps its users' sessions. A new value is derived from the
//! Canary and the revision under analysis rather than drawn at random: deciding again after a
//! crash before the status write gives the same cookie that was already routed.

use serin_api::CanaryStatus;
use serin_api::canary::SessionAffinity;
use sha2::{Digest, Sha256};

use crate::plan::{Action, Outcome, Routes};

/// The cookies a router writes into the routes, each `name=value`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionCookies {
    /// Set by the canary's responses and routed to the canary; only while it has weight.
    pub canary: Option<String>,
    /// Set by the primary's responses for one interval and routed to the primary; only while the
    /// canary has weight and `primaryCookieName` is set.
    pub primary: Option<String>,
    /// The canary cookie of an earlier run, expired on sight; only when the canary has no weight.
    pub previous: Option<String>,
}

/// Adds the session cookies to every route in `outcome` and records them in its status, for a
/// Canary with `status` (as read) analysing `revision`. Nothing changes without
/// `analysis.sessionAffinity` (or with no `cookieName`) or for A/B routes, which match on
/// headers instead.
pub fn add_cookies(
    affinity: Option<&SessionAffinity>,
    canary_key: &str,
    revision: &str,
    status: &CanaryStatus,
    outcome: &mut Outcome,
) {
    let Some(affinity) = affinity else { return };
    let Some(cookie_name) = affinity.cookie_name.as_deref().filter(|n| !n.is_empty()) else {
        return;
    };
    let mut next = outcome.status.clone().unwrap_or_else(|| status.clone());
    let mut changed = false;
    for action in &mut outcome.actions {
        let Action::Route(routes) = action else { continue };
        if routes.matched_to_canary {
            continue;
        }
        let before = next.clone();
        routes.cookies = Some(cookies_for(
            routes,
            affinity,
            cookie_name,
            canary_key,
            revision,
            &mut next,
        ));
        changed |= before != next;
    }
    if changed {
        outcome.status = Some(next);
    }
}

/// The cookies for `routes`, updating `status` as Flagger's Gateway API router does.
fn cookies_for(
    routes: &Routes,
    affinity: &SessionAffinity,
    cookie_name: &str,
    canary_key: &str,
    revision: &str,
    status: &mut CanaryStatus,
) -> SessionCookies {
    if routes.canary == 0 {
        if let Some(current) = status.session_affinity_cookie.take() {
            status.previous_session_affinity_cookie = Some(current);
        }
        return SessionCookies {
            previous: status.previous_session_affinity_cookie.clone(),
            ..SessionCookies::default()
        };
    }
    let canary = status
        .session_affinity_cookie
        .get_or_insert_with(|| format!("{cookie_name}={}", token(canary_key, revision, "canary")))
        .clone();
    let primary = affinity
        .primary_cookie_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .map(|primary_name| {
            status
                .primary_session_affinity_cookie
                .get_or_insert_with(|| format!("{primary_name}={}", token(canary_key, revision, "primary")))
                .clone()
        });
    SessionCookies {
        canary: Some(canary),
        primary,
        previous: None,
    }
}

/// Ten letters derived from the Canary, the revision and the cookie's role (Flagger draws ten
/// random letters).
fn token(canary_key: &str, revision: &str, role: &str) -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let digest = Sha256::new()
        .chain_update(canary_key)
        .chain_update([0])
        .chain_update(revision)
        .chain_update([0])
        .chain_update(role)
        .finalize();
    digest
        .iter()
        .take(10)
        .map(|byte| char::from(LETTERS[usize::from(*byte) % LETTERS.len()]))
        .collect()
}

/// The `Set-Cookie` value for `cookie` (`name=value`) living `max_age` seconds, with the
/// attributes `affinity` asks for, in Flagger's order (`BuildCookie`).
pub fn set_cookie(cookie: &str, max_age: i64, affinity: &SessionAffinity) -> String {
    let mut value = format!("{cookie}; Max-Age={max_age}");
    if let Some(domain) = affinity.domain.as_deref().filter(|d| !d.is_empty()) {
        value.push_str(&format!("; Domain={domain}"));
    }
    if affinity.http_only == Some(true) {
        value.push_str("; HttpOnly");
    }
    if affinity.partitioned == Some(true) {
        value.push_str("; Partitioned");
    }
    if let Some(path) = affinity.path.as_deref().filter(|p| !p.is_empty()) {
        value.push_str(&format!("; Path={path}"));
    }
    if let Some(same_site) = affinity.same_site {
        value.push_str(&format!("; SameSite={}", serin_api::wire_name(&same_site)));
    }
    if affinity.secure == Some(true) {
        value.push_str("; Secure");
    }
    value
}

/// How long the canary cookie lives: `maxAge`, a day when unset or 0 (Flagger's `GetMaxAge`).
pub fn canary_max_age(affinity: &SessionAffinity) -> i64 {
    match affinity.max_age {
        None | Some(0) => 86_400,
        Some(seconds) => i64::from(seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn affinity(value: serde_json::Value) -> SessionAffinity {
        serde_json::from_value(value).expect("sessionAffinity")
    }

    fn route_outcome(routes: Routes) -> Outcome {
        Outcome {
            actions: vec![Action::ScaleUpTarget, Action::Route(routes)],
            ..Outcome::default()
        }
    }

    fn routed_cookies(outcome: &Outcome) -> Option<SessionCookies> {
        outcome.actions.iter().find_map(|action| match action {
            Action::Route(routes) => routes.cookies.clone(),
            _ => None,
        })
    }

    #[test]
    fn a_run_gets_a_canary_cookie_kept_until_its_weight_drops_to_zero() {
        let affinity = affinity(json!({ "cookieName": "flagger-cookie" }));
        let mut outcome = route_outcome(Routes::weights(90, 10));
        add_cookies(
            Some(&affinity),
            "web.test",
            "s1-a",
            &CanaryStatus::default(),
            &mut outcome,
        );
        let status = outcome.status.clone().expect("the cookie is recorded");
        let cookie = status.session_affinity_cookie.clone().expect("canary cookie");
        let (name, value) = cookie.split_once('=').expect("name=value");
        assert_eq!(name, "flagger-cookie");
        assert_eq!(value.len(), 10);
        assert!(value.bytes().all(|b| b.is_ascii_alphabetic()), "{value}");
        assert_eq!(
            routed_cookies(&outcome),
            Some(SessionCookies {
                canary: Some(cookie.clone()),
                ..SessionCookies::default()
            })
        );

        let mut again = route_outcome(Routes::weights(80, 20));
        add_cookies(Some(&affinity), "web.test", "s1-a", &status, &mut again);
        assert_eq!(again.status, None, "the recorded cookie is reused");
        assert_eq!(routed_cookies(&again).and_then(|c| c.canary), Some(cookie.clone()));

        let mut done = route_outcome(Routes::all_to_primary());
        add_cookies(Some(&affinity), "web.test", "s1-a", &status, &mut done);
        let after = done.status.clone().expect("the cookie moves");
        assert_eq!(after.session_affinity_cookie, None);
        assert_eq!(after.previous_session_affinity_cookie, Some(cookie.clone()));
        assert_eq!(
            routed_cookies(&done),
            Some(SessionCookies {
                previous: Some(cookie),
                ..SessionCookies::default()
            })
        );
    }

    #[test]
    fn the_same_decision_gives_the_same_cookie_and_a_new_revision_another() {
        let affinity = affinity(json!({ "cookieName": "c", "primaryCookieName": "p" }));
        let cookies = |revision: &str| {
            let mut outcome = route_outcome(Routes::weights(90, 10));
            add_cookies(
                Some(&affinity),
                "web.test",
                revision,
                &CanaryStatus::default(),
                &mut outcome,
            );
            routed_cookies(&outcome).expect("cookies")
        };
        let first = cookies("s1-a");
        assert_eq!(
            first,
            cookies("s1-a"),
            "a decision taken again after a crash routes the same cookie"
        );
        assert_ne!(first.canary, cookies("s1-b").canary);
        assert_ne!(
            first.canary.as_deref().map(|c| &c[2..]),
            first.primary.as_deref().map(|c| &c[2..])
        );
        assert!(first.primary.as_deref().is_some_and(|c| c.starts_with("p=")));
    }

    #[test]
    fn cookies_left_by_flagger_are_kept() {
        let affinity = affinity(json!({ "cookieName": "c", "primaryCookieName": "p" }));
        let status = CanaryStatus {
            session_affinity_cookie: Some("c=FromFlagger".into()),
            primary_session_affinity_cookie: Some("p=AlsoFlagger".into()),
            ..CanaryStatus::default()
        };
        let mut outcome = route_outcome(Routes::weights(70, 30));
        add_cookies(Some(&affinity), "web.test", "s1-a", &status, &mut outcome);
        assert_eq!(outcome.status, None);
        assert_eq!(
            routed_cookies(&outcome),
            Some(SessionCookies {
                canary: Some("c=FromFlagger".into()),
                primary: Some("p=AlsoFlagger".into()),
                previous: None,
            })
        );
    }

    #[test]
    fn nothing_without_a_cookie_name_or_for_ab_routes() {
        let status = CanaryStatus::default();
        for affinity in [None, Some(affinity(json!({ "maxAge": 60 })))] {
            let mut outcome = route_outcome(Routes::weights(90, 10));
            add_cookies(affinity.as_ref(), "web.test", "s1-a", &status, &mut outcome);
            assert_eq!(outcome, route_outcome(Routes::weights(90, 10)));
        }
        let ab = Routes {
            matched_to_canary: true,
            ..Routes::all_to_primary()
        };
        let mut outcome = route_outcome(ab.clone());
        add_cookies(
            Some(&affinity(json!({ "cookieName": "c" }))),
            "web.test",
            "s1-a",
            &status,
            &mut outcome,
        );
        assert_eq!(outcome, route_outcome(ab));
    }

    #[test]
    fn set_cookie_attributes_in_flaggers_order() {
        let all = affinity(json!({
            "cookieName": "c", "domain": "example.com", "httpOnly": true, "partitioned": true,
            "path": "/app", "sameSite": "Lax", "secure": true, "maxAge": 0
        }));
        assert_eq!(
            set_cookie("c=abc", canary_max_age(&all), &all),
            "c=abc; Max-Age=86400; Domain=example.com; HttpOnly; Partitioned; Path=/app; SameSite=Lax; Secure"
        );
        let plain = affinity(json!({ "cookieName": "c", "maxAge": 3600 }));
        assert_eq!(
            set_cookie("c=abc", canary_max_age(&plain), &plain),
            "c=abc; Max-Age=3600"
        );
    }
}
