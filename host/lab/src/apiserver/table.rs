//! Server-side printing: `meta.k8s.io/v1 Table` with the columns kubectl
//! shows for each kind (priority 1 columns appear with `-o wide`).

use serde_json::{Value, json};

use super::resources::Resource;
use super::time;

fn col(name: &str, ty: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": name, "priority": priority})
}

fn columns(kind: &str) -> Vec<Value> {
    let s = |n: &str| col(n, "string", 0);
    let w = |n: &str| col(n, "string", 1);
    match kind {
        "Pod" => {
            vec![s("Name"), s("Ready"), s("Status"), col("Restarts", "string", 0), s("Age"), w("IP"), w("Node"), w("Nominated Node"), w("Readiness Gates")]
        }
        "Node" => vec![
            s("Name"),
            s("Status"),
            s("Roles"),
            s("Age"),
            s("Version"),
            w("Internal-IP"),
            w("External-IP"),
            w("OS-Image"),
            w("Kernel-Version"),
            w("Container-Runtime"),
        ],
        "Namespace" => vec![s("Name"), s("Status"), s("Age")],
        "Service" => vec![s("Name"), s("Type"), s("Cluster-IP"), s("External-IP"), s("Port(s)"), s("Age"), w("Selector")],
        "Endpoints" => vec![s("Name"), s("Endpoints"), s("Age")],
        "Secret" => vec![s("Name"), s("Type"), col("Data", "integer", 0), s("Age")],
        "ConfigMap" => vec![s("Name"), col("Data", "integer", 0), s("Age")],
        "Event" => vec![
            s("Last Seen"),
            s("Type"),
            s("Reason"),
            s("Object"),
            w("Subobject"),
            w("Source"),
            s("Message"),
            w("First Seen"),
            col("Count", "integer", 1),
            w("Name"),
        ],
        "Deployment" => {
            vec![s("Name"), s("Ready"), col("Up-to-date", "integer", 0), col("Available", "integer", 0), s("Age"), w("Containers"), w("Images"), w("Selector")]
        }
        "ReplicaSet" => vec![
            s("Name"),
            col("Desired", "integer", 0),
            col("Current", "integer", 0),
            col("Ready", "integer", 0),
            s("Age"),
            w("Containers"),
            w("Images"),
            w("Selector"),
        ],
        "StatefulSet" => vec![s("Name"), s("Ready"), s("Age"), w("Containers"), w("Images")],
        "DaemonSet" => vec![
            s("Name"),
            col("Desired", "integer", 0),
            col("Current", "integer", 0),
            col("Ready", "integer", 0),
            col("Up-to-date", "integer", 0),
            col("Available", "integer", 0),
            s("Node Selector"),
            s("Age"),
            w("Containers"),
            w("Images"),
            w("Selector"),
        ],
        "PodDisruptionBudget" => vec![s("Name"), s("Min Available"), s("Max Unavailable"), col("Allowed Disruptions", "integer", 0), s("Age")],
        "Job" => vec![s("Name"), s("Status"), s("Completions"), s("Duration"), s("Age"), w("Containers"), w("Images"), w("Selector")],
        "HTTPRoute" => vec![s("Name"), s("Hostnames"), s("Age")],
        _ => vec![s("Name"), s("Age")],
    }
}

