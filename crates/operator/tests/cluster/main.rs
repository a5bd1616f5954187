//! Cluster tests: serin's operator against a real kube-apiserver, controller-manager, scheduler
//! and kwok (see serin-testenv). One control plane and one operator serve every test, each test
//! in its own namespace, as canaries share an operator in real clusters.

mod alerts;
mod analysis;
mod appmesh;
mod configs;
mod gates;
mod gloo;
mod initialization;
mod istio;
mod lifecycle;
mod loadtester;
mod metrics;
mod nginx;
mod robustness;
mod smi;
mod support;
mod telemetry;
mod validation;

use std::process::ExitCode;
use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};
use serin_testenv::Options;
use support::Cluster;

type Scenario = fn(Arc<Cluster>) -> std::pin::Pin<Box<dyn Future<Output = Result<(), Failed>> + Send>>;

macro_rules! scenarios {
    ($($module:ident :: $name:ident),* $(,)?) => {
        vec![$((stringify!($name), (|env| Box::pin($module::$name(env))) as Scenario)),*]
    };
}

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // The tests mostly wait on the cluster, so run more of them at once than there are cores.
    args.test_threads = args.test_threads.or(Some(8));
    let scenarios = scenarios![
        validation::invalid_canaries_are_rejected_with_a_message,
        validation::a_complete_canary_is_accepted,
        initialization::a_canary_is_initialized,
        initialization::a_missing_target_is_reported_then_picked_up,
        initialization::a_target_without_selector_label_is_reported,
        initialization::a_v1alpha3_canary_with_canary_analysis_is_served,
        analysis::blue_green_on_kubernetes_calls_every_webhook_in_order,
        analysis::failed_checks_roll_back_after_the_threshold,
        analysis::progressive_canary_on_gateway_api_steps_through_weights,
        analysis::ab_testing_sends_matching_requests_to_the_canary,
        analysis::event_webhooks_receive_every_event,
        gates::confirm_gates_hold_then_release,
        gates::a_rollback_webhook_rolls_back,
        gates::a_new_revision_mid_analysis_restarts_it,
        gates::skip_analysis_promotes_without_checks,
        gates::a_suspended_canary_ignores_new_revisions_until_resumed,
        loadtester::the_load_tester_holds_the_gate_runs_load_and_rolls_back,
        configs::a_config_change_is_a_new_revision_copied_to_the_primary,
        lifecycle::revert_on_deletion_gives_the_target_back,
        lifecycle::an_hpa_is_copied_for_the_primary_and_kept_in_sync,
        lifecycle::a_missing_autoscaler_is_reported,
        lifecycle::a_daemon_set_is_rolled_out_like_a_deployment,
        lifecycle::a_keda_scaled_object_is_copied_and_the_targets_is_paused_between_rollouts,
        robustness::broken_checks_are_reported_with_their_reason,
        metrics::a_metric_templates_secret_is_used_and_its_change_applied,
        metrics::keptn_metrics_and_analyses_judge_a_rollout,
        robustness::a_target_deleted_mid_rollout_is_reported,
        robustness::a_second_canary_for_a_managed_target_is_refused,
        robustness::spec_warnings_are_published_once,
        analysis::http_route_fields_are_applied_and_drifted_weights_set_back,
        analysis::session_affinity_keeps_users_on_their_side,
        telemetry::the_operators_metrics_follow_a_rollout,
        alerts::alerts_reach_each_provider_by_severity,
        alerts::the_global_notifier_and_a_missing_provider,
        istio::istio_canary_steps_through_weights,
        istio::istio_rollback_returns_traffic_to_the_primary,
        istio::an_existing_virtual_service_is_adopted_and_given_back,
        istio::the_istio_tutorial_initializes_a_virtual_service,
        istio::istio_tcp_and_delegate_virtual_services_are_accepted,
        nginx::the_nginx_tutorial_initializes_a_canary_ingress,
        nginx::nginx_canary_steps_through_weights_and_rolls_back,
        nginx::nginx_ab_testing_routes_by_header_and_cookie,
        nginx::a_missing_nginx_ingress_is_reported_until_it_exists,
        smi::linkerd_canary_steps_through_weights_and_rolls_back,
        smi::osm_canary_steps_through_weights,
        smi::smi_v1alpha3_canary_steps_through_weights,
        smi::smi_ab_testing_keeps_traffic_on_the_primary,
        smi::the_linkerd_tutorial_initializes_an_http_route_on_the_service,
        smi::a_users_traffic_split_is_adopted_and_given_back,
        gloo::the_gloo_tutorial_initializes_upstreams_and_a_route_table,
        gloo::gloo_canary_steps_through_weights_and_rolls_back,
        gloo::gloo_ab_testing_matches_headers,
        gloo::a_gloo_upstream_template_is_copied_once_it_exists,
        gloo::a_users_route_table_is_adopted_and_given_back,
        appmesh::app_mesh_canary_steps_through_weights_and_rolls_back,
        appmesh::app_mesh_ab_testing_routes_by_header,
    ];

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("could not start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    if args.list {
        let trials = scenarios
            .into_iter()
            .map(|(name, _)| Trial::test(name, || Ok(())))
            .collect();
        return libtest_mimic::run(&args, trials).exit_code();
    }
    let env = match runtime.block_on(support::start_cluster(Options { nodes: 3 })) {
        Ok(env) => Arc::new(env),
        Err(error) => {
            eprintln!("could not start the test cluster: {error}");
            return ExitCode::FAILURE;
        }
    };
    let trials = scenarios
        .into_iter()
        .map(|(name, scenario)| {
            let env = env.clone();
            let handle = runtime.handle().clone();
            Trial::test(name, move || handle.block_on(scenario(env)))
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if let Ok(cluster) = Arc::try_unwrap(env) {
        runtime.block_on(cluster.env.teardown());
    }
    conclusion.exit_code()
}
