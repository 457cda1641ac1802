//! The four PATCH content types: JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902), strategic merge patch (lists merged by their Kubernetes merge
//! keys) and server-side apply (treated as a strategic merge).

use serde_json::{Map, Value};

use super::error::ApiError;

/// How a PATCH body is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/strategic-merge-patch+json`: like a merge patch, but lists
    /// with a merge key (containers by name, ports, env, conditions by type,
    /// ...) are merged element by element; `$patch: delete|replace` honoured.
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply): the YAML or JSON
    /// body is merged like a strategic merge patch; creates the object when
    /// it does not exist. Field ownership is not tracked.
    Apply,
}

impl PatchType {
    /// The patch type for a request's `Content-Type`, if it is one.
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let ct = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match ct.as_str() {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// Parses a patch body (JSON, or YAML for apply patches).
pub(crate) fn parse_body(patch_type: PatchType, body: &[u8]) -> Result<Value, ApiError> {
    match patch_type {
        PatchType::Apply => parse_yaml_or_json(body),
        _ => serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}"))),
    }
}

/// Parses YAML (a superset of JSON) into a JSON value.
pub(crate) fn parse_yaml_or_json(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let y: serde_yaml::Value = serde_yaml::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    serde_json::to_value(y).map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))
}

/// Applies a parsed patch to `target`, returning the patched object.
pub(crate) fn apply(target: &Value, patch_type: PatchType, patch: &Value) -> Result<Value, ApiError> {
    let mut out = target.clone();
    match patch_type {
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("merge patch must be a JSON object"));
            }
            json_patch::merge(&mut out, patch);
        }
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}")))?;
            json_patch::patch(&mut out, &ops)
                .map_err(|e| ApiError::new(422, "Invalid", format!("the server rejected our request due to an error in our request: {e}")))?;
        }
        PatchType::StrategicMerge | PatchType::Apply => {
            let Value::Object(p) = patch else {
                return Err(ApiError::bad_request("strategic merge patch must be a JSON object"));
            };
            match &mut out {
                Value::Object(o) => merge_map(o, p),
                _ => out = strip(patch),
            }
        }
    }
    Ok(out)
}

/// The merge key of a list field, by the field's name (and, for `ports`, by
/// whether its elements are container ports or service ports).
fn merge_key(field: &str, elems: &[&Value]) -> Option<&'static str> {
    Some(match field {
        "containers" | "initContainers" | "ephemeralContainers" | "imagePullSecrets" | "volumes" | "env" | "resourceClaims" | "schedulingGates" => "name",
        "ownerReferences" => "uid",
        "conditions" => "type",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "hostAliases" | "podIPs" | "hostIPs" => "ip",
        "addresses" if elems.iter().any(|e| e.get("type").is_some()) => "type",
        "taints" => "key",
        "topologySpreadConstraints" => "topologyKey",
        "ports" => {
            if elems.iter().any(|e| e.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    })
}

/// Lists of strings merged as sets.
fn primitive_merge(field: &str) -> bool {
    field == "finalizers"
}

fn is_directive(k: &str) -> bool {
    k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") || k.starts_with("$deleteFromPrimitiveList/")
}

/// A patch value with directives and nulls removed, for insertion.
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().filter(|(k, v)| !is_directive(k) && !v.is_null()).map(|(k, v)| (k.clone(), strip(v))).collect()),
        Value::Array(a) => {
            Value::Array(a.iter().filter(|e| !(e.is_object() && e.get("$patch").is_some() && e.as_object().is_some_and(|m| m.len() == 1))).map(strip).collect())
        }
        other => other.clone(),
    }
}

fn merge_map(orig: &mut Map<String, Value>, patch: &Map<String, Value>) {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *orig = match strip(&Value::Object(patch.clone())) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            return;
        }
        Some("delete") => {
            orig.clear();
            return;
        }
        _ => {}
    }
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(del)) = (orig.get_mut(field), v.as_array()) {
                list.retain(|e| !del.contains(e));
            }
            continue;
        }
        if is_directive(k) {
            continue;
        }
        match v {
            Value::Null => {
                orig.remove(k);
            }
            Value::Object(pm) => {
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    orig.remove(k);
                } else if let Some(Value::Object(om)) = orig.get_mut(k) {
                    merge_map(om, pm);
                } else {
                    orig.insert(k.clone(), strip(v));
                }
            }
            Value::Array(pl) => {
                let merged = merge_list(k, orig.get(k).and_then(Value::as_array), pl);
                orig.insert(k.clone(), Value::Array(merged));
            }
            other => {
                orig.insert(k.clone(), other.clone());
            }
        }
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        orig.retain(|k, _| keep.contains(&k.as_str()));
    }
}

