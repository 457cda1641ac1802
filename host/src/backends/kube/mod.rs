//! The Kubernetes backend: kube-rs on the dynamic API, for the lab and any
//! conformant cluster alike (there is no lab-only path).
//!
//! Any `apiVersion`/`kind` is resolved through discovery and handled as a
//! `DynamicObject`; objects cross as the JSON the API server sent. kube-rs'
//! own retrying is turned off: a 429 from the eviction API means a
//! PodDisruptionBudget said no, and drain owns that retry policy.

mod credentials;
mod discovery;
mod drain;
mod errors;
mod exec;
mod wait;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, EvictParams, ListParams, Patch, PatchParams};
use kube::core::TypeMeta;
use serde_json::{Value, json};

use super::{BackendError, BackendResult, DrainOptions, ErrorCode, ExecOutput, Kube, ListOptions, ObjectRef, PatchType, PortStream, WaitFor};

use crate::domain::names::{self, InvalidName};

pub use exec::OUTPUT_LIMIT as EXEC_OUTPUT_LIMIT;

/// The field manager of every write, so `managedFields` say who changed what.
pub const FIELD_MANAGER: &str = "runner";

/// How long an ordinary request (not a wait, drain or exec) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The Kubernetes API of one cluster.
pub struct KubeBackend {
    client: kube::Client,
    namespace: String,
    kinds: discovery::Kinds,
    /// Added to "cannot reach the API server" messages (for the lab: how to start it).
    hint: Option<String>,
}

impl KubeBackend {
    /// A backend for the cluster `config` describes. Nothing is sent until
    /// the first call. Must be called within a tokio runtime.
    ///
    /// `hint` is appended to connection failures.
    pub fn new(mut config: kube::Config, hint: Option<String>) -> BackendResult<Self> {
        // kube 5 retries 429/503/504 for minutes by default; a PDB's 429 must come back at once.
        config.default_retry = false;
        let namespace = config.default_namespace.clone();
        let client = kube::Client::try_from(config).map_err(|e| errors::from_kube(e, hint.as_deref()))?;
        Ok(KubeBackend { client, namespace, kinds: discovery::Kinds::default(), hint })
    }

    /// The namespace used when a call names none.
    pub fn default_namespace(&self) -> &str {
        &self.namespace
    }

    /// The API server's version (`v1.30.5`) and platform.
    pub async fn server_version(&self) -> BackendResult<(String, String)> {
        let info = timed(self.client.apiserver_version()).await.map_err(|e| self.error_or_timeout(e))?;
        Ok((info.git_version, info.platform))
    }

    fn error(&self, error: kube::Error) -> BackendError {
        errors::from_kube(error, self.hint.as_deref())
    }

    fn error_or_timeout(&self, error: Timed<kube::Error>) -> BackendError {
        match error {
            Timed::Out => BackendError::new(ErrorCode::Timeout, format!("the API server did not answer within {} s", REQUEST_TIMEOUT.as_secs())),
            Timed::Failed(e) => self.error(e),
        }
    }

