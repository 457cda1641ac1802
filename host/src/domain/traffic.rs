//! Weighted traffic switches (`traffic-read`, `traffic-write`): the values
//! a call carries and the rules every switch obeys, whatever serves it (an
//! HTTPRoute or a Traffic Manager profile), so both backends refuse the
//! same changes with the same words.

use serde_json::Value;

use super::ErrorCode;

/// One backend of a switch and its share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendWeight {
    /// The backendRef's Service, or the endpoint's name.
    pub name: String,
    /// Its weight, relative to the others'.
    pub weight: u32,
    /// Whether it gets requests at all.
    pub enabled: bool,
}

/// What serves a switch, and so which weights it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchKind {
    /// A Gateway API `HTTPRoute`: weights 0-1000000, 0 is disabled.
    HttpRoute,
    /// An Azure Traffic Manager profile (`Weighted`): weights 1-1000, and
    /// an endpoint is `Disabled` instead of weight 0.
    TrafficManager,
}

impl SwitchKind {
    /// The largest weight a backend of this kind takes.
    pub fn max_weight(self) -> u32 {
        match self {
            SwitchKind::HttpRoute => 1_000_000,
            SwitchKind::TrafficManager => 1000,
        }
    }
}

/// The upstream document a switch state was read from, kept so that a
/// session stores the answer in the upstream's own shape.
#[derive(Clone, Debug, PartialEq)]
pub enum SwitchDocument {
    /// The HTTPRoute object as the API server returned it.
    HttpRoute(Value),
    /// The Traffic Manager profile document and the ETag header it came with.
    TrafficManager {
        /// The `ETag` header of the answer.
        etag: String,
        /// The profile document.
        profile: Value,
    },
    /// Nothing was read: a dry run's plan.
    Planned,
}

/// What a switch sends where.
#[derive(Clone, Debug, PartialEq)]
pub struct SwitchState {
    /// Its backends, in the order the route or profile lists them.
    pub backends: Vec<BackendWeight>,
    /// An HTTPRoute's `metadata.generation`, a profile's ETag.
    pub generation: String,
    /// The target marks the switch as a stateful writer's.
    pub writer: bool,
    /// What it was read from.
    pub document: SwitchDocument,
}

/// A change a switch took.
#[derive(Clone, Debug, PartialEq)]
pub struct SwitchChange {
    /// The switch as it was.
    pub previous: SwitchState,
    /// The switch as it is now.
    pub current: SwitchState,
}

/// Requests a policy sends to see what clients reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequests {
    /// The path and query (`/health`).
    pub path: String,
    /// How many, one after another.
    pub count: u32,
    /// The pause between two requests.
    pub interval_ms: u32,
    /// Each request's time limit.
    pub timeout_ms: u32,
    /// A text the body must contain to count in `body_matches`.
    pub body_contains: String,
}

/// What the requests met.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpObservation {
    /// Requests sent.
    pub requests: u32,
    /// Requests answered 2xx.
    pub succeeded: u32,
    /// Answers by status code (0: no answer), by code.
    pub statuses: Vec<(u16, u32)>,
    /// Answers by the backend that served them (`unknown` without the header), by name.
    pub backends: Vec<(String, u32)>,
    /// 2xx answers whose body contains the text asked for.
    pub body_matches: u32,
    /// Median latency of the answered requests, ms.
    pub p50_ms: u32,
    /// 99th percentile, ms.
    pub p99_ms: u32,
    /// The slowest, ms.
    pub max_ms: u32,
}

/// The most requests one `observe` sends.
pub const MAX_REQUESTS: u32 = 10_000;
/// The longest time limit of one request, ms.
pub const MAX_TIMEOUT_MS: u32 = 30_000;
/// The longest pause between two requests, ms: a minute, so one call
/// stays within a run's time (`count` times this is the worst case).
pub const MAX_INTERVAL_MS: u32 = 60_000;

/// A refused call: its code and why.
pub type Refusal = (ErrorCode, String);

fn invalid(message: String) -> Refusal {
    (ErrorCode::Invalid, message)
}

/// Check an `observe` call's requests.
pub fn check_requests(requests: &HttpRequests) -> Result<(), Refusal> {
    if !(1..=MAX_REQUESTS).contains(&requests.count) {
        return Err(invalid(format!("count {}: 1-{MAX_REQUESTS} requests", requests.count)));
    }
    if requests.timeout_ms == 0 || requests.timeout_ms > MAX_TIMEOUT_MS {
        return Err(invalid(format!("timeout-ms {}: 1-{MAX_TIMEOUT_MS}", requests.timeout_ms)));
    }
    if requests.interval_ms > MAX_INTERVAL_MS {
        return Err(invalid(format!("interval-ms {}: at most {MAX_INTERVAL_MS}", requests.interval_ms)));
    }
    // A path only: a scheme or host here would send the requests elsewhere.
    if !requests.path.starts_with('/') || requests.path.starts_with("//") || requests.path.contains(['#', ' ', '\r', '\n', '\0']) {
        return Err(invalid(format!("path `{}`: a path and query starting with `/` (`/health`)", requests.path.escape_debug())));
    }
    Ok(())
}

