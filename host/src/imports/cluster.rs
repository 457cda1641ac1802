//! `cluster-read` and `cluster-write`: the control plane and node pools.
//! Capability `cluster:read:<scope>` for every read, `cluster:<function>:<scope>`
//! for each mutation; the scope is the pool's name, or the cluster's name
//! for calls on the control plane and the cluster as a whole (`cluster`
//! when the run reaches no cluster API, as under `runner test`).
//!
//! A dry run answers a mutation with what the call asked for, as if it had
//! succeeded: the pool at the new version, the operation `Succeeded`.
//! Sessions keep the answers in ARM's own shapes (an `AgentPool`, the
//! agent pool list, the operation status document; the control plane as
//! `{"managedCluster": ..., "upgradeProfile": ...}`), so canned cases are
//! written as ARM documents them.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Checked, Effect, HostState, RunContext};
use crate::backends::aks::arm;
use crate::domain::cluster as rules;
use crate::session::Answer;
use crate::wit::Error;
use crate::wit::pattern::runner::policy::cluster_read::{
    self, ControlPlaneInfo as ControlPlane, NodePoolInfo as NodePool, OperationInfo as Operation, PoolUpgradeProfileInfo as PoolUpgradeProfile, UpgradeSettings,
};
use crate::wit::pattern::runner::policy::cluster_write::{self, NewNodePool};

type Reply<T> = wasmtime::Result<Result<T, Error>>;

/// The scope of a call on one existing pool, once its name is checked.
fn pool_scope(pool: &str) -> Checked<'_> {
    rules::existing_pool_name(pool)?;
    Ok(pool)
}

/// The live line of a long-running operation, as waits show it.
fn progress_of(run: &Arc<RunContext>, component: &str, what: String) -> impl Fn(&str) + Send + Sync + use<> {
    let run = run.clone();
    let what = format!("[{component}] {what}");
    move |observed: &str| run.progress.waiting(&what, observed)
}

/// What a dry run answers for a pool it did not change.
fn planned_pool(name: &str, version: &str) -> NodePool {
    NodePool {
        name: name.to_string(),
        mode: String::new(),
        orchestrator_version: version.to_string(),
        current_orchestrator_version: version.to_string(),
        node_image_version: String::new(),
        count: 0,
        provisioning_state: "Succeeded".into(),
        upgrade_settings: rules::UpgradeSettings::default().into(),
    }
}

fn settings_args(s: &UpgradeSettings) -> Value {
    json!({
        "maxSurge": s.max_surge,
        "maxUnavailable": s.max_unavailable,
        "drainTimeoutInMinutes": s.drain_timeout_minutes,
        "nodeSoakDurationInMinutes": s.node_soak_minutes,
        "undrainableNodeBehavior": s.undrainable_node_behavior,
    })
}

/// Check the settings a component passes (an empty text or `none` leaves one unset).
fn check_settings(s: &UpgradeSettings) -> Result<(), crate::domain::names::InvalidName> {
    let set = |t: &str| if t == "none" { String::new() } else { t.to_string() };
    rules::surge("max-surge", &set(&s.max_surge))?;
    rules::surge("max-unavailable", &set(&s.max_unavailable))?;
    rules::undrainable(&set(&s.undrainable_node_behavior))
}

impl cluster_read::Host for HostState {
    async fn control_plane(&mut self) -> Reply<ControlPlane> {
        let cluster = self.backends().cluster.clone();
        let name = cluster.name();
        self.guarded("cluster-read.control-plane", Ok(&name), || json!({}), Effect::Read, async { cluster.control_plane().await.map(Into::into) }).await
    }

    async fn node_pools(&mut self) -> Reply<Vec<NodePool>> {
        let cluster = self.backends().cluster.clone();
        let name = cluster.name();
        self.guarded("cluster-read.node-pools", Ok(&name), || json!({}), Effect::Read, async {
            cluster.node_pools().await.map(|pools| pools.into_iter().map(Into::into).collect())
        })
        .await
    }

    async fn node_pool(&mut self, name: String) -> Reply<NodePool> {
        let cluster = self.backends().cluster.clone();
        self.guarded("cluster-read.node-pool", pool_scope(&name), || json!({"pool": name}), Effect::Read, async {
            cluster.node_pool(&name).await.map(Into::into)
        })
        .await
    }

    async fn pool_upgrade_profile(&mut self, pool: String) -> Reply<PoolUpgradeProfile> {
        let cluster = self.backends().cluster.clone();
        self.guarded("cluster-read.pool-upgrade-profile", pool_scope(&pool), || json!({"pool": pool}), Effect::Read, async {
            cluster.pool_upgrade_profile(&pool).await.map(Into::into)
        })
        .await
    }

