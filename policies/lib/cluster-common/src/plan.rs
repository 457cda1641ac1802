//! What an upgrade does with each node pool, decided from the cluster's
//! state alone, so a re-run after a failure or a kill takes up where the
//! cluster is: pools already upgraded are skipped, a temporary pool that
//! exists is reused, a database whose members already left a pool is not
//! moved again.
//!
//! For a pool that is not yet current (at the target version, or on the
//! latest node image):
//!
//! - no database member on it: write its upgrade settings (if the operator
//!   overrides them) and upgrade it;
//! - database members on it, `strategy: upgrade`: the destination is the
//!   pool's temporary pool if one exists (an interrupted run added it), else
//!   another pool that is already current, else a new temporary pool
//!   ([`names::derived_pool_name`]); each database with members on the pool
//!   is moved there by its engine's pattern slot; the pool is upgraded; the
//!   databases on a temporary pool are moved back the same way and the
//!   temporary pool deleted;
//! - `strategy: replace`: a replacement pool is added (or reused), every
//!   database with members on the pool moved there, the old pool deleted.
//!
//! A pool that is current but still has its temporary pool is one whose
//! upgrade finished and whose members have not all come back: they are
//! moved back and the temporary pool deleted.

use std::collections::BTreeSet;

use runner_sdk::cluster::{NodePool, UpgradeSettings};

use crate::names::{self, Derived};
use crate::placement::{Database, Placement};

/// How a pool with database members reaches the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Upgrade the pool in place, its database members moved away first.
    Upgrade,
    /// Add a pool at the target, move the databases there, delete the old pool.
    Replace,
}

impl Strategy {
    /// `upgrade` or `replace`.
    pub fn parse(text: &str) -> Result<Strategy, String> {
        match text {
            "" | "upgrade" => Ok(Strategy::Upgrade),
            "replace" => Ok(Strategy::Replace),
            other => Err(format!("strategy `{other}` is not `upgrade` or `replace`")),
        }
    }
}

/// Where a pool's database members go.
#[derive(Clone, Debug, PartialEq)]
pub enum Destination {
    /// Another pool, already current; the members stay there.
    Existing(String),
    /// The pool's temporary pool: added unless it `exists`, emptied and deleted after the upgrade.
    Temporary {
        /// Its name.
        name: String,
        /// An earlier run added it.
        exists: bool,
        /// Nodes to add it with.
        count: u32,
    },
    /// The pool that takes over (`strategy: replace`), added unless it `exists`.
    Replacement {
        /// Its name.
        name: String,
        /// An earlier run added it.
        exists: bool,
        /// Nodes to add it with.
        count: u32,
    },
}

impl Destination {
    /// The destination pool's name.
    pub fn name(&self) -> &str {
        match self {
            Destination::Existing(name) | Destination::Temporary { name, .. } | Destination::Replacement { name, .. } => name,
        }
    }

    /// The pool to add first, with its Node count, unless it exists.
    pub fn to_add(&self) -> Option<(&str, u32)> {
        match self {
            Destination::Temporary { name, exists: false, count } | Destination::Replacement { name, exists: false, count } => Some((name, *count)),
            _ => None,
        }
    }

    /// For people: `temporary pool tnodepoo3f2a (added, 4 Nodes)`.
    pub fn describe(&self) -> String {
        match self {
            Destination::Existing(name) => format!("pool {name} (already current)"),
            Destination::Temporary { name, exists, count } => {
                format!("temporary pool {name} ({})", if *exists { "exists, reused".to_string() } else { format!("added, {count} Nodes") })
            }
            Destination::Replacement { name, exists, count } => {
                format!("replacement pool {name} ({})", if *exists { "exists, reused".to_string() } else { format!("added, {count} Nodes") })
            }
        }
    }
}

/// One database moved by its pattern slot.
#[derive(Clone, Debug, PartialEq)]
pub struct Move {
    /// The database.
    pub database: Database,
    /// Its engine's pattern slot.
    pub slot: String,
    /// The pool its members end on (the slot's `upgraded-pool`).
    pub to: String,
    /// Its members on the pool being left, when planned.
    pub members: Vec<String>,
}

