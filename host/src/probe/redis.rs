//! The Redis write probe: a cluster-aware client (redis-rs `cluster-async`)
//! that writes numbered keys at a steady rate through a run, reads each one
//! back, and afterwards checks that every acknowledged write is still there.
//!
//! A write counts as acknowledged once `WAIT 1` confirms that a replica holds
//! it: only then would a failover keep it. `SET` and `WAIT` go in one
//! pipeline, so they share a connection to the key's master and `WAIT`
//! speaks for that very `SET` (a `WAIT` sent on its own is routed to every
//! master by the cluster client).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionAddr, IntoConnectionInfo, Value};

use super::{ProbeSummary, Tally, note_lost};

/// The key of write `n`.
pub fn key(n: u64) -> String {
    format!("runner-probe:{n}")
}

/// How long `WAIT` waits for a replica before the write counts as not acknowledged.
const WAIT_MS: u64 = 500;
/// How long one operation may keep retrying (redirects, a failover in progress) before it counts as failed.
const OP_DEADLINE: Duration = Duration::from_secs(10);
/// How long connecting to the cluster may take at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Probe keys expire after this long, so a probe leaves nothing behind for good.
const KEY_TTL_SECONDS: u64 = 3600;

/// A running write probe.
pub struct RedisProbe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<ProbeSummary>,
    what: String,
}

impl RedisProbe {
    /// Start writing on its own thread (own tokio runtime) against the
    /// cluster reachable at `seeds` (`host:port` of members), at `rate` ops/s.
    /// Fails when the seeds are malformed or the cluster cannot be reached.
    pub fn start(seeds: Vec<String>, password: Option<String>, rate: u32) -> Result<RedisProbe, String> {
        if seeds.is_empty() {
            return Err("the Redis probe needs at least one seed address".into());
        }
        if rate == 0 {
            return Err("the Redis probe rate must be at least 1 op/s".into());
        }
        let mut nodes = Vec::new();
        for seed in &seeds {
            let (host, port) = seed.rsplit_once(':').ok_or_else(|| format!("seed `{seed}` is not host:port"))?;
            let port: u16 = port.parse().map_err(|_| format!("seed `{seed}`: `{port}` is not a port"))?;
            nodes.push(ConnectionAddr::Tcp(host.trim_matches(['[', ']']).to_string(), port).into_connection_info().map_err(|e| format!("seed `{seed}`: {e}"))?);
        }
        let mut builder = ClusterClientBuilder::new(nodes)
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_secs(2))
            .retries(8)
            .min_retry_wait(10)
            .max_retry_wait(1000);
        if let Some(password) = &password {
            builder = builder.password(password);
        }
        let client = builder.build().map_err(|e| format!("Redis probe: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("Redis probe: a runtime: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("redis-probe".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let connection = match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_connection()).await {
                        Ok(Ok(connection)) => connection,
                        Ok(Err(e)) => {
                            let _ = ready_tx.send(Err(format!("Redis probe: connecting to the cluster: {e}")));
                            return ProbeSummary::default();
                        }
                        Err(_) => {
                            let _ = ready_tx.send(Err(format!("Redis probe: connecting to the cluster timed out after {} s", CONNECT_TIMEOUT.as_secs())));
                            return ProbeSummary::default();
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    Probe::new(connection, rate).run(&stopping).await
                })
            })
            .map_err(|e| format!("Redis probe: a thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(RedisProbe { stop, thread, what: String::new() }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err("Redis probe: its thread ended before connecting".into()),
        }
    }

    /// Name what is probed in the summary (`Service default/redis-cluster at ...`).
    pub fn label(&mut self, what: String) {
        self.what = what;
    }

    /// Stop, then verify every acknowledged key is present with its value; the summary.
    pub fn finish(self) -> ProbeSummary {
        self.stop.store(true, Ordering::SeqCst);
        let mut summary =
            self.thread.join().unwrap_or_else(|_| ProbeSummary { verify_error: Some("the probe thread panicked".into()), ..ProbeSummary::default() });
        summary.what = self.what;
        summary
    }
}

/// The probe's state on its thread.
struct Probe {
    connection: ClusterConnection,
    interval: Duration,
    /// Distinguishes this run's values from an earlier run's under the same keys.
    nonce: String,
    acknowledged: Vec<u64>,
}

/// How one write went.
enum Write {
    Acknowledged,
    /// Written, but no replica confirmed it within [`WAIT_MS`].
    Unconfirmed,
    Failed(String),
}

