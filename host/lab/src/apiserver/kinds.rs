//! Per-kind defaulting and validation, the parts a real API server applies on
//! every write that tools and controllers rely on.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::resources::Resource;

type Errors = Vec<(String, String)>;

/// Whether `s` is a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63).
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-') && !s.starts_with('-') && !s.ends_with('-')
}

/// Whether `s` is a DNS-1123 subdomain (dot-separated labels, at most 253).
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

const DNS_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// Checks the object's name for its kind; the message as the real server words it.
pub(crate) fn validate_name(res: &Resource, name: &str) -> Result<(), (String, String)> {
    let label = matches!(res.kind, "Namespace" | "Service");
    let ok = if label { is_dns_label(name) } else { is_dns_subdomain(name) };
    if ok {
        Ok(())
    } else {
        let msg = if label { DNS_LABEL_MSG } else { DNS_SUBDOMAIN_MSG };
        Err(("metadata.name".into(), format!("Invalid value: {name:?}: {msg}")))
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn want(errs: &mut Errors, path: &str, v: Option<&Value>, ty: &str) {
    let Some(v) = v else { return };
    let ok = match ty {
        "object" => v.is_object() || v.is_null(),
        "array" => v.is_array() || v.is_null(),
        "string" => v.is_string() || v.is_null(),
        "boolean" => v.is_boolean() || v.is_null(),
        "integer" => v.is_i64() || v.is_u64() || v.is_null(),
        "int-or-string" => v.is_i64() || v.is_u64() || v.is_string() || v.is_null(),
        _ => true,
    };
    if !ok {
        errs.push((path.into(), format!("Invalid value: {:?}: {path} in body must be of type {ty}: {:?}", type_name(v), type_name(v))));
    }
}

fn want_string_map(errs: &mut Errors, path: &str, v: Option<&Value>) {
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, val) in m {
                if !val.is_string() {
                    errs.push((
                        format!("{path}.{k}"),
                        format!("Invalid value: {:?}: {path}.{k} in body must be of type string: {:?}", type_name(val), type_name(val)),
                    ));
                }
            }
        }
        Some(other) => want(errs, path, Some(other), "object"),
    }
}

fn validate_metadata(meta: &Value, errs: &mut Errors) {
    want_string_map(errs, "metadata.labels", meta.get("labels"));
    want_string_map(errs, "metadata.annotations", meta.get("annotations"));
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                errs.push(("metadata.labels".into(), format!("Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")));
            }
            if let Some(s) = v.as_str()
                && !is_label_value(s)
            {
                errs.push(("metadata.labels".into(), format!("Invalid value: {s:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")));
            }
        }
    }
    want(errs, "metadata.finalizers", meta.get("finalizers"), "array");
    want(errs, "metadata.ownerReferences", meta.get("ownerReferences"), "array");
}

fn validate_int_or_percent(errs: &mut Errors, path: &str, v: Option<&Value>) {
    match v {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            if parse_percent(s).is_none() {
                errs.push((path.into(), format!("Invalid value: {s:?}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")));
            }
        }
        Some(Value::Number(n)) if n.as_i64().is_some_and(|i| i >= 0) => {}
        Some(other) => errs.push((path.into(), format!("Invalid value: {other}: must be greater than or equal to 0"))),
    }
}

