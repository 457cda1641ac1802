//! Carrying out a [`PoolPlan`]: the steps, the database pattern slots that
//! move members, the checks between them, and the state a failure leaves,
//! described for the operator. Shared by `aks-upgrade` and `node-image-patch`;
//! only the pool's own upgrade differs, and the caller passes it in.

use runner_sdk::cluster::{self, NewNodePool, NodePool, UpgradeSettings};
use runner_sdk::prelude::*;
use runner_sdk::report::{self, StepOutcome};
use runner_sdk::{DryRun, PatternCall};

use crate::placement::{self, Database, Placement};
use crate::plan::{Destination, Move, PoolPlan};

/// How many times a mutation AKS refused with 409 `OperationNotAllowed` is
/// tried again, each after the operations in progress ended.
pub const CONFLICT_RETRIES: u32 = 3;

/// Pause before trying a refused mutation again, for an operation the pools
/// and the control plane do not show (another tool's, just ended).
const CONFLICT_PAUSE_MS: u64 = 5_000;

/// Whether AKS refused a mutation because another operation runs.
pub fn is_operation_conflict(e: &Error) -> bool {
    e.code == ErrorCode::Conflict && e.message.contains("OperationNotAllowed")
}

/// What every step of a pool's plan needs.
pub struct Runner {
    /// Whether mutations are only planned.
    pub dry: DryRun,
    /// The Node label naming a pool (`agentpool`), passed to the database patterns.
    pub pool_label: String,
    /// The operator's JSON input per pattern slot (`postgres`, `redis`,
    /// `mongo`), merged under the facts the run adds.
    pub inputs: Value,
    /// How long each cluster operation may take.
    pub operation_timeout_ms: u64,
    /// The databases the run looks after.
    pub databases: Vec<Database>,
}

/// A step that did nothing, shown as skipped with the reason.
pub fn skipped(name: &str, description: &str, why: &str) {
    report::step_begin(name, description);
    report::step_end(name, StepOutcome::Skipped, why);
}

impl Runner {
    /// Where the databases' members are now (live; planned state is the caller's in a dry run).
    pub fn placements(&self) -> Result<Vec<Placement>, Error> {
        placement::placements(&self.databases, &self.pool_label)
    }

    /// The sub-pattern's configuration: the operator's input for the slot,
    /// with the StatefulSet, namespace, destination and pool label set by the run.
    pub fn slot_config(&self, m: &Move) -> Result<Value, Error> {
        let mut config = match self.inputs.get(&m.slot) {
            None | Some(Value::Null) => json!({}),
            Some(Value::String(text)) if text.trim().is_empty() => json!({}),
            Some(Value::String(text)) => serde_json::from_str(text).map_err(|e| Error::invalid(format!("{}-input is not JSON: {e}", m.slot)))?,
            Some(other) => other.clone(),
        };
        let object = config.as_object_mut().ok_or_else(|| Error::invalid(format!("{}-input is not a JSON object", m.slot)))?;
        object.insert("statefulset".into(), json!(m.database.statefulset));
        object.insert("namespace".into(), json!(m.database.namespace));
        object.insert("upgraded-pool".into(), json!(m.to));
        object.insert("pool-label".into(), json!(self.pool_label));
        Ok(config)
    }

    /// Move one database's members to `m.to` through its engine's pattern
    /// slot, as a step; afterwards (not in a dry run) every member must run there.
    pub fn move_database(&self, m: &Move) -> Result<String, Error> {
        let config = self.slot_config(m)?;
        step(
            &format!("move {} -> {}", m.database.name, m.to),
            &format!("pattern slot `{}` moves every member of {} onto pool {}", m.slot, m.database.name, m.to),
            || {
                let summary = PatternCall::run(&m.slot, &config).into_result(&m.slot)?;
                if !self.dry.active() {
                    let now = self.placements()?;
                    if let Some(p) = now.iter().find(|p| p.database == m.database)
                        && !p.all_on(&m.to)
                    {
                        return Err(Error::internal(format!("pattern slot `{}` succeeded but not every member is on pool {}: {}", m.slot, m.to, p.describe())));
                    }
                }
                Ok(summary)
            },
        )
    }

