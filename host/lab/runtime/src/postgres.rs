//! PostgreSQL members: bootstrap (initdb, pg_basebackup), configuration,
//! readiness, promotion and rejoining with pg_rewind.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

use crate::os::{self, OsUser, Tool};
use crate::{MemberSpec, RuntimeError, Workload};

/// The file, inside the data directory, holding every setting the runtime
/// owns. `postgresql.conf` includes it; it is rewritten whenever the member's
/// role changes (bootstrap, rejoin), because pg_basebackup and pg_rewind copy
/// the source server's copy along with the data.
const RUNNER_CONF: &str = "runner.conf";
/// The role standbys replicate as.
pub(crate) const REPLICATION_USER: &str = "replicator";
/// How long SQL connections and statements issued by the runtime may take.
const SQL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

fn bin(spec: &MemberSpec, name: &str) -> Result<PathBuf, RuntimeError> {
    os::binary(&spec.name, Workload::Postgres, name)
}

/// Quotes a value for postgresql.conf: single quotes doubled, backslashes
/// escaped (the config parser reads backslash escapes).
fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// Quotes a value for a libpq connection string.
fn conninfo_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The connection string a standby streams with. It holds the password: it
/// lives in the data directory (mode 0600, owned by the server's user), as
/// pg_basebackup -R would write it.
fn primary_conninfo(spec: &MemberSpec, primary: SocketAddr) -> String {
    format!(
        "host={} port={} user={REPLICATION_USER} password={} application_name={} sslmode=disable connect_timeout=5",
        primary.ip(),
        primary.port(),
        conninfo_quote(&spec.password),
        conninfo_quote(&spec.name)
    )
}

/// Settings the runtime owns. `standby` is the primary to stream from and
/// the slot to hold, for a standby.
fn runner_conf(spec: &MemberSpec, standby: Option<(SocketAddr, &str)>) -> String {
    let mut conf = format!(
        "# Written by runner-lab-runtime for member {name}; rewritten when the member's role changes.\n\
         # Address, port and socket directory are also passed on the server's command line at start.\n\
         listen_addresses = {ip}\n\
         port = {port}\n\
         unix_socket_directories = {run_dir}\n\
         cluster_name = {name_quoted}\n\
         max_connections = 50\n\
         shared_buffers = 16MB\n\
         max_worker_processes = 4\n\
         max_parallel_workers = 2\n\
         jit = off\n\
         huge_pages = off\n\
         min_wal_size = 32MB\n\
         max_wal_size = 256MB\n\
         wal_level = replica\n\
         max_wal_senders = 10\n\
         max_replication_slots = 10\n\
         hot_standby = on\n\
         wal_log_hints = on\n\
         # pg_rewind reads the target's own WAL back to the last checkpoint before the\n\
         # timelines diverged; a graceful stop's checkpoint would otherwise recycle it.\n\
         wal_keep_size = 256MB\n\
         wal_receiver_status_interval = 1s\n\
         wal_retrieve_retry_interval = 1s\n\
         # Quorum commit: a commit returns once any one standby has flushed it.\n\
         # Ignored while this member is a standby; in force once it is promoted.\n\
         synchronous_standby_names = 'ANY 1 (*)'\n\
         synchronous_commit = on\n\
         password_encryption = 'scram-sha-256'\n\
         logging_collector = off\n\
         log_destination = 'stderr'\n\
         log_line_prefix = '%m [%p] %q%u@%d '\n\
         log_checkpoints = off\n",
        name = spec.name,
        ip = conf_quote(&spec.ip.to_string()),
        port = spec.port,
        run_dir = conf_quote(&spec.run_dir.to_string_lossy()),
        name_quoted = conf_quote(&spec.name),
    );
    if let Some((primary, slot)) = standby {
        conf.push_str(&format!("primary_conninfo = {}\nprimary_slot_name = {}\n", conf_quote(&primary_conninfo(spec, primary)), conf_quote(slot)));
    }
    conf
}

