//! The kubelet: runs each Pod bound to a lab Node as a real database
//! server process, and reports what that process really does.
//!
//! The image chooses the workload (`postgres:*`, `redis:*`, `mongo:*`, or the
//! lab's own web application `runner-lab/webapp:*`, see [`super::webapp`],
//! served from inside the lab process). The Pod's volume
//! is a directory that outlives the Pod, so a Pod recreated under the same
//! name starts from the same data. Phase and the Ready condition follow the
//! process: Ready means it accepts connections. Deleting a Pod stops its
//! process (SIGTERM, then SIGKILL after the grace period) before the Pod
//! object goes away.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runner_lab_runtime::{self as runtime, Bootstrap, MemberSpec, Workload};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::node_lifecycle;
use super::reconciler::{self, Kind, Reconciler, key};
use super::scheduler::set_condition;
use super::statefulset::ordinal;
use super::webapp;
use super::{ignore_not_found, name, namespace, now, terminating};
use crate::apiserver::Store;
use crate::net::{Addresses, Range};

/// How often a running Pod's process and readiness are checked.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// The members the kubelet runs, by `namespace/name`, for exec.
pub type Members = Arc<Mutex<BTreeMap<String, MemberSpec>>>;

struct Running {
    uid: String,
    stop: watch::Sender<Option<Duration>>,
    task: JoinHandle<()>,
}

/// Where the kubelet keeps Pod data.
#[derive(Clone)]
pub struct Kubelet {
    /// The API the Pods come from and their status goes to.
    pub store: Store,
    /// Gives each Pod the same loopback address whenever it runs.
    pub addresses: Addresses,
    /// Volumes live in `<dir>/volumes`, scratch in `<dir>/run`.
    pub dir: PathBuf,
    /// What runs now, shared with exec and the setups.
    pub members: Members,
    /// How often it posts each Node's status (its heartbeat), see
    /// [`node_lifecycle::heartbeat_interval`].
    pub heartbeat: Duration,
}

impl Kubelet {
    /// Run Pods until `stopped`; then stop every process. The Pods stay, to
    /// be started again from their volumes when the lab comes back.
    pub async fn run(self, stopped: watch::Receiver<bool>) {
        let store = self.store.clone();
        let heartbeats = tokio::spawn(self.clone().post_node_status(stopped.clone()));
        reconciler::run(PodRunner { kubelet: self, running: BTreeMap::new() }, store, stopped).await;
        let _ = heartbeats.await;
    }

