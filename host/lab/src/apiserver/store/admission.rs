//! Admission: what a body must be before it is stored (its apiVersion,
//! kind and metadata, its namespace existing and not terminating) and what
//! the API server fills in (a generated name, a Service's cluster address).

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{State, is_terminating};
use crate::apiserver::error::ApiError;
use crate::apiserver::resources::{self, Resource};

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes.iter().take(5).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

impl State {
    /// `prefix` and a random suffix, as `metadata.generateName` asks; a few
    /// tries to find a name not taken (a taken one fails later as AlreadyExists).
    pub(super) fn generate_name(&self, res: &Resource, ns: &str, prefix: &str) -> String {
        let mut name = String::new();
        for _ in 0..8 {
            name = format!("{prefix}{}", random_suffix());
            if self.get(res, ns, &name).is_none() {
                break;
            }
        }
        name
    }

    pub(super) fn check_namespace(&self, res: &Resource, ns: &str, name: &str) -> Result<(), ApiError> {
        if !res.namespaced {
            return Ok(());
        }
        let ns_res = resources::by_kind("v1", "Namespace").expect("namespaces");
        match self.get(ns_res, "", ns) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if is_terminating(n) => Err(ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                res.key(),
            ))
            .with_details(json!({"kind": res.plural, "group": res.group, "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]}))),
            Some(_) => Ok(()),
        }
    }

    /// Checks the body's apiVersion and kind (filling them in when absent).
    pub(super) fn check_type(res: &Resource, obj: &mut Value) -> Result<(), ApiError> {
        let Some(m) = obj.as_object_mut() else {
            return Err(ApiError::bad_request("the body of the request must be a JSON object"));
        };
        let name = m.get("metadata").and_then(|x| x.get("name")).and_then(Value::as_str).unwrap_or_default().to_string();
        match m.get("kind").and_then(Value::as_str) {
            None | Some("") => {
                m.insert("kind".into(), json!(res.kind));
            }
            Some(k) if k != res.kind => {
                return Err(ApiError::invalid(res.group, res.kind, &name, &[("kind".into(), format!("Invalid value: {k:?}: must be {}", res.kind))]));
            }
            _ => {}
        }
        match m.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => {
                m.insert("apiVersion".into(), json!(res.api_version()));
            }
            Some(v) if v != res.api_version() => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({})",
                    res.api_version()
                )));
            }
            _ => {}
        }
        match m.get("metadata") {
            None | Some(Value::Null) => {
                m.insert("metadata".into(), json!({}));
            }
            Some(Value::Object(_)) => {}
            Some(_) => {
                return Err(ApiError::invalid(
                    res.group,
                    res.kind,
                    "",
                    &[("metadata".into(), "Invalid value: metadata in body must be of type object".into())],
                ));
            }
        }
        Ok(())
    }

    pub(super) fn allocate_cluster_ip(&self, obj: &mut Value) -> Result<(), ApiError> {
        let spec = &obj["spec"];
        if spec.get("type").and_then(Value::as_str) == Some("ExternalName") {
            return Ok(());
        }
        if let Some(ip) = spec.get("clusterIP").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            let ip = ip.to_string();
            obj["spec"]["clusterIPs"] = json!([ip]);
            return Ok(());
        }
        let svc_res = resources::by_kind("v1", "Service").expect("services");
        let used: HashSet<String> =
            self.objects[resources::index(svc_res)].values().filter_map(|s| s.pointer("/spec/clusterIP").and_then(Value::as_str).map(str::to_string)).collect();
        for third in 2..=9u8 {
            for fourth in 1..=254u8 {
                let ip = format!("127.0.{third}.{fourth}");
                if !used.contains(&ip) {
                    obj["spec"]["clusterIP"] = json!(ip);
                    obj["spec"]["clusterIPs"] = json!([ip]);
                    return Ok(());
                }
            }
        }
        Err(ApiError::internal("failed to allocate a serviceIP: range is full"))
    }
}
