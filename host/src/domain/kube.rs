//! The Kubernetes values a call carries, as the host's layers share them:
//! the import layer converts the WIT's records into these (`crate::wit`),
//! sessions record them, backends take them.

/// One Kubernetes object by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    /// `v1` for the core group, otherwise `group/version` (`apps/v1`).
    pub api_version: String,
    /// The kind (`StatefulSet`).
    pub kind: String,
    /// `None`: the target's default namespace (ignored for cluster-scoped kinds).
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
}

/// Which objects to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListOptions {
    /// As in [`ObjectRef`].
    pub api_version: String,
    /// As in [`ObjectRef`].
    pub kind: String,
    /// `None`: the target's default namespace; `Some("*")`: every namespace.
    pub namespace: Option<String>,
    /// A label selector as kubectl takes it (`app=postgres,role!=replica`).
    pub label_selector: Option<String>,
    /// A field selector as kubectl takes it (`spec.nodeName=aks-1`).
    pub field_selector: Option<String>,
}

/// What to wait for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitFor {
    /// A `status.conditions` entry of this type with this status (`Ready`, `True`).
    Condition {
        /// The condition's `type`.
        condition_type: String,
        /// The status it must reach (`True`).
        status: String,
    },
    /// The field at a JSON pointer equals a JSON value.
    Field {
        /// A JSON pointer (`/status/readyReplicas`).
        pointer: String,
        /// JSON text (`3`, `"Running"`); text that is not JSON is taken as a string.
        value: String,
    },
    /// The object no longer exists.
    Deleted,
}

/// How a patch body is interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// JSON merge patch (RFC 7386).
    Merge,
    /// JSON patch (RFC 6902).
    Json,
    /// Kubernetes strategic merge patch.
    Strategic,
    /// Server-side apply, field manager `runner`.
    Apply {
        /// Take over the fields another field manager owns instead of
        /// answering `conflict` (`kubectl apply --server-side --force-conflicts`).
        force: bool,
    },
}

impl PatchType {
    /// As `kubectl patch --type` names it (`apply` for server-side apply).
    pub fn name(self) -> &'static str {
        match self {
            PatchType::Merge => "merge",
            PatchType::Json => "json",
            PatchType::Strategic => "strategic",
            PatchType::Apply { .. } => "apply",
        }
    }
}

/// kubectl drain's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainOptions {
    /// Skip DaemonSet-managed Pods instead of refusing to drain.
    pub ignore_daemonsets: bool,
    /// Evict Pods with emptyDir volumes (their data is lost).
    pub delete_emptydir_data: bool,
    /// Evict Pods no controller manages (they will not come back).
    pub force: bool,
    /// Grace period for each eviction; `None` uses the Pod's own.
    pub grace_period_seconds: Option<u32>,
    /// Give up after this long (0: no limit of drain's own), naming what blocks.
    pub timeout_ms: u64,
}

/// What a command run in a Pod produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The command's exit code.
    pub exit_code: i32,
    /// Its standard output, bounded.
    pub stdout: String,
    /// Its standard error, bounded (a note says when output was cut).
    pub stderr: String,
}