impl Move {
    /// For people: `postgres-cluster (postgres-cluster-0, postgres-cluster-1) -> tnodepoo3f2a by slot postgres`.
    pub fn describe(&self) -> String {
        let members = if self.members.is_empty() { String::new() } else { format!(" ({})", self.members.join(", ")) };
        format!("{}{members} -> {} by slot {}", self.database.name, self.to, self.slot)
    }
}

/// What is done with one pool, in order: settings, destination added,
/// moves, upgrade, moves back, deletions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolPlan {
    /// The pool.
    pub pool: String,
    /// Why nothing is done (already current, already replaced).
    pub skip: Option<String>,
    /// Upgrade settings to write before the upgrade (the operator's overrides).
    pub settings: Option<UpgradeSettings>,
    /// Where its database members go (none when none runs on it).
    pub destination: Option<Destination>,
    /// Databases moved off the pool.
    pub moves: Vec<Move>,
    /// Whether the pool's own upgrade runs.
    pub upgrade: bool,
    /// Databases moved back from the temporary pool after the upgrade.
    pub moves_back: Vec<Move>,
    /// Delete the temporary pool at the end.
    pub delete_temporary: bool,
    /// Delete the pool itself at the end (`strategy: replace`).
    pub delete_pool: bool,
}

impl PoolPlan {
    /// One line per action, for the approval's details and a dry run's report.
    pub fn lines(&self, what: &str) -> Vec<String> {
        if let Some(why) = &self.skip {
            return vec![format!("pool {}: skipped, {why}", self.pool)];
        }
        let mut out = Vec::new();
        let p = &self.pool;
        if let Some(s) = &self.settings {
            out.push(format!("pool {p}: set upgrade settings {}", s.describe()));
        }
        if let Some(d) = &self.destination
            && let Some((name, count)) = d.to_add()
        {
            out.push(format!(
                "pool {p}: add {} pool {name} with {count} Node(s)",
                if matches!(d, Destination::Replacement { .. }) { "replacement" } else { "temporary" }
            ));
        }
        out.extend(self.moves.iter().map(|m| format!("pool {p}: move {}", m.describe())));
        if self.upgrade {
            out.push(format!("pool {p}: {what}"));
        }
        out.extend(self.moves_back.iter().map(|m| format!("pool {p}: move back {}", m.describe())));
        if self.delete_temporary
            && let Some(d) = &self.destination
        {
            out.push(format!("pool {p}: delete temporary pool {}", d.name()));
        }
        if self.delete_pool {
            out.push(format!("pool {p}: delete pool {p}"));
        }
        out
    }
}

/// What a plan is decided from.
pub struct Cluster<'a> {
    /// Every pool, in the order AKS lists them.
    pub pools: Vec<NodePool>,
    /// Where each database's members run.
    pub placements: Vec<Placement>,
    /// `upgrade` or `replace`.
    pub strategy: Strategy,
    /// The target (a version, or a node image): derived pool names are made from it.
    pub key: String,
    /// Whether a pool already runs the target.
    pub is_current: &'a dyn Fn(&NodePool) -> bool,
    /// The operator's upgrade-settings overrides: maxSurge, maxUnavailable, drainTimeoutInMinutes.
    pub overrides: (String, String, Option<u32>),
    /// Nodes of a pool this plan adds (0: as many as the pool it stands in
    /// for, and at least one more than the largest database moving there).
    pub added_count: u32,
}

