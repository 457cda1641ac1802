//! The HTTP side: routing of the Kubernetes REST paths, authentication,
//! content negotiation (JSON, Table, PartialObjectMetadata), watch streams.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use super::discovery;
use super::error::ApiError;
use super::exec::{self, ExecHandler};
use super::patch::{self, PatchType};
use super::resources::{self, Resource};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{DeleteOpts, EventType, HistEntry, Part, Scale, Store};
use super::table::{self, Include};
use super::tls;

const MAX_BODY: usize = 32 * 1024 * 1024;
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

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
    let addr = listener.local_addr()?;
    let (ca_pem, tls_config) = tls::server_config(&store.dir(), addr.ip())?;
    tls::register_ca(&format!("https://{addr}"), &ca_pem);
    if addr.ip().is_loopback() {
        tls::register_ca(&format!("https://localhost:{}", addr.port()), &ca_pem);
    }
    let listener = tls::LabListener::new(listener, tls_config)?;
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
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(store, listener, token, exec, async move {
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
        ["version"] => simple(Some(discovery::version())),
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

fn repr(headers: &HeaderMap) -> Repr {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    // The first acceptable alternative wins, as the real server negotiates.
    for alt in accept.split(',') {
        let alt = alt.trim();
        if alt.contains("as=Table") {
            return Repr::Table;
        }
        if alt.contains("as=PartialObjectMetadata") {
            return Repr::Partial;
        }
        if alt.starts_with("application/json") || alt.starts_with("*/*") || alt.starts_with("application/*") {
            return Repr::Json;
        }
    }
    Repr::Json
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
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

async fn resource(app: App, req: Request, t: Target, query: Query) -> Response {
    match resource_inner(app, req, t, query).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

fn ns_for_write(t: &Target) -> Option<&str> {
    if t.res.namespaced { t.namespace.as_deref() } else { None }
}

fn delete_opts(query: &Query, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let mut opts = DeleteOpts::default();
    if !body.iter().all(u8::is_ascii_whitespace) {
        let b: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the DeleteOptions body could not be decoded: {e}")))?;
        opts.grace_period_seconds = b.get("gracePeriodSeconds").and_then(Value::as_i64);
        opts.precondition_uid = b.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string);
        opts.precondition_rv = b.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_string);
        opts.propagation = b.get("propagationPolicy").and_then(Value::as_str).map(str::to_string);
        if b.get("orphanDependents") == Some(&json!(true)) {
            opts.propagation = Some("Orphan".into());
        }
        opts.dry_run = b.get("dryRun").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    }
    if let Some(g) = query.get("gracePeriodSeconds") {
        opts.grace_period_seconds = Some(g.parse().map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?);
    }
    if let Some(p) = query.get("propagationPolicy") {
        opts.propagation = Some(p.to_string());
    }
    if query.get("orphanDependents") == Some("true") {
        opts.propagation = Some("Orphan".into());
    }
    opts.dry_run |= query.dry_run();
    Ok(opts)
}

fn selectors(res: &Resource, query: &Query, name: Option<&str>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default())?;
    let mut field = query.get("fieldSelector").unwrap_or_default().to_string();
    if let Some(n) = name {
        if !field.is_empty() {
            field.push(',');
        }
        field.push_str(&format!("metadata.name={n}"));
    }
    Ok((labels, FieldSelector::parse(&field, res.fields)?))
}

fn render(res: &Resource, obj: &Value, repr: Repr, query: &Query) -> Value {
    match repr {
        Repr::Json => obj.clone(),
        Repr::Partial => table::partial_metadata(obj),
        Repr::Table => {
            let rv = obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""));
            table::table(res, &[obj], Include::parse(query.get("includeObject")), json!({"resourceVersion": rv}))
        }
    }
}

