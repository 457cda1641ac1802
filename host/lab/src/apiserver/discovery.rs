//! Discovery (`/version`, `/api`, `/apis`, resource lists) and the minimal
//! OpenAPI v3 documents kubectl needs to use server-side field validation.

use serde_json::{Value, json};

use super::resources::{GROUPS, RESOURCES, Resource};

/// The Kubernetes version the lab speaks.
pub(crate) const MAJOR: &str = "1";
pub(crate) const MINOR: &str = "32";
pub(crate) const GIT_VERSION: &str = "v1.32.0-runner-lab";

/// The version document for `git_version` (`v1.30.5`), or the lab's own
/// when no control plane version was set.
pub(crate) fn version(git_version: Option<&str>) -> Value {
    let git = git_version.unwrap_or(GIT_VERSION);
    let mut parts = git.trim_start_matches('v').split('.');
    let (major, minor) = match git_version {
        Some(_) => (parts.next().unwrap_or(MAJOR).to_string(), parts.next().unwrap_or(MINOR).to_string()),
        None => (MAJOR.to_string(), MINOR.to_string()),
    };
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": git,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub(crate) fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group(name: &str) -> Value {
    let gv = json!({"groupVersion": format!("{name}/v1"), "version": "v1"});
    json!({"name": name, "versions": [gv.clone()], "preferredVersion": gv})
}

pub(crate) fn api_group_list() -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": GROUPS.iter().map(|g| group(g)).collect::<Vec<_>>()})
}

pub(crate) fn api_group(name: &str) -> Option<Value> {
    GROUPS.contains(&name).then(|| {
        let mut g = group(name);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        g
    })
}

fn resource_entry(r: &Resource) -> Vec<Value> {
    let mut main = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs(),
        "storageVersionHash": storage_hash(r),
    });
    if !r.short_names.is_empty() {
        main["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        main["categories"] = json!(r.categories);
    }
    let mut out = vec![main];
    for s in r.subresources {
        let mut e = json!({
            "name": format!("{}/{}", r.plural, s.name),
            "singularName": "",
            "namespaced": r.namespaced,
            "kind": if s.kind.is_empty() { r.kind } else { s.kind },
            "verbs": s.verbs,
        });
        if !s.group.is_empty() {
            e["group"] = json!(s.group);
        }
        if !s.version.is_empty() {
            e["version"] = json!(s.version);
        }
        out.push(e);
    }
    out
}

fn storage_hash(r: &Resource) -> String {
    // A stable short hash of the resource's identity, like the real field.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in r.api_version().bytes().chain(r.kind.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let bytes = h.to_be_bytes();
    base64_short(&bytes)
}

fn base64_short(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)[..11].to_string()
}

/// The APIResourceList of a group version, or None if not served.
pub(crate) fn resource_list(group: &str, version: &str) -> Option<Value> {
    if version != "v1" || !(group.is_empty() || GROUPS.contains(&group)) {
        return None;
    }
    let gv = if group.is_empty() { "v1".to_string() } else { format!("{group}/v1") };
    let resources: Vec<Value> = RESOURCES.iter().filter(|r| r.group == group).flat_map(resource_entry).collect();
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

/// `/openapi/v3`: one document per group version.
pub(crate) fn openapi_v3_root() -> Value {
    let mut paths = serde_json::Map::new();
    paths.insert("api/v1".into(), json!({"serverRelativeURL": "/openapi/v3/api/v1?hash=RUNNERLAB1"}));
    for g in GROUPS {
        paths.insert(format!("apis/{g}/v1"), json!({"serverRelativeURL": format!("/openapi/v3/apis/{g}/v1?hash=RUNNERLAB1")}));
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/v1`: the operations of
/// each resource (enough for kubectl to see that `fieldValidation` is
/// supported). No schemas: kubectl then computes client-side apply patches
/// from its built-in types, which know every list's merge key.
pub(crate) fn openapi_v3_group_version(group: &str, version: &str) -> Option<Value> {
    if version != "v1" || !(group.is_empty() || GROUPS.contains(&group)) {
        return None;
    }
    let prefix = if group.is_empty() { "/api/v1".to_string() } else { format!("/apis/{group}/v1") };
    let mut paths = serde_json::Map::new();
    for r in RESOURCES.iter().filter(|r| r.group == group) {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        ]);
        let op = |action: &str| {
            json!({
                "operationId": format!("{action}{}", r.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
            })
        };
        let item = if r.namespaced { format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural) } else { format!("{prefix}/{}/{{name}}", r.plural) };
        let collection = if r.namespaced { format!("{prefix}/namespaces/{{namespace}}/{}", r.plural) } else { format!("{prefix}/{}", r.plural) };
        paths.insert(item, json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}));
        paths.insert(collection, json!({"get": op("list"), "post": op("post")}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
