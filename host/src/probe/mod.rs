//! Write probes: a client that writes numbered records to a database while a
//! pattern runs, the way an application would, and afterwards checks that
//! every write the database acknowledged is still there.
//!
//! A probe measures what a policy cannot see from the inside: how long
//! writes were unavailable (the longest gap between two acknowledged
//! writes) and whether an acknowledged write was lost. It runs on its own
//! thread with its own async runtime, so a busy component never delays
//! it, and it talks to the database the way clients do (through the
//! primary's Service), not through the backends a component uses.
//!
//! [`http`] is their counterpart for a web application: GETs of one URL
//! (the lab's front door) at a steady rate, counting failed requests, the
//! longest gap between successful answers, and which backend answered.

pub mod http;
pub mod mongo;
pub mod postgres;
pub mod redis;

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::backends::members::resolve_credential;
use crate::backends::{Kube, ObjectRef};
use crate::target::{Database, Engine, Target};

/// Writes per second unless told otherwise: twice the floor of 100/s.
pub const DEFAULT_RATE: u32 = 200;

/// Distinct error messages a summary keeps (each with a count).
const KEPT_ERRORS: usize = 8;

/// Lost keys a summary lists by name.
const KEPT_LOST: usize = 20;

/// The timeline's finest bucket: 100 ms, fine enough to see a failover's gap.
const BUCKET_MS: u64 = 100;

/// Most buckets a timeline holds; a longer run merges neighbours (doubling
/// the bucket width) so a one-hour pattern keeps a bounded timeline.
pub const MAX_BUCKETS: usize = 1200;

/// What a probe measured over one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProbeSummary {
    /// What was probed (`postgres-primary at 127.0.2.1:5432, table runner_probe`).
    pub what: String,
    /// Writes attempted.
    pub ops: u64,
    /// Writes the database acknowledged (committed; for Redis: held by a
    /// replica; for MongoDB: `w: "majority"`).
    pub acknowledged_writes: u64,
    /// Writes that failed or got no answer in time (their outcome is unknown,
    /// so they are never counted as lost).
    pub failed_ops: u64,
    /// Acknowledged writes missing afterwards: must be 0.
    pub lost_writes: u64,
    /// The first few lost writes by key.
    pub lost_sample: Vec<String>,
    /// The longest time without an acknowledged write: the downtime.
    pub downtime_ms: f64,
    /// When that longest gap began, in ms from the probe's start.
    pub downtime_began_at_ms: f64,
    /// The slowest acknowledged write (Redis: the slowest write with its read-back).
    pub max_latency_ms: f64,
    /// How long the probe wrote.
    pub duration_ms: f64,
    /// Acknowledged writes per second over the whole run.
    pub acknowledged_per_s: f64,
    /// Distinct errors seen, with how often (`12x: cannot execute INSERT in a read-only transaction`).
    pub errors: Vec<String>,
    /// Why the check afterwards could not be made, if it could not
    /// (then `lost_writes` is unknown and counted as every acknowledged write).
    pub verify_error: Option<String>,
    /// Writes per time bucket over the run: the write-gap timeline a run report plots.
    pub timeline: ProbeTimeline,
}

/// A probe's writes per time bucket, from its start: at most
/// [`MAX_BUCKETS`] buckets, each [`ProbeTimeline::bucket_ms`] wide.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProbeTimeline {
    /// How wide one bucket is, in ms: 100, doubled each time the run outgrew the buckets.
    pub bucket_ms: u64,
    /// One per bucket, in order; bucket `i` covers `[i, i+1) * bucket_ms` from the probe's start.
    pub buckets: Vec<ProbeBucket>,
}

/// The writes that ended within one bucket of a [`ProbeTimeline`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ProbeBucket {
    /// Writes acknowledged in it.
    pub acknowledged: u32,
    /// Writes that failed in it.
    pub failed: u32,
    /// Its slowest acknowledged write, in ms (0 when none was acknowledged).
    pub max_latency_ms: f64,
}

impl ProbeTimeline {
    fn new() -> Self {
        ProbeTimeline { bucket_ms: BUCKET_MS, buckets: Vec::new() }
    }

    /// The bucket a write ending `at` after the probe's start falls in,
    /// coarsening the timeline first if `at` lies past its last bucket.
    fn bucket(&mut self, at: Duration) -> &mut ProbeBucket {
        let at_ms = at.as_millis() as u64;
        while at_ms / self.bucket_ms >= MAX_BUCKETS as u64 {
            self.coarsen();
        }
        let index = (at_ms / self.bucket_ms) as usize;
        if self.buckets.len() <= index {
            self.buckets.resize(index + 1, ProbeBucket::default());
        }
        &mut self.buckets[index]
    }

