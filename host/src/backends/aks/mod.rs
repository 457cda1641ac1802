//! The AKS backend: hand-written typed calls to Azure Resource Manager's
//! REST API for `Microsoft.ContainerService` (api-version [`API_VERSION`]),
//! over `reqwest` with rustls on ring.
//!
//! Long-running operations are followed to their end: a 200/201/202 with
//! `Azure-AsyncOperation` is polled there (preferred), else `Location`,
//! else the resource's own `provisioningState`, each wait as long as
//! `Retry-After` asks, all within the call's timeout. A 429 is retried
//! after its `Retry-After` a bounded number of times. Errors keep AKS's own
//! code and message (`OperationNotAllowed: ...`); see [`arm`] for the codes.
//!
//! Credentials: a static bearer token read from a file (the lab's), or
//! `azure_identity` (workload identity, managed identity, Azure CLI, tried
//! in that order). A token is only ever sent to the configured endpoint's
//! origin, and never logged: reqwest's errors carry no headers, and the
//! token is held as a [`SecretString`].
//!
//! This backend has only ever run against the lab's emulation of ARM.

pub mod arm;
mod credential;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, header};
use reqwest_arm as reqwest;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{BackendError, BackendResult, Cluster, ErrorCode, OperationProgress};
use crate::domain::cluster::{ControlPlane, NewNodePool, NodePool, Operation, PoolUpgradeProfile, UpgradeSettings};
use crate::domain::error_chain;
use crate::target::AksConfig;

pub use credential::Credential;

/// The one api-version every call sends: a stable `Microsoft.ContainerService`
/// version whose `upgradeSettings` has `maxUnavailable` and `undrainableNodeBehavior`.
pub const API_VERSION: &str = "2025-08-01";

/// How long a read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// 429s retried before the call answers `unavailable`.
const THROTTLE_RETRIES: u32 = 5;

/// The wait between polls when the server names none.
const DEFAULT_POLL: Duration = Duration::from_secs(2);

/// The longest wait one `Retry-After` may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A cluster on AKS, through ARM.
pub struct AksBackend {
    http: reqwest::Client,
    /// `https://host[:port]`, the only origin a token is sent to.
    endpoint: String,
    subscription: String,
    /// `.../managedClusters/{name}`, the path every call starts from.
    cluster_path: String,
    name: String,
    credential: Credential,
    /// Status URLs of operations this backend started, by id (`cluster-read.operation`).
    operations: Mutex<HashMap<String, String>>,
    /// The cluster's location, once read (operation URLs need it).
    location: Mutex<Option<String>>,
}

/// What polling found at the end of an operation.
struct Finished {
    operation: Operation,
}

