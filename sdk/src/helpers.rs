//! Helpers for the JSON payloads and for waiting on the host clock.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::kube::{self, ListOptions, ObjectRef};
use crate::report::{self, StepOutcome};
use crate::{clock, Error};

/// Parse the configuration JSON the host passes to `evaluate` or `run`.
pub fn parse_config<T: DeserializeOwned>(config: &str) -> Result<T, Error> {
    serde_json::from_str(config).map_err(|e| Error::invalid(format!("configuration: {e}")))
}

/// Poll `condition` on the host clock every `interval_ms` until it yields a
/// value, fails, or `timeout_ms` passes (then a `timeout` error naming `what`).
pub fn wait_until<T>(what: &str, timeout_ms: u64, interval_ms: u64, mut condition: impl FnMut() -> Result<Option<T>, Error>) -> Result<T, Error> {
    let start = clock::now();
    loop {
        if let Some(value) = condition()? {
            return Ok(value);
        }
        let elapsed = clock::now().saturating_sub(start);
        if elapsed >= timeout_ms {
            return Err(Error::timeout(format!("{what}: not done after {timeout_ms} ms")));
        }
        clock::sleep(interval_ms.min(timeout_ms - elapsed));
    }
}

/// Run `body` as a named step of a pattern: begun, ended with its outcome,
/// timed in the run report.
pub fn step<T>(name: &str, description: &str, body: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    report::step_begin(name, description);
    let result = body();
    match &result {
        Ok(_) => report::step_end(name, StepOutcome::Succeeded, ""),
        Err(e) => report::step_end(name, StepOutcome::Failed, &format!("{}: {}", e.code, e.message)),
    }
    result
}

/// Whether a Pod object has the condition `Ready` = `True`.
pub fn pod_is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|conditions| conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

impl ObjectRef {
    /// An object in the target's default namespace.
    pub fn named(api_version: &str, kind: &str, name: &str) -> Self {
        ObjectRef { api_version: api_version.into(), kind: kind.into(), namespace: None, name: name.into() }
    }

    /// The same object in `namespace`.
    pub fn in_namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.into());
        self
    }
}

impl ListOptions {
    /// All objects of a kind in the target's default namespace.
    pub fn of(api_version: &str, kind: &str) -> Self {
        ListOptions { api_version: api_version.into(), kind: kind.into(), namespace: None, label_selector: None, field_selector: None }
    }

    /// Only objects matching a label selector (`app=postgres`).
    pub fn labels(mut self, selector: &str) -> Self {
        self.label_selector = (!selector.is_empty()).then(|| selector.into());
        self
    }

    /// Only objects in `namespace` (`*` for all).
    pub fn in_namespace(mut self, namespace: &str) -> Self {
        self.namespace = (!namespace.is_empty()).then(|| namespace.into());
        self
    }
}

/// `kube-read.get`, parsed.
pub fn get_json(object: &ObjectRef) -> Result<Value, Error> {
    let text = kube::get(object)?;
    serde_json::from_str(&text).map_err(|e| Error::internal(format!("host returned invalid JSON: {e}")))
}

/// `kube-read.list`, parsed into the objects.
pub fn list_json(options: &ListOptions) -> Result<Vec<Value>, Error> {
    let text = kube::list(options)?;
    match serde_json::from_str(&text) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(_) => Err(Error::internal("host returned a list that is not a JSON array")),
        Err(e) => Err(Error::internal(format!("host returned invalid JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pod_readiness() {
        let ready = serde_json::json!({"status": {"conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}]}});
        let not_ready = serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        assert!(pod_is_ready(&ready));
        assert!(!pod_is_ready(&not_ready));
        assert!(!pod_is_ready(&serde_json::json!({})));
    }
}
