//! Pattern `staged-rollout`: seed 001's dev → test → prod rollout over a
//! fleet, in Fleet Manager's model (stages in order, groups of a stage side
//! by side, members of a group up to `max-concurrency`), with gates that
//! are checks, approvals, soaks, failure budgets, and a residual set that
//! a re-run retries exactly.

use runner_sdk::fleet::{self, Member};
use runner_sdk::pattern::PatternResult;
use runner_sdk::prelude::*;
use runner_sdk::{Approval, GateCall, PatternCall, gate_input, run_info};
use serde::Deserialize;

runner_sdk::manifest!(include_str!("../manifest.toml"));

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    kubernetes_version: String,
    stages: String,
    approve_before: String,
    max_concurrency: i64,
    stage_failure_budget: String,
    run_failure_budget: String,
    members: String,
    member_input: String,
    before_stage_input: String,
    after_stage_input: String,
}

/// One stage as `stages` names it.
#[derive(Debug, PartialEq)]
struct Stage {
    name: String,
    groups: Vec<String>,
    soak_ms: u64,
}

fn list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// `250ms`, `30s`, `5m`, `2h`.
fn duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    number.checked_mul(scale)
}

/// `NAME[=GROUP,GROUP...][@SOAK]`, separated by `;`.
fn parse_stages(text: &str) -> Result<Vec<Stage>, String> {
    let mut stages: Vec<Stage> = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (rest, soak_ms) = match part.split_once('@') {
            Some((rest, soak)) => (rest, duration_ms(soak).ok_or_else(|| format!("stage `{part}`: soak `{soak}` is not a duration (30s, 5m, 1h)"))?),
            None => (part, 0),
        };
        let (name, groups) = match rest.split_once('=') {
            Some((name, groups)) => (name.trim().to_string(), list(groups)),
            None => (rest.trim().to_string(), vec![rest.trim().to_string()]),
        };
        if name.is_empty() || groups.is_empty() {
            return Err(format!("stage `{part}` needs a name and at least one group (NAME[=GROUP,...][@SOAK])"));
        }
        if stages.iter().any(|s| s.name == name) {
            return Err(format!("stage `{name}` is named twice"));
        }
        if let Some(group) = groups.iter().find(|g| stages.iter().any(|s| s.groups.contains(g))) {
            return Err(format!("group `{group}` is in two stages"));
        }
        stages.push(Stage { name, groups, soak_ms });
    }
    if stages.is_empty() {
        return Err("`stages` names no stage (e.g. dev@30m;test@60m;prod)".into());
    }
    Ok(stages)
}

/// How many of `count` may fail: a count or a share, rounded down.
fn budget(text: &str, count: usize) -> Result<usize, String> {
    let text = text.trim();
    let bad = || format!("failure budget `{text}` is neither a count (`1`) nor a percentage (`20%`)");
    match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<usize>().ok().filter(|p| *p <= 100).map(|p| count * p / 100).ok_or_else(bad),
        None => text.parse().map_err(|_| bad()),
    }
}

/// Fleet Manager's member states, as the report shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    NotStarted,
    Skipped,
    Completed,
    Failed,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::NotStarted => "NotStarted",
            State::Skipped => "Skipped",
            State::Completed => "Completed",
            State::Failed => "Failed",
        }
    }
}

/// One member's part of the rollout.
struct MemberState {
    name: String,
    group: String,
    stage: String,
    state: State,
    detail: String,
    /// The pools as `skip-check` found them: the frozen target's per-pool state.
    found: Value,
}

/// The whole rollout, as it goes.
struct Rollout {
    /// The run's configuration, as given: a retry of the residual set runs with it.
    config: Value,
    version: String,
    members: Vec<MemberState>,
    stages: Vec<Value>,
    started_ms: u64,
}