    /// Merge each pair of neighbouring buckets: twice as wide, half as many.
    fn coarsen(&mut self) {
        self.buckets = self
            .buckets
            .chunks(2)
            .map(|pair| ProbeBucket {
                acknowledged: pair.iter().map(|b| b.acknowledged).sum(),
                failed: pair.iter().map(|b| b.failed).sum(),
                max_latency_ms: pair.iter().map(|b| b.max_latency_ms).fold(0.0, f64::max),
            })
            .collect();
        self.bucket_ms *= 2;
    }

    fn acknowledged(&mut self, at: Duration, latency: Duration) {
        let bucket = self.bucket(at);
        bucket.acknowledged = bucket.acknowledged.saturating_add(1);
        bucket.max_latency_ms = bucket.max_latency_ms.max(ms(latency));
    }

    fn failed(&mut self, at: Duration) {
        let bucket = self.bucket(at);
        bucket.failed = bucket.failed.saturating_add(1);
    }

    fn took(&mut self, at: Duration, took: Duration) {
        let bucket = self.bucket(at);
        bucket.max_latency_ms = bucket.max_latency_ms.max(ms(took));
    }
}

impl ProbeSummary {
    /// One line for the text report.
    pub fn line(&self) -> String {
        let verified = match &self.verify_error {
            Some(e) => format!("NOT VERIFIED ({e})"),
            None => format!("{} lost", self.lost_writes),
        };
        format!(
            "{} acknowledged writes ({:.0}/s), {} failed, longest gap {:.0} ms (at +{:.1} s), slowest write {:.0} ms; {verified}",
            self.acknowledged_writes,
            self.acknowledged_per_s,
            self.failed_ops,
            self.downtime_ms,
            self.downtime_began_at_ms / 1000.0,
            self.max_latency_ms
        )
    }

    /// Whether the run kept every acknowledged write and the check was made.
    pub fn no_loss(&self) -> bool {
        self.lost_writes == 0 && self.verify_error.is_none()
    }
}

/// The running tally of a probe: acknowledgements, failures, gaps.
#[derive(Debug)]
pub(crate) struct Tally {
    started: Instant,
    last_ack: Instant,
    ops: u64,
    acknowledged: u64,
    failed: u64,
    longest_gap: Duration,
    longest_gap_began: Duration,
    max_latency: Duration,
    errors: Vec<(String, u64)>,
    timeline: ProbeTimeline,
}

impl Tally {
    /// A tally whose clock starts now (the first gap is measured from here).
    pub(crate) fn new() -> Self {
        let now = Instant::now();
        Tally {
            started: now,
            last_ack: now,
            ops: 0,
            acknowledged: 0,
            failed: 0,
            longest_gap: Duration::ZERO,
            longest_gap_began: Duration::ZERO,
            max_latency: Duration::ZERO,
            errors: Vec::new(),
            timeline: ProbeTimeline::new(),
        }
    }

    /// A write sent at `sent` was acknowledged now.
    pub(crate) fn acknowledged(&mut self, sent: Instant) {
        let now = Instant::now();
        self.ops += 1;
        self.acknowledged += 1;
        self.max_latency = self.max_latency.max(now - sent);
        self.timeline.acknowledged(now - self.started, now - sent);
        self.close_gap(now);
    }

    /// A write failed (or timed out) with `error`.
    pub(crate) fn failed(&mut self, error: &str) {
        self.ops += 1;
        self.failed_after_write(error);
    }

    /// A write went through but was not acknowledged (Redis: no replica
    /// confirmed it in time): neither acknowledged nor failed.
    pub(crate) fn unacknowledged(&mut self) {
        self.ops += 1;
    }

    /// The operation of a write already counted failed afterwards (Redis:
    /// reading it back), with `error`.
    pub(crate) fn failed_after_write(&mut self, error: &str) {
        self.failed += 1;
        self.timeline.failed(self.started.elapsed());
        // Keep messages short and distinct: the first line, without per-write detail.
        let error: String = error.lines().next().unwrap_or_default().chars().take(160).collect();
        if let Some((_, count)) = self.errors.iter_mut().find(|(e, _)| *e == error) {
            *count += 1;
        } else if self.errors.len() < KEPT_ERRORS {
            self.errors.push((error, 1));
        }
    }

    /// A whole operation took `took` (Redis counts every write with its read-back).
    pub(crate) fn took(&mut self, took: Duration) {
        self.max_latency = self.max_latency.max(took);
        self.timeline.took(self.started.elapsed(), took);
    }

    fn close_gap(&mut self, now: Instant) {
        let gap = now - self.last_ack;
        if gap > self.longest_gap {
            self.longest_gap = gap;
            self.longest_gap_began = self.last_ack - self.started;
        }
        self.last_ack = now;
    }

