//! `fleet`: a pattern runs a pattern or a gate bound to one of its slots on
//! a named member of the run's fleet, or a pattern on a group of members at
//! once, at most so many at a time, within a failure budget. Capability
//! `fleet:run:<member>`, besides the slot's own (`patterns:run:<slot>`,
//! `gates:run:<slot>`).
//!
//! A member's run is a sub-run as `patterns.run` and `gates.run` start one
//! (its own sandbox, grants and deadline), with a [`MemberScope`]: its calls
//! reach that member's backends, and its journal lines, steps, gate and
//! pattern records and session calls carry the member's name; what it runs
//! through its own slots stays on the member. A component already on a
//! member reaches no other member.
//!
//! Resumed runs: a member's sub-run that finished before the runner died is
//! answered from the run log and not run again; one that was in flight runs
//! again (see [`crate::session::runlog`]).
//!
//! Sessions: like `patterns.run`, a replay runs the members' sub-runs again.
//! Members run side by side, so their calls interleave differently in each
//! run; the session answers each member's calls in order within that
//! member's own stream.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Value, json};

use super::{Effect, HostState, fail_on_warn_applied};
use crate::backends::{BackendError, Backends, ErrorCode};
use crate::caps::Decision;
use crate::domain::names;
use crate::session::Answer;
use crate::wit::pattern::runner::policy::fleet::{self, GroupRun, Member, MemberRun};
use crate::wit::pattern::runner::policy::patterns::PatternRun;
use crate::wit::{Error, GateResult};

/// The fleet member a component runs on: its name, what its calls reach,
/// and the database clusters its target names.
#[derive(Clone)]
pub struct MemberScope {
    /// The member's name, as the fleet file gives it.
    pub name: Arc<str>,
    /// Its cluster, databases and cluster API.
    pub backends: Arc<Backends>,
    /// Its target's database clusters (`run-info.databases` on it).
    pub databases: Arc<Vec<crate::target::Database>>,
}

/// One member as `fleet.members` answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetMember {
    /// Its name.
    pub name: String,
    /// Its group.
    pub group: String,
    /// Its labels, sorted by key.
    pub labels: Vec<(String, String)>,
}

/// The members of the run's fleet and a way to reach each. The run
/// library provides it (connecting a member when it is first reached); the
/// import layer only knows that it exists.
#[async_trait::async_trait]
pub trait FleetReach: Send + Sync {
    /// The members, in the fleet file's order.
    fn members(&self) -> &[FleetMember];

    /// What a component run on `member` reaches; `not-found` for a name
    /// the fleet does not hold, `unavailable` when it cannot be reached.
    async fn reach(&self, member: &str) -> Result<MemberScope, BackendError>;
}

/// How many of `count` members may fail: `failure-budget` as a count
/// (`2`) or a share of them (`25%`, rounded down).
fn budget_of(text: &str, count: usize) -> Result<usize, String> {
    let text = text.trim();
    let bad = || format!("failure budget `{text}` is neither a count (`2`) nor a percentage (`25%`)");
    match text.strip_suffix('%') {
        Some(percent) => {
            let percent: u32 = percent.trim().parse().map_err(|_| bad())?;
            if percent > 100 {
                return Err(format!("failure budget `{text}` is more than 100%"));
            }
            Ok(count * percent as usize / 100)
        }
        None => text.parse().map_err(|_| bad()),
    }
}

impl HostState {
    /// Why the fleet call `call` on `slot` (of `interface`: `patterns`,
    /// `gates`) may not start, before its member's capability is checked: a
    /// component already on a member reaches no other, and the slot's own
    /// capability is needed besides `fleet:run:<member>` (a refusal is journaled).
    fn fleet_refusal(&self, call: &'static str, interface: &str, slot: &str, args: impl FnOnce() -> Value) -> wasmtime::Result<Option<Error>> {
        if let Some(member) = &self.member {
            let message = format!("`{}` runs on member `{}`: a member's run reaches no other member", self.component, member.name);
            return Ok(Some(Error { code: crate::wit::ErrorCode::Invalid, message }));
        }
        if self.grants.decide(interface, "run", slot) == Decision::Granted {
            return Ok(None);
        }
        let message = format!("`{}` did not request `{interface}:run:{slot}` in its manifest", self.component);
        Ok(Some(self.deny(call, args(), message, std::time::Instant::now())?))
    }

