//! The lab's front door: a weighted HTTP reverse proxy on a fixed loopback
//! address, so a blue-green switch moves real traffic.
//!
//! It listens on [`address`] (`127.N.3.1:8080`, N the lab's subnet; the
//! third octet 3 is kept for it, beside the Pods' 1 and the Services' 2) and
//! writes `http://127.N.3.1:8080` to `<lab>/frontdoor`. Each request goes to
//! one backend, chosen afresh by weight from what is configured at that
//! moment (no restart; a weight change counts from the next request):
//!
//! 1. the Traffic Manager profile [`PROFILE`] of the lab's ARM emulation
//!    (resource group `runner-lab`) when it exists: its Enabled endpoints
//!    (none if the profile is Disabled), each by its `weight`; a target is
//!    `IP:PORT`, or a Service of namespace `default` (`NAME`, `NAME:PORT`);
//! 2. otherwise the HTTPRoute [`ROUTE`] in namespace `default`: the
//!    `backendRefs` of all its rules (matches and hostnames are not
//!    looked at), each a Service by `weight` (0 gets nothing).
//!
//! A Service backend is its Ready, not terminating Pods (the same selection
//! as [`crate::controllers::services`]) on the target port of the
//! referenced Service port; Pods of one backend take turns. A backend with no
//! Ready Pod gets no share (its weight goes to the others); with none left the
//! answer is 503 with a short body. The choice is a smooth weighted
//! round-robin (nginx's): deterministic, and exact over every run of
//! `sum of weights` requests while the weights stay, so 50/50 over 200
//! requests is 100 and 100. Every answer carries `X-Runner-Backend`: the
//! chosen Service (HTTPRoute) or endpoint (Traffic Manager) name.
//!
//! The HTTPRoutes' `status.parents` say whether the front door follows them
//! (Accepted for `default/frontdoor` only), see [`Routes`].

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::apiserver::Store;
use crate::arm::TrafficManagers;
use crate::controllers::reconciler::{Kind, Reconciler};
use crate::controllers::{name, namespace, pod_ready, selector_matches, terminating};

/// The port the front door listens on (unprivileged, so a lab run by a
/// user can bind it; the Pods' 8080 is on other addresses).
pub const PORT: u16 = 8080;
/// The HTTPRoute the front door follows (in [`NAMESPACE`]).
pub const ROUTE: &str = "frontdoor";
/// The namespace of [`ROUTE`] and of Services a Traffic Manager target names.
pub const NAMESPACE: &str = "default";
/// The Traffic Manager profile the front door follows, first.
pub const PROFILE: &str = "frontdoor";
/// The answer header naming the backend that served the request.
pub const BACKEND_HEADER: &str = "x-runner-backend";
/// The controller name in HTTPRoute statuses.
pub const CONTROLLER: &str = "runner-lab.dev/frontdoor";
/// The largest request body forwarded.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The front door's address on the lab's subnet: `127.<subnet>.3.1:8080`.
pub fn address(subnet: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(127, subnet, 3, 1), PORT)
}

/// One backend a request may go to: its name, weight and addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Candidate {
    name: String,
    weight: u64,
    addresses: Vec<SocketAddr>,
}

/// Smooth weighted round-robin over a set of (name, weight): each pick adds
/// every weight to its running score, takes the highest and takes the total
/// off it. Over any `total` picks each backend is chosen `weight` times.
#[derive(Default)]
struct Picker {
    set: Vec<(String, u64)>,
    scores: Vec<i64>,
}

impl Picker {
    /// The index in `set` of the next pick; the scores start over when the set changes.
    fn pick(&mut self, set: &[(String, u64)]) -> Option<usize> {
        if self.set != set {
            self.set = set.to_vec();
            self.scores = vec![0; set.len()];
        }
        let total: i64 = set.iter().map(|(_, w)| *w as i64).sum();
        if total <= 0 {
            return None;
        }
        for (score, (_, w)) in self.scores.iter_mut().zip(set) {
            *score += *w as i64;
        }
        // The first of equal scores wins, so the order is deterministic.
        let best = (0..set.len()).fold(0, |best, i| if self.scores[i] > self.scores[best] { i } else { best });
        self.scores[best] -= total;
        Some(best)
    }
}

