//! The PostgreSQL write probe: numbered rows inserted through the primary's
//! Service, each commit an acknowledgement (with the cluster's synchronous
//! replication, a commit returns once a standby holds it). Afterwards every
//! acknowledged row must be on the primary the Service then selects.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

use super::{ProbeSummary, Tally, note_lost, run_tag};
use crate::backends::members::Credential;

/// How long one write may take before it counts as failed (its outcome
/// unknown) and the probe reconnects.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long connecting may take, so a dead address costs one short gap.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the check afterwards waits for a primary to answer.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the probe writes.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The Service's address (the lab's Services are on loopback).
    pub host: String,
    /// The Service's port.
    pub port: u16,
    /// The user to write as.
    pub user: String,
    /// Its password, never printed.
    pub password: Credential,
    /// The database to write in.
    pub database: String,
    /// The table that receives the rows (created if missing).
    pub table: String,
    /// How the address was found, for the report (`Service default/postgres-primary`).
    pub label: String,
}

/// A probe writing on its own thread until [`PostgresProbe::finish`].
pub struct PostgresProbe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<ProbeSummary>,
}

impl PostgresProbe {
    /// Start writing `rate` rows per second in the background. The first
    /// attempt (create the table, commit a row) is awaited so that a probe
    /// that can never write (refused credentials, a bad table) fails here,
    /// before the run changes anything; one that finds writes down (a fenced
    /// primary, a Service selecting a stopped member, as a resumed run may)
    /// keeps trying, and the time until its first acknowledged write counts
    /// as downtime.
    pub async fn start(endpoint: Endpoint, rate: u32) -> Result<PostgresProbe, String> {
        if !valid_identifier(&endpoint.table) {
            return Err(format!("probe table `{}` must be a plain lowercase identifier", endpoint.table));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("write-probe".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot start the probe's runtime: {e}")));
                        return ProbeSummary::default();
                    }
                };
                runtime.block_on(write_until_stopped(endpoint, rate.max(1), stopping, ready_tx))
            })
            .map_err(|e| format!("cannot start the probe thread: {e}"))?;
        match ready_rx.await {
            Ok(Ok(())) => Ok(PostgresProbe { stop, thread }),
            Ok(Err(message)) => {
                let _ = thread.join();
                Err(message)
            }
            Err(_) => Err("the probe thread ended before its first write".into()),
        }
    }

    /// Stop writing, check every acknowledged row on the primary, and summarize.
    pub fn finish(self) -> ProbeSummary {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_else(|_| ProbeSummary { verify_error: Some("the probe thread panicked".into()), ..ProbeSummary::default() })
    }
}

fn valid_identifier(name: &str) -> bool {
    name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

async fn connect(endpoint: &Endpoint) -> Result<Client, String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&endpoint.host)
        .port(endpoint.port)
        .user(&endpoint.user)
        .password(endpoint.password.expose())
        .dbname(&endpoint.database)
        .application_name("runner-write-probe")
        .connect_timeout(CONNECT_TIMEOUT);
    let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls))
        .await
        .map_err(|_| format!("connecting to {}:{}: timed out", endpoint.host, endpoint.port))?
        .map_err(|e| format!("connecting to {}:{}: {}", endpoint.host, endpoint.port, error_text(&e)))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The server's own message where there is one.
fn error_text(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            text
        }
    }
}

/// One connection and its prepared insert.
struct Writer {
    client: Client,
    insert: tokio_postgres::Statement,
}

impl Writer {
    async fn open(endpoint: &Endpoint) -> Result<Writer, String> {
        let client = connect(endpoint).await?;
        let sql = format!("INSERT INTO {} (run, seq) VALUES ($1, $2)", endpoint.table);
        let insert = tokio::time::timeout(WRITE_TIMEOUT, client.prepare(&sql))
            .await
            .map_err(|_| "preparing the insert: timed out".to_string())?
            .map_err(|e| error_text(&e))?;
        Ok(Writer { client, insert })
    }

    async fn write(&self, tag: &str, seq: i64) -> Result<(), String> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.client.execute(&self.insert, &[&tag, &seq])).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(error_text(&e)),
            Err(_) => Err(format!("no commit within {} ms", WRITE_TIMEOUT.as_millis())),
        }
    }
}

/// Why the first attempt to write failed.
enum FirstAttempt {
    /// Writes are down for now (refused connection, read-only server, recovery): keep trying.
    WritesDown(String),
    /// The probe itself is wrong (credentials, privileges, the table): no retry helps.
    Refused(String),
}

/// Whether a failed first attempt is worth repeating: everything but the
/// server refusing who we are or what we asked (SQLSTATE classes 28
/// authorization, 3D catalog, 42 syntax or access rule).
fn is_permanent(error: &tokio_postgres::Error) -> bool {
    error.as_db_error().is_some_and(|db| ["28", "3D", "42"].iter().any(|class| db.code().code().starts_with(class)))
}

