//! The HTTP side: routing of the Kubernetes REST paths, authentication,
//! content negotiation (JSON, Table, PartialObjectMetadata); each verb's
//! handler is in its own file (`read`, `write`, `delete`, `subresource`).

mod delete;
mod read;
mod subresource;
mod write;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

use super::discovery;
use super::error::ApiError;
use super::exec::ExecHandler;
use super::patch;
use super::protobuf;
use super::resources::{self, Resource};
use super::store::{Part, Store};
use super::table::{self, Include};
use super::tls;

const MAX_BODY: usize = 32 * 1024 * 1024;

#[derive(Clone)]
struct App {
    store: Store,
    token: Arc<[u8]>,
    exec: Arc<dyn ExecHandler>,
    stop: watch::Receiver<bool>,
    addr: SocketAddr,
}

/// Serves the Kubernetes API for `store` on `listener` until `shutdown`
/// completes; then open watches and exec sessions are ended and the call
/// returns within a few seconds. Every request must carry
/// `Authorization: Bearer <token>`.
///
/// The port speaks HTTPS (kubectl sends a token only over TLS) with a
/// certificate signed by the store's CA ([`Store::ca_pem`]), and plain HTTP
/// too: the first byte of each connection tells which.
pub async fn serve(
    store: Store,
    listener: tokio::net::TcpListener,
    token: String,
    exec: Arc<dyn ExecHandler>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (listener, addr) = with_tls(&store, listener)?;
    serve_on(store, listener, addr, token, exec, shutdown).await
}

/// Puts TLS on `listener` and registers the CA for its URL, so that a
/// kubeconfig written right after this returns trusts this server (not an
/// earlier one that had the same port).
fn with_tls(store: &Store, listener: tokio::net::TcpListener) -> std::io::Result<(tls::LabListener, SocketAddr)> {
    let addr = listener.local_addr()?;
    let (ca_pem, tls_config) = tls::server_config(&store.dir(), addr.ip())?;
    tls::register_ca(&format!("https://{addr}"), &ca_pem);
    if addr.ip().is_loopback() {
        tls::register_ca(&format!("https://localhost:{}", addr.port()), &ca_pem);
    }
    Ok((tls::LabListener::new(listener, tls_config)?, addr))
}

async fn serve_on(
    store: Store,
    listener: tls::LabListener,
    addr: SocketAddr,
    token: String,
    exec: Arc<dyn ExecHandler>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let app = App { store, token: Arc::from(token.into_bytes()), exec, stop: stop_rx.clone(), addr };
    let router = Router::new().fallback(handle).with_state(app);
    let mut graceful = stop_rx.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = graceful.wait_for(|s| *s).await;
    });
    let mut task = tokio::spawn(async move { server.await });
    tokio::select! {
        r = &mut task => return r.map_err(std::io::Error::other)?,
        _ = shutdown => {}
    }
    let _ = stop_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(3), &mut task).await {
        Ok(r) => r.map_err(std::io::Error::other)?,
        Err(_) => {
            task.abort();
            Ok(())
        }
    }
}

/// A running API server (see [`serve`]), stopped by [`ApiServer::stop`] or
/// when dropped.
pub struct ApiServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl ApiServer {
    /// Starts serving `store` on `listener` in a background task.
    pub fn start(store: Store, listener: tokio::net::TcpListener, token: String, exec: Arc<dyn ExecHandler>) -> std::io::Result<ApiServer> {
        // reqwest 0.13 may be built with rustls and no provider of its own (the runner's OCI client asks for
        // that feature, and features unify): every client in this process then needs the process default.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (listener, addr) = with_tls(&store, listener)?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_on(store, listener, addr, token, exec, async move {
            let _ = rx.await;
        }));
        Ok(ApiServer { addr, stop: Some(tx), task: Some(task) })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`, for a kubeconfig.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Stops serving and waits (a few seconds at most) until it has stopped.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(t) => t.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A kubeconfig (YAML) with one cluster, user and context, all named
/// `runner-lab`, using `token` as a bearer token.
///
/// kubectl never sends a token over plain HTTP, so a loopback `http://` URL
/// is written as `https://` (the lab's port speaks both). For the URL of a
/// server already started in this process the kubeconfig embeds that
/// server's CA (`certificate-authority-data`); otherwise it sets
/// `insecure-skip-tls-verify`. To verify the server without having started
/// it yet, use [`kubeconfig_with_ca`] with [`Store::ca_pem`].
pub fn kubeconfig(server_url: &str, token: &str, namespace: &str) -> String {
    let url = https_for_loopback(server_url);
    let ca = tls::ca_for(&url);
    kubeconfig_with_ca(&url, token, namespace, ca.as_deref())
}

