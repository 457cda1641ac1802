//! `runner review`: what a policy can touch and will do, for the person who
//! decides whether it may run in production; with `--against`, what changed;
//! with `--rbac`, the least-privilege Kubernetes RBAC its capabilities need.

use std::collections::BTreeSet;
use std::fmt::Write;

use clap::Args;
use serde_json::{json, Value};

use super::{load_policy, CommandResult, Exit, OutputFormat};
use crate::caps::Capability;
use crate::policy::Policy;

#[derive(Args, Debug)]
pub struct ReviewArgs {
    /// A bundled policy's name or a component file.
    policy: String,

    /// Show only what changed since this earlier version (name or file).
    #[arg(long, value_name = "OLD", conflicts_with = "rbac")]
    against: Option<String>,

    /// Print the minimal RBAC Role (and ClusterRole, for cluster-scoped kinds) its capabilities need, as YAML.
    #[arg(long)]
    rbac: bool,

    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

pub fn run(args: ReviewArgs) -> CommandResult {
    let policy = load_policy(&args.policy)?;
    if args.rbac {
        let roles = rbac::roles(&policy);
        match args.output {
            OutputFormat::Text => print!("{}", roles.yaml()),
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&roles.json()).unwrap_or_default()),
        }
        return Ok(Exit::Success);
    }
    let old = args.against.as_deref().map(load_policy).transpose()?;
    match (&old, args.output) {
        (None, OutputFormat::Text) => print!("{}", text(&policy)),
        (None, OutputFormat::Json) => println!("{}", serde_json::to_string_pretty(&describe(&policy)).unwrap_or_default()),
        (Some(old), OutputFormat::Text) => print!("{}", diff_text(&diff(old, &policy))),
        (Some(old), OutputFormat::Json) => println!("{}", serde_json::to_string_pretty(&diff(old, &policy)).unwrap_or_default()),
    }
    Ok(Exit::Success)
}

fn capabilities(policy: &Policy) -> Vec<(Capability, bool)> {
    policy.manifest.requested().into_iter().map(|c| {
        let mutating = c.is_mutating();
        (c, mutating)
    }).collect()
}

/// Everything a reviewer needs, as JSON.
pub fn describe(policy: &Policy) -> Value {
    let m = &policy.manifest;
    json!({
        "name": m.name,
        "version": m.version,
        "world": m.world,
        "description": m.description,
        "digest": policy.digest,
        "path": policy.path,
        "size_bytes": policy.bytes.len(),
        "capabilities": capabilities(policy).iter().map(|(c, mutating)| json!({"capability": c.to_string(), "mutating": mutating})).collect::<Vec<_>>(),
        "imports": {
            "policy": policy.import_report.policy_interfaces,
            "wasi": policy.import_report.wasi_interfaces,
        },
        "mismatches": policy.import_report.mismatches(),
        "config": m.config,
        "gates": m.gates,
        "steps": m.steps,
        "rollback": m.rollback,
    })
}

fn text(policy: &Policy) -> String {
    let m = &policy.manifest;
    let mut out = String::new();
    let _ = writeln!(out, "{} {} ({})", m.name, m.version, m.world);
    if !m.description.is_empty() {
        let _ = writeln!(out, "  {}", m.description);
    }
    let _ = writeln!(out, "digest:  {}", policy.digest);
    let _ = writeln!(out, "file:    {} ({} KiB)", policy.path.display(), policy.bytes.len().div_ceil(1024));
    let caps = capabilities(policy);
    let mutating = caps.iter().filter(|(_, m)| *m).count();
    let _ = writeln!(out, "\ncapabilities ({} requested, {mutating} mutating):", caps.len());
    if caps.is_empty() {
        let _ = writeln!(out, "  none");
    }
    // Mutations first: they are what a reviewer must weigh.
    for (cap, is_mutating) in caps.iter().filter(|(_, m)| *m).chain(caps.iter().filter(|(_, m)| !*m)) {
        let _ = writeln!(out, "  {:<8} {cap}", if *is_mutating { "MUTATES" } else { "reads" });
    }
    let report = &policy.import_report;
    let _ = writeln!(out, "\nimports:");
    let _ = writeln!(out, "  runner:policy  {}", report.policy_interfaces.join(", "));
    let _ = writeln!(out, "  wasi           {} (nothing ambient: no files, network, environment or stdin)", report.wasi_interfaces.len());
    let mismatches = report.mismatches();
    if !mismatches.is_empty() {
        let _ = writeln!(out, "\nmanifest and imports disagree:");
        for line in mismatches {
            let _ = writeln!(out, "  ! {line}");
        }
    }
    let _ = writeln!(out, "\nconfig:");
    if m.config.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for (key, field) in &m.config {
        let default = match (&field.default, field.required) {
            (Some(d), _) => format!("default {d}"),
            (None, true) => "required".into(),
            (None, false) => "optional".into(),
        };
        let _ = writeln!(out, "  {key:<20} {:<8} {default:<24} {}", field.kind.to_string(), field.description);
    }
    if !m.gates.is_empty() {
        let _ = writeln!(out, "\ngate slots:");
        for (slot, gate) in &m.gates {
            let _ = writeln!(out, "  {slot:<20} -> {:<20} {}", gate.default, gate.description);
        }
    }
    if !m.steps.is_empty() {
        let _ = writeln!(out, "\nsteps:");
        for (i, step) in m.steps.iter().enumerate() {
            let _ = writeln!(out, "  {:>2}. {:<24} {}", i + 1, step.name, step.description);
        }
    }
    if !m.rollback.is_empty() {
        let _ = writeln!(out, "\nrollback: {}", m.rollback);
    }
    out
}

