//! The Redis backend (redis-rs, tokio): members resolved by name through
//! the target, the password held by the host, one multiplexed connection
//! per member reused across calls, and a time limit on every call.
//!
//! Replies become JSON: nil is `null`, integers are numbers, simple and bulk
//! strings are strings (bytes that are not UTF-8 are replaced), arrays are
//! arrays, and RESP3 maps and sets are objects and arrays. A server error
//! reply fails the call with an error code (see [`server_error`]); an error
//! nested inside an array reply is kept in place as `{"error": "..."}`.

mod json;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, RedisError, Value};
use tokio::sync::Mutex;

use super::members::Members;
use super::{BackendError, BackendResult, ErrorCode, Redis};
use crate::target::Engine;

pub use json::reply_to_json;

/// How long one command may take before the call fails with `timeout`.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting (and authenticating) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Redis members of one target.
pub struct RedisBackend {
    members: Arc<Members>,
    /// One connection per member. A multiplexed connection serves
    /// concurrent calls itself, so the lock is held only to look it up.
    connections: Mutex<BTreeMap<String, MultiplexedConnection>>,
}

impl RedisBackend {
    /// The Redis members among `members`.
    pub fn new(members: Arc<Members>) -> Self {
        RedisBackend { members, connections: Mutex::default() }
    }

    async fn connect(&self, member: &str) -> BackendResult<MultiplexedConnection> {
        let found = self.members.find(Engine::Redis, member).await?;
        let password = self.members.credential(&found).await?;
        let (database, ip, port) = (found.database, found.ip.as_str(), found.port);
        let mut settings = RedisConnectionInfo::default().set_password(password.expose());
        if let Some(user) = &database.user {
            settings = settings.set_username(user);
        }
        let info = ConnectionAddr::Tcp(ip.to_string(), port)
            .into_connection_info()
            .map_err(|e| BackendError::new(ErrorCode::Invalid, e.to_string()))?
            .set_redis_settings(settings);
        let client = redis::Client::open(info).map_err(|e| BackendError::new(ErrorCode::Invalid, e.to_string()))?;
        let config = AsyncConnectionConfig::new().set_connection_timeout(Some(CONNECT_TIMEOUT)).set_response_timeout(Some(COMMAND_TIMEOUT));
        let connection = tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(1), client.get_multiplexed_async_connection_with_config(&config))
            .await
            .map_err(|_| {
                BackendError::new(ErrorCode::Timeout, format!("member {member} ({ip}:{port}): connecting timed out after {} s", CONNECT_TIMEOUT.as_secs()))
            })?
            .map_err(|e| connection_error(&format!("member {member} ({ip}:{port})"), &e))?;
        Ok(connection)
    }

    /// The member's connection, opening one if there is none; `fresh` when it was just opened.
    async fn connection(&self, member: &str) -> BackendResult<(MultiplexedConnection, bool)> {
        if let Some(connection) = self.connections.lock().await.get(member) {
            return Ok((connection.clone(), false));
        }
        let connection = self.connect(member).await?;
        self.connections.lock().await.insert(member.to_string(), connection.clone());
        Ok((connection, true))
    }

    async fn forget(&self, member: &str) {
        self.connections.lock().await.remove(member);
    }
}

#[async_trait::async_trait]
impl Redis for RedisBackend {
    async fn command(&self, member: &str, args: &[String]) -> BackendResult<String> {
        let Some(name) = args.first() else {
            return Err(BackendError::new(ErrorCode::Invalid, "an empty Redis command"));
        };
        let mut cmd = redis::cmd(name);
        for arg in &args[1..] {
            cmd.arg(arg);
        }
        let label = format!("member {member}");
        loop {
            let (mut connection, fresh) = self.connection(member).await?;
            let reply = tokio::time::timeout(COMMAND_TIMEOUT + Duration::from_secs(1), connection.req_packed_command(&cmd)).await;
            let error = match reply {
                Ok(Ok(Value::ServerError(e))) => return Err(server_error(&label, e.code(), e.details().unwrap_or_default())),
                Ok(Ok(value)) => return Ok(reply_to_json(&value).to_string()),
                Ok(Err(e)) if e.code().is_some() => return Err(server_error(&label, e.code().unwrap_or_default(), e.detail().unwrap_or_default())),
                Ok(Err(e)) => e,
                Err(_) => {
                    // The reply may still come; a later call must not read it as its own.
                    self.forget(member).await;
                    return Err(BackendError::new(
                        ErrorCode::Timeout,
                        format!("{label}: no answer to {} within {} s", name.to_ascii_uppercase(), COMMAND_TIMEOUT.as_secs()),
                    ));
                }
            };
            // The connection is broken (the member restarted, or went away): open a new one next time.
            self.forget(member).await;
            // A kept connection may have died since its last use without our
            // noticing. Sending a read again is harmless; a write might have
            // reached the server already, so only the caller can decide.
            if !fresh && error.is_connection_dropped() && crate::domain::readonly::redis_is_read(args) {
                continue;
            }
            return Err(connection_error(&label, &error));
        }
    }
}

/// A failed connection or exchange (not a server error reply).
fn connection_error(label: &str, error: &RedisError) -> BackendError {
    if let Some(code) = error.code() {
        return server_error(label, code, error.detail().unwrap_or_default());
    }
    let code = match error.kind() {
        redis::ErrorKind::AuthenticationFailed => ErrorCode::Denied,
        _ if error.is_timeout() => ErrorCode::Timeout,
        redis::ErrorKind::InvalidClientConfig => ErrorCode::Invalid,
        _ => ErrorCode::Unavailable,
    };
    BackendError::new(code, format!("{label}: {}", error_text(error)))
}

/// Map a server error reply (`WRONGPASS invalid username-password pair`) to
/// an error code by its first word.
pub fn server_error(label: &str, code: &str, detail: &str) -> BackendError {
    let kind = match code {
        "NOAUTH" | "WRONGPASS" | "NOPERM" => ErrorCode::Denied,
        // The member is not the one that may serve this now (a replica, a moved slot).
        "MOVED" | "ASK" | "READONLY" => ErrorCode::Conflict,
        "LOADING" | "CLUSTERDOWN" | "MASTERDOWN" | "TRYAGAIN" | "BUSY" => ErrorCode::Unavailable,
        "ERR" | "WRONGTYPE" | "CROSSSLOT" | "NOSCRIPT" | "EXECABORT" | "NOTBUSY" | "NOSUB" => ErrorCode::Invalid,
        _ => ErrorCode::Internal,
    };
    let text = if detail.is_empty() { code.to_string() } else { format!("{code} {detail}") };
    BackendError::new(kind, format!("{label}: {text}"))
}

fn error_text(error: &RedisError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_map_by_their_code() {
        assert_eq!(server_error("m", "WRONGPASS", "invalid username-password pair").code, ErrorCode::Denied);
        assert_eq!(server_error("m", "NOAUTH", "Authentication required.").code, ErrorCode::Denied);
        assert_eq!(server_error("m", "ERR", "unknown command 'FOO'").code, ErrorCode::Invalid);
        assert_eq!(server_error("m", "MOVED", "3999 127.0.0.1:6381").code, ErrorCode::Conflict);
        assert_eq!(server_error("m", "CLUSTERDOWN", "The cluster is down").code, ErrorCode::Unavailable);
        assert_eq!(server_error("m", "WEIRD", "").code, ErrorCode::Internal);
        assert_eq!(server_error("redis-cluster-1", "ERR", "x").message, "redis-cluster-1: ERR x");
    }
}
