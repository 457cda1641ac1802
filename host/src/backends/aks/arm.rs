//! ARM's documents for `Microsoft.ContainerService` (the stable
//! azure-rest-api-specs shapes of `ManagedCluster`, `AgentPool`, the upgrade
//! profiles, the async operation status and `CloudError`), read into the
//! domain's values and written back. Sessions and canned cases keep cluster
//! answers in these same shapes, so one reader serves the live backend and
//! `runner test`.

use serde_json::{Map, Value, json};

use crate::backends::{BackendError, ErrorCode};
use crate::domain::cluster::{ControlPlane, NodePool, Operation, PoolUpgradeProfile, UpgradeSettings};

fn text(value: &Value, key: &str) -> String {
    value.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn minutes(value: &Value, key: &str) -> Option<u32> {
    value.get(key).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok())
}

/// `upgradeSettings` as ARM writes it.
pub fn settings_from_arm(value: &Value) -> UpgradeSettings {
    UpgradeSettings {
        max_surge: text(value, "maxSurge"),
        max_unavailable: text(value, "maxUnavailable"),
        drain_timeout_minutes: minutes(value, "drainTimeoutInMinutes"),
        node_soak_minutes: minutes(value, "nodeSoakDurationInMinutes"),
        undrainable_node_behavior: text(value, "undrainableNodeBehavior"),
    }
}

/// `upgradeSettings` for a request: an unset setting is left out, so AKS's default applies.
pub fn settings_to_arm(settings: &UpgradeSettings) -> Value {
    let mut out = Map::new();
    let mut put = |key: &str, value: Value| {
        out.insert(key.to_string(), value);
    };
    if !settings.max_surge.is_empty() {
        put("maxSurge", json!(settings.max_surge));
    }
    if !settings.max_unavailable.is_empty() {
        put("maxUnavailable", json!(settings.max_unavailable));
    }
    if let Some(n) = settings.drain_timeout_minutes {
        put("drainTimeoutInMinutes", json!(n));
    }
    if let Some(n) = settings.node_soak_minutes {
        put("nodeSoakDurationInMinutes", json!(n));
    }
    if !settings.undrainable_node_behavior.is_empty() {
        put("undrainableNodeBehavior", json!(settings.undrainable_node_behavior));
    }
    Value::Object(out)
}

/// An `AgentPool` document (`{name, properties: {...}}`).
pub fn pool_from_arm(value: &Value) -> Result<NodePool, String> {
    let name = value.get("name").and_then(Value::as_str).ok_or_else(|| format!("an agent pool needs its `name`, found {}", cut(value)))?;
    let p = value.get("properties").filter(|p| p.is_object()).ok_or_else(|| format!("agent pool {name}: no `properties` object"))?;
    let count = p.get("count").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
    Ok(NodePool {
        name: name.to_string(),
        mode: text(p, "mode"),
        orchestrator_version: text(p, "orchestratorVersion"),
        current_orchestrator_version: text(p, "currentOrchestratorVersion"),
        node_image_version: text(p, "nodeImageVersion"),
        count,
        provisioning_state: text(p, "provisioningState"),
        upgrade_settings: p.get("upgradeSettings").map(settings_from_arm).unwrap_or_default(),
    })
}

/// A pool as an `AgentPool` document (what sessions keep).
pub fn pool_to_arm(pool: &NodePool) -> Value {
    json!({
        "name": pool.name,
        "type": "Microsoft.ContainerService/managedClusters/agentPools",
        "properties": {
            "mode": pool.mode,
            "orchestratorVersion": pool.orchestrator_version,
            "currentOrchestratorVersion": pool.current_orchestrator_version,
            "nodeImageVersion": pool.node_image_version,
            "count": pool.count,
            "provisioningState": pool.provisioning_state,
            "upgradeSettings": settings_to_arm(&pool.upgrade_settings),
        }
    })
}

/// The agent pool list (`{"value": [...]}`; a `nextLink` page is the caller's).
pub fn pools_from_arm(value: &Value) -> Result<Vec<NodePool>, String> {
    let items = value.get("value").and_then(Value::as_array).ok_or_else(|| format!("an agent pool list is {{\"value\": [...]}}, found {}", cut(value)))?;
    items.iter().map(pool_from_arm).collect()
}

