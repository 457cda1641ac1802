//! The PostgreSQL backend (tokio-postgres): members resolved by name through
//! the target, credentials held by the host, a statement timeout on every
//! call, and `query` always inside a READ ONLY transaction.
//!
//! Rows come back as the JSON PostgreSQL itself makes of them
//! (`json_agg(row)`), so every type a gate may read (numeric, pg_lsn,
//! interval, timestamptz) arrives without a client-side type table.
//! Parameters are bound as text: cast them in SQL (`$1::int`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};

use super::members::Members;
use super::{BackendError, BackendResult, ErrorCode, Postgres};
use crate::target::Engine;

/// How long one statement may run.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// PostgreSQL members of one target.
pub struct PostgresBackend {
    members: Arc<Members>,
    /// One connection per member, reused while open; a call holds it for its
    /// whole transaction.
    clients: Mutex<BTreeMap<String, Arc<Mutex<Client>>>>,
}

impl PostgresBackend {
    /// The PostgreSQL members among `members`.
    pub fn new(members: Arc<Members>) -> Self {
        PostgresBackend { members, clients: Mutex::default() }
    }

    async fn connect(&self, member: &str) -> BackendResult<Client> {
        let found = self.members.find(Engine::Postgres, member).await?;
        let password = self.members.credential(&found).await?;
        let (database, ip, port) = (found.database, found.ip.as_str(), found.port);
        let mut config = tokio_postgres::Config::new();
        config
            .host(ip)
            .port(port)
            .user(database.user.as_deref().unwrap_or("postgres"))
            .password(password.expose())
            .dbname("postgres")
            .application_name("runner")
            .connect_timeout(CONNECT_TIMEOUT);
        let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls))
            .await
            .map_err(|_| BackendError::new(ErrorCode::Unavailable, format!("member {member} ({ip}:{port}): connection timed out")))?
            .map_err(|e| connection_error(member, ip, port, &e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("postgres connection closed: {e}");
            }
        });
        Ok(client)
    }

    /// A connected client for `member`, reusing one that is still open.
    async fn client(&self, member: &str) -> BackendResult<Arc<Mutex<Client>>> {
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(member)
            && !client.lock().await.is_closed()
        {
            return Ok(client.clone());
        }
        let client = Arc::new(Mutex::new(self.connect(member).await?));
        clients.insert(member.to_string(), client.clone());
        Ok(client)
    }
}

/// Run `call` with a bound on its duration.
async fn bounded<T>(member: &str, call: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>) -> BackendResult<T> {
    match tokio::time::timeout(STATEMENT_TIMEOUT + Duration::from_secs(2), call).await {
        Ok(result) => result.map_err(|e| sql_error(member, &e)),
        Err(_) => Err(BackendError::new(ErrorCode::Timeout, format!("member {member}: no answer within {} s", STATEMENT_TIMEOUT.as_secs()))),
    }
}

#[async_trait::async_trait]
impl Postgres for PostgresBackend {
    async fn query(&self, member: &str, sql: &str, params: &[String]) -> BackendResult<String> {
        let client = self.client(member).await?;
        let mut client = client.lock().await;
        let body = sql.trim().trim_end_matches(';');
        let wrapped = format!("SELECT coalesce(json_agg(runner_row), '[]'::json)::text FROM ({body}) AS runner_row");
        bounded(member, async {
            let transaction = client.build_transaction().read_only(true).start().await?;
            transaction.batch_execute(&format!("SET LOCAL statement_timeout = {}", STATEMENT_TIMEOUT.as_millis())).await?;
            let statement = transaction.prepare_typed(&wrapped, &vec![Type::TEXT; params.len()]).await?;
            let args: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.iter().map(|p| p as _).collect();
            let row = transaction.query_one(&statement, &args).await?;
            let json: String = row.get(0);
            transaction.commit().await?;
            Ok(json)
        })
        .await
    }

    async fn execute(&self, member: &str, sql: &str, params: &[String]) -> BackendResult<u64> {
        let client = self.client(member).await?;
        let client = client.lock().await;
        bounded(member, async {
            client.batch_execute(&format!("SET statement_timeout = {}", STATEMENT_TIMEOUT.as_millis())).await?;
            let statement = client.prepare_typed(sql, &vec![Type::TEXT; params.len()]).await?;
            let args: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.iter().map(|p| p as _).collect();
            client.execute(&statement, &args).await
        })
        .await
    }
}

fn connection_error(member: &str, ip: &str, port: u16, error: &tokio_postgres::Error) -> BackendError {
    let detail = error.as_db_error().map(|db| db.message().to_string()).unwrap_or_else(|| error_text(error));
    BackendError::new(ErrorCode::Unavailable, format!("member {member} ({ip}:{port}): {detail}"))
}

/// Map a failed statement to the WIT error codes by SQLSTATE.
fn sql_error(member: &str, error: &tokio_postgres::Error) -> BackendError {
    let Some(db) = error.as_db_error() else {
        return BackendError::new(ErrorCode::Unavailable, format!("member {member}: {}", error_text(error)));
    };
    let code = db.code().code();
    let kind = match code {
        "25006" => ErrorCode::Denied,                       // read_only_sql_transaction
        "57014" => ErrorCode::Timeout,                      // query_canceled (statement timeout)
        "40001" | "40P01" | "55P03" => ErrorCode::Conflict, // serialization, deadlock, lock not available
        "42501" => ErrorCode::Denied,                       // insufficient_privilege
        c if c.starts_with("42") || c.starts_with("22") => ErrorCode::Invalid,
        c if c.starts_with("08") || c.starts_with("57P") => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    };
    BackendError::new(kind, format!("member {member}: {} (SQLSTATE {code})", db.message()))
}

fn error_text(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}
