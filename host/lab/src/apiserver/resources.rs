//! The kinds this API server serves, with what discovery says about them.

/// A subresource of a kind (`pods/eviction`, `statefulsets/scale`).
#[derive(Debug)]
pub(crate) struct Subresource {
    pub name: &'static str,
    /// Group, version and kind of the subresource's body when it differs
    /// from the parent's (`policy/v1 Eviction`, `autoscaling/v1 Scale`).
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

/// One served resource.
#[derive(Debug)]
pub(crate) struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// Field selectors accepted besides metadata.name and metadata.namespace.
    pub fields: &'static [&'static str],
}

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `pods` or `statefulsets.apps` (the `Status.details` and storage prefix).
    pub fn key(&self) -> String {
        if self.group.is_empty() { self.plural.to_string() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// Whether the kind has a `status` subresource (so the main resource
    /// ignores status changes and `/status` ignores everything else).
    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s.name == "status")
    }

    /// The verbs discovery lists for the resource.
    pub fn verbs(&self) -> &'static [&'static str] {
        &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    }
}

const STATUS: Subresource = Subresource { name: "status", group: "", version: "", kind: "", verbs: &["get", "patch", "update"] };
/// `kubectl scale` reads and writes `spec.replicas` through it.
const SCALE: Subresource = Subresource { name: "scale", group: "autoscaling", version: "v1", kind: "Scale", verbs: &["get", "patch", "update"] };

const CORE_FIELDS_POD: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
];

const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// Every served resource.
pub(crate) static RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        subresources: &[Subresource { name: "finalize", group: "", version: "", kind: "", verbs: &["update"] }, STATUS],
        fields: &["status.phase"],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        subresources: &[STATUS],
        fields: &["spec.unschedulable"],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        subresources: &[
            Subresource { name: "eviction", group: "policy", version: "v1", kind: "Eviction", verbs: &["create"] },
            Subresource { name: "exec", group: "", version: "", kind: "PodExecOptions", verbs: &["create", "get"] },
            Subresource { name: "portforward", group: "", version: "", kind: "PodPortForwardOptions", verbs: &["create", "get"] },
            STATUS,
        ],
        fields: CORE_FIELDS_POD,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        subresources: &[STATUS],
        fields: &["spec.clusterIP", "spec.type"],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        subresources: &[],
        fields: &[],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        fields: &["type"],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        subresources: &[],
        fields: &[],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        fields: EVENT_FIELDS,
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        singular: "statefulset",
        kind: "StatefulSet",
        namespaced: true,
        short_names: &["sts"],
        categories: &["all"],
        subresources: &[SCALE, STATUS],
        fields: &[],
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        subresources: &[SCALE, STATUS],
        fields: &[],
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        subresources: &[SCALE, STATUS],
        fields: &[],
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        singular: "daemonset",
        kind: "DaemonSet",
        namespaced: true,
        short_names: &["ds"],
        categories: &["all"],
        subresources: &[STATUS],
        fields: &[],
    },
    Resource {
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        kind: "PodDisruptionBudget",
        namespaced: true,
        short_names: &["pdb"],
        categories: &[],
        subresources: &[STATUS],
        fields: &[],
    },
    Resource {
        group: "batch",
        version: "v1",
        plural: "jobs",
        singular: "job",
        kind: "Job",
        namespaced: true,
        short_names: &[],
        categories: &["all"],
        subresources: &[STATUS],
        fields: &["status.successful"],
    },
    // Gateway API routes: the lab's front door (crate::frontdoor) follows
    // `default/frontdoor`; the API server only keeps them, as a CRD would.
    Resource {
        group: "gateway.networking.k8s.io",
        version: "v1",
        plural: "httproutes",
        singular: "httproute",
        kind: "HTTPRoute",
        namespaced: true,
        short_names: &[],
        categories: &["gateway-api"],
        subresources: &[STATUS],
        fields: &[],
    },
];

/// The API groups besides the core group, in discovery order.
pub(crate) const GROUPS: &[&str] = &["apps", "policy", "batch", "gateway.networking.k8s.io"];

/// Finds a resource by group, version and plural name.
pub(crate) fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds a resource by `apiVersion` (`v1`, `apps/v1`) and kind.
pub(crate) fn by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    let (group, version) = split_api_version(api_version);
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The position of a resource in [`RESOURCES`] (the store's table index).
pub(crate) fn index(res: &Resource) -> usize {
    RESOURCES.iter().position(|r| std::ptr::eq(r, res)).expect("resource from RESOURCES")
}