/// Pools as an agent pool list document.
pub fn pools_to_arm(pools: &[NodePool]) -> Value {
    json!({ "value": pools.iter().map(pool_to_arm).collect::<Vec<_>>() })
}

/// The versions an upgrade profile offers (`upgrades: [{kubernetesVersion, isPreview}]`).
fn upgrades(profile: &Value) -> Vec<String> {
    profile
        .get("upgrades")
        .and_then(Value::as_array)
        .map(|u| u.iter().map(|v| text(v, "kubernetesVersion")).filter(|v| !v.is_empty()).collect())
        .unwrap_or_default()
}

fn upgrades_to_arm(versions: &[String]) -> Value {
    json!(versions.iter().map(|v| json!({"kubernetesVersion": v})).collect::<Vec<_>>())
}

/// A `ManagedCluster` and its `ManagedClusterUpgradeProfile`.
pub fn control_plane_from_arm(cluster: &Value, profile: &Value) -> Result<ControlPlane, String> {
    let p = cluster.get("properties").filter(|p| p.is_object()).ok_or_else(|| format!("a managed cluster needs `properties`, found {}", cut(cluster)))?;
    let control = profile.get("properties").and_then(|p| p.get("controlPlaneProfile")).unwrap_or(&Value::Null);
    Ok(ControlPlane {
        kubernetes_version: text(p, "kubernetesVersion"),
        current_kubernetes_version: text(p, "currentKubernetesVersion"),
        provisioning_state: text(p, "provisioningState"),
        upgrades: upgrades(control),
    })
}

/// The control plane as a session keeps it: `{"managedCluster": ..., "upgradeProfile": ...}`.
pub fn control_plane_to_arm(plane: &ControlPlane) -> Value {
    json!({
        "managedCluster": {"type": "Microsoft.ContainerService/ManagedClusters", "properties": {
            "kubernetesVersion": plane.kubernetes_version,
            "currentKubernetesVersion": plane.current_kubernetes_version,
            "provisioningState": plane.provisioning_state,
        }},
        "upgradeProfile": {"properties": {"controlPlaneProfile": {"kubernetesVersion": plane.current_kubernetes_version, "upgrades": upgrades_to_arm(&plane.upgrades)}}},
    })
}

/// The session form of the control plane, read back.
pub fn control_plane_from_session(value: &Value) -> Result<ControlPlane, String> {
    let cluster = value
        .get("managedCluster")
        .ok_or_else(|| format!("the control plane is {{\"managedCluster\": ..., \"upgradeProfile\": ...}}, found {}", cut(value)))?;
    control_plane_from_arm(cluster, value.get("upgradeProfile").unwrap_or(&Value::Null))
}

/// An `AgentPoolUpgradeProfile`.
pub fn pool_profile_from_arm(value: &Value) -> Result<PoolUpgradeProfile, String> {
    let p =
        value.get("properties").filter(|p| p.is_object()).ok_or_else(|| format!("an agent pool upgrade profile needs `properties`, found {}", cut(value)))?;
    Ok(PoolUpgradeProfile {
        kubernetes_version: text(p, "kubernetesVersion"),
        upgrades: upgrades(p),
        latest_node_image_version: text(p, "latestNodeImageVersion"),
    })
}

/// A pool upgrade profile as ARM writes it.
pub fn pool_profile_to_arm(profile: &PoolUpgradeProfile) -> Value {
    json!({"properties": {
        "kubernetesVersion": profile.kubernetes_version,
        "osType": "Linux",
        "upgrades": upgrades_to_arm(&profile.upgrades),
        "latestNodeImageVersion": profile.latest_node_image_version,
    }})
}

