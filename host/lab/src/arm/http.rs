//! The ARM side: authentication, the required `api-version`, injected
//! faults, routing of the managed cluster's paths, and the JSON documents
//! (ManagedCluster, AgentPool, the upgrade profiles, operation status) in
//! the shapes of the stable AKS API.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::rules;
use super::state::{Cluster, Operation, Pool};
use super::worker::{self, Job};
use super::{Arm, CLUSTER_NAME, FAULTS_CONFIGMAP, LOCATION, RESOURCE_GROUP};

const PROVIDER: &str = "Microsoft.ContainerService";
const MAX_BODY: usize = 4 * 1024 * 1024;

/// An ARM error: the HTTP status and `{"error":{"code","message"}}`.
#[derive(Debug)]
pub(crate) struct ArmError {
    status: u16,
    code: String,
    message: String,
}

impl ArmError {
    pub(crate) fn new(status: u16, code: &str, message: impl Into<String>) -> ArmError {
        ArmError { status, code: code.into(), message: message.into() }
    }

    /// The HTTP status (for unit tests).
    #[cfg(test)]
    pub(super) fn status(&self) -> u16 {
        self.status
    }

    /// ARM's error code (for unit tests).
    #[cfg(test)]
    pub(super) fn code(&self) -> &str {
        &self.code
    }

    pub(super) fn response(&self) -> Response {
        let mut body = json!({"error": {"code": self.code, "message": self.message}});
        if self.code == "UpgradeBlockedOnDeprecatedAPIUsage" {
            body["error"]["subcode"] = json!(self.code);
        }
        json_response(self.status, &body)
    }
}

pub(super) fn json_response(status: u16, body: &Value) -> Response {
    let mut resp = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    resp
}

pub(super) fn set_header(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

fn authorized(req: &Request, token: &[u8]) -> Result<(), ArmError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes) else {
        return Err(ArmError::new(401, "InvalidAuthenticationToken", "The request has no 'Authorization' header with a bearer token."));
    };
    let given = value.strip_prefix(b"Bearer ").or_else(|| value.strip_prefix(b"bearer ")).unwrap_or_default();
    // Compared without an early exit (the length is not secret).
    let same = given.len() == token.len() && given.iter().zip(token).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    if same { Ok(()) } else { Err(ArmError::new(401, "InvalidAuthenticationToken", "The access token is invalid.")) }
}

/// Takes one from the fault ConfigMap's count under `key` (`throttle`,
/// `conflict`): whether this request is one of the next N a test asked to fail.
fn take_fault(arm: &Arm, key: &str) -> bool {
    for _ in 0..5 {
        let Some(mut cm) = arm.store.get("v1", "ConfigMap", Some("kube-system"), FAULTS_CONFIGMAP) else { return false };
        let left: u64 = cm["data"][key].as_str().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        if left == 0 {
            return false;
        }
        cm["data"][key] = json!((left - 1).to_string());
        match arm.store.update(cm) {
            Ok(_) => return true,
            Err(e) if e.code == 409 => continue,
            Err(e) => {
                tracing::warn!("ARM fault injection: counting down `{key}`: {e}");
                return true;
            }
        }
    }
    true
}

/// The message of the `block-upgrades` fault, if a test set one.
fn upgrades_blocked(arm: &Arm) -> Option<String> {
    let cm = arm.store.get("v1", "ConfigMap", Some("kube-system"), FAULTS_CONFIGMAP)?;
    cm["data"]["block-upgrades"].as_str().filter(|s| !s.trim().is_empty()).map(str::to_string)
}

fn blocked_error(usage: &str) -> ArmError {
    ArmError::new(
        400,
        "UpgradeBlockedOnDeprecatedAPIUsage",
        format!(
            "Control Plane upgrade is blocked due to recent usage of a Kubernetes API deprecated in the specified version. Please refer to https://kubernetes.io/docs/reference/using-api/deprecation-guide to migrate the usage. To bypass this error, set enable-force-upgrade in upgradeSettings.overrideSettings. Bypassing this error without migrating usage will result in the deprecated Kubernetes API calls failing. Usage details: {usage}"
        ),
    )
}

/// A header's value as text, trimmed.
fn header_text(req: &Request, name: header::HeaderName) -> Option<String> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_string())
}