    /// On a resumed run, what `member`'s sub-run came to when it finished
    /// in an earlier attempt of the call in flight: it is not run again.
    fn member_run_from_log(&self, member: &str) -> Option<PatternRun> {
        let recorded = self.run_log()?.member_result(member)?;
        match PatternRun::from_json(&recorded) {
            Ok(run) => {
                tracing::info!("{member}: finished before the run was resumed, not run again");
                Some(run)
            }
            Err(why) => {
                tracing::warn!("{member}: the run log's record of its run is unusable ({why}): it runs again");
                None
            }
        }
    }

    /// A member's sub-run ended: kept in the run log unless it was stopped
    /// (a stopped run was in flight, and a resumed run runs it again).
    fn log_member_run(&self, member: &str, run: &PatternRun) {
        if let Some(log) = self.run_log()
            && !matches!(run, PatternRun::Stopped(_))
        {
            log.member_done(member, &run.to_json());
        }
    }

    fn fleet(&self) -> Result<Arc<dyn super::FleetReach>, BackendError> {
        self.run.fleet.clone().ok_or_else(|| BackendError::new(ErrorCode::Unavailable, "this run has no fleet (runner exec --fleet FILE)"))
    }
}

/// The scope of `fleet:run`: the member's name once it is a valid one.
fn member_scope(member: &str) -> super::Checked<'_> {
    names::label("member", member).map(|()| member)
}

impl fleet::Host for HostState {
    async fn members(&mut self) -> wasmtime::Result<Vec<Member>> {
        let Some(fleet) = &self.run.fleet else { return Ok(Vec::new()) };
        Ok(fleet.members().iter().map(|m| Member { name: m.name.clone(), group: m.group.clone(), labels: m.labels.clone() }).collect())
    }

    async fn run_pattern(&mut self, member: String, slot: String, config: String) -> wasmtime::Result<Result<PatternRun, Error>> {
        let args = || json!({"member": member, "slot": slot, "config": serde_json::from_str::<Value>(&config).unwrap_or_else(|_| json!(config))});
        if let Some(refused) = self.fleet_refusal("fleet.run-pattern", "patterns", &slot, args)? {
            return Ok(Err(refused));
        }
        let (fleet, runner) = (self.fleet(), self.pattern_runner());
        let this: &HostState = self;
        self.guarded("fleet.run-pattern", member_scope(&member), args, Effect::Read, async {
            let runner = runner.ok_or_else(|| BackendError::new(ErrorCode::Unavailable, "no pattern runner in this context"))?;
            if let Some(run) = this.member_run_from_log(&member) {
                return Ok(run);
            }
            let scope = fleet?.reach(&member).await?;
            let run = runner.run_slot(this.pattern_call(&slot, &config, Some(scope))).await?;
            this.log_member_run(&member, &run);
            Ok(run)
        })
        .await
    }

    async fn run_gate(&mut self, member: String, slot: String, input: String) -> wasmtime::Result<Result<GateResult, Error>> {
        let args = || json!({"member": member, "slot": slot, "input": serde_json::from_str::<Value>(&input).unwrap_or_else(|_| json!(input))});
        if let Some(refused) = self.fleet_refusal("fleet.run-gate", "gates", &slot, args)? {
            return Ok(Err(refused));
        }
        let (fleet, runner, run, deadline) = (self.fleet(), self.gate_runner(), self.run.clone(), self.deadline);
        let fail_on_warn = run.fail_on_warn;
        let answer = self
            .guarded("fleet.run-gate", member_scope(&member), args, Effect::Read, async {
                let runner = runner.ok_or_else(|| BackendError::new(ErrorCode::Unavailable, "no gate runner in this context"))?;
                let scope = fleet?.reach(&member).await?;
                runner.run_slot(run, &slot, &input, deadline, Some(scope)).await
            })
            .await?;
        Ok(answer.map(|result| fail_on_warn_applied(result, fail_on_warn)))
    }