/// `"25%"` → 25.
pub(crate) fn parse_percent(s: &str) -> Option<i64> {
    let n = s.strip_suffix('%')?;
    if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

fn validate_pod_spec(errs: &mut Errors, path: &str, spec: Option<&Value>) {
    let Some(spec) = spec.filter(|s| !s.is_null()) else {
        errs.push((path.into(), "Required value".into()));
        return;
    };
    if !spec.is_object() {
        want(errs, path, Some(spec), "object");
        return;
    }
    want(errs, &format!("{path}.nodeName"), spec.get("nodeName"), "string");
    want(errs, &format!("{path}.terminationGracePeriodSeconds"), spec.get("terminationGracePeriodSeconds"), "integer");
    for list in ["containers", "initContainers"] {
        let p = format!("{path}.{list}");
        let v = spec.get(list);
        want(errs, &p, v, "array");
        let items = v.and_then(Value::as_array).cloned().unwrap_or_default();
        if list == "containers" && items.is_empty() {
            errs.push((p.clone(), "Required value".into()));
        }
        let mut names = Vec::new();
        for (i, c) in items.iter().enumerate() {
            let cp = format!("{p}[{i}]");
            if !c.is_object() {
                want(errs, &cp, Some(c), "object");
                continue;
            }
            match c.get("name").and_then(Value::as_str) {
                None | Some("") => errs.push((format!("{cp}.name"), "Required value".into())),
                Some(n) if !is_dns_label(n) => errs.push((format!("{cp}.name"), format!("Invalid value: {n:?}: {DNS_LABEL_MSG}"))),
                Some(n) if names.contains(&n.to_string()) => errs.push((format!("{cp}.name"), format!("Duplicate value: {n:?}"))),
                Some(n) => names.push(n.to_string()),
            }
            match c.get("image") {
                None | Some(Value::Null) => errs.push((format!("{cp}.image"), "Required value".into())),
                Some(Value::String(s)) if s.trim().is_empty() => errs.push((format!("{cp}.image"), "Required value".into())),
                other => want(errs, &format!("{cp}.image"), other, "string"),
            }
            want(errs, &format!("{cp}.command"), c.get("command"), "array");
            want(errs, &format!("{cp}.args"), c.get("args"), "array");
            want(errs, &format!("{cp}.env"), c.get("env"), "array");
            want(errs, &format!("{cp}.ports"), c.get("ports"), "array");
            for (j, port) in c.get("ports").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let pp = format!("{cp}.ports[{j}].containerPort");
                match port.get("containerPort") {
                    Some(v) if v.as_i64().is_some_and(|n| (1..=65535).contains(&n)) => {}
                    None => errs.push((pp, "Required value".into())),
                    Some(v) if v.is_i64() => errs.push((pp, format!("Invalid value: {v}: must be between 1 and 65535, inclusive"))),
                    other => want(errs, &pp, other, "integer"),
                }
            }
            for (j, env) in c.get("env").and_then(Value::as_array).into_iter().flatten().enumerate() {
                if env.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
                    errs.push((format!("{cp}.env[{j}].name"), "Required value".into()));
                }
            }
        }
    }
}

fn validate_selector_matches_template(errs: &mut Errors, spec: &Value) {
    let sel = spec.get("selector");
    if sel.is_none_or(Value::is_null) {
        errs.push(("spec.selector".into(), "Required value".into()));
        return;
    }
    want(errs, "spec.selector", sel, "object");
    let Ok(selector) = super::selector::LabelSelector::from_object(sel) else {
        errs.push(("spec.selector".into(), "Invalid value: invalid label selector".into()));
        return;
    };
    if selector.is_everything() {
        errs.push(("spec.selector".into(), "Invalid value: \"{}\": empty selector is invalid for deployment".into()));
        return;
    }
    let labels = spec.pointer("/template/metadata/labels").and_then(Value::as_object);
    if !selector.matches(labels) {
        errs.push((
            "spec.template.metadata.labels".into(),
            format!(
                "Invalid value: {}: `selector` does not match template `labels`",
                serde_json::to_string(&labels.cloned().unwrap_or_default()).unwrap_or_default()
            ),
        ));
    }
}

