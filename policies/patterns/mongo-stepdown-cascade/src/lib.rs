//! Pattern `mongo-stepdown-cascade`: move every member of a MongoDB replica
//! set (a StatefulSet) onto an upgraded node pool with one election, the
//! seed's "step-down cascade" done safely. See manifest.toml's `steps` and
//! `rollback`.

mod plan;

use std::cell::RefCell;

use kube_common::text::millis;
use kube_common::{NodePools, Pod, PoolPin, StatefulSet};
use mongo_common::cluster;
use mongo_common::rs::{self, StepDownError, classify_stepdown};
use plan::{Action, Snapshot};
use runner_sdk::pattern::PatternResult;
use runner_sdk::prelude::*;
use runner_sdk::{Approval, DryRun, gate_input, gate_step, mongo_write, preflight_gate};
use serde::Deserialize;

runner_sdk::manifest!(include_str!("../manifest.toml"));

/// The annotation that keeps what the pattern changed on the StatefulSet,
/// so a later run knows what to restore.
const ANNOTATION: &str = "runner.dev/stepdown-cascade";

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    pool_label: String,
    upgraded_pool: String,
    candidate: String,
    max_lag: u64,
    catch_up_period: u64,
    step_down_period: u64,
    freeze_period: u64,
    step_down_retry_timeout: u64,
    force: bool,
    election_timeout: u64,
    stop_timeout: u64,
    rejoin_timeout: u64,
    poll_interval: u64,
    preflight_input: String,
    post_input: String,
    #[serde(flatten)]
    members: StatefulSet,
}

impl Config {
    fn check(&self) -> Result<(), Error> {
        let secs = |ms: u64| ms / 1000;
        if secs(self.catch_up_period) == 0 || secs(self.step_down_period) <= secs(self.catch_up_period) {
            return Err(Error::invalid(format!(
                "step-down-period ({} s) must be longer than catch-up-period ({} s), which must be at least 1 s (replSetStepDown's rule)",
                secs(self.step_down_period),
                secs(self.catch_up_period)
            )));
        }
        if secs(self.freeze_period) == 0 {
            return Err(Error::invalid("freeze-period must be at least 1 s"));
        }
        Ok(())
    }

    /// replSetStepDown's fields, the command's name first.
    fn step_down_command(&self) -> Vec<(&'static str, Value)> {
        let mut command = vec![("replSetStepDown", json!(self.step_down_period / 1000)), ("secondaryCatchUpPeriodSecs", json!(self.catch_up_period / 1000))];
        if self.force {
            command.push(("force", json!(true)));
        }
        command
    }

    /// A gate's input: the operator's JSON with this pattern's StatefulSet and namespace filled in.
    fn gate_input(&self, text: &str) -> Result<String, Error> {
        let mut scope = vec![("statefulset", json!(self.members.name))];
        if !self.members.namespace.is_empty() {
            scope.push(("namespace", json!(self.members.namespace)));
        }
        gate_input(text, &scope)
    }
}

struct Cascade<'a> {
    cfg: &'a Config,
    pin: PoolPin,
    dry: DryRun,
    /// Members frozen and not yet unfrozen.
    frozen: RefCell<Vec<String>>,
    /// The StatefulSet as found: the pool label's value and updateStrategy.
    original: Value,
    pinned: bool,
    /// Something that cannot be undone by restoring the StatefulSet: a deleted Pod, a step-down
    /// asked for, or an earlier run's pin this run resumes (the members it moved use the pinned template).
    disturbed: bool,
    done: Vec<String>,
    /// The replica set as `discover` found it: the plan the operator approves.
    found: Option<Snapshot>,
}

