//! Azure Traffic Manager (`Microsoft.Network/trafficManagerProfiles`,
//! api-version 2022-04-01) in the lab's resource group: profiles with the
//! `Weighted` routing method and their `externalEndpoints`, which the lab's
//! front door ([`crate::frontdoor`]) routes real HTTP by.
//!
//! The documents follow the azure-rest-api-specs examples of 2022-04-01
//! (`Profile-PUT-WithEndpoints.json`, `Endpoint-PUT-External-WithLocation.json`,
//! `Endpoint-PATCH-External-Target.json`, `Endpoint-DELETE-External.json`);
//! canned copies of the shapes are in `tests/fixtures/trafficmanager/`, and
//! a unit test below checks that the lab's answers have their keys.
//!
//! - Profile: `GET`, `PUT` (create 201 / replace 200), `PATCH` (merges the
//!   given properties; `endpoints`, when given, replace the list), `DELETE`;
//!   `GET` on the collection lists the resource group's profiles.
//! - Endpoint (`.../trafficManagerProfiles/{p}/externalEndpoints/{e}`):
//!   `GET`, `PUT`, `PATCH`, `DELETE`. `properties.target` is, in the lab, an
//!   `IP:PORT` or a Service of namespace `default` (`NAME` or `NAME:PORT`).
//! - `weight` must be 1-1000 and `endpointStatus` `Enabled` or `Disabled`,
//!   else 400 `BadRequest` in ARM's error shape.
//! - Only `trafficRoutingMethod: "Weighted"` is accepted (400 otherwise):
//!   the only method the front door emulates.
//!
//! Concurrency: the real resource has no `etag` property (its schema is
//! `id`, `name`, `type`, `location`, `tags`, `properties`), so the lab keeps
//! the documented bodies as they are and sends an `ETag` **header** on every
//! profile and endpoint answer: a hash of the document, so it changes with
//! every change of it (a profile's covers its endpoints). `If-Match` on a
//! `PUT`/`PATCH`/`DELETE` must equal the current one (or be `*` for an
//! existing resource), else 412 `PreconditionFailed`; `If-None-Match: *` on
//! a `PUT` refuses to replace an existing one (412). This is a lab
//! extension: a blue-green switch can set weights conditionally on what it read.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::RESOURCE_GROUP;
use super::http::{ArmError, Call, eq, json_response, set_header};

/// The resource provider of Traffic Manager.
pub const PROVIDER: &str = "Microsoft.Network";
/// The profile's resource type, as the API spells it in answers.
const PROFILE_TYPE: &str = "Microsoft.Network/trafficManagerProfiles";
/// The only endpoint type the lab serves.
const EXTERNAL_TYPE: &str = "Microsoft.Network/trafficManagerProfiles/externalEndpoints";
/// The routing method the lab emulates.
pub const WEIGHTED: &str = "Weighted";

/// One Traffic Manager profile, as kept in the ARM state file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Its name, as it was created (lookups ignore case, as ARM's do).
    pub name: String,
    /// `Enabled` or `Disabled` (a Disabled profile routes nothing).
    pub profile_status: String,
    /// Always [`WEIGHTED`] in the lab.
    pub traffic_routing_method: String,
    /// `relativeName` and `ttl`.
    pub dns_config: Map<String, Value>,
    /// As the client set it (`protocol`, `port`, `path`, ...).
    pub monitor_config: Map<String, Value>,
    /// The resource tags.
    pub tags: Map<String, Value>,
    /// Its endpoints, in the order they were added.
    pub endpoints: Vec<Endpoint>,
}

/// One external endpoint of a profile.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// Its name.
    pub name: String,
    /// In the lab: `IP:PORT`, or a Service of `default` (`NAME`, `NAME:PORT`).
    pub target: String,
    /// 1-1000.
    pub weight: u32,
    /// Kept for the documents (the Weighted method ignores it).
    pub priority: u32,
    /// `Enabled` or `Disabled` (a Disabled endpoint gets no traffic).
    pub endpoint_status: String,
    /// `endpointLocation`, as given.
    pub endpoint_location: Option<String>,
}

impl Profile {
    /// Whether the profile routes at all.
    pub fn enabled(&self) -> bool {
        self.profile_status.eq_ignore_ascii_case("Enabled")
    }

    fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| eq(&e.name, name))
    }
}

impl Endpoint {
    /// Whether it takes traffic.
    pub fn enabled(&self) -> bool {
        self.endpoint_status.eq_ignore_ascii_case("Enabled")
    }
}

/// The key of a profile in the state (ARM names ignore case).
pub fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