/// Validates an object about to be written; a 422 Invalid lists every problem.
pub(crate) fn validate(res: &Resource, obj: &Value) -> Result<(), ApiError> {
    let mut errs: Errors = Vec::new();
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    validate_metadata(&obj["metadata"], &mut errs);
    let spec = obj.get("spec");
    if !matches!(res.kind, "ConfigMap" | "Secret" | "Event" | "Endpoints") {
        want(&mut errs, "spec", spec, "object");
    }
    want(&mut errs, "status", obj.get("status"), "object");
    let spec = spec.filter(|s| s.is_object());
    match res.kind {
        "Pod" => validate_pod_spec(&mut errs, "spec", spec),
        "Node" => {
            if let Some(s) = spec {
                want(&mut errs, "spec.unschedulable", s.get("unschedulable"), "boolean");
                want(&mut errs, "spec.taints", s.get("taints"), "array");
            }
        }
        "Service" => {
            if let Some(s) = spec {
                want_string_map(&mut errs, "spec.selector", s.get("selector"));
                want(&mut errs, "spec.ports", s.get("ports"), "array");
                let ports = s.get("ports").and_then(Value::as_array).cloned().unwrap_or_default();
                for (i, p) in ports.iter().enumerate() {
                    let pp = format!("spec.ports[{i}].port");
                    match p.get("port") {
                        Some(v) if v.as_i64().is_some_and(|n| (1..=65535).contains(&n)) => {}
                        None => errs.push((pp, "Required value".into())),
                        Some(v) if v.is_i64() => errs.push((pp, format!("Invalid value: {v}: must be between 1 and 65535, inclusive"))),
                        other => want(&mut errs, &pp, other, "integer"),
                    }
                    validate_int_or_percent_port(&mut errs, &format!("spec.ports[{i}].targetPort"), p.get("targetPort"));
                    if ports.len() > 1 && p.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
                        errs.push((format!("spec.ports[{i}].name"), "Required value".into()));
                    }
                }
                if let Some(t) = s.get("type").and_then(Value::as_str)
                    && !matches!(t, "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName")
                {
                    errs.push((
                        "spec.type".into(),
                        format!("Unsupported value: {t:?}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
                    ));
                }
            }
        }
        "StatefulSet" | "DaemonSet" => match spec {
            None => errs.push(("spec".into(), "Required value".into())),
            Some(s) => {
                if res.kind == "StatefulSet" {
                    match s.get("replicas") {
                        Some(v) if v.as_i64().is_some_and(|n| n < 0) => {
                            errs.push(("spec.replicas".into(), format!("Invalid value: {v}: must be greater than or equal to 0")))
                        }
                        other => want(&mut errs, "spec.replicas", other, "integer"),
                    }
                    want(&mut errs, "spec.serviceName", s.get("serviceName"), "string");
                    want(&mut errs, "spec.volumeClaimTemplates", s.get("volumeClaimTemplates"), "array");
                }
                validate_selector_matches_template(&mut errs, s);
                validate_pod_spec(&mut errs, "spec.template.spec", s.pointer("/template/spec"));
            }
        },
        "Deployment" | "ReplicaSet" => match spec {
            None => errs.push(("spec".into(), "Required value".into())),
            Some(s) => {
                for field in ["replicas", "minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"] {
                    want_non_negative(&mut errs, &format!("spec.{field}"), s.get(field));
                }
                validate_selector_matches_template(&mut errs, s);
                validate_pod_spec(&mut errs, "spec.template.spec", s.pointer("/template/spec"));
                if res.kind == "Deployment" {
                    want(&mut errs, "spec.paused", s.get("paused"), "boolean");
                    validate_deployment_strategy(&mut errs, s.get("strategy"));
                }
            }
        },
        "Job" => match spec {
            None => errs.push(("spec".into(), "Required value".into())),
            Some(s) => {
                for f in ["parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"] {
                    want(&mut errs, &format!("spec.{f}"), s.get(f), "integer");
                }
                validate_pod_spec(&mut errs, "spec.template.spec", s.pointer("/template/spec"));
                match s.pointer("/template/spec/restartPolicy").and_then(Value::as_str) {
                    Some("Never") | Some("OnFailure") => {}
                    Some(other) => errs
                        .push(("spec.template.spec.restartPolicy".into(), format!("Unsupported value: {other:?}: supported values: \"OnFailure\", \"Never\""))),
                    None => errs.push(("spec.template.spec.restartPolicy".into(), "Required value: valid values: \"OnFailure\", \"Never\"".into())),
                }
            }
        },
        "PodDisruptionBudget" => {
            if let Some(s) = spec {
                validate_int_or_percent(&mut errs, "spec.minAvailable", s.get("minAvailable"));
                validate_int_or_percent(&mut errs, "spec.maxUnavailable", s.get("maxUnavailable"));
                if s.get("minAvailable").is_some_and(|v| !v.is_null()) && s.get("maxUnavailable").is_some_and(|v| !v.is_null()) {
                    errs.push(("spec".into(), "Invalid value: minAvailable and maxUnavailable cannot be both set".into()));
                }
                want(&mut errs, "spec.selector", s.get("selector"), "object");
                if let Some(p) = s.get("unhealthyPodEvictionPolicy").and_then(Value::as_str)
                    && !matches!(p, "IfHealthyBudget" | "AlwaysAllow")
                {
                    errs.push((
                        "spec.unhealthyPodEvictionPolicy".into(),
                        format!("Unsupported value: {p:?}: supported values: \"AlwaysAllow\", \"IfHealthyBudget\""),
                    ));
                }
            }
        }
        "HTTPRoute" => {
            if let Some(s) = spec {
                validate_http_route(&mut errs, s);
            }
        }
        "ConfigMap" => {
            want_string_map(&mut errs, "data", obj.get("data"));
            want_string_map(&mut errs, "binaryData", obj.get("binaryData"));
        }
        "Secret" => {
            want_string_map(&mut errs, "data", obj.get("data"));
            if let Some(data) = obj.get("data").and_then(Value::as_object) {
                for (k, v) in data {
                    if let Some(s) = v.as_str()
                        && base64::engine::general_purpose::STANDARD.decode(s).is_err()
                    {
                        errs.push((format!("data[{k}]"), "Invalid value: \"<secret contents redacted>\": illegal base64 data".into()));
                    }
                }
            }
        }
        _ => {}
    }
    if errs.is_empty() { Ok(()) } else { Err(ApiError::invalid(res.group, res.kind, &name, &errs)) }
}

