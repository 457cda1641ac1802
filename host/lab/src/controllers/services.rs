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

use super::reconciler::{Kind, Reconciler, Related, key};
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

/// One proxy per Service, in step with the Store.
pub struct Proxies {
    addresses: Addresses,
    proxies: BTreeMap<String, Proxy>,
}

impl Proxies {
    /// No proxy yet; each Service gets its address from `addresses`.
    pub fn new(addresses: Addresses) -> Self {
        Proxies { addresses, proxies: BTreeMap::new() }
    }
}

impl Reconciler for Proxies {
    const KIND: Kind = ("v1", "Service");
    /// A Pod turning Ready (or relabelled) may join or leave a Service's backends.
    const RELATED: &'static [(Kind, Related)] = &[(("v1", "Pod"), Related::Namespace)];

    fn name(&self) -> &'static str {
        "services"
    }

    async fn reconcile(&mut self, store: &Store, service: &Value) -> anyhow::Result<()> {
        let key = key(service);
        if terminating(service) {
            self.proxies.remove(&key);
            return Ok(());
        }
        let ip = self.addresses.of(Range::Services, &key).ok_or_else(|| anyhow::anyhow!("no free Service address left"))?;
        let pods = store.list("v1", "Pod", Some(namespace(service)), None)?;
        let ports: Vec<(u16, Value)> = service["spec"]["ports"]
            .as_array()
            .map(|ports| ports.iter().filter_map(|p| Some((p["port"].as_u64()? as u16, p["targetPort"].clone()))).collect())
            .unwrap_or_default();
        let selector = &service["spec"]["selector"];
        let mut backends: Vec<Backend> = pods
            .iter()
            .filter(|p| selector_matches(selector, p) && pod_ready(p) && !terminating(p))
            .filter_map(|p| Some(Backend { pod: name(p).to_string(), ip: p["status"]["podIP"].as_str()?.parse().ok()? }))
            .collect();
        backends.sort_by(|a, b| a.pod.cmp(&b.pod));
        let stale = self.proxies.get(&key).is_some_and(|p| p.ip != ip || p.ports != ports);
        if stale {
            self.proxies.remove(&key);
        }
        match self.proxies.get(&key) {
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
                self.proxies.insert(key, Proxy { ip, ports, backends: sender, listeners });
            }
        }
        record_cluster_ip(store, service, ip)
    }

    fn forget(&mut self, key: &str) {
        self.proxies.remove(key);
    }
}

/// Writes the Service's address to `spec.clusterIP` unless it is there already.
fn record_cluster_ip(store: &Store, service: &Value, ip: Ipv4Addr) -> anyhow::Result<()> {
    if service["spec"]["clusterIP"].as_str() != Some(&ip.to_string()) {
        let mut updated = service.clone();
        updated["spec"]["clusterIP"] = json!(ip.to_string());
        updated["spec"]["clusterIPs"] = json!([ip.to_string()]);
        store.update(updated).map_err(|e| anyhow::anyhow!("recording clusterIP: {e}"))?;
    }
    Ok(())
}

/// A numeric targetPort, a named one looked up in the selected Pods'
/// containers, or the Service port itself.
pub(crate) fn resolve_target(target: &Value, port: u16, pods: &[Value], service: &Value) -> u16 {
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