async fn resource_inner(app: App, req: Request, t: Target, query: Query) -> Result<Response, ApiError> {
    let method = req.method().clone();
    let repr = repr(req.headers());
    let store = app.store.clone();
    let res = t.res;
    let ns_path = t.namespace.clone();
    let ns = ns_path.as_deref();
    let sub = t.sub.as_deref();
    let dry_run = query.dry_run();
    let not_allowed = || {
        ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource ({method})"))
            .with_details(json!({"kind": res.plural, "group": res.group}))
    };
    match (t.name.as_deref(), sub) {
        (None, None) => {
            if t.watch || query.flag("watch") {
                if method != Method::GET {
                    return Err(not_allowed());
                }
                return watch(app, &t, &query, repr, None);
            }
            match method {
                Method::GET => list(&store, res, ns, &query, repr),
                Method::POST => {
                    let ct = content_type(req.headers());
                    let body = read_body(req).await?;
                    let obj = parse_object_body(&ct, &body)?;
                    let created = store.create_res(res, ns_for_write(&t), obj, dry_run)?;
                    Ok(json_response(201, &render(res, &created, repr, &query)))
                }
                Method::DELETE => {
                    let body = read_body(req).await?;
                    let opts = delete_opts(&query, &body)?;
                    let (labels, fields) = selectors(res, &query, None)?;
                    let (items, _) = store.list_res(res, ns, &labels, &fields);
                    let mut deleted = Vec::new();
                    for o in items {
                        let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
                        let ons = o.pointer("/metadata/namespace").and_then(Value::as_str);
                        match store.delete_res(res, ons, name, &opts) {
                            Ok((obj, _)) => deleted.push((*obj).clone()),
                            Err(e) if e.code == 404 => {}
                            Err(e) => return Err(e),
                        }
                    }
                    let list = json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(),
                        "metadata": {"resourceVersion": store.resource_version().to_string()}, "items": deleted});
                    Ok(json_response(200, &list))
                }
                _ => Err(not_allowed()),
            }
        }
        (Some(name), None) => {
            if t.watch {
                if method != Method::GET {
                    return Err(not_allowed());
                }
                return watch(app, &t, &query, repr, Some(name));
            }
            match method {
                Method::GET => {
                    let obj = store.get_res(res, ns.unwrap_or_default(), name).ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
                    Ok(json_response(200, &render(res, &obj, repr, &query)))
                }
                Method::PUT => {
                    let ct = content_type(req.headers());
                    let body = read_body(req).await?;
                    let obj = parse_object_body(&ct, &body)?;
                    let updated = store.update_res(res, ns_for_write(&t), name, obj, Part::Main, dry_run)?;
                    Ok(json_response(200, &render(res, &updated, repr, &query)))
                }
                Method::PATCH => patch_handler(&store, req, &t, name, Part::Main, &query, repr).await,
                Method::DELETE => {
                    let body = read_body(req).await?;
                    let opts = delete_opts(&query, &body)?;
                    let (obj, _) = store.delete_res(res, ns_for_write(&t), name, &opts)?;
                    Ok(json_response(200, &render(res, &obj, repr, &query)))
                }
                _ => Err(not_allowed()),
            }
        }
        (Some(name), Some("status")) => match method {
            Method::GET => {
                let obj = store.get_res(res, ns.unwrap_or_default(), name).ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
                Ok(json_response(200, &render(res, &obj, repr, &query)))
            }
            Method::PUT => {
                let ct = content_type(req.headers());
                let body = read_body(req).await?;
                let obj = parse_object_body(&ct, &body)?;
                let updated = store.update_res(res, ns_for_write(&t), name, obj, Part::Status, dry_run)?;
                Ok(json_response(200, &updated))
            }
            Method::PATCH => patch_handler(&store, req, &t, name, Part::Status, &query, repr).await,
            _ => Err(not_allowed()),
        },
        (Some(name), Some("scale")) => {
            let ns = ns.unwrap_or_default();
            match method {
                Method::GET => Ok(json_response(200, &store.scale_get(res, ns, name)?)),
                Method::PUT => {
                    let ct = content_type(req.headers());
                    let body = read_body(req).await?;
                    let obj = parse_object_body(&ct, &body)?;
                    if let Some(k) = obj.get("kind").and_then(Value::as_str)
                        && k != "Scale"
                    {
                        return Err(ApiError::bad_request(format!("expected a Scale, got {k}")));
                    }
                    Ok(json_response(200, &store.scale_update(res, ns, name, Scale::Put(obj), dry_run)?))
                }
                Method::PATCH => {
                    let ct = content_type(req.headers());
                    let pt = PatchType::from_content_type(&ct).ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
                    let body = read_body(req).await?;
                    Ok(json_response(200, &store.scale_update(res, ns, name, Scale::Patch(pt, body.to_vec()), dry_run)?))
                }
                _ => Err(not_allowed()),
            }
        }
        (Some(name), Some("eviction")) => {
            if method != Method::POST {
                return Err(not_allowed());
            }
            let ct = content_type(req.headers());
            let body = read_body(req).await?;
            let mut eviction = if body.iter().all(u8::is_ascii_whitespace) { json!({}) } else { parse_object_body(&ct, &body)? };
            if dry_run {
                eviction["deleteOptions"]["dryRun"] = json!(["All"]);
            }
            let status = store.evict_res(ns.unwrap_or_default(), name, &eviction)?;
            Ok(json_response(201, &status))
        }
        (Some(name), Some("exec")) => {
            if method != Method::GET && method != Method::POST {
                return Err(not_allowed());
            }
            let pod = store.get_res(res, ns.unwrap_or_default(), name).ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
            let request = exec::parse_request(ns.unwrap_or_default(), (*pod).clone(), &query.0)?;
            Ok(exec::upgrade(req, request, app.exec.clone(), app.stop.clone()).await)
        }
        (Some(_), Some("finalize")) => {
            if method != Method::PUT {
                return Err(not_allowed());
            }
            let ct = content_type(req.headers());
            let body = read_body(req).await?;
            let obj = parse_object_body(&ct, &body)?;
            let name = t.name.clone().unwrap_or_default();
            let updated = store.update_res(res, None, &name, obj, Part::Main, dry_run)?;
            Ok(json_response(200, &updated))
        }
        _ => Err(not_found()),
    }
}

