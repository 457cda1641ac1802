//! Kubernetes objects a pattern is given to apply (`manifests`): read from
//! the configuration once, so a pattern that hands them on to another can
//! refuse a bad list before it changes anything.

use runner_sdk::prelude::*;

/// One object to apply: where it lives and the body to apply.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The object it names.
    pub object: ObjectRef,
    /// The object as given.
    pub body: Value,
}

impl Manifest {
    /// `Deployment shop/web` (`Deployment web` in the default namespace).
    pub fn describe(&self) -> String {
        match &self.object.namespace {
            Some(ns) => format!("{} {ns}/{}", self.object.kind, self.object.name),
            None => format!("{} {}", self.object.kind, self.object.name),
        }
    }

    /// Whether it is a Deployment (`apps/v1`), whose rollout can be waited for.
    pub fn is_deployment(&self) -> bool {
        self.object.api_version == "apps/v1" && self.object.kind == "Deployment"
    }
}

/// The objects in `text`: a JSON array of objects, or one object (a test
/// case's YAML list arrives as JSON text). Each needs `apiVersion`, `kind`
/// and `metadata.name`; `metadata.namespace` absent means the target's
/// default namespace (and nothing, for a cluster-scoped kind).
pub fn parse(text: &str) -> Result<Vec<Manifest>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| format!("manifests: not a JSON list of objects: {e}"))?;
    let items = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        other => return Err(format!("manifests: `{other}` is neither a list of objects nor an object")),
    };
    items.into_iter().enumerate().map(|(i, body)| manifest(i, body)).collect()
}

fn manifest(index: usize, body: Value) -> Result<Manifest, String> {
    let field = |value: &Value| value.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let (Some(api_version), Some(kind), Some(name)) = (field(&body["apiVersion"]), field(&body["kind"]), field(&body["metadata"]["name"])) else {
        return Err(format!("manifests: item {index} needs apiVersion, kind and metadata.name"));
    };
    let namespace = field(&body["metadata"]["namespace"]);
    Ok(Manifest { object: ObjectRef { api_version, kind, namespace, name }, body })
}

/// The smallest object that scales a Deployment to `replicas` by server-side
/// apply: only the field the applier means to own.
pub fn deployment_replicas(namespace: &str, name: &str, replicas: u32) -> Value {
    let mut metadata = json!({"name": name});
    if !namespace.is_empty() {
        metadata["namespace"] = json!(namespace);
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": {"replicas": replicas}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_single_objects_name_what_they_apply() {
        let list = parse(r#"[{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop"}},{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"}}]"#).unwrap();
        assert_eq!(list.iter().map(Manifest::describe).collect::<Vec<_>>(), ["Deployment shop/web", "Service web"]);
        assert!(list[0].is_deployment() && !list[1].is_deployment());
        assert_eq!(list[1].object.namespace, None);
        assert_eq!(parse(&deployment_replicas("", "web", 0).to_string()).unwrap()[0].describe(), "Deployment web");
        assert_eq!(parse(" ").unwrap().len(), 0);
        assert_eq!(parse("[]").unwrap().len(), 0);
        assert!(parse(r#"[{"kind":"Service"}]"#).unwrap_err().contains("item 0 needs apiVersion"));
        assert!(parse("3").unwrap_err().contains("neither a list"));
        assert!(parse("apiVersion: v1").unwrap_err().contains("not a JSON list"));
    }
}