    async fn run_group(
        &mut self,
        members: Vec<String>,
        slot: String,
        config: String,
        max_concurrency: u32,
        failure_budget: String,
    ) -> wasmtime::Result<Result<GroupRun, Error>> {
        let args = || {
            json!({
                "members": members,
                "slot": slot,
                "config": serde_json::from_str::<Value>(&config).unwrap_or_else(|_| json!(config)),
                "max_concurrency": max_concurrency,
                "failure_budget": failure_budget,
            })
        };
        let invalid = |message: String| Ok(Err(Error { code: crate::wit::ErrorCode::Invalid, message }));
        if let Some(refused) = self.fleet_refusal("fleet.run-group", "patterns", &slot, args)? {
            return Ok(Err(refused));
        }
        if members.is_empty() {
            return invalid("fleet.run-group: no members given".into());
        }
        let mut seen = BTreeSet::new();
        if let Some(twice) = members.iter().find(|m| !seen.insert(m.as_str())) {
            return invalid(format!("fleet.run-group: member `{twice}` is given twice"));
        }
        if max_concurrency == 0 {
            return invalid("fleet.run-group: max-concurrency must be 1 or more".into());
        }
        let budget = match budget_of(&failure_budget, members.len()) {
            Ok(budget) => budget,
            Err(why) => return invalid(format!("fleet.run-group: {why}")),
        };
        // Every member's capability before anything starts: a group is refused whole.
        for member in &members {
            let decision = member_scope(member).map(|scope| self.grants.decide("fleet", "run", scope));
            if let Ok(Decision::NotRequested) = decision {
                let message = format!("`{}` did not request `fleet:run:{member}` in its manifest", self.component);
                return Ok(Err(self.deny("fleet.run-group", args(), message, std::time::Instant::now())?));
            }
        }
        let first = members[0].clone();
        let (fleet, runner) = (self.fleet(), self.pattern_runner());
        let this: &HostState = self;
        let slot_ref = &slot;
        let config_ref = &config;
        let members = &members;
        self.guarded("fleet.run-group", member_scope(&first), args, Effect::Read, async move {
            let fleet = fleet?;
            let runner = runner.ok_or_else(|| BackendError::new(ErrorCode::Unavailable, "no pattern runner in this context"))?;
            // Each member's group, looked up once: the scheduling below asks for it at every start.
            let group_of: HashMap<&str, &str> = fleet.members().iter().map(|m| (m.name.as_str(), m.group.as_str())).collect();
            if let Some(unknown) = members.iter().find(|m| !group_of.contains_key(m.as_str())) {
                return Err(BackendError::new(ErrorCode::NotFound, format!("the fleet has no member `{unknown}`; nothing was started")));
            }
            let run_one = |member: String| {
                let fleet = fleet.clone();
                let runner = runner.clone();
                async move {
                    if let Some(run) = this.member_run_from_log(&member) {
                        return MemberRun { member, run: Ok(run) };
                    }
                    let run = match fleet.reach(&member).await {
                        Ok(scope) => runner.run_slot(this.pattern_call(slot_ref, config_ref, Some(scope))).await.map_err(super::to_wit_error),
                        Err(e) => Err(super::to_wit_error(e)),
                    };
                    if let Ok(run) = &run {
                        this.log_member_run(&member, run);
                    }
                    MemberRun { member, run }
                }
            };
            // Fleet Manager's model: groups side by side, within a group at most `max-concurrency` at a time.
            let mut waiting: Vec<&str> = members.iter().map(String::as_str).collect();
            let mut busy: HashMap<&str, usize> = HashMap::new();
            let mut running = FuturesUnordered::new();
            let (mut runs, mut failed) = (Vec::new(), 0usize);
            loop {
                if failed <= budget {
                    while let Some(next) = waiting.iter().position(|m| busy.get(group_of[m]).copied().unwrap_or(0) < max_concurrency as usize) {
                        let member = waiting.remove(next);
                        *busy.entry(group_of[member]).or_default() += 1;
                        running.push(run_one(member.to_string()));
                    }
                }
                let Some(done) = running.next().await else { break };
                if let Some(count) = busy.get_mut(group_of[done.member.as_str()]) {
                    *count -= 1;
                }
                if !matches!(done.run, Ok(PatternRun::Succeeded(_))) {
                    failed += 1;
                }
                runs.push(done);
            }
            let not_started = waiting.into_iter().map(str::to_string).collect();
            Ok(GroupRun { runs, not_started, budget_exceeded: failed > budget })
        })
        .await
    }
}