const PG_HBA: &str = "# Written by runner-lab-runtime.\n\
# Local socket connections are trusted: the socket lives in the member's\n\
# private run dir (mode 0700), reachable only by the server's OS user and root.\n\
local   all             all                             trust\n\
host    all             all             127.0.0.0/8     scram-sha-256\n\
host    replication     replicator      127.0.0.0/8     scram-sha-256\n";

/// The postmaster command line: address, port and socket directory come from
/// the spec at every start, so a member recreated with a new run dir or
/// address still starts from its old volume.
pub(crate) fn server_command(spec: &MemberSpec) -> Result<(PathBuf, Vec<String>), RuntimeError> {
    if !spec.volume.join("PG_VERSION").is_file() {
        return Err(RuntimeError::invalid(&spec.name, format!("{} holds no PostgreSQL data: prepare the member first", spec.volume.display())));
    }
    let program = bin(spec, "postgres")?;
    let run_dir = spec.run_dir.to_string_lossy();
    let args = vec![
        "-D".to_string(),
        spec.volume.to_string_lossy().into_owned(),
        "-c".to_string(),
        format!("listen_addresses={}", spec.ip),
        "-c".to_string(),
        format!("port={}", spec.port),
        "-c".to_string(),
        // Double quotes keep a directory with spaces or commas one list element.
        format!("unix_socket_directories=\"{run_dir}\""),
    ];
    Ok((program, args))
}

/// A connection as the superuser over TCP, with its driver task spawned.
async fn connect(member: &str, address: SocketAddr, password: &str, timeout: Duration) -> Result<Client, RuntimeError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(address.ip().to_string())
        .port(address.port())
        .user("postgres")
        .password(password)
        .dbname("postgres")
        .application_name("runner-lab-runtime")
        .connect_timeout(timeout);
    let fail = |message: String| RuntimeError::Sql { member: member.to_string(), address, message };
    let (client, connection) = match tokio::time::timeout(timeout, config.connect(NoTls)).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(fail(sql_message(&e))),
        Err(_) => return Err(fail(format!("no connection within {timeout:?}"))),
    };
    tokio::spawn(async move {
        // The connection ends when the client is dropped; its error then is of no interest.
        let _ = connection.await;
    });
    Ok(client)
}

fn sql_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                message.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            message
        }
    }
}

/// Runs a query expecting one boolean.
async fn query_bool(member: &str, client: &Client, address: SocketAddr, sql: &str) -> Result<bool, RuntimeError> {
    let fail = |message: String| RuntimeError::Sql { member: member.to_string(), address, message };
    match tokio::time::timeout(SQL_TIMEOUT, client.query_one(sql, &[])).await {
        Ok(Ok(row)) => row.try_get::<_, bool>(0).map_err(|e| fail(sql_message(&e))),
        Ok(Err(e)) => Err(fail(sql_message(&e))),
        Err(_) => Err(fail(format!("no answer within {SQL_TIMEOUT:?}"))),
    }
}

