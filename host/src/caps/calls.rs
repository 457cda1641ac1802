//! The one table of host calls: for every WIT function of `runner:policy`,
//! the capability it needs, whether that capability mutates, which world
//! may import its interface, and the Kubernetes RBAC the backend needs to
//! serve it. Capability parsing, the per-call check (`imports`), the
//! import-family check, journal call names and `review --rbac` all read it,
//! and a test fails when `wit/policy.wit` has a function without a row.

/// One RBAC rule a capability needs on the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The kind the capability's scope names (`apps/v1/StatefulSet`: group
    /// `apps`, resource `statefulsets`), or that kind's subresource.
    Scoped {
        /// A subresource (`scale`), or the object itself.
        subresource: Option<&'static str>,
        /// The API verbs on it.
        verbs: &'static [&'static str],
    },
    /// One fixed resource, whatever the scope.
    Fixed {
        /// Cluster-wide (a ClusterRole) rather than in the target's namespace.
        cluster: bool,
        /// The API group (`""` for the core group).
        group: &'static str,
        /// The resource (`pods/eviction`).
        resource: &'static str,
        /// The API verbs on it.
        verbs: &'static [&'static str],
    },
    /// `get` on exactly the Secrets the target names as the credentials of
    /// its databases of the capability's engine (`postgres:*`: the
    /// PostgreSQL databases'), by `resourceNames`: the identity reads no other Secret.
    CredentialSecrets,
}

/// One capability verb and the WIT functions that need it.
#[derive(Clone, Copy, Debug)]
pub struct Verb {
    /// The capability's interface (`kube`).
    pub interface: &'static str,
    /// The capability's verb (`patch`).
    pub verb: &'static str,
    /// Whether it can change anything (then the operator must `--allow` it).
    pub mutating: bool,
    /// The WIT functions it covers, as `interface.function`; also their journal names.
    pub calls: &'static [&'static str],
    /// What the Kubernetes identity of the run needs to serve it.
    pub rbac: &'static [Rule],
}

const fn verb(interface: &'static str, verb: &'static str, mutating: bool, calls: &'static [&'static str], rbac: &'static [Rule]) -> Verb {
    Verb { interface, verb, mutating, calls, rbac }
}

const fn scoped(verbs: &'static [&'static str]) -> Rule {
    Rule::Scoped { subresource: None, verbs }
}

const fn namespaced(group: &'static str, resource: &'static str, verbs: &'static [&'static str]) -> Rule {
    Rule::Fixed { cluster: false, group, resource, verbs }
}

const fn cluster(group: &'static str, resource: &'static str, verbs: &'static [&'static str]) -> Rule {
    Rule::Fixed { cluster: true, group, resource, verbs }
}

/// A database call: the host resolves the member to its Pod and reads the
/// credential Secret the target names (that Secret only).
const MEMBER_RBAC: &[Rule] = &[namespaced("", "pods", &["get"]), Rule::CredentialSecrets];