/// Serves one ARM request.
pub(crate) async fn handle(State(arm): State<Arm>, req: Request) -> Response {
    if let Err(e) = authorized(&req, &arm.token) {
        let mut resp = e.response();
        set_header(&mut resp, "WWW-Authenticate", "Bearer authorization_uri=\"https://login.microsoftonline.com/\", error=\"invalid_token\"");
        return resp;
    }
    if take_fault(&arm, "throttle") {
        let mut resp = ArmError::new(
            429,
            "TooManyRequests",
            "The request is being throttled as the limit has been reached for operation type - Read/Write. Please try again after 1 seconds.",
        )
        .response();
        set_header(&mut resp, "Retry-After", "1");
        return resp;
    }
    if req.method() != Method::GET && take_fault(&arm, "conflict") {
        // As AKS answers while an operation someone else started runs (the fault stands in for that someone).
        return conflict_with("update managed cluster", None, &super::state::now()).response();
    }
    let query: Vec<(String, String)> = form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()).into_owned().collect();
    let Some(api_version) = query.iter().find(|(k, _)| k.eq_ignore_ascii_case("api-version")).map(|(_, v)| v.clone()).filter(|v| !v.is_empty()) else {
        return ArmError::new(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.").response();
    };
    let method = req.method().clone();
    let (if_match, if_none_match) = (header_text(&req, header::IF_MATCH), header_text(&req, header::IF_NONE_MATCH));
    let path = req.uri().path().trim_end_matches('/').to_string();
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return ArmError::new(400, "InvalidRequestContent", format!("The request content could not be read: {e}")).response(),
    };
    let call = Call { arm, method, api_version, body: body.to_vec(), if_match, if_none_match };
    match route(&call, &path) {
        Ok(resp) => resp,
        Err(e) => e.response(),
    }
}

pub(super) struct Call {
    pub(super) arm: Arm,
    pub(super) method: Method,
    api_version: String,
    body: Vec<u8>,
    /// The `If-Match` header (a Traffic Manager write's precondition).
    pub(super) if_match: Option<String>,
    /// The `If-None-Match` header (`*`: create only).
    pub(super) if_none_match: Option<String>,
}

impl Call {
    pub(super) fn json_body(&self) -> Result<Value, ArmError> {
        if self.body.is_empty() {
            return Ok(json!({}));
        }
        let body: Value = serde_json::from_slice(&self.body)
            .map_err(|e| ArmError::new(400, "InvalidRequestContent", format!("The request content was invalid and could not be deserialized: {e}")))?;
        if !body.is_object() {
            return Err(ArmError::new(400, "InvalidRequestContent", "The request content must be a JSON object."));
        }
        Ok(body)
    }

    pub(super) fn not_allowed(&self) -> ArmError {
        ArmError::new(405, "MethodNotAllowed", format!("The requested resource does not support http method '{}'.", self.method))
    }

    fn cluster_id(&self, sub: &str) -> String {
        format!("/subscriptions/{sub}/resourcegroups/{RESOURCE_GROUP}/providers/{PROVIDER}/managedClusters/{CLUSTER_NAME}")
    }

    /// The response of an accepted long-running operation: `status` with
    /// `body`, and the headers a client polls with.
    fn accepted(&self, status: u16, body: Option<&Value>, sub: &str, op: &str) -> Response {
        let mut resp = match body {
            Some(b) => json_response(status, b),
            None => {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED);
                r
            }
        };
        let base = format!("{}/subscriptions/{sub}/providers/{PROVIDER}/locations/{LOCATION}", self.arm.endpoint);
        set_header(&mut resp, "Azure-AsyncOperation", &format!("{base}/operations/{op}?api-version={}", self.api_version));
        set_header(&mut resp, "Location", &format!("{base}/operationresults/{op}?api-version={}", self.api_version));
        set_header(&mut resp, "Retry-After", "1");
        resp
    }
}