    async fn operation(&mut self, id: String) -> Reply<Operation> {
        let cluster = self.backends().cluster.clone();
        let name = cluster.name();
        let scope = rules::operation_id(&id).map(|()| name.as_str());
        self.guarded("cluster-read.operation", scope, || json!({"id": id}), Effect::Read, async { cluster.operation(&id).await.map(Into::into) }).await
    }
}

impl cluster_write::Host for HostState {
    async fn upgrade_control_plane(&mut self, version: String, timeout_ms: u64) -> Reply<Operation> {
        let cluster = self.backends().cluster.clone();
        let name = cluster.name();
        let scope = rules::version(&version).map(|()| name.as_str());
        let args = || json!({"version": version, "timeoutMs": timeout_ms});
        let planned = Operation {
            id: "dry-run".into(),
            status: "Succeeded".into(),
            start_time: String::new(),
            end_time: String::new(),
            error_code: String::new(),
            error_message: String::new(),
        };
        let progress = progress_of(&self.run, &self.component, format!("control plane to {version}"));
        let run = self.run.clone();
        let answer = self
            .guarded("cluster-write.upgrade-control-plane", scope, args, Effect::Mutate { dry_run_answer: planned }, async {
                cluster.upgrade_control_plane(&version, timeout_ms, &progress).await.map(Into::into)
            })
            .await;
        run.progress.done();
        answer
    }

    async fn add_node_pool(&mut self, pool: NewNodePool, timeout_ms: u64) -> Reply<NodePool> {
        let cluster = self.backends().cluster.clone();
        let checked = (|| {
            rules::pool_name(&pool.name)?;
            rules::mode(&pool.mode)?;
            if !pool.orchestrator_version.is_empty() {
                rules::version(&pool.orchestrator_version)?;
            }
            rules::vm_size(&pool.vm_size)?;
            check_settings(&pool.upgrade_settings)?;
            rules::node_labels(&pool.node_labels)
        })();
        let (scope, labels) = match checked {
            Ok(labels) => (Ok(pool.name.as_str()), labels),
            Err(e) => (Err(e), Vec::new()),
        };
        let args = || {
            json!({
                "pool": pool.name, "mode": pool.mode, "orchestratorVersion": pool.orchestrator_version, "count": pool.count,
                "vmSize": pool.vm_size, "nodeLabels": pool.node_labels, "upgradeSettings": settings_args(&pool.upgrade_settings), "timeoutMs": timeout_ms,
            })
        };
        let mut planned = planned_pool(&pool.name, &pool.orchestrator_version);
        planned.mode = pool.mode.clone();
        planned.count = pool.count;
        planned.upgrade_settings = pool.upgrade_settings.clone();
        let new = crate::wit::new_pool(pool.clone(), labels);
        let progress = progress_of(&self.run, &self.component, format!("add pool {}", new.name));
        let run = self.run.clone();
        let answer = self
            .guarded("cluster-write.add-node-pool", scope, args, Effect::Mutate { dry_run_answer: planned }, async {
                cluster.add_node_pool(&new, timeout_ms, &progress).await.map(Into::into)
            })
            .await;
        run.progress.done();
        answer
    }

    async fn upgrade_node_pool(&mut self, pool: String, version: String, timeout_ms: u64) -> Reply<NodePool> {
        let cluster = self.backends().cluster.clone();
        let scope = rules::version(&version).and_then(|()| pool_scope(&pool));
        let args = || json!({"pool": pool, "version": version, "timeoutMs": timeout_ms});
        let planned = planned_pool(&pool, &version);
        let progress = progress_of(&self.run, &self.component, format!("pool {pool} to {version}"));
        let run = self.run.clone();
        let answer = self
            .guarded("cluster-write.upgrade-node-pool", scope, args, Effect::Mutate { dry_run_answer: planned }, async {
                cluster.upgrade_node_pool(&pool, &version, timeout_ms, &progress).await.map(Into::into)
            })
            .await;
        run.progress.done();
        answer
    }

    async fn upgrade_node_image(&mut self, pool: String, timeout_ms: u64) -> Reply<NodePool> {
        let cluster = self.backends().cluster.clone();
        let args = || json!({"pool": pool, "timeoutMs": timeout_ms});
        let planned = planned_pool(&pool, "");
        let progress = progress_of(&self.run, &self.component, format!("node image of pool {pool}"));
        let run = self.run.clone();
        let answer = self
            .guarded("cluster-write.upgrade-node-image", pool_scope(&pool), args, Effect::Mutate { dry_run_answer: planned }, async {
                cluster.upgrade_node_image(&pool, timeout_ms, &progress).await.map(Into::into)
            })
            .await;
        run.progress.done();
        answer
    }

