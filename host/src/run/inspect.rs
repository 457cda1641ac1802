//! What a target has (API server, nodes and pools, each database cluster's
//! members, primary Service and credential source) and what a run would
//! lack (`runner target check`). It only reads.

use serde_json::{Value, json};

use super::{Exit, Failure};
use crate::backends::{BackendError, ErrorCode, Kube, KubeBackend, ListOptions, ObjectRef};
use crate::target::{Database, Target};

/// A call that could not be made at all ends the check with exit 4; any
/// other failure is something missing.
fn unreachable(error: &BackendError) -> bool {
    matches!(error.code, ErrorCode::Unavailable | ErrorCode::Timeout)
}

/// Connect to `target` and say what it has, as JSON; `missing` lists what a
/// run would lack. A target that cannot be reached at all is a failure (exit 4).
pub async fn inspect(target: &Target) -> Result<Value, Failure> {
    let kube = std::sync::Arc::new(crate::backends::kube::connect(target).await?);
    let shared: std::sync::Arc<dyn Kube> = kube.clone();
    let kube = &*kube;
    let down = |e: BackendError| Failure::new(Exit::Unavailable, format!("target {}: {}", target.label(), e.message));
    let mut missing: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let namespace = kube.default_namespace().to_string();

    let server = match kube.server_version().await {
        Ok((version, platform)) => json!({"version": version, "platform": platform}),
        Err(e) if unreachable(&e) => return Err(down(e)),
        Err(e) => {
            missing.push(format!("the API server's version: {e}"));
            Value::Null
        }
    };

    let nodes = match list(kube, "v1", "Node", None, None).await {
        Ok(nodes) => nodes,
        Err(e) if unreachable(&e) => return Err(down(e)),
        Err(e) => {
            missing.push(format!("the list of Nodes: {e}"));
            Vec::new()
        }
    };
    let node_rows: Vec<Value> = nodes.iter().map(node_row).collect();
    if nodes.is_empty() && !missing.iter().any(|m| m.contains("Nodes")) {
        missing.push("Nodes: the cluster has none".into());
    }

    let mut databases = Vec::new();
    for database in &target.databases {
        databases.push(inspect_database(kube, database, &namespace, &node_rows, &mut missing, &mut warnings).await.map_err(down)?);
    }

    let cluster = inspect_cluster(target, &mut missing, &mut warnings).await?;
    let traffic = inspect_traffic(target, shared).await?;

    Ok(json!({
        "target": target.label(),
        "kubeconfig": target.kubeconfig,
        "context": target.context_name(),
        "namespace": namespace,
        "server": server,
        "nodes": node_rows,
        "databases": databases,
        "cluster": cluster,
        "traffic": traffic,
        "missing": missing,
        "warnings": warnings,
        "complete": missing.is_empty(),
    }))
}

/// The cluster API (`cluster:` in a target file, the lab's `arm.json`):
/// where it is, how the runner authenticates, and what it answers now
/// (the control plane and the pools). `null` when none is configured.
/// The target's traffic switches and what each sends where now. A switch
/// that cannot be read says why on its own row, and is neither missing nor
/// a warning: a blue-green route is often created by the first rollout
/// that needs it (the lab has none until one is applied).
async fn inspect_traffic(target: &Target, kube: std::sync::Arc<dyn Kube>) -> Result<Vec<Value>, Failure> {
    let switches = target.switches();
    let Some(traffic) = super::builder::traffic_backend(&target.label(), switches.clone(), kube, Some(target))? else { return Ok(Vec::new()) };
    let mut rows = Vec::new();
    for switch in &switches {
        let via = match &switch.via {
            crate::target::SwitchVia::HttpRoute { namespace, name } => {
                format!("HTTPRoute {}/{name}", namespace.as_deref().unwrap_or("(the target's namespace)"))
            }
            crate::target::SwitchVia::TrafficManager { profile, resource_group } => {
                format!("Traffic Manager profile {profile}{}", resource_group.as_ref().map(|g| format!(" (resource group {g})")).unwrap_or_default())
            }
        };
        let mut row = json!({"name": switch.name, "via": via, "url": switch.url, "writer": switch.writer});
        match traffic.weights(&switch.name).await {
            Ok(state) => {
                row["generation"] = json!(state.generation);
                row["backends"] = json!(state.backends.iter().map(|b| json!({"name": b.name, "weight": b.weight, "enabled": b.enabled})).collect::<Vec<_>>());
            }
            Err(e) => row["problem"] = json!(e.to_string()),
        }
        rows.push(row);
    }
    Ok(rows)
}

