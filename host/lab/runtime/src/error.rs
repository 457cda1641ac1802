//! The one error type of the runtime.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Why a runtime operation failed.
///
/// Every variant names the member it concerns, so a message read out of
/// context (a Pod status, a log line) still says where to look. Output of
/// failed commands is cut to its tail and never contains the member's
/// password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// A file or directory of the member could not be created, read or changed.
    #[error("member {member}: cannot {action} {path}: {source}")]
    Io {
        /// The member's name.
        member: String,
        /// What was being done, e.g. `create directory`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A server or tool binary is not installed where it was looked for.
    #[error("member {member}: `{binary}` not found: {detail}")]
    MissingBinary {
        /// The member's name.
        member: String,
        /// The binary's name, e.g. `initdb`.
        binary: String,
        /// Where it was looked for and how to point the runtime elsewhere.
        detail: String,
    },
    /// A binary exists but could not be started.
    #[error("member {member}: cannot run {program}: {source}")]
    Spawn {
        /// The member's name.
        member: String,
        /// The program.
        program: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A tool ran and failed.
    #[error("member {member}: `{command}` failed ({status}): {output}")]
    Command {
        /// The member's name.
        member: String,
        /// The command line (it never holds a secret).
        command: String,
        /// Its exit status, or `timed out`.
        status: String,
        /// The tail of what it printed.
        output: String,
    },
    /// Another process already listens on the member's address.
    #[error("member {member}: {address} is already in use by another process")]
    AddressInUse {
        /// The member's name.
        member: String,
        /// The address it would listen on.
        address: SocketAddr,
    },
    /// The OS user the server must run as is missing or cannot reach a directory.
    #[error("member {member}: {message}")]
    User {
        /// The member's name.
        member: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A SQL statement against a PostgreSQL server failed.
    #[error("member {member}: SQL on {address} failed: {message}")]
    Sql {
        /// The member's name.
        member: String,
        /// The server asked.
        address: SocketAddr,
        /// The server's or the connection's error.
        message: String,
    },
    /// A command against a Redis server failed.
    #[error("member {member}: Redis {command} on {address} failed: {message}")]
    Redis {
        /// The member's name.
        member: String,
        /// The server asked.
        address: SocketAddr,
        /// The command's name (arguments may be secret, so only the name).
        command: String,
        /// The server's or the connection's error.
        message: String,
    },
    /// A MongoDB command failed or got no answer.
    #[error("member {member}: MongoDB {command} on {address} failed: {message}")]
    Mongo {
        /// The member's name.
        member: String,
        /// Where it was sent (`127.0.1.4:27017`, or the member's unix socket).
        address: String,
        /// The command's name (its arguments may be secret, so only the name).
        command: String,
        /// The server's or the connection's error.
        message: String,
    },
    /// A state the runtime waits for did not come in time.
    #[error("member {member}: gave up after {waited:?} waiting for {what}")]
    Timeout {
        /// The member's name.
        member: String,
        /// What was awaited.
        what: String,
        /// How long it waited.
        waited: Duration,
    },
    /// The server process exited before it accepted connections.
    #[error("member {member}: the server exited ({status}) before it was ready; end of {log}: {tail}")]
    Exited {
        /// The member's name.
        member: String,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// The request does not fit the member: wrong workload, unprepared or foreign volume, bad name.
    #[error("member {member}: {message}")]
    Invalid {
        /// The member's name.
        member: String,
        /// What does not fit.
        message: String,
    },
}

impl RuntimeError {
    pub(crate) fn io(member: &str, action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        RuntimeError::Io { member: member.to_string(), action, path: path.into(), source }
    }

    pub(crate) fn invalid(member: &str, message: impl Into<String>) -> Self {
        RuntimeError::Invalid { member: member.to_string(), message: message.into() }
    }
}