fn profile_id(sub: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{RESOURCE_GROUP}/providers/{PROFILE_TYPE}/{name}")
}

fn endpoint_doc(sub: &str, profile: &Profile, e: &Endpoint) -> Value {
    let mut props = json!({
        "endpointStatus": e.endpoint_status,
        // The lab does not probe: an Enabled endpoint is taken to be Online.
        "endpointMonitorStatus": if e.enabled() { "Online" } else { "Disabled" },
        "target": e.target,
        "weight": e.weight,
        "priority": e.priority,
    });
    if let Some(loc) = &e.endpoint_location {
        props["endpointLocation"] = json!(loc);
    }
    json!({
        "id": format!("{}/externalEndpoints/{}", profile_id(sub, &profile.name), e.name),
        "name": e.name,
        "type": EXTERNAL_TYPE,
        "properties": props,
    })
}

fn profile_doc(sub: &str, p: &Profile) -> Value {
    let mut dns = p.dns_config.clone();
    let relative = dns.get("relativeName").and_then(Value::as_str).unwrap_or(&p.name).to_string();
    dns.insert("fqdn".into(), json!(format!("{relative}.trafficmanager.net")));
    let mut monitor = p.monitor_config.clone();
    let online = p.enabled() && p.endpoints.iter().any(Endpoint::enabled);
    monitor.insert(
        "profileMonitorStatus".into(),
        json!(if !p.enabled() {
            "Disabled"
        } else if online {
            "Online"
        } else {
            "Inactive"
        }),
    );
    json!({
        "id": profile_id(sub, &p.name),
        "name": p.name,
        "type": PROFILE_TYPE,
        "location": "global",
        "tags": p.tags,
        "properties": {
            "profileStatus": p.profile_status,
            "trafficRoutingMethod": p.traffic_routing_method,
            "dnsConfig": dns,
            "monitorConfig": monitor,
            "endpoints": p.endpoints.iter().map(|e| endpoint_doc(sub, p, e)).collect::<Vec<_>>(),
            "trafficViewEnrollmentStatus": "Disabled",
            "maxReturn": 0,
        },
    })
}