    /// An `Api` for `api_version`/`kind`: cluster-wide for cluster-scoped
    /// kinds, otherwise in `namespace` (`None`: the default; `*`: all).
    ///
    /// Names are checked here as well as in the import layer: this backend
    /// also serves the runner's own commands, and kube-rs joins path segments
    /// as given, so each one is also percent-encoded.
    async fn api(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> BackendResult<(Api<DynamicObject>, discovery::Kind)> {
        names::api_version(api_version).and(names::kind(kind)).and(names::namespace(namespace, true)).map_err(invalid)?;
        let found = self.kinds.resolve(&self.client, api_version, kind, self.hint.as_deref()).await?;
        let api = match (found.namespaced, namespace) {
            (false, _) | (true, Some("*")) => Api::all_with(self.client.clone(), &found.resource),
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), &names::path_segment(ns), &found.resource),
            (true, None) => Api::namespaced_with(self.client.clone(), &names::path_segment(&self.namespace), &found.resource),
        };
        Ok((api, found))
    }

    /// An `Api` for one named object, and its name as a path segment.
    async fn object_api(&self, object: &ObjectRef) -> BackendResult<(Api<DynamicObject>, discovery::Kind, String)> {
        names::object(&object.api_version, &object.kind, object.namespace.as_deref(), &object.name).map_err(invalid)?;
        let (api, kind) = self.api(&object.api_version, &object.kind, object.namespace.as_deref()).await?;
        Ok((api, kind, names::path_segment(&object.name)))
    }

    /// The namespace of a call on one Pod, checked and encoded.
    fn namespace_of(&self, namespace: Option<&str>) -> BackendResult<String> {
        names::namespace(namespace, false).map_err(invalid)?;
        Ok(names::path_segment(namespace.unwrap_or(&self.namespace)))
    }

    /// One eviction request, answered as the API server answered it.
    async fn evict_once(&self, namespace: &str, pod: &str, grace_period_seconds: Option<u32>) -> Result<(), kube::Error> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = EvictParams { delete_options: Some(DeleteParams { grace_period_seconds, ..DeleteParams::default() }), ..EvictParams::default() };
        match tokio::time::timeout(REQUEST_TIMEOUT, pods.evict(pod, &params)).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(kube::Error::Service(format!("the eviction request timed out after {} s", REQUEST_TIMEOUT.as_secs()).into())),
        }
    }

    async fn cordon(&self, node: &str, unschedulable: bool) -> BackendResult<()> {
        let node = &checked_segment("Node name", node)?;
        let nodes: Api<DynamicObject> = Api::all_with(self.client.clone(), &discovery::builtin("", "v1", "Node", "nodes"));
        let patch = Patch::Merge(json!({"spec": {"unschedulable": unschedulable}}));
        timed(nodes.patch(node, &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() }, &patch))
            .await
            .map_err(|e| self.error_or_timeout(e))?;
        Ok(())
    }
}

/// A refused name as a backend error.
fn invalid(error: InvalidName) -> BackendError {
    BackendError::new(ErrorCode::Invalid, error.to_string())
}

/// A name checked as a DNS-1123 subdomain and encoded as a path segment.
fn checked_segment(what: &str, name: &str) -> BackendResult<String> {
    names::subdomain(what, name).map_err(invalid)?;
    Ok(names::path_segment(name))
}

/// A Kubernetes backend for `target`'s cluster. Must be called within a tokio runtime.
///
/// An exec credential plugin in the kubeconfig runs here, once: every
/// client of the run reuses its answer. A connection failure names the API
/// server and the context, as kubectl's does.
pub async fn connect(target: &crate::target::Target) -> Result<KubeBackend, crate::target::TargetError> {
    let bad = |what: String| crate::target::TargetError::Bad(format!("target {}: {what}", target.label()));
    let (mut config, hint) = target.kube_config().await?;
    if config.auth_info.exec.is_some() {
        let (resolved, expiry) = tokio::task::spawn_blocking({
            let mut config = config.clone();
            move || credentials::resolve(&mut config).map(|expiry| (config, expiry))
        })
        .await
        .map_err(|e| bad(e.to_string()))?
        .map_err(bad)?;
        if let Some(expiry) = expiry {
            tracing::debug!(target: "runner", "the credential plugin's token is valid until {expiry}");
        }
        config = resolved;
    }
    let context = target.context_name().unwrap_or_else(|| "in-cluster".into());
    let place = format!("API server {}, context {context}", config.cluster_url);
    let hint = Some(match hint {
        Some(hint) => format!("{place}; {hint}"),
        None => place,
    });
    KubeBackend::new(config, hint).map_err(|e| bad(e.message))
}

/// Whether `object` has a `status.conditions` entry `condition_type` with status `True`.
pub fn condition_is_true(object: &Value, condition_type: &str) -> bool {
    wait::condition_status(object, condition_type) == Some("True")
}

/// A request that may also run out of time.
enum Timed<E> {
    Out,
    Failed(E),
}

async fn timed<T, E>(request: impl std::future::Future<Output = Result<T, E>>) -> Result<T, Timed<E>> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => result.map_err(Timed::Failed),
        Err(_) => Err(Timed::Out),
    }
}