fn str_at<'a>(o: &'a Value, ptr: &str) -> &'a str {
    o.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn int_at(o: &Value, ptr: &str) -> i64 {
    o.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

fn age(o: &Value) -> String {
    time::age(o.pointer("/metadata/creationTimestamp").and_then(Value::as_str))
}

fn selector_string(map: Option<&Value>) -> String {
    map.and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

fn label_selector_string(sel: Option<&Value>) -> String {
    super::selector::LabelSelector::from_object(sel).map(|s| s.to_string_form()).unwrap_or_default()
}

fn containers_images(o: &Value, ptr: &str) -> (String, String) {
    let cs = o.pointer(ptr).and_then(Value::as_array).cloned().unwrap_or_default();
    let names: Vec<&str> = cs.iter().filter_map(|c| c["name"].as_str()).collect();
    let images: Vec<&str> = cs.iter().filter_map(|c| c["image"].as_str()).collect();
    (names.join(","), images.join(","))
}

fn pod_status(o: &Value) -> String {
    let mut reason = str_at(o, "/status/phase").to_string();
    if !str_at(o, "/status/reason").is_empty() {
        reason = str_at(o, "/status/reason").to_string();
    }
    let mut has_running = false;
    let statuses = o.pointer("/status/containerStatuses").and_then(Value::as_array).cloned().unwrap_or_default();
    for cs in statuses.iter().rev() {
        if let Some(r) = cs.pointer("/state/waiting/reason").and_then(Value::as_str).filter(|r| !r.is_empty()) {
            reason = r.to_string();
        } else if let Some(t) = cs.pointer("/state/terminated") {
            reason = match t.get("reason").and_then(Value::as_str).filter(|r| !r.is_empty()) {
                Some(r) => r.to_string(),
                None => match t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                    Some(sig) => format!("Signal:{sig}"),
                    None => format!("ExitCode:{}", t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)),
                },
            };
        } else if cs["ready"] == true && cs.pointer("/state/running").is_some() {
            has_running = true;
        }
    }
    if reason == "Completed" && has_running {
        let ready = o.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
        reason = if ready { "Running".into() } else { "NotReady".into() };
    }
    if o.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null()) {
        reason = if str_at(o, "/status/reason") == "NodeLost" { "Unknown".into() } else { "Terminating".into() };
    }
    if reason.is_empty() { "Unknown".into() } else { reason }
}