pub(super) fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn route(call: &Call, path: &str) -> Result<Response, ArmError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let cluster = call.arm.snapshot();
    let sub = cluster.subscription_id.clone();
    let (first, rest) = match segs.as_slice() {
        [s, given, rest @ ..] if eq(s, "subscriptions") => (*given, rest),
        _ => return Err(ArmError::new(404, "InvalidResourceType", format!("The resource path '{path}' is not one the lab's Azure Resource Manager serves."))),
    };
    if !eq(first, &sub) {
        return Err(ArmError::new(404, "SubscriptionNotFound", format!("The subscription '{first}' could not be found.")));
    }
    match rest {
        [p, prov, l, loc, kind, id] if eq(p, "providers") && eq(prov, PROVIDER) && eq(l, "locations") => {
            if !eq(loc, LOCATION) {
                return Err(ArmError::new(404, "NotFound", format!("No operations in location '{loc}'.")));
            }
            if call.method != Method::GET {
                return Err(call.not_allowed());
            }
            let op = cluster.operations.get(*id).ok_or_else(|| ArmError::new(404, "NotFound", format!("Operation id '{id}' was not found.")))?;
            if eq(kind, "operations") {
                Ok(json_response(200, &operation_status(&sub, op)))
            } else if eq(kind, "operationresults") {
                Ok(operation_result(call, &cluster, &sub, op))
            } else {
                Err(ArmError::new(404, "InvalidResourceType", format!("The resource type '{kind}' could not be found in the namespace '{PROVIDER}'.")))
            }
        }
        [rg_seg, rg, p, prov, tm, tail @ ..]
            if eq(rg_seg, "resourceGroups") && eq(p, "providers") && eq(prov, super::trafficmanager::PROVIDER) && eq(tm, "trafficManagerProfiles") =>
        {
            if !eq(rg, RESOURCE_GROUP) {
                return Err(ArmError::new(404, "ResourceGroupNotFound", format!("Resource group '{rg}' could not be found.")));
            }
            super::trafficmanager::route(call, &sub, tail)
        }
        [rg_seg, rg, p, prov, mc, name, tail @ ..] if eq(rg_seg, "resourceGroups") && eq(p, "providers") && eq(prov, PROVIDER) && eq(mc, "managedClusters") => {
            if !eq(rg, RESOURCE_GROUP) {
                return Err(ArmError::new(404, "ResourceGroupNotFound", format!("Resource group '{rg}' could not be found.")));
            }
            if !eq(name, CLUSTER_NAME) {
                return Err(ArmError::new(
                    404,
                    "ResourceNotFound",
                    format!(
                        "The Resource '{PROVIDER}/managedClusters/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
                    ),
                ));
            }
            cluster_route(call, &cluster, &sub, tail)
        }
        _ => Err(ArmError::new(404, "InvalidResourceType", format!("The resource path '{path}' is not one the lab's Azure Resource Manager serves."))),
    }
}

fn cluster_route(call: &Call, cluster: &Cluster, sub: &str, tail: &[&str]) -> Result<Response, ArmError> {
    let pool_of = |name: &str| -> Result<&Pool, ArmError> {
        cluster.pools.get(name).ok_or_else(|| ArmError::new(404, "NotFound", format!("Agent Pool '{name}' was not found in managed cluster '{CLUSTER_NAME}'.")))
    };
    match (tail, &call.method) {
        ([], &Method::GET) => Ok(json_response(200, &managed_cluster(call, cluster, sub))),
        ([], &Method::PUT) => put_cluster(call, sub),
        ([], _) => Err(call.not_allowed()),
        ([u, d], &Method::GET) if eq(u, "upgradeProfiles") && eq(d, "default") => Ok(json_response(200, &cluster_upgrade_profile(call, cluster, sub))),
        ([a], &Method::GET) if eq(a, "agentPools") => {
            let pools: Vec<Value> = cluster.pools.values().map(|p| agent_pool(&call.cluster_id(sub), p)).collect();
            Ok(json_response(200, &json!({"value": pools})))
        }
        ([a, name], method) if eq(a, "agentPools") => match *method {
            Method::GET => Ok(json_response(200, &agent_pool(&call.cluster_id(sub), pool_of(name)?))),
            Method::PUT => put_pool(call, sub, name),
            Method::DELETE => {
                pool_of(name)?;
                delete_pool(call, sub, name)
            }
            _ => Err(call.not_allowed()),
        },
        ([a, name, u], &Method::POST) if eq(a, "agentPools") && eq(u, "upgradeNodeImageVersion") => {
            pool_of(name)?;
            upgrade_node_image(call, sub, name)
        }
        ([a, name, u, d], &Method::GET) if eq(a, "agentPools") && eq(u, "upgradeProfiles") && eq(d, "default") => {
            Ok(json_response(200, &pool_upgrade_profile(&call.cluster_id(sub), cluster, pool_of(name)?)))
        }
        ([a, _, ..], _) if eq(a, "agentPools") => Err(call.not_allowed()),
        _ => Err(ArmError::new(404, "InvalidResourceType", "The lab's Azure Resource Manager does not serve this resource type of managedClusters.")),
    }
}