/// The HTTPRoute fields the lab's front door reads, checked as the
/// Gateway API CRD's schema does: `hostnames` strings, and each
/// `rules[].backendRefs[]` naming a Service (`name` required, `port`
/// 1-65535, `weight` 0-1000000).
fn validate_http_route(errs: &mut Errors, spec: &Value) {
    want(errs, "spec.hostnames", spec.get("hostnames"), "array");
    for (i, h) in spec.get("hostnames").and_then(Value::as_array).into_iter().flatten().enumerate() {
        want(errs, &format!("spec.hostnames[{i}]"), Some(h), "string");
    }
    want(errs, "spec.parentRefs", spec.get("parentRefs"), "array");
    want(errs, "spec.rules", spec.get("rules"), "array");
    for (i, rule) in spec.get("rules").and_then(Value::as_array).into_iter().flatten().enumerate() {
        want(errs, &format!("spec.rules[{i}].backendRefs"), rule.get("backendRefs"), "array");
        for (j, backend) in rule.get("backendRefs").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let at = format!("spec.rules[{i}].backendRefs[{j}]");
            match backend.get("name") {
                Some(Value::String(n)) if !n.is_empty() => {}
                None | Some(Value::Null) => errs.push((format!("{at}.name"), "Required value".into())),
                other => want(errs, &format!("{at}.name"), other, "string"),
            }
            match backend.get("port") {
                Some(v) if v.is_i64() && !v.as_i64().is_some_and(|p| (1..=65535).contains(&p)) => {
                    errs.push((format!("{at}.port"), format!("Invalid value: {v}: {at}.port in body should be between 1 and 65535")))
                }
                other => want(errs, &format!("{at}.port"), other, "integer"),
            }
            match backend.get("weight") {
                Some(v) if v.is_i64() && !v.as_i64().is_some_and(|w| (0..=1_000_000).contains(&w)) => {
                    errs.push((format!("{at}.weight"), format!("Invalid value: {v}: {at}.weight in body should be between 0 and 1000000")))
                }
                other => want(errs, &format!("{at}.weight"), other, "integer"),
            }
        }
    }
}

/// An optional integer field that must not be negative.
fn want_non_negative(errs: &mut Errors, path: &str, v: Option<&Value>) {
    match v {
        Some(v) if v.as_i64().is_some_and(|n| n < 0) => errs.push((path.into(), format!("Invalid value: {v}: must be greater than or equal to 0"))),
        other => want(errs, path, other, "integer"),
    }
}