#[derive(Clone)]
struct Door {
    store: Store,
    traffic_managers: TrafficManagers,
    http: reqwest::Client,
    picker: Arc<Mutex<Picker>>,
    /// Each backend's next Pod, so its Pods take turns.
    turns: Arc<Mutex<BTreeMap<String, usize>>>,
}

/// The addresses a Service's `port` (its first port when `None`) reaches:
/// its Ready, not terminating Pods on the target port, in name order.
fn service_addresses(store: &Store, ns: &str, service: &str, port: Option<u16>) -> Vec<SocketAddr> {
    let Some(svc) = store.get("v1", "Service", Some(ns), service) else { return Vec::new() };
    let Ok(pods) = store.list("v1", "Pod", Some(ns), None) else { return Vec::new() };
    let ports: Vec<&Value> = svc["spec"]["ports"].as_array().map(|p| p.iter().collect()).unwrap_or_default();
    let entry = match port {
        Some(p) => ports.iter().find(|e| e["port"].as_u64() == Some(u64::from(p))).copied(),
        None => ports.first().copied(),
    };
    let target = match entry {
        Some(e) => {
            let port = e["port"].as_u64().unwrap_or(0) as u16;
            crate::controllers::services::resolve_target(&e["targetPort"], port, &pods, &svc)
        }
        None => match port {
            // A Service without that port: nothing to reach.
            Some(_) if !ports.is_empty() => return Vec::new(),
            Some(p) => p,
            None => return Vec::new(),
        },
    };
    let selector = &svc["spec"]["selector"];
    let mut ready: Vec<(&str, Ipv4Addr)> = pods
        .iter()
        .filter(|p| selector_matches(selector, p) && pod_ready(p) && !terminating(p))
        .filter_map(|p| Some((name(p), p["status"]["podIP"].as_str()?.parse().ok()?)))
        .collect();
    ready.sort();
    ready.into_iter().map(|(_, ip)| SocketAddr::from((ip, target))).collect()
}

impl Door {
    /// What is configured now: where it comes from, and the candidates.
    fn candidates(&self) -> (&'static str, Vec<Candidate>) {
        if let Some(profile) = self.traffic_managers.profile(PROFILE) {
            let endpoints = if profile.enabled() { profile.endpoints } else { Vec::new() };
            let candidates = endpoints
                .into_iter()
                .filter(|e| e.enabled())
                .map(|e| {
                    let addresses = match e.target.parse::<SocketAddr>() {
                        Ok(a) => vec![a],
                        Err(_) => {
                            let (service, port) = match e.target.rsplit_once(':') {
                                Some((s, p)) => (s, p.parse().ok()),
                                None => (e.target.as_str(), None),
                            };
                            service_addresses(&self.store, NAMESPACE, service, port)
                        }
                    };
                    Candidate { name: e.name, weight: u64::from(e.weight), addresses }
                })
                .collect();
            return ("traffic manager profile", candidates);
        }
        let Some(route) = self.store.get("gateway.networking.k8s.io/v1", "HTTPRoute", Some(NAMESPACE), ROUTE) else {
            return ("nothing", Vec::new());
        };
        let candidates = route["spec"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["backendRefs"].as_array().cloned().unwrap_or_default())
            .filter(|b| b["kind"].as_str().is_none_or(|k| k == "Service") && b["group"].as_str().is_none_or(str::is_empty))
            .filter_map(|b| {
                let service = b["name"].as_str()?.to_string();
                let ns = b["namespace"].as_str().unwrap_or(NAMESPACE);
                let port = b["port"].as_u64().and_then(|p| u16::try_from(p).ok());
                let addresses = service_addresses(&self.store, ns, &service, port);
                Some(Candidate { name: service, weight: b["weight"].as_u64().unwrap_or(1), addresses })
            })
            .collect();
        ("HTTPRoute default/frontdoor", candidates)
    }

