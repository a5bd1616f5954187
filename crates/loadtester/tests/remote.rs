//! nGrinder and Concord tasks against loopback servers that speak those products' REST
//! contracts (the parts Flagger's load tester uses), including their error answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use serin_loadtester::access::Access;
use serin_loadtester::gates::GateStore;
use serin_loadtester::runner::Runner;
use serin_loadtester::{Service, router};

#[derive(Default)]
struct Fake {
    calls: Vec<String>,
    polls: usize,
    /// The status reported after two polls.
    final_status: String,
}

type Shared = Arc<Mutex<Fake>>;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("listen");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

fn record(shared: &Shared, call: String) {
    if let Ok(mut fake) = shared.lock() {
        fake.calls.push(call);
    }
}

/// Two polls report the test running, then `final_status`.
fn poll(shared: &Shared) -> String {
    let Ok(mut fake) = shared.lock() else {
        return "UNKNOWN".into();
    };
    fake.polls += 1;
    if fake.polls > 2 {
        fake.final_status.clone()
    } else {
        "RUNNING".into()
    }
}

async fn ngrinder(final_status: &str) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(Fake {
        final_status: final_status.into(),
        ..Default::default()
    }));
    let app = Router::new()
        .route(
            "/perftest/api/{clone}/clone_and_start",
            post(
                |State(s): State<Shared>, Path(clone): Path<u64>, headers: HeaderMap| async move {
                    // admin:s3cret
                    let authorized =
                        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Basic YWRtaW46czNjcmV0");
                    record(&s, format!("clone_and_start {clone}"));
                    if !authorized {
                        return (
                            StatusCode::UNAUTHORIZED,
                            axum::Json(json!({ "success": false, "message": "bad credentials" })),
                        );
                    }
                    (StatusCode::OK, axum::Json(json!({ "id": 42 })))
                },
            ),
        )
        .route(
            "/perftest/api/{id}/status",
            get(|State(s): State<Shared>, Path(id): Path<u64>| async move {
                let status = poll(&s);
                axum::Json(json!({ "status": [{ "id": id, "status_id": status }] }))
            }),
        )
        .route(
            "/perftest/api/{id}",
            put(|State(s): State<Shared>, Path(id): Path<u64>| async move {
                record(&s, format!("stop {id}"));
                axum::Json(json!({ "success": true }))
            }),
        )
        .with_state(shared.clone());
    (serve(app).await, shared)
}

async fn concord(final_status: &str) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(Fake {
        final_status: final_status.into(),
        ..Default::default()
    }));
    let app = Router::new()
        .route(
            "/api/v1/process",
            post(|State(s): State<Shared>, headers: HeaderMap, body: Bytes| async move {
                let form = String::from_utf8_lossy(&body).into_owned();
                let fields = [
                    "org",
                    "project",
                    "repo",
                    "entryPoint",
                    "arguments.endpoint",
                    "arguments.users",
                ];
                let complete = fields.iter().all(|f| form.contains(&format!("name=\"{f}\"")));
                record(&s, format!("start complete={complete}"));
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("concord-key") {
                    return (
                        StatusCode::UNAUTHORIZED,
                        axum::Json(json!({ "message": "invalid API key" })),
                    );
                }
                (
                    StatusCode::OK,
                    axum::Json(json!({ "instanceId": "abc-123", "ok": true })),
                )
            }),
        )
        .route(
            "/api/v1/process/{id}",
            get(|State(s): State<Shared>, Path(id): Path<String>| async move {
                axum::Json(json!({ "instanceId": id, "status": poll(&s) }))
            }),
        )
        .with_state(shared.clone());
    (serve(app).await, shared)
}

async fn load_tester() -> String {
    load_tester_with(Access::default()).await
}

async fn load_tester_with(access: Access) -> String {
    serin_testenv::install_crypto_provider();
    let service = Service::new(
        Runner::new(Vec::new(), Duration::from_secs(30)).with_access(access),
        GateStore::memory(),
        None,
        None,
    );
    serve(router(Arc::new(service))).await
}

