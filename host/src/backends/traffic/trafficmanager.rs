//! A switch served by an Azure Traffic Manager profile with the `Weighted`
//! routing method (`Microsoft.Network/trafficManagerProfiles`, api-version
//! 2022-04-01), through ARM with the cluster's endpoint and credential
//! ([`AksBackend::subscription_request`]). Its backends are the profile's
//! endpoints, by name: `weight` (1-1000) and `endpointStatus`.
//!
//! The generation is the answer's `ETag` header (the resource has no etag
//! property). A change is one `PATCH` of the profile whose `endpoints` is
//! the whole list as read with the new weights and statuses (a PATCH with
//! `endpoints` replaces the list), sent with `If-Match: <etag>`: a profile
//! changed since answers 412 and nothing changes.

use std::sync::Arc;

use reqwest_arm::{Method, header};
use serde_json::{Value, json};

use super::{BackendWeight, SwitchDocument, SwitchKind, SwitchServer, SwitchState};
use crate::backends::aks::AksBackend;
use crate::backends::{BackendError, BackendResult, ErrorCode};

/// The api-version of every Traffic Manager call.
pub const API_VERSION: &str = "2022-04-01";

/// One Traffic Manager profile.
pub struct ProfileSwitch {
    arm: Arc<AksBackend>,
    /// `/resourceGroups/{g}/providers/Microsoft.Network/trafficManagerProfiles/{p}?api-version=...`.
    path: String,
    profile: String,
}

impl ProfileSwitch {
    /// The profile `profile` of resource group `resource_group`, through `arm`.
    pub fn new(arm: Arc<AksBackend>, resource_group: &str, profile: &str) -> Self {
        let path = format!("/resourceGroups/{resource_group}/providers/Microsoft.Network/trafficManagerProfiles/{profile}?api-version={API_VERSION}");
        ProfileSwitch { arm, path, profile: profile.to_string() }
    }

    async fn state_of_response(&self, response: reqwest_arm::Response) -> BackendResult<SwitchState> {
        let etag = response.headers().get(header::ETAG).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let text = response.text().await.map_err(|e| BackendError::new(ErrorCode::Unavailable, format!("profile {}: {e}", self.profile)))?;
        let profile: Value = serde_json::from_str(&text)
            .map_err(|e| BackendError::new(ErrorCode::Internal, format!("profile {}: the answer is not JSON ({e})", self.profile)))?;
        if etag.is_empty() {
            // Without it there is nothing to make a change conditional on.
            return Err(BackendError::new(ErrorCode::Unavailable, format!("profile {}: the answer has no ETag header", self.profile)));
        }
        state_of(&etag, &profile).map_err(|e| BackendError::new(ErrorCode::Internal, format!("profile {}: {e}", self.profile)))
    }
}

/// The endpoints of a profile document.
fn endpoints(profile: &Value) -> &[Value] {
    profile.pointer("/properties/endpoints").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// A switch state from a profile document and the ETag it came with.
pub fn state_of(etag: &str, profile: &Value) -> Result<SwitchState, String> {
    if let Some(method) = profile.pointer("/properties/trafficRoutingMethod").and_then(Value::as_str)
        && !method.eq_ignore_ascii_case("Weighted")
    {
        return Err(format!("routes by `{method}`, not `Weighted`: its endpoints have no shares to set"));
    }
    let mut backends = Vec::new();
    for e in endpoints(profile) {
        let name = e.get("name").and_then(Value::as_str).ok_or("an endpoint without a name")?;
        let p = e.get("properties").unwrap_or(&Value::Null);
        let weight = p.get("weight").and_then(Value::as_u64).and_then(|w| u32::try_from(w).ok()).unwrap_or(1);
        let enabled = p.get("endpointStatus").and_then(Value::as_str).is_none_or(|s| s.eq_ignore_ascii_case("Enabled"));
        backends.push(BackendWeight { name: name.to_string(), weight, enabled });
    }
    Ok(SwitchState {
        backends,
        generation: etag.to_string(),
        writer: false,
        document: SwitchDocument::TrafficManager { etag: etag.to_string(), profile: profile.clone() },
    })
}

/// The profile's endpoint list with `next`'s weights and statuses, for a PATCH.
fn endpoints_with(profile: &Value, next: &[BackendWeight]) -> Value {
    let list: Vec<Value> = endpoints(profile)
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let Some(b) = e.get("name").and_then(Value::as_str).and_then(|name| next.iter().find(|b| b.name == name)) {
                e["properties"]["weight"] = json!(b.weight);
                e["properties"]["endpointStatus"] = json!(if b.enabled { "Enabled" } else { "Disabled" });
            }
            // Read-only: what Traffic Manager's probing found.
            if let Some(p) = e.get_mut("properties").and_then(Value::as_object_mut) {
                p.remove("endpointMonitorStatus");
            }
            e
        })
        .collect();
    json!(list)
}

#[async_trait::async_trait]
impl SwitchServer for ProfileSwitch {
    fn kind(&self) -> SwitchKind {
        SwitchKind::TrafficManager
    }

    async fn read(&self) -> BackendResult<SwitchState> {
        let response = self.arm.subscription_request(Method::GET, &self.path, None, &[]).await?;
        self.state_of_response(response).await
    }

    async fn write(&self, read: &SwitchState, next: &[BackendWeight]) -> BackendResult<SwitchState> {
        let SwitchDocument::TrafficManager { etag, profile } = &read.document else {
            return Err(BackendError::new(ErrorCode::Internal, "a Traffic Manager switch was handed another kind's state"));
        };
        let body = json!({"properties": {"endpoints": endpoints_with(profile, next)}});
        let response = self.arm.subscription_request(Method::PATCH, &self.path, Some(&body), &[(header::IF_MATCH, etag.clone())]).await?;
        self.state_of_response(response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_reads_its_endpoints_and_writes_them_whole() {
        let profile = json!({"name": "frontdoor", "properties": {"trafficRoutingMethod": "Weighted", "endpoints": [
            {"name": "blue", "type": "Microsoft.Network/trafficManagerProfiles/externalEndpoints",
             "properties": {"target": "blue", "weight": 100, "endpointStatus": "Enabled", "endpointMonitorStatus": "Online"}},
            {"name": "green", "type": "Microsoft.Network/trafficManagerProfiles/externalEndpoints",
             "properties": {"target": "green:80", "weight": 5, "endpointStatus": "Disabled"}},
        ]}});
        let state = state_of("\"abc\"", &profile).unwrap();
        assert_eq!(state.generation, "\"abc\"");
        assert_eq!(state.backends[0], BackendWeight { name: "blue".into(), weight: 100, enabled: true });
        assert_eq!(state.backends[1], BackendWeight { name: "green".into(), weight: 5, enabled: false });
        let next = [BackendWeight { name: "blue".into(), weight: 100, enabled: false }, BackendWeight { name: "green".into(), weight: 100, enabled: true }];
        let list = endpoints_with(&profile, &next);
        assert_eq!(list[0]["properties"]["endpointStatus"], "Disabled");
        assert_eq!(list[0]["properties"]["target"], "blue", "the rest as read");
        assert_eq!(list[0]["properties"].get("endpointMonitorStatus"), None);
        assert_eq!(list[1]["properties"]["weight"], 100);
        let mut priority = profile.clone();
        priority["properties"]["trafficRoutingMethod"] = json!("Priority");
        assert!(state_of("\"x\"", &priority).is_err());
    }
}
