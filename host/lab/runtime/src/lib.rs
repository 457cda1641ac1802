//! Real database server processes for the lab.
//!
//! The lab is a local fake Kubernetes cluster whose Pods are real database
//! servers. This crate is its container runtime, and knows nothing of
//! Kubernetes: given a [`MemberSpec`] it fills a volume ([`prepare`]), runs
//! the server ([`start`], [`Process::stop`]), tells whether it accepts
//! connections ([`is_ready`]), and performs the replication chores a
//! database operator would: PostgreSQL streaming replication
//! ([`Bootstrap::PostgresStandby`], [`pg_promote`], [`pg_rejoin_as_standby`])
//! Redis cluster mode ([`redis_cluster_create`], [`redis_cluster_meet`]) and
//! a MongoDB replica set ([`mongo_replset_initiate`]).
//!
//! # Addresses
//!
//! Every member listens on its own loopback address (`127.0.1.N`, say) with
//! the standard port, and on nothing else. Linux routes all of 127.0.0.0/8 to
//! the loopback device, so this needs no setup.
//!
//! # Directories
//!
//! - `volume` is the member's persistent data, the Pod's volume: the
//!   PostgreSQL data directory (mode 0700) or Redis's `dir` (AOF, RDB and
//!   `nodes.conf`, so a recreated member keeps its cluster identity). It is
//!   built in a hidden sibling, `.<volume name>.runner-bootstrap`, and renamed
//!   into place once complete.
//! - `run_dir` is per-process scratch, private to the server's OS user (mode
//!   0700): the PostgreSQL unix socket (it must differ per member, or sockets
//!   named `.s.PGSQL.5432` collide), `postgres.log` or `redis.log` (the
//!   server's stdout and stderr), `redis.conf`, and `server.pid`.
//!
//! # Processes
//!
//! A server is a child of this process in its own process group, never a
//! daemon. [`Process::stop`] sends the image's stop signal (SIGINT, "fast
//! shutdown", for PostgreSQL, like the official image's STOPSIGNAL; SIGTERM
//! for Redis), then SIGKILL to the group after the grace period; dropping a
//! [`Process`] kills it. A server that outlived a crashed runtime is found by
//! [`kill_leftover`].
//!
//! # OS users
//!
//! PostgreSQL refuses to run as root. When this process is root, PostgreSQL
//! servers and tools (`initdb`, `pg_basebackup`, `pg_ctl`, `pg_rewind`) run as
//! the `postgres` OS user, who then owns the volume and run dir, and must be
//! able to reach them: every directory above them needs the search (`x`)
//! bit for that user (a root-made temporary directory is 0700; [`prepare`]
//! and [`start`] say so rather than let the server die). Otherwise, and
//! always for Redis, everything runs as the current user.
//!
//! # PostgreSQL
//!
//! A primary is made by `initdb`; a standby by `pg_basebackup` from the
//! primary, through a physical replication slot created on the primary
//! first. Standbys stream with `primary_conninfo` and `primary_slot_name`.
//! The runtime's settings live in `runner.conf` in the data directory,
//! included from `postgresql.conf` and rewritten whenever the member's role
//! changes (pg_basebackup and pg_rewind copy the source's copy); address,
//! port and socket directory are also given on the server's command line at
//! every start, so they follow the spec.
//!
//! **Quorum commit.** Every member has
//! `synchronous_standby_names = 'ANY 1 (*)'` and `synchronous_commit = on`: a
//! commit on the primary returns once at least one standby, any one, has
//! flushed it (`pg_stat_replication.sync_state` reads `quorum`). So an
//! acknowledged write survives the loss of the primary, which is what the
//! lab's zero-loss measurements need, and no single standby is special. The
//! price: a primary with no standby connected blocks every write until one
//! connects. A standby ignores the setting until it is promoted.
//!
//! Authentication: the superuser `postgres` and the replication role
//! `replicator` both have the member's password (SCRAM-SHA-256) for TCP from
//! 127.0.0.0/8; unix-socket connections are trusted, which is safe only
//! because the socket lives in the private run dir ([`exec_env`] points
//! `PGHOST` there). The password is never put on a command line, in a log or
//! in an error: tools get it through their own environment (`PGPASSWORD`,
//! `REDISCLI_AUTH`), and bootstrap SQL carries a SCRAM verifier instead. It is
//! stored where a server needs it: the standby's `primary_conninfo` (in the
//! data directory) and `redis.conf` (in the run dir), both mode 0600.
//!
//! After a promotion ([`pg_promote`]), the other standbys follow the new
//! primary without a restart ([`pg_follow`]), and the former primary, once
//! stopped, is rewound into a standby ([`pg_rejoin_as_standby`]; every member
//! has `wal_log_hints = on` and keeps 256MB of WAL so pg_rewind can work).
//! The runtime never decides roles by itself: a former primary started again
//! without [`pg_rejoin_as_standby`] comes back as a primary, beside the new one.
//!
//! # Redis
//!
//! `redis-server` runs in cluster mode with its config file written in the
//! run dir at every start (`requirepass` and `masterauth` set, so protected
//! mode stays on; `cluster-node-timeout 2000`; `appendonly yes`), and
//! `nodes.conf` in the volume.
//!
//! # MongoDB
//!
//! `mongod` runs as a member of the replica set `rs0` with access control on
//! and a key file (derived from the password, in the run dir, mode 0600) for
//! the members' own authentication; its unix socket is in the run dir.
//! [`mongo_replset_initiate`] initiates the set over the first member's unix
//! socket (the localhost exception), then creates the user `root` with the
//! member's password on the primary. Never run on the machines this was
//! written on: MongoDB is not packaged by Debian.
//!
//! # Binaries
//!
//! PostgreSQL binaries are looked up in `$RUNNER_LAB_PG_BIN_DIR`, else the
//! newest `/usr/lib/postgresql/*/bin` (Debian's layout), else `PATH`; Redis
//! binaries in `$RUNNER_LAB_REDIS_BIN_DIR`, else `PATH`; `mongod` in
//! `$RUNNER_LAB_MONGO_BIN_DIR`, else `PATH` ([`find_server`] says which is missing).