/// An operation status document (`{id, name, status, startTime, endTime, error}`).
pub fn operation_from_arm(value: &Value) -> Result<Operation, String> {
    let status = value.get("status").and_then(Value::as_str).ok_or_else(|| format!("an operation status needs `status`, found {}", cut(value)))?;
    let error = value.get("error").unwrap_or(&Value::Null);
    // ARM's `id` is the status URL's path; the id a caller passes back is its last segment (`name`).
    let id =
        value.get("name").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| text(value, "id").rsplit('/').next().unwrap_or_default().to_string());
    Ok(Operation {
        id,
        status: status.to_string(),
        start_time: text(value, "startTime"),
        end_time: text(value, "endTime"),
        error_code: text(error, "code"),
        error_message: text(error, "message"),
    })
}

/// An operation as its status document.
pub fn operation_to_arm(operation: &Operation) -> Value {
    let mut doc = json!({"name": operation.id, "status": operation.status});
    if !operation.start_time.is_empty() {
        doc["startTime"] = json!(operation.start_time);
    }
    if !operation.end_time.is_empty() {
        doc["endTime"] = json!(operation.end_time);
    }
    if !operation.error_code.is_empty() || !operation.error_message.is_empty() {
        doc["error"] = json!({"code": operation.error_code, "message": operation.error_message});
    }
    doc
}

/// Whether an operation or provisioning state is final.
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "Succeeded" | "Failed" | "Canceled" | "Cancelled")
}

/// The host's code for one of AKS's own error codes, when the code says
/// more than the HTTP status (a failed operation has no status of its own).
fn code_of_aks(aks: &str) -> Option<ErrorCode> {
    Some(match aks {
        "OperationNotAllowed" | "Conflict" | "EtagMismatch" | "PreconditionFailed" | "AnotherOperationInProgress" => ErrorCode::Conflict,
        "NotFound" | "ResourceNotFound" | "ResourceGroupNotFound" | "SubscriptionNotFound" => ErrorCode::NotFound,
        "AuthorizationFailed" | "InvalidAuthenticationToken" | "AuthenticationFailed" | "LinkedAuthorizationFailed" => ErrorCode::Denied,
        "TooManyRequests" | "ServerBusy" | "ServiceUnavailable" => ErrorCode::Unavailable,
        "UpgradeBlockedOnDeprecatedAPIUsage" | "InvalidParameter" | "BadRequest" | "InvalidRequestContent" | "MissingApiVersionParameter" | "NotSupported" => {
            ErrorCode::Invalid
        }
        "OperationTimedOut" | "Timeout" => ErrorCode::Timeout,
        _ => return None,
    })
}

/// `{"error": {"code", "message"}}` (ARM's `CloudError`) as `CODE: message`.
fn cloud_error(body: &Value) -> Option<(String, String)> {
    let error = body.get("error").filter(|e| e.is_object())?;
    let code = text(error, "code");
    let message = text(error, "message");
    (!code.is_empty() || !message.is_empty()).then_some((code, message))
}

/// AKS's words for a failed call: `CODE: message`, AKS's own code first.
fn words(code: &str, message: &str) -> String {
    match (code.is_empty(), message.is_empty()) {
        (false, false) => format!("{code}: {message}"),
        (false, true) => code.to_string(),
        _ => message.to_string(),
    }
}

/// The error for an HTTP answer that is not a success: the status sets the
/// code (409 conflict, 429 unavailable, 400 invalid, 401/403 denied, 404
/// not-found), the body's `CloudError` the words.
pub fn error_of_status(status: u16, body: &str) -> BackendError {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let message = match cloud_error(&parsed) {
        Some((code, message)) => words(&code, &message),
        None => {
            let body = body.trim();
            if body.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {}", cut_text(body)) }
        }
    };
    let code = match status {
        400 | 422 => ErrorCode::Invalid,
        401 | 403 => ErrorCode::Denied,
        404 => ErrorCode::NotFound,
        409 | 412 => ErrorCode::Conflict,
        408 | 504 => ErrorCode::Timeout,
        429 | 502 | 503 => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    };
    BackendError::new(code, message)
}

