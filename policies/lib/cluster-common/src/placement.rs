//! Which database members run on which node pool: the target's databases
//! (`run-info.databases`), their StatefulSets' Pods and the Nodes' pool label.

use std::collections::BTreeSet;

use kube_common::{NodePools, Pod, StatefulSet};
use runner_sdk::prelude::*;
use runner_sdk::run_info;

/// A database cluster of the target, as `run-info.databases` names it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Database {
    /// Its logical name (`postgres-cluster`).
    pub name: String,
    /// `postgres`, `redis` or `mongo`.
    pub engine: String,
    /// Its namespace (empty: the target's default).
    pub namespace: String,
    /// The StatefulSet whose Pods are its members.
    pub statefulset: String,
}

impl Database {
    /// The StatefulSet, for the `kube-common` reads.
    pub fn set(&self) -> StatefulSet {
        StatefulSet::new(&self.namespace, &self.statefulset)
    }

    /// The pattern slot that moves its members (`postgres`, `redis`, `mongo`),
    /// or why there is none.
    pub fn slot(&self) -> Result<&'static str, String> {
        match self.engine.as_str() {
            "postgres" | "postgresql" => Ok("postgres"),
            "redis" => Ok("redis"),
            "mongo" | "mongodb" => Ok("mongo"),
            other => Err(format!("database {}: engine `{other}` has no pattern slot (postgres, redis, mongo)", self.name)),
        }
    }
}

/// The target's databases; with `only` non-empty, those named there: by
/// database name or StatefulSet (each must be one of the target's), or
/// given in full as `ENGINE:[NAMESPACE/]STATEFULSET` (`postgres:postgres-cluster`,
/// `redis:cache/redis-cluster`) for a database the target does not name.
pub fn databases(only: &[String]) -> Result<Vec<Database>, Error> {
    let all: Vec<Database> =
        run_info::databases().into_iter().map(|d| Database { name: d.name, engine: d.engine, namespace: d.namespace, statefulset: d.stateful_set }).collect();
    select(all, only).map_err(Error::invalid)
}

/// A database given in full, `ENGINE:[NAMESPACE/]STATEFULSET`; `None` when `text` is a plain name.
pub fn parse_spec(text: &str) -> Result<Option<Database>, String> {
    let Some((engine, rest)) = text.split_once(':') else { return Ok(None) };
    let (namespace, statefulset) = rest.split_once('/').unwrap_or(("", rest));
    if engine.is_empty() || statefulset.is_empty() {
        return Err(format!("database `{text}` is not ENGINE:[NAMESPACE/]STATEFULSET (postgres:postgres-cluster)"));
    }
    let database = Database { name: statefulset.into(), engine: engine.into(), namespace: namespace.into(), statefulset: statefulset.into() };
    database.slot()?;
    Ok(Some(database))
}

/// [`databases`] without the host: keep those `only` names (all when empty).
pub fn select(all: Vec<Database>, only: &[String]) -> Result<Vec<Database>, String> {
    if only.is_empty() {
        return Ok(all);
    }
    let mut out = Vec::new();
    for name in only {
        if let Some(database) = parse_spec(name)? {
            out.push(database);
            continue;
        }
        if !all.iter().any(|d| d.name == *name || d.statefulset == *name) {
            let known: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
            return Err(format!(
                "database `{name}` is not one of the target's ({}); give it in full as ENGINE:[NAMESPACE/]STATEFULSET",
                if known.is_empty() { "it names none".to_string() } else { known.join(", ") }
            ));
        }
        let named: Vec<Database> = all.iter().filter(|d| (*name == d.name || *name == d.statefulset) && !out.contains(d)).cloned().collect();
        out.extend(named);
    }
    Ok(out)
}

/// One member and where it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// The Pod's name.
    pub name: String,
    /// Its Node, if scheduled.
    pub node: Option<String>,
    /// Its Node's pool (empty when unscheduled or on a Node without the label).
    pub pool: String,
    /// Ready.
    pub ready: bool,
}

/// A database and where its members run.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// The database.
    pub database: Database,
    /// Its members by ordinal.
    pub members: Vec<Member>,
}

impl Placement {
    /// Place `pods` of `database` with the Nodes' pools.
    pub fn of(database: &Database, pods: &[Pod], nodes: &NodePools) -> Placement {
        let members = pods
            .iter()
            .map(|p| Member { name: p.name.clone(), node: p.node.clone(), pool: nodes.of(p).unwrap_or_default().to_string(), ready: p.ready })
            .collect();
        Placement { database: database.clone(), members }
    }

