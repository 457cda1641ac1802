//! Weighted traffic switches (`traffic-read`, `traffic-write`): what the
//! requests a policy sent met, in the terms a gate judges them by and a
//! pattern checks a rollback with, and `observe` with errors that name the
//! switch.
//!
//! The records are the WIT's own, so a policy's logic takes them as plain
//! values and is tested natively.

use serde_json::{Map, Value, json};

use crate::{Error, traffic_read};

pub use traffic_read::{BackendWeight, HttpObservation, HttpRequests, SwitchState};

/// `traffic-read.observe`: `requests` through `switch`, or straight to
/// `backend` when one is given; an error names the switch and the backend.
pub fn observe(switch: &str, backend: Option<&str>, requests: &HttpRequests) -> Result<HttpObservation, Error> {
    traffic_read::observe(switch, backend, requests).map_err(|e| Error::new(e.code, format!("{}: {}", target(switch, backend), e.message)))
}

/// Where requests went, for people: `switch web` or `backend green of switch web`.
pub fn target(switch: &str, backend: Option<&str>) -> String {
    match backend {
        Some(backend) => format!("backend {backend} of switch {switch}"),
        None => format!("switch {switch}"),
    }
}

impl HttpObservation {
    /// Requests that met no answer at all (status 0: refused, reset, timed out).
    pub fn unanswered(&self) -> u32 {
        self.statuses.iter().filter(|(status, _)| *status == 0).map(|(_, n)| *n).sum()
    }

    /// Requests answered, whatever the status.
    pub fn answered(&self) -> u32 {
        self.requests.saturating_sub(self.unanswered())
    }

    /// Answers `backend` served (any status).
    pub fn served_by(&self, backend: &str) -> u32 {
        self.backends.iter().filter(|(name, _)| name == backend).map(|(_, n)| *n).sum()
    }

    /// Whether every request was answered 2xx by one of `backends`.
    pub fn all_served_by(&self, backends: &[&str]) -> bool {
        self.succeeded == self.requests && backends.iter().map(|b| self.served_by(b)).sum::<u32>() == self.requests
    }

    /// The observation as evidence: a JSON object, statuses and backends as
    /// objects keyed by status code and backend name.
    pub fn to_json(&self) -> Value {
        let statuses: Map<String, Value> = self.statuses.iter().map(|(status, n)| (status.to_string(), json!(n))).collect();
        let backends: Map<String, Value> = self.backends.iter().map(|(name, n)| (name.clone(), json!(n))).collect();
        json!({
            "requests": self.requests,
            "succeeded": self.succeeded,
            "statuses": statuses,
            "backends": backends,
            "body_matches": self.body_matches,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
        })
    }

    /// For people: `20 requests, 18 answered 2xx, 2 with no answer, 0 other;
    /// p50 12 ms, p99 40 ms, max 52 ms; served by blue 10, green 8`.
    pub fn describe(&self) -> String {
        let other = self.answered().saturating_sub(self.succeeded);
        let served: Vec<String> = self.backends.iter().map(|(name, n)| format!("{name} {n}")).collect();
        format!(
            "{} requests, {} answered 2xx, {} with no answer, {other} other; p50 {} ms, p99 {} ms, max {} ms; served by {}",
            self.requests,
            self.succeeded,
            self.unanswered(),
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            if served.is_empty() { "nobody".to_string() } else { served.join(", ") }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation() -> HttpObservation {
        HttpObservation {
            requests: 20,
            succeeded: 16,
            statuses: vec![(0, 2), (200, 16), (503, 2)],
            backends: vec![("blue".into(), 10), ("green".into(), 8)],
            body_matches: 16,
            p50_ms: 12,
            p99_ms: 40,
            max_ms: 52,
        }
    }

    #[test]
    fn counts_answers_by_status_and_backend() {
        let o = observation();
        assert_eq!((o.unanswered(), o.answered(), o.served_by("green"), o.served_by("red")), (2, 18, 8, 0));
        assert!(!o.all_served_by(&["blue", "green"]));
        let all_blue = HttpObservation { succeeded: 20, statuses: vec![(200, 20)], backends: vec![("blue".into(), 20)], ..o.clone() };
        assert!(all_blue.all_served_by(&["blue"]) && !all_blue.all_served_by(&["green"]));
        assert_eq!(o.to_json()["statuses"], json!({"0": 2, "200": 16, "503": 2}));
        assert_eq!(o.describe(), "20 requests, 16 answered 2xx, 2 with no answer, 2 other; p50 12 ms, p99 40 ms, max 52 ms; served by blue 10, green 8");
        assert_eq!(target("web", Some("green")), "backend green of switch web");
    }
}