impl Cascade<'_> {
    fn log(&self, level: report::Level, message: &str) {
        report::log(level, message);
    }

    fn wait<T>(&self, what: &str, timeout_ms: u64, condition: impl FnMut() -> Result<Poll<T>, Error>) -> Result<T, Error> {
        wait_for(what, timeout_ms, self.cfg.poll_interval.max(10), condition)
    }

    fn pods(&self) -> Result<Vec<Pod>, Error> {
        self.cfg.members.pods()
    }

    /// Run a command (its name first) against `admin` on `member` through the mutating interface.
    fn command(&self, member: &str, fields: &[(&str, Value)]) -> Result<Value, Error> {
        let name = fields.first().map_or("", |(name, _)| *name);
        let text =
            mongo_write::run_command(member, "admin", &rs::command(fields)).map_err(|e| Error::new(e.code, format!("{name} on {member}: {}", e.message)))?;
        serde_json::from_str(&text).map_err(|e| Error::internal(format!("{name} on {member}: host returned invalid JSON: {e}")))
    }

    /// The replica set now, as the planner sees it.
    fn snapshot(&self) -> Result<Snapshot, Error> {
        let pods = self.pods()?;
        let pools = NodePools::list(&self.cfg.pool_label)?;
        let (_, status) = cluster::status(&pods)?;
        let primary = status
            .primary()
            .ok_or_else(|| Error::new(ErrorCode::Conflict, format!("replica set {} has {} primaries", status.set, status.primaries().len())))?;
        let primary = cluster::pod_name(&primary.name, &pods);
        let members =
            pods.iter().map(|p| plan::Member { name: p.name.clone(), ordinal: p.ordinal, upgraded: pools.runs_on(p, &self.cfg.upgraded_pool) }).collect();
        Ok(Snapshot { members, primary })
    }

    /// Before the first change: deleting a member's Pod restarts it and
    /// the step-down elects another primary, neither of which can be undone,
    /// so the operator approves the whole plan before the pin. An earlier
    /// run's pin means that run was approved: a re-run just continues. A
    /// rotation with nothing to do asks nothing.
    fn approve(&self) -> Result<(), Error> {
        let cfg = self.cfg;
        let Some(snapshot) = &self.found else { return Ok(()) };
        let plan = plan::whole(snapshot);
        if plan.is_empty() {
            return Ok(());
        }
        let candidate = if cfg.candidate.is_empty() { "a caught-up secondary on the upgraded pool".to_string() } else { cfg.candidate.clone() };
        let summary = format!(
            "step down primary {} of replica set {} in favour of {candidate}, and move every member onto pool {}",
            snapshot.primary, cfg.members.name, cfg.upgraded_pool
        );
        let mut members: Vec<&plan::Member> = snapshot.members.iter().collect();
        members.sort_by_key(|m| m.ordinal);
        let roles: Vec<String> = members
            .iter()
            .map(|m| {
                format!("{}{}{}", m.name, if m.name == snapshot.primary { " primary" } else { " secondary" }, if m.upgraded { " (upgraded pool)" } else { "" })
            })
            .collect();
        let steps: Vec<String> = plan
            .iter()
            .map(|a| match a {
                Action::Move(name) => format!("delete {name}'s Pod so it comes back on pool {}", cfg.upgraded_pool),
                Action::StepDown(from) => format!(
                    "replSetStepDown on {from} ({}s, catch-up {}s{}), {candidate} elected",
                    cfg.step_down_period / 1000,
                    cfg.catch_up_period / 1000,
                    if cfg.force { ", force" } else { "" }
                ),
            })
            .collect();
        let details = [
            format!("StatefulSet {}: {}", cfg.members.name, roles.join(", ")),
            format!("pin: nodeSelector {}={}, updateStrategy OnDelete (annotation {ANNOTATION})", cfg.pool_label, cfg.upgraded_pool),
            format!("then, in order: {}", steps.join("; ")),
            "a deleted Pod or a step-down cannot be undone; a failure stops the run and a re-run resumes it".to_string(),
        ]
        .join("\n");
        match Approval::ask(&summary, &details)? {
            Approval::Approved => Ok(()),
            Approval::Declined => Err(Approval::declined(&summary)),
        }
    }

    fn pin_members(&mut self) -> Result<(), Error> {
        let set = self.cfg.members.read()?;
        let (original, resumed) = self.pin.original(&set.object);
        if !resumed {
            self.approve()?;
        }
        if resumed {
            // Members an earlier run moved were made from the pinned template: putting the old
            // template back with a rolling update would move them back (to a pool being drained).
            self.disturbed = true;
            self.log(
                report::Level::Info,
                &format!("resuming an earlier run: StatefulSet {} is already pinned (annotation {ANNOTATION})", self.cfg.members.name),
            );
        }
        self.pin.apply(&self.cfg.members, &original)?;
        self.original = original;
        self.pinned = true;
        Ok(())
    }

    fn rotate(&mut self) -> Result<String, Error> {
        self.pin_members()?;
        let mut simulated = if self.dry.active() { Some(self.snapshot()?) } else { None };
        let mut last: Option<(Action, Snapshot)> = None;
        for _ in 0..32 {
            let snapshot = match &simulated {
                Some(s) => s.clone(),
                None => self.snapshot()?,
            };
            let Some(action) = plan::next(&snapshot) else {
                break;
            };
            if last.as_ref() == Some(&(action.clone(), snapshot.clone())) {
                return Err(Error::internal(format!("{action:?} did not change the replica set; stopping rather than repeating it")));
            }
            let elected = match &action {
                Action::Move(name) => {
                    step(
                        &format!("move {name}"),
                        &format!("replace {name}'s Pod so it runs on pool {}; wait until it is a caught-up SECONDARY", self.cfg.upgraded_pool),
                        || self.move_member(name),
                    )?;
                    self.done.push(format!("moved {name}"));
                    None
                }
                Action::StepDown(from) => {
                    let to = step(
                        &format!("step-down {from}"),
                        &format!("elect a caught-up secondary on pool {} in place of {from}", self.cfg.upgraded_pool),
                        || self.step_down(from, &snapshot),
                    )?;
                    self.done.push(format!("stepped down {from}, {to} elected"));
                    Some(to)
                }
            };
            if let Some(sim) = &mut simulated {
                plan::apply(sim, &action, elected.as_deref());
            }
            last = Some((action, snapshot));
        }
        let body = self.pin.release_body(&self.original["updateStrategy"]);
        step("restore-update-strategy", "put back the original updateStrategy", || self.cfg.members.patch(&body))?;
        Ok(if self.done.is_empty() { "every member already ran on the upgraded pool".into() } else { self.done.join("; ") })
    }

    /// Every member except `except` is healthy: taking `except` away keeps the majority.
    fn others_healthy(&self, except: &str) -> Result<(), Error> {
        let pods = self.pods()?;
        let (_, status) = cluster::status(&pods)?;
        let unwell: Vec<String> = status
            .members
            .iter()
            .filter(|m| cluster::pod_name(&m.name, &pods) != except && !m.healthy())
            .map(|m| format!("{} {} (health {})", cluster::pod_name(&m.name, &pods), m.state_str, m.health))
            .collect();
        if !unwell.is_empty() {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!(
                    "not restarting {except} while {} not healthy: {}",
                    if unwell.len() == 1 { "another member is" } else { "other members are" },
                    unwell.join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn move_member(&mut self, name: &str) -> Result<(), Error> {
        self.others_healthy(name)?;
        let uid = self.cfg.members.pod(name)?.map(|p| p.uid).unwrap_or_default();
        self.disturbed = true;
        self.cfg.members.delete_pod(name)?;
        if self.dry.active() {
            return Ok(());
        }
        self.wait(&format!("{name}'s old Pod to be gone"), self.cfg.stop_timeout, || self.cfg.members.pod_gone(name, &uid))?;
        let started = clock::now();
        self.wait(&format!("{name} to be Ready on pool {}", self.cfg.upgraded_pool), self.cfg.rejoin_timeout, || {
            self.cfg.members.pod_ready(name, self.pin.target())
        })?;
        let remaining = self.cfg.rejoin_timeout.saturating_sub(clock::now().saturating_sub(started)).max(self.cfg.poll_interval);
        let lag = self.wait_caught_up(name, remaining)?;
        report::metric(&format!("{name}-lag-after-move"), lag as f64, "ms");
        Ok(())
    }

    /// Wait until `name` is a healthy SECONDARY within max-lag of the primary; its lag then.
    fn wait_caught_up(&self, name: &str, timeout_ms: u64) -> Result<u64, Error> {
        self.wait(&format!("{name} to be a SECONDARY within {} of the primary", millis(self.cfg.max_lag as f64)), timeout_ms, || {
            let pods = self.pods()?;
            let (_, status) = cluster::status(&pods)?;
            let Some(member) = status.members.iter().find(|m| cluster::pod_name(&m.name, &pods) == name) else {
                return Ok(Poll::NotYet(format!("{name} is not in replica set {}", status.set)));
            };
            if member.state != rs::SECONDARY || member.health != 1.0 {
                return Ok(Poll::NotYet(format!("{name}: {} (health {})", member.state_str, member.health)));
            }
            Ok(match status.lag_ms(member) {
                Some(lag) if lag <= self.cfg.max_lag => Poll::Done(lag),
                Some(lag) => Poll::NotYet(format!("{name}: {} behind the primary", millis(lag as f64))),
                None => Poll::NotYet(format!("{name}: no optime to compare with the primary's")),
            })
        })
    }

    /// Hand the primary role from `from` to the chosen secondary; the new primary's Pod name.
    fn step_down(&mut self, from: &str, snapshot: &Snapshot) -> Result<String, Error> {
        let pods = self.pods()?;
        let (asked, status) = cluster::status(&pods)?;
        let config = cluster::config_of(&asked).map_err(|e| self.log(report::Level::Warn, &format!("votes and priorities unknown: {}", e.message))).ok();
        let upgraded = |m: &rs::Member| snapshot.members.iter().any(|p| p.upgraded && p.name == cluster::pod_name(&m.name, &pods));
        let wanted = &self.cfg.candidate;
        let candidate = rs::choose_candidate(&status, config.as_deref(), self.cfg.max_lag, |m| {
            upgraded(m) && (wanted.is_empty() || cluster::pod_name(&m.name, &pods) == *wanted)
        })
        .map_err(|why| {
            Error::new(
                ErrorCode::Conflict,
                format!(
                    "no secondary of {from} can be elected{}: {why}",
                    if wanted.is_empty() { String::new() } else { format!(" as configured (candidate {wanted})") }
                ),
            )
        })?;
        let to = cluster::pod_name(&candidate.name, &pods);
        self.log(report::Level::Info, &format!("candidate {to}: {} behind {from}", millis(status.lag_ms(candidate).unwrap_or(0) as f64)));
        let others: Vec<String> =
            status.members.iter().filter(|m| m.state == rs::SECONDARY && m.name != candidate.name).map(|m| cluster::pod_name(&m.name, &pods)).collect();
        for other in &others {
            self.command(other, &[("replSetFreeze", json!(self.cfg.freeze_period / 1000))])?;
            self.frozen.borrow_mut().push(other.clone());
        }
        self.disturbed = true;
        let started = clock::now();
        self.ask_step_down(from)?;
        let elected = if self.dry.active() { to.clone() } else { self.confirm_primary(from, &to)? };
        report::metric("election", (clock::now() - started) as f64, "ms");
        if elected != to {
            self.log(report::Level::Warn, &format!("{elected} was elected, not the candidate {to}"));
        }
        self.unfreeze();
        Ok(elected)
    }

    /// replSetStepDown, retried on 262 ExceededTimeLimit within the bound.
    fn ask_step_down(&self, from: &str) -> Result<(), Error> {
        let command = self.cfg.step_down_command();
        let started = clock::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let Err(e) = self.command(from, &command) else { return Ok(()) };
            match classify_stepdown(matches!(e.code, ErrorCode::Unavailable | ErrorCode::Timeout), &e.message) {
                StepDownError::Retry => {
                    let elapsed = clock::now().saturating_sub(started);
                    if elapsed + self.cfg.poll_interval >= self.cfg.step_down_retry_timeout {
                        return Err(Error::new(
                            ErrorCode::Conflict,
                            format!("{from} did not step down after {attempts} attempt(s) in {}: {}", millis(elapsed as f64), e.message),
                        ));
                    }
                    self.log(report::Level::Warn, &format!("step-down attempt {attempts}: {}; retrying", e.message));
                    clock::sleep(self.cfg.poll_interval);
                }
                // The answer was lost or says it is no longer primary: hello decides.
                StepDownError::Confirm => {
                    self.log(report::Level::Info, &format!("step-down: {}; confirming with hello", e.message));
                    return Ok(());
                }
                StepDownError::Fatal => return Err(e),
            }
        }
    }

    /// Wait until a member other than `from` is the writable primary, `to` preferred; its name.
    fn confirm_primary(&self, from: &str, to: &str) -> Result<String, Error> {
        let pods = self.pods()?;
        self.wait(&format!("{to} to become the writable primary"), self.cfg.election_timeout, || {
            let hello = cluster::hello(to)?;
            if hello.writable_primary {
                return Ok(Poll::Done(to.to_string()));
            }
            match hello.primary.as_deref().map(|p| cluster::pod_name(p, &pods)) {
                Some(p) if p == from => Ok(Poll::NotYet(format!("{from} is still the primary (hello on {to})"))),
                Some(p) if cluster::hello(&p).is_ok_and(|h| h.writable_primary) => Ok(Poll::Done(p)),
                Some(p) => Ok(Poll::NotYet(format!("{to} names {p} as primary"))),
                None => Ok(Poll::NotYet(format!("{to}: no primary yet"))),
            }
        })
        .map_err(|e| {
            let still = cluster::hello(from).is_ok_and(|h| h.writable_primary);
            if still { Error::new(ErrorCode::Conflict, format!("{from} did not step down: it is still the writable primary ({})", e.message)) } else { e }
        })
    }

    /// Lift every freeze this run set; a failure is logged (a freeze ends by itself after freeze-period).
    fn unfreeze(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for member in self.frozen.borrow_mut().drain(..) {
            match self.command(&member, &[("replSetFreeze", json!(0))]) {
                Ok(_) => notes.push(format!("{member} unfrozen")),
                Err(e) => {
                    self.log(report::Level::Warn, &format!("{}; it unfreezes by itself within {}", e.message, millis(self.cfg.freeze_period as f64)));
                    notes.push(format!("{member} still frozen (ends by itself)"));
                }
            }
        }
        notes
    }

    /// Stop here: unfreeze, restore what can be restored, describe the state.
    fn stop(&self, failure: &Error) -> Result<PatternResult, Error> {
        let restored = step("rollback", "unfreeze frozen members; restore the StatefulSet if nothing was moved yet", || {
            let mut notes = self.unfreeze();
            if self.pinned && !self.disturbed {
                self.cfg.members.patch(&self.pin.restore_body(&self.original))?;
                notes.push("StatefulSet nodeSelector and updateStrategy restored".into());
            } else if self.pinned {
                notes.push(format!(
                    "StatefulSet {} stays pinned to pool {} (annotation {ANNOTATION}); running the pattern again resumes",
                    self.cfg.members.name, self.cfg.upgraded_pool
                ));
            }
            Ok(notes)
        });
        let done = if self.done.is_empty() { "nothing moved".to_string() } else { self.done.join("; ") };
        match restored {
            Ok(notes) => Ok(PatternResult::rolled_back(format!(
                "{}: {}. Done before: {done}. {}. State now: {}",
                failure.code,
                failure.message,
                notes.join("; "),
                self.describe()
            ))),
            Err(e) => Err(Error::new(failure.code, format!("{}; restoring failed too: {}. State now: {}", failure.message, e.message, self.describe()))),
        }
    }

    /// The replica set as it stands: each member's state, lag and pool.
    fn describe(&self) -> String {
        let pods = self.pods().unwrap_or_default();
        let pools = NodePools::list(&self.cfg.pool_label).unwrap_or_default();
        let pool = |name: &str| pods.iter().find(|p| p.name == name).and_then(|p| pools.of(p)).unwrap_or("no node");
        match cluster::status(&pods) {
            Ok((_, status)) => status
                .members
                .iter()
                .map(|m| {
                    let name = cluster::pod_name(&m.name, &pods);
                    let lag = if m.state == rs::SECONDARY {
                        status.lag_ms(m).map(|l| format!(", {} behind", millis(l as f64))).unwrap_or_default()
                    } else {
                        String::new()
                    };
                    format!("{name} {}{lag} on pool {}", m.state_str, pool(&name))
                })
                .collect::<Vec<_>>()
                .join("; "),
            Err(e) => format!("replica set status unknown ({})", e.message),
        }
    }
}

struct StepDownCascade;

impl runner_sdk::pattern::Guest for StepDownCascade {
    fn run(config: String) -> Result<PatternResult, Error> {
        let cfg: Config = parse_config(&config)?;
        cfg.check()?;
        let (preflight, post) = (cfg.gate_input(&cfg.preflight_input)?, cfg.gate_input(&cfg.post_input)?);
        if !cfg.candidate.is_empty() && cfg.members.ordinal(&cfg.candidate).is_none() {
            return Err(Error::invalid(format!("candidate `{}` is not a member of {} (<statefulset>-<ordinal>)", cfg.candidate, cfg.members.name)));
        }
        let pin = PoolPin::new(ANNOTATION, &cfg.pool_label, &cfg.upgraded_pool);
        let mut cascade = Cascade {
            cfg: &cfg,
            pin,
            dry: DryRun::of_this_run(),
            frozen: RefCell::default(),
            original: Value::Null,
            pinned: false,
            disturbed: false,
            done: Vec::new(),
            found: None,
        };
        step("discover", "find the primary and the members' pools; plan", || {
            let snapshot = cascade.snapshot()?;
            let plan: Vec<String> = plan::whole(&snapshot).iter().map(|a| format!("{a:?}")).collect();
            cascade.found = Some(snapshot.clone());
            report::log(
                report::Level::Info,
                &format!(
                    "primary {}; {} members; plan: {}",
                    snapshot.primary,
                    snapshot.members.len(),
                    if plan.is_empty() { "nothing to do".into() } else { plan.join(", ") }
                ),
            );
            Ok(())
        })?;
        if let Some(refused) = preflight_gate("preflight", &preflight) {
            return refused;
        }
        let summary = match cascade.rotate() {
            Ok(summary) => summary,
            Err(e) if Approval::was_declined(&e) && !cascade.pinned => return Ok(PatternResult::rolled_back(format!("{}; nothing was changed", e.message))),
            // Refused before anything changed: nothing to undo.
            Err(e) if !cascade.pinned => return Err(e),
            Err(e) => return cascade.stop(&e),
        };
        if let Err(e) = gate_step("post", &post).into_result("post") {
            return Err(Error::new(e.code, format!("the rotation finished ({summary}) but {}. State now: {}", e.message, cascade.describe())));
        }
        let dry = cascade.dry.summary_note();
        Ok(PatternResult::succeeded(format!("every member of {} runs on pool {}{dry}: {summary}", cfg.members.name, cfg.upgraded_pool)))
    }
}

runner_sdk::export_pattern!(StepDownCascade);

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        serde_json::from_value(json!({
            "statefulset": "mongo", "namespace": "", "pool-label": "agentpool", "upgraded-pool": "upgraded-pool", "candidate": "",
            "max-lag": 10_000, "catch-up-period": 10_000, "step-down-period": 60_000, "freeze-period": 120_000, "step-down-retry-timeout": 60_000,
            "force": false, "election-timeout": 30_000, "stop-timeout": 60_000, "rejoin-timeout": 300_000, "poll-interval": 500,
            "preflight-input": "{}", "post-input": "{\"max-lag\": \"2s\"}"
        }))
        .unwrap()
    }

    #[test]
    fn step_down_periods_follow_mongodb_rules() {
        assert!(config().check().is_ok());
        let mut c = config();
        c.step_down_period = 10_000;
        assert_eq!(
            c.check().unwrap_err().message,
            "step-down-period (10 s) must be longer than catch-up-period (10 s), which must be at least 1 s (replSetStepDown's rule)"
        );
        let mut c = config();
        c.catch_up_period = 500;
        assert!(c.check().is_err());
    }

    #[test]
    fn the_step_down_command_names_itself_first() {
        let mut c = config();
        assert_eq!(rs::command(&c.step_down_command()), r#"{"replSetStepDown":60,"secondaryCatchUpPeriodSecs":10}"#);
        c.force = true;
        assert_eq!(rs::command(&c.step_down_command()), r#"{"replSetStepDown":60,"secondaryCatchUpPeriodSecs":10,"force":true}"#);
    }

    #[test]
    fn gate_inputs_name_the_statefulset() {
        let mut c = config();
        assert_eq!(c.gate_input("{}").unwrap(), r#"{"statefulset":"mongo"}"#);
        c.members.namespace = "db".into();
        let post: Value = serde_json::from_str(&c.gate_input(&c.post_input).unwrap()).unwrap();
        assert_eq!(post, json!({"statefulset": "mongo", "namespace": "db", "max-lag": "2s"}));
        assert_eq!(c.gate_input(r#"{"statefulset": "other"}"#).unwrap(), r#"{"namespace":"db","statefulset":"other"}"#);
        assert_eq!(c.gate_input("[1]").unwrap_err().code, ErrorCode::Invalid);
    }
}