/// `http://127.x.y.z:PORT` (or `localhost`) as `https://...`: the lab's port
/// speaks both, and kubectl sends a token only over HTTPS.
fn https_for_loopback(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split([':', '/']).next().unwrap_or_default();
        if host == "localhost" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback()) {
            return format!("https://{rest}");
        }
    }
    url.to_string()
}

/// A kubeconfig like [`kubeconfig`]'s for exactly `server_url`, trusting the
/// given CA certificate (PEM); with `None`, an `https://` URL is not verified.
pub fn kubeconfig_with_ca(server_url: &str, token: &str, namespace: &str, ca_pem: Option<&str>) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let trust = match ca_pem {
        Some(pem) => format!("\n    certificate-authority-data: {}", base64::engine::general_purpose::STANDARD.encode(pem.as_bytes())),
        None if server_url.starts_with("https://") => "\n    insecure-skip-tls-verify: true".to_string(),
        None => String::new(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: runner-lab\n  cluster:\n    server: {}{trust}\nusers:\n- name: runner-lab\n  user:\n    token: {}\ncontexts:\n- name: runner-lab\n  context:\n    cluster: runner-lab\n    user: runner-lab\n    namespace: {}\ncurrent-context: runner-lab\npreferences: {{}}\n",
        q(server_url),
        q(token),
        q(namespace)
    )
}

pub(crate) fn json_response(code: u16, body: &Value) -> Response {
    let mut resp = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub(crate) fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.to_status())
}

fn authorized(headers: &HeaderMap, token: &[u8]) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes) else {
        return false;
    };
    let Some(given) = value.strip_prefix(b"Bearer ").or_else(|| value.strip_prefix(b"bearer ")) else {
        return false;
    };
    constant_time_eq(given, token)
}

/// Compares without an early exit (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn not_found() -> ApiError {
    ApiError::new(404, "NotFound", "the server could not find the requested resource").with_details(json!({}))
}

/// A parsed resource path.
struct Target {
    res: &'static Resource,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    watch: bool,
}

fn parse_target(group: &str, version: &str, segs: &[&str]) -> Option<Target> {
    let mut segs = segs;
    let mut watch = false;
    if segs.first() == Some(&"watch") {
        watch = true;
        segs = &segs[1..];
    }
    let (namespace, rest) = if segs.len() >= 3 && segs[0] == "namespaces" {
        match resources::by_plural(group, version, segs[2]) {
            Some(r) if r.namespaced => (Some(segs[1].to_string()), &segs[2..]),
            _ => (None, segs),
        }
    } else {
        (None, segs)
    };
    let res = resources::by_plural(group, version, rest.first()?)?;
    if res.namespaced != namespace.is_some() && !(res.namespaced && rest.len() == 1) {
        return None;
    }
    if !res.namespaced && namespace.is_some() {
        return None;
    }
    let name = rest.get(1).map(|s| s.to_string());
    let sub = rest.get(2).map(|s| s.to_string());
    if rest.len() > 3 {
        return None;
    }
    if let Some(s) = &sub
        && !res.subresources.iter().any(|x| x.name == s)
    {
        return None;
    }
    Some(Target { res, namespace, name, sub, watch })
}

struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1") | Some("True"))
    }
    fn dry_run(&self) -> bool {
        self.0.iter().any(|(k, v)| k == "dryRun" && !v.is_empty())
    }
}

async fn handle(State(app): State<App>, req: Request) -> Response {
    if !authorized(req.headers(), &app.token) {
        return error_response(&ApiError::unauthorized());
    }
    let path = req.uri().path().trim_end_matches('/').to_string();
    let query = Query(form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()).into_owned().collect());
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().clone();
    let simple = |v: Option<Value>| match v {
        Some(v) if method == Method::GET => json_response(200, &v),
        Some(_) => error_response(&ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource ({method})"))),
        None => error_response(&not_found()),
    };
    match segs.as_slice() {
        ["version"] => simple(Some(discovery::version(app.store.server_version().as_deref()))),
        ["healthz"] | ["livez"] | ["readyz"] => {
            let mut r = Response::new(Body::from("ok"));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        }
        ["api"] => simple(Some(discovery::api_versions(&app.addr.to_string()))),
        ["apis"] => simple(Some(discovery::api_group_list())),
        ["api", "v1"] => simple(discovery::resource_list("", "v1")),
        ["apis", g] => simple(discovery::api_group(g)),
        ["apis", g, v] => simple(discovery::resource_list(g, v)),
        ["openapi", "v3"] => simple(Some(discovery::openapi_v3_root())),
        ["openapi", "v3", "api", "v1"] => simple(discovery::openapi_v3_group_version("", "v1")),
        ["openapi", "v3", "apis", g, v] => simple(discovery::openapi_v3_group_version(g, v)),
        ["api", "v1", rest @ ..] => match parse_target("", "v1", rest) {
            Some(t) => resource(app, req, t, query).await,
            None => error_response(&not_found()),
        },
        ["apis", g, v, rest @ ..] => match parse_target(g, v, rest) {
            Some(t) => resource(app, req, t, query).await,
            None => error_response(&not_found()),
        },
        _ => error_response(&not_found()),
    }
}

/// What representation the client asked for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repr {
    Json,
    Table,
    Partial,
}

/// The representation to answer in: the first alternative of `Accept` the
/// lab serves wins, as the real server negotiates. The lab answers JSON
/// only, so a protobuf alternative is passed over (as the real server does
/// for kinds without protobuf, custom resources): kubectl's typed clients
/// ask for `application/vnd.kubernetes.protobuf,application/json` and read
/// the JSON. An `Accept` with no alternative served gets 406, as upstream.
fn repr(headers: &HeaderMap) -> Result<Repr, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if accept.trim().is_empty() {
        return Ok(Repr::Json);
    }
    for alt in accept.split(',') {
        let alt = alt.trim();
        let json = alt.starts_with("application/json") || alt.starts_with("*/*") || alt.starts_with("application/*");
        if !json {
            continue;
        }
        if alt.contains("as=Table") {
            return Ok(Repr::Table);
        }
        if alt.contains("as=PartialObjectMetadata") {
            return Ok(Repr::Partial);
        }
        return Ok(Repr::Json);
    }
    Err(ApiError::new(406, "NotAcceptable", "only the following media types are accepted: application/json, application/json;stream=watch"))
}

async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|e| ApiError::new(413, "RequestEntityTooLarge", format!("the request body could not be read: {e}")))
}

fn content_type(headers: &HeaderMap) -> String {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json").to_string()
}