/// The backends after `requested` is applied to `current` on a switch of
/// `kind` (`writer`: one backend enabled at most): `not-found` for a
/// backend the switch does not have, `invalid` for a weight it cannot take,
/// a backend named twice, no backend left enabled, or a writer switch with
/// more than one. An HTTPRoute backend that is disabled gets weight 0; a
/// Traffic Manager endpoint disabled (or given weight 0) keeps its weight.
pub fn apply_weights(current: &[BackendWeight], requested: &[BackendWeight], kind: SwitchKind, writer: bool) -> Result<Vec<BackendWeight>, Refusal> {
    if requested.is_empty() {
        return Err(invalid("no weights given: name at least one backend".into()));
    }
    let mut next = current.to_vec();
    for (i, wanted) in requested.iter().enumerate() {
        if requested[..i].iter().any(|w| w.name == wanted.name) {
            return Err(invalid(format!("backend `{}` is named twice", wanted.name)));
        }
        let Some(backend) = next.iter_mut().find(|b| b.name == wanted.name) else {
            let known: Vec<&str> = current.iter().map(|b| b.name.as_str()).collect();
            return Err((ErrorCode::NotFound, format!("the switch has no backend `{}` (it has: {})", wanted.name, known.join(", "))));
        };
        let max = kind.max_weight();
        if wanted.weight > max {
            return Err(invalid(format!("backend `{}`: weight {} is more than {max}", wanted.name, wanted.weight)));
        }
        let enabled = wanted.enabled && wanted.weight > 0;
        match kind {
            SwitchKind::HttpRoute => {
                backend.weight = if enabled { wanted.weight } else { 0 };
            }
            SwitchKind::TrafficManager => {
                // No weight 0 on Traffic Manager: a disabled endpoint keeps a weight it can come back with.
                if wanted.weight > 0 {
                    backend.weight = wanted.weight;
                }
            }
        }
        backend.enabled = enabled;
    }
    let enabled: Vec<&str> = next.iter().filter(|b| b.enabled).map(|b| b.name.as_str()).collect();
    if enabled.is_empty() {
        return Err(invalid("the change would leave no backend enabled".into()));
    }
    if writer && enabled.len() > 1 {
        return Err(invalid(format!(
            "a writer's switch takes one backend at a time (a single-writer cutover), not {} ({})",
            enabled.len(),
            enabled.join(", ")
        )));
    }
    Ok(next)
}

/// The conflict of a change asked at `wanted` on a switch now at `now`.
pub fn stale(switch: &str, wanted: &str, now: &str) -> Refusal {
    (
        ErrorCode::Conflict,
        format!("switch {switch} changed since it was read: the change was asked at generation {wanted}, the switch is at {now}; nothing was changed"),
    )
}

/// A backend's name as a call gives it: a Service's name, or an endpoint's
/// (Azure: 1-260 characters, none of `/ \\ ? # % < > * & : +`, no control characters).
pub fn backend_name(name: &str) -> Result<(), super::names::InvalidName> {
    let ok = (1..=260).contains(&name.chars().count()) && !name.chars().any(|c| c.is_control() || "/\\?#%<>*&:+".contains(c)) && !name.ends_with('.');
    if ok {
        Ok(())
    } else {
        Err(super::names::InvalidName::new(format!(
            "backend name `{}`: 1-260 characters, none of `/\\?#%<>*&:+`, no control characters, not ending in `.`",
            name.escape_debug()
        )))
    }
}

