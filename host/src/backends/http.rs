//! Plain HTTP GETs to an address given as an IP (the lab's front door, a
//! backend's own address): the client and the one request both the HTTP
//! probe (`probe::http`) and `traffic-read.observe` send, so both see the
//! same thing the same way. Over `reqwest` (the AKS backend's client,
//! renamed `reqwest_arm`); no proxy from the environment, no redirects
//! followed, and no name resolved (the URLs are checked by
//! [`crate::domain::traffic::http_url`]).

use std::sync::Arc;
use std::time::Duration;

use reqwest_arm as reqwest;

/// The header the lab's front door names the answering backend in.
pub const BACKEND_HEADER: &str = "x-runner-backend";

/// A client for plain `http://` GETs, each limited to `timeout`.
pub fn client(timeout: Duration, user_agent: &str) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        // The lab's front door is on loopback: no proxy from the environment.
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        // http:// only, but the client is built with TLS: hand it a configuration
        // on ring so it needs no process-wide crypto provider.
        .use_preconfigured_tls(tls_config()?)
        .user_agent(user_agent)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

fn tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

/// What one GET was answered.
pub struct Answered {
    /// The status code.
    pub status: u16,
    /// `X-Runner-Backend`, when the answer has one (and it is not empty).
    pub backend: Option<String>,
    /// The body, as text.
    pub body: String,
}

/// One GET of `url`, to its end (the body read).
pub async fn get(client: &reqwest::Client, url: reqwest::Url) -> Result<Answered, reqwest::Error> {
    let response = client.get(url).send().await?;
    let status = response.status().as_u16();
    let backend = response.headers().get(BACKEND_HEADER).and_then(|v| v.to_str().ok()).filter(|h| !h.is_empty()).map(str::to_string);
    let body = response.text().await?;
    Ok(Answered { status, backend, body })
}

/// A request error in a few words, the same for every request that failed
/// the same way (`timeout` is what the client was given).
pub fn error_text(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("timed out after {} s", timeout.as_secs_f64());
    }
    // The innermost cause names it (`Connection refused (os error 111)`), without the URL.
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let what = if error.is_connect() { "cannot connect" } else { "request failed" };
    format!("{what}: {cause}").lines().next().unwrap_or_default().chars().take(160).collect()
}

/// The `p`th percentile of `sorted` by nearest rank (0 when empty).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