fn merge_list(field: &str, orig: Option<&Vec<Value>>, patch: &[Value]) -> Vec<Value> {
    let replace = patch.iter().any(|e| e.get("$patch").and_then(Value::as_str) == Some("replace"));
    let orig_elems: Vec<Value> = orig.cloned().unwrap_or_default();
    if replace {
        return match strip(&Value::Array(patch.to_vec())) {
            Value::Array(a) => a,
            _ => vec![],
        };
    }
    if primitive_merge(field) && patch.iter().all(|e| !e.is_object()) {
        let mut out = orig_elems;
        for e in patch {
            if !out.contains(e) {
                out.push(e.clone());
            }
        }
        return out;
    }
    let all: Vec<&Value> = orig_elems.iter().chain(patch.iter()).collect();
    let objects = patch.iter().all(Value::is_object);
    match merge_key(field, &all) {
        Some(key) if objects => {
            let mut out = orig_elems;
            for pe in patch {
                let id = pe.get(key);
                if pe.get("$patch").and_then(Value::as_str) == Some("delete") {
                    out.retain(|e| e.get(key) != id);
                    continue;
                }
                match out.iter_mut().find(|e| id.is_some() && e.get(key) == id) {
                    Some(Value::Object(existing)) => {
                        if let Value::Object(pm) = pe {
                            merge_map(existing, pm);
                        }
                    }
                    _ => out.push(strip(pe)),
                }
            }
            out
        }
        _ => match strip(&Value::Array(patch.to_vec())) {
            Value::Array(a) => a,
            _ => vec![],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "image": "x:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "b", "image": "y:1"}
        ], "tolerations": [{"key": "k"}]}});
        let patch = json!({"spec": {"containers": [
            {"name": "a", "image": "x:2", "env": [{"name": "B", "value": "2"}]},
            {"name": "c", "image": "z:1"},
            {"name": "b", "$patch": "delete"}
        ], "tolerations": [{"key": "j"}]}});
        let out = apply(&pod, PatchType::StrategicMerge, &patch).unwrap();
        assert_eq!(
            out,
            json!({"spec": {"containers": [
                {"name": "a", "image": "x:2", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "c", "image": "z:1"}
            ], "tolerations": [{"key": "j"}]}})
        );
    }

    #[test]
    fn strategic_conditions_ports_and_nulls() {
        let obj = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
            "spec": {"ports": [{"port": 80, "name": "http"}]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Other", "status": "True"}]}});
        let patch = json!({"metadata": {"labels": {"a": null}, "finalizers": ["y"]},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let out = apply(&obj, PatchType::StrategicMerge, &patch).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        assert_eq!(out["spec"]["ports"], json!([{"port": 80, "name": "http", "targetPort": 8080}, {"port": 443}]));
        assert_eq!(out["status"]["conditions"][0], json!({"type": "Ready", "status": "True"}));
        assert_eq!(out["status"]["conditions"][1]["type"], "Other");
    }

    #[test]
    fn merge_and_json_patch() {
        let obj = json!({"spec": {"selector": {"a": "1"}, "list": [1, 2]}});
        let out = apply(&obj, PatchType::Merge, &json!({"spec": {"selector": {"b": "2"}, "list": [3]}})).unwrap();
        assert_eq!(out, json!({"spec": {"selector": {"a": "1", "b": "2"}, "list": [3]}}));
        let out = apply(&obj, PatchType::Json, &json!([{"op": "replace", "path": "/spec/selector/a", "value": "9"}])).unwrap();
        assert_eq!(out["spec"]["selector"]["a"], "9");
        assert!(apply(&obj, PatchType::Json, &json!([{"op": "test", "path": "/spec/x", "value": 1}])).is_err());
        assert_eq!(parse_yaml_or_json(b"a: 1\nb: [x]\n").unwrap(), json!({"a": 1, "b": ["x"]}));
    }
}
