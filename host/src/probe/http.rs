//! The HTTP probe: a client that GETs one URL at a steady rate while a
//! pattern runs, the way a user's browser would, and reports what the
//! users saw: how many requests failed, the longest time without a
//! successful answer, the latencies, and which backend answered each
//! request over time (the lab's front door names it in `X-Runner-Backend`;
//! without the header, a `/version` URL's body names it), so a reader sees
//! the switch from blue to green happen.
//!
//! It runs on its own thread with its own async runtime, as the write
//! probes do, and over `reqwest` (already the AKS backend's HTTP client;
//! renamed `reqwest_arm`): no new dependency. It resolves no names: the
//! URL's host must be an IP address (`localhost` is taken as 127.0.0.1).
//! A failed request never fails the run by itself (the gates judge); the
//! summary only counts it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest_arm as reqwest;
use serde::Serialize;

use super::{KEPT_ERRORS, MAX_BUCKETS, ms};
use crate::backends::http;
pub(crate) use crate::backends::http::percentile;

/// Requests per second unless told otherwise.
pub const DEFAULT_RATE: u32 = 20;

/// How long one request may take (connecting, the answer and its body)
/// before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// The timeline's finest bucket: one second, the share of each backend per second.
const BUCKET_MS: u64 = 1000;

pub use crate::backends::http::BACKEND_HEADER;

/// Most bytes of an answer's body kept to name its backend (`/version` answers a tag).
const KEPT_BODY: usize = 64;

/// What one HTTP probe measured over a run (the report's `http_probes[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HttpProbeSummary {
    /// The URL probed, as requested (`http://127.0.3.1:8080/version`).
    pub url: String,
    /// The requests per second asked for.
    pub rate: u32,
    /// Requests sent (every one has ended by the time the summary is made).
    pub requests: u64,
    /// Requests answered 2xx within the timeout.
    pub ok_requests: u64,
    /// Requests answered otherwise: non-2xx, timed out, or a connection error.
    pub failed_requests: u64,
    /// The longest time without a successful answer, counted from the probe's
    /// start to the first and from the last to the probe's end too.
    pub longest_gap_ms: f64,
    /// When that longest gap began, in ms from the probe's start.
    pub longest_gap_began_at_ms: f64,
    /// The median latency of the successful answers.
    pub p50_ms: f64,
    /// The 99th percentile latency of the successful answers (nearest rank).
    pub p99_ms: f64,
    /// The slowest successful answer.
    pub max_ms: f64,
    /// How long the probe ran.
    pub duration_ms: f64,
    /// Answers per backend (any status), by `X-Runner-Backend` or, without
    /// it, the body of a `/version` URL; requests without an answer, or
    /// whose answer names no backend, are in none.
    pub backends: BTreeMap<String, u64>,
    /// Distinct failures, with how often (`12x: HTTP 500 Internal Server Error from green`).
    pub errors: Vec<String>,
    /// Answers per time bucket over the run, by the time each ended.
    pub timeline: HttpTimeline,
}

/// An HTTP probe's requests per time bucket from its start: at most
/// [`MAX_BUCKETS`] buckets, each `bucket_ms` wide.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HttpTimeline {
    /// How wide one bucket is, in ms: 1000, doubled each time the run outgrew the buckets.
    pub bucket_ms: u64,
    /// One per bucket, in order; bucket `i` covers `[i, i+1) * bucket_ms` from the probe's start.
    pub buckets: Vec<HttpBucket>,
}

/// The requests that ended within one bucket of an [`HttpTimeline`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HttpBucket {
    /// Requests answered 2xx in it.
    pub ok: u32,
    /// Requests that failed in it.
    pub failed: u32,
    /// Answers in it per backend (any status): each one's share of the bucket's traffic.
    pub backends: BTreeMap<String, u32>,
}

impl HttpTimeline {
    fn new() -> Self {
        HttpTimeline { bucket_ms: BUCKET_MS, buckets: Vec::new() }
    }

    /// The bucket a request ending `at` falls in, coarsening first if `at` lies past the last one.
    fn bucket(&mut self, at: Duration) -> &mut HttpBucket {
        let at_ms = at.as_millis() as u64;
        while at_ms / self.bucket_ms >= MAX_BUCKETS as u64 {
            self.coarsen();
        }
        let index = (at_ms / self.bucket_ms) as usize;
        if self.buckets.len() <= index {
            self.buckets.resize(index + 1, HttpBucket::default());
        }
        &mut self.buckets[index]
    }

