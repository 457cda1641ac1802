//! The lab's web application: what the kubelet runs for an image
//! `runner-lab/webapp:<version>`, an HTTP server inside the lab process (a
//! tokio task, no binary to install) on the Pod's address and container port
//! (8080 unless the container names one), so a rollout or a traffic switch
//! moves real HTTP.
//!
//! - `GET /health`: 200 `ok` (the readiness probe; never slowed or failed).
//! - `GET /version`: 200 with the image tag (`1.30`).
//! - anything else: 200 `{"version": ..., "pod": ...}`.
//!
//! Container env vars make it misbehave, deterministically enough to test:
//! `FAIL_PERCENT=p` answers 500 to exactly p of every 100 requests (spread
//! evenly: 50 fails every second one), `DELAY_MS=n` answers n ms late.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The image repository the kubelet runs as this web application.
pub const IMAGE: &str = "runner-lab/webapp";
/// The port it listens on when the container declares none.
pub const DEFAULT_PORT: u16 = 8080;
/// How long a readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The version an image of the web application runs (its tag, `latest`
/// without one), or `None` for any other image. A registry prefix
/// (`registry.local/runner-lab/webapp:1.30`) is allowed, a digest ignored.
pub fn version_of(image: &str) -> Option<String> {
    let image = image.split('@').next().unwrap_or(image);
    let (repository, tag) = match image.rsplit_once(':') {
        // A colon before the last slash is a registry port, not a tag.
        Some((repository, tag)) if !tag.contains('/') => (repository, tag),
        _ => (image, "latest"),
    };
    let ours = repository == IMAGE || repository.strip_suffix(IMAGE).is_some_and(|prefix| prefix.ends_with('/'));
    (ours && !tag.is_empty()).then(|| tag.to_string())
}

/// How one Pod's server answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behaviour {
    /// What `/version` answers: the image tag.
    pub version: String,
    /// The Pod's name, in the JSON answer (which Pod served a request).
    pub pod: String,
    /// The share of requests (0-100) answered 500.
    pub fail_percent: u64,
    /// Added before every answer but `/health`'s.
    pub delay: Duration,
}

impl Behaviour {
    /// The behaviour a container asks for with its `FAIL_PERCENT` and
    /// `DELAY_MS` env vars (plain `value`s); an unreadable value is an error
    /// to show on the Pod, not a server that quietly behaves.
    pub fn from_container(container: &Value, pod: &str, version: &str) -> Result<Behaviour, String> {
        let env = |wanted: &str| {
            container["env"].as_array().into_iter().flatten().find(|e| e["name"] == wanted).map(|e| e["value"].as_str().unwrap_or_default().trim().to_string())
        };
        let fail_percent = match env("FAIL_PERCENT") {
            None => 0,
            Some(v) => v.parse::<u64>().ok().filter(|p| *p <= 100).ok_or(format!("FAIL_PERCENT must be a whole number from 0 to 100, not {v:?}"))?,
        };
        let delay = match env("DELAY_MS") {
            None => Duration::ZERO,
            Some(v) => Duration::from_millis(v.parse::<u64>().map_err(|_| format!("DELAY_MS must be a whole number of milliseconds, not {v:?}"))?),
        };
        Ok(Behaviour { version: version.to_string(), pod: pod.to_string(), fail_percent, delay })
    }

    /// Whether the `n`-th request (from 1) is one of the failing ones:
    /// exactly `fail_percent` of every 100, evenly spread.
    pub fn fails(&self, n: u64) -> bool {
        n > 0 && n * self.fail_percent / 100 > (n - 1) * self.fail_percent / 100
    }
}

struct App {
    behaviour: Behaviour,
    /// Requests so far (but probes), to pick the failing ones.
    requests: AtomicU64,
}