impl Rollout {
    fn of_stage<'a>(&'a mut self, stage: &'a str) -> impl Iterator<Item = &'a mut MemberState> + 'a {
        self.members.iter_mut().filter(move |m| m.stage == stage)
    }

    fn failed(&self) -> usize {
        self.members.iter().filter(|m| m.state == State::Failed).count()
    }

    /// The residual set: every member not done (failed, not started).
    fn left(&self) -> impl Iterator<Item = &MemberState> {
        self.members.iter().filter(|m| matches!(m.state, State::Failed | State::NotStarted))
    }

    /// `--config members=...` for exactly the residual set, if there is one.
    fn retry(&self) -> Option<String> {
        let names: Vec<&str> = self.left().map(|m| m.name.as_str()).collect();
        (!names.is_empty()).then(|| format!("--config members={}", names.join(",")))
    }

    /// The whole configuration a retry of exactly the residual set runs
    /// with (`runner exec --residual RUN-ID`): this run's, frozen target
    /// included, with `members` the residual set; none when nothing is left.
    fn retry_config(&self) -> Value {
        let names: Vec<&str> = self.left().map(|m| m.name.as_str()).collect();
        if names.is_empty() {
            return Value::Null;
        }
        let mut config = self.config.clone();
        config["members"] = json!(names.join(","));
        config
    }

    /// The residual set as `rollout.json` holds it, each member with its frozen target.
    fn residual(&self) -> Vec<Value> {
        self.left()
            .map(|m| {
                json!({
                    "member": m.name, "group": m.group, "stage": m.stage, "state": m.state.name(), "detail": m.detail,
                    "target": {"kubernetes-version": self.version, "pools": m.found},
                })
            })
            .collect()
    }

    fn document(&self, outcome: &str) -> Value {
        let members: Vec<Value> =
            self.members.iter().map(|m| json!({"member": m.name, "group": m.group, "stage": m.stage, "state": m.state.name(), "detail": m.detail})).collect();
        json!({
            "outcome": outcome,
            "kubernetes-version": self.version,
            "stages": self.stages,
            "members": members,
            "residual": self.residual(),
            "retry": self.retry(),
            "retry-config": self.retry_config(),
            "ms": clock::now().saturating_sub(self.started_ms),
        })
    }

    /// Attach the rollout's record; an attachment that cannot be written is logged, not fatal.
    fn attach(&self, outcome: &str) {
        let text = serde_json::to_string_pretty(&self.document(outcome)).unwrap_or_default();
        if let Err(e) = report::attach("rollout.json", &text) {
            report::log(report::Level::Warn, &format!("rollout.json: {}", e.message));
        }
    }

    /// The line that ends a stopped run: what was done and what is left.
    fn stopped(&self, why: String) -> Error {
        self.attach("stopped");
        let done: Vec<&str> = self.members.iter().filter(|m| matches!(m.state, State::Completed | State::Skipped)).map(|m| m.name.as_str()).collect();
        let left: Vec<String> = self.left().map(|m| format!("{} ({})", m.name, m.state.name())).collect();
        Error::new(
            ErrorCode::Internal,
            format!(
                "{why}; done: {}; residual set: {} (rollout.json; a re-run with --config members=... retries exactly it)",
                if done.is_empty() { "none".to_string() } else { done.join(", ") },
                if left.is_empty() { "none".to_string() } else { left.join(", ") }
            ),
        )
    }
}

/// Run gate `slot` on each of `members`: the failures, as `member: why`.
fn gate_on(slot: &str, members: &[String], input: &str) -> Vec<String> {
    members
        .iter()
        .filter_map(|member| match GateCall::from_answer(fleet::run_gate(member, slot, input)).into_result(slot) {
            Ok(_) => None,
            Err(e) => Some(format!("{member}: {}", e.message)),
        })
        .collect()
}