/// AKS's 409 for a mutation while a conflicting operation runs.
fn conflict(op: &Operation) -> ArmError {
    conflict_with(&op.what, op.pool.as_deref(), &op.start_time)
}

/// The 409 for an operation doing `what` on `pool` (`None`: the cluster) since `started`.
fn conflict_with(what: &str, pool: Option<&str>, started: &str) -> ArmError {
    let on = match pool {
        Some(pool) => format!("agent pool {pool}"),
        None => format!("managed cluster {CLUSTER_NAME}"),
    };
    ArmError::new(
        409,
        "OperationNotAllowed",
        format!(
            "Operation is not allowed because there's an in progress {what} operation on {on} started at {started}. Please wait for it to finish before starting a new operation. See https://aka.ms/aks-pending-operation for more details"
        ),
    )
}

/// Starts an operation on `pool` (`None`: the cluster) unless one conflicts;
/// sets the resource's provisioningState. Its id.
fn begin(arm: &Arm, pool: Option<&str>, what: &str, state: &str, deletes: bool) -> Result<String, ArmError> {
    arm.with(|c| {
        if let Some(op) = c.conflicting(pool) {
            return Err(conflict(op));
        }
        match pool {
            Some(p) => {
                if let Some(p) = c.pools.get_mut(p) {
                    p.provisioning_state = state.into();
                }
            }
            None => c.provisioning_state = state.into(),
        }
        Ok(c.start(pool, what, deletes))
    })
}

fn put_cluster(call: &Call, sub: &str) -> Result<Response, ArmError> {
    let body = call.json_body()?;
    let cluster = call.arm.snapshot();
    let wanted = body["properties"]["kubernetesVersion"].as_str().unwrap_or(&cluster.kubernetes_version).trim_start_matches('v').to_string();
    let current = cluster.current_kubernetes_version.clone();
    if let Some(loc) = body["location"].as_str()
        && !eq(&loc.replace(' ', ""), LOCATION)
    {
        return Err(ArmError::new(
            400,
            "LocationNotAvailableForResourceType",
            format!("The managed cluster {CLUSTER_NAME} is in '{LOCATION}' and cannot move to '{loc}'."),
        ));
    }
    if wanted == current {
        // Nothing the lab emulates changes: an update that ends at once.
        let op = begin(&call.arm, None, "update managed cluster", "Updating", false)?;
        call.arm.with(|c| c.finish(&op, None));
        return Ok(call.accepted(200, Some(&managed_cluster(call, &call.arm.snapshot(), sub)), sub, &op));
    }
    let offered = rules::control_plane_upgrades(&current);
    if rules::parse_version(&wanted).is_none() || !offered.contains(&wanted.as_str()) {
        return Err(ArmError::new(
            400,
            "UpgradeNotAllowed",
            format!(
                "Upgrading the control plane from Kubernetes version {current} to {wanted} is not allowed. Available upgrades: [{}]. AKS does not skip minor versions; see https://aka.ms/aks-supported-k8s-ver",
                offered.join(", ")
            ),
        ));
    }
    if let Some(usage) = upgrades_blocked(&call.arm) {
        return Err(blocked_error(&usage));
    }
    let op = begin(&call.arm, None, "upgrade managed cluster", "Upgrading", false)?;
    call.arm.with(|c| c.kubernetes_version = wanted.clone());
    worker::spawn(call.arm.clone(), op.clone(), Job::ControlPlane { version: wanted });
    Ok(call.accepted(200, Some(&managed_cluster(call, &call.arm.snapshot(), sub)), sub, &op))
}