    /// The summary once writing has stopped (a gap still open counts up to
    /// now); `lost` is filled in by the check afterwards.
    pub(crate) fn finish(mut self, what: String) -> ProbeSummary {
        let now = Instant::now();
        self.close_gap(now);
        let duration = now - self.started;
        ProbeSummary {
            what,
            ops: self.ops,
            acknowledged_writes: self.acknowledged,
            failed_ops: self.failed,
            lost_writes: 0,
            lost_sample: Vec::new(),
            downtime_ms: ms(self.longest_gap),
            downtime_began_at_ms: ms(self.longest_gap_began),
            max_latency_ms: ms(self.max_latency),
            duration_ms: ms(duration),
            acknowledged_per_s: self.acknowledged as f64 / duration.as_secs_f64().max(1e-3),
            errors: self.errors.into_iter().map(|(e, n)| format!("{n}x: {e}")).collect(),
            verify_error: None,
            timeline: self.timeline,
        }
    }
}

/// Record the lost keys (acknowledged, then missing) in `summary`.
pub(crate) fn note_lost(summary: &mut ProbeSummary, lost: impl IntoIterator<Item = String>) {
    for key in lost {
        summary.lost_writes += 1;
        if summary.lost_sample.len() < KEPT_LOST {
            summary.lost_sample.push(key);
        }
    }
}

fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// The address clients use for `service`: its cluster IP and first port.
/// Reachable from inside the cluster, and from this machine in the lab.
pub async fn service_address(kube: &dyn Kube, namespace: &str, service: &str) -> Result<(String, u16), String> {
    let object = ObjectRef { api_version: "v1".into(), kind: "Service".into(), namespace: Some(namespace.into()), name: service.into() };
    let text = kube.get(&object).await.map_err(|e| format!("Service {namespace}/{service}: {e}"))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("Service {namespace}/{service}: {e}"))?;
    let ip = value["spec"]["clusterIP"]
        .as_str()
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .ok_or_else(|| format!("Service {namespace}/{service} has no cluster IP"))?;
    let port =
        value["spec"]["ports"][0]["port"].as_u64().and_then(|p| u16::try_from(p).ok()).ok_or_else(|| format!("Service {namespace}/{service} has no port"))?;
    Ok((ip.to_string(), port))
}

/// A probe writing in the background.
pub enum WriteProbe {
    /// Rows into a PostgreSQL primary.
    Postgres(postgres::PostgresProbe),
    /// Keys into a Redis cluster, each confirmed by a replica.
    Redis(redis::RedisProbe),
    /// Documents into a MongoDB replica set, each acknowledged by a majority.
    Mongo(mongo::MongoProbe),
}

/// Why a probe could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The operator named something the target does not have.
    #[error("{0}")]
    Bad(String),
    /// The database or the cluster could not be reached, or refused the first write.
    #[error("{0}")]
    Unreachable(String),
}

impl WriteProbe {
    /// Start probing `database` (a database cluster `target` names) through
    /// its primary Service, with credentials resolved through `kube`.
    /// Returns once a first write was acknowledged.
    pub async fn start(target: &Target, kube: &dyn Kube, database: &str, table: &str, rate: u32) -> Result<WriteProbe, ProbeError> {
        let db = find_database(target, database)?;
        let namespace = db.namespace.clone().or_else(|| target.namespace.clone()).unwrap_or_else(|| "default".into());
        let service = db
            .primary_service
            .clone()
            .ok_or_else(|| ProbeError::Bad(format!("--write-probe: database `{database}` names no primaryService to write through")))?;
        let (host, port) = service_address(kube, &namespace, &service).await.map_err(|e| ProbeError::Unreachable(format!("write probe: {e}")))?;
        let password =
            resolve_credential(db, kube, &namespace).await.map_err(|e| ProbeError::Unreachable(format!("write probe: credentials for {database}: {e}")))?;
        match db.engine {
            Engine::Postgres => {
                let endpoint = postgres::Endpoint {
                    host,
                    port,
                    user: db.user.clone().unwrap_or_else(|| "postgres".into()),
                    password,
                    database: "postgres".into(),
                    table: table.to_string(),
                    label: format!("Service {namespace}/{service}"),
                };
                postgres::PostgresProbe::start(endpoint, rate).await.map(WriteProbe::Postgres).map_err(ProbeError::Unreachable)
            }
            Engine::Redis => {
                // The cluster client learns every master from this seed (CLUSTER SLOTS).
                let seeds = vec![format!("{host}:{port}")];
                let what = format!("Service {namespace}/{service} at {host}:{port}");
                let mut probe = tokio::task::spawn_blocking(move || redis::RedisProbe::start(seeds, Some(password.expose().to_string()), rate))
                    .await
                    .map_err(|e| ProbeError::Unreachable(format!("write probe: {e}")))?
                    .map_err(|e| ProbeError::Unreachable(format!("write probe on {what}: {e}")))?;
                probe.label(what);
                Ok(WriteProbe::Redis(probe))
            }
            Engine::Mongo => {
                let endpoint = mongo::Endpoint {
                    host,
                    port,
                    user: db.user.clone().unwrap_or_else(|| "root".into()),
                    password: password.expose().to_string(),
                    collection: table.to_string(),
                    label: format!("Service {namespace}/{service}"),
                };
                tokio::task::spawn_blocking(move || mongo::MongoProbe::start(endpoint, rate))
                    .await
                    .map_err(|e| ProbeError::Unreachable(format!("write probe: {e}")))?
                    .map(WriteProbe::Mongo)
                    .map_err(|e| ProbeError::Unreachable(format!("write probe: {e}")))
            }
        }
    }

