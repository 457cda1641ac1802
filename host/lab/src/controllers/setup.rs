//! One-time setup of a database StatefulSet once all its members first run:
//! a Redis cluster's formation, a MongoDB replica set's initiation. Done
//! once per StatefulSet and recorded on it as an annotation (so `runner lab
//! up`, and anyone, can see it through the API); members keep what it made
//! in their volumes, so a recreated Pod rejoins on its own.

use std::future::Future;
use std::time::Duration;

use runner_lab_runtime::MemberSpec;
use serde_json::Value;
use tokio::sync::watch;

use super::kubelet::Kubelet;
use super::reconciler::{self, Kind, Reconciler, Related};
use super::statefulset::ordinal;
use super::{name, namespace, pod_ready, terminating};
use crate::apiserver::Store;

/// Which StatefulSets a setup applies to and how it is recorded.
#[derive(Clone, Copy)]
pub struct SetUp {
    /// What it does, for logs (`forming the Redis cluster`).
    pub what: &'static str,
    /// The image prefix of the StatefulSets it applies to (`redis:`).
    pub image: &'static str,
    /// The annotation that records it done.
    pub annotation: &'static str,
    /// The annotation's value once done (`formed`).
    pub done: &'static str,
    /// Fewer replicas than this and nothing is set up.
    pub min_replicas: usize,
    /// How long one attempt may take.
    pub timeout: Duration,
}

/// A Redis cluster over every member (`redis-cli --cluster create`).
pub const REDIS_CLUSTER: SetUp = SetUp {
    what: "forming the Redis cluster",
    image: "redis:",
    annotation: "lab.runner.dev/redis-cluster",
    done: "formed",
    min_replicas: 3,
    timeout: Duration::from_secs(120),
};

/// A MongoDB replica set of every member, with its `root` user.
pub const MONGO_REPLICA_SET: SetUp = SetUp {
    what: "initiating the MongoDB replica set",
    image: "mongo:",
    annotation: "lab.runner.dev/mongo-replset",
    done: "initiated",
    min_replicas: 1,
    timeout: Duration::from_secs(300),
};

impl SetUp {
    /// Whether `set` runs this setup's image.
    pub fn applies(&self, set: &Value) -> bool {
        set["spec"]["template"]["spec"]["containers"][0]["image"].as_str().is_some_and(|i| i.starts_with(self.image))
    }

    /// Whether `set` needs this setup and has not had it yet.
    pub fn pending(&self, set: &Value) -> bool {
        self.applies(set) && set["metadata"]["annotations"][self.annotation] != self.done
    }

    /// Run `action` over the members of each pending StatefulSet once they
    /// all run and are Ready, until `stopped`; a failed attempt is logged
    /// and tried again (see [`reconciler`]).
    pub async fn run<F, Fut>(self, store: Store, kubelet: Kubelet, stopped: watch::Receiver<bool>, action: F)
    where
        F: Fn(Vec<MemberSpec>) -> Fut + Send,
        Fut: Future<Output = Result<(), String>> + Send,
    {
        reconciler::run(SetUpController { setup: self, kubelet, action }, store, stopped).await;
    }

    /// The running members of `set` in ordinal order, once exactly its
    /// `spec.replicas` Pods run and are Ready.
    fn members(&self, store: &Store, kubelet: &Kubelet, set: &Value) -> Option<Vec<MemberSpec>> {
        let (ns, set_name) = (namespace(set), name(set));
        let replicas = set["spec"]["replicas"].as_u64().unwrap_or(0) as usize;
        let pods = store.list("v1", "Pod", Some(ns), None).ok()?;
        let mut pods: Vec<&Value> = pods.iter().filter(|p| ordinal(set_name, name(p)).is_some() && !terminating(p)).collect();
        if replicas == 0 || replicas < self.min_replicas || pods.len() != replicas || !pods.iter().all(|p| pod_ready(p)) {
            return None;
        }
        pods.sort_by_key(|p| ordinal(set_name, name(p)));
        let running = kubelet.members.lock().unwrap_or_else(|p| p.into_inner());
        let members: Vec<MemberSpec> = pods.iter().filter_map(|p| running.get(&format!("{ns}/{}", name(p))).cloned()).collect();
        (members.len() == replicas).then_some(members)
    }

    async fn attempt(&self, store: &Store, set: &Value, action: impl Future<Output = Result<(), String>>) -> anyhow::Result<()> {
        let (ns, set_name) = (namespace(set), name(set));
        tracing::info!("{ns}/{set_name}: {}", self.what);
        match tokio::time::timeout(self.timeout, action).await {
            Ok(Ok(())) => {
                let patch = serde_json::json!({"metadata": {"annotations": {self.annotation: self.done}}}).to_string();
                store
                    .patch("apps/v1", "StatefulSet", Some(ns), set_name, crate::apiserver::PatchType::Merge, patch.as_bytes())
                    .map_err(|e| anyhow::anyhow!("recording `{}`: {e}", self.done))?;
                tracing::info!("{ns}/{set_name}: {}", self.done);
                Ok(())
            }
            Ok(Err(e)) => Err(anyhow::anyhow!("{}: {e}", self.what)),
            Err(_) => Err(anyhow::anyhow!("{} timed out after {} s", self.what, self.timeout.as_secs())),
        }
    }
}

/// A setup as a controller of StatefulSets.
struct SetUpController<F> {
    setup: SetUp,
    kubelet: Kubelet,
    action: F,
}

impl<F, Fut> Reconciler for SetUpController<F>
where
    F: Fn(Vec<MemberSpec>) -> Fut + Send,
    Fut: Future<Output = Result<(), String>> + Send,
{
    const KIND: Kind = ("apps/v1", "StatefulSet");
    /// The last member turning Ready is what lets a setup start.
    const RELATED: &'static [(Kind, Related)] = &[(("v1", "Pod"), Related::Owner)];

    fn name(&self) -> &'static str {
        self.setup.what
    }

    async fn reconcile(&mut self, store: &Store, set: &Value) -> anyhow::Result<()> {
        if !self.setup.pending(set) {
            return Ok(());
        }
        match self.setup.members(store, &self.kubelet, set) {
            Some(members) => self.setup.attempt(store, set, (self.action)(members)).await,
            None => Ok(()),
        }
    }
}