fn put_pool(call: &Call, sub: &str, name: &str) -> Result<Response, ArmError> {
    let body = call.json_body()?;
    let props = body["properties"].as_object().cloned().unwrap_or_default();
    let cluster = call.arm.snapshot();
    let settings_of = |props: &Map<String, Value>, fallback: &Map<String, Value>| match props.get("upgradeSettings") {
        Some(Value::Object(s)) => s.clone(),
        _ => fallback.clone(),
    };
    let Some(existing) = cluster.pools.get(name) else {
        // A new pool.
        if let Some(why) = rules::pool_name_error(name) {
            return Err(ArmError::new(400, "InvalidParameter", why));
        }
        let count = match props.get("count") {
            None => 1,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=20).contains(n))
                .ok_or_else(|| ArmError::new(400, "InvalidParameter", format!("count must be a whole number from 1 to 20 in the lab, not {v}")))?
                as u32,
        };
        let version =
            props.get("orchestratorVersion").and_then(Value::as_str).unwrap_or(&cluster.current_kubernetes_version).trim_start_matches('v').to_string();
        if !rules::VERSIONS.contains(&version.as_str()) {
            return Err(ArmError::new(
                400,
                "AgentPoolK8sVersionNotSupported",
                format!("Version {version} is not supported in this region. Supported versions: {}", rules::VERSIONS.join(", ")),
            ));
        }
        if rules::parse_version(&version) > rules::parse_version(&cluster.current_kubernetes_version) {
            return Err(ArmError::new(
                400,
                "NodePoolMcVersionIncompatible",
                format!(
                    "Node pool version {version} and control plane version {} are incompatible: a node pool may not be newer than the control plane.",
                    cluster.current_kubernetes_version
                ),
            ));
        }
        let upgrade_settings = settings_of(&props, &Map::new());
        rules::settings(&upgrade_settings, count).map_err(|e| ArmError::new(400, "InvalidParameter", e))?;
        let mode = props.get("mode").and_then(Value::as_str).unwrap_or("User").to_string();
        if mode != "User" && mode != "System" {
            return Err(ArmError::new(400, "InvalidParameter", format!("mode must be \"System\" or \"User\", not \"{mode}\"")));
        }
        let node_labels = props.get("nodeLabels").and_then(Value::as_object).cloned().unwrap_or_default();
        if let Some((k, v)) = node_labels.iter().find(|(_, v)| !v.is_string()) {
            return Err(ArmError::new(400, "InvalidParameter", format!("nodeLabels values must be strings: {k} is {v}")));
        }
        let pool = Pool {
            name: name.to_string(),
            count,
            mode,
            vm_size: props.get("vmSize").and_then(Value::as_str).unwrap_or("Standard_D4s_v5").to_string(),
            orchestrator_version: version.clone(),
            current_orchestrator_version: version,
            node_image_version: crate::topology::LATEST_IMAGE.version.into(),
            provisioning_state: "Creating".into(),
            upgrade_settings,
            node_labels,
            vmss: crate::topology::vmss_prefix(name),
            next_index: 0,
        };
        let op = call.arm.with(|c| {
            if let Some(op) = c.conflicting(Some(name)) {
                return Err(conflict(op));
            }
            c.pools.insert(name.to_string(), pool);
            Ok(c.start(Some(name), "create node pool", false))
        })?;
        worker::spawn(call.arm.clone(), op.clone(), Job::AddPool { pool: name.into() });
        let pool = call.arm.snapshot().pools.get(name).map(|p| agent_pool(&call.cluster_id(sub), p)).unwrap_or_default();
        return Ok(call.accepted(201, Some(&pool), sub, &op));
    };
    if let Some(count) = props.get("count")
        && count.as_u64() != Some(existing.count as u64)
    {
        return Err(ArmError::new(
            400,
            "OperationNotSupported",
            format!("The lab does not scale node pools: count stays {} (asked for {count})", existing.count),
        ));
    }
    let upgrade_settings = settings_of(&props, &existing.upgrade_settings);
    rules::settings(&upgrade_settings, existing.count).map_err(|e| ArmError::new(400, "InvalidParameter", e))?;
    let version = props.get("orchestratorVersion").and_then(Value::as_str).map(|v| v.trim_start_matches('v').to_string());
    let upgrade = version.clone().filter(|v| *v != existing.current_orchestrator_version);
    if let Some(wanted) = &upgrade {
        let offered = rules::pool_upgrades(&existing.current_orchestrator_version, &cluster.current_kubernetes_version);
        if !offered.contains(&wanted.as_str()) {
            let (code, why) = if rules::parse_version(wanted) > rules::parse_version(&cluster.current_kubernetes_version) {
                ("NodePoolMcVersionIncompatible", format!("a node pool may not be newer than the control plane ({})", cluster.current_kubernetes_version))
            } else {
                ("UpgradeNotAllowed", format!("available upgrades: [{}]", offered.join(", ")))
            };
            return Err(ArmError::new(
                400,
                code,
                format!("Upgrading node pool {name} from Kubernetes version {} to {wanted} is not allowed: {why}", existing.current_orchestrator_version),
            ));
        }
        if let Some(usage) = upgrades_blocked(&call.arm) {
            return Err(blocked_error(&usage));
        }
    }
    let (what, state) = if upgrade.is_some() { ("upgrade node pool", "Upgrading") } else { ("update node pool", "Updating") };
    let op = begin(&call.arm, Some(name), what, state, false)?;
    call.arm.with(|c| {
        if let Some(p) = c.pools.get_mut(name) {
            p.upgrade_settings = upgrade_settings;
            if let Some(v) = &upgrade {
                p.orchestrator_version = v.clone();
            }
        }
        if upgrade.is_none() {
            c.finish(&op, None);
        }
    });
    if let Some(version) = upgrade {
        worker::spawn(call.arm.clone(), op.clone(), Job::UpgradePool { pool: name.into(), version });
    }
    let pool = call.arm.snapshot().pools.get(name).map(|p| agent_pool(&call.cluster_id(sub), p)).unwrap_or_default();
    Ok(call.accepted(200, Some(&pool), sub, &op))
}