    /// Stop writing, check every acknowledged write, and summarize.
    pub fn finish(self) -> ProbeSummary {
        match self {
            WriteProbe::Postgres(probe) => probe.finish(),
            WriteProbe::Redis(probe) => probe.finish(),
            WriteProbe::Mongo(probe) => probe.finish(),
        }
    }
}

fn find_database<'a>(target: &'a Target, name: &str) -> Result<&'a Database, ProbeError> {
    target.databases.iter().find(|d| d.name == name).ok_or_else(|| {
        let known: Vec<&str> = target.databases.iter().map(|d| d.name.as_str()).collect();
        ProbeError::Bad(format!(
            "--write-probe: target {} has no database `{name}` (it has: {})",
            target.label(),
            if known.is_empty() { "none".into() } else { known.join(", ") }
        ))
    })
}

/// A unique tag for one probe run, so runs never mix their records.
pub(crate) fn run_tag() -> String {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}-{}", since_epoch.as_millis(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_between_acknowledgements_is_the_downtime() {
        let mut tally = Tally::new();
        let sent = Instant::now();
        tally.acknowledged(sent);
        std::thread::sleep(Duration::from_millis(30));
        tally.failed("cannot execute INSERT in a read-only transaction\nDETAIL: x");
        tally.failed("cannot execute INSERT in a read-only transaction\nDETAIL: y");
        tally.acknowledged(Instant::now());
        let summary = tally.finish("test".into());
        assert_eq!(summary.acknowledged_writes, 2);
        assert_eq!(summary.failed_ops, 2);
        assert_eq!(summary.ops, 4);
        assert!(summary.downtime_ms >= 30.0, "{summary:?}");
        assert_eq!(summary.errors, vec!["2x: cannot execute INSERT in a read-only transaction".to_string()]);
    }

    #[test]
    fn a_gap_still_open_at_the_end_counts() {
        let mut tally = Tally::new();
        tally.acknowledged(Instant::now());
        std::thread::sleep(Duration::from_millis(25));
        let summary = tally.finish("test".into());
        assert!(summary.downtime_ms >= 25.0, "{summary:?}");
    }

    #[test]
    fn the_timeline_counts_writes_per_bucket_and_stays_bounded() {
        let mut timeline = ProbeTimeline::new();
        timeline.acknowledged(Duration::from_millis(50), Duration::from_millis(3));
        timeline.acknowledged(Duration::from_millis(60), Duration::from_millis(7));
        timeline.failed(Duration::from_millis(250));
        assert_eq!(timeline.bucket_ms, 100);
        assert_eq!(timeline.buckets.len(), 3);
        assert_eq!(timeline.buckets[0], ProbeBucket { acknowledged: 2, failed: 0, max_latency_ms: 7.0 });
        assert_eq!(timeline.buckets[1], ProbeBucket::default(), "a bucket with no write is the gap");
        assert_eq!(timeline.buckets[2].failed, 1);
        // An hour-long run: the buckets widen, their number stays bounded, no write is dropped.
        for second in 0..3600 {
            timeline.acknowledged(Duration::from_secs(second), Duration::from_millis(1));
        }
        assert!(timeline.buckets.len() <= MAX_BUCKETS, "{}", timeline.buckets.len());
        assert_eq!(timeline.bucket_ms, 3200);
        assert_eq!(timeline.buckets.iter().map(|b| b.acknowledged).sum::<u32>(), 3602);
        assert_eq!(timeline.buckets.iter().map(|b| b.failed).sum::<u32>(), 1);
        assert_eq!(timeline.buckets[0].max_latency_ms, 7.0);
    }

    #[test]
    fn lost_writes_are_counted_and_sampled() {
        let mut summary = ProbeSummary::default();
        note_lost(&mut summary, (0..30).map(|n| n.to_string()));
        assert_eq!(summary.lost_writes, 30);
        assert_eq!(summary.lost_sample.len(), KEPT_LOST);
        assert!(!summary.no_loss());
    }
}
