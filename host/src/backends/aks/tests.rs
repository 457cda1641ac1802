//! The backend against a small ARM server on loopback that answers as the
//! stable spec documents (status codes, headers, bodies), one script per
//! test: polling, throttling, AKS's errors, timeouts, what a PUT sends.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode as HttpStatus, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::*;

/// What the server was asked: method, path, query, body, Authorization.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: String,
    body: Value,
    auth: String,
}

type Script = dyn Fn(&Seen, usize, &str) -> (u16, Vec<(&'static str, String)>, Value) + Send + Sync;

struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    _task: tokio::task::JoinHandle<()>,
}

/// Serve `script` on 127.0.0.1; it gets each request, its number, and the server's base URL.
async fn serve(script: impl Fn(&Seen, usize, &str) -> (u16, Vec<(&'static str, String)>, Value) + Send + Sync + 'static) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let script: Arc<Script> = Arc::new(script);
    let count = Arc::new(AtomicUsize::new(0));
    let (seen2, base2) = (seen.clone(), base.clone());
    let handler = move |method: HttpMethod, uri: Uri, headers: HeaderMap, body: Bytes| {
        let (seen, script, count, base) = (seen2.clone(), script.clone(), count.clone(), base2.clone());
        async move {
            let request = Seen {
                method: method.to_string(),
                path: uri.path().to_string(),
                query: uri.query().unwrap_or_default().to_string(),
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                auth: headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string(),
            };
            seen.lock().unwrap().push(request.clone());
            let n = count.fetch_add(1, Ordering::SeqCst);
            let (status, extra, body) = script(&request, n, &base);
            let mut response = if body.is_null() { ().into_response() } else { axum::Json(body).into_response() };
            *response.status_mut() = HttpStatus::from_u16(status).unwrap();
            for (name, value) in extra {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
    };
    let app = axum::Router::new().fallback(handler);
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server { base, seen, _task: task }
}

const SUB: &str = "00000000-1111-2222-3333-444444444444";
const CLUSTER: &str = "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1";

fn backend(server: &Server) -> AksBackend {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "lab-token-123\n").unwrap();
    let config = AksConfig {
        subscription: SUB.into(),
        resource_group: "rg".into(),
        name: "aks1".into(),
        endpoint: server.base.clone(),
        token_file: Some(token),
        ca_file: None,
    };
    AksBackend::connect(&config).unwrap()
}

fn pool_doc(version: &str, state: &str) -> Value {
    json!({
        "id": format!("{CLUSTER}/agentPools/nodepool1"), "name": "nodepool1",
        "properties": {
            "count": 3, "vmSize": "Standard_D4s_v5", "mode": "System", "osType": "Linux", "type": "VirtualMachineScaleSets",
            "orchestratorVersion": version, "currentOrchestratorVersion": version, "provisioningState": state,
            "nodeImageVersion": "AKSUbuntu-2204gen2containerd-202410.15.0",
            "upgradeSettings": {"maxSurge": "1", "drainTimeoutInMinutes": 5}
        }
    })
}

fn no_progress(_: &str) {}

fn error(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

#[tokio::test]
async fn a_pool_upgrade_sends_the_pool_back_and_follows_the_async_operation() {
    let server = serve(|req, _, base| {
        let op_url = format!("{base}/subscriptions/{SUB}/providers/Microsoft.ContainerService/locations/eastus/operations/op-42?api-version=2025-08-01");
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", p) if p.ends_with("/agentPools/nodepool1") => (200, vec![], pool_doc("1.29.9", "Succeeded")),
            ("PUT", p) if p.ends_with("/agentPools/nodepool1") => {
                (200, vec![("azure-asyncoperation", op_url), ("retry-after", "0".into())], pool_doc("1.30.5", "Upgrading"))
            }
            ("GET", p) if p.ends_with("/operations/op-42") => {
                (200, vec![("retry-after", "0".into())], json!({"name": "op-42", "status": "InProgress", "percentComplete": 40.0}))
            }
            _ => (404, vec![], error("NotFound", "no such route")),
        }
    })
    .await;
    // The operation never ends here: the call times out naming it.
    let seen = server.seen.clone();
    let aks = backend(&server);
    let reported = Arc::new(Mutex::new(Vec::<String>::new()));
    let reported2 = reported.clone();
    let progress = move |state: &str| reported2.lock().unwrap().push(state.to_string());
    let error = aks.upgrade_node_pool("nodepool1", "1.30.5", 600, &progress).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Timeout, "{error}");
    assert!(error.message.contains("operation op-42 still InProgress, 40%"), "{}", error.message);
    assert!(reported.lock().unwrap().iter().any(|r| r.contains("InProgress, 40% (operation op-42)")), "{:?}", reported.lock().unwrap());
    let seen = seen.lock().unwrap();
    let put = seen.iter().find(|r| r.method == "PUT").unwrap();
    assert_eq!(put.body["properties"]["orchestratorVersion"], "1.30.5");
    assert_eq!(put.body["properties"]["vmSize"], "Standard_D4s_v5", "ARM's PUT replaces: the rest of the pool goes back as read");
    assert_eq!(put.body["properties"]["upgradeSettings"]["drainTimeoutInMinutes"], 5);
    assert!(
        put.body["properties"].get("provisioningState").is_none() && put.body["properties"].get("currentOrchestratorVersion").is_none(),
        "read-only fields are not sent"
    );
    assert!(seen.iter().all(|r| r.auth == "Bearer lab-token-123"), "every request carries the token");
    assert!(seen.iter().all(|r| r.query.contains("api-version=2025-08-01")), "{seen:?}");
    assert!(seen.iter().filter(|r| r.path.ends_with("/operations/op-42")).count() >= 2, "polled until the timeout");
}

#[tokio::test]
async fn a_finished_operation_answers_the_pool_and_a_failed_one_keeps_aks_words() {
    let fail = Arc::new(Mutex::new(false));
    let fail2 = fail.clone();
    let polls = Arc::new(AtomicUsize::new(0));
    let polls2 = polls.clone();
    let server = serve(move |req, _, base| {
        let op_url = format!("{base}/subscriptions/{SUB}/providers/Microsoft.ContainerService/locations/eastus/operations/op-7");
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", p) if p.ends_with("/agentPools/nodepool1") => (200, vec![], pool_doc("1.29.9", "Succeeded")),
            ("POST", p) if p.ends_with("/agentPools/nodepool1/upgradeNodeImageVersion") => {
                (202, vec![("azure-asyncoperation", op_url.clone()), ("location", format!("{op_url}/result")), ("retry-after", "0".into())], Value::Null)
            }
            ("GET", p) if p.ends_with("/operations/op-7") => {
                let n = polls2.fetch_add(1, Ordering::SeqCst);
                if n < 2 {
                    (200, vec![("retry-after", "0".into())], json!({"name": "op-7", "status": "InProgress"}))
                } else if *fail2.lock().unwrap() {
                    (200, vec![], json!({"name": "op-7", "status": "Failed", "error": {"code": "UpgradeFailed", "message": "Drain of aks-nodepool1-12345678-vmss000001 did not complete: Cannot evict pod as it would violate the pod's disruption budget postgres-pdb"}}))
                } else {
                    (200, vec![], json!({"name": "op-7", "status": "Succeeded", "startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T00:01:00Z"}))
                }
            }
            _ => (404, vec![], error("NotFound", "no such route")),
        }
    })
    .await;
    let aks = backend(&server);
    let pool = aks.upgrade_node_image("nodepool1", 20_000, &no_progress).await.unwrap();
    assert_eq!((pool.name.as_str(), pool.count), ("nodepool1", 3));
    assert_eq!(polls.load(Ordering::SeqCst), 3, "polled until Succeeded, Azure-AsyncOperation preferred over Location");
    assert_eq!(aks.operation("op-7").await.unwrap().status, "Succeeded", "the operation it started can be looked up by id");
    *fail.lock().unwrap() = true;
    polls.store(0, Ordering::SeqCst);
    let error = aks.upgrade_node_image("nodepool1", 20_000, &no_progress).await.unwrap_err();
    assert!(error.message.starts_with("UpgradeFailed: Drain of aks-nodepool1-12345678-vmss000001"), "{}", error.message);
    assert!(error.message.contains("postgres-pdb") && error.message.ends_with("(operation op-7)"), "{}", error.message);
}

#[tokio::test]
async fn statuses_map_to_codes_in_aks_words() {
    let server = serve(|req, _, _| match req.path.rsplit('/').next().unwrap_or_default() {
        "busy" => (409, vec![], error("OperationNotAllowed", "Operation is not allowed because there's an in progress upgrade operation")),
        "blocked" => (400, vec![], error("UpgradeBlockedOnDeprecatedAPIUsage", "Upgrade is blocked due to deprecated API usage")),
        "secret" => (403, vec![], error("AuthorizationFailed", "The client does not have authorization to perform action")),
        "nologin" => (401, vec![], error("InvalidAuthenticationToken", "The access token is invalid.")),
        _ => (404, vec![], error("NotFound", "The agent pool was not found.")),
    })
    .await;
    let aks = backend(&server);
    let expect = [
        ("busy", ErrorCode::Conflict, "OperationNotAllowed: "),
        ("blocked", ErrorCode::Invalid, "UpgradeBlockedOnDeprecatedAPIUsage: "),
        ("secret", ErrorCode::Denied, "AuthorizationFailed: "),
        ("nologin", ErrorCode::Denied, "InvalidAuthenticationToken: "),
        ("gone", ErrorCode::NotFound, "NotFound: "),
    ];
    for (pool, code, start) in expect {
        let error = aks.node_pool(pool).await.unwrap_err();
        assert_eq!(error.code, code, "{pool}: {error}");
        assert!(error.message.starts_with(start), "{pool}: {}", error.message);
        assert!(!error.message.contains("lab-token-123"), "the token never reaches a message");
    }
}

#[tokio::test]
async fn throttling_is_retried_after_retry_after_then_given_up() {
    let server = serve(|req, n, _| {
        if req.path.ends_with("/agentPools") && n < 2 {
            return (429, vec![("retry-after", "1".into())], error("TooManyRequests", "Too many requests, retry after 1 second"));
        }
        if req.path.ends_with("/agentPools") {
            return (200, vec![], json!({"value": [pool_doc("1.29.9", "Succeeded")]}));
        }
        (429, vec![("retry-after", "0".into())], error("TooManyRequests", "Too many requests"))
    })
    .await;
    let aks = backend(&server);
    let started = Instant::now();
    let pools = aks.node_pools().await.unwrap();
    assert_eq!(pools.len(), 1);
    assert!(started.elapsed() >= Duration::from_secs(2), "Retry-After honoured twice: {:?}", started.elapsed());
    let error = aks.node_pool("nodepool1").await.unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    assert!(
        error.message.starts_with("TooManyRequests: ") && error.message.contains(&format!("gave up after {THROTTLE_RETRIES} retries")),
        "{}",
        error.message
    );
    let tries = server.seen.lock().unwrap().iter().filter(|r| r.path.ends_with("/agentPools/nodepool1")).count();
    assert_eq!(tries, THROTTLE_RETRIES as usize + 1, "bounded");
}

#[tokio::test]
async fn location_polling_and_off_origin_urls() {
    let server = serve(|req, _, base| match (req.method.as_str(), req.path.as_str()) {
        ("DELETE", p) if p.ends_with("/agentPools/old") => (202, vec![("location", format!("{base}/results/del-1?api-version=2025-08-01")), ("retry-after", "0".into())], Value::Null),
        ("GET", "/results/del-1") => (204, vec![], Value::Null),
        ("DELETE", p) if p.ends_with("/agentPools/evil") => (202, vec![("azure-asyncoperation", "http://127.0.0.2:1/steal".into())], Value::Null),
        ("GET", p) if p.ends_with(CLUSTER) => (200, vec![], json!({"name": "aks1", "location": "eastus", "properties": {"kubernetesVersion": "1.29.9", "currentKubernetesVersion": "1.29.9", "provisioningState": "Succeeded", "fqdn": "x"}})),
        ("PUT", p) if p.ends_with(CLUSTER) => (200, vec![], json!({"name": "aks1", "properties": {"kubernetesVersion": "1.30.5", "provisioningState": "Succeeded"}})),
        _ => (404, vec![], error("NotFound", "no")),
    })
    .await;
    let aks = backend(&server);
    aks.delete_node_pool("old", 10_000, &no_progress).await.unwrap();
    let error = aks.delete_node_pool("evil", 10_000, &no_progress).await.unwrap_err();
    assert!(error.message.contains("outside") && error.message.contains(&server.base), "{}", error.message);
    assert!(!server.seen.lock().unwrap().iter().any(|r| r.path == "/steal"));
    // A PUT answered with a final state has nothing to follow.
    let op = aks.upgrade_control_plane("1.30.5", 10_000, &no_progress).await.unwrap();
    assert_eq!(op.status, "Succeeded");
    let seen = server.seen.lock().unwrap();
    let put = seen.iter().find(|r| r.method == "PUT").unwrap();
    assert_eq!((put.body["location"].as_str(), put.body["properties"]["kubernetesVersion"].as_str()), (Some("eastus"), Some("1.30.5")));
    assert!(put.body["properties"].get("fqdn").is_none(), "read-only fields stay out");
}

#[test]
fn bad_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = |token: Option<PathBuf>, ca: Option<PathBuf>| AksConfig {
        subscription: SUB.into(),
        resource_group: "rg".into(),
        name: "aks1".into(),
        endpoint: "https://127.0.0.1:1".into(),
        token_file: token,
        ca_file: ca,
    };
    let message = |c: AksConfig| AksBackend::connect(&c).err().unwrap();
    assert!(message(config(Some(dir.path().join("missing")), None)).contains("token-file"));
    std::fs::write(dir.path().join("empty"), "  \n").unwrap();
    assert!(message(config(Some(dir.path().join("empty")), None)).contains("holds no single token"));
    std::fs::write(dir.path().join("ca.pem"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("t"), "tok").unwrap();
    assert!(message(config(Some(dir.path().join("t")), Some(dir.path().join("ca.pem")))).contains("no PEM certificate"));
}