fn upgrade_node_image(call: &Call, sub: &str, name: &str) -> Result<Response, ArmError> {
    let op = begin(&call.arm, Some(name), "upgrade node image version", "UpgradingNodeImageVersion", false)?;
    worker::spawn(call.arm.clone(), op.clone(), Job::NodeImage { pool: name.into() });
    let pool = call.arm.snapshot().pools.get(name).map(|p| agent_pool(&call.cluster_id(sub), p)).unwrap_or_default();
    Ok(call.accepted(202, Some(&pool), sub, &op))
}

fn delete_pool(call: &Call, sub: &str, name: &str) -> Result<Response, ArmError> {
    let cluster = call.arm.snapshot();
    let is_system = cluster.pools.get(name).is_some_and(|p| p.mode == "System");
    if is_system && cluster.pools.values().filter(|p| p.mode == "System").count() == 1 {
        return Err(ArmError::new(
            400,
            "OperationNotAllowed",
            format!("Cannot delete agent pool {name}: it is the only system node pool, and a cluster needs at least one. See https://aka.ms/aks/nodepool/mode"),
        ));
    }
    let op = begin(&call.arm, Some(name), "delete node pool", "Deleting", true)?;
    worker::spawn(call.arm.clone(), op.clone(), Job::DeletePool { pool: name.into() });
    Ok(call.accepted(202, None, sub, &op))
}

fn operation_status(sub: &str, op: &Operation) -> Value {
    let mut doc = json!({
        "id": format!("/subscriptions/{sub}/providers/{PROVIDER}/locations/{LOCATION}/operations/{}", op.id),
        "name": op.id,
        "status": op.status,
        "startTime": op.start_time,
        "percentComplete": op.percent_complete,
    });
    if let Some(end) = &op.end_time {
        doc["endTime"] = json!(end);
    }
    if let (Some(code), Some(message)) = (&op.error_code, &op.error_message) {
        doc["error"] = json!({"code": code, "message": message});
    }
    doc
}

/// The `Location` URL: 202 while the operation runs, then the resource
/// (200), nothing (204, after a delete) or the error (400).
fn operation_result(call: &Call, cluster: &Cluster, sub: &str, op: &Operation) -> Response {
    if op.running() {
        return call.accepted(202, None, sub, &op.id);
    }
    if let (Some(code), Some(message)) = (&op.error_code, &op.error_message) {
        return ArmError::new(400, code, message.clone()).response();
    }
    if op.deletes {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        return r;
    }
    let body = match &op.pool {
        Some(pool) => cluster.pools.get(pool).map(|p| agent_pool(&call.cluster_id(sub), p)),
        None => Some(managed_cluster(call, cluster, sub)),
    };
    match body {
        Some(b) => json_response(200, &b),
        None => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
    }
}