async fn inspect_cluster(target: &Target, missing: &mut Vec<String>, warnings: &mut Vec<String>) -> Result<Value, Failure> {
    use crate::backends::Cluster;
    let config = match target.cluster_api() {
        Ok(Some(config)) => config,
        Ok(None) => return Ok(Value::Null),
        Err(crate::target::TargetError::Unreachable(message)) => {
            warnings.push(format!("cluster API: {message}; cluster calls answer unavailable"));
            return Ok(Value::Null);
        }
        Err(crate::target::TargetError::Bad(message)) => return Err(Failure::bad_input(message)),
    };
    let credential = match &config.token_file {
        Some(file) => format!("token file {}", file.display()),
        None => "azure_identity (workload identity, managed identity, Azure CLI)".into(),
    };
    let mut report = json!({
        "api": "aks",
        "endpoint": config.endpoint,
        "apiVersion": crate::backends::aks::API_VERSION,
        "subscription": config.subscription,
        "resourceGroup": config.resource_group,
        "name": config.name,
        "credential": credential,
        "caFile": config.ca_file,
    });
    let aks = crate::backends::aks::AksBackend::connect(&config).map_err(|e| Failure::bad_input(format!("target {}: cluster: {e}", target.label())))?;
    match aks.control_plane().await {
        Ok(plane) => {
            report["controlPlane"] = json!({"kubernetesVersion": plane.kubernetes_version, "currentKubernetesVersion": plane.current_kubernetes_version, "provisioningState": plane.provisioning_state, "upgrades": plane.upgrades})
        }
        Err(e) => missing.push(format!("cluster API: the control plane: {e}")),
    }
    match aks.node_pools().await {
        Ok(pools) => {
            report["pools"] = json!(pools
                .iter()
                .map(|p| json!({"name": p.name, "mode": p.mode, "orchestratorVersion": p.current_orchestrator_version, "nodeImageVersion": p.node_image_version, "count": p.count, "provisioningState": p.provisioning_state}))
                .collect::<Vec<_>>())
        }
        Err(e) => missing.push(format!("cluster API: the node pools: {e}")),
    }
    Ok(report)
}

async fn list(kube: &KubeBackend, api_version: &str, kind: &str, namespace: Option<&str>, labels: Option<String>) -> Result<Vec<Value>, BackendError> {
    let options = ListOptions {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: namespace.map(str::to_string),
        label_selector: labels,
        field_selector: None,
    };
    let text = kube.list(&options).await?;
    Ok(serde_json::from_str::<Vec<Value>>(&text).unwrap_or_default())
}