    /// The backend for the next request: its name and address.
    fn choose(&self) -> Result<(String, SocketAddr), String> {
        let (source, candidates) = self.candidates();
        let live: Vec<&Candidate> = candidates.iter().filter(|c| c.weight > 0 && !c.addresses.is_empty()).collect();
        let set: Vec<(String, u64)> = live.iter().map(|c| (c.name.clone(), c.weight)).collect();
        let picked = self.picker.lock().unwrap_or_else(|e| e.into_inner()).pick(&set);
        let Some(chosen) = picked.map(|i| live[i]) else {
            return Err(match candidates.is_empty() {
                true => format!("no backend: the front door follows {source}, which has none\n"),
                false => format!("no backend available: none of {source}'s backends has weight and a Ready Pod\n"),
            });
        };
        let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        let turn = turns.entry(chosen.name.clone()).or_insert(0);
        let address = chosen.addresses[*turn % chosen.addresses.len()];
        *turn = turn.wrapping_add(1);
        Ok((chosen.name.clone(), address))
    }
}

/// Headers that belong to one hop and are not forwarded.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(name.as_str(), "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "transfer-encoding" | "upgrade" | "host" | "content-length")
}

/// The headers of `all` that are forwarded.
fn end_to_end(all: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in all {
        if !hop_by_hop(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

fn plain(status: StatusCode, text: String) -> Response {
    let mut resp = Response::new(Body::from(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

async fn forward(State(door): State<Door>, req: Request) -> Response {
    let (backend, address) = match door.choose() {
        Ok(b) => b,
        Err(why) => return plain(StatusCode::SERVICE_UNAVAILABLE, why),
    };
    let path = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let method = req.method().clone();
    let headers = end_to_end(req.headers());
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("the request body could not be read: {e}\n")),
    };
    let sent = door.http.request(method, format!("http://{address}{path}")).headers(headers).body(body).send().await;
    let mut resp = match sent {
        Ok(upstream) => {
            let status = upstream.status();
            let headers = end_to_end(upstream.headers());
            match upstream.bytes().await {
                Ok(bytes) => {
                    let mut resp = Response::new(Body::from(bytes));
                    *resp.status_mut() = status;
                    *resp.headers_mut() = headers;
                    resp
                }
                Err(e) => plain(StatusCode::BAD_GATEWAY, format!("backend {backend} ({address}) broke off its answer: {e}\n")),
            }
        }
        Err(e) => plain(StatusCode::BAD_GATEWAY, format!("backend {backend} ({address}) did not answer: {e}\n")),
    };
    if let Ok(v) = HeaderValue::from_str(&backend) {
        resp.headers_mut().insert(BACKEND_HEADER, v);
    }
    resp
}

/// Starts the front door on [`address`]`(subnet)` until `stopped` turns
/// true; its task. Routes by `store` and `traffic_managers` as the module says.
pub async fn serve(store: Store, traffic_managers: TrafficManagers, subnet: u8, stopped: watch::Receiver<bool>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let at = address(subnet);
    let listener = tokio::net::TcpListener::bind(at).await.map_err(|e| anyhow::anyhow!("the front door cannot listen on {at}: {e}"))?;
    // No pooled connections: a Pod that stops must not leave the proxy a dead one.
    // See `ApiServer::start`: reqwest may be built with rustls and no provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).timeout(Duration::from_secs(60)).build()?;
    let door = Door { store, traffic_managers, http, picker: Default::default(), turns: Default::default() };
    let router = axum::Router::new().fallback(forward).with_state(door);
    let mut until = stopped;
    tracing::info!("front door serving at http://{at}");
    Ok(tokio::spawn(async move {
        let server = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = until.wait_for(|s| *s).await;
        });
        if let Err(e) = server.await {
            tracing::error!("the front door stopped: {e}");
        }
    }))
}

/// Keeps each HTTPRoute's `status.parents` saying whether the front door
/// follows it: `Accepted` True for `default/frontdoor`, False
/// (`NotAllowedByListeners`) for any other, and `ResolvedRefs` True when
/// every backendRef names an existing Service.
pub struct Routes;

impl Reconciler for Routes {
    const KIND: Kind = ("gateway.networking.k8s.io/v1", "HTTPRoute");

    fn name(&self) -> &'static str {
        "httproutes"
    }

    async fn reconcile(&mut self, store: &Store, route: &Value) -> anyhow::Result<()> {
        if terminating(route) {
            return Ok(());
        }
        let followed = namespace(route) == NAMESPACE && name(route) == ROUTE;
        let missing: Vec<String> = route["spec"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["backendRefs"].as_array().cloned().unwrap_or_default())
            .filter_map(|b| {
                let service = b["name"].as_str()?.to_string();
                let ns = b["namespace"].as_str().unwrap_or(namespace(route)).to_string();
                store.get("v1", "Service", Some(&ns), &service).is_none().then_some(format!("{ns}/{service}"))
            })
            .collect();
        let (accepted, reason, message) = match followed {
            true => ("True", "Accepted", "the lab's front door routes by this HTTPRoute (unless the Traffic Manager profile frontdoor exists)".to_string()),
            false => ("False", "NotAllowedByListeners", format!("the lab's front door follows only the HTTPRoute {NAMESPACE}/{ROUTE}")),
        };
        let (resolved, resolved_reason, resolved_message) = match missing.is_empty() {
            true => ("True", "ResolvedRefs", "every backendRef is a Service".to_string()),
            false => ("False", "BackendNotFound", format!("no Service {}", missing.join(", "))),
        };
        let generation = route["metadata"]["generation"].as_i64().unwrap_or(1);
        let old = &route["status"]["parents"][0];
        let same = |i: usize, status: &str, reason: &str| {
            let c = &old["conditions"][i];
            c["status"] == status && c["reason"] == reason && c["observedGeneration"] == generation
        };
        if old["controllerName"] == CONTROLLER && same(0, accepted, reason) && same(1, resolved, resolved_reason) {
            return Ok(());
        }
        let parent_ref = route["spec"]["parentRefs"][0].clone();
        let parent_ref = if parent_ref.is_object() { parent_ref } else { json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": ROUTE}) };
        let now = crate::controllers::now();
        let condition = |t: &str, status: &str, reason: &str, message: &str| json!({"type": t, "status": status, "reason": reason, "message": message, "observedGeneration": generation, "lastTransitionTime": now});
        let mut updated = route.clone();
        updated["status"] = json!({"parents": [{
            "parentRef": parent_ref,
            "controllerName": CONTROLLER,
            "conditions": [
                condition("Accepted", accepted, reason, &message),
                condition("ResolvedRefs", resolved, resolved_reason, &resolved_message),
            ],
        }]});
        store.update_status(updated).map_err(|e| anyhow::anyhow!("recording the HTTPRoute's status: {e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(weights: &[u64], picks: usize) -> Vec<usize> {
        let set: Vec<(String, u64)> = weights.iter().enumerate().map(|(i, w)| (format!("b{i}"), *w)).collect();
        let mut picker = Picker::default();
        let mut counts = vec![0; weights.len()];
        for _ in 0..picks {
            counts[picker.pick(&set).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn weighted_round_robin_is_exact() {
        assert_eq!(shares(&[50, 50], 200), vec![100, 100]);
        assert_eq!(shares(&[1, 3], 400), vec![100, 300]);
        assert_eq!(shares(&[100], 7), vec![7]);
        assert_eq!(shares(&[900_000, 100_000], 1_000_000), vec![900_000, 100_000]);
        assert_eq!(Picker::default().pick(&[]), None);
    }

    #[test]
    fn weighted_round_robin_interleaves() {
        let set = vec![("a".to_string(), 1), ("b".to_string(), 1)];
        let mut picker = Picker::default();
        let order: Vec<usize> = (0..4).filter_map(|_| picker.pick(&set)).collect();
        assert_eq!(order, vec![0, 1, 0, 1], "not bursts");
    }

    #[test]
    fn the_address_is_on_the_labs_subnet() {
        assert_eq!(address(143).to_string(), "127.143.3.1:8080");
    }
}