fn pool_properties(pool: &Pool) -> Value {
    let mut settings = pool.upgrade_settings.clone();
    settings.entry("maxSurge").or_insert(json!("10%"));
    json!({
        "count": pool.count,
        "vmSize": pool.vm_size,
        "osDiskSizeGB": 128,
        "osDiskType": "Managed",
        "kubeletDiskType": "OS",
        "maxPods": 110,
        "type": "VirtualMachineScaleSets",
        "enableAutoScaling": false,
        "provisioningState": pool.provisioning_state,
        "powerState": {"code": "Running"},
        "orchestratorVersion": pool.orchestrator_version,
        "currentOrchestratorVersion": pool.current_orchestrator_version,
        "nodeImageVersion": pool.node_image_version,
        "upgradeSettings": settings,
        "nodeLabels": pool.node_labels,
        "mode": pool.mode,
        "osType": "Linux",
        "osSKU": "Ubuntu",
        "enableNodePublicIP": false,
        "enableFIPS": false,
    })
}

fn agent_pool(cluster_id: &str, pool: &Pool) -> Value {
    json!({
        "id": format!("{cluster_id}/agentPools/{}", pool.name),
        "name": pool.name,
        "type": format!("{PROVIDER}/managedClusters/agentPools"),
        "properties": pool_properties(pool),
    })
}

fn managed_cluster(call: &Call, cluster: &Cluster, sub: &str) -> Value {
    let profiles: Vec<Value> = cluster
        .pools
        .values()
        .map(|p| {
            let mut props = pool_properties(p);
            props["name"] = json!(p.name);
            props
        })
        .collect();
    json!({
        "id": call.cluster_id(sub),
        "location": LOCATION,
        "name": CLUSTER_NAME,
        "type": format!("{PROVIDER}/ManagedClusters"),
        "tags": {},
        "sku": {"name": "Base", "tier": "Free"},
        "properties": {
            "provisioningState": cluster.provisioning_state,
            "powerState": {"code": "Running"},
            "kubernetesVersion": cluster.kubernetes_version,
            "currentKubernetesVersion": cluster.current_kubernetes_version,
            "dnsPrefix": CLUSTER_NAME,
            "fqdn": format!("{CLUSTER_NAME}-runner-lab.hcp.{LOCATION}.azmk8s.io"),
            "agentPoolProfiles": profiles,
            "nodeResourceGroup": format!("MC_{RESOURCE_GROUP}_{CLUSTER_NAME}_{LOCATION}"),
            "enableRBAC": true,
            "supportPlan": "KubernetesOfficial",
            "networkProfile": {"networkPlugin": "kubenet", "loadBalancerSku": "standard"},
            "upgradeSettings": {},
        },
    })
}

fn upgrades(versions: &[&str]) -> Value {
    Value::Array(versions.iter().map(|v| json!({"kubernetesVersion": v, "isPreview": false})).collect())
}

fn cluster_upgrade_profile(call: &Call, cluster: &Cluster, sub: &str) -> Value {
    let pools: Vec<Value> = cluster
        .pools
        .values()
        .map(|p| {
            json!({
                "name": p.name,
                "kubernetesVersion": p.current_orchestrator_version,
                "osType": "Linux",
                "upgrades": upgrades(&rules::pool_upgrades(&p.current_orchestrator_version, &cluster.current_kubernetes_version)),
            })
        })
        .collect();
    json!({
        "id": format!("{}/upgradeprofiles/default", call.cluster_id(sub)),
        "name": "default",
        "type": format!("{PROVIDER}/managedClusters/upgradeprofiles"),
        "properties": {
            "controlPlaneProfile": {
                "kubernetesVersion": cluster.current_kubernetes_version,
                "osType": "Linux",
                "upgrades": upgrades(&rules::control_plane_upgrades(&cluster.current_kubernetes_version)),
            },
            "agentPoolProfiles": pools,
        },
    })
}

fn pool_upgrade_profile(cluster_id: &str, cluster: &Cluster, pool: &Pool) -> Value {
    json!({
        "id": format!("{cluster_id}/agentPools/{}/upgradeProfiles/default", pool.name),
        "name": "default",
        "type": format!("{PROVIDER}/managedClusters/agentPools/upgradeProfiles"),
        "properties": {
            "kubernetesVersion": pool.current_orchestrator_version,
            "osType": "Linux",
            "upgrades": upgrades(&rules::pool_upgrades(&pool.current_orchestrator_version, &cluster.current_kubernetes_version)),
            "latestNodeImageVersion": crate::topology::LATEST_IMAGE.version,
        },
    })
}