#![warn(missing_docs)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod error;
mod mongo;
mod os;
mod postgres;
mod process;
mod redis;

pub use error::RuntimeError;
pub use mongo::{REPLICA_SET as MONGO_REPLICA_SET, ROOT_USER as MONGO_ROOT_USER};
pub use os::{MONGO_BIN_DIR_ENV, PG_BIN_DIR_ENV, REDIS_BIN_DIR_ENV};
pub use process::Process;
pub use redis::RedisReply;

/// The database a member runs, chosen by its container image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workload {
    /// A PostgreSQL server.
    Postgres,
    /// A Redis server in cluster mode.
    Redis,
    /// A MongoDB server, member of a replica set.
    Mongo,
}

impl Workload {
    /// The workload an image runs: `postgres[:tag]`, `redis[:tag]` or `mongo[:tag]`, with or
    /// without a registry or `library/` prefix. Any other image is not
    /// something the lab can run.
    pub fn from_image(image: &str) -> Option<Workload> {
        let name = image.split('@').next().unwrap_or(image);
        let last = name.rsplit('/').next().unwrap_or(name);
        match last.split(':').next().unwrap_or(last) {
            "postgres" => Some(Workload::Postgres),
            "redis" => Some(Workload::Redis),
            "mongo" => Some(Workload::Mongo),
            _ => None,
        }
    }

    /// The port the workload's image listens on: 5432, 6379 or 27017.
    pub fn default_port(self) -> u16 {
        match self {
            Workload::Postgres => 5432,
            Workload::Redis => 6379,
            Workload::Mongo => 27017,
        }
    }

    /// The server binary it runs.
    pub fn server_binary(self) -> &'static str {
        match self {
            Workload::Postgres => "postgres",
            Workload::Redis => "redis-server",
            Workload::Mongo => "mongod",
        }
    }
}

/// Everything the runtime needs to know about one member (one Pod).
#[derive(Clone, PartialEq, Eq)]
pub struct MemberSpec {
    /// The Pod's name, e.g. `postgres-cluster-1`; names the member in errors,
    /// and is its `application_name` on the primary.
    pub name: String,
    /// Which server runs.
    pub workload: Workload,
    /// The address the server listens on, and only there.
    pub ip: Ipv4Addr,
    /// The port, normally [`Workload::default_port`].
    pub port: u16,
    /// The member's persistent data; it outlives the process.
    pub volume: PathBuf,
    /// The member's scratch directory (sockets, logs, config); unique per member.
    pub run_dir: PathBuf,
    /// The superuser password (PostgreSQL role `postgres` and `replicator`;
    /// Redis `requirepass` and `masterauth`).
    pub password: String,
}

/// Shows everything but the password, so a spec can be logged.
impl std::fmt::Debug for MemberSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberSpec")
            .field("name", &self.name)
            .field("workload", &self.workload)
            .field("ip", &self.ip)
            .field("port", &self.port)
            .field("volume", &self.volume)
            .field("run_dir", &self.run_dir)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl MemberSpec {
    /// The address clients connect to.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.port))
    }
}

