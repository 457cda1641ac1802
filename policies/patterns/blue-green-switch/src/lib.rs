//! Pattern `blue-green-switch`: move clients from one cluster (blue) to
//! another (green) by a traffic switch's weights, in steps, with checks
//! before, between and after the steps, and an automatic roll-back to the
//! exact weights found while the rollback window lasts.

use kube_common::manifests;
use runner_sdk::pattern::PatternResult;
use runner_sdk::prelude::*;
use runner_sdk::traffic::{self, BackendWeight, HttpRequests, SwitchState};
use runner_sdk::traffic_write::{self, SwitchChange};
use runner_sdk::{DryRun, GateCall, PatternCall, fleet, gate_input, traffic_read};
use serde::Deserialize;

runner_sdk::manifest!(include_str!("../manifest.toml"));

/// The weights' scale: green's percentage is its weight, blue gets the
/// rest. Both HTTPRoute (0-1000000) and Traffic Manager (1-1000) take it.
const SCALE: u32 = 100;
/// How often a roll-back's verification looks through the switch.
const VERIFY_POLL_MS: u64 = 1_000;
/// The requests of one verification look: enough that a backend still
/// getting a share shows.
const VERIFY_REQUESTS: u32 = 20;
/// Attempts at setting the weights back when someone else keeps moving the
/// switch: each one on a fresh read, never on a stale generation.
const ROLLBACK_ATTEMPTS: u32 = 3;

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    switch: String,
    blue: String,
    green: String,
    manifests: String,
    steps: String,
    step_pause: u64,
    rollback_window: u64,
    check_interval: u64,
    scale_down_blue: String,
    path: String,
    verify_timeout: u64,
    pre_switch_input: String,
    step_check_input: String,
    post_switch_input: String,
}

/// One side of the switch: the fleet member that runs it and the switch's backend that reaches it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Side {
    member: String,
    backend: String,
}

/// Blue's Deployment to scale to 0 once the window has passed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Retire {
    deployment: String,
    #[serde(default)]
    namespace: String,
}

fn side(key: &str, text: &str) -> Result<Side, String> {
    let side: Side = serde_json::from_str(text).map_err(|e| format!("config `{key}`: not {{\"member\": ..., \"backend\": ...}}: {e}"))?;
    if side.member.is_empty() || side.backend.is_empty() {
        return Err(format!("config `{key}`: member and backend must both be named"));
    }
    Ok(side)
}

/// `[10, 50, 100]` or `10,50,100`: rising percentages, each 1-100, the last 100.
fn parse_steps(text: &str) -> Result<Vec<u32>, String> {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    let steps: Vec<u32> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('%').parse::<u32>().map_err(|_| format!("steps: `{s}` is not a percentage")))
        .collect::<Result<_, _>>()?;
    if steps.iter().any(|p| *p == 0 || *p > SCALE) {
        return Err(format!("steps {steps:?}: each step is green's share, 1 to 100"));
    }
    if steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("steps {steps:?}: the steps must rise"));
    }
    if steps.last() != Some(&SCALE) {
        return Err(format!("steps {steps:?}: the last step must be 100 (green takes everything)"));
    }
    Ok(steps)
}

/// The weights for green at `percent`: green `percent`, blue the rest, and
/// a side at 0 disabled (Traffic Manager has no weight 0).
fn weights_for(percent: u32, blue: &str, green: &str) -> Vec<BackendWeight> {
    let weight = |name: &str, weight: u32| BackendWeight { name: name.to_string(), weight, enabled: weight > 0 };
    vec![weight(green, percent), weight(blue, SCALE - percent)]
}

/// Why the run must not touch the switch at all, before anything changes.
fn refusal(state: &SwitchState, steps: &[u32], blue: &Side, green: &Side, switch: &str) -> Option<String> {
    if blue.backend == green.backend {
        return Some(format!("blue and green both name backend {}", blue.backend));
    }
    let names: Vec<&str> = state.backends.iter().map(|b| b.name.as_str()).collect();
    for side in [blue, green] {
        if !names.contains(&side.backend.as_str()) {
            return Some(format!("switch {switch} has no backend {} (it has {})", side.backend, names.join(", ")));
        }
    }
    let others: Vec<&str> =
        state.backends.iter().filter(|b| takes_traffic(b) && b.name != blue.backend && b.name != green.backend).map(|b| b.name.as_str()).collect();
    if !others.is_empty() {
        return Some(format!("switch {switch} also sends traffic to {}: green's share would not be the step's; disable them first", others.join(", ")));
    }
    if state.writer
        && let Some(weighted) = steps.iter().find(|p| **p != SCALE)
    {
        return Some(format!(
            "switch {switch} is a stateful writer's: it takes a single-writer cutover (one backend at a time), never a weighted split such as green {weighted}%; use steps [100]"
        ));
    }
    None
}