async fn patch_handler(store: &Store, req: Request, t: &Target, name: &str, part: Part, query: &Query, repr: Repr) -> Result<Response, ApiError> {
    let ct = content_type(req.headers());
    let pt = PatchType::from_content_type(&ct).ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
    if pt == PatchType::Apply && query.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::bad_request("PATCH requests with apply content type (application/apply-patch+yaml) require a fieldManager"));
    }
    let existed = store.get_res(t.res, t.namespace.as_deref().unwrap_or_default(), name).is_some();
    let body = read_body(req).await?;
    let obj = store.patch_res(t.res, ns_for_write(t), name, pt, &body, part, query.dry_run())?;
    let code = if existed { 200 } else { 201 };
    Ok(json_response(code, &render(t.res, &obj, repr, query)))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    start: String,
}

fn list(store: &Store, res: &'static Resource, ns: Option<&str>, query: &Query, repr: Repr) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(res, query, None)?;
    let (mut items, rv) = store.list_res(res, ns, &labels, &fields);
    let mut list_rv = rv;
    let key = |o: &Value| {
        format!(
            "{}/{}",
            o.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default(),
            o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
        )
    };
    if let Some(token) = query.get("continue").filter(|s| !s.is_empty()) {
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| serde_json::from_slice::<ContinueToken>(&b).ok())
            .ok_or_else(|| ApiError::bad_request("continue key is not valid: illegal base64 data"))?;
        list_rv = decoded.rv;
        items.retain(|o| key(o) > decoded.start);
    }
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if let Some(limit) = query.get("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0)
        && items.len() > limit
    {
        let remaining = items.len() - limit;
        items.truncate(limit);
        let token = ContinueToken { rv: list_rv, start: key(items.last().expect("limit > 0")) };
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default());
        meta["continue"] = json!(encoded);
        meta["remainingItemCount"] = json!(remaining);
    }
    let body = match repr {
        Repr::Table => {
            let refs: Vec<&Value> = items.iter().map(|o| &**o).collect();
            table::table(res, &refs, Include::parse(query.get("includeObject")), meta)
        }
        Repr::Partial => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
            "items": items.iter().map(|o| table::partial_metadata(o)).collect::<Vec<_>>(),
        }),
        Repr::Json => json!({
            "kind": format!("{}List", res.kind),
            "apiVersion": res.api_version(),
            "metadata": meta,
            "items": items.iter().map(|o| (**o).clone()).collect::<Vec<_>>(),
        }),
    };
    Ok(json_response(200, &body))
}