/// How a member's data is first created when its volume is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// `initdb`, the `replicator` role, passwords, `pg_hba.conf` and settings.
    PostgresPrimary,
    /// A copy of `primary` by `pg_basebackup`, streaming through `slot`
    /// (created on the primary first if missing; a name of a-z, 0-9 and `_`).
    PostgresStandby {
        /// The primary's address.
        primary: SocketAddr,
        /// The physical replication slot the standby holds on the primary.
        slot: String,
    },
    /// An empty data directory; `nodes.conf` appears in it at first start.
    Redis,
    /// An empty data directory; the member joins the set when it is initiated.
    Mongo,
}

/// Checks what every operation relies on.
fn validate(spec: &MemberSpec) -> Result<(), RuntimeError> {
    if spec.name.is_empty() {
        return Err(RuntimeError::invalid("(unnamed)", "a member needs a name"));
    }
    if spec.password.is_empty() {
        // Redis would run without authentication, and PostgreSQL roles could not log in over TCP.
        return Err(RuntimeError::invalid(&spec.name, "a member needs a password"));
    }
    if spec.port == 0 {
        return Err(RuntimeError::invalid(&spec.name, "port 0 is not a port a member can listen on"));
    }
    if !spec.volume.is_absolute() || !spec.run_dir.is_absolute() {
        return Err(RuntimeError::invalid(&spec.name, "volume and run dir must be absolute paths"));
    }
    if spec.volume == spec.run_dir {
        return Err(RuntimeError::invalid(&spec.name, "volume and run dir must differ"));
    }
    if spec.workload != Workload::Redis {
        // sun_path holds 108 bytes with the terminating NUL.
        let socket = if spec.workload == Workload::Mongo { mongo::socket_path(spec) } else { spec.run_dir.join(format!(".s.PGSQL.{}", spec.port)) };
        if socket.as_os_str().len() > 107 {
            return Err(RuntimeError::invalid(
                &spec.name,
                format!("run dir {} is too long for a unix socket path (107 bytes at most)", spec.run_dir.display()),
            ));
        }
        if spec.run_dir.to_string_lossy().contains('"') {
            return Err(RuntimeError::invalid(&spec.name, "run dir must not contain a double quote"));
        }
    }
    Ok(())
}

/// Fills an empty volume as `bootstrap` says. Idempotent: a volume that
/// already holds data (a recreated Pod reuses its volume) is left alone,
/// whatever `bootstrap` says. A volume holding something else than the
/// workload's data is an error rather than overwritten.
pub async fn prepare(spec: &MemberSpec, bootstrap: &Bootstrap) -> Result<(), RuntimeError> {
    validate(spec)?;
    match (spec.workload, bootstrap) {
        (Workload::Postgres, Bootstrap::PostgresPrimary) => postgres::prepare(spec, None).await,
        (Workload::Postgres, Bootstrap::PostgresStandby { primary, slot }) => postgres::prepare(spec, Some((*primary, slot))).await,
        (Workload::Redis, Bootstrap::Redis) => redis::prepare(spec),
        (Workload::Mongo, Bootstrap::Mongo) => mongo::prepare(spec),
        (workload, bootstrap) => Err(RuntimeError::invalid(&spec.name, format!("a {workload:?} member cannot be bootstrapped as {bootstrap:?}"))),
    }
}

/// Starts the member's server from its prepared volume and returns at once,
/// without waiting for it to accept connections (see [`is_ready`],
/// [`wait_ready`]). The server is a child of this process, not a daemon.
/// Fails early, with [`RuntimeError::AddressInUse`], when something already
/// listens on the member's address.
pub fn start(spec: &MemberSpec) -> Result<Process, RuntimeError> {
    process::start(spec)
}

/// Whether the member really serves clients right now. PostgreSQL: on its
/// TCP address the server answers a connection with an authentication
/// request (what `pg_isready` checks; not "starting up"), and `SELECT 1`
/// succeeds through its unix socket (a standby qualifies once it accepts
/// read-only queries). No password login: its SCRAM key derivation would
/// make frequent probes of many members expensive; [`pg_is_primary`] does
/// log in with the password. Redis: `AUTH` with the password, then `PING`
/// answered `PONG` (whatever the cluster's state). MongoDB: `hello`
/// answered (it needs no user; a member not yet in a set qualifies). A
/// probe gives up after two seconds.
pub async fn is_ready(spec: &MemberSpec) -> bool {
    match spec.workload {
        Workload::Postgres => postgres::is_ready(spec).await,
        Workload::Redis => redis::is_ready(spec).await,
        Workload::Mongo => mongo::is_ready(spec).await,
    }
}