    /// Read the database's Pods (host calls) and place them.
    pub fn read(database: &Database, nodes: &NodePools) -> Result<Placement, Error> {
        let pods = match database.set().pods() {
            Ok(pods) => pods,
            // A database the target names that the cluster does not run (a
            // lab started without --mongo) has no member to move.
            Err(e) if e.code == ErrorCode::NotFound => {
                report::log(report::Level::Warn, &format!("database {}: {}; nothing of it to move", database.name, e.message));
                Vec::new()
            }
            Err(e) => return Err(Error::new(e.code, format!("database {}: {}", database.name, e.message))),
        };
        Ok(Placement::of(database, &pods, nodes))
    }

    /// The members that run on `pool`.
    pub fn on(&self, pool: &str) -> Vec<&str> {
        self.members.iter().filter(|m| m.pool == pool).map(|m| m.name.as_str()).collect()
    }

    /// Whether any member runs on `pool`.
    pub fn has_members_on(&self, pool: &str) -> bool {
        self.members.iter().any(|m| m.pool == pool)
    }

    /// Whether every member runs on `pool` (and there is at least one).
    pub fn all_on(&self, pool: &str) -> bool {
        !self.members.is_empty() && self.members.iter().all(|m| m.pool == pool)
    }

    /// The pools its members run on.
    pub fn pools(&self) -> BTreeSet<&str> {
        self.members.iter().map(|m| m.pool.as_str()).collect()
    }

    /// `postgres-cluster: postgres-cluster-0 on nodepool1, ...` for state descriptions.
    pub fn describe(&self) -> String {
        let where_: Vec<String> = self.members.iter().map(|m| format!("{} on {}", m.name, if m.pool.is_empty() { "no pool" } else { &m.pool })).collect();
        format!("{}: {}", self.database.name, if where_.is_empty() { "no members".to_string() } else { where_.join(", ") })
    }
}

/// Every database's placement (the Nodes listed once).
pub fn placements(databases: &[Database], pool_label: &str) -> Result<Vec<Placement>, Error> {
    let nodes = NodePools::list(pool_label)?;
    databases.iter().map(|d| Placement::read(d, &nodes)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn db(name: &str, engine: &str) -> Database {
        Database { name: name.into(), engine: engine.into(), namespace: String::new(), statefulset: name.into() }
    }

    #[test]
    fn placement_by_pool() {
        let nodes = vec![
            json!({"metadata": {"name": "aks-a-0", "labels": {"agentpool": "a"}}}),
            json!({"metadata": {"name": "aks-b-0", "labels": {"agentpool": "b"}}}),
        ];
        let nodes = NodePools::from_nodes(&nodes, "agentpool");
        let pod = |name: &str, node: Option<&str>| Pod { name: name.into(), node: node.map(str::to_string), ready: true, ..Default::default() };
        let p = Placement::of(&db("pg", "postgres"), &[pod("pg-0", Some("aks-a-0")), pod("pg-1", Some("aks-b-0")), pod("pg-2", None)], &nodes);
        assert_eq!(p.on("a"), vec!["pg-0"]);
        assert!(p.has_members_on("b") && !p.all_on("b") && !p.has_members_on("c"));
        assert_eq!(p.pools().into_iter().collect::<Vec<_>>(), vec!["", "a", "b"]);
        assert_eq!(p.describe(), "pg: pg-0 on a, pg-1 on b, pg-2 on no pool");
        let all = Placement::of(&db("pg", "postgres"), &[pod("pg-0", Some("aks-b-0"))], &nodes);
        assert!(all.all_on("b"));
        assert!(!Placement::of(&db("pg", "postgres"), &[], &nodes).all_on("b"));
    }

    #[test]
    fn slots_and_selection() {
        assert_eq!(db("pg", "postgres").slot(), Ok("postgres"));
        assert_eq!(db("r", "redis").slot(), Ok("redis"));
        assert_eq!(db("m", "mongo").slot(), Ok("mongo"));
        assert!(db("es", "elasticsearch").slot().unwrap_err().contains("engine `elasticsearch` has no pattern slot"));
        let all = vec![db("pg", "postgres"), db("r", "redis")];
        assert_eq!(select(all.clone(), &[]).unwrap().len(), 2);
        assert_eq!(select(all.clone(), &["r".into()]).unwrap(), vec![db("r", "redis")]);
        assert!(select(all, &["m".into()]).unwrap_err().contains("database `m` is not one of the target's (pg, r)"));
        assert!(select(vec![], &["m".into()]).unwrap_err().contains("it names none"));
        let given = select(vec![], &["redis:cache/redis-cluster".into(), "postgres:pg".into()]).unwrap();
        assert_eq!((given[0].engine.as_str(), given[0].namespace.as_str(), given[0].statefulset.as_str()), ("redis", "cache", "redis-cluster"));
        assert_eq!((given[1].namespace.as_str(), given[1].name.as_str()), ("", "pg"));
        assert!(select(vec![], &["postgres:".into()]).unwrap_err().contains("is not ENGINE:"));
        assert!(select(vec![], &["cassandra:c".into()]).unwrap_err().contains("no pattern slot"));
    }
}