/// Check a URL a switch is observed at: `http://`, its host an IP address
/// or `localhost` (taken as 127.0.0.1): no name is resolved, no
/// credentials. The URL as requested.
pub fn http_url(text: &str) -> Result<String, String> {
    let (scheme, rest) = text.split_once("://").ok_or_else(|| format!("`{text}` is not a URL (http://IP[:PORT])"))?;
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(format!("`{text}`: only http:// URLs, not {scheme}://"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!("`{text}`: a URL with credentials is not used (they would be in the journal)"));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(h, _)| h).ok_or_else(|| format!("`{text}`: an unclosed `[`"))?,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let port = authority.strip_prefix('[').map_or_else(|| authority.rsplit_once(':').map(|(_, p)| p), |v6| v6.split_once("]:").map(|(_, p)| p));
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(format!("`{text}`: port `{port}` is not a port"));
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(format!("http://{}{}", authority.replacen(host, "127.0.0.1", 1), &rest[authority.len()..]));
    }
    if host.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("`{text}`: the host `{host}` is a name; give an IP address (no name is resolved; `localhost` is taken as 127.0.0.1)"));
    }
    Ok(format!("http://{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(name: &str, weight: u32, enabled: bool) -> BackendWeight {
        BackendWeight { name: name.into(), weight, enabled }
    }

    #[test]
    fn an_httproute_moves_weight_and_reads_zero_as_disabled() {
        let now = [b("blue", 100, true), b("green", 0, false)];
        let next = apply_weights(&now, &[b("blue", 0, true), b("green", 100, true)], SwitchKind::HttpRoute, false).unwrap();
        assert_eq!(next, [b("blue", 0, false), b("green", 100, true)]);
        // Disabled means weight 0 on a route.
        let next = apply_weights(&now, &[b("blue", 7, false), b("green", 5, true)], SwitchKind::HttpRoute, false).unwrap();
        assert_eq!(next, [b("blue", 0, false), b("green", 5, true)]);
        // The others keep theirs.
        let next = apply_weights(&now, &[b("green", 50, true)], SwitchKind::HttpRoute, false).unwrap();
        assert_eq!(next, [b("blue", 100, true), b("green", 50, true)]);
    }

    #[test]
    fn a_traffic_manager_endpoint_keeps_its_weight_when_disabled() {
        let now = [b("blue", 100, true), b("green", 1, false)];
        let next = apply_weights(&now, &[b("blue", 0, true), b("green", 100, true)], SwitchKind::TrafficManager, false).unwrap();
        assert_eq!(next, [b("blue", 100, false), b("green", 100, true)]);
        let err = apply_weights(&now, &[b("green", 1001, true)], SwitchKind::TrafficManager, false).unwrap_err();
        assert_eq!(err.0, ErrorCode::Invalid, "{err:?}");
        assert!(apply_weights(&now, &[b("green", 1_000_000, true)], SwitchKind::HttpRoute, false).is_ok());
        assert!(apply_weights(&now, &[b("green", 1_000_001, true)], SwitchKind::HttpRoute, false).is_err());
    }

    #[test]
    fn the_rules_refuse_what_no_switch_takes() {
        let now = [b("blue", 100, true), b("green", 0, false)];
        let (code, message) = apply_weights(&now, &[b("red", 1, true)], SwitchKind::HttpRoute, false).unwrap_err();
        assert_eq!(code, ErrorCode::NotFound);
        assert!(message.contains("blue, green"), "{message}");
        let (code, message) = apply_weights(&now, &[b("blue", 0, true)], SwitchKind::HttpRoute, false).unwrap_err();
        assert_eq!(code, ErrorCode::Invalid);
        assert!(message.contains("no backend enabled"), "{message}");
        let (code, message) = apply_weights(&now, &[b("green", 1, true)], SwitchKind::TrafficManager, true).unwrap_err();
        assert_eq!(code, ErrorCode::Invalid);
        assert!(message.contains("writer"), "{message}");
        assert!(apply_weights(&now, &[b("blue", 0, false), b("green", 1, true)], SwitchKind::TrafficManager, true).is_ok());
        assert_eq!(apply_weights(&now, &[b("blue", 1, true), b("blue", 2, true)], SwitchKind::HttpRoute, false).unwrap_err().0, ErrorCode::Invalid);
        assert_eq!(apply_weights(&now, &[], SwitchKind::HttpRoute, false).unwrap_err().0, ErrorCode::Invalid);
    }

    #[test]
    fn observe_bounds() {
        let ok = HttpRequests { path: "/version".into(), count: 10, interval_ms: 0, timeout_ms: 1000, body_contains: String::new() };
        assert!(check_requests(&ok).is_ok());
        for bad in [
            HttpRequests { count: 0, ..ok.clone() },
            HttpRequests { count: 10_001, ..ok.clone() },
            HttpRequests { timeout_ms: 30_001, ..ok.clone() },
            HttpRequests { timeout_ms: 0, ..ok.clone() },
            HttpRequests { path: "http://evil/".into(), ..ok.clone() },
            HttpRequests { path: "//evil/".into(), ..ok.clone() },
        ] {
            assert_eq!(check_requests(&bad).unwrap_err().0, ErrorCode::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn urls_name_addresses_not_hosts() {
        assert_eq!(http_url("http://127.0.3.1:8080").unwrap(), "http://127.0.3.1:8080");
        assert_eq!(http_url("http://localhost:8080/x").unwrap(), "http://127.0.0.1:8080/x");
        assert_eq!(http_url("http://[::1]:80").unwrap(), "http://[::1]:80");
        assert!(http_url("https://127.0.0.1").is_err());
        assert!(http_url("http://frontdoor.lab:8080").unwrap_err().contains("is a name"));
        assert!(http_url("http://u:p@127.0.0.1").unwrap_err().contains("credentials"));
        assert!(http_url("http://127.0.0.1:99999").is_err());
        assert!(http_url("127.0.0.1").is_err());
    }
}