impl Cluster<'_> {
    fn pool(&self, name: &str) -> Option<&NodePool> {
        self.pools.iter().find(|p| p.name == name)
    }

    fn names(&self) -> Vec<&str> {
        self.pools.iter().map(|p| p.name.as_str()).collect()
    }

    /// A temporary pool of another pool (deleted later): never a destination, never upgraded.
    fn is_temporary(&self, name: &str) -> bool {
        matches!(names::derived_from(name, self.names(), &self.key), Some((Derived::Temporary, ref of)) if of != name)
    }

    fn with_members_on(&self, pool: &str) -> Vec<&Placement> {
        self.placements.iter().filter(|p| p.has_members_on(pool)).collect()
    }

    fn moves(&self, from: &str, to: &str) -> Result<Vec<Move>, String> {
        self.with_members_on(from)
            .into_iter()
            .map(|p| {
                Ok(Move {
                    database: p.database.clone(),
                    slot: p.database.slot()?.to_string(),
                    to: to.to_string(),
                    members: p.on(from).into_iter().map(str::to_string).collect(),
                })
            })
            .collect()
    }

    fn count_for(&self, pool: &NodePool, moves: &[Move]) -> u32 {
        if self.added_count > 0 {
            return self.added_count;
        }
        let largest =
            moves.iter().filter_map(|m| self.placements.iter().find(|p| p.database == m.database)).map(|p| p.members.len() as u32 + 1).max().unwrap_or(1);
        pool.count.max(largest).max(1)
    }

    /// The pools to work on, in order: `configured` (each must exist, or
    /// have been replaced), or every pool but the temporary and replacement
    /// pools this library adds. Existing names are taken as they are (only
    /// the names this library makes must keep AKS's rule).
    pub fn pools_to_do(&self, configured: &[String]) -> Result<Vec<String>, String> {
        let names = self.names();
        if configured.is_empty() {
            return Ok(names.iter().filter(|n| names::derived_from(n, names.iter().copied(), &self.key).is_none()).map(|n| n.to_string()).collect());
        }
        for name in configured {
            let replaced = names.contains(&names::derived_pool_name(Derived::Replacement, name, &self.key).as_str());
            if !names.contains(&name.as_str()) && !replaced {
                return Err(format!("node pool `{name}` does not exist (pools: {})", names.join(", ")));
            }
        }
        Ok(configured.to_vec())
    }

    /// The plan for one pool, from the state as it is now.
    pub fn plan_pool(&self, name: &str) -> Result<PoolPlan, String> {
        let mut plan = PoolPlan { pool: name.to_string(), ..Default::default() };
        let replacement = names::derived_pool_name(Derived::Replacement, name, &self.key);
        let Some(pool) = self.pool(name) else {
            if self.pool(&replacement).is_some() {
                plan.skip = Some(format!("replaced by pool {replacement}"));
                return Ok(plan);
            }
            return Err(format!("node pool `{name}` does not exist"));
        };
        let current = (self.is_current)(pool);
        match self.strategy {
            Strategy::Replace => {
                let repl_exists = self.pool(&replacement).is_some();
                if current && !repl_exists {
                    plan.skip = Some("already current".into());
                    return Ok(plan);
                }
                let moves = self.moves(name, &replacement)?;
                plan.destination =
                    Some(Destination::Replacement { name: replacement, exists: repl_exists, count: self.count_for(pool, &moves).max(pool.count) });
                plan.moves = moves;
                plan.delete_pool = true;
            }
            Strategy::Upgrade => {
                let temporary = names::derived_pool_name(Derived::Temporary, name, &self.key);
                let temp_exists = self.pool(&temporary).is_some();
                if current && !temp_exists {
                    plan.skip = Some("already current".into());
                    return Ok(plan);
                }
                let here = !self.with_members_on(name).is_empty();
                let destination = if temp_exists {
                    Some(Destination::Temporary { name: temporary.clone(), exists: true, count: 0 })
                } else if here {
                    let mut candidates: Vec<&NodePool> =
                        self.pools.iter().filter(|p| p.name != name && !p.busy() && (self.is_current)(p) && !self.is_temporary(&p.name)).collect();
                    // User pools before System pools: databases belong with workloads, not beside the cluster's own Pods.
                    candidates.sort_by_key(|p| p.mode == "System");
                    match candidates.first() {
                        Some(existing) => Some(Destination::Existing(existing.name.clone())),
                        None => {
                            let count = self.count_for(pool, &self.moves(name, &temporary)?);
                            Some(Destination::Temporary { name: temporary.clone(), exists: false, count })
                        }
                    }
                } else {
                    None
                };
                if let Some(d) = &destination {
                    // A pool already upgraded keeps what runs on it: only the temporary pool empties.
                    plan.moves = if current { Vec::new() } else { self.moves(name, d.name())? };
                    if matches!(d, Destination::Temporary { .. }) {
                        // Back come the databases moved there now, and those an earlier run left there.
                        let mut back: Vec<Move> = if current { Vec::new() } else { self.moves(name, name)? };
                        for m in self.moves(d.name(), name)? {
                            if !back.iter().any(|b| b.database == m.database) {
                                back.push(m);
                            }
                        }
                        // Members still on the pool now are on the temporary pool when they come back.
                        for m in &mut back {
                            m.members = self
                                .placements
                                .iter()
                                .find(|p| p.database == m.database)
                                .map(|p| p.members.iter().map(|x| x.name.clone()).collect())
                                .unwrap_or_default();
                        }
                        plan.moves_back = back;
                        plan.delete_temporary = true;
                    }
                }
                plan.destination = destination;
                plan.upgrade = !current;
                if plan.upgrade {
                    let (surge, unavailable, drain) = &self.overrides;
                    plan.settings = pool.upgrade_settings.overridden(surge, unavailable, *drain);
                }
            }
        }
        Ok(plan)
    }

    /// Plan every pool of `order` in turn, each from the state the earlier
    /// ones leave if they succeed (a pool upgraded becomes a destination
    /// for the next; databases move as planned): the whole plan an
    /// operator approves. The run itself plans each pool again from the
    /// cluster when it gets there.
    pub fn plan_all(&self, order: &[String]) -> Result<Vec<PoolPlan>, String> {
        let mut pools = self.pools.clone();
        let mut placements = self.placements.clone();
        let mut done: BTreeSet<String> = BTreeSet::new();
        let mut out = Vec::new();
        for name in order {
            let is_current = |p: &NodePool| done.contains(&p.name) || (self.is_current)(p);
            let view = Cluster {
                pools: pools.clone(),
                placements: placements.clone(),
                strategy: self.strategy,
                key: self.key.clone(),
                is_current: &is_current,
                overrides: self.overrides.clone(),
                added_count: self.added_count,
            };
            let plan = view.plan_pool(name)?;
            // The state this pool's plan leaves.
            let moved_to = |placements: &mut Vec<Placement>, moves: &[Move]| {
                for m in moves {
                    if let Some(p) = placements.iter_mut().find(|p| p.database == m.database) {
                        for member in &mut p.members {
                            member.pool = m.to.clone();
                        }
                    }
                }
            };
            moved_to(&mut placements, &plan.moves);
            moved_to(&mut placements, &plan.moves_back);
            if plan.skip.is_none() {
                match &plan.destination {
                    Some(Destination::Replacement { name: repl, .. }) => {
                        if let Some(old) = pools.iter().position(|p| p.name == *name) {
                            let mut added = pools[old].clone();
                            added.name = repl.clone();
                            pools[old] = added;
                        }
                        done.insert(repl.clone());
                    }
                    _ => {
                        done.insert(name.clone());
                    }
                }
            }
            out.push(plan);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::Member;

    fn pool(name: &str, version: &str, mode: &str) -> NodePool {
        NodePool {
            name: name.into(),
            mode: mode.into(),
            orchestrator_version: version.into(),
            current_orchestrator_version: version.into(),
            node_image_version: "AKSUbuntu-2204gen2containerd-202410.15.0".into(),
            count: 3,
            provisioning_state: "Succeeded".into(),
            upgrade_settings: UpgradeSettings::unset(),
        }
    }

    fn placed(name: &str, engine: &str, pools: &[&str]) -> Placement {
        Placement {
            database: Database { name: name.into(), engine: engine.into(), namespace: String::new(), statefulset: name.into() },
            members: pools.iter().enumerate().map(|(i, p)| Member { name: format!("{name}-{i}"), node: None, pool: p.to_string(), ready: true }).collect(),
        }
    }

    fn at_target(p: &NodePool) -> bool {
        crate::version::reached(p.version(), &crate::version::Version::parse("1.30.5").unwrap())
    }

    fn cluster<'a>(pools: Vec<NodePool>, placements: Vec<Placement>, strategy: Strategy, current: &'a dyn Fn(&NodePool) -> bool) -> Cluster<'a> {
        Cluster { pools, placements, strategy, key: "1.30.5".into(), is_current: current, overrides: ("0".into(), "1".into(), None), added_count: 0 }
    }

    fn temp(pool: &str) -> String {
        names::derived_pool_name(Derived::Temporary, pool, "1.30.5")
    }

    #[test]
    fn a_pool_without_databases_is_just_upgraded_with_the_overrides() {
        let c = cluster(
            vec![pool("system", "1.29.9", "System"), pool("apps", "1.29.9", "User")],
            vec![placed("pg", "postgres", &["system"; 3])],
            Strategy::Upgrade,
            &at_target,
        );
        let plan = c.plan_pool("apps").unwrap();
        assert!(plan.upgrade && plan.destination.is_none() && plan.moves.is_empty() && !plan.delete_temporary);
        assert_eq!(plan.settings.as_ref().unwrap().describe(), "maxSurge 0, maxUnavailable 1");
        assert_eq!(plan.lines("upgrade to 1.30.5"), vec!["pool apps: set upgrade settings maxSurge 0, maxUnavailable 1", "pool apps: upgrade to 1.30.5"]);
    }

    #[test]
    fn databases_go_to_a_current_pool_and_stay_there() {
        let c = cluster(
            vec![pool("system", "1.30.5", "System"), pool("old", "1.29.9", "User"), pool("new", "1.30.5", "User")],
            vec![placed("pg", "postgres", &["old", "old", "new"]), placed("redis", "redis", &["system"; 6])],
            Strategy::Upgrade,
            &at_target,
        );
        let plan = c.plan_pool("old").unwrap();
        assert_eq!(plan.destination, Some(Destination::Existing("new".into())), "a User pool before the System one");
        assert_eq!(plan.moves.len(), 1);
        assert_eq!(plan.moves[0].describe(), "pg (pg-0, pg-1) -> new by slot postgres");
        assert!(plan.upgrade && plan.moves_back.is_empty() && !plan.delete_temporary);
        assert_eq!(c.plan_pool("new").unwrap().skip.as_deref(), Some("already current"));
    }

    #[test]
    fn without_a_current_pool_a_temporary_one_is_added_and_emptied_afterwards() {
        let c = cluster(
            vec![pool("nodepool1", "1.29.9", "System")],
            vec![placed("pg", "postgres", &["nodepool1"; 3]), placed("redis", "redis", &["nodepool1"; 6])],
            Strategy::Upgrade,
            &at_target,
        );
        let plan = c.plan_pool("nodepool1").unwrap();
        assert_eq!(plan.destination, Some(Destination::Temporary { name: temp("nodepool1"), exists: false, count: 7 }), "the largest database plus one");
        assert_eq!(plan.moves.iter().map(|m| m.slot.as_str()).collect::<Vec<_>>(), vec!["postgres", "redis"]);
        assert!(plan.moves.iter().all(|m| m.to == temp("nodepool1")));
        assert!(plan.moves_back.iter().all(|m| m.to == "nodepool1") && plan.moves_back.len() == 2);
        assert!(plan.upgrade && plan.delete_temporary);
        let lines = plan.lines("upgrade to 1.30.5");
        assert_eq!(lines[1], format!("pool nodepool1: add temporary pool {} with 7 Node(s)", temp("nodepool1")));
        assert_eq!(lines.last().unwrap(), &format!("pool nodepool1: delete temporary pool {}", temp("nodepool1")));
    }

    #[test]
    fn a_rerun_reuses_the_temporary_pool_and_moves_only_what_is_left() {
        let t = temp("nodepool1");
        // Killed after the Ferris wheel moved PostgreSQL and before Redis moved.
        let c = cluster(
            vec![pool("nodepool1", "1.29.9", "System"), pool(&t, "1.30.5", "User")],
            vec![placed("pg", "postgres", &[&t, &t, &t]), placed("redis", "redis", &["nodepool1"; 6])],
            Strategy::Upgrade,
            &at_target,
        );
        assert_eq!(c.pools_to_do(&[]).unwrap(), vec!["nodepool1"], "the temporary pool is not a pool to upgrade");
        let plan = c.plan_pool("nodepool1").unwrap();
        assert_eq!(plan.destination, Some(Destination::Temporary { name: t.clone(), exists: true, count: 0 }));
        assert_eq!(plan.moves.iter().map(|m| m.database.name.as_str()).collect::<Vec<_>>(), vec!["redis"], "PostgreSQL is not moved again");
        assert_eq!(plan.moves_back.iter().map(|m| m.database.name.as_str()).collect::<Vec<_>>(), vec!["redis", "pg"]);
        // Killed after the pool's upgrade, PostgreSQL back, Redis still away.
        let c = cluster(
            vec![pool("nodepool1", "1.30.5", "System"), pool(&t, "1.30.5", "User")],
            vec![placed("pg", "postgres", &["nodepool1"; 3]), placed("redis", "redis", &[&t, &t])],
            Strategy::Upgrade,
            &at_target,
        );
        let plan = c.plan_pool("nodepool1").unwrap();
        assert!(!plan.upgrade && plan.moves.is_empty() && plan.settings.is_none());
        assert_eq!(plan.moves_back.iter().map(|m| m.database.name.as_str()).collect::<Vec<_>>(), vec!["redis"]);
        assert!(plan.delete_temporary);
        // Done: the temporary pool is gone.
        let c = cluster(vec![pool("nodepool1", "1.30.5", "System")], vec![placed("pg", "postgres", &["nodepool1"; 3])], Strategy::Upgrade, &at_target);
        assert_eq!(c.plan_pool("nodepool1").unwrap().skip.as_deref(), Some("already current"));
    }

    #[test]
    fn replace_adds_moves_and_deletes_and_is_done_once_the_old_pool_is_gone() {
        let r = names::derived_pool_name(Derived::Replacement, "nodepool1", "1.30.5");
        let c = cluster(vec![pool("nodepool1", "1.29.9", "System")], vec![placed("pg", "postgres", &["nodepool1"; 3])], Strategy::Replace, &at_target);
        let plan = c.plan_pool("nodepool1").unwrap();
        assert_eq!(plan.destination, Some(Destination::Replacement { name: r.clone(), exists: false, count: 4 }));
        assert!(plan.delete_pool && !plan.upgrade && plan.moves[0].to == r);
        let c = cluster(vec![pool(&r, "1.30.5", "System")], vec![placed("pg", "postgres", &[&r, &r, &r])], Strategy::Replace, &at_target);
        assert_eq!(c.pools_to_do(&["nodepool1".into()]).unwrap(), vec!["nodepool1"]);
        assert_eq!(c.plan_pool("nodepool1").unwrap().skip, Some(format!("replaced by pool {r}")));
        assert!(c.pools_to_do(&["nodepool9".into()]).unwrap_err().contains("node pool `nodepool9` does not exist"));
    }

    #[test]
    fn the_whole_plan_uses_each_upgraded_pool_for_the_next() {
        let c = cluster(
            vec![pool("a", "1.29.9", "User"), pool("b", "1.29.9", "User")],
            vec![placed("pg", "postgres", &["a", "a", "a"]), placed("redis", "redis", &["b", "b"])],
            Strategy::Upgrade,
            &at_target,
        );
        let plans = c.plan_all(&c.pools_to_do(&[]).unwrap()).unwrap();
        assert_eq!(plans[0].destination, Some(Destination::Temporary { name: temp("a"), exists: false, count: 4 }));
        assert_eq!(plans[1].destination, Some(Destination::Existing("a".into())), "pool a is at the target by then");
        assert_eq!(plans[1].moves.iter().map(|m| m.database.name.as_str()).collect::<Vec<_>>(), vec!["redis"]);
    }

    #[test]
    fn a_busy_pool_or_another_pools_temporary_one_is_no_destination() {
        let mut busy = pool("new", "1.30.5", "User");
        busy.provisioning_state = "Upgrading".into();
        let other_temp = temp("b");
        let c = cluster(
            vec![pool("a", "1.29.9", "User"), pool("b", "1.29.9", "User"), busy, pool(&other_temp, "1.30.5", "User")],
            vec![placed("pg", "postgres", &["a", "a"])],
            Strategy::Upgrade,
            &at_target,
        );
        assert_eq!(c.plan_pool("a").unwrap().destination, Some(Destination::Temporary { name: temp("a"), exists: false, count: 3 }));
        assert_eq!(c.pools_to_do(&[]).unwrap(), vec!["a", "b", "new"], "b's temporary pool is not upgraded");
    }

    #[test]
    fn node_images_plan_the_same_way_keyed_by_the_newest_image() {
        let latest = "AKSUbuntu-2204gen2containerd-202412.01.0";
        let on_latest = |p: &NodePool| p.node_image_version == latest;
        let mut patched = pool("b", "1.30.5", "User");
        patched.node_image_version = latest.into();
        let c = Cluster {
            pools: vec![pool("a", "1.30.5", "System"), patched],
            placements: vec![placed("redis", "redis", &["a"; 6])],
            strategy: Strategy::Upgrade,
            key: "node-image".into(),
            is_current: &on_latest,
            overrides: ("50%".into(), String::new(), Some(5)),
            added_count: 0,
        };
        let plan = c.plan_pool("a").unwrap();
        assert_eq!(plan.destination, Some(Destination::Existing("b".into())), "a pool already on the newest image takes the databases");
        assert_eq!(plan.settings.as_ref().unwrap().describe(), "maxSurge 50%, drainTimeout 5m");
        assert_eq!(c.plan_pool("b").unwrap().skip.as_deref(), Some("already current"));
        let lines = plan.lines("upgrade the node image");
        assert_eq!(lines.last().unwrap(), "pool a: upgrade the node image");
    }

    #[test]
    fn replacing_every_pool_in_turn() {
        let c = cluster(
            vec![pool("a", "1.29.9", "System"), pool("b", "1.29.9", "User")],
            vec![placed("pg", "postgres", &["a", "b", "b"])],
            Strategy::Replace,
            &at_target,
        );
        let plans = c.plan_all(&["a".into(), "b".into()]).unwrap();
        let ra = names::derived_pool_name(Derived::Replacement, "a", "1.30.5");
        let rb = names::derived_pool_name(Derived::Replacement, "b", "1.30.5");
        assert_eq!(plans[0].moves.len(), 1);
        assert_eq!(plans[0].moves[0].to, ra);
        assert!(plans[0].delete_pool && plans[1].delete_pool);
        assert!(plans[1].moves.is_empty(), "pg moved wholly to {ra} with pool a: nothing of it is left on b");
        assert_eq!(plans[1].destination, Some(Destination::Replacement { name: rb, exists: false, count: 3 }));
    }

    #[test]
    fn an_unknown_engine_stops_the_plan() {
        let c = cluster(vec![pool("a", "1.29.9", "User")], vec![placed("es", "elasticsearch", &["a"])], Strategy::Upgrade, &at_target);
        assert!(c.plan_pool("a").unwrap_err().contains("no pattern slot"));
        assert!(Strategy::parse("blue-green").unwrap_err().contains("not `upgrade` or `replace`"));
    }
}