/// Where the workload's server binary is, or why it cannot be found (with
/// how to install it), before anything is started.
pub fn find_server(workload: Workload) -> Result<PathBuf, RuntimeError> {
    os::binary("(lab)", workload, workload.server_binary())
}

/// Waits until [`is_ready`], failing with [`RuntimeError::Exited`] (and the
/// end of the server's log) as soon as the process exits, or with
/// [`RuntimeError::Timeout`].
pub async fn wait_ready(spec: &MemberSpec, process: &mut Process, timeout: Duration) -> Result<(), RuntimeError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = process.try_exited() {
            return Err(RuntimeError::Exited {
                member: spec.name.clone(),
                status: process::describe(&status),
                log: process.log_path().to_path_buf(),
                tail: os::log_tail(process.log_path(), &spec.password),
            });
        }
        if is_ready(spec).await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(RuntimeError::Timeout { member: spec.name.clone(), what: "the server to accept connections".to_string(), waited: timeout });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops a server left running by an earlier runtime that died without
/// stopping it (its pid is in the run dir's `server.pid`, and only a process
/// still running this member's data or config counts): the stop signal, then
/// SIGKILL after `grace`. Returns whether there was one. Call it before
/// [`start`] when the lab comes back after a crash; otherwise that server
/// still holds the address and the volume.
pub async fn kill_leftover(spec: &MemberSpec, grace: Duration) -> Result<bool, RuntimeError> {
    process::kill_leftover(spec, grace).await
}

/// The environment for a command run "inside" the member (`kubectl exec`).
///
/// PostgreSQL: `PGDATA`, `PGHOST` (the member's socket directory, where
/// connections are trusted, so no password is needed), `PGPORT`,
/// `PGUSER=postgres` and `PGDATABASE=postgres`; run it as [`exec_user`].
/// Redis: `REDISCLI_AUTH` (the password: this environment is the command's
/// own, never log it), `REDIS_HOST` and `REDIS_PORT`. MongoDB:
/// `MONGO_HOST`, `MONGO_PORT`, `MONGO_USER` and `MONGO_PASSWORD` (same care).
pub fn exec_env(spec: &MemberSpec) -> Vec<(String, String)> {
    match spec.workload {
        Workload::Postgres => postgres::exec_env(spec),
        Workload::Redis => redis::exec_env(spec),
        Workload::Mongo => mongo::exec_env(spec),
    }
}

/// The uid and gid to run exec'd commands as: the `postgres` OS user for a
/// PostgreSQL member when this process is root (the socket directory is
/// private to it), `None` to run as the current user.
pub fn exec_user(spec: &MemberSpec) -> Option<(u32, u32)> {
    os::server_user(spec).ok().flatten().map(|user| (user.uid, user.gid))
}

/// Whether a running PostgreSQL member is a primary (`pg_is_in_recovery()`
/// is false).
pub async fn pg_is_primary(spec: &MemberSpec) -> Result<bool, RuntimeError> {
    expect(spec, Workload::Postgres)?;
    postgres::is_primary(spec).await
}

/// Promotes a running standby (`pg_ctl promote`, as the server's OS user)
/// and waits until it says `pg_is_in_recovery() = false`. Promoting a
/// primary does nothing.
pub async fn pg_promote(spec: &MemberSpec) -> Result<(), RuntimeError> {
    expect(spec, Workload::Postgres)?;
    postgres::promote(spec).await
}

/// Turns a stopped former primary into a standby of `new_primary`:
/// `CHECKPOINT` on the new primary (so its control file shows the new
/// timeline), the slot created there if missing, `pg_rewind` of the volume
/// against it, the former primary's own replication slots dropped (a standby
/// would retain WAL for them forever), then `primary_conninfo`,
/// `primary_slot_name` and `standby.signal`. Start it with [`start`]
/// afterwards. The member must be stopped (pg_rewind refuses otherwise).
pub async fn pg_rejoin_as_standby(spec: &MemberSpec, new_primary: SocketAddr, slot: &str) -> Result<(), RuntimeError> {
    expect(spec, Workload::Postgres)?;
    validate(spec)?;
    postgres::rejoin_as_standby(spec, new_primary, slot).await
}

/// Points a running standby at a new primary, without a restart: the slot
/// created on `new_primary` if missing, `primary_conninfo` and
/// `primary_slot_name` rewritten, the configuration reloaded (the WAL
/// receiver reconnects), then waits until it streams from `new_primary`.
/// For the other standbys after a promotion. A standby that already replayed
/// WAL the new primary never had cannot follow it and times out: stop it and
/// use [`pg_rejoin_as_standby`].
pub async fn pg_follow(spec: &MemberSpec, new_primary: SocketAddr, slot: &str) -> Result<(), RuntimeError> {
    expect(spec, Workload::Postgres)?;
    validate(spec)?;
    postgres::follow(spec, new_primary, slot).await
}

