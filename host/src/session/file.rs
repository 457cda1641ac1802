//! The session file: documented JSON, written by `runner exec --record` and
//! read by `runner exec --replay` and `runner test`.
//!
//! ```json
//! {
//!   "format": "runner-session/1",
//!   "policy": {"name": "pg-preflight", "version": "0.1.0", "digest": "sha256:..."},
//!   "recorded": "2026-11-21T20:06:40.112Z",
//!   "config": {"min-sync": 2},
//!   "gates": {},
//!   "calls": [
//!     {"component": "pg-preflight", "call": "kube-read.get",
//!      "args": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "postgres-cluster", "namespace": null},
//!      "response": {"apiVersion": "apps/v1", "kind": "StatefulSet", "...": "..."}},
//!     {"component": "pg-preflight", "call": "kube-read.get",
//!      "args": {"apiVersion": "batch/v1", "kind": "Job", "name": "postgres-backup", "namespace": null},
//!      "error": {"code": "not-found", "message": "jobs.batch \"postgres-backup\" not found"}},
//!     {"component": "pg-preflight", "call": "clock.now", "response": 1763755600112}
//!   ]
//! }
//! ```
//!
//! - `format` is required and must be `runner-session/1`. `policy`,
//!   `recorded`, `config` and `gates` say what was recorded; a replay only
//!   warns when the policy's digest differs. `"dry-run": true` marks a
//!   session recorded with `--dry-run`: it is replayed as a dry run.
//! - `calls` holds every host interaction in the order the components made
//!   them, a pattern's and its gates' interleaved. Each has the `component`
//!   that made it, the `call` (`interface.function`, as in the journal), the
//!   `args` as the journal writes them (secrets redacted; omitted when the
//!   call has none), and exactly one of:
//!   - `response`: what the call returned, as JSON. Text that is JSON
//!     (Kubernetes objects, database rows, Redis replies) is stored parsed, so
//!     it can be read and edited; the component gets it back as compact JSON.
//!     A call that returns nothing has no `response` (or `null`). `exec`
//!     answers `{"exitCode": 0, "stdout": "", "stderr": ""}`; `gates.run`
//!     the gate's result: its verdict `{"outcome": "pass", "reasons": [...],
//!     "evidence": {...}}`, its own error `{"error": {...}}`, or
//!     `{"stopped": "<why>"}` when the sandbox stopped it.
//!   - `error`: `{"code": "not-found", "message": "..."}` with a WIT error
//!     code (`denied`, `not-found`, `conflict`, `timeout`, `unavailable`,
//!     `invalid`, `internal`): the call failed and the component saw it fail.
//!   - `stopped`: `"deadline"`: the sandbox's deadline stopped the run
//!     during this call; a replay stops there too.
//! - A replay matches each call by component, call and args, in order; SQL
//!   (`args.sql`) is compared with its whitespace normalised. The first
//!   difference is reported by its key path with both values.
//! - `clock.now` is recorded with its answer and `clock.sleep` with its `ms`;
//!   a replay answers both from the session and never really sleeps.
//! - `gates.run` is recorded with the pattern's input and the verdict, and
//!   the gate's own calls follow it. A replay runs the bound gate again,
//!   answering its calls from the session; the recorded verdict is only
//!   there to read.
//! - Not recorded: calls refused by the capability check and mutations
//!   answered from the `--dry-run` plan (neither reaches a backend), the
//!   `report` interface (the run's output, not its input), and the host's own
//!   lookups (a member's Pod address, credentials), which never pass through
//!   the component's imports.
//!
//! Responses have secrets removed before they are written: a Secret's
//! `data`/`stringData` values, an environment variable's value when its name
//! looks like a password or token, and string values under keys such as
//! `password` or `token`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::ErrorCode;

/// The `format` every session file carries.
pub const FORMAT: &str = "runner-session/1";

/// A whole session file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// The policy that was run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyInfo>,
    /// When the recording started (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<String>,
    /// The configuration the policy received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// Gate bound to each slot of a pattern, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gates: BTreeMap<String, String>,
    /// Recorded with `--dry-run`: its mutations were answered from the plan
    /// and are not in `calls`, so it is replayed as a dry run too.
    #[serde(default, rename = "dry-run", skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Every host interaction, in order.
    pub calls: Vec<Call>,
}

/// Which policy a session was recorded with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyInfo {
    /// The manifest's name.
    pub name: String,
    /// The manifest's version.
    #[serde(default)]
    pub version: String,
    /// `sha256:...` of the component file.
    #[serde(default)]
    pub digest: String,
}

/// One host interaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    /// The component that made the call.
    pub component: String,
    /// The fleet member it was made on, when a pattern ran the component on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// `interface.function`, as in the journal.
    pub call: String,
    /// The arguments as the journal writes them (redacted).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub args: Value,
    /// What the call returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    /// How the call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CallError>,
    /// `deadline` when the sandbox stopped the run during this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// A failed call as the component saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallError {
    /// A WIT error code (`not-found`).
    pub code: String,
    /// The message.
    pub message: String,
}

impl Call {
    /// `component: call {args}`, how messages show a call.
    pub fn describe(&self) -> String {
        match &self.member {
            Some(member) => format!("{} (on {member})", describe(&self.component, &self.call, &self.args)),
            None => describe(&self.component, &self.call, &self.args),
        }
    }
}

/// `component: call {args}`.
pub(crate) fn describe(component: &str, call: &str, args: &Value) -> String {
    if args.is_null() { format!("{component}: {call}") } else { format!("{component}: {call} {args}") }
}

impl SessionFile {
    /// Read and check a session file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read the session: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parse and check a session's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: SessionFile = serde_json::from_str(text).map_err(|e| format!("not a session file: {e}"))?;
        if file.format != FORMAT {
            return Err(format!("format `{}` is not `{FORMAT}`", file.format));
        }
        for (i, call) in file.calls.iter().enumerate() {
            let answers = usize::from(call.response.is_some()) + usize::from(call.error.is_some()) + usize::from(call.stopped.is_some());
            if answers > 1 {
                return Err(format!("call {} ({}): holds more than one of `response`, `error` and `stopped`", i + 1, call.call));
            }
            if let Some(error) = &call.error
                && ErrorCode::from_name(&error.code).is_none()
            {
                return Err(format!("call {} ({}): unknown error code `{}`", i + 1, call.call, error.code));
            }
            if call.stopped.as_deref().is_some_and(|s| s != "deadline") {
                return Err(format!("call {} ({}): `stopped` can only be `deadline`", i + 1, call.call));
            }
        }
        Ok(file)
    }

    /// Write the session, replacing `path`.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        text.push('\n');
        std::fs::write(path, text)
    }
}
