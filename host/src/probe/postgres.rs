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
    /// Create the table, commit a first row (so a probe that cannot write
    /// fails here, before the run changes anything), then keep writing
    /// `rate` rows per second in the background.
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

async fn write_until_stopped(endpoint: Endpoint, rate: u32, stop: Arc<AtomicBool>, ready: tokio::sync::oneshot::Sender<Result<(), String>>) -> ProbeSummary {
    let what = format!("{} at {}:{}, table {}", endpoint.label, endpoint.host, endpoint.port, endpoint.table);
    let tag = run_tag();
    let first = async {
        let client = connect(&endpoint).await?;
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} (run text NOT NULL, seq bigint NOT NULL, written_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (run, seq))",
            endpoint.table
        );
        client.batch_execute(&create).await.map_err(|e| format!("creating table {}: {}", endpoint.table, error_text(&e)))?;
        let writer = Writer::open(&endpoint).await?;
        writer.write(&tag, 0).await.map_err(|e| format!("first write: {e}"))?;
        Ok::<_, String>(writer)
    };
    let mut writer = match first.await {
        Ok(writer) => Some(writer),
        Err(e) => {
            let _ = ready.send(Err(format!("write probe on {what}: {e}")));
            return ProbeSummary::default();
        }
    };
    let _ = ready.send(Ok(()));

    let mut acknowledged = vec![0i64];
    let mut tally = Tally::new();
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0i64;
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        seq += 1;
        let sent = Instant::now();
        if writer.is_none() {
            match Writer::open(&endpoint).await {
                Ok(w) => writer = Some(w),
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
    // The first write, made before the clock started.
    summary.ops += 1;
    summary.acknowledged_writes += 1;
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