/// Key of a member run the host refused to start, as a session holds it.
const REFUSED: &str = "refused";

/// A group run as a session holds it: `{"runs": [{"member", "run"}],
/// "not_started": [...], "budget_exceeded": bool}`, each `run` a pattern
/// run's answer or `{"refused": {"code", "message"}}` when the host did not start it.
impl Answer for GroupRun {
    fn to_json(&self) -> Value {
        let runs: Vec<Value> = self
            .runs
            .iter()
            .map(|r| {
                let run = match &r.run {
                    Ok(run) => run.to_json(),
                    Err(e) => json!({ REFUSED: {"code": super::code_name(e.code), "message": e.message} }),
                };
                json!({"member": r.member, "run": run})
            })
            .collect();
        json!({"runs": runs, "not_started": self.not_started, "budget_exceeded": self.budget_exceeded})
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        let runs = value["runs"].as_array().ok_or_else(|| format!("a group run needs `runs`, a list; found {value}"))?;
        let runs = runs
            .iter()
            .map(|r| {
                let member = r["member"].as_str().ok_or_else(|| format!("a member run needs `member`; found {r}"))?.to_string();
                let run = match r["run"].get(REFUSED) {
                    Some(e) => Err(Error {
                        code: e["code"]
                            .as_str()
                            .and_then(crate::domain::ErrorCode::from_name)
                            .ok_or_else(|| format!("a refusal needs a known `code`; found {e}"))?
                            .into(),
                        message: e["message"].as_str().unwrap_or_default().to_string(),
                    }),
                    None => Ok(PatternRun::from_json(&r["run"])?),
                };
                Ok(MemberRun { member, run })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let not_started = value["not_started"].as_array().map(|l| l.iter().filter_map(|m| m.as_str().map(str::to_string)).collect()).unwrap_or_default();
        Ok(GroupRun { runs, not_started, budget_exceeded: value["budget_exceeded"].as_bool().unwrap_or(false) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_a_count_or_a_share_rounded_down() {
        assert_eq!(budget_of("0", 10), Ok(0));
        assert_eq!(budget_of("2", 10), Ok(2));
        assert_eq!(budget_of("25%", 10), Ok(2));
        assert_eq!(budget_of("100%", 3), Ok(3));
        assert_eq!(budget_of(" 10 % ", 9), Ok(0));
        assert!(budget_of("101%", 3).unwrap_err().contains("more than 100%"));
        assert!(budget_of("two", 3).unwrap_err().contains("neither a count"));
        assert!(budget_of("-1", 3).is_err());
    }

    #[test]
    fn a_group_run_survives_a_session() {
        let run = GroupRun {
            runs: vec![
                MemberRun { member: "dev".into(), run: Ok(PatternRun::Succeeded("upgraded".into())) },
                MemberRun { member: "test".into(), run: Err(Error { code: crate::wit::ErrorCode::Unavailable, message: "test: unreachable".into() }) },
            ],
            not_started: vec!["prod".into()],
            budget_exceeded: true,
        };
        let json = run.to_json();
        assert_eq!(json["runs"][1]["run"]["refused"]["code"], "unavailable");
        assert_eq!(format!("{:?}", GroupRun::from_json(&json).unwrap()), format!("{run:?}"));
        assert!(GroupRun::from_json(&json!({"nope": 1})).unwrap_err().contains("needs `runs`"));
    }
}