fn added_removed<T: Ord + Clone>(old: &BTreeSet<T>, new: &BTreeSet<T>) -> (Vec<T>, Vec<T>) {
    (new.difference(old).cloned().collect(), old.difference(new).cloned().collect())
}

/// What changed between two versions of a policy, most alarming first.
pub fn diff(old: &Policy, new: &Policy) -> Value {
    let (om, nm) = (&old.manifest, &new.manifest);
    let caps = |p: &Policy| p.manifest.requested().into_iter().collect::<BTreeSet<_>>();
    let (mut caps_added, caps_removed) = added_removed(&caps(old), &caps(new));
    // A new mutation is the first thing a reviewer must see.
    caps_added.sort_by_key(|c| !c.is_mutating());
    let imports = |p: &Policy| p.import_report.policy_interfaces.iter().cloned().collect::<BTreeSet<_>>();
    let (imports_added, imports_removed) = added_removed(&imports(old), &imports(new));
    let keys = |p: &Policy| p.manifest.config.keys().cloned().collect::<BTreeSet<_>>();
    let (config_added, config_removed) = added_removed(&keys(old), &keys(new));
    let config_changed: Vec<Value> = nm
        .config
        .iter()
        .filter_map(|(k, field)| om.config.get(k).filter(|before| *before != field).map(|before| json!({"key": k, "before": before, "after": field})))
        .collect();
    let slots_changed: Vec<Value> = nm
        .gates
        .iter()
        .filter(|(slot, gate)| om.gates.get(*slot) != Some(gate))
        .map(|(slot, gate)| json!({"slot": slot, "before": om.gates.get(slot).map(|g| &g.default), "after": gate.default}))
        .chain(om.gates.keys().filter(|s| !nm.gates.contains_key(*s)).map(|slot| json!({"slot": slot, "before": om.gates[slot].default, "after": null})))
        .collect();
    let step_names = |p: &Policy| p.manifest.steps.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    json!({
        "name": nm.name,
        "old": {"name": om.name, "version": om.version, "digest": old.digest},
        "new": {"version": nm.version, "digest": new.digest},
        "capabilities_added": caps_added.iter().map(|c| json!({"capability": c.to_string(), "mutating": c.is_mutating()})).collect::<Vec<_>>(),
        "capabilities_removed": caps_removed.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "world": (om.world != nm.world).then(|| json!({"before": om.world, "after": nm.world})),
        "imports_added": imports_added,
        "imports_removed": imports_removed,
        "config_added": config_added,
        "config_removed": config_removed,
        "config_changed": config_changed,
        "gate_slots_changed": slots_changed,
        "steps": (step_names(old) != step_names(new)).then(|| json!({"before": step_names(old), "after": step_names(new)})),
        "rollback": (om.rollback != nm.rollback).then(|| json!({"before": om.rollback, "after": nm.rollback})),
        "description_changed": om.description != nm.description,
        "code_changed": old.digest != new.digest,
    })
}