/// The error for an operation that ended `Failed` or `Canceled`: AKS's
/// code and message, the operation named last so it can be looked up.
pub fn error_of_operation(operation: &Operation) -> BackendError {
    let code = if operation.error_code.is_empty() { format!("Operation{}", operation.status) } else { operation.error_code.clone() };
    let message = if operation.error_message.is_empty() { format!("the operation ended {}", operation.status) } else { operation.error_message.clone() };
    let host = code_of_aks(&code).unwrap_or(ErrorCode::Internal);
    let id = if operation.id.is_empty() { String::new() } else { format!(" (operation {})", operation.id) };
    BackendError::new(host, format!("{}{id}", words(&code, &message)))
}

/// A canned or recorded cluster answer that is one of ARM's failures, as
/// the backend would have turned it into an error: an error response
/// `{"status": 409, "error": {"code": ..., "message": ...}}` (the HTTP
/// status, then the `CloudError` body), or an operation status document
/// that ended `Failed`/`Canceled`. Anything else is an answer.
pub fn failure_in(call: &str, value: &Value) -> Option<BackendError> {
    if let Some(status) = value.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok()) {
        let body = value.get("error").map(|e| json!({"error": e}).to_string()).unwrap_or_default();
        let mut error = error_of_status(status, &body);
        if status == 429 {
            error.message = format!("{} (throttled; the host stopped retrying)", error.message);
        }
        return Some(error);
    }
    // A failed operation answers a mutation; `cluster-read.operation` reports it as it is.
    if call.starts_with("cluster-write.")
        && let Some(status) = value.get("status").and_then(Value::as_str)
        && matches!(status, "Failed" | "Canceled" | "Cancelled")
    {
        return operation_from_arm(value).ok().map(|op| error_of_operation(&op));
    }
    None
}

fn cut(value: &Value) -> String {
    cut_text(&value.to_string())
}