/// Drops a replication slot on a running primary, if it exists: a slot
/// whose standby is gone for good (scaled down, or a bootstrap that never
/// finished) would otherwise keep the primary's WAL forever. Fails while a
/// standby still streams through it.
pub async fn pg_drop_slot(primary: &MemberSpec, slot: &str) -> Result<(), RuntimeError> {
    expect(primary, Workload::Postgres)?;
    postgres::drop_slot(primary, slot).await
}

/// Forms a Redis cluster of `members`, like `redis-cli --cluster create ...
/// --cluster-replicas N --cluster-yes` (which it runs, with the password in
/// `REDISCLI_AUTH`), then waits until every member reports `cluster_state:ok`
/// with all members known and all 16384 slots assigned, every replica's
/// link to its master is up (its first sync done) and no member is rewriting
/// its AOF (Redis refuses SIGTERM while it writes the initial one). A cluster already
/// formed of exactly these members is left alone. All members must share one
/// password, and there must be at least three masters.
pub async fn redis_cluster_create(members: &[MemberSpec], replicas_per_master: usize) -> Result<(), RuntimeError> {
    redis::cluster_create(members, replicas_per_master).await
}

/// `CLUSTER MEET`: introduces `new_member` (a new node, or a replaced one
/// back from its volume) to the cluster `existing` belongs to, then waits
/// until `existing` knows it as a healthy node and it reports
/// `cluster_state:ok`.
pub async fn redis_cluster_meet(new_member: &MemberSpec, existing: &MemberSpec) -> Result<(), RuntimeError> {
    expect(new_member, Workload::Redis)?;
    expect(existing, Workload::Redis)?;
    redis::cluster_meet(new_member, existing).await
}

/// Sends one command to a Redis member, authenticated with its password; an
/// error reply is a [`RuntimeError::Redis`]. For probes and tests: each call
/// opens its own connection.
pub async fn redis_command(spec: &MemberSpec, args: &[&str]) -> Result<RedisReply, RuntimeError> {
    expect(spec, Workload::Redis)?;
    redis::command(spec, args).await
}

/// Initiates a MongoDB replica set of `members` (all started and ready, one
/// shared password), as the manual's keyfile deployment does:
/// `replSetInitiate` over the first member's unix socket (the localhost
/// exception; hosts are the members' `ip:port`), then, on the elected
/// primary, the user [`MONGO_ROOT_USER`] with the members' password; then
/// waits until one member is PRIMARY and every other SECONDARY. A set
/// already initiated is not initiated again.
pub async fn mongo_replset_initiate(members: &[MemberSpec]) -> Result<(), RuntimeError> {
    mongo::replset_initiate(members).await
}

/// `primary` or `secondary` as the MongoDB member's `hello` says; `None`
/// while it is in no other state worth a label (starting, not initiated,
/// unreachable).
pub async fn mongo_role(spec: &MemberSpec) -> Option<&'static str> {
    if spec.workload != Workload::Mongo {
        return None;
    }
    mongo::role(spec).await
}

fn expect(spec: &MemberSpec, workload: Workload) -> Result<(), RuntimeError> {
    if spec.workload == workload { Ok(()) } else { Err(RuntimeError::invalid(&spec.name, format!("is a {:?} member, not {workload:?}", spec.workload))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_choose_the_workload() {
        assert_eq!(Workload::from_image("postgres:15"), Some(Workload::Postgres));
        assert_eq!(Workload::from_image("postgres"), Some(Workload::Postgres));
        assert_eq!(Workload::from_image("docker.io/library/redis:7.2"), Some(Workload::Redis));
        assert_eq!(Workload::from_image("redis@sha256:abcd"), Some(Workload::Redis));
        assert_eq!(Workload::from_image("registry:5000/postgres:16"), Some(Workload::Postgres));
        assert_eq!(Workload::from_image("mongo:7"), Some(Workload::Mongo));
        assert_eq!(Workload::from_image("mongodb:7"), None);
        assert_eq!(Workload::from_image("postgresql:15"), None);
        assert_eq!(Workload::from_image(""), None);
    }

    #[test]
    fn debug_hides_the_password() {
        let spec = MemberSpec {
            name: "m".into(),
            workload: Workload::Redis,
            ip: Ipv4Addr::new(127, 0, 1, 1),
            port: 6379,
            volume: "/v".into(),
            run_dir: "/r".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{spec:?}").contains("hunter2"));
    }
}
