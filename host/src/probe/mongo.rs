//! The MongoDB write probe: a replica-set client (the official driver,
//! seeded with the Service's address; it finds the members and the primary
//! itself, as applications do) that inserts numbered documents at a steady
//! rate through a run, and afterwards checks that every acknowledged insert
//! is still there.
//!
//! An insert counts as acknowledged when it returns with write concern
//! `w: "majority"`: only then does MongoDB promise it survives an election.
//! Retryable writes are off, so an insert interrupted by a step-down counts
//! as failed (its outcome unknown, never counted lost) rather than being
//! retried behind the probe's back.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use mongodb::bson::{DateTime, Document, doc};
use mongodb::options::{ClientOptions, Credential, ReadConcern, ServerAddress, WriteConcern};
use mongodb::{Client, Collection};

use super::{ProbeSummary, Tally, note_lost, run_tag};

/// The database the probe writes in.
pub const DATABASE: &str = "runner";
/// How long the driver may look for a primary before an insert fails (an election is under way).
const SELECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a majority acknowledgement may take before the insert counts as failed.
const MAJORITY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting may take at start, and the check afterwards may keep retrying.
const SETTLE: Duration = Duration::from_secs(30);

/// Where the probe writes.
pub struct Endpoint {
    /// The seed's host (the Service's cluster IP): the driver discovers the members from it.
    pub host: String,
    /// The seed's port.
    pub port: u16,
    /// The user, authenticated against `admin`.
    pub user: String,
    /// Its password; never printed.
    pub password: String,
    /// The collection in [`DATABASE`].
    pub collection: String,
    /// How the summary names it (`Service default/mongo`).
    pub label: String,
}

/// A running write probe.
pub struct MongoProbe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<ProbeSummary>,
    what: String,
}

impl MongoProbe {
    /// Start inserting on its own thread (own tokio runtime) at `rate`
    /// documents/s. Returns once a first insert was acknowledged by a majority.
    pub fn start(endpoint: Endpoint, rate: u32) -> Result<MongoProbe, String> {
        if rate == 0 {
            return Err("the MongoDB probe rate must be at least 1 write/s".into());
        }
        let what = format!("{} at {}:{}, collection {DATABASE}.{}", endpoint.label, endpoint.host, endpoint.port, endpoint.collection);
        let mut options = ClientOptions::default();
        options.hosts = vec![ServerAddress::Tcp { host: endpoint.host.clone(), port: Some(endpoint.port) }];
        options.app_name = Some("runner-probe".into());
        options.server_selection_timeout = Some(SELECTION_TIMEOUT);
        options.connect_timeout = Some(SELECTION_TIMEOUT);
        options.retry_writes = Some(false);
        options.retry_reads = Some(false);
        options.credential =
            Some(Credential::builder().username(endpoint.user.clone()).password(endpoint.password.clone()).source("admin".to_string()).build());
        let mut majority = WriteConcern::majority();
        majority.w_timeout = Some(MAJORITY_TIMEOUT);
        options.write_concern = Some(majority);
        let client = Client::with_options(options).map_err(|e| format!("MongoDB probe: {e}"))?;
        let collection = client.database(DATABASE).collection::<Document>(&endpoint.collection);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("MongoDB probe: a runtime: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("mongo-probe".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut probe = Probe { collection, tag: run_tag(), interval: Duration::from_secs_f64(1.0 / f64::from(rate)), acknowledged: Vec::new() };
                    let deadline = Instant::now() + SETTLE;
                    // The first insert proves the set has a primary and takes majority writes.
                    loop {
                        match probe.insert(0).await {
                            Ok(()) => break,
                            Err(e) if Instant::now() >= deadline => {
                                let _ = ready_tx.send(Err(format!("MongoDB probe: no acknowledged write within {} s: {e}", SETTLE.as_secs())));
                                return ProbeSummary::default();
                            }
                            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                        }
                    }
                    let _ = ready_tx.send(Ok(()));
                    probe.run(&stopping).await
                })
            })
            .map_err(|e| format!("MongoDB probe: a thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(MongoProbe { stop, thread, what }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e.replace(&endpoint.password, "********"))
            }
            Err(_) => Err("MongoDB probe: its thread ended before writing".into()),
        }
    }

    /// Stop, then verify every acknowledged document is present; the summary.
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
    collection: Collection<Document>,
    /// This run's documents carry it, so runs never mix.
    tag: String,
    interval: Duration,
    acknowledged: Vec<i64>,
}

impl Probe {
    async fn insert(&mut self, n: i64) -> Result<(), String> {
        let document = doc! {"run": &self.tag, "seq": n, "written_at": DateTime::now()};
        self.collection.insert_one(document).await.map(|_| ()).map_err(|e| e.to_string())
    }

    async fn run(mut self, stop: &AtomicBool) -> ProbeSummary {
        let mut tally = Tally::new();
        tally.acknowledged(Instant::now());
        self.acknowledged.push(0);
        let mut next = Instant::now();
        let mut n = 1i64;
        while !stop.load(Ordering::SeqCst) {
            let sent = Instant::now();
            match self.insert(n).await {
                Ok(()) => {
                    tally.acknowledged(sent);
                    self.acknowledged.push(n);
                }
                Err(e) => tally.failed(&e),
            }
            n += 1;
            // A steady rate: no burst to catch up after a slow insert.
            next = (next + self.interval).max(Instant::now());
            tokio::time::sleep_until(next.into()).await;
        }
        let mut summary = tally.finish(String::new());
        match self.written().await {
            Ok(found) => note_lost(&mut summary, self.acknowledged.iter().filter(|n| !found.contains(n)).map(|n| format!("{{run: {}, seq: {n}}}", self.tag))),
            Err(e) => summary.verify_error = Some(e),
        }
        summary
    }

    /// Every `seq` of this run the primary holds with majority read concern,
    /// retried while the set has no primary.
    async fn written(&self) -> Result<BTreeSet<i64>, String> {
        let deadline = Instant::now() + SETTLE;
        loop {
            let read = async {
                let cursor = self.collection.find(doc! {"run": &self.tag}).projection(doc! {"seq": 1, "_id": 0}).read_concern(ReadConcern::majority()).await?;
                let documents: Vec<Document> = cursor.try_collect().await?;
                Ok::<_, mongodb::error::Error>(documents.iter().filter_map(|d| d.get_i64("seq").ok()).collect())
            };
            match read.await {
                Ok(found) => return Ok(found),
                Err(e) if Instant::now() >= deadline => return Err(format!("reading the probe's documents back: {e}")),
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(port: u16) -> Endpoint {
        Endpoint { host: "127.0.0.1".into(), port, user: "root".into(), password: "pw-secret".into(), collection: "runner_probe".into(), label: "test".into() }
    }

    #[test]
    fn a_zero_rate_is_refused() {
        assert!(MongoProbe::start(endpoint(1), 0).is_err_and(|e| e.contains("at least 1 write/s")));
    }
}