async fn execute(
    member: &str,
    client: &Client,
    address: SocketAddr,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<(), RuntimeError> {
    let fail = |message: String| RuntimeError::Sql { member: member.to_string(), address, message };
    match tokio::time::timeout(SQL_TIMEOUT, client.execute(sql, params)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(fail(sql_message(&e))),
        Err(_) => Err(fail(format!("no answer within {SQL_TIMEOUT:?}"))),
    }
}

/// Slot names are identifiers: lower-case letters, digits and underscores.
fn check_slot(member: &str, slot: &str) -> Result<(), RuntimeError> {
    let valid = !slot.is_empty() && slot.len() <= 63 && slot.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid { Ok(()) } else { Err(RuntimeError::invalid(member, format!("replication slot name {slot:?} must be 1 to 63 of a-z, 0-9 and _"))) }
}

/// Creates a physical slot on the primary unless it exists. It reserves WAL
/// at once, so nothing the standby will need is recycled before it connects.
async fn ensure_slot(member: &str, primary: SocketAddr, password: &str, slot: &str) -> Result<(), RuntimeError> {
    let client = connect(member, primary, password, SQL_TIMEOUT).await?;
    let sql = "SELECT pg_create_physical_replication_slot($1, true) \
               WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)";
    match execute(member, &client, primary, sql, &[&slot]).await {
        // Two members racing for the same slot: the other one made it.
        Err(RuntimeError::Sql { message, .. }) if message.contains("SQLSTATE 42710") => Ok(()),
        other => other,
    }
}

pub(crate) async fn drop_slot(spec: &MemberSpec, slot: &str) -> Result<(), RuntimeError> {
    check_slot(&spec.name, slot)?;
    let address = SocketAddr::from((spec.ip, spec.port));
    let client = connect(&spec.name, address, &spec.password, SQL_TIMEOUT).await?;
    let sql = "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1";
    execute(&spec.name, &client, address, sql, &[&slot]).await
}

/// Whether the member's volume already holds a data directory.
fn has_data(spec: &MemberSpec) -> bool {
    spec.volume.join("PG_VERSION").is_file()
}

/// Where a volume is built before it is moved into place: a sibling of the
/// volume, so the move is a rename on one filesystem, and hidden, so nothing
/// scanning the volumes' directory mistakes it for a member.
fn staging_dir(spec: &MemberSpec) -> Result<PathBuf, RuntimeError> {
    let (Some(parent), Some(name)) = (spec.volume.parent(), spec.volume.file_name()) else {
        return Err(RuntimeError::invalid(&spec.name, format!("volume {} has no parent directory", spec.volume.display())));
    };
    Ok(parent.join(format!(".{}.runner-bootstrap", name.to_string_lossy())))
}

/// Builds a member's data directory when its volume is empty. The data is
/// built in a staging directory and renamed into place once complete, so a
/// bootstrap cut short leaves an empty volume (tried again next time), never
/// a half-made one that the idempotency check would take for done.
pub(crate) async fn prepare(spec: &MemberSpec, standby: Option<(SocketAddr, &str)>) -> Result<(), RuntimeError> {
    if has_data(spec) {
        return Ok(());
    }
    let member = spec.name.as_str();
    if let Ok(mut entries) = fs::read_dir(&spec.volume)
        && entries.next().is_some()
    {
        return Err(RuntimeError::invalid(
            member,
            format!("volume {} holds files but no PG_VERSION: not a PostgreSQL data directory; empty it to bootstrap", spec.volume.display()),
        ));
    }
    if let Some((_, slot)) = standby {
        check_slot(member, slot)?;
    }
    let user = os::server_user(spec)?;
    os::private_dir(member, &spec.run_dir, user.as_ref())?;
    let staging = staging_dir(spec)?;
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| RuntimeError::io(member, "remove stale staging directory", &staging, e))?;
    }
    if let Some(parent) = staging.parent() {
        fs::create_dir_all(parent).map_err(|e| RuntimeError::io(member, "create directory", parent, e))?;
    }
    os::private_dir(member, &staging, user.as_ref())?;
    let built = async {
        if let Some(user) = &user {
            os::check_reachable(member, &staging, user)?;
            os::check_reachable(member, &spec.run_dir, user)?;
        }
        match standby {
            None => init_primary(spec, &staging, user.as_ref()).await,
            Some((primary, slot)) => clone_standby(spec, &staging, user.as_ref(), primary, slot).await,
        }
    }
    .await;
    if let Err(e) = built {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    // rename(2) replaces an empty directory, so a volume made beforehand by the caller is fine.
    fs::rename(&staging, &spec.volume).map_err(|e| {
        let _ = fs::remove_dir_all(&staging);
        RuntimeError::io(member, "move the new data directory into", &spec.volume, e)
    })?;
    tracing::info!("member {member}: data directory ready in {}", spec.volume.display());
    Ok(())
}

fn tool<'a>(spec: &'a MemberSpec, name: &str, user: Option<&'a OsUser>) -> Result<Tool<'a>, RuntimeError> {
    let mut tool = Tool::new(&spec.name, bin(spec, name)?, &spec.password);
    tool.user = user;
    // The server's user may not be able to enter the runtime's working directory.
    tool.cwd = Some(&spec.run_dir);
    Ok(tool)
}