/// The lab's ETag of a document: FNV-1a of its JSON, quoted.
fn etag(doc: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in doc.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

fn with_etag(status: u16, doc: &Value) -> Response {
    let mut resp = json_response(status, doc);
    set_header(&mut resp, "ETag", &etag(doc));
    resp
}

/// Checks `If-Match` / `If-None-Match` against the current document (`None`: absent).
fn precondition(call: &Call, current: Option<&Value>, what: &str) -> Result<(), ArmError> {
    let failed = |why: String| {
        ArmError::new(412, "PreconditionFailed", format!("The condition specified using HTTP conditional header(s) is not met for {what}: {why}"))
    };
    if let Some(wanted) = call.if_match.as_deref() {
        match current {
            None => return Err(failed(format!("If-Match {wanted} given, but it does not exist"))),
            Some(doc) => {
                let now = etag(doc);
                if wanted != "*" && !wanted.split(',').map(str::trim).any(|w| w == now || w.trim_start_matches("W/") == now) {
                    return Err(failed(format!("If-Match {wanted}, but its ETag is {now}")));
                }
            }
        }
    }
    if call.if_none_match.as_deref() == Some("*") && current.is_some() && call.method == Method::PUT {
        return Err(failed("If-None-Match * given, but it exists already".into()));
    }
    Ok(())
}

fn bad(message: impl Into<String>) -> ArmError {
    ArmError::new(400, "BadRequest", message)
}

fn profile_not_found(name: &str) -> ArmError {
    ArmError::new(
        404,
        "ResourceNotFound",
        format!(
            "The Resource '{PROFILE_TYPE}/{name}' under resource group '{RESOURCE_GROUP}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

fn endpoint_not_found(profile: &str, name: &str) -> ArmError {
    ArmError::new(404, "NotFound", format!("Endpoint '{name}' was not found in Traffic Manager profile '{profile}'."))
}

/// `weight`: a whole number 1-1000.
fn weight_of(v: &Value) -> Result<u32, ArmError> {
    v.as_u64()
        .filter(|w| (1..=1000).contains(w))
        .map(|w| w as u32)
        .ok_or_else(|| bad(format!("The endpoint weight must be a whole number between 1 and 1000; {v} is not allowed.")))
}

fn status_of(v: &Value, field: &str) -> Result<String, ArmError> {
    match v.as_str() {
        Some(s) if eq(s, "Enabled") => Ok("Enabled".into()),
        Some(s) if eq(s, "Disabled") => Ok("Disabled".into()),
        _ => Err(bad(format!("The value {v} of {field} is invalid: it must be 'Enabled' or 'Disabled'."))),
    }
}

/// Applies `props` (an endpoint's `properties`) to `e`: every given field replaces its value.
fn apply_endpoint(e: &mut Endpoint, props: &Map<String, Value>) -> Result<(), ArmError> {
    if let Some(t) = props.get("target") {
        let t = t.as_str().map(str::trim).filter(|t| !t.is_empty()).ok_or_else(|| bad("The endpoint target must be a non-empty string."))?;
        e.target = t.to_string();
    }
    if let Some(w) = props.get("weight") {
        e.weight = weight_of(w)?;
    }
    if let Some(p) = props.get("priority") {
        e.priority =
            p.as_u64().filter(|p| (1..=1000).contains(p)).map(|p| p as u32).ok_or_else(|| bad(format!("The endpoint priority must be 1-1000, not {p}.")))?;
    }
    if let Some(s) = props.get("endpointStatus") {
        e.endpoint_status = status_of(s, "endpointStatus")?;
    }
    if let Some(l) = props.get("endpointLocation") {
        e.endpoint_location = l.as_str().map(str::to_string);
    }
    Ok(())
}

/// A new endpoint from a PUT body: `target` required, weight 1 and priority `index + 1` by default.
fn new_endpoint(name: &str, body: &Value, index: usize) -> Result<Endpoint, ArmError> {
    let props = body["properties"].as_object().cloned().unwrap_or_default();
    if props.get("target").is_none() {
        return Err(bad(format!("The endpoint '{name}' has no target: properties.target is required for external endpoints.")));
    }
    let mut e = Endpoint {
        name: name.to_string(),
        target: String::new(),
        weight: 1,
        priority: index as u32 + 1,
        endpoint_status: "Enabled".into(),
        endpoint_location: None,
    };
    apply_endpoint(&mut e, &props)?;
    Ok(e)
}

fn endpoints_of(list: &Value) -> Result<Vec<Endpoint>, ArmError> {
    let list = list.as_array().ok_or_else(|| bad("properties.endpoints must be an array."))?;
    let mut out: Vec<Endpoint> = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let name = e["name"].as_str().filter(|n| !n.is_empty()).ok_or_else(|| bad(format!("properties.endpoints[{i}] has no name.")))?;
        if let Some(t) = e["type"].as_str()
            && !eq(t, EXTERNAL_TYPE)
        {
            return Err(bad(format!("The endpoint type '{t}' is not supported by the lab: only externalEndpoints.")));
        }
        if out.iter().any(|o| eq(&o.name, name)) {
            return Err(bad(format!("The endpoint name '{name}' is used more than once.")));
        }
        out.push(new_endpoint(name, e, i)?);
    }
    Ok(out)
}

/// Applies a profile body's `properties` (and `tags`) to `p`; `endpoints` replace the list when given.
fn apply_profile(p: &mut Profile, body: &Value) -> Result<(), ArmError> {
    if let Some(tags) = body.get("tags") {
        p.tags = tags.as_object().cloned().ok_or_else(|| bad("tags must be an object."))?;
    }
    let props = body["properties"].as_object().cloned().unwrap_or_default();
    if let Some(m) = props.get("trafficRoutingMethod") {
        match m.as_str() {
            Some(m) if eq(m, WEIGHTED) => p.traffic_routing_method = WEIGHTED.into(),
            _ => return Err(bad(format!("The traffic routing method {m} is not supported by the lab's Traffic Manager: only 'Weighted'."))),
        }
    }
    if let Some(s) = props.get("profileStatus") {
        p.profile_status = status_of(s, "profileStatus")?;
    }
    if let Some(d) = props.get("dnsConfig") {
        let mut d = d.as_object().cloned().ok_or_else(|| bad("dnsConfig must be an object."))?;
        d.remove("fqdn");
        p.dns_config.extend(d);
    }
    if let Some(m) = props.get("monitorConfig") {
        let mut m = m.as_object().cloned().ok_or_else(|| bad("monitorConfig must be an object."))?;
        m.remove("profileMonitorStatus");
        p.monitor_config.extend(m);
    }
    if let Some(list) = props.get("endpoints") {
        p.endpoints = endpoints_of(list)?;
    }
    Ok(())
}

fn deleted(existed: bool) -> Response {
    if existed {
        json_response(200, &json!({}))
    } else {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        r
    }
}

/// Serves `tail`, the path after `.../providers/Microsoft.Network/trafficManagerProfiles`.
pub(super) fn route(call: &Call, sub: &str, tail: &[&str]) -> Result<Response, ArmError> {
    match tail {
        [] if call.method == Method::GET => {
            let profiles: Vec<Value> = call.arm.snapshot().traffic_manager_profiles.values().map(|p| profile_doc(sub, p)).collect();
            Ok(json_response(200, &json!({"value": profiles})))
        }
        [] => Err(call.not_allowed()),
        [name] => profile(call, sub, name),
        [profile, kind, endpoint] => {
            if !eq(kind, "externalEndpoints") {
                return Err(bad(format!("The endpoint type '{kind}' is not supported by the lab: only externalEndpoints.")));
            }
            endpoint_route(call, sub, profile, endpoint)
        }
        _ => Err(ArmError::new(404, "InvalidResourceType", "The lab's Azure Resource Manager does not serve this resource type of trafficManagerProfiles.")),
    }
}

fn profile(call: &Call, sub: &str, name: &str) -> Result<Response, ArmError> {
    let k = key(name);
    match call.method {
        Method::GET => {
            let p = call.arm.snapshot().traffic_manager_profiles.get(&k).cloned().ok_or_else(|| profile_not_found(name))?;
            Ok(with_etag(200, &profile_doc(sub, &p)))
        }
        Method::PUT | Method::PATCH => {
            let body = call.json_body()?;
            let put = call.method == Method::PUT;
            call.arm.with(|c| {
                let existing = c.traffic_manager_profiles.get(&k).cloned();
                precondition(call, existing.as_ref().map(|p| profile_doc(sub, p)).as_ref(), &format!("profile '{name}'"))?;
                let mut p = match (&existing, put) {
                    (Some(p), false) => p.clone(),
                    (None, false) => return Err(profile_not_found(name)),
                    (existing, true) => {
                        // A PUT replaces everything: it must say how to route.
                        if body["properties"]["trafficRoutingMethod"].is_null() {
                            return Err(bad("properties.trafficRoutingMethod is required."));
                        }
                        Profile {
                            name: existing.as_ref().map_or(name, |p| &p.name).to_string(),
                            profile_status: "Enabled".into(),
                            traffic_routing_method: WEIGHTED.into(),
                            dns_config: json!({"relativeName": name.to_ascii_lowercase(), "ttl": 60}).as_object().cloned().unwrap_or_default(),
                            monitor_config: json!({"protocol": "HTTP", "port": 80, "path": "/", "intervalInSeconds": 30, "timeoutInSeconds": 10, "toleratedNumberOfFailures": 3})
                                .as_object()
                                .cloned()
                                .unwrap_or_default(),
                            tags: Map::new(),
                            endpoints: Vec::new(),
                        }
                    }
                };
                apply_profile(&mut p, &body)?;
                let doc = profile_doc(sub, &p);
                c.traffic_manager_profiles.insert(k.clone(), p);
                Ok(with_etag(if existing.is_none() { 201 } else { 200 }, &doc))
            })
        }
        Method::DELETE => call.arm.with(|c| {
            let existing = c.traffic_manager_profiles.get(&k).map(|p| profile_doc(sub, p));
            precondition(call, existing.as_ref(), &format!("profile '{name}'"))?;
            Ok(deleted(c.traffic_manager_profiles.remove(&k).is_some()))
        }),
        _ => Err(call.not_allowed()),
    }
}

fn endpoint_route(call: &Call, sub: &str, profile: &str, name: &str) -> Result<Response, ArmError> {
    let k = key(profile);
    let what = format!("endpoint '{name}' of profile '{profile}'");
    match call.method {
        Method::GET => {
            let cluster = call.arm.snapshot();
            let p = cluster.traffic_manager_profiles.get(&k).ok_or_else(|| profile_not_found(profile))?;
            let e = p.endpoint(name).ok_or_else(|| endpoint_not_found(&p.name, name))?;
            Ok(with_etag(200, &endpoint_doc(sub, p, e)))
        }
        Method::PUT | Method::PATCH => {
            let body = call.json_body()?;
            call.arm.with(|c| {
                let p = c.traffic_manager_profiles.get_mut(&k).ok_or_else(|| profile_not_found(profile))?;
                let at = p.endpoints.iter().position(|e| eq(&e.name, name));
                let current = at.map(|i| endpoint_doc(sub, p, &p.endpoints[i]));
                precondition(call, current.as_ref(), &what)?;
                let updated = match (at, call.method == Method::PUT) {
                    (None, false) => return Err(endpoint_not_found(&p.name, name)),
                    (None, true) => new_endpoint(name, &body, p.endpoints.len())?,
                    (Some(i), true) => Endpoint { name: p.endpoints[i].name.clone(), ..new_endpoint(name, &body, i)? },
                    (Some(i), false) => {
                        let mut e = p.endpoints[i].clone();
                        apply_endpoint(&mut e, &body["properties"].as_object().cloned().unwrap_or_default())?;
                        e
                    }
                };
                let doc = endpoint_doc(sub, p, &updated);
                match at {
                    Some(i) => p.endpoints[i] = updated,
                    None => p.endpoints.push(updated),
                }
                Ok(with_etag(if at.is_none() { 201 } else { 200 }, &doc))
            })
        }
        Method::DELETE => call.arm.with(|c| {
            let p = c.traffic_manager_profiles.get_mut(&k).ok_or_else(|| profile_not_found(profile))?;
            let at = p.endpoints.iter().position(|e| eq(&e.name, name));
            let current = at.map(|i| endpoint_doc(sub, p, &p.endpoints[i]));
            precondition(call, current.as_ref(), &what)?;
            if let Some(i) = at {
                p.endpoints.remove(i);
            }
            Ok(deleted(at.is_some()))
        }),
        _ => Err(call.not_allowed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of every object in `doc`, by JSON pointer, to compare shapes.
    fn shape(doc: &Value, at: &str, out: &mut Vec<String>) {
        if let Value::Object(m) = doc {
            for (k, v) in m {
                let path = format!("{at}/{k}");
                out.push(path.clone());
                shape(v, &path, out);
            }
        } else if let Value::Array(items) = doc
            && let Some(first) = items.first()
        {
            shape(first, &format!("{at}/0"), out);
        }
    }

    fn fixture(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trafficmanager").join(name);
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn lab_profile() -> Profile {
        let mut p = Profile {
            name: "frontdoor".into(),
            profile_status: "Enabled".into(),
            traffic_routing_method: WEIGHTED.into(),
            dns_config: Map::new(),
            monitor_config: Map::new(),
            tags: Map::new(),
            endpoints: Vec::new(),
        };
        let body = json!({"properties": {
            "trafficRoutingMethod": "Weighted",
            "dnsConfig": {"relativeName": "frontdoor", "ttl": 35},
            "monitorConfig": {"protocol": "HTTP", "port": 80, "path": "/testpath.aspx", "intervalInSeconds": 10, "timeoutInSeconds": 5, "toleratedNumberOfFailures": 2},
            "endpoints": [{"name": "blue", "type": EXTERNAL_TYPE, "properties": {"target": "blue", "endpointStatus": "Enabled", "endpointLocation": "North Europe"}}],
        }});
        apply_profile(&mut p, &body).unwrap();
        p
    }

    #[test]
    fn answers_have_the_documented_shapes() {
        let p = lab_profile();
        let mut ours = Vec::new();
        shape(&profile_doc("sub", &p), "", &mut ours);
        let mut theirs = Vec::new();
        shape(&fixture("Profile-PUT-WithEndpoints.json")["responses"]["200"]["body"], "", &mut theirs);
        let missing: Vec<&String> = theirs.iter().filter(|k| !ours.contains(k)).collect();
        assert!(missing.is_empty(), "the profile lacks {missing:?}");

        let mut ours = Vec::new();
        shape(&endpoint_doc("sub", &p, &p.endpoints[0]), "", &mut ours);
        let mut theirs = Vec::new();
        shape(&fixture("Endpoint-PUT-External-WithLocation.json")["responses"]["201"]["body"], "", &mut theirs);
        let missing: Vec<&String> = theirs.iter().filter(|k| !ours.contains(k)).collect();
        assert!(missing.is_empty(), "the endpoint lacks {missing:?}");
        assert_eq!(p.endpoints[0].weight, 1, "weight defaults to 1, as the example's answer shows");
    }

    #[test]
    fn weights_and_statuses_are_checked() {
        assert_eq!(weight_of(&json!(1)).ok(), Some(1));
        assert_eq!(weight_of(&json!(1000)).ok(), Some(1000));
        for bad in [json!(0), json!(1001), json!(-1), json!("5"), json!(2.5)] {
            let e = weight_of(&bad).err().unwrap();
            assert_eq!((e.status(), e.code()), (400, "BadRequest"), "{bad}");
        }
        assert_eq!(status_of(&json!("disabled"), "endpointStatus").ok().as_deref(), Some("Disabled"));
        assert!(status_of(&json!("Off"), "endpointStatus").is_err());
    }

    #[test]
    fn etags_change_with_the_document() {
        let mut p = lab_profile();
        let before = etag(&profile_doc("sub", &p));
        assert_eq!(before, etag(&profile_doc("sub", &p)), "stable");
        p.endpoints[0].weight = 7;
        assert_ne!(before, etag(&profile_doc("sub", &p)));
    }
}