fn cells(kind: &str, o: &Value) -> Vec<Value> {
    let name = json!(str_at(o, "/metadata/name"));
    match kind {
        "Pod" => {
            let total = o.pointer("/spec/containers").and_then(Value::as_array).map_or(0, Vec::len);
            let statuses = o.pointer("/status/containerStatuses").and_then(Value::as_array).cloned().unwrap_or_default();
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let restarts: i64 = statuses.iter().map(|c| c["restartCount"].as_i64().unwrap_or(0)).sum();
            let gates = o.pointer("/spec/readinessGates").and_then(Value::as_array).map_or(0, Vec::len);
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status(o)),
                json!(restarts.to_string()),
                json!(age(o)),
                json!(or_none(str_at(o, "/status/podIP").to_string())),
                json!(or_none(str_at(o, "/spec/nodeName").to_string())),
                json!(or_none(str_at(o, "/status/nominatedNodeName").to_string())),
                json!(if gates == 0 { "<none>".to_string() } else { format!("0/{gates}") }),
            ]
        }
        "Node" => {
            let conds = o.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut status = match conds.iter().find(|c| c["type"] == "Ready").and_then(|c| c["status"].as_str()) {
                // As kubectl prints it: Unknown (the kubelet went silent) is NotReady too.
                Some("True") => "Ready".to_string(),
                Some(_) => "NotReady".to_string(),
                None => "Unknown".to_string(),
            };
            if o.pointer("/spec/unschedulable") == Some(&json!(true)) {
                status.push_str(",SchedulingDisabled");
            }
            let mut roles: Vec<String> = o
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|l| {
                    l.iter()
                        .filter_map(|(k, v)| {
                            if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                                Some(r.to_string())
                            } else if k == "kubernetes.io/role" {
                                v.as_str().map(str::to_string)
                            } else {
                                None
                            }
                        })
                        .filter(|r| !r.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            roles.sort();
            roles.dedup();
            let addr = |t: &str| {
                o.pointer("/status/addresses")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find(|x| x["type"] == t))
                    .and_then(|x| x["address"].as_str())
                    .unwrap_or("<none>")
                    .to_string()
            };
            vec![
                name,
                json!(status),
                json!(or_none(roles.join(","))),
                json!(age(o)),
                json!(str_at(o, "/status/nodeInfo/kubeletVersion")),
                json!(addr("InternalIP")),
                json!(addr("ExternalIP")),
                json!(or_none(str_at(o, "/status/nodeInfo/osImage").into())),
                json!(or_none(str_at(o, "/status/nodeInfo/kernelVersion").into())),
                json!(or_none(str_at(o, "/status/nodeInfo/containerRuntimeVersion").into())),
            ]
        }
        "Namespace" => vec![name, json!(str_at(o, "/status/phase")), json!(age(o))],
        "Service" => {
            let ty = str_at(o, "/spec/type");
            let ports: Vec<String> = o
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let proto = p["protocol"].as_str().unwrap_or("TCP");
                            match p["nodePort"].as_i64() {
                                Some(np) if np != 0 => format!("{}:{np}/{proto}", p["port"]),
                                _ => format!("{}/{proto}", p["port"]),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let external = match ty {
                "LoadBalancer" => {
                    let ing: Vec<String> = o
                        .pointer("/status/loadBalancer/ingress")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()).map(str::to_string)).collect())
                        .unwrap_or_default();
                    if ing.is_empty() { "<pending>".to_string() } else { ing.join(",") }
                }
                "ExternalName" => str_at(o, "/spec/externalName").to_string(),
                _ => o
                    .pointer("/spec/externalIPs")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "<none>".into()),
            };
            vec![
                name,
                json!(ty),
                json!(or_none(str_at(o, "/spec/clusterIP").into())),
                json!(external),
                json!(or_none(ports.join(","))),
                json!(age(o)),
                json!(or_none(selector_string(o.pointer("/spec/selector")))),
            ]
        }
        "Endpoints" => {
            let mut eps = Vec::new();
            for subset in o.get("subsets").and_then(Value::as_array).into_iter().flatten() {
                for a in subset["addresses"].as_array().into_iter().flatten() {
                    for p in subset["ports"].as_array().into_iter().flatten() {
                        eps.push(format!("{}:{}", a["ip"].as_str().unwrap_or_default(), p["port"]));
                    }
                }
            }
            vec![name, json!(or_none(eps.join(","))), json!(age(o))]
        }
        "Secret" => vec![name, json!(str_at(o, "/type")), json!(o.get("data").and_then(Value::as_object).map_or(0, |m| m.len())), json!(age(o))],
        "ConfigMap" => {
            let n = o.get("data").and_then(Value::as_object).map_or(0, |m| m.len()) + o.get("binaryData").and_then(Value::as_object).map_or(0, |m| m.len());
            vec![name, json!(n), json!(age(o))]
        }
        "Event" => {
            let last = o
                .get("lastTimestamp")
                .and_then(Value::as_str)
                .or(o.get("eventTime").and_then(Value::as_str))
                .or(o.pointer("/metadata/creationTimestamp").and_then(Value::as_str));
            let first = o.get("firstTimestamp").and_then(Value::as_str).or(last);
            let object = format!("{}/{}", str_at(o, "/involvedObject/kind").to_lowercase(), str_at(o, "/involvedObject/name"));
            let source = str_at(o, "/source/component");
            let source = if source.is_empty() { str_at(o, "/reportingComponent") } else { source };
            vec![
                json!(time::age(last)),
                json!(str_at(o, "/type")),
                json!(str_at(o, "/reason")),
                json!(object),
                json!(str_at(o, "/involvedObject/fieldPath")),
                json!(source),
                json!(str_at(o, "/message").trim()),
                json!(time::age(first)),
                json!(o.get("count").and_then(Value::as_i64).unwrap_or(1)),
                name,
            ]
        }
        "HTTPRoute" => {
            let hostnames: Vec<&str> = o.pointer("/spec/hostnames").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
            vec![name, json!(hostnames.join(",")), json!(age(o))]
        }
        "Deployment" => {
            let (cs, imgs) = containers_images(o, "/spec/template/spec/containers");
            vec![
                name,
                json!(format!("{}/{}", int_at(o, "/status/readyReplicas"), o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1))),
                json!(int_at(o, "/status/updatedReplicas")),
                json!(int_at(o, "/status/availableReplicas")),
                json!(age(o)),
                json!(cs),
                json!(imgs),
                json!(or_none(label_selector_string(o.pointer("/spec/selector")))),
            ]
        }
        "ReplicaSet" => {
            let (cs, imgs) = containers_images(o, "/spec/template/spec/containers");
            vec![
                name,
                json!(o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)),
                json!(int_at(o, "/status/replicas")),
                json!(int_at(o, "/status/readyReplicas")),
                json!(age(o)),
                json!(cs),
                json!(imgs),
                json!(or_none(label_selector_string(o.pointer("/spec/selector")))),
            ]
        }
        "StatefulSet" => {
            let (cs, imgs) = containers_images(o, "/spec/template/spec/containers");
            vec![
                name,
                json!(format!("{}/{}", int_at(o, "/status/readyReplicas"), o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1))),
                json!(age(o)),
                json!(cs),
                json!(imgs),
            ]
        }
        "DaemonSet" => {
            let (cs, imgs) = containers_images(o, "/spec/template/spec/containers");
            vec![
                name,
                json!(int_at(o, "/status/desiredNumberScheduled")),
                json!(int_at(o, "/status/currentNumberScheduled")),
                json!(int_at(o, "/status/numberReady")),
                json!(int_at(o, "/status/updatedNumberScheduled")),
                json!(int_at(o, "/status/numberAvailable")),
                json!(or_none(selector_string(o.pointer("/spec/template/spec/nodeSelector")))),
                json!(age(o)),
                json!(cs),
                json!(imgs),
                json!(or_none(label_selector_string(o.pointer("/spec/selector")))),
            ]
        }
        "PodDisruptionBudget" => {
            let show = |v: Option<&Value>| match v {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                _ => "N/A".to_string(),
            };
            vec![
                name,
                json!(show(o.pointer("/spec/minAvailable"))),
                json!(show(o.pointer("/spec/maxUnavailable"))),
                json!(int_at(o, "/status/disruptionsAllowed")),
                json!(age(o)),
            ]
        }
        "Job" => {
            let conds = o.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
            let has = |t: &str| conds.iter().any(|c| c["type"] == t && c["status"] == "True");
            let status = if has("Complete") {
                "Complete"
            } else if has("Failed") {
                "Failed"
            } else if has("FailureTarget") {
                "FailureTarget"
            } else if has("Suspended") {
                "Suspended"
            } else if has("SuccessCriteriaMet") {
                "SuccessCriteriaMet"
            } else {
                "Running"
            };
            let completions = match o.pointer("/spec/completions").and_then(Value::as_i64) {
                Some(c) => format!("{}/{c}", int_at(o, "/status/succeeded")),
                None => format!("{}/1 of {}", int_at(o, "/status/succeeded"), int_at(o, "/spec/parallelism").max(1)),
            };
            let start = o.pointer("/status/startTime").and_then(Value::as_str).and_then(time::parse_rfc3339);
            let end = o.pointer("/status/completionTime").and_then(Value::as_str).and_then(time::parse_rfc3339).unwrap_or_else(time::now_unix);
            let duration = start.map(|s| time::human_duration(std::time::Duration::from_secs((end - s).max(0) as u64))).unwrap_or_default();
            let (cs, imgs) = containers_images(o, "/spec/template/spec/containers");
            vec![
                name,
                json!(status),
                json!(completions),
                json!(duration),
                json!(age(o)),
                json!(cs),
                json!(imgs),
                json!(or_none(label_selector_string(o.pointer("/spec/selector")))),
            ]
        }
        _ => vec![name, json!(age(o))],
    }
}

/// How much of each object a Table row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(s: Option<&str>) -> Include {
        match s {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

/// A `PartialObjectMetadata` for an object.
pub(crate) fn partial_metadata(o: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))})
}

/// A Table of the given objects.
pub(crate) fn table(res: &Resource, objects: &[&Value], include: Include, list_meta: Value) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(res.kind, o)});
            match include {
                Include::None => {}
                Include::Metadata => row["object"] = partial_metadata(o),
                Include::Object => row["object"] = (*o).clone(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns(res.kind),
        "rows": rows,
    })
}
