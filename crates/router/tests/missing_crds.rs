//! A router whose provider's CRDs are not installed says which CRD is missing, against a real
//! API server that lacks them.

use serde_json::json;
use serin_api::Canary;
use serin_api::canary::Provider;
use serin_core::plan::Routes;
use serin_router::{Error, Settings, for_provider};
use serin_testenv::{Options, TestEnv};

fn canary(namespace: &str, provider: &str) -> Canary {
    serde_json::from_value(json!({
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": { "name": "podinfo", "namespace": namespace, "uid": "3b1f6c1e-0000-4000-8000-000000000001" },
        "spec": {
            "provider": provider,
            "targetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo" },
            "service": { "port": 9898 }
        }
    }))
    .expect("a Canary")
}

/// One control plane for both providers: starting one is the slow part.
#[tokio::test(flavor = "multi_thread")]
async fn routers_without_their_crds_name_the_crd_to_install() {
    let env = TestEnv::start(Options { nodes: 1 }).await.expect("control plane");
    let namespace = env.namespace("missing-crds").await.expect("namespace");
    istio_names_its_crds(&env, &canary(&namespace, "istio")).await;
    linkerd_names_the_traffic_split_crd(&env, &canary(&namespace, "linkerd")).await;
    env.teardown().await;
}

async fn linkerd_names_the_traffic_split_crd(env: &TestEnv, canary: &Canary) {
    let router = for_provider(Provider::Linkerd, &env.client(), &Settings::default()).expect("the linkerd router");
    let error = router
        .set_routes(canary, &Routes::all_to_primary())
        .await
        .expect_err("no SMI CRDs");
    assert_eq!(
        error.to_string(),
        "the TrafficSplit CRD (trafficsplits.split.smi-spec.io) is not installed in the cluster: install linkerd-smi's CRDs or choose another provider"
    );
    assert!(error.is_user_error());
    let error = router.get_routes(canary).await.expect_err("no SMI CRDs");
    assert_eq!(error.reason(), "MissingCrd");
}

async fn istio_names_its_crds(env: &TestEnv, canary: &Canary) {
    let canary = canary.clone();
    let router = for_provider(Provider::Istio, &env.client(), &Settings::default()).expect("the istio router");

    let error = router
        .set_routes(&canary, &Routes::all_to_primary())
        .await
        .expect_err("no Istio CRDs");
    assert!(
        matches!(&error, Error::MissingCrd { crd, .. } if crd == "destinationrules.networking.istio.io"),
        "{error:?}"
    );
    assert_eq!(error.reason(), "MissingCrd");
    assert_eq!(
        error.to_string(),
        "the DestinationRule CRD (destinationrules.networking.istio.io) is not installed in the cluster: install Istio's CRDs or choose another provider"
    );
    let error = router.get_routes(&canary).await.expect_err("no Istio CRDs");
    assert!(
        matches!(&error, Error::MissingCrd { crd, .. } if crd == "virtualservices.networking.istio.io"),
        "{error:?}"
    );
}

#[test]
fn app_mesh_v1beta1_is_refused_with_its_replacement() {
    let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a URI"));
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let _entered = runtime.enter();
    let client = kube::Client::try_from(config).expect("a client");
    let Err(error) = for_provider(Provider::AppMesh, &client, &Settings::default()) else {
        panic!("appmesh (v1beta1) has no router");
    };
    assert!(error.is_user_error());
    assert_eq!(error.reason(), "UnsupportedProvider");
    assert!(
        error
            .to_string()
            .ends_with("use appmesh:v1beta2 with App Mesh controller v1"),
        "{error}"
    );
}
