//! Delivery to real HTTP receivers on loopback: what arrives, through a proxy, and what happens
//! when a receiver is down, slow, refuses or rate-limits.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serin_api::alert_provider::AlertProviderType;
use serin_notify::{DeliveryObserver, Dispatcher, Endpoint, Message, Policy, Severity, notifier};
use serin_testenv::webhooks::WebhookReceiver;

#[derive(Default)]
struct Outcomes(Mutex<Vec<String>>);

impl DeliveryObserver for Outcomes {
    fn delivered(&self, _kind: &str, outcome: &str, _elapsed: Duration) {
        if let Ok(mut outcomes) = self.0.lock() {
            outcomes.push(outcome.to_string());
        }
    }
}

impl Outcomes {
    async fn wait_for(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let outcomes = self.0.lock().map(|o| o.clone()).unwrap_or_default();
            if outcomes.len() >= count || Instant::now() > deadline {
                return outcomes;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn quick_policy() -> Policy {
    Policy {
        timeout: Duration::from_millis(500),
        attempts: 3,
        backoff: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(5),
        min_interval: Duration::from_millis(10),
        queue: 10,
        idle: Duration::from_secs(60),
    }
}

fn dispatcher(policy: Policy) -> (Dispatcher, Arc<Outcomes>) {
    let outcomes = Arc::new(Outcomes::default());
    (Dispatcher::new(policy, Some(outcomes.clone())), outcomes)
}

fn message(text: &str) -> Message {
    Message {
        workload: "podinfo".into(),
        namespace: "test".into(),
        text: text.into(),
        fields: vec![("Cluster".into(), "local".into())],
        severity: Severity::Info,
    }
}

fn slack_request(address: &str, text: &str) -> serin_notify::Request {
    let endpoint = Endpoint {
        address: address.into(),
        token: Some("xoxb-token".into()),
        username: "serin".into(),
        channel: Some("deploys".into()),
    };
    notifier(AlertProviderType::Slack, &endpoint)
        .expect("a notifier")
        .request(&message(text))
}

#[tokio::test]
async fn a_message_arrives_with_its_payload_and_token() {
    let receiver = WebhookReceiver::start().await.expect("receiver");
    let (dispatcher, outcomes) = dispatcher(quick_policy());
    let address = format!("{}/services/T/B/X", receiver.url());
    dispatcher
        .send("slack", "slack", None, slack_request(&address, "hello"))
        .expect("queued");
    assert_eq!(outcomes.wait_for(1).await, ["sent"]);
    let calls = receiver.calls_to("/services/T/B/X");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].body["attachments"][0]["text"], "hello");
    assert_eq!(calls[0].body["channel"], "deploys");
    assert_eq!(calls[0].authorization.as_deref(), Some("Bearer xoxb-token"));
    assert_eq!(calls[0].proxied_host, None);
}

#[tokio::test]
async fn a_proxy_carries_the_message_to_the_named_host() {
    // The receiver plays the proxy: a plain-HTTP proxy is sent the absolute URI of the target,
    // so nothing reaches `hooks.slack.invalid` except through it.
    let proxy = WebhookReceiver::start().await.expect("proxy");
    let (dispatcher, outcomes) = dispatcher(quick_policy());
    dispatcher
        .send(
            "slack",
            "slack",
            Some(proxy.url()),
            slack_request("http://hooks.slack.invalid/services/T/B/X", "via proxy"),
        )
        .expect("queued");
    assert_eq!(outcomes.wait_for(1).await, ["sent"]);
    let calls = proxy.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].proxied_host.as_deref(), Some("hooks.slack.invalid"));
    assert_eq!(calls[0].path, "/services/T/B/X");
    assert_eq!(calls[0].body["attachments"][0]["text"], "via proxy");

    let invalid = dispatcher.send(
        "slack",
        "slack",
        Some("not a url"),
        slack_request("http://hooks.slack.invalid/x", "x"),
    );
    assert_eq!(invalid, Err(serin_notify::Error::InvalidProxy));
}