/// Every capability verb, in the order `review` lists them.
pub const VERBS: &[Verb] = &[
    // wait-for-condition watches the object: list and watch as well as get.
    verb("kube", "get", false, &["kube-read.get", "kube-read.wait-for-condition"], &[scoped(&["get", "list", "watch"])]),
    verb("kube", "list", false, &["kube-read.list"], &[scoped(&["list", "watch"])]),
    verb("kube", "patch", true, &["kube-write.patch", "kube-write.apply"], &[scoped(&["patch"])]),
    verb("kube", "delete", true, &["kube-write.delete"], &[scoped(&["delete"])]),
    verb("kube", "scale", true, &["kube-write.scale"], &[Rule::Scoped { subresource: Some("scale"), verbs: &["get", "patch", "update"] }]),
    verb("kube", "evict", true, &["kube-write.evict"], &[namespaced("", "pods/eviction", &["create"])]),
    verb("kube", "cordon", true, &["kube-write.cordon", "kube-write.uncordon"], &[cluster("", "nodes", &["patch"])]),
    // Drain cordons, finds the node's Pods in every namespace, checks their
    // DaemonSets, evicts, watches each Pod go, and names blocking budgets.
    verb(
        "kube",
        "drain",
        true,
        &["kube-write.drain"],
        &[
            cluster("", "nodes", &["patch"]),
            cluster("", "pods", &["get", "list", "watch"]),
            cluster("", "pods/eviction", &["create"]),
            cluster("apps", "daemonsets", &["get"]),
            cluster("policy", "poddisruptionbudgets", &["list"]),
        ],
    ),
    verb("kube", "exec", true, &["kube-write.exec"], &[namespaced("", "pods/exec", &["create", "get"])]),
    verb("postgres", "query", false, &["postgres-read.query"], MEMBER_RBAC),
    verb("postgres", "execute", true, &["postgres-write.execute"], MEMBER_RBAC),
    verb("redis", "read", false, &["redis-read.command"], MEMBER_RBAC),
    verb("redis", "command", true, &["redis-write.command"], MEMBER_RBAC),
    verb("mongo", "read", false, &["mongo-read.run-command"], MEMBER_RBAC),
    verb("mongo", "command", true, &["mongo-write.run-command"], MEMBER_RBAC),
    verb("approval", "request", false, &["approval.request"], &[]),
    verb("gates", "run", false, &["gates.run"], &[]),
    verb("patterns", "run", false, &["patterns.run"], &[]),
    // Scoped by member; what the member's sub-run does needs its own grants.
    verb("fleet", "run", false, &["fleet.run-pattern", "fleet.run-gate", "fleet.run-group"], &[]),
    // The cluster's own API (AKS: Azure RBAC on the managed cluster, not
    // Kubernetes RBAC): reads share one verb, each mutation is its own.
    verb(
        "cluster",
        "read",
        false,
        &["cluster-read.control-plane", "cluster-read.node-pools", "cluster-read.node-pool", "cluster-read.pool-upgrade-profile", "cluster-read.operation"],
        &[],
    ),
    verb("cluster", "upgrade-control-plane", true, &["cluster-write.upgrade-control-plane"], &[]),
    verb("cluster", "add-node-pool", true, &["cluster-write.add-node-pool"], &[]),
    verb("cluster", "upgrade-node-pool", true, &["cluster-write.upgrade-node-pool"], &[]),
    verb("cluster", "upgrade-node-image", true, &["cluster-write.upgrade-node-image"], &[]),
    verb("cluster", "set-upgrade-settings", true, &["cluster-write.set-upgrade-settings"], &[]),
    verb("cluster", "delete-node-pool", true, &["cluster-write.delete-node-pool"], &[]),
    // Weighted switches, scoped by the switch's name. An HTTPRoute switch
    // reads and patches its route (the target names it, not the scope, so
    // `review --rbac` lists the kind); a Traffic Manager profile is Azure
    // RBAC, and observe is plain HTTP.
    verb("traffic", "read", false, &["traffic-read.weights", "traffic-read.observe"], &[namespaced("gateway.networking.k8s.io", "httproutes", &["get"])]),
    verb("traffic", "set-weights", true, &["traffic-write.set-weights"], &[namespaced("gateway.networking.k8s.io", "httproutes", &["get", "patch"])]),
];

/// Calls every component may make without a capability: they only tell the
/// operator something, read the host's clock, or read facts of the run
/// fixed before it started (`run-info`, not journaled: it changes nothing).
pub const FREE_CALLS: &[&str] = &[
    "report.log",
    "report.progress",
    "report.step-begin",
    "report.step-end",
    "report.metric",
    "report.attach",
    "clock.now",
    "clock.sleep",
    "run-info.id",
    "run-info.dry-run",
    "run-info.resumed",
    "run-info.databases",
    "fleet.members",
];