    async fn set_upgrade_settings(&mut self, pool: String, settings: UpgradeSettings, timeout_ms: u64) -> Reply<NodePool> {
        let cluster = self.backends().cluster.clone();
        let scope = check_settings(&settings).and_then(|()| pool_scope(&pool));
        let args = || json!({"pool": pool, "upgradeSettings": settings_args(&settings), "timeoutMs": timeout_ms});
        let mut planned = planned_pool(&pool, "");
        planned.upgrade_settings = settings.clone();
        let host_settings = rules::UpgradeSettings::from(settings.clone());
        let progress = progress_of(&self.run, &self.component, format!("upgrade settings of pool {pool}"));
        let run = self.run.clone();
        let answer = self
            .guarded("cluster-write.set-upgrade-settings", scope, args, Effect::Mutate { dry_run_answer: planned }, async {
                cluster.set_upgrade_settings(&pool, &host_settings, timeout_ms, &progress).await.map(Into::into)
            })
            .await;
        run.progress.done();
        answer
    }

    async fn delete_node_pool(&mut self, pool: String, timeout_ms: u64) -> Reply<()> {
        let cluster = self.backends().cluster.clone();
        let args = || json!({"pool": pool, "timeoutMs": timeout_ms});
        let progress = progress_of(&self.run, &self.component, format!("delete pool {pool}"));
        let run = self.run.clone();
        let answer = self
            .guarded("cluster-write.delete-node-pool", pool_scope(&pool), args, Effect::Mutate { dry_run_answer: () }, async {
                cluster.delete_node_pool(&pool, timeout_ms, &progress).await
            })
            .await;
        run.progress.done();
        answer
    }
}

/// Sessions keep a control plane as `{"managedCluster": ..., "upgradeProfile": ...}`.
impl Answer for ControlPlane {
    fn to_json(&self) -> Value {
        arm::control_plane_to_arm(&self.clone().into())
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        arm::control_plane_from_session(value).map(Into::into)
    }
}

/// Sessions keep a pool as ARM's `AgentPool`.
impl Answer for NodePool {
    fn to_json(&self) -> Value {
        arm::pool_to_arm(&self.clone().into())
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        arm::pool_from_arm(value).map(Into::into)
    }
}

/// Sessions keep the pools as ARM's list (`{"value": [...]}`).
impl Answer for Vec<NodePool> {
    fn to_json(&self) -> Value {
        let pools: Vec<rules::NodePool> = self.iter().cloned().map(Into::into).collect();
        arm::pools_to_arm(&pools)
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        arm::pools_from_arm(value).map(|pools| pools.into_iter().map(Into::into).collect())
    }
}

/// Sessions keep a pool's upgrade profile as ARM's `AgentPoolUpgradeProfile`.
impl Answer for PoolUpgradeProfile {
    fn to_json(&self) -> Value {
        arm::pool_profile_to_arm(&self.clone().into())
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        arm::pool_profile_from_arm(value).map(Into::into)
    }
}

/// Sessions keep an operation as ARM's operation status document.
impl Answer for Operation {
    fn to_json(&self) -> Value {
        arm::operation_to_arm(&self.clone().into())
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        arm::operation_from_arm(value).map(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_answers_survive_a_session() {
        let pool = NodePool {
            name: "nodepool1".into(),
            mode: "User".into(),
            orchestrator_version: "1.30.5".into(),
            current_orchestrator_version: "1.29.9".into(),
            node_image_version: "AKSUbuntu-2204gen2containerd-202410.15.0".into(),
            count: 3,
            provisioning_state: "Upgrading".into(),
            upgrade_settings: UpgradeSettings {
                max_surge: "1".into(),
                max_unavailable: String::new(),
                drain_timeout_minutes: Some(5),
                node_soak_minutes: None,
                undrainable_node_behavior: "Schedule".into(),
            },
        };
        let json = pool.to_json();
        assert_eq!(json["properties"]["upgradeSettings"]["maxSurge"], "1", "ARM's shape: {json}");
        assert_eq!(format!("{:?}", NodePool::from_json(&json).unwrap()), format!("{pool:?}"));
        let pools = vec![pool.clone(), NodePool { name: "pool2".into(), ..pool }];
        assert_eq!(format!("{:?}", <Vec<NodePool>>::from_json(&pools.to_json()).unwrap()), format!("{pools:?}"));
        let op = Operation {
            id: "op-1".into(),
            status: "Failed".into(),
            start_time: "2026-01-01T00:00:00Z".into(),
            end_time: "2026-01-01T00:05:00Z".into(),
            error_code: "UpgradeFailed".into(),
            error_message: "drain".into(),
        };
        assert_eq!(format!("{:?}", Operation::from_json(&op.to_json()).unwrap()), format!("{op:?}"));
        let plane = ControlPlane {
            kubernetes_version: "1.30.5".into(),
            current_kubernetes_version: "1.29.9".into(),
            provisioning_state: "Upgrading".into(),
            upgrades: vec!["1.30.5".into()],
        };
        assert_eq!(format!("{:?}", ControlPlane::from_json(&plane.to_json()).unwrap()), format!("{plane:?}"));
        assert!(NodePool::from_json(&json!({"name": 3})).is_err());
    }
}
