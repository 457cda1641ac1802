//! Backends: the code that actually talks to Kubernetes and the databases.
//!
//! A backend knows nothing of WebAssembly, components or capabilities: it
//! takes plain Rust values and answers with JSON text or a [`BackendError`].
//! The host's import layer (`crate::imports`) checks capabilities, journals,
//! and then calls one of these traits.

mod unavailable;

use std::sync::Arc;

pub use unavailable::Unavailable;

/// Why a backend call failed, in the same terms as the WIT `error-code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    Denied,
    NotFound,
    Conflict,
    Timeout,
    Unavailable,
    Invalid,
    Internal,
}

impl ErrorCode {
    /// The WIT spelling (`not-found`), also used in journals.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Denied => "denied",
            ErrorCode::NotFound => "not-found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Invalid => "invalid",
            ErrorCode::Internal => "internal",
        }
    }
}

/// A failed backend call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct BackendError {
    pub code: ErrorCode,
    pub message: String,
}

impl BackendError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        BackendError { code, message: message.into() }
    }
}

/// What a backend call returns.
pub type BackendResult<T> = Result<T, BackendError>;

/// One Kubernetes object by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// Which objects to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListOptions {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
}

/// What to wait for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitFor {
    Condition { condition_type: String, status: String },
    Field { pointer: String, value: String },
    Deleted,
}

/// How a patch body is interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

/// kubectl drain's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainOptions {
    pub ignore_daemonsets: bool,
    pub delete_emptydir_data: bool,
    pub force: bool,
    pub grace_period_seconds: Option<u32>,
    pub timeout_ms: u64,
}

/// What a command run in a Pod produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The Kubernetes API. Objects are JSON text.
#[async_trait::async_trait]
pub trait Kube: Send + Sync {
    async fn get(&self, object: &ObjectRef) -> BackendResult<String>;
    async fn list(&self, options: &ListOptions) -> BackendResult<String>;
    async fn wait_for(&self, object: &ObjectRef, until: &WaitFor, timeout_ms: u64) -> BackendResult<String>;
    async fn patch(&self, object: &ObjectRef, patch_type: PatchType, body: &str) -> BackendResult<String>;
    async fn delete(&self, object: &ObjectRef, grace_period_seconds: Option<u32>) -> BackendResult<()>;
    async fn scale(&self, object: &ObjectRef, replicas: u32) -> BackendResult<()>;
    async fn evict(&self, namespace: Option<&str>, pod: &str) -> BackendResult<()>;
    async fn set_unschedulable(&self, node: &str, unschedulable: bool) -> BackendResult<()>;
    async fn drain(&self, node: &str, options: &DrainOptions) -> BackendResult<String>;
    async fn exec(&self, namespace: Option<&str>, pod: &str, container: Option<&str>, command: &[String]) -> BackendResult<ExecOutput>;
}

/// PostgreSQL members, by logical name.
#[async_trait::async_trait]
pub trait Postgres: Send + Sync {
    /// Run `sql` in a READ ONLY transaction; rows as a JSON array of objects.
    async fn query(&self, member: &str, sql: &str, params: &[String]) -> BackendResult<String>;
    /// Run one statement; rows affected.
    async fn execute(&self, member: &str, sql: &str, params: &[String]) -> BackendResult<u64>;
}

/// Redis members, by logical name.
#[async_trait::async_trait]
pub trait Redis: Send + Sync {
    /// Run one command; the reply as JSON.
    async fn command(&self, member: &str, args: &[String]) -> BackendResult<String>;
}

/// MongoDB members, by logical name.
#[async_trait::async_trait]
pub trait Mongo: Send + Sync {
    /// Run a command document against `db`; the reply as JSON.
    async fn run_command(&self, member: &str, db: &str, command: &str) -> BackendResult<String>;
}

/// The backends one run uses.
#[derive(Clone)]
pub struct Backends {
    pub kube: Arc<dyn Kube>,
    pub postgres: Arc<dyn Postgres>,
    pub redis: Arc<dyn Redis>,
    pub mongo: Arc<dyn Mongo>,
}

impl Backends {
    /// Backends that answer every call with `unavailable`, saying which
    /// issue brings the real one.
    pub fn unavailable(target: &str) -> Self {
        let target: Arc<str> = target.into();
        Backends {
            kube: Arc::new(Unavailable::new("Kubernetes", "#4 (kube-rs backend) and #3 (the lab)", target.clone())),
            postgres: Arc::new(Unavailable::new("PostgreSQL", "#5", target.clone())),
            redis: Arc::new(Unavailable::new("Redis", "#6", target.clone())),
            mongo: Arc::new(Unavailable::new("MongoDB", "#7", target)),
        }
    }
}
