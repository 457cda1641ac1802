//! The stand-in for a backend that has not been built yet, or cannot be
//! reached at all (the lab is not running): every call fails with
//! `unavailable` and says why, so the run exits with the documented code 4.

use std::sync::Arc;

use super::*;

/// A backend that is not built yet.
pub struct Unavailable {
    message: String,
}

impl Unavailable {
    /// `what` (PostgreSQL) arrives with `issue`; `target` is what the run
    /// was pointed at.
    pub fn new(what: &str, issue: &str, target: Arc<str>) -> Self {
        Unavailable { message: format!("no {what} backend in this build of runner (it arrives with issue {issue}); target `{target}` was not contacted") }
    }

    /// A backend that cannot be reached, for the reason `message` gives
    /// (the lab is not running: how to start it).
    pub fn because(message: impl Into<String>) -> Self {
        Unavailable { message: message.into() }
    }

    fn fail<T>(&self) -> BackendResult<T> {
        Err(BackendError::new(ErrorCode::Unavailable, self.message.clone()))
    }
}

#[async_trait::async_trait]
impl Kube for Unavailable {
    async fn get(&self, _: &ObjectRef) -> BackendResult<String> {
        self.fail()
    }
    async fn list(&self, _: &ListOptions) -> BackendResult<String> {
        self.fail()
    }
    async fn wait_for(&self, _: &ObjectRef, _: &WaitFor, _: u64) -> BackendResult<String> {
        self.fail()
    }
    async fn patch(&self, _: &ObjectRef, _: PatchType, _: &str) -> BackendResult<String> {
        self.fail()
    }
    async fn delete(&self, _: &ObjectRef, _: Option<u32>) -> BackendResult<()> {
        self.fail()
    }
    async fn scale(&self, _: &ObjectRef, _: u32) -> BackendResult<()> {
        self.fail()
    }
    async fn evict(&self, _: Option<&str>, _: &str) -> BackendResult<()> {
        self.fail()
    }
    async fn set_unschedulable(&self, _: &str, _: bool) -> BackendResult<()> {
        self.fail()
    }
    async fn drain(&self, _: &str, _: &DrainOptions) -> BackendResult<String> {
        self.fail()
    }
    async fn exec(&self, _: Option<&str>, _: &str, _: Option<&str>, _: &[String]) -> BackendResult<ExecOutput> {
        self.fail()
    }
}

#[async_trait::async_trait]
impl Postgres for Unavailable {
    async fn query(&self, _: &str, _: &str, _: &[String]) -> BackendResult<String> {
        self.fail()
    }
    async fn execute(&self, _: &str, _: &str, _: &[String]) -> BackendResult<u64> {
        self.fail()
    }
}

#[async_trait::async_trait]
impl Redis for Unavailable {
    async fn command(&self, _: &str, _: &[String]) -> BackendResult<String> {
        self.fail()
    }
}

#[async_trait::async_trait]
impl Mongo for Unavailable {
    async fn run_command(&self, _: &str, _: &str, _: &str) -> BackendResult<String> {
        self.fail()
    }
}

#[async_trait::async_trait]
impl Cluster for Unavailable {
    async fn control_plane(&self) -> BackendResult<ControlPlane> {
        self.fail()
    }
    async fn node_pools(&self) -> BackendResult<Vec<NodePool>> {
        self.fail()
    }
    async fn node_pool(&self, _: &str) -> BackendResult<NodePool> {
        self.fail()
    }
    async fn pool_upgrade_profile(&self, _: &str) -> BackendResult<PoolUpgradeProfile> {
        self.fail()
    }
    async fn operation(&self, _: &str) -> BackendResult<Operation> {
        self.fail()
    }
    async fn upgrade_control_plane(&self, _: &str, _: u64, _: OperationProgress<'_>) -> BackendResult<Operation> {
        self.fail()
    }
    async fn add_node_pool(&self, _: &NewNodePool, _: u64, _: OperationProgress<'_>) -> BackendResult<NodePool> {
        self.fail()
    }
    async fn upgrade_node_pool(&self, _: &str, _: &str, _: u64, _: OperationProgress<'_>) -> BackendResult<NodePool> {
        self.fail()
    }
    async fn upgrade_node_image(&self, _: &str, _: u64, _: OperationProgress<'_>) -> BackendResult<NodePool> {
        self.fail()
    }
    async fn set_upgrade_settings(&self, _: &str, _: &UpgradeSettings, _: u64, _: OperationProgress<'_>) -> BackendResult<NodePool> {
        self.fail()
    }
    async fn delete_node_pool(&self, _: &str, _: u64, _: OperationProgress<'_>) -> BackendResult<()> {
        self.fail()
    }
}

#[async_trait::async_trait]
impl Traffic for Unavailable {
    async fn weights(&self, _: &str) -> BackendResult<traffic::SwitchState> {
        self.fail()
    }
    async fn set_weights(&self, _: &str, _: &[traffic::BackendWeight], _: &str) -> BackendResult<traffic::SwitchChange> {
        self.fail()
    }
    async fn observe(&self, _: &str, _: Option<&str>, _: &traffic::HttpRequests) -> BackendResult<traffic::HttpObservation> {
        self.fail()
    }
}

/// A switch whose route or profile cannot be reached (no cluster API for a
/// Traffic Manager profile, no Kubernetes API on a fleet run's own calls):
/// reads and writes answer `unavailable`; `observe` still works.
#[async_trait::async_trait]
impl traffic::SwitchServer for Unavailable {
    fn kind(&self) -> traffic::SwitchKind {
        traffic::SwitchKind::HttpRoute
    }
    async fn read(&self) -> BackendResult<traffic::SwitchState> {
        self.fail()
    }
    async fn write(&self, _: &traffic::SwitchState, _: &[traffic::BackendWeight]) -> BackendResult<traffic::SwitchState> {
        self.fail()
    }
}