fn takes_traffic(b: &BackendWeight) -> bool {
    b.enabled && b.weight > 0
}

/// What a switch sends where, for people: `blue 50% / green 50%`.
fn describe(state: &SwitchState) -> String {
    let total: u64 = state.backends.iter().filter(|b| takes_traffic(b)).map(|b| u64::from(b.weight)).sum();
    let shares: Vec<String> = state
        .backends
        .iter()
        .filter(|b| takes_traffic(b))
        .map(|b| {
            let share = u64::from(b.weight) as f64 * 100.0 / total as f64;
            if share.fract() == 0.0 { format!("{} {share:.0}%", b.name) } else { format!("{} {share:.1}%", b.name) }
        })
        .collect();
    if shares.is_empty() { "no backend taking traffic".to_string() } else { shares.join(" / ") }
}

/// What a roll-back sets: blue's and green's entries as the first change
/// found them, exactly (any other backend is not this run's to set).
fn rollback_target(previous: &SwitchState, blue: &str, green: &str) -> Vec<BackendWeight> {
    previous.backends.iter().filter(|b| b.name == blue || b.name == green).cloned().collect()
}

/// The backends that answer once the roll-back shows: those the first
/// change found taking traffic.
fn serving_before(previous: &SwitchState) -> Vec<String> {
    previous.backends.iter().filter(|b| takes_traffic(b)).map(|b| b.name.clone()).collect()
}

/// A gate's input: the operator's JSON (`text`) with `defaults` where it
/// gives none, and `fixed` whatever it gives (the switch is the run's).
fn gate_config(text: &str, fixed: &[(&str, Value)], defaults: &[(&str, Value)]) -> Result<String, Error> {
    let mut input: Value = serde_json::from_str(&gate_input(text, defaults)?).map_err(|e| Error::internal(e.to_string()))?;
    for (key, value) in fixed {
        input[*key] = value.clone();
    }
    Ok(input.to_string())
}

/// How a gate run as a step came out.
enum Checked {
    Passed,
    /// It failed or could not decide; why, naming the gate.
    Failed(String),
    /// The host did not start it (the slot's grant, binding or input is
    /// wrong): the operator's mistake, not the gate's answer.
    NotStarted(Error),
}

/// Run gate `slot` as step `name`.
fn check(name: &str, slot: &str, input: &str, description: &str) -> Checked {
    let mut not_started = false;
    let result = step(name, description, || {
        let call = GateCall::run(slot, input);
        not_started = matches!(call, GateCall::Host(_));
        call.into_result(slot)
    });
    match result {
        Ok(_) => Checked::Passed,
        Err(e) if not_started => Checked::NotStarted(e),
        Err(e) => Checked::Failed(e.message),
    }
}

impl Checked {
    /// Why it did not pass, when a change is to be rolled back: after a
    /// change, a check that could not run counts as failed.
    fn failure(self) -> Option<String> {
        match self {
            Checked::Passed => None,
            Checked::Failed(why) => Some(why),
            Checked::NotStarted(e) => Some(format!("{} ({})", e.message, e.code)),
        }
    }
}

/// The run as it goes: what it has changed on the switch.
struct Switch<'a> {
    name: &'a str,
    blue: &'a Side,
    green: &'a Side,
    path: &'a str,
    verify_timeout: u64,
    /// The generation the next change is conditional on.
    generation: String,
    /// The switch as the first change found it: what a roll-back puts back.
    before: Option<SwitchState>,
    /// The switch as this run's last change left it.
    now: SwitchState,
}

fn is_conflict(e: &Error) -> bool {
    e.code == ErrorCode::Conflict
}