impl AksBackend {
    /// A backend for `config`: its TLS roots (the system's, or the extra CA
    /// file's too) and its credential. A file that cannot be read is an
    /// error here, before any call.
    pub fn connect(config: &AksConfig) -> Result<AksBackend, String> {
        let tls = tls_config(config.ca_file.as_deref())?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(10))
            // ARM's redirects are not followed: a token must not follow them elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("runner/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cluster API client: {e}"))?;
        let credential = match &config.token_file {
            Some(file) => Credential::from_file(file)?,
            None => Credential::azure(&http)?,
        };
        let cluster_path = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{}",
            config.subscription, config.resource_group, config.name
        );
        Ok(AksBackend {
            http,
            endpoint: config.endpoint.trim_end_matches('/').to_string(),
            subscription: config.subscription.clone(),
            cluster_path,
            name: config.name.clone(),
            credential,
            operations: Mutex::default(),
            location: Mutex::default(),
        })
    }

    /// A request to another resource of the same subscription on the same
    /// endpoint with the same credential (a Traffic Manager profile):
    /// `path` starts after `/subscriptions/{id}` and carries its own
    /// `api-version`. Answers the response (status, headers) on success,
    /// ARM's error otherwise.
    pub async fn subscription_request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(header::HeaderName, String)],
    ) -> BackendResult<reqwest::Response> {
        let url = format!("{}/subscriptions/{}{path}", self.endpoint, self.subscription);
        self.send_with(method, &url, body, headers, Instant::now() + READ_TIMEOUT).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}{path}", self.endpoint, self.cluster_path)
    }

    fn pool_url(&self, pool: &str, rest: &str) -> String {
        self.url(&format!("/agentPools/{pool}{rest}"))
    }

    /// Whether `url` is on the configured endpoint's origin: the only place a token goes.
    fn same_origin(&self, url: &str) -> bool {
        url.strip_prefix(&self.endpoint).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// One request, with the token and the api-version, 429s retried after
    /// their `Retry-After` (at most [`THROTTLE_RETRIES`] times, never past
    /// `deadline`). Any status that is not a success becomes the error ARM's body names.
    async fn send(&self, method: Method, url: &str, body: Option<&Value>, deadline: Instant) -> BackendResult<reqwest::Response> {
        self.send_with(method, url, body, &[], deadline).await
    }

    /// [`AksBackend::send`] with extra request headers (`If-Match`).
    async fn send_with(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(header::HeaderName, String)],
        deadline: Instant,
    ) -> BackendResult<reqwest::Response> {
        if !self.same_origin(url) {
            return Err(BackendError::new(ErrorCode::Internal, format!("the cluster API pointed at {} outside {}; not followed", cut(url), self.endpoint)));
        }
        let mut throttled = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(BackendError::new(ErrorCode::Timeout, format!("{method} {}: no time left", shown_path(url))));
            }
            let token = self.credential.token().await?;
            // Polling URLs ARM hands back carry their own api-version.
            let full = if url.contains("api-version=") {
                url.to_string()
            } else {
                format!("{url}{}api-version={API_VERSION}", if url.contains('?') { '&' } else { '?' })
            };
            let mut request = self.http.request(method.clone(), &full).timeout(left.min(READ_TIMEOUT)).bearer_auth(token.expose_secret());
            if let Some(body) = body {
                request = request.json(body);
            }
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let response = request.send().await.map_err(|e| transport_error(&method, url, &e))?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let retry_after = retry_after(response.headers());
            let text = response.text().await.unwrap_or_default();
            let mut error = arm::error_of_status(status.as_u16(), &text);
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after.unwrap_or(DEFAULT_POLL);
                if throttled < THROTTLE_RETRIES && Instant::now() + wait < deadline {
                    throttled += 1;
                    tracing::debug!("{method} {}: throttled (429), retry {throttled} in {} ms", shown_path(url), wait.as_millis());
                    tokio::time::sleep(wait).await;
                    continue;
                }
                error.message = format!("{} (throttled: gave up after {} retries)", error.message, throttled);
            }
            return Err(error);
        }
    }

    /// A GET that answers JSON.
    async fn get_json(&self, url: &str) -> BackendResult<Value> {
        let response = self.send(Method::GET, url, None, Instant::now() + READ_TIMEOUT).await?;
        json_of(response, url).await
    }

    /// Start a mutation and follow its long-running operation to its end.
    async fn mutate(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        what: &str,
        timeout_ms: u64,
        progress: OperationProgress<'_>,
    ) -> BackendResult<Finished> {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let response = self.send(method.clone(), url, body, deadline).await?;
        self.follow(response, url, what, deadline, progress).await
    }

    /// Follow an operation ARM accepted until it ends or `deadline` passes.
    async fn follow(
        &self,
        response: reqwest::Response,
        resource: &str,
        what: &str,
        deadline: Instant,
        progress: OperationProgress<'_>,
    ) -> BackendResult<Finished> {
        let status = response.status();
        let headers = response.headers().clone();
        let header_url = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let async_url = header_url("azure-asyncoperation");
        let location = header_url(header::LOCATION.as_str());
        let mut wait = retry_after(&headers).unwrap_or(DEFAULT_POLL);
        let body: Value = if status == StatusCode::NO_CONTENT { Value::Null } else { response.json().await.unwrap_or(Value::Null) };
        let id = async_url.as_deref().or(location.as_deref()).map(operation_id).unwrap_or_default();
        if let Some(url) = &async_url {
            self.operations.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), url.clone());
        }
        let state = provisioning_state(&body);
        // Nothing to follow: the answer is final (a 200 with a final provisioningState, a 204).
        if async_url.is_none() && location.is_none() && (status == StatusCode::NO_CONTENT || state.is_empty() || arm::is_terminal(&state)) {
            return finished_by_state(&id, &state, what);
        }
        let watch = Watch { async_url: async_url.as_deref(), location: location.as_deref(), resource, id: &id, what };
        let named = if id.is_empty() { String::new() } else { format!(" (operation {id})") };
        let mut last = if state.is_empty() { "Accepted".to_string() } else { state };
        loop {
            progress(&format!("{last}{named}"));
            let now = Instant::now();
            let at_deadline = now + wait >= deadline;
            tokio::time::sleep(if at_deadline { deadline.saturating_duration_since(now) } else { wait }).await;
            match self.poll(&watch, deadline.max(Instant::now() + Duration::from_secs(5))).await {
                Ok(Poll::Done(done)) => return done,
                Ok(Poll::Running { state, retry_after }) => {
                    last = state;
                    wait = retry_after.unwrap_or(DEFAULT_POLL).clamp(Duration::from_millis(100), MAX_RETRY_AFTER);
                }
                // A throttled or briefly unreachable poll is not the operation failing.
                Err(e) if e.code == ErrorCode::Unavailable && !at_deadline => {
                    tracing::debug!("{what}: a poll failed, polling on: {}", e.message);
                }
                Err(e) => return Err(e),
            }
            if at_deadline {
                let id = if id.is_empty() { "(no id)" } else { id.as_str() };
                return Err(BackendError::new(
                    ErrorCode::Timeout,
                    format!("{what}: operation {id} still {last} at the timeout; it goes on in AKS (cluster-read.operation tells how it ends)"),
                ));
            }
        }
    }

    /// One look at a running operation: its status document, else its
    /// `Location` result, else the resource's provisioningState.
    async fn poll(&self, watch: &Watch<'_>, deadline: Instant) -> BackendResult<Poll> {
        if let Some(url) = watch.async_url {
            let response = self.send(Method::GET, url, None, deadline).await?;
            let retry_after = retry_after(response.headers());
            let doc = json_of(response, url).await?;
            let mut operation = arm::operation_from_arm(&doc).map_err(|e| BackendError::new(ErrorCode::Internal, format!("{}: {e}", watch.what)))?;
            if operation.id.is_empty() {
                operation.id = watch.id.to_string();
            }
            return Ok(match operation.status.as_str() {
                "Succeeded" => Poll::Done(Ok(Finished { operation })),
                s if arm::is_terminal(s) => Poll::Done(Err(arm::error_of_operation(&operation))),
                _ => {
                    let percent = doc.get("percentComplete").and_then(Value::as_f64).map(|p| format!(", {p:.0}%")).unwrap_or_default();
                    Poll::Running { state: format!("{}{percent}", operation.status), retry_after }
                }
            });
        }
        if let Some(url) = watch.location {
            let response = self.send(Method::GET, url, None, deadline).await?;
            let retry_after = retry_after(response.headers());
            return Ok(if response.status() == StatusCode::ACCEPTED {
                Poll::Running { state: "InProgress".into(), retry_after }
            } else {
                Poll::Done(Ok(Finished { operation: Operation { id: watch.id.to_string(), status: "Succeeded".into(), ..Operation::default() } }))
            });
        }
        let response = self.send(Method::GET, watch.resource, None, deadline).await?;
        let retry_after = retry_after(response.headers());
        let state = provisioning_state(&json_of(response, watch.resource).await?);
        Ok(if state.is_empty() || arm::is_terminal(&state) {
            Poll::Done(finished_by_state(watch.id, &state, watch.what))
        } else {
            Poll::Running { state, retry_after }
        })
    }

    async fn pool_json(&self, pool: &str) -> BackendResult<Value> {
        self.get_json(&self.pool_url(pool, "")).await
    }

    /// PUT `pool` back as read, changed by `change`: ARM's PUT replaces the
    /// whole pool, so what is not changed must be sent as it is.
    async fn update_pool(
        &self,
        pool: &str,
        what: &str,
        timeout_ms: u64,
        progress: OperationProgress<'_>,
        change: impl FnOnce(&mut Value),
    ) -> BackendResult<NodePool> {
        let mut doc = self.pool_json(pool).await?;
        if let Some(properties) = doc.get_mut("properties").and_then(Value::as_object_mut) {
            // Read-only: what AKS reports, not what a caller asks for.
            for key in ["provisioningState", "currentOrchestratorVersion", "powerState", "nodeImageVersion"] {
                properties.remove(key);
            }
        }
        change(&mut doc);
        let body = json!({"properties": doc.get("properties").cloned().unwrap_or_else(|| json!({}))});
        self.mutate(Method::PUT, &self.pool_url(pool, ""), Some(&body), what, timeout_ms, progress).await?;
        self.node_pool(pool).await
    }

    /// The cluster's location (`.../locations/{location}/operations/{id}`), read once.
    async fn location(&self) -> BackendResult<String> {
        if let Some(location) = self.location.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(location);
        }
        let cluster = self.get_json(&self.url("")).await?;
        let location = cluster.get("location").and_then(Value::as_str).unwrap_or_default().to_string();
        if location.is_empty() {
            return Err(BackendError::new(ErrorCode::Internal, "the managed cluster has no `location`"));
        }
        *self.location.lock().unwrap_or_else(|p| p.into_inner()) = Some(location.clone());
        Ok(location)
    }
}

