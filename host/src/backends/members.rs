//! Members of the target's database clusters, resolved in one place for
//! every database backend and the write probe: which cluster a logical
//! member name (`postgres-cluster-2`) belongs to, the address to connect to
//! (its Pod's, or a local port forwarded through the API server, as the
//! database's `reach` says), and the cluster's credential, which only the
//! host ever holds.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Mutex;

use super::{BackendError, BackendResult, ErrorCode, Kube, ObjectRef, PortStream};
use crate::target::{CredentialSource, Database, Engine, Reach, Target};

/// The database members of one target, reached through its Kubernetes API.
pub struct Members {
    target: Target,
    namespace: String,
    kube: Arc<dyn Kube>,
    /// The local ports forwarded to members, by `namespace/pod:port`.
    forwards: Mutex<BTreeMap<String, Forward>>,
}

/// One member, found: its cluster, its namespace and where to connect.
pub struct Member<'a> {
    /// The cluster it belongs to.
    pub database: &'a Database,
    /// The namespace of its Pod.
    pub namespace: String,
    /// The IP to connect to: its Pod's, or 127.0.0.1 when forwarded.
    pub ip: String,
    /// The port to connect to: the database's, or the local forwarded one.
    pub port: u16,
}

impl Member<'_> {
    /// `ip:port`, for messages and connection caches.
    pub fn address(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

/// A local listener whose every connection is forwarded to one Pod port
/// through the API server (`kubectl port-forward`'s way); it stops when
/// the run's backends are dropped.
struct Forward {
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Members {
    /// Members of `target`'s clusters; `namespace` is the target's default.
    pub fn new(target: Target, namespace: String, kube: Arc<dyn Kube>) -> Self {
        Members { target, namespace, kube, forwards: Mutex::default() }
    }

    /// The `engine` cluster `member` belongs to (`redis-cluster-3` → `redis-cluster`).
    pub fn database(&self, engine: Engine, member: &str) -> BackendResult<&Database> {
        let of_engine = || self.target.databases.iter().filter(move |d| d.engine == engine);
        of_engine().find(|d| d.has_member(member)).ok_or_else(|| {
            let known: Vec<&str> = of_engine().map(|d| d.stateful_set.as_str()).collect();
            let known = if known.is_empty() { format!("none; add a database with `engine: {}` to the target file", engine.name()) } else { known.join(", ") };
            BackendError::new(ErrorCode::NotFound, format!("`{member}` is not a member of a {} of this target (StatefulSets: {known})", engine.cluster_noun()))
        })
    }

    /// The member's cluster and where to connect to it: its Pod's address,
    /// read now (a Pod that was deleted and came back may have a new one),
    /// or, for a database reached by `port-forward`, a local port forwarded
    /// through the API server to the Pod of that name.
    pub async fn find(&self, engine: Engine, member: &str) -> BackendResult<Member<'_>> {
        let database = self.database(engine, member)?;
        let namespace = database.namespace.clone().unwrap_or_else(|| self.namespace.clone());
        let pod = ObjectRef { api_version: "v1".into(), kind: "Pod".into(), namespace: Some(namespace.clone()), name: member.into() };
        let pod = self.kube.get(&pod).await.map_err(|e| {
            if e.code == ErrorCode::NotFound {
                BackendError::new(ErrorCode::NotFound, format!("member {member}: no such Pod in namespace {namespace}"))
            } else {
                e
            }
        })?;
        let pod: Value = serde_json::from_str(&pod).map_err(|e| BackendError::new(ErrorCode::Internal, e.to_string()))?;
        let ip = pod["status"]["podIP"]
            .as_str()
            .filter(|ip| !ip.is_empty())
            .ok_or_else(|| BackendError::new(ErrorCode::Unavailable, format!("member {member} has no address yet (Pod not running)")))?;
        match database.reach {
            Reach::PodAddress => Ok(Member { database, namespace, ip: ip.to_string(), port: database.port }),
            Reach::PortForward => {
                let local = self.forwarded(&namespace, member, database.port).await?;
                Ok(Member { database, namespace, ip: local.ip().to_string(), port: local.port() })
            }
        }
    }

    /// The local address forwarded to `pod`'s `port`, opened on first use.
    /// The first connection through the API server is made before the
    /// address is handed out, so a refusal (RBAC, a Pod not running) comes
    /// back as the API server's error rather than as a connection closed.
    async fn forwarded(&self, namespace: &str, pod: &str, port: u16) -> BackendResult<SocketAddr> {
        let key = format!("{namespace}/{pod}:{port}");
        let mut forwards = self.forwards.lock().await;
        if let Some(forward) = forwards.get(&key)
            && !forward.task.is_finished()
        {
            return Ok(forward.local);
        }
        let first =
            self.kube.connect_port(namespace, pod, port).await.map_err(|e| BackendError::new(e.code, format!("port-forward to pod {key}: {}", e.message)))?;
        let unavailable = |e: std::io::Error| BackendError::new(ErrorCode::Unavailable, format!("port-forward to pod {key}: a local port: {e}"));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.map_err(unavailable)?;
        let local = listener.local_addr().map_err(unavailable)?;
        let task = tokio::spawn(forward_connections(listener, first, self.kube.clone(), namespace.to_string(), pod.to_string(), port));
        tracing::info!("member {pod}: reached through the API server's pods/portforward at {local}");
        forwards.insert(key, Forward { local, task });
        Ok(local)
    }

    /// The password of `member`'s cluster.
    pub async fn credential(&self, member: &Member<'_>) -> BackendResult<Credential> {
        resolve_credential(member.database, self.kube.as_ref(), &member.namespace)
            .await
            .map_err(|e| BackendError::new(ErrorCode::Unavailable, format!("credentials for {}: {e}", member.database.name)))
    }
}

/// Accepts local connections and joins each to a new connection to the
/// Pod's port through the API server (the first one to `first`).
async fn forward_connections(listener: TcpListener, first: Box<dyn PortStream>, kube: Arc<dyn Kube>, namespace: String, pod: String, port: u16) {
    let mut first = Some(first);
    loop {
        let Ok((mut local, _)) = listener.accept().await else { return };
        let upstream = first.take();
        let (kube, namespace, pod) = (kube.clone(), namespace.clone(), pod.clone());
        tokio::spawn(async move {
            let upstream = match upstream {
                Some(upstream) => upstream,
                None => match kube.connect_port(&namespace, &pod, port).await {
                    Ok(upstream) => upstream,
                    Err(e) => {
                        // The driver sees its connection closed; the reason goes to the log.
                        tracing::warn!("port-forward to pod {namespace}/{pod}:{port}: {e}");
                        return;
                    }
                },
            };
            let mut upstream = upstream;
            if let Err(e) = tokio::io::copy_bidirectional(&mut local, &mut upstream).await {
                tracing::debug!("port-forward to pod {namespace}/{pod}:{port}: {e}");
            }
        });
    }
}

/// A resolved password. It prints as `<redacted>` and is never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    /// The secret text, for the host's own connections only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// Why a credential could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CredentialError(pub String);

/// Resolve `database`'s password: read the Secret through `kube` (in the
/// database's namespace, else `namespace`), or the environment variable.
pub async fn resolve_credential(database: &Database, kube: &dyn Kube, namespace: &str) -> Result<Credential, CredentialError> {
    match &database.credentials {
        CredentialSource::Env { var } => match std::env::var(var) {
            Ok(value) if !value.is_empty() => Ok(Credential(value)),
            Ok(_) => Err(CredentialError(format!("environment variable {var} is empty"))),
            Err(_) => Err(CredentialError(format!("environment variable {var} is not set (or not UTF-8)"))),
        },
        CredentialSource::Secret { name, key } => {
            let namespace = database.namespace.as_deref().unwrap_or(namespace);
            let secret = ObjectRef { api_version: "v1".into(), kind: "Secret".into(), namespace: Some(namespace.into()), name: name.clone() };
            let text = kube.get(&secret).await.map_err(|e| CredentialError(format!("Secret {namespace}/{name}: {e}")))?;
            let object: Value = serde_json::from_str(&text).map_err(|_| CredentialError(format!("Secret {namespace}/{name}: not JSON")))?;
            let encoded = object["data"][key].as_str().ok_or_else(|| CredentialError(format!("Secret {namespace}/{name} has no key `{key}`")))?;
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| CredentialError(format!("Secret {namespace}/{name} key `{key}` is not base64")))?;
            let value = String::from_utf8(bytes).map_err(|_| CredentialError(format!("Secret {namespace}/{name} key `{key}` is not text")))?;
            if value.is_empty() {
                return Err(CredentialError(format!("Secret {namespace}/{name} key `{key}` is empty")));
            }
            Ok(Credential(value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_print() {
        let credential = Credential("hunter2".into());
        assert_eq!(format!("{credential:?}"), "Credential(<redacted>)");
        assert_eq!(credential.expose(), "hunter2");
    }
}
