//! Least-privilege RBAC from capabilities (`runner review --rbac`): each
//! capability maps to the API verbs and resources the Kubernetes backend
//! uses to serve it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::{Value, json};

use super::{load_policy, short_digest};
use crate::caps::Capability;
use crate::caps::calls::{Rule, VERBS};
use crate::policy::Policy;

/// Where a rule applies: a Role covers namespaced kinds of one
/// namespace, a ClusterRole cluster-scoped kinds (and namespaced kinds
/// in every namespace).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Namespace,
    Cluster,
}

/// One rule: group, resource and the verbs on it, with the capabilities that need it.
#[derive(Default, Debug)]
struct Grant {
    verbs: BTreeSet<usize>,
    because: BTreeSet<String>,
}

/// API verbs in the order Kubernetes documents them.
const API_VERBS: &[&str] = &["get", "list", "watch", "create", "update", "patch", "delete"];

/// The rules of one policy.
#[derive(Default, Debug)]
pub struct Roles {
    name: String,
    version: String,
    digest: String,
    rules: BTreeMap<(Place, String, String), Grant>,
    notes: Vec<String>,
}

/// Cluster-scoped kinds, by (group, kind).
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Node"),
    ("", "Namespace"),
    ("", "PersistentVolume"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("networking.k8s.io", "IngressClass"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("apiregistration.k8s.io", "APIService"),
];

/// The resource (plural) of a kind, as the API server names it.
pub fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    match lower.as_str() {
        "endpoints" => return lower,
        "ingress" => return "ingresses".into(),
        _ => {}
    }
    if lower.ends_with('s') || lower.ends_with("ch") || lower.ends_with("sh") || lower.ends_with('x') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y').filter(|stem| !stem.ends_with(['a', 'e', 'i', 'o', 'u'])) {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// What a capability scope (`apps/v1/StatefulSet`, `apps/v1/*`, none)
/// covers: group, resource and where; `*` where a wildcard leaves it open.
fn covers(scope: Option<&str>) -> (String, String, Vec<Place>) {
    let any = || ("*".to_string(), "*".to_string(), vec![Place::Namespace, Place::Cluster]);
    let Some(scope) = scope else { return any() };
    let (text, open) = match scope.strip_suffix('*') {
        Some(prefix) => (prefix, true),
        None => (scope, false),
    };
    let parts: Vec<&str> = text.split('/').collect();
    let is_version = |p: &str| p.strip_prefix('v').is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    // `v1/Pod` is the core group; `apps/v1/StatefulSet` a named one.
    let (group, kind, group_known) = if is_version(parts[0]) && (parts.len() > 1 || !open) {
        (String::new(), parts.get(1).copied(), true)
    } else {
        (parts[0].to_string(), parts.get(2).copied(), parts.len() > 1 || !open)
    };
    let group = if group_known { group } else { "*".into() };
    let kind_is_last = parts.len() == if group.is_empty() { 2 } else { 3 };
    match kind {
        // An open (`*`) last segment is a kind prefix: every resource.
        Some(kind) if !(kind.is_empty() || open && kind_is_last) => {
            let place = if CLUSTER_SCOPED.contains(&(group.as_str(), kind)) { Place::Cluster } else { Place::Namespace };
            (group, plural(kind), vec![place])
        }
        _ => (group, "*".into(), vec![Place::Namespace, Place::Cluster]),
    }
}

impl Roles {
    fn grant(&mut self, place: Place, group: &str, resource: &str, verbs: &[&str], because: &str) {
        let grant = self.rules.entry((place, group.to_string(), resource.to_string())).or_default();
        grant.verbs.extend(verbs.iter().filter_map(|v| API_VERBS.iter().position(|known| known == v)));
        grant.because.insert(because.to_string());
    }

    /// The rules one capability needs, as the call table lists them.
    fn add(&mut self, cap: &Capability, because: &str) {
        let matching = VERBS.iter().filter(|v| (cap.interface() == "*" || cap.interface() == v.interface) && (cap.verb() == "*" || cap.verb() == v.verb));
        for rule in matching.flat_map(|v| v.rbac) {
            match *rule {
                Rule::Fixed { cluster, group, resource, verbs } => {
                    self.grant(if cluster { Place::Cluster } else { Place::Namespace }, group, resource, verbs, because)
                }
                Rule::Scoped { subresource, verbs } => {
                    let (group, resource, places) = covers(cap.scope());
                    let resource = subresource.map_or(resource.clone(), |sub| format!("{resource}/{sub}"));
                    for place in places {
                        self.grant(place, &group, &resource, verbs, because);
                    }
                }
            }
        }
    }

    fn role(&self, place: Place) -> Option<Value> {
        let rules: Vec<Value> = self
            .rules
            .iter()
            .filter(|((p, _, _), _)| *p == place)
            .map(|((_, group, resource), grant)| json!({"apiGroups": [group], "resources": [resource], "verbs": grant.verbs.iter().map(|v| API_VERBS[*v]).collect::<Vec<_>>()}))
            .collect();
        if rules.is_empty() && place == Place::Cluster {
            return None;
        }
        let kind = if place == Place::Cluster { "ClusterRole" } else { "Role" };
        Some(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": format!("runner-{}", self.name), "labels": {"app.kubernetes.io/managed-by": "runner"}, "annotations": {"runner/policy": format!("{} {} {}", self.name, self.version, self.digest)}},
            "rules": rules,
        }))
    }

    /// A `List` of the Role and (if needed) the ClusterRole, as JSON.
    pub fn json(&self) -> Value {
        let items: Vec<Value> = [self.role(Place::Namespace), self.role(Place::Cluster)].into_iter().flatten().collect();
        json!({"apiVersion": "v1", "kind": "List", "items": items})
    }

    /// The roles as YAML, each rule annotated with the capabilities it serves.
    pub fn yaml(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut out = String::new();
        let _ = writeln!(out, "# RBAC for {} {} ({}): exactly what its capabilities need.", self.name, self.version, self.digest);
        let _ = writeln!(out, "# Bind the Role in the target namespace (RoleBinding) and the ClusterRole, if any,");
        let _ = writeln!(out, "# cluster-wide (ClusterRoleBinding) to the identity the runner uses.");
        for note in &self.notes {
            let _ = writeln!(out, "# {note}");
        }
        for place in [Place::Namespace, Place::Cluster] {
            let Some(role) = self.role(place) else { continue };
            if place == Place::Cluster {
                let _ = writeln!(out, "---");
            }
            let _ = writeln!(out, "apiVersion: rbac.authorization.k8s.io/v1\nkind: {}", role["kind"].as_str().unwrap_or_default());
            let _ = writeln!(
                out,
                "metadata:\n  name: {}\n  labels:\n    app.kubernetes.io/managed-by: runner",
                q(role["metadata"]["name"].as_str().unwrap_or_default())
            );
            let _ = writeln!(out, "  annotations:\n    runner/policy: {}", q(role["metadata"]["annotations"]["runner/policy"].as_str().unwrap_or_default()));
            let rules: Vec<_> = self.rules.iter().filter(|((p, _, _), _)| *p == place).collect();
            if rules.is_empty() {
                let _ = writeln!(out, "rules: []  # no capability of this policy touches Kubernetes");
                continue;
            }
            let _ = writeln!(out, "rules:");
            for ((_, group, resource), grant) in rules {
                let because: Vec<&str> = grant.because.iter().map(String::as_str).collect();
                let verbs: Vec<String> = grant.verbs.iter().map(|v| q(API_VERBS[*v])).collect();
                let _ = writeln!(out, "  # {}", because.join(", "));
                let _ = writeln!(out, "  - apiGroups: [{}]\n    resources: [{}]\n    verbs: [{}]", q(group), q(resource), verbs.join(", "));
            }
        }
        out
    }
}

