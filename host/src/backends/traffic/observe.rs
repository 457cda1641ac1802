//! `traffic-read.observe`: plain GETs, one after another, counted as the
//! WIT record says. A request that gets no answer (refused, reset, timed
//! out) is status 0 in the counts, never an error of the call: what clients
//! would meet is the observation.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest_arm as reqwest;

use super::{HttpObservation, HttpRequests};
use crate::backends::http::{self, percentile};
use crate::backends::{BackendError, BackendResult, ErrorCode};

/// What the counts name a backend whose answer carries no `X-Runner-Backend`.
pub const UNKNOWN_BACKEND: &str = "unknown";

/// GET `base` + `requests.path` `requests.count` times and count the answers.
pub async fn observe(base: &str, requests: &HttpRequests) -> BackendResult<HttpObservation> {
    let text = format!("{}{}", base.trim_end_matches('/'), requests.path);
    let url = reqwest::Url::parse(&text).map_err(|e| BackendError::new(ErrorCode::Invalid, format!("`{text}` is not a URL: {e}")))?;
    let timeout = Duration::from_millis(u64::from(requests.timeout_ms));
    let client = http::client(timeout, concat!("runner-traffic-observe/", env!("CARGO_PKG_VERSION"))).map_err(|e| BackendError::new(ErrorCode::Internal, e))?;
    let mut statuses: BTreeMap<u16, u32> = BTreeMap::new();
    let mut backends: BTreeMap<String, u32> = BTreeMap::new();
    let mut latencies = Vec::new();
    let (mut succeeded, mut body_matches) = (0, 0);
    for i in 0..requests.count {
        if i > 0 && requests.interval_ms > 0 {
            tokio::time::sleep(Duration::from_millis(u64::from(requests.interval_ms))).await;
        }
        let sent = Instant::now();
        match http::get(&client, url.clone()).await {
            Ok(answer) => {
                latencies.push(sent.elapsed());
                *statuses.entry(answer.status).or_default() += 1;
                *backends.entry(answer.backend.unwrap_or_else(|| UNKNOWN_BACKEND.into())).or_default() += 1;
                if (200..300).contains(&answer.status) {
                    succeeded += 1;
                    if answer.body.contains(&requests.body_contains) {
                        body_matches += 1;
                    }
                }
            }
            Err(e) => {
                tracing::debug!("observe {text}: {}", http::error_text(&e, timeout));
                *statuses.entry(0).or_default() += 1;
            }
        }
    }
    latencies.sort();
    let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
    Ok(HttpObservation {
        requests: requests.count,
        succeeded,
        statuses: statuses.into_iter().collect(),
        backends: backends.into_iter().collect(),
        body_matches,
        p50_ms: ms(percentile(&latencies, 50.0)),
        p99_ms: ms(percentile(&latencies, 99.0)),
        max_ms: ms(latencies.last().copied().unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// A server on loopback answering its connections in turn: `200` from
    /// blue with the body `v1.30`, `503` with no backend header, then
    /// nothing at all (a request that times out), then blue again.
    fn server() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { return };
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                let answer = match i % 4 {
                    0 | 3 => "HTTP/1.1 200 OK\r\nX-Runner-Backend: blue\r\nContent-Length: 5\r\nConnection: close\r\n\r\nv1.30".to_string(),
                    1 => "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                    _ => {
                        // Hold the request unanswered past the client's timeout, on a thread of its own.
                        std::thread::spawn(move || {
                            std::thread::sleep(Duration::from_secs(2));
                            drop(stream);
                        });
                        continue;
                    }
                };
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        format!("http://{address}")
    }

    #[test]
    fn observe_counts_statuses_backends_and_a_timeout_as_status_0() {
        let base = server();
        let requests = HttpRequests { path: "/version".into(), count: 4, interval_ms: 0, timeout_ms: 300, body_contains: "1.30".into() };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let seen = runtime.block_on(observe(&base, &requests)).unwrap();
        assert_eq!(seen.requests, 4);
        assert_eq!(seen.succeeded, 2, "{seen:?}");
        assert_eq!(seen.statuses, [(0, 1), (200, 2), (503, 1)], "a timeout is status 0, not an error");
        assert_eq!(seen.backends, [("blue".to_string(), 2), (UNKNOWN_BACKEND.to_string(), 1)], "answers only, by X-Runner-Backend");
        assert_eq!(seen.body_matches, 2);
        assert!(seen.max_ms < 300, "the timed-out request is no latency: {seen:?}");
    }
}