async fn init_primary(spec: &MemberSpec, data: &Path, user: Option<&OsUser>) -> Result<(), RuntimeError> {
    let member = spec.name.as_str();
    tool(spec, "initdb", user)?
        .arg("-D")
        .arg(data)
        .arg("--username=postgres")
        .arg("--auth-local=trust")
        .arg("--auth-host=scram-sha-256")
        .arg("--encoding=UTF8")
        .arg("--locale=C")
        .arg("--no-instructions")
        .run()
        .await?;
    // Passwords are set in single-user mode, before the server ever listens.
    // The statements carry SCRAM verifiers, not the password, and
    // log_min_error_statement=panic keeps even those out of the output.
    let verifier = postgres_protocol::password::scram_sha_256(spec.password.as_bytes());
    let replicator = postgres_protocol::password::scram_sha_256(spec.password.as_bytes());
    let sql = format!(
        "ALTER ROLE postgres PASSWORD {};\nCREATE ROLE {REPLICATION_USER} WITH REPLICATION LOGIN PASSWORD {};\n",
        conf_quote(&verifier),
        conf_quote(&replicator)
    );
    let mut single = tool(spec, "postgres", user)?
        .arg("--single")
        .arg("-D")
        .arg(data)
        .arg("-c")
        .arg("exit_on_error=on")
        .arg("-c")
        .arg("log_min_error_statement=panic")
        .arg("postgres");
    single.stdin = Some(sql);
    single.run().await?;
    os::write_private(member, &data.join("pg_hba.conf"), PG_HBA, user)?;
    os::write_private(member, &data.join(RUNNER_CONF), &runner_conf(spec, None), user)?;
    include_runner_conf(member, data, user)
}

/// Makes postgresql.conf read the runtime's settings last, so they win over
/// initdb's defaults (ALTER SYSTEM settings still win over both).
fn include_runner_conf(member: &str, data: &Path, user: Option<&OsUser>) -> Result<(), RuntimeError> {
    let path = data.join("postgresql.conf");
    let mut conf = fs::read_to_string(&path).map_err(|e| RuntimeError::io(member, "read", &path, e))?;
    // `include`, not `include_if_exists`: without its settings the server must not start.
    let line = format!("include '{RUNNER_CONF}'");
    if !conf.lines().any(|l| l.trim() == line) {
        conf.push_str(&format!("\n# Settings owned by runner-lab-runtime.\n{line}\n"));
        os::write_private(member, &path, &conf, user)?;
    }
    Ok(())
}

async fn clone_standby(spec: &MemberSpec, data: &Path, user: Option<&OsUser>, primary: SocketAddr, slot: &str) -> Result<(), RuntimeError> {
    let member = spec.name.as_str();
    ensure_slot(member, primary, &spec.password, slot).await?;
    tool(spec, "pg_basebackup", user)?
        .arg("-D")
        .arg(data)
        .arg("-d")
        .arg(format!(
            "host={} port={} user={REPLICATION_USER} application_name={} sslmode=disable connect_timeout=5",
            primary.ip(),
            primary.port(),
            conninfo_quote(&spec.name)
        ))
        .arg("--wal-method=stream")
        .arg(format!("--slot={slot}"))
        .arg("--checkpoint=fast")
        .arg("--no-password")
        .env("PGPASSWORD", spec.password.clone())
        .run()
        .await?;
    become_standby(spec, data, user, primary, slot)
}

/// Points a stopped data directory at a primary: the runtime's settings with
/// primary_conninfo and primary_slot_name, plus standby.signal.
fn become_standby(spec: &MemberSpec, data: &Path, user: Option<&OsUser>, primary: SocketAddr, slot: &str) -> Result<(), RuntimeError> {
    let member = spec.name.as_str();
    os::write_private(member, &data.join(RUNNER_CONF), &runner_conf(spec, Some((primary, slot))), user)?;
    include_runner_conf(member, data, user)?;
    os::write_private(member, &data.join("standby.signal"), "", user)
}

