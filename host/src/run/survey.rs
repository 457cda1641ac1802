//! A database cluster after a run, as its members themselves tell it: where
//! each runs, which answers as the primary, how many standbys stream.

use std::sync::Arc;

use runner_lab::client::LabClient;
use runner_lab::ops::{self, PodRow};
use serde::Serialize;
use serde_json::{Value, json};

use crate::backends::Backends;
use crate::target::Target;

/// The database clusters a lab runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cluster {
    /// The 3-member PostgreSQL StatefulSet.
    Postgres,
    /// The 6-member Redis cluster (3 masters, 3 replicas).
    Redis,
    /// The 3-member MongoDB replica set.
    Mongo,
}

impl Cluster {
    /// Its Pods' names start with this.
    fn pod_prefix(self) -> &'static str {
        match self {
            Cluster::Postgres => "postgres-cluster-",
            Cluster::Redis => "redis-cluster-",
            Cluster::Mongo => "mongo-",
        }
    }
}

/// The cluster after the run, as the databases themselves tell it.
#[derive(Serialize, Default)]
pub struct FinalCluster {
    /// Every member runs on a Node of the upgraded pool.
    pub all_on_upgraded_pool: bool,
    /// PostgreSQL: members that answer `pg_is_in_recovery() = false`; Redis: masters (ROLE); MongoDB: `isWritablePrimary` (hello).
    pub primaries: Vec<String>,
    /// PostgreSQL: standbys streaming from the primary (pg_stat_replication); Redis: replicas whose link is `connected`;
    /// MongoDB: members SECONDARY with health 1 in the primary's replSetGetStatus.
    pub streaming_standbys: u64,
    /// PostgreSQL: the members streaming from the primary, by application_name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub streaming: Vec<String>,
    /// Pods: name, node, pool, role.
    pub members: Vec<Value>,
    /// Set when the check itself could not be made.
    pub error: Option<String>,
}

impl FinalCluster {
    /// Whether the survey worked and found `primaries` primaries and `standbys` streaming standbys, all on the upgraded pool.
    pub fn healthy(&self, expected: (usize, usize)) -> bool {
        self.all_on_upgraded_pool && self.serves(expected)
    }

    /// Whether the survey worked and found `primaries` primaries and `standbys` streaming standbys, on whatever Nodes.
    pub fn serves(&self, (primaries, standbys): (usize, usize)) -> bool {
        self.error.is_none() && self.primaries.len() == primaries && self.streaming_standbys as usize == standbys && self.members.len() == primaries + standbys
    }

    /// Record `row` with the role it answered (`unreachable`, and the error
    /// kept, when it did not); a member answering `primary_role` is a primary.
    fn member(&mut self, row: &PodRow, answer: Result<&'static str, String>, primary_role: &str) {
        let role = answer.unwrap_or_else(|e| {
            self.error = Some(format!("{}: {e}", row.name));
            "unreachable"
        });
        if role == primary_role {
            self.primaries.push(row.name.clone());
        }
        self.members.push(json!({"name": row.name, "node": row.node, "pool": row.pool, "role": role}));
    }
}

/// Ask every member of `cluster` in the lab behind `client` what it is now.
pub async fn survey(cluster: Cluster, target: &Target, client: &LabClient) -> FinalCluster {
    let found = async {
        let rows = ops::status(client).await.map_err(|e| e.to_string())?;
        let kube = crate::backends::kube::connect(target).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((
            rows.into_iter().filter(|r| r.name.starts_with(cluster.pod_prefix())).collect::<Vec<_>>(),
            Backends::with_kube(Arc::new(kube), target),
        ))
    };
    let (members, backends) = match found.await {
        Ok(found) => found,
        Err(e) => return FinalCluster { error: Some(e), ..FinalCluster::default() },
    };
    let all_on_upgraded_pool = !members.is_empty() && members.iter().all(|r| r.pool == "upgraded-pool");
    let mut result = FinalCluster { all_on_upgraded_pool, ..FinalCluster::default() };
    match cluster {
        Cluster::Postgres => ask_postgres(&mut result, &members, &backends).await,
        Cluster::Redis => ask_redis(&mut result, &members, &backends).await,
        Cluster::Mongo => ask_mongo(&mut result, &members, &backends).await,
    }
    result
}

