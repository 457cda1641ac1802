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
use crate::target::{CredentialSource, Target};

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

/// Where a rule applies, its group, its resource, and the objects it is
/// limited to (`resourceNames`; empty: every object of the resource).
type RuleKey = (Place, String, String, Vec<String>);

/// The rules of one policy.
#[derive(Default, Debug)]
pub struct Roles {
    name: String,
    version: String,
    digest: String,
    rules: BTreeMap<RuleKey, Grant>,
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
    fn grant(&mut self, place: Place, group: &str, resource: &str, names: Vec<String>, verbs: &[&str], because: &str) {
        let grant = self.rules.entry((place, group.to_string(), resource.to_string(), names)).or_default();
        grant.verbs.extend(verbs.iter().filter_map(|v| API_VERBS.iter().position(|known| known == v)));
        grant.because.insert(because.to_string());
    }

    /// The rules one capability needs, as the call table lists them; the
    /// credential Secrets are those `target` names.
    fn add(&mut self, cap: &Capability, because: &str, target: &Target) {
        let matching = VERBS.iter().filter(|v| (cap.interface() == "*" || cap.interface() == v.interface) && (cap.verb() == "*" || cap.verb() == v.verb));
        for (verb, rule) in matching.flat_map(|v| v.rbac.iter().map(move |rule| (v, rule))) {
            match *rule {
                Rule::Fixed { cluster, group, resource, verbs } => {
                    self.grant(if cluster { Place::Cluster } else { Place::Namespace }, group, resource, Vec::new(), verbs, because)
                }
                Rule::Scoped { subresource, verbs } => {
                    let (group, resource, places) = covers(cap.scope());
                    let resource = subresource.map_or(resource.clone(), |sub| format!("{resource}/{sub}"));
                    for place in places {
                        self.grant(place, &group, &resource, Vec::new(), verbs, because);
                    }
                }
                Rule::CredentialSecrets => self.credential_secrets(verb.interface, because, target),
            }
        }
    }

    /// `get` on the Secrets holding the passwords of `target`'s databases
    /// of this engine, by name; a database whose password comes from the
    /// runner's environment needs none.
    fn credential_secrets(&mut self, engine: &str, because: &str, target: &Target) {
        let databases: Vec<_> = target.databases.iter().filter(|db| db.engine.name() == engine).collect();
        if databases.is_empty() {
            self.note(format!("{because}: target {} names no {engine} database, so no credential Secret is granted", target.label()));
        }
        let mut names = BTreeSet::new();
        for db in databases {
            let CredentialSource::Secret { name, .. } = &db.credentials else { continue };
            names.insert(name.clone());
            if let Some(namespace) = db.namespace.as_deref().filter(|ns| Some(*ns) != target.namespace.as_deref()) {
                self.note(format!(
                    "database {}: its Secret {name} is in namespace {namespace}: bind the Role there too (or a Role with only that Secret rule)",
                    db.name
                ));
            }
        }
        if !names.is_empty() {
            self.grant(Place::Namespace, "", "secrets", names.into_iter().collect(), &["get"], because);
        }
    }