    /// Merge each pair of neighbouring buckets: twice as wide, half as many.
    fn coarsen(&mut self) {
        self.buckets = self
            .buckets
            .chunks(2)
            .map(|pair| {
                let mut merged = HttpBucket::default();
                for bucket in pair {
                    merged.ok += bucket.ok;
                    merged.failed += bucket.failed;
                    for (name, n) in &bucket.backends {
                        *merged.backends.entry(name.clone()).or_default() += n;
                    }
                }
                merged
            })
            .collect();
        self.bucket_ms *= 2;
    }
}

impl HttpBucket {
    /// Each backend's share of the answers in this bucket that name one (0 to 1).
    pub fn shares(&self) -> BTreeMap<&str, f64> {
        let total: u32 = self.backends.values().sum();
        self.backends.iter().map(|(name, n)| (name.as_str(), f64::from(*n) / f64::from(total.max(1)))).collect()
    }
}

impl HttpProbeSummary {
    /// One line for the text report.
    pub fn line(&self) -> String {
        let backends = if self.backends.is_empty() {
            "no backend named".to_string()
        } else {
            self.backends.iter().map(|(name, n)| format!("{name} {n}")).collect::<Vec<_>>().join(", ")
        };
        let last = self
            .timeline
            .buckets
            .iter()
            .rev()
            .find(|b| !b.backends.is_empty())
            .map(|b| {
                let shares: Vec<String> = b.shares().iter().map(|(name, share)| format!("{name} {:.0}%", share * 100.0)).collect();
                format!(" (last {} s: {})", self.timeline.bucket_ms / 1000, shares.join(", "))
            })
            .unwrap_or_default();
        format!(
            "{} requests ({}/s), {} failed, longest gap {:.0} ms (at +{:.1} s), p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; backends: {backends}{last}",
            self.requests,
            self.rate,
            self.failed_requests,
            self.longest_gap_ms,
            self.longest_gap_began_at_ms / 1000.0,
            self.p50_ms,
            self.p99_ms,
            self.max_ms
        )
    }
}

/// A URL the probe may GET: `http://`, its host an IP address.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    /// As the operator gave it, for the report.
    pub given: String,
    /// What is requested (`localhost` replaced by 127.0.0.1).
    url: reqwest::Url,
    /// Requests per second.
    pub rate: u32,
}

impl HttpTarget {
    /// Check `text` (`http://IP[:PORT][/PATH]`; `localhost` is 127.0.0.1): the probe resolves no names.
    pub fn parse(text: &str, rate: u32) -> Result<HttpTarget, String> {
        // One rule for every plain GET the runner sends (the switches' `observe` too).
        let checked = crate::domain::traffic::http_url(text)?;
        let url = reqwest::Url::parse(&checked).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
        Ok(HttpTarget { given: text.to_string(), url, rate: rate.max(1) })
    }

    /// Whether the URL asks for `/version`, whose body then names the backend.
    fn asks_version(&self) -> bool {
        self.url.path().trim_end_matches('/').ends_with("/version")
    }
}

/// How one request ended, in time from the probe's start.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    /// When it was sent.
    pub sent: Duration,
    /// When it ended (answered, timed out, or failed).
    pub done: Duration,
    /// Whether it was answered 2xx.
    pub ok: bool,
    /// The backend that answered, if one is named.
    pub backend: Option<String>,
    /// Why it failed (`HTTP 500 ...`, `timed out after 1 s`).
    pub error: Option<String>,
}