    /// Posts every Node's status each [`Kubelet::heartbeat`] until `stopped`:
    /// Ready (the lab's kubelet runs whatever is bound to the Node) and no
    /// pressure, with `lastHeartbeatTime` now. A Node annotated
    /// [`node_lifecycle::KUBELET_STOPPED`] is left alone, as if its kubelet
    /// had lost the API server.
    /// A Node that appears (a VM joining its pool) is posted at once, as a
    /// booted kubelet registers and reports Ready within moments, not a
    /// heartbeat later.
    async fn post_node_status(self, mut stopped: watch::Receiver<bool>) {
        let mut changes = self.store.subscribe();
        let mut next = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next {
                for node in self.store.list("v1", "Node", None, None).unwrap_or_default() {
                    if !node_lifecycle::kubelet_stopped(&node) {
                        self.post_one_node_status(node);
                    }
                }
                next = tokio::time::Instant::now() + self.heartbeat;
            }
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => return,
                _ = tokio::time::sleep_until(next) => {}
                change = changes.recv() => match change {
                    Ok(change) if change.event_type == crate::apiserver::EventType::Added && change.object["kind"] == "Node" => {
                        if let Some(node) = self.store.get("v1", "Node", None, name(&change.object))
                            && !node_lifecycle::kubelet_stopped(&node)
                        {
                            self.post_one_node_status(node);
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    fn post_one_node_status(&self, mut node: Value) {
        let stamp = now();
        let posted = [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "True", "KubeletReady", "lab kubelet is posting ready status"),
        ];
        let previous = node["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let mut conditions: Vec<Value> = previous.iter().filter(|c| !posted.iter().any(|(t, ..)| c["type"] == *t)).cloned().collect();
        for (condition_type, status, reason, message) in posted {
            let transition = match previous.iter().find(|c| c["type"] == condition_type) {
                Some(c) if c["status"] == status && !c["lastTransitionTime"].is_null() => c["lastTransitionTime"].clone(),
                _ => json!(stamp),
            };
            conditions.push(json!({
                "type": condition_type, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": stamp, "lastTransitionTime": transition,
            }));
        }
        node["status"]["conditions"] = Value::Array(conditions);
        if let Err(e) = self.store.update_status(node) {
            tracing::debug!("posting node status: {e}");
        }
    }

    /// The Ready condition the API server holds for this Pod (`None` once it is gone or replaced).
    fn reported_ready(&self, pod: &Value) -> Option<bool> {
        let current = self.store.get("v1", "Pod", Some(namespace(pod)), name(pod))?;
        (current["metadata"]["uid"] == pod["metadata"]["uid"]).then(|| super::pod_ready(&current))
    }

    /// Whether the kubelet of the Node `pod` is bound to has stopped posting status.
    fn silenced(&self, pod: &Value) -> bool {
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        self.store.get("v1", "Node", None, node).is_some_and(|n| node_lifecycle::kubelet_stopped(&n))
    }

    fn member_spec(&self, pod: &Value, workload: Workload) -> Result<MemberSpec, String> {
        let (ns, pod_name) = (namespace(pod), name(pod));
        let ip = self.addresses.of(Range::Pods, &format!("{ns}/{pod_name}")).ok_or("no free Pod address left in 127.0.1.0/24")?;
        let container = &pod["spec"]["containers"][0];
        let port = container["ports"][0]["containerPort"].as_u64().map_or(workload.default_port(), |p| p as u16);
        let password = self.password(ns, container)?;
        Ok(MemberSpec {
            name: pod_name.to_string(),
            workload,
            ip,
            port,
            volume: self.dir.join("volumes").join(ns).join(pod_name),
            run_dir: self.dir.join("run").join(ns).join(pod_name),
            password,
        })
    }

    /// The password from the container's `*_PASSWORD` env var, read from the
    /// Secret it references; it never appears in the Pod object.
    fn password(&self, ns: &str, container: &Value) -> Result<String, String> {
        let env = container["env"].as_array().cloned().unwrap_or_default();
        let Some(var) = env.iter().find(|e| e["name"].as_str().is_some_and(|n| n.ends_with("PASSWORD"))) else {
            return Err("the container has no *_PASSWORD env var referencing a Secret".into());
        };
        if let Some(value) = var["value"].as_str() {
            return Ok(value.to_string());
        }
        let reference = &var["valueFrom"]["secretKeyRef"];
        let (secret, key) = (reference["name"].as_str().unwrap_or_default(), reference["key"].as_str().unwrap_or_default());
        let object = self.store.get("v1", "Secret", Some(ns), secret).ok_or(format!("secret \"{secret}\" not found"))?;
        let encoded = object["data"][key].as_str().ok_or(format!("secret \"{secret}\" has no key \"{key}\""))?;
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|e| format!("secret \"{secret}\" key \"{key}\": {e}"))?;
        String::from_utf8(bytes).map_err(|_| format!("secret \"{secret}\" key \"{key}\" is not text"))
    }

    /// How an empty volume is first filled.
    async fn bootstrap(&self, pod: &Value, spec: &MemberSpec) -> Result<Bootstrap, String> {
        match spec.workload {
            Workload::Redis => return Ok(Bootstrap::Redis),
            Workload::Mongo => return Ok(Bootstrap::Mongo),
            Workload::Postgres => {}
        }
        if spec.volume.join("PG_VERSION").exists() {
            return Ok(Bootstrap::PostgresPrimary);
        }
        let peers = self.peers(pod);
        for peer in &peers {
            if runtime::pg_is_primary(peer).await.unwrap_or(false) {
                let slot = spec.name.replace('-', "_");
                return Ok(Bootstrap::PostgresStandby { primary: SocketAddr::from((peer.ip, peer.port)), slot });
            }
        }
        let any_data = std::fs::read_dir(spec.volume.parent().unwrap_or(Path::new("/"))).into_iter().flatten().flatten().any(|d| {
            let other = d.file_name().to_string_lossy().to_string();
            // Hidden siblings are the runtime's half-built bootstraps, not members.
            !other.starts_with('.') && other != spec.name && same_set(pod, &other) && d.path().join("PG_VERSION").exists()
        });
        if !any_data {
            return Ok(Bootstrap::PostgresPrimary);
        }
        Err("waiting for a primary to clone from".into())
    }

    /// The running members of the same StatefulSet.
    fn peers(&self, pod: &Value) -> Vec<MemberSpec> {
        let members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        members
            .iter()
            .filter(|(key, spec)| key.starts_with(&format!("{}/", namespace(pod))) && spec.name != name(pod) && same_set(pod, &spec.name))
            .map(|(_, s)| s.clone())
            .collect()
    }

    async fn run_pod(self, pod: Value, mut stop: watch::Receiver<Option<Duration>>) {
        let key = format!("{}/{}", namespace(&pod), name(&pod));
        let image = pod["spec"]["containers"][0]["image"].as_str().unwrap_or_default().to_string();
        if let Some(version) = webapp::version_of(&image) {
            return self.run_webapp(pod, version, stop).await;
        }
        let Some(workload) = Workload::from_image(&image) else {
            let message = format!("the lab runs only postgres:*, redis:*, mongo:* and {}:* images, not \"{image}\"", webapp::IMAGE);
            self.set_waiting(&pod, "ErrImagePull", &message, 0);
            let _ = stop.wait_for(Option::is_some).await;
            self.finish_deletion(&pod);
            return;
        };
        let spec = match self.member_spec(&pod, workload) {
            Ok(spec) => spec,
            Err(message) => {
                self.set_waiting(&pod, "CreateContainerConfigError", &message, 0);
                let _ = stop.wait_for(Option::is_some).await;
                self.finish_deletion(&pod);
                return;
            }
        };
        // After a crash of the lab, a server of this member may still run: stop it first.
        match runtime::kill_leftover(&spec, Duration::from_secs(10)).await {
            Ok(true) => tracing::info!("pod {key}: stopped a server left behind by an earlier lab"),
            Ok(false) => {}
            Err(e) => tracing::warn!("pod {key}: checking for a leftover server: {e}"),
        }
        let mut restarts = 0u32;
        loop {
            // Prepare the volume (clone a standby, initialise a primary), retrying until it works or the Pod goes.
            let prepared = match self.bootstrap(&pod, &spec).await {
                Ok(bootstrap) => runtime::prepare(&spec, &bootstrap).await.map_err(|e| e.to_string()),
                Err(waiting) => Err(waiting),
            };
            if let Err(message) = prepared {
                self.set_waiting(&pod, "ContainerCreating", &message, restarts);
                tokio::select! {
                    _ = stop.wait_for(Option::is_some) => { self.finish_deletion(&pod); return; }
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
            let mut process = match runtime::start(&spec) {
                Ok(process) => process,
                Err(e) => {
                    self.set_waiting(&pod, "CrashLoopBackOff", &e.to_string(), restarts);
                    tokio::select! {
                        _ = stop.wait_for(Option::is_some) => { self.finish_deletion(&pod); return; }
                        _ = tokio::time::sleep(Duration::from_secs(2)) => { restarts += 1; continue; }
                    }
                }
            };
            self.members.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), spec.clone());
            let started_at = now();
            let mut ready = None;
            let mut probes = 0u32;
            let exited = loop {
                tokio::select! {
                    _ = stop.changed() => {
                        let grace = stop.borrow().unwrap_or(Duration::ZERO);
                        if let Err(e) = process.stop(grace).await {
                            tracing::warn!("pod {key}: stopping the {workload:?} process: {e}");
                        }
                        self.members.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                        self.finish_deletion(&pod);
                        return;
                    }
                    _ = tokio::time::sleep(PROBE_INTERVAL) => {
                        if let Some(status) = process.try_exited() {
                            break status;
                        }
                        if self.silenced(&pod) {
                            // Nothing reaches the API server; once it does, post the status afresh.
                            ready = None;
                            continue;
                        }
                        let now_ready = runtime::is_ready(&spec).await;
                        // The node lifecycle controller may have marked the Pod not Ready meanwhile (its Node went
                        // Unknown): the kubelet's report wins, as upstream's periodic status sync.
                        if ready != Some(now_ready) || self.reported_ready(&pod) != Some(now_ready) {
                            ready = Some(now_ready);
                            self.set_running(&pod, spec.ip, now_ready, &started_at, restarts);
                        }
                        // Roles change under a pattern's feet (promotion, failover): look again every other probe,
                        // so `kubectl get pods -L role` catches up within half a second.
                        if now_ready && probes.is_multiple_of(2) {
                            self.label_role(&pod, &spec).await;
                        }
                        probes = probes.wrapping_add(1);
                    }
                }
            };
            self.members.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            restarts += 1;
            tracing::warn!("pod {key}: the {workload:?} process exited ({exited}); restarting");
            self.set_waiting(&pod, "CrashLoopBackOff", &format!("process exited: {exited}"), restarts);
            tokio::select! {
                _ = stop.wait_for(Option::is_some) => { self.finish_deletion(&pod); return; }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Runs a `runner-lab/webapp` Pod: its HTTP server on the Pod's address,
    /// Ready while `/health` answers, stopped (in-flight requests answered
    /// within the grace period) when the Pod is deleted.
    async fn run_webapp(self, pod: Value, version: String, mut stop: watch::Receiver<Option<Duration>>) {
        let key = key(&pod);
        let container = &pod["spec"]["containers"][0];
        let port = container["ports"][0]["containerPort"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or(webapp::DEFAULT_PORT);
        let configured = self
            .addresses
            .of(Range::Pods, &key)
            .ok_or_else(|| "no free Pod address left in the lab's Pod range".to_string())
            .and_then(|ip| Ok((ip, webapp::Behaviour::from_container(container, name(&pod), &version)?)));
        let (ip, behaviour) = match configured {
            Ok(configured) => configured,
            Err(message) => {
                self.set_waiting(&pod, "CreateContainerConfigError", &message, 0);
                let _ = stop.wait_for(Option::is_some).await;
                self.finish_deletion(&pod);
                return;
            }
        };
        let address = SocketAddr::from((ip, port));
        let mut restarts = 0u32;
        loop {
            let listener = match tokio::net::TcpListener::bind(address).await {
                Ok(listener) => listener,
                Err(e) => {
                    self.set_waiting(&pod, "CrashLoopBackOff", &format!("listening on {address}: {e}"), restarts);
                    tokio::select! {
                        _ = stop.wait_for(Option::is_some) => { self.finish_deletion(&pod); return; }
                        _ = tokio::time::sleep(Duration::from_secs(2)) => { restarts += 1; continue; }
                    }
                }
            };
            let (shutdown, shutting_down) = tokio::sync::oneshot::channel::<()>();
            let mut server = tokio::spawn(webapp::serve(listener, behaviour.clone(), async {
                let _ = shutting_down.await;
            }));
            let started_at = now();
            let mut ready = None;
            let ended = loop {
                tokio::select! {
                    _ = stop.changed() => {
                        let grace = stop.borrow().unwrap_or(Duration::ZERO);
                        let _ = shutdown.send(());
                        if tokio::time::timeout(grace, &mut server).await.is_err() {
                            server.abort();
                        }
                        self.finish_deletion(&pod);
                        return;
                    }
                    ended = &mut server => break ended,
                    _ = tokio::time::sleep(PROBE_INTERVAL) => {
                        if self.silenced(&pod) {
                            ready = None;
                            continue;
                        }
                        let now_ready = webapp::healthy(address).await;
                        if ready != Some(now_ready) || self.reported_ready(&pod) != Some(now_ready) {
                            ready = Some(now_ready);
                            self.set_running(&pod, ip, now_ready, &started_at, restarts);
                        }
                    }
                }
            };
            restarts += 1;
            let why = match ended {
                Ok(Ok(())) => "the web server stopped".to_string(),
                Ok(Err(e)) => format!("the web server failed: {e}"),
                Err(e) => format!("the web server task ended: {e}"),
            };
            tracing::warn!("pod {key}: {why}; restarting");
            self.set_waiting(&pod, "CrashLoopBackOff", &why, restarts);
            tokio::select! {
                _ = stop.wait_for(Option::is_some) => { self.finish_deletion(&pod); return; }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Remove the Pod object once its process is gone, if it is being deleted.
    /// A ReplicaSet's Pod gives its address back: its name never comes
    /// again, and rollouts would otherwise use up the Pod range.
    fn finish_deletion(&self, pod: &Value) {
        let current = self.store.get("v1", "Pod", Some(namespace(pod)), name(pod));
        if current.as_ref().is_some_and(|c| c["metadata"]["uid"] == pod["metadata"]["uid"] && terminating(c)) {
            if let Err(e) = ignore_not_found(self.store.remove("v1", "Pod", Some(namespace(pod)), name(pod))) {
                tracing::warn!("pod {}: finishing its deletion: {e}", key(pod));
            }
            let owners = pod["metadata"]["ownerReferences"].as_array().into_iter().flatten();
            if owners.into_iter().any(|o| o["kind"] == "ReplicaSet" && o["controller"] == true) {
                self.addresses.release(Range::Pods, &key(pod));
            }
        }
    }

    /// Label the Pod `role=primary|replica` (PostgreSQL), `role=master|replica`
    /// (Redis) or `role=primary|secondary` (MongoDB), as the server itself
    /// reports it, for `kubectl get pods -L role`.
    async fn label_role(&self, pod: &Value, spec: &MemberSpec) {
        let role = match spec.workload {
            Workload::Postgres => match runtime::pg_is_primary(spec).await {
                Ok(true) => "primary",
                Ok(false) => "replica",
                Err(_) => return,
            },
            Workload::Redis => match runtime::redis_command(spec, &["ROLE"]).await {
                Ok(runtime::RedisReply::Array(items)) => match items.first() {
                    Some(runtime::RedisReply::Bulk(role)) if role.as_slice() == b"master" => "master",
                    Some(_) => "replica",
                    None => return,
                },
                _ => return,
            },
            Workload::Mongo => match runtime::mongo_role(spec).await {
                Some(role) => role,
                None => return,
            },
        };
        let Some(mut current) = self.store.get("v1", "Pod", Some(namespace(pod)), name(pod)) else { return };
        if current["metadata"]["uid"] != pod["metadata"]["uid"] || current["metadata"]["labels"]["role"] == role {
            return;
        }
        current["metadata"]["labels"]["role"] = json!(role);
        if let Err(e) = self.store.update(current) {
            tracing::debug!("pod {}: labelling role: {e}", name(pod));
        }
    }

    fn update_status(&self, pod: &Value, change: impl FnOnce(&mut Value)) {
        let Some(mut current) = self.store.get("v1", "Pod", Some(namespace(pod)), name(pod)) else { return };
        if current["metadata"]["uid"] != pod["metadata"]["uid"] || self.silenced(&current) {
            return;
        }
        let before = current["status"].clone();
        change(&mut current);
        if current["status"] != before
            && let Err(e) = self.store.update_status(current)
        {
            tracing::debug!("pod {}: status update: {e}", name(pod));
        }
    }

    fn set_waiting(&self, pod: &Value, reason: &str, message: &str, restarts: u32) {
        let container = pod["spec"]["containers"][0]["name"].clone();
        let image = pod["spec"]["containers"][0]["image"].clone();
        self.update_status(pod, |p| {
            p["status"]["phase"] = json!("Pending");
            p["status"]["containerStatuses"] = json!([{
                "name": container, "image": image, "ready": false, "started": false, "restartCount": restarts,
                "state": {"waiting": {"reason": reason, "message": message}},
            }]);
            set_condition(p, "Ready", "False", "ContainersNotReady", message);
            set_condition(p, "ContainersReady", "False", "ContainersNotReady", message);
        });
    }

    fn set_running(&self, pod: &Value, ip: Ipv4Addr, ready: bool, started_at: &str, restarts: u32) {
        let container = pod["spec"]["containers"][0]["name"].clone();
        let image = pod["spec"]["containers"][0]["image"].clone();
        let ip = ip.to_string();
        self.update_status(pod, |p| {
            p["status"]["phase"] = json!("Running");
            p["status"]["podIP"] = json!(ip);
            p["status"]["podIPs"] = json!([{"ip": ip}]);
            p["status"]["hostIP"] = json!("127.0.0.1");
            if p["status"]["startTime"].is_null() {
                p["status"]["startTime"] = json!(started_at);
            }
            p["status"]["containerStatuses"] = json!([{
                "name": container, "image": image, "ready": ready, "started": true, "restartCount": restarts,
                "state": {"running": {"startedAt": started_at}},
            }]);
            let status = if ready { "True" } else { "False" };
            set_condition(p, "Initialized", "True", "", "");
            set_condition(p, "ContainersReady", status, "", "");
            set_condition(p, "Ready", status, "", "");
        });
    }
}

/// The kubelet as a controller: a task per running Pod, by `namespace/name`.
struct PodRunner {
    kubelet: Kubelet,
    running: BTreeMap<String, Running>,
}

impl Reconciler for PodRunner {
    const KIND: Kind = ("v1", "Pod");

    fn name(&self) -> &'static str {
        "kubelet"
    }

    async fn reconcile(&mut self, store: &Store, pod: &Value) -> anyhow::Result<()> {
        let key = key(pod);
        if pod["spec"]["nodeName"].as_str().unwrap_or_default().is_empty() {
            self.forget(&key);
            return Ok(());
        }
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_string();
        if terminating(pod) {
            match self.running.get(&key) {
                Some(current) => {
                    let grace = pod["metadata"]["deletionGracePeriodSeconds"].as_u64().unwrap_or(30);
                    current.stop.send_replace(Some(Duration::from_secs(grace)));
                }
                // Nothing runs for it (the lab restarted meanwhile): finish the deletion.
                None => ignore_not_found(store.remove("v1", "Pod", Some(namespace(pod)), name(pod)))?,
            }
            return Ok(());
        }
        let restart = self.running.get(&key).is_some_and(|r| r.uid != uid || r.task.is_finished());
        if restart {
            self.forget(&key);
        }
        let kubelet = &self.kubelet;
        self.running.entry(key).or_insert_with(|| {
            let (stop, stopped) = watch::channel(None);
            let task = tokio::spawn(kubelet.clone().run_pod(pod.clone(), stopped));
            Running { uid, stop, task }
        });
        Ok(())
    }

    /// A Pod removed without a graceful stop (force deletion): kill at once.
    fn forget(&mut self, key: &str) {
        if let Some(pod) = self.running.remove(key) {
            pod.stop.send_replace(Some(Duration::ZERO));
        }
    }

    async fn shutdown(self) {
        for (key, pod) in self.running {
            pod.stop.send_replace(Some(Duration::from_secs(10)));
            if let Err(e) = pod.task.await {
                tracing::warn!("pod {key}: its task ended abnormally: {e}");
            }
        }
    }
}

/// Whether `other` names a member of the same StatefulSet as `pod`.
fn same_set(pod: &Value, other: &str) -> bool {
    let set = pod["metadata"]["ownerReferences"][0]["name"].as_str().unwrap_or_default();
    !set.is_empty() && ordinal(set, other).is_some()
}