/// Serves HTTP on `listener` as `behaviour` says until `shutdown` resolves;
/// requests in flight are answered first.
pub async fn serve(listener: TcpListener, behaviour: Behaviour, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let app = Arc::new(App { behaviour, requests: AtomicU64::new(0) });
    let router = Router::new().fallback(answer).with_state(app);
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

async fn answer(State(app): State<Arc<App>>, uri: Uri) -> Response {
    if uri.path() == "/health" {
        return "ok".into_response();
    }
    let n = app.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let behaviour = &app.behaviour;
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    if behaviour.fails(n) {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("injected failure (FAIL_PERCENT={})\n", behaviour.fail_percent)).into_response();
    }
    match uri.path() {
        "/version" => behaviour.version.clone().into_response(),
        _ => ([(header::CONTENT_TYPE, "application/json")], json!({"version": behaviour.version, "pod": behaviour.pod}).to_string()).into_response(),
    }
}

/// Whether the server at `address` answers `GET /health` with 200 (the
/// kubelet's readiness probe).
pub async fn healthy(address: SocketAddr) -> bool {
    matches!(tokio::time::timeout(PROBE_TIMEOUT, get(address, "/health")).await, Ok(Ok((200, _))))
}

/// A plain HTTP/1.1 `GET` (connection closed after the answer): its status and body.
pub async fn get(address: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address).await?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {head:?}")))?;
    let chunked = head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked"));
    Ok((status, if chunked { dechunk(body) } else { body.to_string() }))
}

/// The body of a chunked answer.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").unwrap_or(&rest[size..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_webapp_images_are_the_webapp() {
        assert_eq!(version_of("runner-lab/webapp:1.30").as_deref(), Some("1.30"));
        assert_eq!(version_of("runner-lab/webapp").as_deref(), Some("latest"));
        assert_eq!(version_of("localhost:5000/runner-lab/webapp:2").as_deref(), Some("2"));
        assert_eq!(version_of("runner-lab/webapp:1.30@sha256:abc").as_deref(), Some("1.30"));
        assert_eq!(version_of("postgres:16"), None);
        assert_eq!(version_of("other/runner-lab-webapp:1"), None);
        assert_eq!(version_of("evil-runner-lab/webapp:1"), None);
    }

    #[test]
    fn env_vars_make_it_misbehave_or_are_refused() {
        let container = json!({"env": [{"name": "FAIL_PERCENT", "value": "50"}, {"name": "DELAY_MS", "value": "20"}]});
        let behaviour = Behaviour::from_container(&container, "web-1", "1.30").unwrap();
        assert_eq!((behaviour.fail_percent, behaviour.delay), (50, Duration::from_millis(20)));
        assert_eq!((1..=100).filter(|n| behaviour.fails(*n)).count(), 50);
        assert!(!behaviour.fails(1) && behaviour.fails(2), "every second request fails");
        let ten = Behaviour { fail_percent: 10, ..behaviour.clone() };
        assert_eq!((1..=1000).filter(|n| ten.fails(*n)).count(), 100);
        assert!(Behaviour::from_container(&json!({"env": [{"name": "FAIL_PERCENT", "value": "lots"}]}), "p", "1").unwrap_err().contains("FAIL_PERCENT"));
        assert!(Behaviour::from_container(&json!({"env": [{"name": "FAIL_PERCENT", "value": "101"}]}), "p", "1").is_err());
        assert!(Behaviour::from_container(&json!({"env": [{"name": "DELAY_MS", "value": "-1"}]}), "p", "1").is_err());
        assert_eq!(Behaviour::from_container(&json!({}), "p", "1").unwrap().fail_percent, 0);
    }

    #[tokio::test]
    async fn answers_health_version_and_json() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let behaviour = Behaviour { version: "1.30".into(), pod: "web-abc".into(), fail_percent: 50, delay: Duration::ZERO };
        let server = tokio::spawn(serve(listener, behaviour, async {
            let _ = stopped.await;
        }));
        assert!(healthy(address).await);
        assert_eq!(get(address, "/version").await.unwrap(), (200, "1.30".to_string()), "the first request of two passes");
        assert_eq!(get(address, "/version").await.unwrap().0, 500, "the second fails");
        let (status, body) = get(address, "/anything").await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"version": "1.30", "pod": "web-abc"}));
        assert!(healthy(address).await, "probes never fail");
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        assert!(!healthy(address).await, "stopped");
    }
}