fn diff_text(diff: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: {} -> {}", diff["name"].as_str().unwrap_or_default(), diff["old"]["version"].as_str().unwrap_or_default(), diff["new"]["version"].as_str().unwrap_or_default());
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let mut changes = 0;
    let mut line = |out: &mut String, text: String| {
        changes += 1;
        let _ = writeln!(out, "{text}");
    };
    if diff["old"]["name"] != diff["name"] {
        line(&mut out, format!("  ! a different policy: {} -> {}", diff["old"]["name"].as_str().unwrap_or_default(), diff["name"].as_str().unwrap_or_default()));
    }
    for cap in list(&diff["capabilities_added"]) {
        let tag = if cap["mutating"].as_bool() == Some(true) { "NEW MUTATING CAPABILITY" } else { "new capability" };
        line(&mut out, format!("  + {tag}: {}", cap["capability"].as_str().unwrap_or_default()));
    }
    if !diff["world"].is_null() {
        line(&mut out, format!("  ! world: {} -> {}", diff["world"]["before"], diff["world"]["after"]));
    }
    for cap in list(&diff["capabilities_removed"]) {
        line(&mut out, format!("  - capability: {}", cap.as_str().unwrap_or_default()));
    }
    for import in list(&diff["imports_added"]) {
        line(&mut out, format!("  + import: runner:policy/{}", import.as_str().unwrap_or_default()));
    }
    for import in list(&diff["imports_removed"]) {
        line(&mut out, format!("  - import: runner:policy/{}", import.as_str().unwrap_or_default()));
    }
    for slot in list(&diff["gate_slots_changed"]) {
        line(&mut out, format!("  ~ gate slot {}: {} -> {}", slot["slot"].as_str().unwrap_or_default(), slot["before"], slot["after"]));
    }
    for key in list(&diff["config_added"]) {
        line(&mut out, format!("  + config: {}", key.as_str().unwrap_or_default()));
    }
    for key in list(&diff["config_removed"]) {
        line(&mut out, format!("  - config: {}", key.as_str().unwrap_or_default()));
    }
    for change in list(&diff["config_changed"]) {
        line(&mut out, format!("  ~ config {}: {} -> {}", change["key"].as_str().unwrap_or_default(), change["before"], change["after"]));
    }
    if !diff["steps"].is_null() {
        line(&mut out, format!("  ~ steps: {} -> {}", diff["steps"]["before"], diff["steps"]["after"]));
    }
    if !diff["rollback"].is_null() {
        line(&mut out, format!("  ~ rollback: {} -> {}", diff["rollback"]["before"], diff["rollback"]["after"]));
    }
    if diff["description_changed"].as_bool() == Some(true) {
        line(&mut out, "  ~ description changed".into());
    }
    if changes == 0 {
        let code = if diff["code_changed"].as_bool() == Some(true) { "the code changed (digest differs)" } else { "identical component" };
        let _ = writeln!(out, "  no change in capabilities, imports, config, slots or steps; {code}");
    }
    let _ = writeln!(out, "  digest: {} -> {}", diff["old"]["digest"].as_str().unwrap_or_default(), diff["new"]["digest"].as_str().unwrap_or_default());
    out
}

/// Least-privilege RBAC from capabilities: each capability maps to the API
/// verbs and resources the Kubernetes backend uses to serve it.
mod rbac {
    use std::collections::{BTreeMap, BTreeSet};
    use std::fmt::Write;

    use serde_json::{json, Value};

    use super::load_policy;
    use crate::caps::calls::{Rule, VERBS};
    use crate::caps::Capability;
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

        /// The rules one capability needs.
        fn add(&mut self, cap: &Capability, because: &str) {
            let matching = VERBS.iter().filter(|v| (cap.interface() == "*" || cap.interface() == v.interface) && (cap.verb() == "*" || cap.verb() == v.verb));
            for rule in matching.flat_map(|v| v.rbac) {
                match *rule {
                    Rule::Fixed { cluster, group, resource, verbs } => self.grant(if cluster { Place::Cluster } else { Place::Namespace }, group, resource, verbs, because),
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
                let _ = writeln!(out, "metadata:\n  name: {}\n  labels:\n    app.kubernetes.io/managed-by: runner", q(role["metadata"]["name"].as_str().unwrap_or_default()));
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
        let mut roles = Roles { name: policy.name().to_string(), version: policy.manifest.version.clone(), digest: super::super::exec::short_digest(&policy.digest).to_string(), ..Roles::default() };
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
                Err(e) => roles.notes.push(format!("gate slot {slot}: its default gate `{}` could not be loaded ({}); its rights are not included", gate.default, e.message)),
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
            for (kind, plural_) in [("Pod", "pods"), ("StatefulSet", "statefulsets"), ("Endpoints", "endpoints"), ("Ingress", "ingresses"), ("NetworkPolicy", "networkpolicies"), ("PodDisruptionBudget", "poddisruptionbudgets"), ("Gateway", "gateways")] {
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
            for expected in [rule("ClusterRole", "", "nodes", &["patch"]), rule("ClusterRole", "", "pods/eviction", &["create"]), rule("ClusterRole", "", "pods", &["get", "list", "watch"])] {
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
}