/// Each member's `pg_is_in_recovery()`, and the primary's streaming standbys.
async fn ask_postgres(result: &mut FinalCluster, members: &[PodRow], backends: &Backends) {
    let postgres = &backends.postgres;
    for row in members {
        let answer = postgres.query(&row.name, "SELECT pg_is_in_recovery() AS standby", &[]).await;
        result.member(row, answer.map(|json| if json.contains("\"standby\":false") { "primary" } else { "standby" }).map_err(|e| e.to_string()), "primary");
    }
    if let [primary] = result.primaries.as_slice() {
        match postgres.query(primary, "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' ORDER BY 1", &[]).await {
            Ok(json) => {
                let rows = serde_json::from_str::<Value>(&json).ok().and_then(|v| v.as_array().cloned()).unwrap_or_default();
                result.streaming = rows.iter().filter_map(|r| r["application_name"].as_str().map(str::to_string)).collect();
                result.streaming_standbys = rows.len() as u64;
            }
            Err(e) => result.error = Some(format!("{primary}: {e}")),
        }
    }
}

/// Each member's ROLE (a replica counts once its link is `connected`), and
/// CLUSTER INFO for every slot being served.
async fn ask_redis(result: &mut FinalCluster, members: &[PodRow], backends: &Backends) {
    let redis = &backends.redis;
    for row in members {
        let answer = redis.command(&row.name, &["ROLE".to_string()]).await.map(|json| serde_json::from_str::<Value>(&json).unwrap_or_default());
        if answer.as_ref().is_ok_and(|role| role[0] != "master" && role[3] == "connected") {
            result.streaming_standbys += 1;
        }
        result.member(row, answer.map(|role| if role[0] == "master" { "master" } else { "replica" }).map_err(|e| e.to_string()), "master");
    }
    if let Some(first) = members.first() {
        match redis.command(&first.name, &["CLUSTER".to_string(), "INFO".to_string()]).await {
            Ok(info) if info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384") => {}
            Ok(info) => result.error = Some(format!("CLUSTER INFO on {}: not every slot served: {}", first.name, info.replace("\\r\\n", " "))),
            Err(e) => result.error = Some(format!("{}: {e}", first.name)),
        }
    }
}

/// Each member's `hello`, and the primary's `replSetGetStatus` for the secondaries' health.
async fn ask_mongo(result: &mut FinalCluster, members: &[PodRow], backends: &Backends) {
    let mongo = &backends.mongo;
    for row in members {
        let answer = mongo.run_command(&row.name, "admin", r#"{"hello": 1}"#).await.map(|json| serde_json::from_str::<Value>(&json).unwrap_or_default());
        let role = answer.map(|hello| match (hello["isWritablePrimary"] == true, hello["secondary"] == true) {
            (true, _) => "primary",
            (_, true) => "secondary",
            _ => "other",
        });
        result.member(row, role.map_err(|e| e.to_string()), "primary");
    }
    if let [primary] = result.primaries.as_slice() {
        match mongo.run_command(primary, "admin", r#"{"replSetGetStatus": 1}"#).await {
            Ok(json) => {
                let status: Value = serde_json::from_str(&json).unwrap_or_default();
                let secondaries = status["members"]
                    .as_array()
                    .map(|m| m.iter().filter(|m| m["stateStr"] == "SECONDARY" && m["health"].as_f64() == Some(1.0)).count())
                    .unwrap_or(0);
                result.streaming_standbys = secondaries as u64;
            }
            Err(e) => result.error = Some(format!("{primary}: {e}")),
        }
    }
}