/// Where a running operation is watched.
struct Watch<'a> {
    async_url: Option<&'a str>,
    location: Option<&'a str>,
    resource: &'a str,
    id: &'a str,
    what: &'a str,
}

enum Poll {
    Done(BackendResult<Finished>),
    Running { state: String, retry_after: Option<Duration> },
}

fn provisioning_state(doc: &Value) -> String {
    doc.pointer("/properties/provisioningState").and_then(Value::as_str).unwrap_or_default().to_string()
}

/// An operation known only by the resource's final provisioningState.
fn finished_by_state(id: &str, state: &str, what: &str) -> BackendResult<Finished> {
    if matches!(state, "Failed" | "Canceled") {
        return Err(BackendError::new(ErrorCode::Internal, format!("{what}: provisioningState {state}")));
    }
    Ok(Finished { operation: Operation { id: id.to_string(), status: "Succeeded".into(), ..Operation::default() } })
}

/// An operation's id: the last path segment of its status URL, without the query.
fn operation_id(url: &str) -> String {
    url.split('?').next().unwrap_or_default().trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string()
}

/// `Retry-After` in seconds (ARM does not send the date form).
fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

async fn json_of(response: reqwest::Response, url: &str) -> BackendResult<Value> {
    let text = response.text().await.map_err(|e| BackendError::new(ErrorCode::Unavailable, format!("GET {}: {}", shown_path(url), error_chain(&e))))?;
    serde_json::from_str(&text).map_err(|e| BackendError::new(ErrorCode::Internal, format!("GET {}: the answer is not JSON ({e})", shown_path(url))))
}