fn watch_frame(event_type: &str, object: Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

struct WatchFilter {
    res_index: usize,
    res: &'static Resource,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    repr: Repr,
    include: Include,
}

impl WatchFilter {
    fn matches(&self, o: &Value) -> bool {
        let ns_ok = match &self.namespace {
            Some(n) if self.res.namespaced => o.pointer("/metadata/namespace").and_then(Value::as_str) == Some(n.as_str()),
            _ => true,
        };
        ns_ok && self.labels.matches_object(o) && self.fields.matches(o)
    }

    fn render(&self, o: &Value) -> Value {
        match self.repr {
            Repr::Json => o.clone(),
            Repr::Partial => table::partial_metadata(o),
            Repr::Table => {
                let rv = o.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""));
                table::table(self.res, &[o], self.include, json!({"resourceVersion": rv}))
            }
        }
    }

    /// The watch event (type and object) for a history entry, if any.
    fn event(&self, e: &HistEntry) -> Option<(&'static str, Value)> {
        if e.res != self.res_index {
            return None;
        }
        let now = self.matches(&e.object);
        match e.event_type {
            EventType::Added => now.then(|| ("ADDED", self.render(&e.object))),
            EventType::Deleted => now.then(|| ("DELETED", self.render(&e.object))),
            EventType::Modified => {
                let before = e.prev.as_ref().is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => Some(("MODIFIED", self.render(&e.object))),
                    (false, true) => Some(("ADDED", self.render(&e.object))),
                    (true, false) => {
                        let mut last = (**e.prev.as_ref().expect("matched")).clone();
                        last["metadata"]["resourceVersion"] = json!(e.rv.to_string());
                        Some(("DELETED", self.render(&last)))
                    }
                    (false, false) => None,
                }
            }
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        match self.repr {
            Repr::Json => json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": meta}),
            Repr::Partial => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}),
            Repr::Table => json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": [], "rows": []}),
        }
    }
}

fn watch(app: App, t: &Target, query: &Query, repr: Repr, name: Option<&str>) -> Result<Response, ApiError> {
    let res = t.res;
    let (labels, fields) = selectors(res, query, name)?;
    let filter = WatchFilter {
        res_index: resources::index(res),
        res,
        namespace: t.namespace.clone(),
        labels,
        fields,
        repr,
        include: Include::parse(query.get("includeObject")),
    };
    let bookmarks = query.flag("allowWatchBookmarks");
    let send_initial = query.flag("sendInitialEvents");
    let timeout = query.get("timeoutSeconds").and_then(|s| s.parse::<u64>().ok()).filter(|s| *s > 0).map(Duration::from_secs).unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let rv_param = query.get("resourceVersion").unwrap_or_default();
    let start_rv: Option<u64> = match rv_param {
        "" | "0" => None,
        s => Some(s.parse().map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))?),
    };
    let store = app.store.clone();
    let mut rv_rx = store.rv_receiver();
    let mut stop = app.stop.clone();
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    // The starting state is taken now, before the response goes out.
    let (initial, mut last) = if start_rv.is_none() || send_initial {
        let (items, rv) = store.list_res(res, t.namespace.as_deref(), &filter.labels, &filter.fields);
        (Some(items), rv)
    } else {
        (None, start_rv.unwrap_or(0))
    };
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        if let Some(items) = initial {
            for o in items {
                if tx.send(watch_frame("ADDED", filter.render(&o))).await.is_err() {
                    return;
                }
            }
            if send_initial && bookmarks && tx.send(watch_frame("BOOKMARK", filter.bookmark(last, true))).await.is_err() {
                return;
            }
        }
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_INTERVAL, BOOKMARK_INTERVAL);
        loop {
            rv_rx.borrow_and_update();
            match store.events_after(last) {
                Err(e) => {
                    let _ = tx.send(watch_frame("ERROR", e.to_status())).await;
                    return;
                }
                Ok(entries) => {
                    for e in entries {
                        last = e.rv;
                        if let Some((ty, obj)) = filter.event(&e)
                            && tx.send(watch_frame(ty, obj)).await.is_err()
                        {
                            return;
                        }
                    }
                }
            }
            tokio::select! {
                r = rv_rx.changed() => if r.is_err() { return },
                _ = ticker.tick() => {
                    if bookmarks && tx.send(watch_frame("BOOKMARK", filter.bookmark(last, false))).await.is_err() {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = stopped(&mut stop) => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx)) });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
    Ok(resp.into_response())
}

/// Completes when the server is shutting down.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