/// An object as JSON with its `apiVersion` and `kind`, which list items lack.
fn to_json(mut object: DynamicObject, kind: &discovery::Kind) -> Value {
    if object.types.is_none() {
        object.types = Some(TypeMeta { api_version: kind.resource.api_version.clone(), kind: kind.resource.kind.clone() });
    }
    serde_json::to_value(object).unwrap_or(Value::Null)
}

fn parse_body(patch_type: PatchType, body: &str, object: &ObjectRef) -> BackendResult<Patch<Value>> {
    let name = patch_type.name();
    let invalid = |e: &dyn std::fmt::Display| BackendError::new(ErrorCode::Invalid, format!("the {name} patch body is not valid: {e}"));
    Ok(match patch_type {
        PatchType::Json => Patch::Json(serde_json::from_str::<json_patch::Patch>(body).map_err(|e| invalid(&e))?),
        PatchType::Merge => Patch::Merge(serde_json::from_str(body).map_err(|e| invalid(&e))?),
        PatchType::Strategic => Patch::Strategic(serde_json::from_str(body).map_err(|e| invalid(&e))?),
        PatchType::Apply { .. } => {
            let mut value: Value = serde_json::from_str(body).map_err(|e| invalid(&e))?;
            let Some(fields) = value.as_object_mut() else { return Err(invalid(&"server-side apply needs an object")) };
            // The object-ref already says what is applied; the body need not repeat it.
            fields.entry("apiVersion").or_insert_with(|| json!(object.api_version));
            fields.entry("kind").or_insert_with(|| json!(object.kind));
            let metadata = fields.entry("metadata").or_insert_with(|| json!({}));
            if let Some(metadata) = metadata.as_object_mut() {
                metadata.entry("name").or_insert_with(|| json!(object.name));
            }
            Patch::Apply(value)
        }
    })
}

#[async_trait::async_trait]
impl Kube for KubeBackend {
    async fn get(&self, object: &ObjectRef) -> BackendResult<String> {
        let (api, kind, name) = self.object_api(object).await?;
        let found = timed(api.get(&name)).await.map_err(|e| self.error_or_timeout(e))?;
        Ok(to_json(found, &kind).to_string())
    }

    async fn list(&self, options: &ListOptions) -> BackendResult<String> {
        names::list(&options.api_version, &options.kind, options.namespace.as_deref(), options.label_selector.as_deref(), options.field_selector.as_deref())
            .map_err(invalid)?;
        let (api, kind) = self.api(&options.api_version, &options.kind, options.namespace.as_deref()).await?;
        let mut params = ListParams::default();
        if let Some(labels) = options.label_selector.as_deref().filter(|s| !s.is_empty()) {
            params = params.labels(labels);
        }
        if let Some(fields) = options.field_selector.as_deref().filter(|s| !s.is_empty()) {
            params = params.fields(fields);
        }
        let list = timed(api.list(&params)).await.map_err(|e| self.error_or_timeout(e))?;
        Ok(Value::Array(list.items.into_iter().map(|o| to_json(o, &kind)).collect()).to_string())
    }

    async fn wait_for(&self, object: &ObjectRef, until: &WaitFor, timeout_ms: u64) -> BackendResult<String> {
        wait::validate(until)?;
        let (api, kind, name) = self.object_api(object).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
        let as_json = |o: &DynamicObject| to_json(o.clone(), &kind);
        match wait::until(api, &name, deadline, self.hint.as_deref(), |o| wait::holds(until, o.map(as_json).as_ref())).await? {
            wait::Waited::Done(found) => Ok(found.map(|o| to_json(o, &kind)).unwrap_or(Value::Null).to_string()),
            wait::Waited::TimedOut(last) => {
                let last = last.map(|o| o.map(|o| as_json(&o)));
                let seen = wait::describe_last(until, last.as_ref().map(Option::as_ref));
                let namespace = if kind.namespaced { format!("{}/", object.namespace.as_deref().unwrap_or(&self.namespace)) } else { String::new() };
                Err(BackendError::new(
                    ErrorCode::Timeout,
                    format!("{} {namespace}{}: no {} within {timeout_ms} ms ({seen})", object.kind, object.name, wait::describe(until)),
                ))
            }
        }
    }

