//! Services: a TCP proxy per Service port on the Service's own loopback
//! address, forwarding each new connection to a Ready Pod that matches the
//! selector. When the selection changes (a selector patch, a backend no
//! longer Ready), connections to backends no longer selected are closed, as
//! kube-proxy's conntrack cleanup does, so clients reconnect to the new one.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use serde_json::{Value, json};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{name, namespace, pod_ready, selector_matches, terminating};
use crate::apiserver::Store;
use crate::net::{Addresses, Range};

/// A backend a Service forwards to.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Backend {
    pod: String,
    ip: Ipv4Addr,
}

struct Proxy {
    ip: Ipv4Addr,
    ports: Vec<(u16, Value)>,
    backends: watch::Sender<Vec<Backend>>,
    listeners: Vec<JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.listeners.iter().for_each(JoinHandle::abort);
    }
}

/// Keep one proxy per Service in step with the Store, until `stopped`.
pub async fn run(store: Store, addresses: Addresses, stopped: watch::Receiver<bool>) {
    let mut proxies: BTreeMap<String, Proxy> = BTreeMap::new();
    let mut events = store.subscribe();
    loop {
        reconcile(&store, &addresses, &mut proxies).await;
        if !super::next_change(&mut events, &stopped).await {
            return;
        }
    }
}

async fn reconcile(store: &Store, addresses: &Addresses, proxies: &mut BTreeMap<String, Proxy>) {
    let Ok(services) = store.list("v1", "Service", None, None) else { return };
    let Ok(pods) = store.list("v1", "Pod", None, None) else { return };
    let mut seen = Vec::new();
    for service in services.iter().filter(|s| !terminating(s)) {
        let key = format!("{}/{}", namespace(service), name(service));
        seen.push(key.clone());
        let Some(ip) = cluster_ip(store, addresses, service) else { continue };
        let ports: Vec<(u16, Value)> = service["spec"]["ports"]
            .as_array()
            .map(|ports| ports.iter().filter_map(|p| Some((p["port"].as_u64()? as u16, p["targetPort"].clone()))).collect())
            .unwrap_or_default();
        let selector = &service["spec"]["selector"];
        let mut backends: Vec<Backend> = pods
            .iter()
            .filter(|p| namespace(p) == namespace(service) && selector_matches(selector, p) && pod_ready(p) && !terminating(p))
            .filter_map(|p| Some(Backend { pod: name(p).to_string(), ip: p["status"]["podIP"].as_str()?.parse().ok()? }))
            .collect();
        backends.sort_by(|a, b| a.pod.cmp(&b.pod));
        let stale = proxies.get(&key).is_some_and(|p| p.ip != ip || p.ports != ports);
        if stale {
            proxies.remove(&key);
        }
        match proxies.get(&key) {
            Some(proxy) => {
                proxy.backends.send_if_modified(|current| {
                    let changed = *current != backends;
                    if changed {
                        tracing::info!("service {key}: backends now {:?}", backends.iter().map(|b| &b.pod).collect::<Vec<_>>());
                        *current = backends.clone();
                    }
                    changed
                });
            }
            None => {
                let (sender, _) = watch::channel(backends);
                let mut listeners = Vec::new();
                for (port, target) in &ports {
                    match TcpListener::bind(SocketAddr::from((ip, *port))).await {
                        Ok(listener) => {
                            listeners.push(tokio::spawn(accept(listener, key.clone(), resolve_target(target, *port, &pods, service), sender.clone())))
                        }
                        Err(e) => tracing::warn!("service {key}: cannot listen on {ip}:{port}: {e}"),
                    }
                }
                proxies.insert(key, Proxy { ip, ports, backends: sender, listeners });
            }
        }
    }
    proxies.retain(|key, _| seen.contains(key));
}

/// The Service's address: its `spec.clusterIP` if the lab assigned one, else a new one written back.
fn cluster_ip(store: &Store, addresses: &Addresses, service: &Value) -> Option<Ipv4Addr> {
    let assigned = addresses.of(Range::Services, &format!("{}/{}", namespace(service), name(service)))?;
    if service["spec"]["clusterIP"].as_str() != Some(&assigned.to_string()) {
        let mut updated = service.clone();
        updated["spec"]["clusterIP"] = json!(assigned.to_string());
        updated["spec"]["clusterIPs"] = json!([assigned.to_string()]);
        if let Err(e) = store.update(updated) {
            tracing::debug!("service {}: recording clusterIP: {e}", name(service));
        }
    }
    Some(assigned)
}

/// A numeric targetPort, a named one looked up in the selected Pods'
/// containers, or the Service port itself.
fn resolve_target(target: &Value, port: u16, pods: &[Value], service: &Value) -> u16 {
    if let Some(n) = target.as_u64() {
        return n as u16;
    }
    if let Some(port_name) = target.as_str() {
        let selector = &service["spec"]["selector"];
        for pod in pods.iter().filter(|p| selector_matches(selector, p)) {
            for container in pod["spec"]["containers"].as_array().into_iter().flatten() {
                for p in container["ports"].as_array().into_iter().flatten() {
                    if p["name"] == port_name {
                        return p["containerPort"].as_u64().unwrap_or(port as u64) as u16;
                    }
                }
            }
        }
    }
    port
}

async fn accept(listener: TcpListener, service: String, target_port: u16, backends: watch::Sender<Vec<Backend>>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let mut watcher = backends.subscribe();
        let Some(backend) = watcher.borrow_and_update().first().cloned() else {
            tracing::debug!("service {service}: no Ready backend; refusing a connection");
            continue;
        };
        let service = service.clone();
        tokio::spawn(async move {
            let Ok(upstream) = TcpStream::connect((backend.ip, target_port)).await else { return };
            let (mut client, mut upstream) = (client, upstream);
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            tokio::select! {
                _ = copy_bidirectional(&mut client, &mut upstream) => {}
                _ = async {
                    // Close the connection once its backend is no longer selected.
                    while watcher.changed().await.is_ok() {
                        if !watcher.borrow().contains(&backend) {
                            tracing::debug!("service {service}: closing a connection to {}", backend.pod);
                            return;
                        }
                    }
                } => {}
            }
        });
    }
}