async fn get(kube: &KubeBackend, api_version: &str, kind: &str, namespace: &str, name: &str) -> Result<Option<Value>, BackendError> {
    let object = ObjectRef { api_version: api_version.into(), kind: kind.into(), namespace: Some(namespace.into()), name: name.into() };
    match kube.get(&object).await {
        Ok(text) => Ok(serde_json::from_str(&text).ok()),
        Err(e) if e.code == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What one read of an object came to.
enum Lookup {
    Found(Value),
    /// The server answered that there is no such object (404).
    Absent,
    /// The read failed otherwise (refused, invalid): whether the object exists is unknown.
    Unread(String),
}

fn node_row(node: &Value) -> Value {
    let labels = &node["metadata"]["labels"];
    let pool = labels["agentpool"].as_str().or_else(|| labels["kubernetes.azure.com/agentpool"].as_str());
    json!({
        "name": node["metadata"]["name"],
        "pool": pool,
        "kubeletVersion": node["status"]["nodeInfo"]["kubeletVersion"],
        "ready": crate::backends::kube::condition_is_true(node, "Ready"),
        "cordoned": node["spec"]["unschedulable"] == true,
    })
}

fn labels_of(object: &Value) -> serde_json::Map<String, Value> {
    object["metadata"]["labels"].as_object().cloned().unwrap_or_default()
}

/// A `matchLabels` selector as a label-selector string (`a=b,c=d`).
fn match_labels(selector: &Value) -> Option<String> {
    let labels = selector["matchLabels"].as_object()?;
    (!labels.is_empty()).then(|| labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(","))
}

async fn inspect_database(
    kube: &KubeBackend,
    database: &Database,
    default_ns: &str,
    nodes: &[Value],
    missing: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<Value, BackendError> {
    let ns = database.namespace.as_deref().unwrap_or(default_ns);
    let name = &database.name;
    let mut report = json!({"name": name, "engine": database.engine, "namespace": ns, "port": database.port, "statefulSet": {"name": database.stateful_set}});
    // A missing or refused read is something missing; only an unreachable server stops the check.
    // A read that failed (a 403) is not an object found missing: its error is kept to say so.
    let seen = |result: Result<Option<Value>, BackendError>, what: String, missing: &mut Vec<String>| -> Result<Lookup, BackendError> {
        match result {
            Ok(Some(found)) => Ok(Lookup::Found(found)),
            Ok(None) => Ok(Lookup::Absent),
            Err(e) if unreachable(&e) => Err(e),
            Err(e) => {
                missing.push(format!("{name}: {what}: {e}"));
                Ok(Lookup::Unread(e.to_string()))
            }
        }
    };

    let set = seen(get(kube, "apps/v1", "StatefulSet", ns, &database.stateful_set).await, format!("StatefulSet {ns}/{}", database.stateful_set), missing)?;
    let mut members: Vec<Value> = Vec::new();
    match set {
        Lookup::Unread(problem) => {
            report["statefulSet"]["found"] = Value::Null;
            report["statefulSet"]["problem"] = json!(problem);
        }
        Lookup::Absent if database.optional => {
            report["statefulSet"]["found"] = json!(false);
            report["note"] = json!("not running in this lab");
            return Ok(report);
        }
        Lookup::Absent => {
            missing.push(format!("{name}: StatefulSet {ns}/{} not found", database.stateful_set));
            report["statefulSet"]["found"] = json!(false);
        }
        Lookup::Found(set) => {
            let replicas = set["spec"]["replicas"].as_u64().unwrap_or(1);
            let ready = set["status"]["readyReplicas"].as_u64().unwrap_or(0);
            report["statefulSet"] = json!({"name": database.stateful_set, "found": true, "replicas": replicas, "ready": ready});
            if ready < replicas {
                warnings.push(format!("{name}: {ready}/{replicas} members Ready"));
            }
            let selector = match_labels(&set["spec"]["selector"]);
            match list(kube, "v1", "Pod", Some(ns), selector).await {
                Ok(pods) => {
                    let owned_by_set = |pod: &Value| {
                        pod["metadata"]["ownerReferences"].as_array().is_none_or(|refs| {
                            refs.is_empty() || refs.iter().any(|r| r["kind"] == "StatefulSet" && r["name"] == database.stateful_set.as_str())
                        })
                    };
                    members = pods.into_iter().filter(owned_by_set).collect();
                    if members.is_empty() {
                        missing.push(format!("{name}: no member Pods of StatefulSet {}", database.stateful_set));
                    }
                }
                Err(e) if unreachable(&e) => return Err(e),
                Err(e) => missing.push(format!("{name}: its member Pods: {e}")),
            }
        }
    }

    let mut primary_members: Vec<String> = Vec::new();
    if let Some(service_name) = &database.primary_service {
        let service = seen(get(kube, "v1", "Service", ns, service_name).await, format!("Service {ns}/{service_name}"), missing)?;
        match service {
            Lookup::Unread(problem) => report["primaryService"] = json!({"name": service_name, "found": null, "problem": problem}),
            Lookup::Absent => {
                missing.push(format!("{name}: primary Service {ns}/{service_name} not found"));
                report["primaryService"] = json!({"name": service_name, "found": false});
            }
            Lookup::Found(service) => {
                let selector = service["spec"]["selector"].as_object().cloned().unwrap_or_default();
                primary_members = members
                    .iter()
                    .filter(|pod| !selector.is_empty() && selector.iter().all(|(k, v)| labels_of(pod).get(k) == Some(v)))
                    .filter_map(|pod| pod["metadata"]["name"].as_str().map(str::to_string))
                    .collect();
                let ports: Vec<u64> = service["spec"]["ports"].as_array().map(|p| p.iter().filter_map(|p| p["port"].as_u64()).collect()).unwrap_or_default();
                if primary_members.is_empty() && !members.is_empty() {
                    missing.push(format!("{name}: primary Service {service_name} points at no member (selector {})", Value::Object(selector.clone())));
                }
                if !ports.contains(&u64::from(database.port)) {
                    warnings.push(format!("{name}: Service {service_name} does not expose port {} (ports {ports:?})", database.port));
                }
                report["primaryService"] = json!({"name": service_name, "found": true, "clusterIP": service["spec"]["clusterIP"], "ports": ports, "selector": selector, "pointsTo": primary_members});
            }
        }
    }

    let member_rows: Vec<Value> = members
        .iter()
        .map(|pod| {
            let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
            let node = nodes.iter().find(|n| n["name"] == node_name);
            let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let declares_port = pod["spec"]["containers"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| c["ports"].as_array().is_some_and(|ps| ps.iter().any(|p| p["containerPort"].as_u64() == Some(u64::from(database.port)))))
            });
            json!({
                "name": pod_name,
                "ready": crate::backends::kube::condition_is_true(pod, "Ready"),
                "phase": pod["status"]["phase"],
                "role": pod["metadata"]["labels"]["role"],
                "primary": primary_members.iter().any(|p| p == pod_name),
                "node": node_name,
                "pool": node.map(|n| n["pool"].clone()).unwrap_or(Value::Null),
                "kubeletVersion": node.map(|n| n["kubeletVersion"].clone()).unwrap_or(Value::Null),
                "address": pod["status"]["podIP"],
                "declaresPort": declares_port,
            })
        })
        .collect();
    if !member_rows.is_empty() && member_rows.iter().all(|m| m["declaresPort"] == false) {
        warnings.push(format!("{name}: no member declares port {} in its containers", database.port));
    }
    report["members"] = json!(member_rows);

    // Resolved to prove the source works, then dropped: the value is never shown.
    let credentials = match crate::backends::members::resolve_credential(database, kube, ns).await {
        Ok(_) => json!({"source": database.credentials.to_string(), "found": true}),
        Err(e) => {
            missing.push(format!("{name}: credentials: {e}"));
            json!({"source": database.credentials.to_string(), "found": false, "problem": e.0})
        }
    };
    report["credentials"] = credentials;
    Ok(report)
}