    /// Refuse to go on while a database member still runs on `pool`: an
    /// AKS drain or delete would evict it without its database's procedure.
    pub fn check_left(&self, pool: &str, doing: &str) -> Result<(), Error> {
        if self.dry.active() {
            return Ok(());
        }
        let left: Vec<String> =
            self.placements()?.iter().filter(|p| p.has_members_on(pool)).map(|p| format!("{} ({})", p.database.name, p.on(pool).join(", "))).collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(Error::new(ErrorCode::Conflict, format!("not going to {doing}: database members still run on pool {pool}: {}", left.join("; "))))
        }
    }

    /// Add the pool the plan's destination needs, unless it exists.
    pub fn add_destination(&self, pool: &NodePool, destination: &Destination, version: &str) -> Result<(), Error> {
        let Some((name, count)) = destination.to_add() else { return Ok(()) };
        let mode = if matches!(destination, Destination::Replacement { .. }) { pool.mode.clone() } else { "User".to_string() };
        let new = NewNodePool {
            name: name.to_string(),
            mode,
            orchestrator_version: version.to_string(),
            count,
            vm_size: String::new(),
            node_labels: Vec::new(),
            upgrade_settings: pool.upgrade_settings.clone(),
        };
        step(
            &format!("add-pool {name}"),
            &format!("add {} with {count} Node(s) at {}", destination.describe(), if version.is_empty() { "the control plane's version" } else { version }),
            || self.mutate(&format!("add pool {name}"), || cluster::add_node_pool(&new, self.operation_timeout_ms)).map(|_| ()),
        )
    }

    /// Carry out `plan` for `pool`; `upgrade` is the pool's own upgrade
    /// (its version, or its node image). `version` is what an added pool runs.
    /// Returns one line per thing done.
    pub fn execute(&self, plan: &PoolPlan, pool: &NodePool, version: &str, upgrade: &dyn Fn() -> Result<(), Error>) -> Result<Vec<String>, Error> {
        let mut done = Vec::new();
        let name = &plan.pool;
        if let Some(settings) = &plan.settings {
            step(&format!("settings {name}"), &format!("write pool {name}'s upgrade settings: {}", settings.describe()), || {
                self.mutate(&format!("write pool {name}'s upgrade settings"), || cluster::set_upgrade_settings(name, settings, self.operation_timeout_ms))
                    .map(|_| ())
            })?;
            done.push(format!("pool {name}: upgrade settings {}", settings.describe()));
        }
        if let Some(destination) = &plan.destination {
            self.add_destination(pool, destination, version)?;
            if destination.to_add().is_some() {
                done.push(format!("pool {name}: added {}", destination.describe()));
            }
        }
        for m in &plan.moves {
            self.move_database(m)?;
            done.push(format!("pool {name}: moved {}", m.describe()));
        }
        if plan.upgrade {
            self.check_left(name, &format!("upgrade pool {name}"))?;
            upgrade()?;
            done.push(format!("pool {name}: upgraded"));
        }
        if let Some(Destination::Temporary { name: temporary, .. }) = &plan.destination {
            // Live, the databases on the temporary pool now are the ones to bring back.
            let back: Vec<Move> = if self.dry.active() {
                plan.moves_back.clone()
            } else {
                self.placements()?
                    .iter()
                    .filter(|p| p.has_members_on(temporary))
                    .map(|p| {
                        let slot = p.database.slot().map_err(Error::invalid)?.to_string();
                        Ok(Move { database: p.database.clone(), slot, to: name.clone(), members: p.on(temporary).into_iter().map(str::to_string).collect() })
                    })
                    .collect::<Result<_, Error>>()?
            };
            for m in &back {
                self.move_database(m)?;
                done.push(format!("pool {name}: moved back {}", m.describe()));
            }
            if plan.delete_temporary {
                self.check_left(temporary, &format!("delete temporary pool {temporary}"))?;
                step(&format!("delete-pool {temporary}"), &format!("delete temporary pool {temporary}, now empty of database members"), || {
                    self.mutate(&format!("delete pool {temporary}"), || cluster::delete_node_pool(temporary, self.operation_timeout_ms))
                })?;
                done.push(format!("pool {name}: deleted temporary pool {temporary}"));
            }
        }
        if plan.delete_pool {
            self.check_left(name, &format!("delete pool {name}"))?;
            step(&format!("delete-pool {name}"), &format!("delete pool {name}: its databases run on the replacement"), || {
                self.mutate(&format!("delete pool {name}"), || cluster::delete_node_pool(name, self.operation_timeout_ms))
            })?;
            done.push(format!("pool {name}: deleted, replaced by {}", plan.destination.as_ref().map(|d| d.name()).unwrap_or("?")));
        }
        Ok(done)
    }

    /// A cluster mutation, tried again when AKS refuses it with 409
    /// `OperationNotAllowed` (another operation runs on the cluster or the
    /// pool, as when someone scales a pool by hand mid-upgrade): after the
    /// operations in progress end (within the operation timeout) and a pause,
    /// up to [`CONFLICT_RETRIES`] times; then AKS's 409 is the error, with
    /// the attempts counted. Each refusal is logged with AKS's message.
    pub fn mutate<T>(&self, what: &str, call: impl Fn() -> Result<T, Error>) -> Result<T, Error> {
        let mut attempt = 0;
        loop {
            match call() {
                Err(e) if is_operation_conflict(&e) && attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    report::log(
                        report::Level::Warn,
                        &format!(
                            "{what}: AKS refused ({}); waiting for the operation in progress to end, then trying again ({attempt} of {CONFLICT_RETRIES})",
                            e.message
                        ),
                    );
                    self.wait_for_operations()?;
                    clock::sleep(CONFLICT_PAUSE_MS);
                }
                Err(e) if is_operation_conflict(&e) => {
                    return Err(Error::new(e.code, format!("{} (refused {} times, each after the operations in progress ended)", e.message, attempt + 1)));
                }
                other => return other,
            }
        }
    }

    /// Until neither the control plane nor a pool is in the middle of an operation.
    fn wait_for_operations(&self) -> Result<(), Error> {
        wait_for("the operations in progress to end", self.operation_timeout_ms, 15_000, || {
            let now = operations_in_progress()?;
            Ok(if now.is_empty() { Poll::Done(()) } else { Poll::NotYet(now.join(", ")) })
        })
    }

    /// Wait (not in a dry run) until neither the control plane nor a pool is
    /// in the middle of an operation: one an interrupted run started goes on
    /// in AKS, and any new one would be refused with 409 until it ends. A
    /// pool whose last operation `Failed` is not waited for: its upgrade is
    /// sent again, which is how AKS retries it (the readiness gate warns).
    pub fn settle_pools(&self) -> Result<(), Error> {
        if self.dry.active() || operations_in_progress()?.is_empty() {
            return Ok(());
        }
        step("settle", "wait for the operations in progress on the cluster to end (an interrupted run's goes on in AKS)", || self.wait_for_operations())
    }

    /// What the cluster looks like after a failure, for the operator: where
    /// each database's members are and which pools exist (read live,
    /// best effort).
    pub fn state_now(&self) -> String {
        let pools = match cluster::node_pools() {
            Ok(pools) => pools.iter().map(|p| format!("{} {} ({})", p.name, p.version(), p.provisioning_state)).collect::<Vec<_>>().join(", "),
            Err(e) => format!("unknown ({})", e.message),
        };
        let databases = match self.placements() {
            Ok(placements) => placements.iter().map(Placement::describe).collect::<Vec<_>>().join("; "),
            Err(e) => format!("unknown ({})", e.message),
        };
        format!("pools now: {pools}; database members: {databases}")
    }
}