/// Interfaces whose calls need another interface's capabilities too:
/// `fleet.run-pattern` runs a pattern slot (`patterns:run:<slot>`) and
/// `fleet.run-gate` a gate slot (`gates:run:<slot>`), so a pattern that
/// reaches its slots only through `fleet` uses those requests.
pub const ALSO_SERVES: &[(&str, &[&str])] = &[("fleet", &["gates", "patterns"])];

/// The interfaces the `gate` world imports (`world gate-imports` in the WIT);
/// every other interface is for patterns only.
pub const GATE_INTERFACES: &[&str] =
    &["types", "kube-read", "postgres-read", "redis-read", "mongo-read", "report", "clock", "run-info", "cluster-read", "traffic-read"];

/// The capability verb a WIT function (`kube-read.get`) needs; `None` for
/// free calls and unknown names.
pub fn verb_of_call(call: &str) -> Option<&'static Verb> {
    VERBS.iter().find(|v| v.calls.contains(&call))
}

/// Whether `interface:verb` is a mutating capability verb.
pub fn is_mutating(interface: &str, verb: &str) -> bool {
    VERBS.iter().any(|v| v.mutating && v.interface == interface && v.verb == verb)
}

/// The WIT interface of a call name (`kube-read.get` → `kube-read`).
pub fn interface_of(call: &'static str) -> &'static str {
    call.split_once('.').map_or(call, |(interface, _)| interface)
}

/// Every call the host serves, with capability or free.
pub fn all_calls() -> impl Iterator<Item = &'static str> {
    VERBS.iter().flat_map(|v| v.calls.iter().copied()).chain(FREE_CALLS.iter().copied())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// `interface.function` for every function of `wit/policy.wit`, and the
    /// interfaces `world gate-imports` imports. Read by hand: the WIT's
    /// shape here is one `interface NAME {` per block with `NAME: func`
    /// lines, which is all this test needs.
    fn wit() -> (BTreeSet<String>, BTreeSet<String>) {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit/policy.wit")).unwrap();
        let (mut functions, mut gate_imports) = (BTreeSet::new(), BTreeSet::new());
        let mut interface: Option<String> = None;
        let mut in_gate_imports = false;
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix("interface ").and_then(|rest| rest.strip_suffix('{')) {
                interface = Some(name.trim().to_string());
            } else if line.starts_with("world ") {
                interface = None;
                in_gate_imports = line.starts_with("world gate-imports");
            } else if let (Some(interface), Some((name, _))) = (&interface, line.split_once(": func")) {
                functions.insert(format!("{interface}.{}", name.trim().trim_start_matches('%')));
            } else if in_gate_imports && let Some(imported) = line.strip_prefix("import ").and_then(|rest| rest.strip_suffix(';')) {
                gate_imports.insert(imported.to_string());
            }
        }
        (functions, gate_imports)
    }

    #[test]
    fn every_wit_function_has_exactly_one_row() {
        let (functions, _) = wit();
        assert!(functions.len() > 20, "read the WIT: {functions:?}");
        let rows: Vec<&str> = all_calls().collect();
        for function in &functions {
            let count = rows.iter().filter(|row| **row == function).count();
            assert_eq!(count, 1, "WIT function `{function}` needs one row in caps/calls.rs (VERBS or FREE_CALLS), has {count}");
        }
        for row in rows {
            assert!(functions.contains(row), "caps/calls.rs names `{row}`, which wit/policy.wit does not define");
        }
    }

    #[test]
    fn the_gate_world_is_what_the_wit_says() {
        let (_, gate_imports) = wit();
        let mut expected: BTreeSet<String> = GATE_INTERFACES.iter().map(|s| s.to_string()).collect();
        expected.remove("types");
        assert_eq!(gate_imports, expected);
        for v in VERBS.iter().filter(|v| v.mutating) {
            for call in v.calls {
                assert!(!GATE_INTERFACES.contains(&interface_of(call)), "{call} mutates but its interface is in the gate world");
            }
        }
    }
}