impl Switch<'_> {
    fn read(&self) -> Result<SwitchState, Error> {
        traffic_read::weights(self.name).map_err(|e| Error::new(e.code, format!("switch {}: weights: {}", self.name, e.message)))
    }

    fn set(&self, weights: &[BackendWeight], generation: &str) -> Result<SwitchChange, Error> {
        traffic_write::set_weights(self.name, weights, generation).map_err(|e| Error::new(e.code, format!("switch {}: set-weights: {}", self.name, e.message)))
    }

    /// Move green to `percent`, conditional on the last generation.
    fn step(&mut self, percent: u32) -> Result<(), Error> {
        let change = self.set(&weights_for(percent, &self.blue.backend, &self.green.backend), &self.generation)?;
        self.generation = change.current.generation.clone();
        self.before.get_or_insert(change.previous);
        self.now = change.current;
        Ok(())
    }

    /// Put blue and green back as the first change found them, on a fresh
    /// read each time: a roll-back must not depend on the call that just
    /// failed, nor on a generation someone else has moved past. The state
    /// it left, for people.
    fn roll_back(&mut self) -> Result<String, Error> {
        let Some(before) = self.before.clone() else { return Ok(describe(&self.now)) };
        let target = rollback_target(&before, &self.blue.backend, &self.green.backend);
        step("rollback", &format!("put switch {} back to {}", self.name, describe(&before)), || {
            let mut attempt = 1;
            loop {
                let fresh = self.read()?;
                match self.set(&target, &fresh.generation) {
                    Ok(change) => {
                        self.now = change.current;
                        return Ok(());
                    }
                    Err(e) if is_conflict(&e) && attempt < ROLLBACK_ATTEMPTS => {
                        report::log(report::Level::Warn, &format!("{}; reading the switch again (attempt {attempt} of {ROLLBACK_ATTEMPTS})", e.message));
                        attempt += 1;
                    }
                    Err(e) => {
                        self.now = fresh;
                        return Err(e);
                    }
                }
            }
        })
        .map_err(|e| Error::new(e.code, format!("traffic at {}: the roll-back to {} failed: {}", describe(&self.now), describe(&before), e.message)))?;
        Ok(describe(&self.now))
    }

    /// Wait until the backends the switch served before answer every
    /// request through it; what the last look saw.
    fn verify(&self) -> Result<String, Error> {
        let Some(before) = &self.before else { return Ok(String::new()) };
        let serving = serving_before(before);
        let serving: Vec<&str> = serving.iter().map(String::as_str).collect();
        let requests = HttpRequests { path: self.path.to_string(), count: VERIFY_REQUESTS, interval_ms: 50, timeout_ms: 1_000, body_contains: String::new() };
        let what = format!("{} answering everything through switch {}", serving.join(" and "), self.name);
        step("verify-rollback", &what, || {
            wait_for(&what, self.verify_timeout, VERIFY_POLL_MS, || {
                let seen = traffic::observe(self.name, None, &requests)?;
                Ok(if seen.all_served_by(&serving) { Poll::Done(seen.describe()) } else { Poll::NotYet(seen.describe()) })
            })
        })
        .map_err(|e| Error::new(e.code, format!("the weights are back at {} but {}", describe(before), e.message)))
    }
}

/// A failed check after a change: roll back, verify, and end rolled-back
/// naming the check; or an error when the roll-back itself failed.
fn rolled_back(sw: &mut Switch, failed: &str, why: &str) -> Result<PatternResult, Error> {
    let failed_at = clock::now();
    let at = describe(&sw.now);
    report::log(report::Level::Warn, &format!("{failed} failed at {at}: rolling back"));
    let restored = sw.roll_back().map_err(|e| Error::new(e.code, format!("{failed} failed ({why}); {}", e.message)))?;
    let seen = sw.verify().map_err(|e| Error::new(e.code, format!("{failed} failed ({why}); rolled back: {}", e.message)))?;
    let took = clock::now().saturating_sub(failed_at);
    report::metric("rollback_ms", took as f64, "ms");
    report::metric("rolled_back", 1.0, "");
    Ok(PatternResult::rolled_back(format!(
        "{failed} failed at {at}: {why}; rolled back to {restored} in {took} ms, verified through switch {}: {seen}",
        sw.name
    )))
}