fn run(cfg: Config, given: Value) -> Result<PatternResult, Error> {
    let version = cfg.kubernetes_version.trim().to_string();
    if version.is_empty() {
        return Err(Error::invalid("kubernetes-version is empty"));
    }
    let stages = parse_stages(&cfg.stages).map_err(Error::invalid)?;
    let concurrency = u32::try_from(cfg.max_concurrency).ok().filter(|c| *c >= 1).ok_or_else(|| Error::invalid("max-concurrency must be 1 or more"))?;
    let approve_before = list(&cfg.approve_before);
    if let Some(unknown) = approve_before.iter().find(|a| !stages.iter().any(|s| &s.name == *a)) {
        return Err(Error::invalid(format!("approve-before names stage `{unknown}`, which `stages` does not")));
    }
    let only = list(&cfg.members);
    let member_input = gate_input(&cfg.member_input, &[("kubernetes-version", json!(version))])?;
    let before_input = gate_input(&cfg.before_stage_input, &[("kubernetes-version", json!(version))])?;
    let after_input = gate_input(&cfg.after_stage_input, &[("kubernetes-version", json!(version))])?;
    let skip_input = json!({"kubernetes-version": version}).to_string();

    let mut rollout = step("plan", "place every member in its stage by its group", || {
        let fleet: Vec<Member> = fleet::members();
        if fleet.is_empty() {
            return Err(Error::invalid("the run has no fleet: pass --fleet FILE"));
        }
        if let Some(unknown) = only.iter().find(|m| !fleet.iter().any(|f| &f.name == *m)) {
            return Err(Error::invalid(format!("members names `{unknown}`, which the fleet does not hold")));
        }
        for stage in &stages {
            if let Some(group) = stage.groups.iter().find(|g| !fleet.iter().any(|m| &m.group == *g)) {
                return Err(Error::invalid(format!("stage `{}`: no member of the fleet is in group `{group}`", stage.name)));
            }
        }
        let members: Vec<MemberState> = stages
            .iter()
            .flat_map(|stage| {
                fleet.iter().filter(|m| stage.groups.contains(&m.group) && (only.is_empty() || only.contains(&m.name))).map(|m| MemberState {
                    name: m.name.clone(),
                    group: m.group.clone(),
                    stage: stage.name.clone(),
                    state: State::NotStarted,
                    detail: String::new(),
                    found: Value::Null,
                })
            })
            .collect();
        let outside: Vec<&str> = fleet.iter().filter(|m| !members.iter().any(|s| s.name == m.name)).map(|m| m.name.as_str()).collect();
        if !outside.is_empty() {
            report::log(report::Level::Info, &format!("left alone (in no stage, or not in `members`): {}", outside.join(", ")));
        }
        Ok(Rollout { config: given.clone(), version: version.clone(), members, stages: Vec::new(), started_ms: clock::now() })
    })?;
    let run_budget = budget(&cfg.run_failure_budget, rollout.members.len()).map_err(Error::invalid)?;

    for (index, stage) in stages.iter().enumerate() {
        let started = clock::now();
        let names: Vec<String> = rollout.of_stage(&stage.name).map(|m| m.name.clone()).collect();
        if names.is_empty() {
            rollout.stages.push(json!({"stage": stage.name, "state": "Skipped", "detail": "no member to roll out"}));
            continue;
        }
        if approve_before.contains(&stage.name) {
            let asked = step(&format!("approve {}", stage.name), "the operator approves the stage", || {
                Approval::ask(&format!("start stage {} ({})", stage.name, names.join(", ")), &format!("roll {} out to Kubernetes {version}", names.join(", ")))
            });
            match asked {
                Ok(Approval::Approved) => {}
                Ok(Approval::Declined) => return Err(rollout.stopped(format!("the operator declined to start stage {}", stage.name))),
                Err(e) => return Err(rollout.stopped(format!("stage {}: approval: {}", stage.name, e.message))),
            }
        }
        step(&format!("skip-check {}", stage.name), "skip the members already at the target", || {
            for member in rollout.of_stage(&stage.name) {
                let call = GateCall::from_answer(fleet::run_gate(&member.name, "skip-check", &skip_input));
                if let GateCall::Passed(verdict) | GateCall::Failed(verdict) = &call {
                    member.found = serde_json::from_str::<Value>(&verdict.evidence).map(|e| e["pools"].clone()).unwrap_or(Value::Null);
                }
                if let GateCall::Passed(_) = call {
                    member.state = State::Skipped;
                    member.detail = format!("already at {version}");
                }
            }
            Ok(())
        })?;
        let to_run: Vec<String> = rollout.of_stage(&stage.name).filter(|m| m.state == State::NotStarted).map(|m| m.name.clone()).collect();
        if to_run.is_empty() {
            rollout.stages.push(
                json!({"stage": stage.name, "state": "Completed", "detail": "every member already at the target", "ms": clock::now().saturating_sub(started)}),
            );
            continue;
        }
        let refused = step(&format!("before-stage {}", stage.name), "every member of the stage passes the before-stage gate", || {
            let failures = gate_on("before-stage", &to_run, &before_input);
            if failures.is_empty() { Ok(()) } else { Err(Error::new(ErrorCode::Internal, failures.join("; "))) }
        });
        if let Err(e) = refused {
            rollout.stages.push(json!({"stage": stage.name, "state": "Failed", "detail": e.message}));
            return Err(rollout.stopped(format!("stage {}: the before-stage gate failed ({}); the stage changed nothing", stage.name, e.message)));
        }
        let stage_budget = budget(&cfg.stage_failure_budget, to_run.len()).map_err(Error::invalid)?;
        // The run's budget bounds the stage's too.
        let budget_left = run_budget.saturating_sub(rollout.failed()).min(stage_budget);
        let group = step(&format!("stage {}", stage.name), &format!("the member pattern on {}", to_run.join(", ")), || {
            fleet::run_group(&to_run, "member", &member_input, concurrency, &budget_left.to_string())
                .map_err(|e| Error::new(e.code, format!("stage {}: {}", stage.name, e.message)))
        });
        let group = match group {
            Ok(group) => group,
            Err(e) => return Err(rollout.stopped(e.message)),
        };
        for run in group.runs {
            if let Some(member) = rollout.members.iter_mut().find(|m| m.name == run.member) {
                match PatternCall::from_answer(run.run).into_result("member") {
                    Ok(summary) => (member.state, member.detail) = (State::Completed, summary),
                    Err(e) => (member.state, member.detail) = (State::Failed, e.message),
                }
            }
        }
        let completed: Vec<String> = rollout.of_stage(&stage.name).filter(|m| m.state == State::Completed).map(|m| m.name.clone()).collect();
        let failed: Vec<String> = rollout.of_stage(&stage.name).filter(|m| m.state == State::Failed).map(|m| m.name.clone()).collect();
        if group.budget_exceeded {
            rollout.stages.push(json!({"stage": stage.name, "state": "Failed", "failed": failed, "ms": clock::now().saturating_sub(started)}));
            return Err(rollout.stopped(format!(
                "stage {}: {} member(s) failed ({}), more than the failure budget of {budget_left} allows",
                stage.name,
                failed.len(),
                failed.join(", ")
            )));
        }
        let after = step(&format!("after-stage {}", stage.name), "every member the stage completed passes the after-stage gate", || {
            let failures = gate_on("after-stage", &completed, &after_input);
            if failures.is_empty() { Ok(()) } else { Err(Error::new(ErrorCode::Internal, failures.join("; "))) }
        });
        if let Err(e) = after {
            rollout.stages.push(json!({"stage": stage.name, "state": "Failed", "detail": e.message, "ms": clock::now().saturating_sub(started)}));
            return Err(rollout.stopped(format!("stage {}: the after-stage gate failed: {}", stage.name, e.message)));
        }
        let last = index + 1 == stages.len();
        if stage.soak_ms > 0 && !last {
            step(&format!("soak {}", stage.name), &format!("wait {} ms before the next stage", stage.soak_ms), || {
                if !run_info::dry_run() {
                    clock::sleep(stage.soak_ms);
                }
                Ok(())
            })?;
        }
        rollout
            .stages
            .push(json!({"stage": stage.name, "state": "Completed", "completed": completed, "failed": failed, "ms": clock::now().saturating_sub(started)}));
    }
    rollout.attach("succeeded");
    let count = |state: State| rollout.members.iter().filter(|m| m.state == state).count();
    let mut summary = format!(
        "rolled out Kubernetes {version} over {} stage(s): {} member(s) completed, {} skipped (already at the target), {} failed within the budget",
        stages.len(),
        count(State::Completed),
        count(State::Skipped),
        count(State::Failed)
    );
    if let Some(retry) = rollout.retry() {
        let names: Vec<&str> = rollout.left().map(|m| m.name.as_str()).collect();
        summary.push_str(&format!("; residual set: {} (retry with {retry})", names.join(", ")));
    }
    Ok(PatternResult { status: runner_sdk::pattern::PatternStatus::Succeeded, summary })
}