/// The control plane and the pools in the middle of an operation, each with its state.
fn operations_in_progress() -> Result<Vec<String>, Error> {
    let mut busy: Vec<String> =
        cluster::node_pools()?.iter().filter(|p| in_progress(&p.provisioning_state)).map(|p| format!("pool {} {}", p.name, p.provisioning_state)).collect();
    let plane = cluster::control_plane()?;
    if in_progress(&plane.provisioning_state) {
        busy.push(format!("control plane {}", plane.provisioning_state));
    }
    Ok(busy)
}

/// Whether a `provisioningState` is an operation still running (as opposed
/// to `Succeeded`, `Failed` or `Canceled`).
pub fn in_progress(state: &str) -> bool {
    matches!(state, "Creating" | "Upgrading" | "UpgradingNodeImageVersion" | "Updating" | "Deleting" | "Scaling" | "Starting" | "Stopping")
}

/// The operator's overrides of a pool's upgrade settings, checked: a count
/// or a percentage for maxSurge and maxUnavailable, a whole number of minutes.
pub fn check_overrides(max_surge: &str, max_unavailable: &str) -> Result<(), Error> {
    for (key, value) in [("max-surge", max_surge), ("max-unavailable", max_unavailable)] {
        if value.is_empty() {
            continue;
        }
        let number = value.strip_suffix('%').unwrap_or(value);
        let ok = number.parse::<u32>().is_ok_and(|n| !value.ends_with('%') || (1..=100).contains(&n));
        if !ok {
            return Err(Error::invalid(format!("{key} `{value}` is not a count (1) or a percentage (33%)")));
        }
    }
    Ok(())
}

