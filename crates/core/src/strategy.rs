//! Which deployment strategy a Canary's analysis describes, and the weights it steps through.

use serin_api::canary::CanaryAnalysis;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// Traffic shifts to the canary step by step up to `max_weight`.
    Progressive {
        steps: Steps,
        max_weight: i32,
        promotion_step: Option<i32>,
    },
    /// Requests matching `analysis.match` go to the canary for `iterations` checks.
    AbTesting { iterations: i32 },
    /// The canary is checked `iterations` times without user traffic, then takes it all.
    BlueGreen { iterations: i32, mirror: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Steps {
    Fixed(i32),
    List(Vec<i32>),
}

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Progressive { .. } => "canary",
            Strategy::AbTesting { .. } => "ab-testing",
            Strategy::BlueGreen { .. } => "blue-green",
        }
    }
}

/// Iterations of a blue/green rollout on the kubernetes provider when the analysis sets none.
pub const KUBERNETES_DEFAULT_ITERATIONS: i32 = 10;

/// The strategy of `analysis`, as Flagger derives it: `match` with `iterations` is A/B testing,
/// `iterations` alone blue/green, otherwise a progressive canary. A router that cannot shift
/// weights (the kubernetes provider's) always runs blue/green.
pub fn strategy(analysis: &CanaryAnalysis, shifts_weights: bool) -> Strategy {
    let iterations = analysis.iterations.unwrap_or(0);
    let has_match = analysis.match_.as_ref().is_some_and(|m| !m.is_empty());
    if !shifts_weights {
        // Flagger's scheduler.go: "Progressive traffic is not supported when using the kubernetes
        // provider", then "Setting canaryAnalysis.iterations: 10"; a match is dropped.
        let iterations = if iterations < 1 {
            KUBERNETES_DEFAULT_ITERATIONS
        } else {
            iterations
        };
        return Strategy::BlueGreen {
            iterations,
            mirror: false,
        };
    }
    if iterations > 0 && has_match {
        return Strategy::AbTesting { iterations };
    }
    if iterations > 0 {
        return Strategy::BlueGreen {
            iterations,
            mirror: analysis.mirror == Some(true),
        };
    }
    let steps = match &analysis.step_weights {
        Some(list) if !list.is_empty() => Steps::List(list.clone()),
        _ => Steps::Fixed(analysis.step_weight.unwrap_or(0)),
    };
    let max_weight = match &steps {
        Steps::List(list) => list.last().copied().unwrap_or(100),
        Steps::Fixed(_) => analysis.max_weight.unwrap_or(100),
    };
    let promotion_step = analysis.step_weight_promotion.filter(|step| *step > 0);
    Strategy::Progressive {
        steps,
        max_weight: max_weight.clamp(0, 100),
        promotion_step,
    }
}

/// The canary weight after `current` for a progressive canary, capped at `max_weight` and 100;
/// `None` once the maximum is reached.
pub fn next_weight(steps: &Steps, max_weight: i32, current: i32) -> Option<i32> {
    if current >= max_weight {
        return None;
    }
    let next = match steps {
        Steps::Fixed(step) => current.saturating_add((*step).max(1)),
        Steps::List(list) => list.iter().copied().find(|w| *w > current).unwrap_or(max_weight),
    };
    Some(next.min(max_weight).min(100))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_api::canary::AnalysisMatch;
    use serin_api::canary::Provider;

    fn analysis(f: impl FnOnce(&mut CanaryAnalysis)) -> CanaryAnalysis {
        let mut a = CanaryAnalysis {
            interval: Some("1m".into()),
            threshold: Some(2),
            ..Default::default()
        };
        f(&mut a);
        a
    }

    #[test]
    fn derives_the_strategy_as_flagger() {
        let with_match = |a: &mut CanaryAnalysis| a.match_ = Some(vec![AnalysisMatch::default()]);
        let cases = [
            (
                analysis(|a| a.step_weight = Some(10)),
                Provider::Istio,
                Strategy::Progressive {
                    steps: Steps::Fixed(10),
                    max_weight: 100,
                    promotion_step: None,
                },
            ),
            (
                analysis(|a| {
                    a.step_weight = Some(10);
                    a.max_weight = Some(50);
                    a.step_weight_promotion = Some(25)
                }),
                Provider::GatewayApiV1,
                Strategy::Progressive {
                    steps: Steps::Fixed(10),
                    max_weight: 50,
                    promotion_step: Some(25),
                },
            ),
            (
                analysis(|a| {
                    a.step_weights = Some(vec![5, 20, 60]);
                    a.max_weight = Some(90)
                }),
                Provider::Linkerd,
                Strategy::Progressive {
                    steps: Steps::List(vec![5, 20, 60]),
                    max_weight: 60,
                    promotion_step: None,
                },
            ),
            (
                analysis(|a| {
                    a.iterations = Some(10);
                    with_match(a)
                }),
                Provider::Istio,
                Strategy::AbTesting { iterations: 10 },
            ),
            (
                analysis(|a| a.iterations = Some(5)),
                Provider::Istio,
                Strategy::BlueGreen {
                    iterations: 5,
                    mirror: false,
                },
            ),
            (
                analysis(|a| {
                    a.iterations = Some(5);
                    a.mirror = Some(true)
                }),
                Provider::Istio,
                Strategy::BlueGreen {
                    iterations: 5,
                    mirror: true,
                },
            ),
            (
                analysis(|a| {
                    a.iterations = Some(5);
                    with_match(a)
                }),
                Provider::Kubernetes,
                Strategy::BlueGreen {
                    iterations: 5,
                    mirror: false,
                },
            ),
            (
                analysis(|a| a.step_weight = Some(10)),
                Provider::Kubernetes,
                Strategy::BlueGreen {
                    iterations: 10,
                    mirror: false,
                },
            ),
        ];
        for (analysis, provider, expected) in cases {
            let shifts_weights = provider != Provider::Kubernetes;
            assert_eq!(
                strategy(&analysis, shifts_weights),
                expected,
                "{analysis:?} on {provider:?}"
            );
        }
    }

    #[test]
    fn steps_through_weights() {
        let walk = |steps: Steps, max: i32| {
            let mut weights = vec![0];
            while let Some(next) = next_weight(&steps, max, *weights.last().unwrap_or(&0)) {
                weights.push(next);
            }
            weights
        };
        assert_eq!(walk(Steps::Fixed(20), 50), vec![0, 20, 40, 50]);
        assert_eq!(walk(Steps::Fixed(25), 100), vec![0, 25, 50, 75, 100]);
        assert_eq!(walk(Steps::List(vec![1, 5, 10, 50]), 50), vec![0, 1, 5, 10, 50]);
        assert_eq!(walk(Steps::Fixed(60), 100), vec![0, 60, 100]);
    }
}