impl Probe {
    fn new(connection: ClusterConnection, rate: u32) -> Self {
        let nonce = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() & 0xffff_ffff_ffff);
        Probe { connection, interval: Duration::from_secs_f64(1.0 / f64::from(rate)), nonce, acknowledged: Vec::new() }
    }

    fn value(&self, n: u64) -> String {
        format!("{}:{n}", self.nonce)
    }

    async fn run(mut self, stop: &AtomicBool) -> ProbeSummary {
        let mut tally = Tally::new();
        let mut next = Instant::now();
        let mut unconfirmed = 0u64;
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let op_started = Instant::now();
            let written = match self.write(n).await {
                Write::Acknowledged => {
                    tally.acknowledged(op_started);
                    self.acknowledged.push(n);
                    true
                }
                Write::Unconfirmed => {
                    tally.unacknowledged();
                    unconfirmed += 1;
                    true
                }
                Write::Failed(e) => {
                    tally.failed(&format!("SET {}: {e}", key(n)));
                    false
                }
            };
            if written && let Err(e) = self.read_back(n).await {
                tally.failed_after_write(&format!("GET {}: {e}", key(n)));
            }
            tally.took(op_started.elapsed());
            n += 1;
            // A steady rate: no burst to catch up after a slow operation.
            next = (next + self.interval).max(Instant::now());
            tokio::time::sleep_until(next.into()).await;
        }
        let mut summary = tally.finish(String::new());
        if unconfirmed > 0 {
            summary.errors.push(format!("{unconfirmed} write(s) succeeded but no replica confirmed them within {WAIT_MS} ms (not counted as acknowledged)"));
        }
        self.verify(&mut summary).await;
        summary
    }

    /// `SET` + `WAIT 1` in one pipeline, retried until [`OP_DEADLINE`] while
    /// the cluster redirects or is between masters.
    async fn write(&mut self, n: u64) -> Write {
        let (key, value) = (key(n), self.value(n));
        let started = Instant::now();
        loop {
            let mut pipe = redis::pipe();
            pipe.cmd("SET").arg(&key).arg(&value).arg("EX").arg(KEY_TTL_SECONDS).cmd("WAIT").arg(1).arg(WAIT_MS);
            let problem = match pipe.query_async::<Vec<Value>>(&mut self.connection).await {
                Ok(replies) => match replies.as_slice() {
                    [Value::Okay, Value::Int(replicas)] => return if *replicas >= 1 { Write::Acknowledged } else { Write::Unconfirmed },
                    other => format!("unexpected reply {other:?}"),
                },
                Err(e) => e.to_string(),
            };
            if started.elapsed() >= OP_DEADLINE {
                return Write::Failed(problem);
            }
            // A pipeline's MOVED or READONLY reaches us instead of the client's
            // redirect handling: a plain SET (same key, same value) lets the
            // client follow the redirect and refresh its slot map; then the
            // pipeline runs again for the acknowledgement.
            if let Err(e) = redis::cmd("SET").arg(&key).arg(&value).arg("EX").arg(KEY_TTL_SECONDS).query_async::<()>(&mut self.connection).await
                && started.elapsed() >= OP_DEADLINE
            {
                return Write::Failed(e.to_string());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn read_back(&mut self, n: u64) -> Result<(), String> {
        let got: Option<String> = redis::cmd("GET").arg(key(n)).query_async(&mut self.connection).await.map_err(|e| e.to_string())?;
        match got {
            Some(v) if v == self.value(n) => Ok(()),
            Some(v) => Err(format!("read back `{v}`, expected `{}`", self.value(n))),
            None => Err("read back nothing right after writing it".into()),
        }
    }

    /// Read every acknowledged key back; a key missing or changed is lost.
    async fn verify(&mut self, summary: &mut ProbeSummary) {
        let acknowledged = std::mem::take(&mut self.acknowledged);
        let mut lost = Vec::new();
        for chunk in acknowledged.chunks(64) {
            let reads = chunk.iter().map(|&n| {
                let mut connection = self.connection.clone();
                async move {
                    // Right after a failover a read may meet a redirect storm: try a few times.
                    let mut last = String::new();
                    for attempt in 0..5u64 {
                        match redis::cmd("GET").arg(key(n)).query_async::<Option<String>>(&mut connection).await {
                            Ok(got) => return (n, Ok(got)),
                            Err(e) => last = e.to_string(),
                        }
                        tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
                    }
                    (n, Err(last))
                }
            });
            for (n, got) in join_all(reads).await {
                match got {
                    Ok(Some(v)) if v == self.value(n) => {}
                    Ok(_) => lost.push(key(n)),
                    Err(e) => {
                        if summary.errors.len() < super::KEPT_ERRORS {
                            summary.errors.push(format!("verify GET {}: {e}", key(n)));
                        }
                        lost.push(key(n));
                    }
                }
            }
        }
        note_lost(summary, lost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_seeds_are_refused_before_connecting() {
        assert!(RedisProbe::start(vec![], None, 10).is_err_and(|e| e.contains("at least one seed")));
        assert!(RedisProbe::start(vec!["127.0.0.1".into()], None, 10).is_err_and(|e| e.contains("not host:port")));
        assert!(RedisProbe::start(vec!["127.0.0.1:x".into()], None, 10).is_err_and(|e| e.contains("not a port")));
        assert!(RedisProbe::start(vec!["127.0.0.1:1".into()], None, 0).is_err_and(|e| e.contains("at least 1 op/s")));
        assert_eq!(key(7), "runner-probe:7");
    }

    #[test]
    fn an_unreachable_cluster_fails_start() {
        // Port 1 on loopback: nothing listens there.
        let error = RedisProbe::start(vec!["127.0.0.1:1".into()], Some("pw".into()), 10).err().unwrap_or_default();
        assert!(error.contains("connecting to the cluster"), "{error}");
        assert!(!error.contains("pw"), "{error}");
    }
}