fn parse_object_body(ct: &str, body: &[u8]) -> Result<Value, ApiError> {
    let ct = ct.split(';').next().unwrap_or_default().trim();
    match ct {
        "application/json" | "" | "*/*" => {
            serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the object provided is unrecognized (must be of type JSON): {e}")))
        }
        "application/yaml" | "application/x-yaml" | "text/yaml" => patch::parse_yaml_or_json(body),
        protobuf::MEDIA_TYPE => protobuf::decode(body),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

async fn resource(app: App, req: Request, t: Target, query: Query) -> Response {
    match resource_inner(app, req, t, query).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

/// One object in the representation asked for.
fn render(res: &Resource, obj: &Value, repr: Repr, include: Include) -> Value {
    match repr {
        Repr::Json => obj.clone(),
        Repr::Partial => table::partial_metadata(obj),
        Repr::Table => {
            let rv = obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""));
            table::table(res, &[obj], include, json!({"resourceVersion": rv}))
        }
    }
}

/// One call on a resource path: what every verb's handler reads.
struct Call {
    app: App,
    target: Target,
    query: Query,
    repr: Repr,
}

impl Call {
    fn store(&self) -> &Store {
        &self.app.store
    }

    fn res(&self) -> &'static Resource {
        self.target.res
    }

    /// The namespace of the path (empty for cluster-scoped kinds and all-namespace lists).
    fn ns(&self) -> &str {
        self.target.namespace.as_deref().unwrap_or_default()
    }

    /// The namespace a write goes to: the path's, for namespaced kinds only.
    fn ns_for_write(&self) -> Option<&str> {
        if self.target.res.namespaced { self.target.namespace.as_deref() } else { None }
    }

    fn dry_run(&self) -> bool {
        self.query.dry_run()
    }

    fn render(&self, obj: &Value) -> Value {
        render(self.target.res, obj, self.repr, Include::parse(self.query.get("includeObject")))
    }
}

/// Routes a resource call to its verb's handler: `read` (get, list, watch),
/// `write` (create, update, patch), `delete`, `subresource` (scale,
/// eviction, exec, finalize; `status` shares the main verbs).
async fn resource_inner(app: App, req: Request, target: Target, query: Query) -> Result<Response, ApiError> {
    let method = req.method().clone();
    let not_allowed = || {
        ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource ({method})"))
            .with_details(json!({"kind": target.res.plural, "group": target.res.group}))
    };
    let watching = target.watch || (target.name.is_none() && query.flag("watch"));
    let (name, sub) = (target.name.clone(), target.sub.clone());
    // A stream upgrade (exec, portforward) answers no object: its Accept is not negotiated.
    let repr = if matches!(sub.as_deref(), Some("exec" | "portforward")) { Repr::Json } else { repr(req.headers())? };
    let call = Call { repr, app, target, query };
    match (name.as_deref(), sub.as_deref(), req.method().clone()) {
        (name, None, Method::GET) if watching => read::watch(&call, name),
        (_, None, _) if watching => Err(not_allowed()),
        (None, None, Method::GET) => read::list(&call),
        (None, None, Method::POST) => write::create(&call, req).await,
        (None, None, Method::DELETE) => delete::collection(&call, req).await,
        (Some(name), None | Some("status"), Method::GET) => read::get(&call, name),
        (Some(name), None, Method::PUT) => write::update(&call, req, name, Part::Main).await,
        (Some(name), Some("status"), Method::PUT) => write::update(&call, req, name, Part::Status).await,
        (Some(name), None, Method::PATCH) => write::patch(&call, req, name, Part::Main).await,
        (Some(name), Some("status"), Method::PATCH) => write::patch(&call, req, name, Part::Status).await,
        (Some(name), None, Method::DELETE) => delete::one(&call, req, name).await,
        (Some(name), Some("scale"), Method::GET) => subresource::scale_get(&call, name),
        (Some(name), Some("scale"), Method::PUT) => subresource::scale_put(&call, req, name).await,
        (Some(name), Some("scale"), Method::PATCH) => subresource::scale_patch(&call, req, name).await,
        (Some(name), Some("eviction"), Method::POST) => subresource::evict(&call, req, name).await,
        (Some(name), Some("exec"), Method::GET | Method::POST) => subresource::exec(&call, req, name).await,
        (Some(name), Some("portforward"), Method::GET | Method::POST) => subresource::portforward(&call, req, name).await,
        (Some(name), Some("finalize"), Method::PUT) => subresource::finalize(&call, req, name).await,
        (None, Some(_), _) => Err(not_found()),
        _ => Err(not_allowed()),
    }
}

/// Completes when the server is shutting down.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