fn run(cfg: &Config) -> Result<PatternResult, Error> {
    let switch = cfg.switch.trim();
    if switch.is_empty() {
        return Err(Error::invalid("config `switch` is empty: name the traffic switch"));
    }
    let blue = side("blue", &cfg.blue).map_err(Error::invalid)?;
    let green = side("green", &cfg.green).map_err(Error::invalid)?;
    let steps = parse_steps(&cfg.steps).map_err(Error::invalid)?;
    let to_deploy = manifests::parse(&cfg.manifests).map_err(Error::invalid)?;
    let retire: Option<Retire> = match cfg.scale_down_blue.trim() {
        "" => None,
        text => Some(
            serde_json::from_str(text)
                .map_err(|e| Error::invalid(format!("config `scale-down-blue`: not {{\"deployment\": ..., \"namespace\": ...}}: {e}")))?,
        ),
    };
    if cfg.rollback_window > 0 && cfg.check_interval == 0 {
        return Err(Error::invalid("config `check-interval` is 0: the post-switch checks need time between them"));
    }
    let dry = DryRun::of_this_run();

    let found = step("read-switch", &format!("read switch {switch}'s weights"), || {
        let state = traffic_read::weights(switch).map_err(|e| Error::new(e.code, format!("switch {switch}: weights: {}", e.message)))?;
        report::log(
            report::Level::Info,
            &format!("switch {switch} at {} (generation {}{})", describe(&state), state.generation, if state.writer { ", a writer's" } else { "" }),
        );
        match refusal(&state, &steps, &blue, &green, switch) {
            Some(why) => Err(Error::invalid(format!("{why}; nothing was changed"))),
            None => Ok(state),
        }
    })?;
    let untouched = format!("switch {switch} untouched at {}", describe(&found));

    if to_deploy.is_empty() {
        report::log(report::Level::Info, "manifests is empty: nothing deployed on green, it runs the application already");
    } else {
        let names: Vec<String> = to_deploy.iter().map(manifests::Manifest::describe).collect();
        step("deploy", &format!("deploy {} on {}", names.join(", "), green.member), || {
            let config = json!({"manifests": cfg.manifests});
            PatternCall::from_answer(fleet::run_pattern(&green.member, "deploy", &config.to_string())).into_result("deploy")
        })
        .map_err(|e| Error::new(e.code, format!("deploy on green ({}): {}; {untouched}", green.member, e.message)))?;
    }

    let path = json!(cfg.path);
    if dry.active() && !to_deploy.is_empty() {
        report::log(report::Level::Info, "dry run: the pre-switch gate is skipped, green's deploy was planned, not made");
    } else {
        let input = gate_config(&cfg.pre_switch_input, &[("switch", json!(switch)), ("backend", json!(green.backend))], &[("path", path.clone())])?;
        let kept = if to_deploy.is_empty() { String::new() } else { format!("; green keeps what was deployed on {}", green.member) };
        match check("pre-switch", "pre-switch", &input, &format!("green's backend {} answers straight", green.backend)) {
            Checked::Passed => {}
            Checked::Failed(why) => {
                return Ok(PatternResult::rolled_back(format!(
                    "pre-switch check of green ({}) failed: {why}; {untouched}, nothing switched{kept}",
                    green.backend
                )));
            }
            Checked::NotStarted(e) => return Err(Error::new(e.code, format!("{}; {untouched}{kept}", e.message))),
        }
    }

    let mut sw = Switch {
        name: switch,
        blue: &blue,
        green: &green,
        path: &cfg.path,
        verify_timeout: cfg.verify_timeout,
        generation: found.generation.clone(),
        before: None,
        now: found.clone(),
    };
    let step_input = gate_config(&cfg.step_check_input, &[("switch", json!(switch))], &[("path", path.clone())])?;
    let mut started = None;
    for (index, percent) in steps.iter().copied().enumerate() {
        started.get_or_insert_with(clock::now);
        let set = step(&format!("weights {percent}%"), &format!("green {percent}%, blue {}%", SCALE - percent), || sw.step(percent));
        if let Err(e) = set {
            return Err(stopped_by(&mut sw, percent, e));
        }
        report::log(report::Level::Info, &format!("switch {switch} at {} (generation {})", describe(&sw.now), sw.generation));
        if dry.active() {
            continue;
        }
        if let Some(why) =
            check(&format!("step-check {percent}%"), "step-check", &step_input, &format!("through switch {switch} at green {percent}%")).failure()
        {
            return rolled_back(&mut sw, &format!("step-check at green {percent}%"), &why);
        }
        if cfg.step_pause > 0 && index + 1 < steps.len() {
            step(&format!("pause {percent}%"), &format!("wait {} ms before the next step", cfg.step_pause), || {
                clock::sleep(cfg.step_pause);
                Ok(())
            })?;
        }
    }
    let switch_ms = started.map_or(0, |t| clock::now().saturating_sub(t));
    report::metric("switch_ms", switch_ms as f64, "ms");
    report::metric("steps_done", steps.len() as f64, "");

    let mut checks = 0;
    if dry.active() {
        report::log(
            report::Level::Info,
            "dry run: the step-check and post-switch gates and the rollback window are skipped, the weights were planned, not set",
        );
    } else {
        let input = gate_config(&cfg.post_switch_input, &[("switch", json!(switch))], &[("path", path), ("expect-backend", json!(green.backend))])?;
        let window_start = clock::now();
        loop {
            checks += 1;
            if let Some(why) =
                check(&format!("post-switch {checks}"), "post-switch", &input, &format!("through switch {switch}, green taking everything")).failure()
            {
                return rolled_back(&mut sw, &format!("post-switch check {checks}"), &why);
            }
            let elapsed = clock::now().saturating_sub(window_start);
            if elapsed >= cfg.rollback_window {
                break;
            }
            clock::sleep(cfg.check_interval.min(cfg.rollback_window - elapsed));
        }
    }
    report::metric("rolled_back", 0.0, "");

    let retired = match &retire {
        None => "blue left as it is".to_string(),
        Some(r) => {
            let body = manifests::deployment_replicas(&r.namespace, &r.deployment, 0);
            // `force`: scaling blue down takes spec.replicas from whoever set it last (kubectl, Helm).
            let config = json!({"manifests": [body], "force": true});
            step("retire", &format!("scale Deployment {} to 0 on {}", r.deployment, blue.member), || {
                PatternCall::from_answer(fleet::run_pattern(&blue.member, "retire", &config.to_string())).into_result("retire")
            })
            .map_err(|e| {
                Error::new(
                    e.code,
                    format!(
                        "switch {switch} at {} and validated through the window; retiring blue ({}) failed: {}; blue still runs",
                        describe(&sw.now),
                        blue.member,
                        e.message
                    ),
                )
            })?;
            format!("blue's Deployment {} scaled to 0 on {}", r.deployment, blue.member)
        }
    };
    Ok(PatternResult::succeeded(format!(
        "switch {switch} moved to green ({}) in steps {} over {switch_ms} ms{}{}; {retired}",
        green.backend,
        steps.iter().map(|p| format!("{p}%")).collect::<Vec<_>>().join(", "),
        if dry.active() { String::new() } else { format!(", then {checks} post-switch check(s) passed over the rollback window") },
        dry.summary_note(),
    )))
}