    async fn patch(&self, object: &ObjectRef, patch_type: PatchType, body: &str) -> BackendResult<String> {
        let patch = parse_body(patch_type, body, object)?;
        let (api, kind, name) = self.object_api(object).await?;
        let force = matches!(patch_type, PatchType::Apply { force: true });
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), force, ..PatchParams::default() };
        let patched = timed(api.patch(&name, &params, &patch)).await.map_err(|e| self.error_or_timeout(e))?;
        Ok(to_json(patched, &kind).to_string())
    }

    async fn delete(&self, object: &ObjectRef, grace_period_seconds: Option<u32>) -> BackendResult<()> {
        let (api, _, name) = self.object_api(object).await?;
        let params = DeleteParams { grace_period_seconds, ..DeleteParams::default() };
        timed(api.delete(&name, &params)).await.map_err(|e| self.error_or_timeout(e))?;
        Ok(())
    }

    async fn scale(&self, object: &ObjectRef, replicas: u32) -> BackendResult<()> {
        let (api, _, name) = self.object_api(object).await?;
        let patch = Patch::Merge(json!({"spec": {"replicas": replicas}}));
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
        match timed(api.patch_subresource("scale", &name, &params, &patch)).await {
            Ok(_) => Ok(()),
            // The object exists (or not) independently of its scale subresource: say which.
            Err(Timed::Failed(kube::Error::Api(status))) if status.code == 404 => match timed(api.get_opt(&name)).await {
                Ok(Some(_)) => Err(BackendError::new(ErrorCode::Invalid, format!("{} {} has no scale subresource", object.kind, object.name))),
                _ => Err(BackendError::new(ErrorCode::NotFound, errors::status_message(&status))),
            },
            Err(e) => Err(self.error_or_timeout(e)),
        }
    }

    async fn evict(&self, namespace: Option<&str>, pod: &str) -> BackendResult<()> {
        let namespace = self.namespace_of(namespace)?;
        match self.evict_once(&namespace, &checked_segment("Pod name", pod)?, None).await {
            Ok(()) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 429 => Err(BackendError::new(ErrorCode::Conflict, errors::status_message(&status))),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn set_unschedulable(&self, node: &str, unschedulable: bool) -> BackendResult<()> {
        self.cordon(node, unschedulable).await
    }

    async fn drain(&self, node: &str, options: &DrainOptions) -> BackendResult<String> {
        names::subdomain("Node name", node).map_err(invalid)?;
        drain::drain(self, node, options).await
    }

    async fn exec(&self, namespace: Option<&str>, pod: &str, container: Option<&str>, command: &[String]) -> BackendResult<ExecOutput> {
        let namespace = self.namespace_of(namespace)?;
        if let Some(container) = container {
            names::label("container name", container).map_err(invalid)?;
        }
        exec::run(self.client.clone(), &namespace, &checked_segment("Pod name", pod)?, container, command, self.hint.as_deref()).await
    }

    async fn connect_port(&self, namespace: &str, pod: &str, port: u16) -> BackendResult<Box<dyn PortStream>> {
        let namespace = self.namespace_of(Some(namespace))?;
        let pod = checked_segment("Pod name", pod)?;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let mut forwarder = timed(api.portforward(&pod, &[port])).await.map_err(|e| self.error_or_timeout(e))?;
        let stream = forwarder
            .take_stream(port)
            .ok_or_else(|| BackendError::new(ErrorCode::Internal, format!("pod {namespace}/{pod}: the port-forward gave no stream for port {port}")))?;
        // The forwarder's own task carries the bytes; what it reports comes on the port's error channel.
        if let Some(error) = forwarder.take_error(port) {
            let shown = format!("{namespace}/{pod}:{port}");
            tokio::spawn(async move {
                if let Some(message) = error.await {
                    tracing::warn!("port-forward to pod {shown}: {message}");
                }
            });
        }
        Ok(Box::new(stream))
    }
}