/// The figures of `samples` for a probe of `url` at `rate` that ran until `end`.
pub(crate) fn summarize(url: &str, rate: u32, samples: &[Sample], end: Duration) -> HttpProbeSummary {
    let mut timeline = HttpTimeline::new();
    let mut backends: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors: Vec<(String, u64)> = Vec::new();
    let mut successes: Vec<Duration> = Vec::new();
    let mut latencies: Vec<Duration> = Vec::new();
    for sample in samples {
        let bucket = timeline.bucket(sample.done);
        if sample.ok {
            bucket.ok = bucket.ok.saturating_add(1);
            successes.push(sample.done);
            latencies.push(sample.done.saturating_sub(sample.sent));
        } else {
            bucket.failed = bucket.failed.saturating_add(1);
        }
        if let Some(name) = &sample.backend {
            let n = bucket.backends.entry(name.clone()).or_default();
            *n = n.saturating_add(1);
            *backends.entry(name.clone()).or_default() += 1;
        }
        if let Some(error) = &sample.error {
            if let Some((_, count)) = errors.iter_mut().find(|(e, _)| e == error) {
                *count += 1;
            } else if errors.len() < KEPT_ERRORS {
                errors.push((error.clone(), 1));
            }
        }
    }
    let end = successes.iter().copied().chain(samples.iter().map(|s| s.done)).fold(end, Duration::max);
    let (gap, gap_began) = longest_gap(&successes, end);
    latencies.sort();
    let failed = samples.iter().filter(|s| !s.ok).count() as u64;
    HttpProbeSummary {
        url: url.to_string(),
        rate,
        requests: samples.len() as u64,
        ok_requests: samples.len() as u64 - failed,
        failed_requests: failed,
        longest_gap_ms: ms(gap),
        longest_gap_began_at_ms: ms(gap_began),
        p50_ms: ms(percentile(&latencies, 50.0)),
        p99_ms: ms(percentile(&latencies, 99.0)),
        max_ms: ms(latencies.last().copied().unwrap_or_default()),
        duration_ms: ms(end),
        backends,
        errors: errors.into_iter().map(|(e, n)| format!("{n}x: {e}")).collect(),
        timeline,
    }
}

/// The longest time between two successful answers (`successes`, ending
/// when each was answered), counting the probe's start (0) and `end` as
/// bounds: the gap and when it began.
pub(crate) fn longest_gap(successes: &[Duration], end: Duration) -> (Duration, Duration) {
    let mut times: Vec<Duration> = successes.to_vec();
    times.sort();
    let mut previous = Duration::ZERO;
    let mut longest = (Duration::ZERO, Duration::ZERO);
    for at in times.into_iter().chain(std::iter::once(end)) {
        let gap = at.saturating_sub(previous);
        if gap > longest.0 {
            longest = (gap, previous);
        }
        previous = previous.max(at);
    }
    longest
}

/// A probe requesting in the background until [`HttpProbe::finish`].
pub struct HttpProbe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<HttpProbeSummary>,
}

impl HttpProbe {
    /// Start GETting `target` at its rate on a thread of its own. Nothing
    /// is awaited: a URL that does not answer yet (a front door with no
    /// route) is downtime the probe measures, not a reason not to run.
    pub fn start(target: HttpTarget) -> Result<HttpProbe, String> {
        let client =
            http::client(REQUEST_TIMEOUT, concat!("runner-http-probe/", env!("CARGO_PKG_VERSION"))).map_err(|e| format!("http probe {}: {e}", target.given))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let given = target.given.clone();
        let thread = std::thread::Builder::new()
            .name("http-probe".into())
            .spawn(move || {
                let started = Instant::now();
                match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime.block_on(request_until_stopped(client, target, started, stopping)),
                    Err(e) => {
                        HttpProbeSummary { url: target.given, errors: vec![format!("cannot start the probe's runtime: {e}")], ..HttpProbeSummary::default() }
                    }
                }
            })
            .map_err(|e| format!("http probe {given}: cannot start the probe thread: {e}"))?;
        Ok(HttpProbe { stop, thread })
    }

    /// Stop requesting, wait for the requests in flight (at most [`REQUEST_TIMEOUT`]), and summarize.
    pub fn finish(self) -> HttpProbeSummary {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_else(|_| HttpProbeSummary { errors: vec!["the probe thread panicked".into()], ..HttpProbeSummary::default() })
    }
}

async fn request_until_stopped(client: reqwest::Client, target: HttpTarget, started: Instant, stop: Arc<AtomicBool>) -> HttpProbeSummary {
    let period = Duration::from_secs_f64(1.0 / f64::from(target.rate));
    let mut ticks = tokio::time::interval(period);
    // A stalled runtime sends the missed requests later, not in a burst.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let target = Arc::new(target);
    let mut in_flight = tokio::task::JoinSet::new();
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (client, target) = (client.clone(), target.clone());
        in_flight.spawn(async move { request(&client, &target, started).await });
        // Collect what has ended, so a long run keeps few tasks.
        while let Some(done) = in_flight.try_join_next() {
            if let Ok(sample) = done {
                samples.push(sample);
            }
        }
    }
    let end = started.elapsed();
    while let Some(done) = in_flight.join_next().await {
        if let Ok(sample) = done {
            samples.push(sample);
        }
    }
    summarize(&target.given, target.rate, &samples, end)
}