/// `spec.strategy` of a Deployment: `RollingUpdate` (maxSurge and
/// maxUnavailable ints or percentages, not both zero) or `Recreate` (no
/// `rollingUpdate` then), worded as the real server words it.
fn validate_deployment_strategy(errs: &mut Errors, strategy: Option<&Value>) {
    let Some(strategy) = strategy.filter(|s| !s.is_null()) else { return };
    if !strategy.is_object() {
        want(errs, "spec.strategy", Some(strategy), "object");
        return;
    }
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match strategy.get("type").and_then(Value::as_str) {
        None | Some("RollingUpdate") => {}
        Some("Recreate") => {
            if rolling.is_some() {
                errs.push(("spec.strategy.rollingUpdate".into(), "Forbidden: may not be specified when strategy `type` is 'Recreate'".into()));
            }
            return;
        }
        Some(other) => {
            errs.push(("spec.strategy.type".into(), format!("Unsupported value: {other:?}: supported values: \"Recreate\", \"RollingUpdate\"")));
            return;
        }
    }
    let Some(rolling) = rolling else { return };
    if !rolling.is_object() {
        want(errs, "spec.strategy.rollingUpdate", Some(rolling), "object");
        return;
    }
    let (surge, unavailable) = (rolling.get("maxSurge"), rolling.get("maxUnavailable"));
    validate_int_or_percent(errs, "spec.strategy.rollingUpdate.maxSurge", surge);
    validate_int_or_percent(errs, "spec.strategy.rollingUpdate.maxUnavailable", unavailable);
    let zero = |v: Option<&Value>| match v {
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(Value::String(s)) => parse_percent(s) == Some(0),
        _ => false,
    };
    if zero(surge) && zero(unavailable) {
        errs.push(("spec.strategy.rollingUpdate.maxUnavailable".into(), "Invalid value: 0: may not be 0 when `maxSurge` is 0".into()));
    }
    if let Some(Value::String(s)) = unavailable
        && parse_percent(s).is_some_and(|p| p > 100)
    {
        errs.push(("spec.strategy.rollingUpdate.maxUnavailable".into(), format!("Invalid value: {s:?}: must not be greater than 100%")));
    }
}

fn validate_int_or_percent_port(errs: &mut Errors, path: &str, v: Option<&Value>) {
    want(errs, path, v, "int-or-string");
}

fn set_default(m: &mut Map<String, Value>, key: &str, v: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), v);
    }
}

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    if v.get(key).is_none_or(Value::is_null) {
        v.as_object_mut()?.insert(key.to_string(), json!({}));
    }
    v.get_mut(key)?.as_object_mut()
}

fn default_pod_spec(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else { return };
    set_default(m, "restartPolicy", json!("Always"));
    set_default(m, "terminationGracePeriodSeconds", json!(30));
    set_default(m, "dnsPolicy", json!("ClusterFirst"));
    set_default(m, "schedulerName", json!("default-scheduler"));
    set_default(m, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        let Some(Value::Array(cs)) = m.get_mut(list) else { continue };
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            let image = c.get("image").and_then(Value::as_str).unwrap_or_default().to_string();
            let tag_latest = {
                let last = image.rsplit('/').next().unwrap_or_default();
                !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"))
            };
            set_default(c, "imagePullPolicy", json!(if tag_latest { "Always" } else { "IfNotPresent" }));
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "resources", json!({}));
            if let Some(Value::Array(ports)) = c.get_mut("ports") {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    set_default(p, "protocol", json!("TCP"));
                }
            }
        }
    }
}