fn cut_text(text: &str) -> String {
    let cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() { format!("{cut}...") } else { cut }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An agent pool as the stable spec's example (`AgentPoolsGet`) shows it.
    fn spec_pool() -> Value {
        json!({
            "id": "/subscriptions/subid1/resourcegroups/rg1/providers/Microsoft.ContainerService/managedClusters/clustername1/agentPools/agentpool1",
            "name": "agentpool1",
            "properties": {
                "provisioningState": "Succeeded", "orchestratorVersion": "1.30.5", "currentOrchestratorVersion": "1.29.9",
                "count": 3, "vmSize": "Standard_DS2_v2", "maxPods": 110, "osType": "Linux", "mode": "User",
                "nodeImageVersion": "AKSUbuntu-2204gen2containerd-202410.15.0",
                "upgradeSettings": {"maxSurge": "33%", "drainTimeoutInMinutes": 5, "undrainableNodeBehavior": "Cordon"}
            }
        })
    }

    #[test]
    fn pools_read_and_write_arms_shape() {
        let pool = pool_from_arm(&spec_pool()).unwrap();
        assert_eq!((pool.name.as_str(), pool.count, pool.current_orchestrator_version.as_str()), ("agentpool1", 3, "1.29.9"));
        assert_eq!(pool.upgrade_settings.max_surge, "33%");
        assert_eq!(pool.upgrade_settings.drain_timeout_minutes, Some(5));
        assert_eq!(pool.upgrade_settings.node_soak_minutes, None, "unset stays unset");
        assert_eq!(pool_from_arm(&pool_to_arm(&pool)).unwrap(), pool, "what a session keeps reads back the same");
        assert_eq!(settings_to_arm(&pool.upgrade_settings), json!({"maxSurge": "33%", "drainTimeoutInMinutes": 5, "undrainableNodeBehavior": "Cordon"}));
        assert!(pool_from_arm(&json!({"properties": {}})).unwrap_err().contains("`name`"));
        assert!(pools_from_arm(&json!([spec_pool()])).unwrap_err().contains("\"value\""));
    }

    #[test]
    fn control_plane_and_profiles() {
        let cluster = json!({"name": "c", "location": "eastus", "properties": {"kubernetesVersion": "1.29.9", "currentKubernetesVersion": "1.29.9", "provisioningState": "Succeeded"}});
        let profile = json!({"properties": {"controlPlaneProfile": {"kubernetesVersion": "1.29.9", "upgrades": [{"kubernetesVersion": "1.30.5"}, {"kubernetesVersion": "1.30.4", "isPreview": false}]}, "agentPoolProfiles": []}});
        let plane = control_plane_from_arm(&cluster, &profile).unwrap();
        assert_eq!(plane.upgrades, vec!["1.30.5", "1.30.4"]);
        assert_eq!(control_plane_from_session(&control_plane_to_arm(&plane)).unwrap(), plane);
        let pool = json!({"properties": {"kubernetesVersion": "1.29.9", "osType": "Linux", "upgrades": [{"kubernetesVersion": "1.30.5"}], "latestNodeImageVersion": "AKSUbuntu-2204gen2containerd-202411.12.0"}});
        let profile = pool_profile_from_arm(&pool).unwrap();
        assert_eq!(profile.latest_node_image_version, "AKSUbuntu-2204gen2containerd-202411.12.0");
        assert_eq!(pool_profile_from_arm(&pool_profile_to_arm(&profile)).unwrap(), profile);
    }

    #[test]
    fn errors_keep_aks_words() {
        let conflict = error_of_status(
            409,
            r#"{"error":{"code":"OperationNotAllowed","message":"Operation is not allowed because there's an in progress upgrade node image version operation"}}"#,
        );
        assert_eq!(conflict.code, ErrorCode::Conflict);
        assert!(conflict.message.starts_with("OperationNotAllowed: Operation is not allowed"), "{}", conflict.message);
        assert_eq!(error_of_status(400, r#"{"error":{"code":"UpgradeBlockedOnDeprecatedAPIUsage","message":"x"}}"#).code, ErrorCode::Invalid);
        assert_eq!(error_of_status(401, r#"{"error":{"code":"InvalidAuthenticationToken","message":"bad"}}"#).message, "InvalidAuthenticationToken: bad");
        assert_eq!(error_of_status(403, "").code, ErrorCode::Denied);
        assert_eq!(error_of_status(404, "").message, "HTTP 404");
        assert_eq!(error_of_status(500, "<html>oops</html>").message, "HTTP 500: <html>oops</html>");
        let failed = operation_from_arm(&json!({
            "id": "/subscriptions/s/providers/Microsoft.ContainerService/locations/eastus/operations/op-7",
            "status": "Failed",
            "error": {"code": "UpgradeFailed", "message": "Drain of aks-nodepool1-12345678-vmss000001 did not complete: Cannot evict pod as it would violate the pod's disruption budget postgres-pdb"}
        }))
        .unwrap();
        assert_eq!(failed.id, "op-7", "the id is the status URL's last segment");
        let error = error_of_operation(&failed);
        assert!(error.message.starts_with("UpgradeFailed: Drain of aks-nodepool1"), "{}", error.message);
        assert!(error.message.ends_with("(operation op-7)"), "{}", error.message);
        assert_eq!(error.code, ErrorCode::Internal, "a failed upgrade is none of the other codes");
        assert_eq!(
            error_of_operation(&Operation { status: "Canceled".into(), ..Operation::default() }).message,
            "OperationCanceled: the operation ended Canceled"
        );
    }

    #[test]
    fn canned_failures_in_arms_shapes() {
        let throttled = failure_in("cluster-read.node-pools", &json!({"status": 429, "error": {"code": "TooManyRequests", "message": "slow down"}})).unwrap();
        assert_eq!(throttled.code, ErrorCode::Unavailable);
        assert!(throttled.message.starts_with("TooManyRequests: slow down"));
        let failed =
            failure_in("cluster-write.upgrade-node-pool", &json!({"name": "op-1", "status": "Failed", "error": {"code": "UpgradeFailed", "message": "drain"}}))
                .unwrap();
        assert_eq!(failed.message, "UpgradeFailed: drain (operation op-1)");
        assert!(failure_in("cluster-read.operation", &json!({"name": "op-1", "status": "Failed"})).is_none(), "a read reports a failed operation as it is");
        assert!(failure_in("cluster-read.node-pool", &spec_pool()).is_none());
    }
}