/// A request that got no HTTP answer: the path and reqwest's reason (no headers, no token).
fn transport_error(method: &Method, url: &str, error: &reqwest::Error) -> BackendError {
    let code = if error.is_timeout() { ErrorCode::Timeout } else { ErrorCode::Unavailable };
    BackendError::new(code, format!("{method} {}: {}", shown_path(url), error_chain(error)))
}

/// A URL as messages show it: the path after the subscription, no query.
fn shown_path(url: &str) -> String {
    let path = url.split('?').next().unwrap_or_default();
    cut(path.split_once("/providers/").map_or(path, |(_, rest)| rest))
}

fn cut(text: &str) -> String {
    let cut: String = text.chars().take(160).collect();
    if cut.len() < text.len() { format!("{cut}...") } else { cut }
}

/// The TLS configuration: rustls on ring, the system's roots (Mozilla's
/// when the system has none), and `ca_file`'s certificates too.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(file) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
            .map_err(|e| format!("ca-file {}: {e}", file.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("ca-file {}: {e}", file.display()))?;
        if certs.is_empty() {
            return Err(format!("ca-file {}: no PEM certificate in it", file.display()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| format!("ca-file {}: {e}", file.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[async_trait::async_trait]
impl Cluster for AksBackend {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn control_plane(&self) -> BackendResult<ControlPlane> {
        let cluster = self.get_json(&self.url("")).await?;
        if let Some(location) = cluster.get("location").and_then(Value::as_str) {
            *self.location.lock().unwrap_or_else(|p| p.into_inner()) = Some(location.to_string());
        }
        let profile = self.get_json(&self.url("/upgradeProfiles/default")).await?;
        arm::control_plane_from_arm(&cluster, &profile).map_err(|e| BackendError::new(ErrorCode::Internal, e))
    }

    async fn node_pools(&self) -> BackendResult<Vec<NodePool>> {
        let mut url = self.url("/agentPools");
        let mut pools = Vec::new();
        // ARM pages with `nextLink`; a bound keeps a looping server from holding the call.
        for _ in 0..100 {
            let page = self.get_json(&url).await?;
            pools.extend(arm::pools_from_arm(&page).map_err(|e| BackendError::new(ErrorCode::Internal, e))?);
            match page.get("nextLink").and_then(Value::as_str).filter(|l| !l.is_empty()) {
                Some(next) => url = next.to_string(),
                None => return Ok(pools),
            }
        }
        Err(BackendError::new(ErrorCode::Internal, "the agent pool list did not end after 100 pages"))
    }

    async fn node_pool(&self, name: &str) -> BackendResult<NodePool> {
        arm::pool_from_arm(&self.pool_json(name).await?).map_err(|e| BackendError::new(ErrorCode::Internal, e))
    }

    async fn pool_upgrade_profile(&self, pool: &str) -> BackendResult<PoolUpgradeProfile> {
        let doc = self.get_json(&self.pool_url(pool, "/upgradeProfiles/default")).await?;
        arm::pool_profile_from_arm(&doc).map_err(|e| BackendError::new(ErrorCode::Internal, e))
    }

    async fn operation(&self, id: &str) -> BackendResult<Operation> {
        let known = self.operations.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
        let url = match known {
            Some(url) => url,
            None => format!(
                "{}/subscriptions/{}/providers/Microsoft.ContainerService/locations/{}/operations/{id}",
                self.endpoint,
                self.subscription,
                self.location().await?
            ),
        };
        let mut operation = arm::operation_from_arm(&self.get_json(&url).await?).map_err(|e| BackendError::new(ErrorCode::Internal, e))?;
        if operation.id.is_empty() {
            operation.id = id.to_string();
        }
        Ok(operation)
    }

    async fn upgrade_control_plane(&self, version: &str, timeout_ms: u64, progress: OperationProgress<'_>) -> BackendResult<Operation> {
        let mut cluster = self.get_json(&self.url("")).await?;
        // Read-only fields out; the rest goes back as read (PUT replaces).
        if let Some(properties) = cluster.get_mut("properties").and_then(Value::as_object_mut) {
            for key in ["provisioningState", "currentKubernetesVersion", "powerState", "fqdn", "azurePortalFQDN", "maxAgentPools"] {
                properties.remove(key);
            }
            properties.insert("kubernetesVersion".into(), json!(version));
        } else {
            return Err(BackendError::new(ErrorCode::Internal, "the managed cluster has no `properties`"));
        }
        let body = json!({"location": cluster.get("location"), "tags": cluster.get("tags"), "sku": cluster.get("sku"), "identity": cluster.get("identity"), "properties": cluster["properties"]});
        let body = strip_nulls(body);
        let what = format!("upgrade the control plane to {version}");
        let finished = self.mutate(Method::PUT, &self.url(""), Some(&body), &what, timeout_ms, progress).await?;
        Ok(finished.operation)
    }

    async fn add_node_pool(&self, pool: &NewNodePool, timeout_ms: u64, progress: OperationProgress<'_>) -> BackendResult<NodePool> {
        // PUT on an existing pool would change it: adding is only for a new name.
        match self.pool_json(&pool.name).await {
            Ok(_) => return Err(BackendError::new(ErrorCode::Conflict, format!("pool {} already exists", pool.name))),
            Err(e) if e.code == ErrorCode::NotFound => {}
            Err(e) => return Err(e),
        }
        let vm_size = if pool.vm_size.is_empty() {
            let first = self.get_json(&self.url("/agentPools")).await?;
            first.pointer("/value/0/properties/vmSize").and_then(Value::as_str).unwrap_or("Standard_D4s_v5").to_string()
        } else {
            pool.vm_size.clone()
        };
        let mut properties = json!({
            "count": pool.count,
            "vmSize": vm_size,
            "mode": pool.mode,
            "osType": "Linux",
            "type": "VirtualMachineScaleSets",
            "upgradeSettings": arm::settings_to_arm(&pool.upgrade_settings),
        });
        if !pool.orchestrator_version.is_empty() {
            properties["orchestratorVersion"] = json!(pool.orchestrator_version);
        }
        if !pool.node_labels.is_empty() {
            properties["nodeLabels"] = Value::Object(pool.node_labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect());
        }
        let what = format!("add pool {}", pool.name);
        self.mutate(Method::PUT, &self.pool_url(&pool.name, ""), Some(&json!({"properties": properties})), &what, timeout_ms, progress).await?;
        self.node_pool(&pool.name).await
    }

    async fn upgrade_node_pool(&self, pool: &str, version: &str, timeout_ms: u64, progress: OperationProgress<'_>) -> BackendResult<NodePool> {
        let what = format!("upgrade pool {pool} to {version}");
        self.update_pool(pool, &what, timeout_ms, progress, |doc| doc["properties"]["orchestratorVersion"] = json!(version)).await
    }

    async fn upgrade_node_image(&self, pool: &str, timeout_ms: u64, progress: OperationProgress<'_>) -> BackendResult<NodePool> {
        let what = format!("upgrade the node image of pool {pool}");
        self.mutate(Method::POST, &self.pool_url(pool, "/upgradeNodeImageVersion"), None, &what, timeout_ms, progress).await?;
        self.node_pool(pool).await
    }

    async fn set_upgrade_settings(&self, pool: &str, settings: &UpgradeSettings, timeout_ms: u64, progress: OperationProgress<'_>) -> BackendResult<NodePool> {
        let what = format!("change the upgrade settings of pool {pool}");
        let settings = arm::settings_to_arm(settings);
        self.update_pool(pool, &what, timeout_ms, progress, |doc| doc["properties"]["upgradeSettings"] = settings).await
    }

    async fn delete_node_pool(&self, pool: &str, timeout_ms: u64, progress: OperationProgress<'_>) -> BackendResult<()> {
        let what = format!("delete pool {pool}");
        self.mutate(Method::DELETE, &self.pool_url(pool, ""), None, &what, timeout_ms, progress).await.map(|_| ())
    }
}

/// Drop `null` members of the top level (fields the cluster did not have).
fn strip_nulls(mut value: Value) -> Value {
    if let Some(map) = value.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    value
}

/// `SecretString` is the token's only form outside the credential.
pub(crate) fn secret(text: String) -> SecretString {
    SecretString::from(text)
}

#[cfg(test)]
mod tests;