/// A set-weights that failed at green `percent`. A conflict means someone
/// else moved the switch: nothing is switched further and only this run's
/// change is put back. A refusal (`invalid`, `not-found`, `denied`)
/// changed nothing either. Any other failure may have changed the switch
/// or not, so it is put back to what the run found, on a fresh read.
fn stopped_by(sw: &mut Switch, percent: u32, e: Error) -> Error {
    let unchanged = matches!(e.code, ErrorCode::Conflict | ErrorCode::Invalid | ErrorCode::NotFound | ErrorCode::Denied);
    let head = if is_conflict(&e) {
        format!("{} at green {percent}%: someone else changed the switch since this run read it", e.message)
    } else {
        format!("{} at green {percent}%", e.message)
    };
    if sw.before.is_none() {
        if unchanged {
            let now = if is_conflict(&e) { "as the other writer left it".to_string() } else { format!("at {}", describe(&sw.now)) };
            return Error::new(e.code, format!("{head}; stopped without switching: nothing was changed by this run, switch {} {now}", sw.name));
        }
        // The first change's `previous` never came back: what this run read is it (the change was conditional on that generation).
        sw.before = Some(sw.now.clone());
    }
    match sw.roll_back() {
        Ok(restored) => {
            report::metric("rolled_back", 1.0, "");
            Error::new(e.code, format!("{head}; stopped without switching further; this run's change was rolled back: switch {} at {restored} again", sw.name))
        }
        Err(rollback) => Error::new(e.code, format!("{head}; stopped without switching further; {}", rollback.message)),
    }
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

    fn backend(name: &str, weight: u32, enabled: bool) -> BackendWeight {
        BackendWeight { name: name.into(), weight, enabled }
    }

    fn state(backends: Vec<BackendWeight>, writer: bool) -> SwitchState {
        SwitchState { backends, generation: "7".into(), writer }
    }

    fn sides() -> (Side, Side) {
        (Side { member: "aks-blue".into(), backend: "blue".into() }, Side { member: "aks-green".into(), backend: "green".into() })
    }

    #[test]
    fn steps_rise_to_100() {
        assert_eq!(parse_steps("[10, 50, 100]"), Ok(vec![10, 50, 100]));
        assert_eq!(parse_steps("25%,100"), Ok(vec![25, 100]));
        assert_eq!(parse_steps("[100]"), Ok(vec![100]));
        assert!(parse_steps("[50, 10, 100]").unwrap_err().contains("must rise"));
        assert!(parse_steps("[10, 50]").unwrap_err().contains("last step must be 100"));
        assert!(parse_steps("[0, 100]").unwrap_err().contains("1 to 100"));
        assert!(parse_steps("[]").unwrap_err().contains("last step must be 100"));
        assert!(parse_steps("half").unwrap_err().contains("not a percentage"));
    }

    #[test]
    fn a_side_at_zero_is_disabled() {
        let weights = |p| weights_for(p, "blue", "green").iter().map(|b| (b.name.clone(), b.weight, b.enabled)).collect::<Vec<_>>();
        assert_eq!(weights(10), [("green".into(), 10, true), ("blue".into(), 90, true)]);
        assert_eq!(weights(100), [("green".into(), 100, true), ("blue".into(), 0, false)]);
    }

    #[test]
    fn a_writer_takes_only_a_single_cutover_and_both_sides_must_be_there() {
        let (blue, green) = sides();
        let writer = state(vec![backend("blue", 1, true), backend("green", 1, false)], true);
        let why = refusal(&writer, &[50, 100], &blue, &green, "db").unwrap();
        assert!(why.contains("stateful writer's") && why.contains("green 50%"), "{why}");
        assert_eq!(refusal(&writer, &[100], &blue, &green, "db"), None);
        let plain = state(vec![backend("blue", 100, true), backend("green", 0, false)], false);
        assert_eq!(refusal(&plain, &[10, 50, 100], &blue, &green, "web"), None);
        let no_green = state(vec![backend("blue", 100, true)], false);
        assert_eq!(refusal(&no_green, &[100], &blue, &green, "web").unwrap(), "switch web has no backend green (it has blue)");
        let third = state(vec![backend("blue", 90, true), backend("green", 0, false), backend("canary", 10, true)], false);
        assert!(refusal(&third, &[100], &blue, &green, "web").unwrap().contains("also sends traffic to canary"));
        let same = Side { backend: "blue".into(), ..green.clone() };
        assert!(refusal(&plain, &[100], &blue, &same, "web").unwrap().contains("both name backend blue"));
    }

    #[test]
    fn a_rollback_puts_back_exactly_what_the_first_change_found() {
        let before = state(vec![backend("canary", 5, false), backend("blue", 700, true), backend("green", 300, true)], false);
        let target = rollback_target(&before, "blue", "green");
        assert_eq!(target.iter().map(|b| (b.name.as_str(), b.weight, b.enabled)).collect::<Vec<_>>(), [("blue", 700, true), ("green", 300, true)]);
        assert_eq!(serving_before(&before), ["blue", "green"]);
        assert_eq!(describe(&before), "blue 70% / green 30%");
        assert_eq!(describe(&state(vec![backend("blue", 1, true), backend("green", 2, true)], false)), "blue 33.3% / green 66.7%");
        assert_eq!(describe(&state(vec![backend("blue", 0, false)], false)), "no backend taking traffic");
    }

    #[test]
    fn the_run_sets_the_switch_and_the_operator_the_rest() {
        let input =
            gate_config(r#"{"requests": 200, "switch": "other", "path": "/ready"}"#, &[("switch", json!("web"))], &[("path", json!("/health"))]).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&input).unwrap(), json!({"requests": 200, "switch": "web", "path": "/ready"}));
        let input = gate_config("{}", &[("switch", json!("web")), ("backend", json!("green"))], &[("path", json!("/health"))]).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&input).unwrap(), json!({"switch": "web", "backend": "green", "path": "/health"}));
    }
}