/// Readiness, cheaply enough to probe several members many times a second
/// (a password login costs a SCRAM key derivation on the client: tens of
/// milliseconds of CPU in a debug build). Two checks, both real:
///
/// - over TCP on the member's address, what `pg_isready` checks: a startup
///   packet answered with an authentication request, not an error such as
///   "the database system is starting up". Hanging up at that point is
///   silent in the server log.
/// - `SELECT 1` through the member's own unix socket (trusted, no password).
pub(crate) async fn is_ready(spec: &MemberSpec) -> bool {
    let probe = async { accepts_tcp(SocketAddr::from((spec.ip, spec.port))).await && answers_on_socket(spec).await };
    tokio::time::timeout(PROBE_TIMEOUT, probe).await.unwrap_or(false)
}

async fn accepts_tcp(address: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else { return false };
    let parameters: &[u8] = b"user\0postgres\0database\0postgres\0\0";
    let mut packet = Vec::with_capacity(8 + parameters.len());
    packet.extend_from_slice(&((8 + parameters.len()) as u32).to_be_bytes());
    packet.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    packet.extend_from_slice(parameters);
    if stream.write_all(&packet).await.is_err() {
        return false;
    }
    let mut kind = [0u8; 1];
    stream.read_exact(&mut kind).await.is_ok() && kind[0] == b'R'
}