/// The roles `policy` needs: its own capabilities and, for a pattern,
/// those of the gates bound by default to its slots.
pub fn roles(policy: &Policy) -> Roles {
    let mut roles = Roles {
        name: policy.name().to_string(),
        version: policy.manifest.version.clone(),
        digest: short_digest(&policy.digest).to_string(),
        ..Roles::default()
    };
    for cap in policy.manifest.requested() {
        roles.add(&cap, &cap.to_string());
    }
    for (slot, gate) in &policy.manifest.gates {
        match load_policy(&gate.default) {
            Ok(bound) => {
                for cap in bound.manifest.requested() {
                    roles.add(&cap, &format!("{cap} (gate slot {slot}: {})", bound.name()));
                }
            }
            Err(e) => roles
                .notes
                .push(format!("gate slot {slot}: its default gate `{}` could not be loaded ({}); its rights are not included", gate.default, e.message)),
        }
    }
    if roles.rules.keys().any(|(_, _, resource)| resource == "*" || resource == "*/scale") {
        roles.notes.push("a capability without a kind (or with a `*` kind) can only be granted as `*`: request capabilities by kind for a smaller role".into());
    }
    roles
}

/// Roles for a list of capabilities, for tests.
#[cfg(test)]
pub fn for_capabilities(caps: &[&str]) -> Roles {
    let mut roles = Roles { name: "test".into(), ..Roles::default() };
    for cap in caps {
        let cap: Capability = cap.parse().unwrap();
        roles.add(&cap, &cap.to_string());
    }
    roles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(caps: &[&str]) -> Vec<(String, String, String, Vec<String>)> {
        let roles = for_capabilities(caps);
        let json = roles.json();
        let mut out = Vec::new();
        for item in json["items"].as_array().unwrap() {
            for rule in item["rules"].as_array().unwrap() {
                out.push((
                    item["kind"].as_str().unwrap().to_string(),
                    rule["apiGroups"][0].as_str().unwrap().to_string(),
                    rule["resources"][0].as_str().unwrap().to_string(),
                    rule["verbs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect(),
                ));
            }
        }
        out
    }

    fn rule(kind: &str, group: &str, resource: &str, verbs: &[&str]) -> (String, String, String, Vec<String>) {
        (kind.into(), group.into(), resource.into(), verbs.iter().map(|v| v.to_string()).collect())
    }

    #[test]
    fn plurals() {
        for (kind, plural_) in [
            ("Pod", "pods"),
            ("StatefulSet", "statefulsets"),
            ("Endpoints", "endpoints"),
            ("Ingress", "ingresses"),
            ("NetworkPolicy", "networkpolicies"),
            ("PodDisruptionBudget", "poddisruptionbudgets"),
            ("Gateway", "gateways"),
        ] {
            assert_eq!(plural(kind), plural_);
        }
    }

    #[test]
    fn verbs_map_to_api_verbs() {
        assert_eq!(rules(&["kube:list:v1/Pod"]), vec![rule("Role", "", "pods", &["list", "watch"])]);
        assert_eq!(rules(&["kube:get:apps/v1/StatefulSet"]), vec![rule("Role", "apps", "statefulsets", &["get", "list", "watch"])]);
        assert_eq!(rules(&["kube:patch:v1/Service", "kube:delete:v1/Service"]), vec![rule("Role", "", "services", &["patch", "delete"])]);
        assert_eq!(rules(&["kube:scale:apps/v1/StatefulSet"]), vec![rule("Role", "apps", "statefulsets/scale", &["get", "update", "patch"])]);
        assert_eq!(rules(&["kube:evict:v1/Pod"]), vec![rule("Role", "", "pods/eviction", &["create"])]);
        assert_eq!(rules(&["kube:exec:v1/Pod"]), vec![rule("Role", "", "pods/exec", &["get", "create"])]);
        assert_eq!(rules(&["kube:cordon:v1/Node"]), vec![rule("ClusterRole", "", "nodes", &["patch"])]);
        assert_eq!(rules(&["kube:get:v1/Node"]), vec![rule("ClusterRole", "", "nodes", &["get", "list", "watch"])]);
        let drain = rules(&["kube:drain:v1/Node"]);
        assert!(drain.iter().all(|r| r.0 == "ClusterRole"), "{drain:?}");
        for expected in [
            rule("ClusterRole", "", "nodes", &["patch"]),
            rule("ClusterRole", "", "pods/eviction", &["create"]),
            rule("ClusterRole", "", "pods", &["get", "list", "watch"]),
        ] {
            assert!(drain.contains(&expected), "{drain:?}");
        }
        assert_eq!(rules(&["postgres:query:pg-0"]), vec![rule("Role", "", "pods", &["get"]), rule("Role", "", "secrets", &["get"])]);
        assert!(rules(&["approval:request", "gates:run:x"]).is_empty());
    }

    #[test]
    fn wildcards_stay_wildcards() {
        assert_eq!(rules(&["kube:patch:apps/v1/*"]), vec![rule("Role", "apps", "*", &["patch"]), rule("ClusterRole", "apps", "*", &["patch"])]);
        assert_eq!(rules(&["kube:list:v1/*"]), vec![rule("Role", "", "*", &["list", "watch"]), rule("ClusterRole", "", "*", &["list", "watch"])]);
        assert_eq!(rules(&["kube:get"]), vec![rule("Role", "*", "*", &["get", "list", "watch"]), rule("ClusterRole", "*", "*", &["get", "list", "watch"])]);
        let all = rules(&["kube:*:v1/Pod"]);
        assert!(all.contains(&rule("Role", "", "pods", &["get", "list", "watch", "patch", "delete"])), "{all:?}");
        assert!(all.contains(&rule("Role", "", "pods/exec", &["get", "create"])), "{all:?}");
    }

    #[test]
    fn the_yaml_parses_and_matches_the_json() {
        let roles = for_capabilities(&["kube:list:v1/Pod", "kube:drain:v1/Node", "kube:scale:apps/v1/StatefulSet"]);
        let docs: Vec<Value> = roles.yaml().split("\n---\n").map(|d| serde_yaml::from_str(d).unwrap()).collect();
        assert_eq!(Value::Array(docs), roles.json()["items"]);
    }
}
