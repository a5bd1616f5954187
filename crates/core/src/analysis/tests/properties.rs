//! Properties of the rollout machine over generated analyses, check answers and crash points.

use proptest::prelude::{ProptestConfig, any, prop, prop_assert, prop_assert_eq, prop_oneof, proptest};
use proptest::strategy::Strategy as Generator;

use super::*;

#[derive(Debug, Clone)]
enum Shape {
    Progressive { step: i32, max: i32, promotion: i32 },
    Steps(Vec<i32>),
    BlueGreen(i32),
    AbTesting(i32),
}

fn shapes() -> impl Generator<Value = Shape> {
    prop_oneof![
        (1..=60i32, 10..=100i32, 0..=50i32).prop_map(|(step, max, promotion)| Shape::Progressive {
            step,
            max,
            promotion
        }),
        prop::collection::btree_set(1..=100i32, 1..5).prop_map(|set| Shape::Steps(set.into_iter().collect())),
        (1..=4i32).prop_map(Shape::BlueGreen),
        (1..=4i32).prop_map(Shape::AbTesting),
    ]
}

fn analysis(shape: &Shape, threshold: i32) -> serde_json::Value {
    let base = json!({ "interval": "1m", "threshold": threshold });
    let mut analysis = base.as_object().cloned().unwrap_or_default();
    match shape {
        Shape::Progressive { step, max, promotion } => {
            analysis.insert("stepWeight".into(), json!(step));
            analysis.insert("maxWeight".into(), json!(max));
            analysis.insert("stepWeightPromotion".into(), json!(promotion));
        }
        Shape::Steps(weights) => {
            analysis.insert("stepWeights".into(), json!(weights));
        }
        Shape::BlueGreen(iterations) => {
            analysis.insert("iterations".into(), json!(iterations));
        }
        Shape::AbTesting(iterations) => {
            analysis.insert("iterations".into(), json!(iterations));
            analysis.insert("match".into(), json!([{ "headers": { "x-canary": { "exact": "1" } } }]));
        }
    }
    serde_json::Value::Object(analysis)
}

fn max_weight(shape: &Shape) -> i32 {
    match shape {
        Shape::Progressive { step, max, .. } => (*max).max(*step).min(100),
        Shape::Steps(weights) => weights.last().copied().unwrap_or(100),
        Shape::BlueGreen(_) | Shape::AbTesting(_) => 100,
    }
}

fn done(phase: Phase) -> bool {
    matches!(phase, Phase::Succeeded | Phase::Failed)
}

/// Runs a new revision to its end; `crashes[i]` drops the status write of the i-th reconcile.
fn roll_out(shape: &Shape, threshold: i32, checks: &[bool], crashes: &[bool]) -> Sim {
    let mut sim = Sim::new(analysis(shape, threshold), Provider::GatewayApiV1).answer(Gate::Checks, checks);
    sim.new_revision("s1-rev2");
    for reconcile in 0..400 {
        let crashed = crashes.get(reconcile).copied().unwrap_or(false);
        let outcome = sim.reconcile_with(crashed);
        if done(sim.phase()) {
            break;
        }
        let wait = outcome.requeue.unwrap_or(Duration::from_secs(1));
        sim.now = sim.now.checked_add(wait).expect("time");
    }
    sim
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn weights_never_decrease_within_a_rollout_nor_exceed_the_maximum(
        shape in shapes(),
        threshold in 1..=3i32,
        checks in prop::collection::vec(any::<bool>(), 1..20),
    ) {
        let sim = roll_out(&shape, threshold, &checks, &[]);
        prop_assert!(done(sim.phase()), "the rollout ends: {:?}", sim.trace);
        let analysing: Vec<i32> = sim
            .trace
            .iter()
            .filter(|(phase, _, _)| matches!(phase, Phase::Progressing | Phase::WaitingPromotion))
            .map(|(_, weight, _)| *weight)
            .collect();
        prop_assert!(analysing.windows(2).all(|w| w[0] <= w[1]), "{:?}", sim.trace);
        let max = max_weight(&shape);
        prop_assert!(analysing.iter().all(|w| *w <= max), "max {max}: {:?}", sim.trace);
    }

    #[test]
    fn a_rollback_leaves_no_route_to_the_canary(
        shape in shapes(),
        threshold in 1..=3i32,
        checks in prop::collection::vec(any::<bool>(), 1..20),
    ) {
        let sim = roll_out(&shape, threshold, &checks, &[]);
        if sim.phase() == Phase::Failed {
            prop_assert_eq!(sim.routes().last().copied(), Some((100, 0)));
            prop_assert!(sim.actions.ends_with(&[Action::ScaleDownTarget, Action::PostRollout(Phase::Failed)]));
            prop_assert!(!sim.actions.contains(&Action::ApplyPrimary), "nothing promoted");
            prop_assert_eq!(sim.status.canary_weight, Some(0));
        }
    }

    #[test]
    fn the_primary_is_promoted_before_success(
        shape in shapes(),
        checks in prop::collection::vec(any::<bool>(), 1..20),
    ) {
        let sim = roll_out(&shape, 3, &checks, &[]);
        if sim.phase() == Phase::Succeeded {
            let promoted = sim.actions.iter().position(|a| *a == Action::ApplyPrimary);
            let succeeded = sim.actions.iter().position(|a| *a == Action::PostRollout(Phase::Succeeded));
            prop_assert!(promoted.is_some() && promoted < succeeded, "{:?}", sim.actions);
            prop_assert_eq!(sim.status.last_promoted_spec.as_deref(), Some("s1-rev2"));
            prop_assert_eq!(sim.routes().last().copied(), Some((100, 0)), "all traffic back on the primary");
        }
    }

    #[test]
    fn a_plan_cut_anywhere_and_resumed_ends_the_same(
        shape in shapes(),
        threshold in 1..=3i32,
        healthy in any::<bool>(),
        crashes in prop::collection::vec(any::<bool>(), 0..60),
    ) {
        // Constant answers, so that a repeated decision meets the same answers.
        let clean = roll_out(&shape, threshold, &[healthy], &[]);
        let crashed = roll_out(&shape, threshold, &[healthy], &crashes);
        prop_assert_eq!(clean.phase(), crashed.phase());
        prop_assert_eq!(&clean.status.last_promoted_spec, &crashed.status.last_promoted_spec);
        prop_assert_eq!(clean.status.canary_weight, crashed.status.canary_weight);
        let mut clean_routes = clean.routes();
        let mut crashed_routes = crashed.routes();
        clean_routes.dedup();
        crashed_routes.dedup();
        prop_assert_eq!(clean_routes, crashed_routes, "the same routes, some repeated");
    }

    #[test]
    fn post_rollout_hooks_run_once_and_never_twice_after_a_crash(
        shape in shapes(),
        threshold in 1..=3i32,
        healthy in any::<bool>(),
        crashes in prop::collection::vec(any::<bool>(), 0..60),
    ) {
        let post_rollouts = |sim: &Sim| sim.actions.iter().filter(|a| matches!(a, Action::PostRollout(_))).count();
        prop_assert_eq!(post_rollouts(&roll_out(&shape, threshold, &[healthy], &[])), 1);
        // A crash before the status write skips the hooks with it; the decision taken again
        // calls them once.
        prop_assert_eq!(post_rollouts(&roll_out(&shape, threshold, &[healthy], &crashes)), 1);
    }
}