struct Pattern;

impl runner_sdk::pattern::Guest for Pattern {
    fn run(config: String) -> Result<PatternResult, Error> {
        let given = serde_json::from_str(&config).unwrap_or(Value::Null);
        run(parse_config(&config)?, given)
    }
}

runner_sdk::export_pattern!(Pattern);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_name_their_groups_and_soaks() {
        let stages = parse_stages("dev@30m; test@60m ;prod=prod-east,prod-west").unwrap();
        assert_eq!(
            stages,
            vec![
                Stage { name: "dev".into(), groups: vec!["dev".into()], soak_ms: 1_800_000 },
                Stage { name: "test".into(), groups: vec!["test".into()], soak_ms: 3_600_000 },
                Stage { name: "prod".into(), groups: vec!["prod-east".into(), "prod-west".into()], soak_ms: 0 },
            ]
        );
        assert!(parse_stages("").unwrap_err().contains("no stage"));
        assert!(parse_stages("dev@soon").unwrap_err().contains("not a duration"));
        assert!(parse_stages("dev;dev").unwrap_err().contains("named twice"));
        assert!(parse_stages("a=x;b=x").unwrap_err().contains("group `x` is in two stages"));
        assert!(parse_stages("=x").unwrap_err().contains("needs a name"));
    }

    #[test]
    fn budgets_are_counts_or_shares_rounded_down() {
        assert_eq!(budget("1", 3), Ok(1));
        assert_eq!(budget("20%", 9), Ok(1));
        assert_eq!(budget("0%", 9), Ok(0));
        assert!(budget("120%", 9).is_err());
        assert!(budget("one", 9).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms("250ms"), Some(250));
        assert_eq!(duration_ms("2h"), Some(7_200_000));
        assert_eq!(duration_ms("5"), None);
        assert_eq!(duration_ms("5d"), None);
    }
}
