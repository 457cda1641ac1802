//! Helpers for the JSON payloads: configuration, Kubernetes objects and lists.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;
use crate::kube::{self, ListOptions, ObjectRef};

/// Parse the configuration JSON the host passes to `evaluate` or `run`.
pub fn parse_config<T: DeserializeOwned>(config: &str) -> Result<T, Error> {
    serde_json::from_str(config).map_err(|e| Error::invalid(format!("configuration: {e}")))
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