/// Settings to write, for a plan description: the pool's own with the overrides.
pub fn settings_with(pool: &NodePool, overrides: &(String, String, Option<u32>)) -> Option<UpgradeSettings> {
    pool.upgrade_settings.overridden(&overrides.0, &overrides.1, overrides.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_running_operations_are_waited_for() {
        assert!(in_progress("Upgrading") && in_progress("UpgradingNodeImageVersion") && in_progress("Deleting"));
        assert!(!in_progress("Succeeded") && !in_progress("Failed") && !in_progress("Canceled"));
    }

    #[test]
    fn overrides_are_counts_or_shares() {
        assert!(check_overrides("0", "1").is_ok());
        assert!(check_overrides("50%", "").is_ok());
        assert!(check_overrides("", "").is_ok());
        assert!(check_overrides("half", "").unwrap_err().message.contains("max-surge `half` is not a count"));
        assert!(check_overrides("", "150%").unwrap_err().message.contains("max-unavailable `150%`"));
    }

    #[test]
    fn a_slot_gets_the_operators_input_under_the_runs_facts() {
        let runner = Runner {
            dry: DryRun::known(false),
            pool_label: "agentpool".into(),
            inputs: json!({"postgres": "{\"member-timeout\": \"20m\", \"upgraded-pool\": \"ignored\"}", "redis": {"failover-mode": "force"}, "mongo": ""}),
            operation_timeout_ms: 1,
            databases: vec![],
        };
        let m = |slot: &str| Move {
            database: Database { name: "db".into(), engine: slot.into(), namespace: "data".into(), statefulset: "db-set".into() },
            slot: slot.into(),
            to: "tnodepoo1234".into(),
            members: vec![],
        };
        let pg = runner.slot_config(&m("postgres")).unwrap();
        assert_eq!(
            pg,
            json!({"member-timeout": "20m", "upgraded-pool": "tnodepoo1234", "statefulset": "db-set", "namespace": "data", "pool-label": "agentpool"})
        );
        assert_eq!(runner.slot_config(&m("redis")).unwrap()["failover-mode"], "force");
        assert_eq!(runner.slot_config(&m("mongo")).unwrap()["upgraded-pool"], "tnodepoo1234");
        let bad = Runner { inputs: json!({"postgres": "[1]"}), ..runner };
        assert!(bad.slot_config(&m("postgres")).unwrap_err().message.contains("postgres-input is not a JSON object"));
    }
}