    fn note(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    fn has_rules(&self, place: Place) -> bool {
        self.rules.keys().any(|(p, ..)| *p == place)
    }

    fn role(&self, place: Place) -> Option<Value> {
        let rules: Vec<Value> = self
            .rules
            .iter()
            .filter(|((p, ..), _)| *p == place)
            .map(|((_, group, resource, names), grant)| {
                let mut rule = json!({"apiGroups": [group], "resources": [resource], "verbs": grant.verbs.iter().map(|v| API_VERBS[*v]).collect::<Vec<_>>()});
                if !names.is_empty() {
                    rule["resourceNames"] = json!(names);
                }
                rule
            })
            .collect();
        // An empty Role is printed only when nothing needs any role: then it says so.
        let needed = match place {
            Place::Namespace => !rules.is_empty() || !self.has_rules(Place::Cluster),
            Place::Cluster => !rules.is_empty(),
        };
        if !needed {
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
        let mut printed = false;
        for place in [Place::Namespace, Place::Cluster] {
            let Some(role) = self.role(place) else { continue };
            if std::mem::replace(&mut printed, true) {
                let _ = writeln!(out, "---");
            }
            let _ = writeln!(out, "apiVersion: rbac.authorization.k8s.io/v1\nkind: {}", role["kind"].as_str().unwrap_or_default());
            let _ = writeln!(
                out,
                "metadata:\n  name: {}\n  labels:\n    app.kubernetes.io/managed-by: runner",
                q(role["metadata"]["name"].as_str().unwrap_or_default())
            );
            let _ = writeln!(out, "  annotations:\n    runner/policy: {}", q(role["metadata"]["annotations"]["runner/policy"].as_str().unwrap_or_default()));
            let rules: Vec<_> = self.rules.iter().filter(|((p, ..), _)| *p == place).collect();
            if rules.is_empty() {
                let _ = writeln!(out, "rules: []  # no capability of this policy touches Kubernetes");
                continue;
            }
            let _ = writeln!(out, "rules:");
            for ((_, group, resource, names), grant) in rules {
                let because: Vec<&str> = grant.because.iter().map(String::as_str).collect();
                let verbs: Vec<String> = grant.verbs.iter().map(|v| q(API_VERBS[*v])).collect();
                let _ = writeln!(out, "  # {}", because.join(", "));
                let _ = writeln!(out, "  - apiGroups: [{}]\n    resources: [{}]", q(group), q(resource));
                if !names.is_empty() {
                    let names: Vec<String> = names.iter().map(|n| q(n)).collect();
                    let _ = writeln!(out, "    resourceNames: [{}]", names.join(", "));
                }
                let _ = writeln!(out, "    verbs: [{}]", verbs.join(", "));
            }
        }
        out
    }
}

/// The roles `policy` needs against `target` (whose databases name the
/// credential Secrets): its own capabilities and, for a pattern, those of
/// the gates bound by default to its slots.
pub fn roles(policy: &Policy, target: &Target) -> Roles {
    let mut roles = Roles {
        name: policy.name().to_string(),
        version: policy.manifest.version.clone(),
        digest: short_digest(&policy.digest).to_string(),
        ..Roles::default()
    };
    let own = policy.manifest.requested();
    for cap in &own {
        roles.add(cap, &cap.to_string(), target);
    }
    for (slot, gate) in &policy.manifest.gates {
        match load_policy(&gate.default) {
            Ok(bound) => {
                for cap in bound.manifest.requested() {
                    roles.add(&cap, &format!("{cap} (gate slot {slot}: {})", bound.name()), target);
                }
            }
            Err(e) => roles
                .notes
                .push(format!("gate slot {slot}: its default gate `{}` could not be loaded ({}); its rights are not included", gate.default, e.message)),
        }
    }
    // A pattern slot's pattern acts with the run's service account too: its rights are part of the run's.
    for (slot, pattern) in &policy.manifest.patterns {
        match load_policy(&pattern.default) {
            Ok(bound) => {
                for cap in bound.manifest.requested() {
                    roles.add(&cap, &format!("{cap} (pattern slot {slot}: {})", bound.name()), target);
                }
            }
            Err(e) => roles.notes.push(format!(
                "pattern slot {slot}: its default pattern `{}` could not be loaded ({}); its rights are not included",
                pattern.default, e.message
            )),
        }
    }
    roles.finish(&own);
    roles
}

impl Roles {
    /// Notes on what the rules cannot say.
    fn finish(&mut self, own: &[Capability]) {
        if self.rules.keys().any(|(_, _, resource, _)| resource == "*" || resource == "*/scale") {
            self.note("a capability without a kind (or with a `*` kind) can only be granted as `*`: request capabilities by kind for a smaller role".into());
        }
        let allows = |verb: &str| own.iter().any(|cap| cap.matches(&Capability::needed("kube", verb, "v1/Node")));
        if allows("drain") && !allows("cordon") {
            self.note(
                "kube:drain cordons the Node, but uncordoning it is kube:cordon, which this policy does not request: it cannot make a drained Node schedulable again (nor in a rollback)"
                    .into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The roles for these capabilities against the lab's target (its credential Secrets).
    fn for_capabilities(caps: &[&str]) -> Roles {
        let own: Vec<Capability> = caps.iter().map(|cap| cap.parse().unwrap()).collect();
        let target = Target::lab(std::path::PathBuf::from("/nonexistent/lab"));
        let mut roles = Roles { name: "test".into(), ..Roles::default() };
        for cap in &own {
            roles.add(cap, &cap.to_string(), &target);
        }
        roles.finish(&own);
        roles
    }

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

    /// The `resourceNames` of each Secret rule of `roles`' Role.
    fn secret_names(roles: &Roles) -> Vec<Value> {
        let json = roles.json();
        let role = json["items"].as_array().unwrap().iter().find(|r| r["kind"] == "Role").cloned().unwrap_or_default();
        role["rules"]
            .as_array()
            .map(|rules| rules.iter().filter(|r| r["resources"][0] == "secrets").map(|r| r["resourceNames"].clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_database_call_reads_only_the_targets_credential_secrets() {
        assert_eq!(secret_names(&for_capabilities(&["postgres:query:pg-0"])), vec![json!(["postgres-credentials"])]);
        // One rule per engine, each naming only that engine's Secrets.
        assert_eq!(secret_names(&for_capabilities(&["redis:read", "postgres:execute"])), vec![json!(["postgres-credentials"]), json!(["redis-credentials"])]);
        assert_eq!(
            secret_names(&for_capabilities(&["postgres:*", "redis:*", "mongo:*"])),
            vec![json!(["mongo-credentials"]), json!(["postgres-credentials"]), json!(["redis-credentials"])]
        );
        // A Secret the policy asks for by kind is every Secret, and says so: it is not folded into the named rule.
        let both = for_capabilities(&["postgres:query", "kube:get:v1/Secret"]);
        assert_eq!(secret_names(&both), vec![Value::Null, json!(["postgres-credentials"])]);

        // A target whose password comes from the environment: no Secret at all.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("target.yaml");
        std::fs::write(&file, "namespace: databases\ndatabases:\n  orders:\n    engine: postgres\n    credentials:\n      env: PGPASSWORD\n  cache:\n    engine: redis\n    namespace: cache\n    credentials:\n      secret: cache-auth\n").unwrap();
        let target = Target::from_arg(file.to_str().unwrap()).unwrap();
        let mut roles = Roles::default();
        for cap in ["postgres:query", "redis:read", "mongo:read"] {
            roles.add(&cap.parse().unwrap(), cap, &target);
        }
        assert_eq!(secret_names(&roles), vec![json!(["cache-auth"])]);
        let notes = roles.notes.join("\n");
        assert!(notes.contains("database cache: its Secret cache-auth is in namespace cache"), "{notes}");
        assert!(notes.contains("names no mongo database"), "{notes}");
    }

    #[test]
    fn a_drain_only_policy_gets_its_cluster_role_and_no_empty_role() {
        let roles = for_capabilities(&["kube:drain:v1/Node"]);
        let json = roles.json();
        let kinds: Vec<&str> = json["items"].as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["ClusterRole"], "{json:#}");
        let yaml = roles.yaml();
        assert!(!yaml.contains("rules: []"), "{yaml}");
        assert!(yaml.contains("cannot make a drained Node schedulable again"), "{yaml}");
        assert!(!for_capabilities(&["kube:drain:v1/Node", "kube:cordon:v1/Node"]).yaml().contains("schedulable again"));
        assert!(!for_capabilities(&["kube:*"]).yaml().contains("schedulable again"));

        // Nothing touching Kubernetes: one empty Role that says so.
        let none = for_capabilities(&["approval:request"]);
        assert_eq!(none.json()["items"].as_array().unwrap().len(), 1);
        assert!(none.yaml().contains("rules: []  # no capability of this policy touches Kubernetes"));
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
        let roles = for_capabilities(&["kube:list:v1/Pod", "kube:drain:v1/Node", "kube:scale:apps/v1/StatefulSet", "postgres:query"]);
        let docs: Vec<Value> = roles.yaml().split("\n---\n").map(|d| serde_yaml::from_str(d).unwrap()).collect();
        assert_eq!(Value::Array(docs), roles.json()["items"]);
    }
}