/// Create the table if missing and open a writer.
async fn open_with_table(endpoint: &Endpoint) -> Result<Writer, FirstAttempt> {
    let sorted = |e: tokio_postgres::Error, what: &str| {
        let text = format!("{what}: {}", error_text(&e));
        if is_permanent(&e) { FirstAttempt::Refused(text) } else { FirstAttempt::WritesDown(text) }
    };
    let client = connect(endpoint).await.map_err(FirstAttempt::WritesDown)?;
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {} (run text NOT NULL, seq bigint NOT NULL, written_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (run, seq))",
        endpoint.table
    );
    match tokio::time::timeout(WRITE_TIMEOUT, client.batch_execute(&create)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(sorted(e, &format!("creating table {}", endpoint.table))),
        Err(_) => return Err(FirstAttempt::WritesDown(format!("creating table {}: no answer within {} ms", endpoint.table, WRITE_TIMEOUT.as_millis()))),
    }
    Writer::open(endpoint).await.map_err(FirstAttempt::WritesDown)
}

async fn write_until_stopped(endpoint: Endpoint, rate: u32, stop: Arc<AtomicBool>, ready: tokio::sync::oneshot::Sender<Result<(), String>>) -> ProbeSummary {
    let what = format!("{} at {}:{}, table {}", endpoint.label, endpoint.host, endpoint.port, endpoint.table);
    let tag = run_tag();
    // The clock starts before the first attempt: a probe started while writes
    // are down counts the wait for its first acknowledged write as downtime.
    let mut tally = Tally::new();
    let mut acknowledged = Vec::new();
    let mut writer = None;
    let mut table_ready = false;
    let sent = Instant::now();
    match open_with_table(&endpoint).await {
        Ok(w) => {
            table_ready = true;
            match w.write(&tag, 0).await {
                Ok(()) => {
                    tally.acknowledged(sent);
                    acknowledged.push(0);
                    writer = Some(w);
                }
                Err(e) => tally.failed(&e),
            }
        }
        Err(FirstAttempt::Refused(e)) => {
            let _ = ready.send(Err(format!("write probe on {what}: {e}")));
            return ProbeSummary::default();
        }
        Err(FirstAttempt::WritesDown(e)) => {
            tracing::warn!("write probe on {what}: writes are down ({e}); retrying, and counting the wait as downtime");
            tally.failed(&e);
        }
    }
    let _ = ready.send(Ok(()));

    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0i64;
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        seq += 1;
        let sent = Instant::now();
        if writer.is_none() {
            let opened = if table_ready {
                Writer::open(&endpoint).await
            } else {
                open_with_table(&endpoint).await.map_err(|(FirstAttempt::WritesDown(e) | FirstAttempt::Refused(e))| e)
            };
            match opened {
                Ok(w) => {
                    table_ready = true;
                    writer = Some(w);
                }
                Err(e) => {
                    tally.failed(&e);
                    continue;
                }
            }
        }
        let Some(w) = &writer else { continue };
        match w.write(&tag, seq).await {
            Ok(()) => {
                tally.acknowledged(sent);
                acknowledged.push(seq);
            }
            Err(e) => {
                tally.failed(&e);
                // A fenced or demoted server keeps refusing on this
                // connection; a new one goes where the Service points now.
                writer = None;
            }
        }
    }
    drop(writer);
    let mut summary = tally.finish(what);
    if acknowledged.is_empty() {
        let seen = if summary.errors.is_empty() { "none".into() } else { summary.errors.join("; ") };
        summary.verify_error =
            Some(format!("no write got through in {:.1} s of trying: writes were down for the whole run (errors: {seen})", summary.duration_ms / 1000.0));
        return summary;
    }
    match verify(&endpoint, &tag).await {
        Ok(present) => note_lost(&mut summary, acknowledged.iter().filter(|s| !present.contains(s)).map(|s| format!("{}:{tag}:{s}", endpoint.table))),
        Err(e) => summary.verify_error = Some(e),
    }
    summary
}

/// The sequence numbers of this run found on a primary (a server not in recovery).
async fn verify(endpoint: &Endpoint, tag: &str) -> Result<BTreeSet<i64>, String> {
    let deadline = Instant::now() + VERIFY_TIMEOUT;
    let mut last_error;
    loop {
        let attempt = async {
            let client = connect(endpoint).await?;
            let in_recovery: bool = client.query_one("SELECT pg_is_in_recovery()", &[]).await.map_err(|e| error_text(&e))?.get(0);
            if in_recovery {
                return Err("the Service selects a standby".to_string());
            }
            let rows = client.query(&format!("SELECT seq FROM {} WHERE run = $1", endpoint.table), &[&tag]).await.map_err(|e| error_text(&e))?;
            Ok(rows.iter().map(|r| r.get::<_, i64>(0)).collect())
        };
        match attempt.await {
            Ok(present) => return Ok(present),
            Err(e) => last_error = e,
        }
        if Instant::now() > deadline {
            return Err(format!("no primary answered through {}:{} within {} s: {last_error}", endpoint.host, endpoint.port, VERIFY_TIMEOUT.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        assert!(valid_identifier("runner_probe"));
        assert!(valid_identifier("_p2"));
        assert!(!valid_identifier("Probe"));
        assert!(!valid_identifier("probe; DROP TABLE x"));
        assert!(!valid_identifier("2probe"));
        assert!(!valid_identifier(""));
    }
}