/// Fills in the defaults a real API server writes (so `kubectl get -o yaml`
/// and controllers see the usual fields). `uid` is the object's uid.
pub(crate) fn apply_defaults(res: &Resource, obj: &mut Value, uid: &str) {
    match res.kind {
        "Pod" => {
            if let Some(spec) = obj.get_mut("spec") {
                default_pod_spec(spec);
            }
            if let Some(st) = obj_mut(obj, "status") {
                set_default(st, "phase", json!("Pending"));
                set_default(st, "qosClass", json!("BestEffort"));
            }
        }
        "Namespace" => {
            let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
            if let Some(meta) = obj_mut(obj, "metadata")
                && let Some(labels) = {
                    set_default(meta, "labels", json!({}));
                    meta.get_mut("labels").and_then(Value::as_object_mut)
                }
            {
                labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "finalizers", json!(["kubernetes"]));
            }
            if let Some(st) = obj_mut(obj, "status") {
                set_default(st, "phase", json!("Active"));
            }
        }
        "Service" => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "type", json!("ClusterIP"));
                set_default(spec, "sessionAffinity", json!("None"));
                if spec.get("type").and_then(Value::as_str) != Some("ExternalName") {
                    set_default(spec, "ipFamilies", json!(["IPv4"]));
                    set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
                    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
                }
                if let Some(Value::Array(ports)) = spec.get_mut("ports") {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        set_default(p, "protocol", json!("TCP"));
                        if let Some(port) = p.get("port").cloned() {
                            set_default(p, "targetPort", port);
                        }
                    }
                }
            }
            if let Some(st) = obj_mut(obj, "status") {
                set_default(st, "loadBalancer", json!({}));
            }
        }
        "StatefulSet" => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "podManagementPolicy", json!("OrderedReady"));
                set_default(spec, "updateStrategy", json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "persistentVolumeClaimRetentionPolicy", json!({"whenDeleted": "Retain", "whenScaled": "Retain"}));
                if let Some(t) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    default_pod_spec(t);
                }
            }
            if let Some(st) = obj_mut(obj, "status") {
                set_default(st, "replicas", json!(0));
                set_default(st, "availableReplicas", json!(0));
            }
        }
        "Deployment" | "ReplicaSet" => {
            let deployment = res.kind == "Deployment";
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "replicas", json!(1));
                if deployment {
                    set_default(spec, "strategy", json!({"type": "RollingUpdate"}));
                    if let Some(strategy) = spec.get_mut("strategy").and_then(Value::as_object_mut) {
                        set_default(strategy, "type", json!("RollingUpdate"));
                        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                            set_default(strategy, "rollingUpdate", json!({}));
                            if let Some(rolling) = strategy.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
                                set_default(rolling, "maxSurge", json!("25%"));
                                set_default(rolling, "maxUnavailable", json!("25%"));
                            }
                        }
                    }
                    set_default(spec, "revisionHistoryLimit", json!(10));
                    set_default(spec, "progressDeadlineSeconds", json!(600));
                }
                if let Some(t) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    default_pod_spec(t);
                }
            }
            obj_mut(obj, "status");
        }
        "DaemonSet" => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "updateStrategy", json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}));
                set_default(spec, "revisionHistoryLimit", json!(10));
                if let Some(t) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    default_pod_spec(t);
                }
            }
            if let Some(st) = obj_mut(obj, "status") {
                for f in ["currentNumberScheduled", "desiredNumberScheduled", "numberMisscheduled", "numberReady"] {
                    set_default(st, f, json!(0));
                }
            }
        }
        "Job" => {
            let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "parallelism", json!(1));
                set_default(spec, "completions", json!(1));
                set_default(spec, "backoffLimit", json!(6));
                set_default(spec, "completionMode", json!("NonIndexed"));
                set_default(spec, "suspend", json!(false));
                set_default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
                if spec.get("manualSelector").and_then(Value::as_bool) != Some(true) && spec.get("selector").is_none_or(Value::is_null) {
                    spec.insert("selector".into(), json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}));
                    let labels = json!({
                        "batch.kubernetes.io/controller-uid": uid,
                        "batch.kubernetes.io/job-name": name,
                        "controller-uid": uid,
                        "job-name": name,
                    });
                    if let Some(t) = spec.get_mut("template").and_then(Value::as_object_mut)
                        && let Some(meta) = {
                            set_default(t, "metadata", json!({}));
                            t.get_mut("metadata").and_then(Value::as_object_mut)
                        }
                    {
                        set_default(meta, "labels", json!({}));
                        if let (Some(l), Value::Object(add)) = (meta.get_mut("labels").and_then(Value::as_object_mut), labels) {
                            l.extend(add);
                        }
                    }
                }
                if let Some(t) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    default_pod_spec(t);
                }
            }
            obj_mut(obj, "status");
        }
        "HTTPRoute" => {
            // The CRD's schema defaults: a backendRef's weight is 1, its kind a Service.
            let rules = obj.pointer_mut("/spec/rules").and_then(Value::as_array_mut);
            for rule in rules.into_iter().flatten() {
                for backend in rule.get_mut("backendRefs").and_then(Value::as_array_mut).into_iter().flatten() {
                    if let Some(b) = backend.as_object_mut() {
                        set_default(b, "weight", json!(1));
                        set_default(b, "group", json!(""));
                        set_default(b, "kind", json!("Service"));
                    }
                }
            }
        }
        "Secret" => {
            let Some(m) = obj.as_object_mut() else { return };
            set_default(m, "type", json!("Opaque"));
            if let Some(Value::Object(sd)) = m.remove("stringData") {
                set_default(m, "data", json!({}));
                if let Some(data) = m.get_mut("data").and_then(Value::as_object_mut) {
                    for (k, v) in sd {
                        let s = v.as_str().unwrap_or_default();
                        data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(s)));
                    }
                }
            }
        }
        _ => {}
    }
}