/// A connection through the member's unix socket: trusted, so no password.
async fn socket_client(spec: &MemberSpec, timeout: Duration) -> Result<Client, RuntimeError> {
    let mut config = tokio_postgres::Config::new();
    config.host_path(&spec.run_dir).port(spec.port).user("postgres").dbname("postgres").application_name("runner-lab-runtime").connect_timeout(timeout);
    let fail = |message: String| RuntimeError::Sql {
        member: spec.name.clone(),
        address: SocketAddr::from((spec.ip, spec.port)),
        message: format!("through the unix socket in {}: {message}", spec.run_dir.display()),
    };
    let (client, connection) = match tokio::time::timeout(timeout, config.connect(NoTls)).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(fail(sql_message(&e))),
        Err(_) => return Err(fail(format!("no connection within {timeout:?}"))),
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn answers_on_socket(spec: &MemberSpec) -> bool {
    match socket_client(spec, PROBE_TIMEOUT).await {
        Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    }
}

pub(crate) async fn is_primary(spec: &MemberSpec) -> Result<bool, RuntimeError> {
    let address = SocketAddr::from((spec.ip, spec.port));
    let client = connect(&spec.name, address, &spec.password, SQL_TIMEOUT).await?;
    Ok(!query_bool(&spec.name, &client, address, "SELECT pg_is_in_recovery()").await?)
}

pub(crate) async fn promote(spec: &MemberSpec) -> Result<(), RuntimeError> {
    const WAIT: Duration = Duration::from_secs(60);
    if is_primary(spec).await? {
        return Ok(());
    }
    let user = os::server_user(spec)?;
    let mut pg_ctl = tool(spec, "pg_ctl", user.as_ref())?.arg("promote").arg("-D").arg(&spec.volume).arg("--wait").arg(format!("--timeout={}", WAIT.as_secs()));
    pg_ctl.timeout = WAIT + Duration::from_secs(5);
    pg_ctl.run().await?;
    // pg_ctl reads the control file; wait until the server says so too.
    let deadline = Instant::now() + WAIT;
    loop {
        match is_primary(spec).await {
            Ok(true) => return Ok(()),
            Ok(false) | Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Ok(false) => return Err(RuntimeError::Timeout { member: spec.name.clone(), what: "pg_is_in_recovery() to turn false".to_string(), waited: WAIT }),
            Err(e) => return Err(e),
        }
    }
}

pub(crate) async fn rejoin_as_standby(spec: &MemberSpec, new_primary: SocketAddr, slot: &str) -> Result<(), RuntimeError> {
    let member = spec.name.as_str();
    check_slot(member, slot)?;
    if !has_data(spec) {
        return Err(RuntimeError::invalid(member, format!("{} holds no PostgreSQL data to rewind", spec.volume.display())));
    }
    if new_primary == SocketAddr::from((spec.ip, spec.port)) {
        return Err(RuntimeError::invalid(member, "cannot rejoin as a standby of itself"));
    }
    let user = os::server_user(spec)?;
    os::private_dir(member, &spec.run_dir, user.as_ref())?;
    // A just-promoted server's control file still shows the old timeline until
    // its first checkpoint; pg_rewind would then wrongly see nothing to rewind.
    let client = connect(member, new_primary, &spec.password, SQL_TIMEOUT).await?;
    execute(member, &client, new_primary, "CHECKPOINT", &[]).await?;
    drop(client);
    ensure_slot(member, new_primary, &spec.password, slot).await?;
    let mut rewind = tool(spec, "pg_rewind", user.as_ref())?
        .arg("--target-pgdata")
        .arg(&spec.volume)
        .arg(format!("--source-server=host={} port={} user=postgres dbname=postgres sslmode=disable connect_timeout=5", new_primary.ip(), new_primary.port()))
        .env("PGPASSWORD", spec.password.clone());
    rewind.timeout = Duration::from_secs(300);
    rewind.run().await?;
    // Slots this member held as a primary would pin WAL forever on a standby.
    // pg_rewind leaves pg_replslot alone, and a stopped server's slots are just these directories.
    let slots = spec.volume.join("pg_replslot");
    if let Ok(entries) = fs::read_dir(&slots) {
        for entry in entries.flatten() {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(|e| RuntimeError::io(member, "remove stale replication slot", &path, e))?;
        }
    }
    become_standby(spec, &spec.volume, user.as_ref(), new_primary, slot)
}

pub(crate) async fn follow(spec: &MemberSpec, new_primary: SocketAddr, slot: &str) -> Result<(), RuntimeError> {
    const WAIT: Duration = Duration::from_secs(30);
    let member = spec.name.as_str();
    check_slot(member, slot)?;
    if !spec.volume.join("standby.signal").is_file() {
        return Err(RuntimeError::invalid(member, "is not a standby (no standby.signal); a former primary rejoins with pg_rejoin_as_standby"));
    }
    let user = os::server_user(spec)?;
    ensure_slot(member, new_primary, &spec.password, slot).await?;
    os::write_private(member, &spec.volume.join(RUNNER_CONF), &runner_conf(spec, Some((new_primary, slot))), user.as_ref())?;
    // Since PostgreSQL 13 a reload restarts the WAL receiver with the new primary_conninfo.
    let client = socket_client(spec, SQL_TIMEOUT).await?;
    let address = SocketAddr::from((spec.ip, spec.port));
    query_bool(member, &client, address, "SELECT pg_reload_conf()").await?;
    let host = new_primary.ip().to_string();
    let port = i32::from(new_primary.port());
    let deadline = Instant::now() + WAIT;
    loop {
        let streaming =
            client.query_opt("SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming' AND sender_host = $1 AND sender_port = $2", &[&host, &port]).await;
        if matches!(streaming, Ok(Some(_))) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(RuntimeError::Timeout {
                member: member.to_string(),
                what: format!(
                    "streaming from {new_primary} (a standby that replayed past the promotion point must be stopped and rejoined with pg_rejoin_as_standby)"
                ),
                waited: WAIT,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn exec_env(spec: &MemberSpec) -> Vec<(String, String)> {
    vec![
        ("PGDATA".to_string(), spec.volume.to_string_lossy().into_owned()),
        ("PGHOST".to_string(), spec.run_dir.to_string_lossy().into_owned()),
        ("PGPORT".to_string(), spec.port.to_string()),
        ("PGUSER".to_string(), "postgres".to_string()),
        ("PGDATABASE".to_string(), "postgres".to_string()),
        // As in a real container, whose env the StatefulSet fills from the Secret:
        // commands run in the Pod (a standby's primary_conninfo) need it.
        ("POSTGRES_PASSWORD".to_string(), spec.password.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_backslashes() {
        assert_eq!(conf_quote(r"a'b\c"), r"'a''b\\c'");
        assert_eq!(conninfo_quote(r"a'b\c"), r"'a\'b\\c'");
    }

    #[test]
    fn slot_names_are_identifiers() {
        assert!(check_slot("m", "postgres_cluster_1").is_ok());
        assert!(check_slot("m", "bad-name").is_err());
        assert!(check_slot("m", "").is_err());
        assert!(check_slot("m", "x'; DROP").is_err());
    }
}