#[tokio::test]
async fn a_receiver_that_is_down_neither_blocks_the_sender_nor_other_destinations() {
    // A port that was just free: nothing listens on it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let down = format!("http://{}/hook", closed.local_addr().expect("address"));
    drop(closed);
    let receiver = WebhookReceiver::start().await.expect("receiver");
    let (dispatcher, outcomes) = dispatcher(quick_policy());
    let started = Instant::now();
    for n in 0..3 {
        dispatcher
            .send("down", "slack", None, slack_request(&down, &format!("lost {n}")))
            .expect("queued");
    }
    dispatcher
        .send(
            "up",
            "slack",
            None,
            slack_request(&format!("{}/hook", receiver.url()), "arrives"),
        )
        .expect("queued");
    assert!(started.elapsed() < Duration::from_millis(100), "sending waited");
    let outcomes = outcomes.wait_for(4).await;
    assert_eq!(outcomes.first().map(String::as_str), Some("sent"), "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| *o == "failed").count(), 3, "{outcomes:?}");
    assert_eq!(receiver.calls().len(), 1);
}

#[tokio::test]
async fn a_slow_receiver_is_given_up_after_the_timeout_and_retried() {
    let receiver = WebhookReceiver::start().await.expect("receiver");
    receiver.hold("/slow", Duration::from_secs(3));
    let (dispatcher, outcomes) = dispatcher(quick_policy());
    let started = Instant::now();
    dispatcher
        .send(
            "slow",
            "slack",
            None,
            slack_request(&format!("{}/slow", receiver.url()), "late"),
        )
        .expect("queued");
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(outcomes.wait_for(1).await, ["failed"]);
    // Three attempts of 500 ms each with 100 ms and 200 ms between them, not three of 3 s.
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(receiver.calls_to("/slow").len(), 3);
}

#[tokio::test]
async fn too_many_requests_is_retried_after_the_receivers_retry_after() {
    let receiver = WebhookReceiver::start().await.expect("receiver");
    receiver.answer_once("/limited", 429, Some(1));
    let (dispatcher, outcomes) = dispatcher(quick_policy());
    dispatcher
        .send(
            "limited",
            "slack",
            None,
            slack_request(&format!("{}/limited", receiver.url()), "patience"),
        )
        .expect("queued");
    assert_eq!(outcomes.wait_for(1).await, ["sent"]);
    let calls = receiver.calls_to("/limited");
    assert_eq!(calls.len(), 2);
    let waited = calls[1].received.duration_since(calls[0].received);
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
}

#[tokio::test]
async fn a_refusal_is_not_retried_and_a_server_error_is() {
    let receiver = WebhookReceiver::start().await.expect("receiver");
    receiver.answer("/refused", 404, "no_service");
    receiver.answer_once("/flaky", 503, None);
    let (dispatcher, outcomes) = dispatcher(quick_policy());
    dispatcher
        .send(
            "refused",
            "slack",
            None,
            slack_request(&format!("{}/refused", receiver.url()), "x"),
        )
        .expect("queued");
    dispatcher
        .send(
            "flaky",
            "slack",
            None,
            slack_request(&format!("{}/flaky", receiver.url()), "y"),
        )
        .expect("queued");
    let mut outcomes = outcomes.wait_for(2).await;
    outcomes.sort();
    assert_eq!(outcomes, ["refused", "sent"]);
    assert_eq!(receiver.calls_to("/refused").len(), 1);
    assert_eq!(receiver.calls_to("/flaky").len(), 2);
}

#[tokio::test]
async fn messages_to_one_destination_are_spaced_by_the_rate_limit() {
    let receiver = WebhookReceiver::start().await.expect("receiver");
    let policy = Policy {
        min_interval: Duration::from_millis(300),
        ..quick_policy()
    };
    let (dispatcher, outcomes) = dispatcher(policy);
    for n in 0..3 {
        dispatcher
            .send(
                "paced",
                "slack",
                None,
                slack_request(&format!("{}/paced", receiver.url()), &format!("m{n}")),
            )
            .expect("queued");
    }
    assert_eq!(outcomes.wait_for(3).await, ["sent", "sent", "sent"]);
    let calls = receiver.calls_to("/paced");
    let texts: Vec<_> = calls.iter().map(|c| c.body["attachments"][0]["text"].clone()).collect();
    assert_eq!(texts, ["m0", "m1", "m2"], "in order");
    for pair in calls.windows(2) {
        let gap = pair[1].received.duration_since(pair[0].received);
        assert!(gap >= Duration::from_millis(280), "{gap:?}");
    }
}

#[tokio::test]
async fn a_full_queue_drops_and_says_so() {
    let receiver = WebhookReceiver::start().await.expect("receiver");
    receiver.hold("/held", Duration::from_secs(2));
    let policy = Policy {
        queue: 1,
        attempts: 1,
        timeout: Duration::from_secs(5),
        ..quick_policy()
    };
    let (dispatcher, outcomes) = dispatcher(policy);
    let url = format!("{}/held", receiver.url());
    let results: Vec<_> = (0..4)
        .map(|n| dispatcher.send("held", "slack", None, slack_request(&url, &format!("m{n}"))))
        .collect();
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(serin_notify::Error::QueueFull { .. }))),
        "{results:?}"
    );
    let outcomes = outcomes.wait_for(1).await;
    assert!(outcomes.iter().any(|o| o == "dropped"), "{outcomes:?}");
}