/// One GET, timed from `started`.
async fn request(client: &reqwest::Client, target: &HttpTarget, started: Instant) -> Sample {
    let sent = started.elapsed();
    let outcome = http::get(client, target.url.clone()).await;
    let done = started.elapsed();
    match outcome {
        Ok(http::Answered { status, backend: header, body }) => {
            let from_body = || {
                let body = body.trim();
                (target.asks_version() && !body.is_empty() && !body.contains('\n')).then(|| body.chars().take(KEPT_BODY).collect::<String>())
            };
            let backend = header.or_else(from_body);
            let ok = (200..300).contains(&status);
            // As reqwest writes a status: `500 Internal Server Error`.
            let status = reqwest::StatusCode::from_u16(status).map_or_else(|_| status.to_string(), |s| s.to_string());
            let error = (!ok).then(|| match &backend {
                Some(name) => format!("HTTP {status} from {name}"),
                None => format!("HTTP {status}"),
            });
            Sample { sent, done, ok, backend, error }
        }
        Err(e) => Sample { sent, done, ok: false, backend: None, error: Some(http::error_text(&e, REQUEST_TIMEOUT)) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn ok(sent: u64, done: u64, backend: &str) -> Sample {
        Sample { sent: at(sent), done: at(done), ok: true, backend: Some(backend.into()), error: None }
    }

    fn failed(sent: u64, done: u64, error: &str) -> Sample {
        Sample { sent: at(sent), done: at(done), ok: false, backend: None, error: Some(error.into()) }
    }

    #[test]
    fn the_longest_gap_counts_the_start_and_the_end() {
        // From the start to the first answer.
        assert_eq!(longest_gap(&[at(300), at(400), at(500)], at(600)), (at(300), at(0)));
        // Between two answers (given out of order).
        assert_eq!(longest_gap(&[at(900), at(100), at(200)], at(1000)), (at(700), at(200)));
        // From the last answer to the end.
        assert_eq!(longest_gap(&[at(100), at(200)], at(1000)), (at(800), at(200)));
        // No answer at all: the whole probe.
        assert_eq!(longest_gap(&[], at(2500)), (at(2500), at(0)));
    }

    #[test]
    fn percentiles_are_by_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(at).collect();
        assert_eq!(percentile(&sorted, 50.0), at(50));
        assert_eq!(percentile(&sorted, 99.0), at(99));
        assert_eq!(percentile(&sorted, 100.0), at(100));
        assert_eq!(percentile(&[at(7)], 50.0), at(7));
        assert_eq!(percentile(&[at(7)], 99.0), at(7));
        assert_eq!(percentile(&[at(1), at(2), at(3)], 50.0), at(2));
        assert_eq!(percentile(&[], 99.0), Duration::ZERO);
    }

    #[test]
    fn a_summary_counts_failures_backends_and_the_switch_over_time() {
        let samples = vec![
            ok(0, 10, "blue"),
            ok(500, 530, "blue"),
            failed(900, 1900, "timed out after 1 s"),
            Sample { sent: at(1000), done: at(1020), ok: false, backend: Some("green".into()), error: Some("HTTP 500 from green".into()) },
            ok(1500, 1520, "green"),
            failed(1600, 1601, "timed out after 1 s"),
            ok(2100, 2105, "green"),
        ];
        let summary = summarize("http://127.0.3.1:8080/version", 20, &samples, at(2600));
        assert_eq!((summary.requests, summary.ok_requests, summary.failed_requests), (7, 4, 3));
        assert_eq!(summary.longest_gap_ms, 990.0, "from blue's last answer at 530 to green's at 1520");
        assert_eq!(summary.longest_gap_began_at_ms, 530.0);
        // Latencies of the successful answers: 5, 10, 20, 30.
        assert_eq!((summary.p50_ms, summary.p99_ms, summary.max_ms), (10.0, 30.0, 30.0));
        assert_eq!(summary.duration_ms, 2600.0);
        assert_eq!(summary.backends, BTreeMap::from([("blue".into(), 2), ("green".into(), 3)]));
        assert_eq!(summary.errors, vec!["2x: timed out after 1 s".to_string(), "1x: HTTP 500 from green".to_string()]);
        let t = &summary.timeline;
        assert_eq!((t.bucket_ms, t.buckets.len()), (1000, 3));
        assert_eq!(t.buckets[0], HttpBucket { ok: 2, failed: 0, backends: BTreeMap::from([("blue".into(), 2)]) });
        assert_eq!(t.buckets[1], HttpBucket { ok: 1, failed: 3, backends: BTreeMap::from([("green".into(), 2)]) });
        assert_eq!(t.buckets[2].shares(), BTreeMap::from([("green", 1.0)]), "the last second all green");
        let line = summary.line();
        assert!(line.starts_with("7 requests (20/s), 3 failed, longest gap 990 ms (at +0.5 s), p50 10.0 ms, p99 30.0 ms, max 30.0 ms"), "{line}");
        assert!(line.ends_with("backends: blue 2, green 3 (last 1 s: green 100%)"), "{line}");
    }

    #[test]
    fn the_end_is_never_before_the_last_answer() {
        // An answer that ended after the stop (in flight at the time) closes no negative gap.
        let summary = summarize("u", 1, &[ok(0, 1200, "blue")], at(1000));
        assert_eq!(summary.duration_ms, 1200.0);
        assert_eq!(summary.longest_gap_ms, 1200.0);
    }

    #[test]
    fn the_timeline_stays_bounded_and_keeps_every_answer() {
        let samples: Vec<Sample> = (0..4000).map(|s| ok(s * 1000, s * 1000 + 1, if s < 2000 { "blue" } else { "green" })).collect();
        let summary = summarize("u", 1, &samples, at(4_000_000));
        let t = &summary.timeline;
        assert!(t.buckets.len() <= MAX_BUCKETS, "{}", t.buckets.len());
        assert_eq!(t.bucket_ms, 4000);
        assert_eq!(t.buckets.iter().map(|b| b.ok).sum::<u32>(), 4000);
        let blue: u32 = t.buckets.iter().filter_map(|b| b.backends.get("blue")).sum();
        assert_eq!(blue, 2000);
        assert_eq!(t.buckets.last().unwrap().shares(), BTreeMap::from([("green", 1.0)]));
    }

    #[test]
    fn only_ip_addresses_and_localhost_are_probed() {
        assert!(HttpTarget::parse("http://127.0.3.1:8080/version", 20).is_ok());
        assert!(HttpTarget::parse("http://[::1]:8080/", 20).is_ok());
        let local = HttpTarget::parse("http://localhost:8080/health", 20).unwrap();
        assert_eq!(local.url.as_str(), "http://127.0.0.1:8080/health");
        assert_eq!(local.given, "http://localhost:8080/health");
        assert!(!local.asks_version());
        assert!(HttpTarget::parse("http://127.0.0.1/version/", 20).unwrap().asks_version());
        let named = HttpTarget::parse("http://frontdoor.lab:8080/", 20).unwrap_err();
        assert!(named.contains("is a name"), "{named}");
        assert!(HttpTarget::parse("https://127.0.0.1/", 20).unwrap_err().contains("only http://"));
        assert!(HttpTarget::parse("127.0.0.1:8080", 20).is_err());
        assert!(HttpTarget::parse("http://user:pw@127.0.0.1/", 20).unwrap_err().contains("credentials"));
    }

    #[test]
    fn a_probe_names_the_backend_from_the_header() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nX-Runner-Backend: blue\r\nContent-Length: 4\r\nConnection: close\r\n\r\n1.29");
            }
        });
        let probe = HttpProbe::start(HttpTarget::parse(&format!("http://localhost:{port}/version"), 50).unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let summary = probe.finish();
        assert!(summary.requests >= 5, "{summary:?}");
        assert_eq!(summary.failed_requests, 0, "{summary:?}");
        assert_eq!(summary.backends.keys().collect::<Vec<_>>(), ["blue"], "{summary:?}");
        assert_eq!(summary.url, format!("http://localhost:{port}/version"));
    }

    #[test]
    fn a_probe_of_a_closed_port_counts_every_request_failed() {
        // A port nothing listens on: bind one, learn it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let probe = HttpProbe::start(HttpTarget::parse(&format!("http://127.0.0.1:{port}/"), 50).unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let summary = probe.finish();
        assert!(summary.requests >= 5, "{summary:?}");
        assert_eq!(summary.failed_requests, summary.requests, "{summary:?}");
        assert!(summary.longest_gap_ms >= 300.0, "{summary:?}");
        assert!(summary.errors.iter().all(|e| e.contains("cannot connect")), "{:?}", summary.errors);
    }
}