async fn post_task(tester: &str, metadata: Value) -> (u16, String) {
    let payload = json!({ "name": "podinfo", "namespace": "test", "metadata": metadata });
    let response = reqwest::Client::new()
        .post(tester)
        .json(&payload)
        .send()
        .await
        .expect("request");
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

fn ngrinder_task(server: &str, password_base64: &str) -> Value {
    json!({ "type": "ngrinder", "server": server, "clone": "7", "username": "admin", "passwd": password_base64, "pollInterval": "1s" })
}

#[tokio::test(flavor = "multi_thread")]
async fn ngrinder_tests_are_cloned_started_and_polled_to_their_end() {
    let tester = load_tester().await;
    let (server, fake) = ngrinder("FINISHED").await;
    // base64("s3cret")
    let (status, body) = post_task(&tester, ngrinder_task(&server, "czNjcmV0")).await;
    assert_eq!((status, body.as_str()), (200, "the test finished"));
    let (calls, polls) = fake.lock().map(|f| (f.calls.clone(), f.polls)).expect("fake");
    assert_eq!(calls, vec!["clone_and_start 7"]);
    assert_eq!(polls, 3);

    let (server, _) = ngrinder("STOP_BY_ERROR").await;
    let (status, body) = post_task(&tester, ngrinder_task(&server, "czNjcmV0")).await;
    assert_eq!((status, body.as_str()), (500, "the test ended STOP_BY_ERROR"));

    let (server, _) = ngrinder("FINISHED").await;
    let (status, body) = post_task(&tester, ngrinder_task(&server, "d3Jvbmc=")).await;
    assert_eq!(status, 500);
    assert!(body.contains("refused") && body.contains("bad credentials"), "{body}");

    let (status, body) = post_task(&tester, json!({ "type": "ngrinder", "server": server })).await;
    assert_eq!((status, body.as_str()), (400, "ngrinder tasks need metadata.clone"));
}

#[tokio::test(flavor = "multi_thread")]
async fn concord_processes_are_started_and_polled_to_their_end() {
    let secrets = tempfile::tempdir().expect("-secrets-dir");
    std::fs::write(secrets.path().join("concord"), "concord-key\n").expect("write key");
    std::fs::write(secrets.path().join("wrong"), "other-key").expect("write key");
    let tester = load_tester_with(Access::new(Some(secrets.path().to_path_buf()), None)).await;
    let task = |server: &str, key_path: &str| {
        json!({
            "type": "concord", "server": server, "org": "ops", "project": "canary", "repo": "tests",
            "entrypoint": "load", "endpoint": "http://podinfo-canary", "apiKeyPath": key_path,
            "arguments.users": "10", "pollInterval": "1", "pollTimeout": "10"
        })
    };
    let (server, fake) = concord("FINISHED").await;
    let (status, body) = post_task(&tester, task(&server, "concord")).await;
    assert_eq!((status, body.as_str()), (200, "the test finished"));
    assert_eq!(
        fake.lock().expect("fake").calls,
        vec!["start complete=true"],
        "every form field sent"
    );

    let (server, _) = concord("FAILED").await;
    let absolute = secrets.path().join("concord").display().to_string();
    let (status, body) = post_task(&tester, task(&server, &absolute)).await;
    assert_eq!((status, body.as_str()), (500, "the test ended FAILED"));

    let (server, _) = concord("FINISHED").await;
    let (status, body) = post_task(&tester, task(&server, "wrong")).await;
    assert_eq!(status, 500);
    assert!(body.contains("invalid API key"), "{body}");

    let mut invalid = task(&server, "/nonexistent");
    invalid["arguments.endpoint"] = json!("http://elsewhere");
    let (status, body) = post_task(&tester, invalid).await;
    assert_eq!(
        (status, body.as_str()),
        (400, "metadata.arguments.endpoint cannot be set; set metadata.endpoint")
    );
}

/// A payload cannot make the load tester send a file it can read (the ServiceAccount token, a
/// file outside -secrets-dir) to a server it names, nor reach a host off -allowed-hosts.
#[tokio::test(flavor = "multi_thread")]
async fn a_payload_cannot_send_files_out_or_reach_hosts_off_the_list() {
    let root = tempfile::tempdir().expect("a directory");
    let secrets = root.path().join("secrets");
    std::fs::create_dir(&secrets).expect("-secrets-dir");
    std::fs::write(root.path().join("token"), "service-account-token").expect("a file outside");
    let (server, fake) = concord("FINISHED").await;
    let concord_task = |key_path: &str| {
        json!({
            "type": "concord", "server": server, "org": "ops", "project": "canary", "repo": "tests",
            "entrypoint": "load", "endpoint": "http://podinfo-canary", "apiKeyPath": key_path,
            "pollInterval": "1", "pollTimeout": "10"
        })
    };
    let outside = root.path().join("token").display().to_string();
    let unset = load_tester().await;
    let (status, body) = post_task(&unset, concord_task(&outside)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("-secrets-dir, which is not set"), "{body}");

    let tester = load_tester_with(Access::new(Some(secrets), Some(vec!["127.0.0.1".into()]))).await;
    for key_path in [
        outside.as_str(),
        "../token",
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
    ] {
        let (status, body) = post_task(&tester, concord_task(key_path)).await;
        assert_eq!(status, 403, "{key_path}: {body}");
        assert!(body.contains("is outside -secrets-dir"), "{body}");
    }
    assert!(
        fake.lock().expect("fake").calls.is_empty(),
        "nothing was sent to the server"
    );

    for task in [
        json!({ "type": "load", "url": "http://podinfo-canary.test/", "duration": "1s" }),
        json!({ "type": "ngrinder", "server": "http://ngrinder.elsewhere:8080", "clone": "1", "username": "u", "passwd": "cA==" }),
        json!({ "type": "concord", "server": "http://concord.elsewhere", "org": "o", "project": "p", "repo": "r",
            "entrypoint": "e", "endpoint": "x", "apiKeyPath": "key" }),
    ] {
        let (status, body) = post_task(&tester, task.clone()).await;
        assert_eq!(status, 403, "{task}: {body}");
        assert!(body.contains("is not in -allowed-hosts (127.0.0.1)"), "{body}");
    }
}

/// A server that answers without end is cut off at the answer limit: the task fails with a
/// message, and the load tester does not hold the answer whole.
#[tokio::test(flavor = "multi_thread")]
async fn an_endless_answer_is_cut_off() {
    let endless = Router::new().route(
        "/perftest/api/{clone}/clone_and_start",
        post(|| async {
            let chunk = Bytes::from(vec![b' '; 64 * 1024]);
            axum::body::Body::from_stream(futures::stream::repeat_with(move || {
                Ok::<_, std::io::Error>(chunk.clone())
            }))
        }),
    );
    let server = serve(endless).await;
    let tester = load_tester().await;
    let started = std::time::Instant::now();
    let (status, body) = post_task(&tester, ngrinder_task(&server, "czNjcmV0")).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("answered with more than 1048576 bytes"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(10), "cut off at once");
}
