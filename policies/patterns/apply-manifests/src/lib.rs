//! Pattern `apply-manifests`: server-side apply a list of Kubernetes
//! objects, then wait until each Deployment among them is rolled out.

use kube_common::manifests::{self, Manifest};
use runner_sdk::kube_write;
use runner_sdk::pattern::PatternResult;
use runner_sdk::prelude::*;
use runner_sdk::{DryRun, Poll};
use serde::Deserialize;

runner_sdk::manifest!(include_str!("../manifest.toml"));

/// How often a rollout is looked at: a Deployment's status moves in seconds.
const ROLLOUT_POLL_MS: u64 = 2_000;

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    manifests: String,
    timeout: u64,
    force: bool,
}

/// Whether a Deployment is rolled out, as `kubectl rollout status` judges
/// it: `Err` when it never will be (its progress deadline passed), else
/// done or not yet with the figures.
fn rollout(deployment: &Value) -> Result<Poll<String>, String> {
    let count = |pointer: &str| deployment.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    // spec.replicas defaults to 1; the status counters are left out at 0.
    let wanted = deployment.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1);
    let (generation, observed) = (count("/metadata/generation"), count("/status/observedGeneration"));
    let (updated, available, replicas) = (count("/status/updatedReplicas"), count("/status/availableReplicas"), count("/status/replicas"));
    let stalled =
        deployment["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded"));
    if let Some(condition) = stalled {
        return Err(format!("progress deadline exceeded: {}", condition["message"].as_str().unwrap_or("no message")));
    }
    let figures = format!("{updated} updated, {available} available, {replicas} in all of {wanted} wanted");
    if observed < generation {
        return Ok(Poll::NotYet(format!("generation {generation} not observed yet (observed {observed})")));
    }
    if updated == wanted && available == wanted && replicas == wanted { Ok(Poll::Done(figures)) } else { Ok(Poll::NotYet(figures)) }
}

/// What a stopped run leaves: the objects applied and those not.
fn left(applied: &[String], all: &[Manifest]) -> String {
    let rest: Vec<String> = all.iter().skip(applied.len()).map(Manifest::describe).collect();
    format!(
        "applied: {}; not applied: {}",
        if applied.is_empty() { "none".to_string() } else { applied.join(", ") },
        if rest.is_empty() { "none".to_string() } else { rest.join(", ") }
    )
}

fn run(cfg: &Config) -> Result<PatternResult, Error> {
    let all = manifests::parse(&cfg.manifests).map_err(Error::invalid)?;
    if all.is_empty() {
        return Ok(PatternResult::succeeded("nothing to apply: `manifests` is empty"));
    }
    let dry = DryRun::of_this_run();
    let mut applied: Vec<String> = Vec::new();
    for m in &all {
        let what = m.describe();
        step(&format!("apply {what}"), &format!("server-side apply {what} (field manager runner)"), || {
            kube_write::apply(&m.object, &m.body.to_string(), cfg.force).map_err(|e| Error::new(e.code, format!("apply {what}: {}", e.message)))
        })
        .map_err(|e| Error::new(e.code, format!("{}; {}", e.message, left(&applied, &all))))?;
        applied.push(what);
    }
    let mut rolled: Vec<String> = Vec::new();
    for m in all.iter().filter(|m| m.is_deployment()) {
        let what = m.describe();
        if dry.active() {
            report::log(report::Level::Info, &format!("dry run: not waiting for {what} to roll out"));
            continue;
        }
        let figures = step(&format!("rollout {what}"), &format!("wait until {what} is rolled out"), || {
            // A stalled rollout ends the wait at once: it will not finish by waiting.
            let ended = wait_for(&format!("{what} rolled out"), cfg.timeout, ROLLOUT_POLL_MS, || {
                Ok(match rollout(&get_json(&m.object)?) {
                    Ok(Poll::Done(figures)) => Poll::Done(Ok(figures)),
                    Ok(Poll::NotYet(why)) => Poll::NotYet(why),
                    Err(why) => Poll::Done(Err(why)),
                })
            })?;
            ended.map_err(|why| Error::internal(format!("{what}: {why}")))
        })
        .map_err(|e| Error::new(e.code, format!("{}; every object was applied ({})", e.message, applied.join(", "))))?;
        rolled.push(format!("{what} ({figures})"));
    }
    let mut summary = format!("applied {}{}", applied.join(", "), dry.summary_note());
    if !rolled.is_empty() {
        summary.push_str(&format!("; rolled out: {}", rolled.join(", ")));
    }
    Ok(PatternResult::succeeded(summary))
}

struct Pattern;

impl runner_sdk::pattern::Guest for Pattern {
    fn run(config: String) -> Result<PatternResult, Error> {
        run(&parse_config(&config)?)
    }
}

runner_sdk::export_pattern!(Pattern);

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(generation: u64, status: Value) -> Value {
        json!({"metadata": {"name": "web", "generation": generation}, "spec": {"replicas": 3}, "status": status})
    }

    #[test]
    fn rolled_out_as_kubectl_judges_it() {
        let done = deployment(2, json!({"observedGeneration": 2, "updatedReplicas": 3, "availableReplicas": 3, "replicas": 3}));
        assert_eq!(rollout(&done), Ok(Poll::Done("3 updated, 3 available, 3 in all of 3 wanted".into())));
        let old_still_there = deployment(2, json!({"observedGeneration": 2, "updatedReplicas": 3, "availableReplicas": 3, "replicas": 4}));
        assert_eq!(rollout(&old_still_there), Ok(Poll::NotYet("3 updated, 3 available, 4 in all of 3 wanted".into())));
        let unseen = deployment(3, json!({"observedGeneration": 2, "updatedReplicas": 3, "availableReplicas": 3, "replicas": 3}));
        assert_eq!(rollout(&unseen), Ok(Poll::NotYet("generation 3 not observed yet (observed 2)".into())));
        let stalled = deployment(
            2,
            json!({"conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "web has timed out"}]}),
        );
        assert_eq!(rollout(&stalled), Err("progress deadline exceeded: web has timed out".into()));
        // Scaled to 0: the API server leaves the counters out.
        let zero = json!({"metadata": {"generation": 5}, "spec": {"replicas": 0}, "status": {"observedGeneration": 5}});
        assert!(matches!(rollout(&zero), Ok(Poll::Done(_))));
    }

    #[test]
    fn a_stop_names_what_was_applied_and_what_was_not() {
        let all = manifests::parse(
            r#"[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}},{"apiVersion":"v1","kind":"Service","metadata":{"name":"b"}}]"#,
        )
        .unwrap();
        assert_eq!(left(&["ConfigMap a".into()], &all), "applied: ConfigMap a; not applied: Service b");
        assert_eq!(left(&[], &all[..1]), "applied: none; not applied: ConfigMap a");
    }
}
