//! Operating-system plumbing: OS users, directory ownership, binaries and
//! running tools with their output captured.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::{MemberSpec, RuntimeError, Workload};

/// Names the directory holding `initdb`, `postgres`, `pg_ctl`, ... when the
/// default lookup (newest `/usr/lib/postgresql/*/bin`, then `PATH`) is wrong.
pub const PG_BIN_DIR_ENV: &str = "RUNNER_LAB_PG_BIN_DIR";
/// Names the directory holding `redis-server` and `redis-cli` when `PATH` is wrong.
pub const REDIS_BIN_DIR_ENV: &str = "RUNNER_LAB_REDIS_BIN_DIR";
/// Names the directory holding `mongod` when `PATH` is wrong.
pub const MONGO_BIN_DIR_ENV: &str = "RUNNER_LAB_MONGO_BIN_DIR";

/// An OS account that server processes run as.
#[derive(Debug, Clone)]
pub(crate) struct OsUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Looks an account up in the password database.
pub(crate) fn lookup_user(name: &str) -> Option<OsUser> {
    let c_name = CString::new(name).ok()?;
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data; getpwnam_r fills it and points its strings into `buffer`.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the sizes given, and `result` is only read after the call.
    let rc = unsafe { libc::getpwnam_r(c_name.as_ptr(), &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points to a NUL-terminated string inside `buffer`, alive here.
    let name = unsafe { CStr::from_ptr(entry.pw_name) }.to_string_lossy().into_owned();
    Some(OsUser { name, uid: entry.pw_uid, gid: entry.pw_gid })
}

/// The account a member's server and tools run as: PostgreSQL refuses to run
/// as root, so a root runtime uses the `postgres` account; otherwise (and
/// always for Redis) the current user runs everything.
pub(crate) fn server_user(spec: &MemberSpec) -> Result<Option<OsUser>, RuntimeError> {
    if spec.workload != Workload::Postgres || !is_root() {
        return Ok(None);
    }
    lookup_user("postgres").map(Some).ok_or_else(|| RuntimeError::User {
        member: spec.name.clone(),
        message: "running as root, PostgreSQL must run as the `postgres` OS user, which does not exist \
                  (install the postgresql package, or run the lab as an unprivileged user)"
            .to_string(),
    })
}

/// The groups a user belongs to, for deciding whether it can enter a directory.
fn groups_of(user: &OsUser) -> Vec<u32> {
    let Ok(c_name) = CString::new(user.name.as_str()) else { return vec![user.gid] };
    let mut count: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; count as usize];
        let mut found = count;
        // SAFETY: `groups` holds `found` entries; getgrouplist writes at most that many and updates `found`.
        let rc = unsafe { libc::getgrouplist(c_name.as_ptr(), user.gid, groups.as_mut_ptr(), &mut found) };
        if rc >= 0 {
            groups.truncate(found.max(0) as usize);
            return groups;
        }
        if found <= count || count > 65_536 {
            return vec![user.gid];
        }
        count = found;
    }
}

/// Fails with a clear message when `user` cannot walk down to `path`: a
/// temporary directory made by root is mode 0700, and the server would
/// otherwise die with a bare "Permission denied" in its log.
pub(crate) fn check_reachable(member: &str, path: &Path, user: &OsUser) -> Result<(), RuntimeError> {
    let groups = groups_of(user);
    for dir in path.ancestors().skip(1).filter(|d| !d.as_os_str().is_empty()) {
        let Ok(meta) = fs::metadata(dir) else { continue };
        let mode = meta.mode();
        let allowed = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if groups.contains(&meta.gid()) {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !allowed {
            return Err(RuntimeError::User {
                member: member.to_string(),
                message: format!(
                    "the `{}` OS user cannot reach {}: {} is mode {:o} owned by uid {}; make it searchable (chmod o+x)",
                    user.name,
                    path.display(),
                    dir.display(),
                    mode & 0o7777,
                    meta.uid()
                ),
            });
        }
    }
    Ok(())
}

/// Creates `dir` (and its parents) and makes it private to `user` (or the
/// current user): mode 0700, because a PostgreSQL socket in it trusts every
/// local connection.
pub(crate) fn private_dir(member: &str, dir: &Path, user: Option<&OsUser>) -> Result<(), RuntimeError> {
    fs::create_dir_all(dir).map_err(|e| RuntimeError::io(member, "create directory", dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| RuntimeError::io(member, "set mode of", dir, e))?;
    chown(member, dir, user)
}

pub(crate) fn chown(member: &str, path: &Path, user: Option<&OsUser>) -> Result<(), RuntimeError> {
    match user {
        Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).map_err(|e| RuntimeError::io(member, "change owner of", path, e)),
        None => Ok(()),
    }
}

/// Writes a file readable only by its owner (it may hold the password) and
/// hands it to `user`.
pub(crate) fn write_private(member: &str, path: &Path, contents: &str, user: Option<&OsUser>) -> Result<(), RuntimeError> {
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
        // A file that existed before keeps its mode through open(): force it.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    };
    write().map_err(|e| RuntimeError::io(member, "write", path, e))?;
    chown(member, path, user)
}

/// Finds a server or tool binary of a workload.
pub(crate) fn binary(member: &str, workload: Workload, name: &str) -> Result<PathBuf, RuntimeError> {
    let (env, fallback) = match workload {
        Workload::Postgres => (PG_BIN_DIR_ENV, newest_postgres_bin_dir()),
        Workload::Redis => (REDIS_BIN_DIR_ENV, None),
        Workload::Mongo => (MONGO_BIN_DIR_ENV, None),
    };
    let missing = |detail: String| RuntimeError::MissingBinary { member: member.to_string(), binary: name.to_string(), detail };
    if let Some(dir) = std::env::var_os(env).filter(|d| !d.is_empty()) {
        let path = Path::new(&dir).join(name);
        return if path.is_file() { Ok(path) } else { Err(missing(format!("{} does not exist ({env} names {})", path.display(), Path::new(&dir).display()))) };
    }
    if let Some(path) = fallback.map(|dir| dir.join(name)).filter(|p| p.is_file()) {
        return Ok(path);
    }
    if let Some(path) = search_path(name) {
        return Ok(path);
    }
    Err(missing(match workload {
        Workload::Postgres => format!("not in /usr/lib/postgresql/*/bin nor on PATH; install postgresql or set {env}"),
        Workload::Redis => format!("not on PATH; install redis-server and redis-tools or set {env}"),
        // Not in Debian: say where it comes from.
        Workload::Mongo => format!(
            "not on PATH. MongoDB is not packaged by Debian: install MongoDB Community Server (package mongodb-org-server from repo.mongodb.org, \
             https://www.mongodb.com/docs/manual/tutorial/install-mongodb-on-debian/), or unpack its tarball and set {env} to the directory holding mongod"
        ),
    }))
}

/// Debian installs each PostgreSQL major version under its own directory, off PATH.
fn newest_postgres_bin_dir() -> Option<PathBuf> {
    fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
}

fn search_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// The last lines of some output, with the secret masked: error messages end
/// up in Pod statuses and logs.
pub(crate) fn tail(text: &str, secret: &str, lines: usize) -> String {
    let text = if secret.is_empty() { text.to_string() } else { text.replace(secret, "********") };
    let kept: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    let start = kept.len().saturating_sub(lines);
    let mut out = kept[start..].join(" | ");
    if out.len() > 2000 {
        let cut = out.len() - 2000;
        let cut = (cut..out.len()).find(|i| out.is_char_boundary(*i)).unwrap_or(out.len());
        out = format!("...{}", &out[cut..]);
    }
    if out.is_empty() { "(no output)".to_string() } else { out }
}

/// The last lines of a log file, for an error about a server that died.
pub(crate) fn log_tail(path: &Path, secret: &str) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(8192);
            tail(&String::from_utf8_lossy(&bytes[start..]), secret, 8)
        }
        Err(e) => format!("(cannot read: {e})"),
    }
}

/// A tool run to completion: `initdb`, `pg_basebackup`, `redis-cli`, ...
pub(crate) struct Tool<'a> {
    pub member: &'a str,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub user: Option<&'a OsUser>,
    /// Extra environment; this is where a password goes, never `args`.
    pub env: Vec<(&'static str, String)>,
    pub cwd: Option<&'a Path>,
    pub stdin: Option<String>,
    pub timeout: Duration,
    /// Masked out of any output quoted in an error.
    pub secret: &'a str,
}

impl<'a> Tool<'a> {
    pub fn new(member: &'a str, program: PathBuf, secret: &'a str) -> Self {
        Tool { member, program, args: Vec::new(), user: None, env: Vec::new(), cwd: None, stdin: None, timeout: Duration::from_secs(120), secret }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn env(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.env.push((key, value.into()));
        self
    }

    fn display(&self) -> String {
        let name = self.program.file_name().unwrap_or(self.program.as_os_str()).to_string_lossy().into_owned();
        std::iter::once(name).chain(self.args.iter().map(|a| a.to_string_lossy().into_owned())).collect::<Vec<_>>().join(" ")
    }

    /// Runs the tool and returns its stdout; a non-zero exit or a timeout is
    /// an error quoting the tail of its output.
    pub async fn run(self) -> Result<String, RuntimeError> {
        let mut command = tokio::process::Command::new(&self.program);
        command.args(&self.args);
        // A clean environment: the runtime's own variables (PGHOST, a PGPASSWORD
        // meant for something else, ...) must not steer the tool.
        command.env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin").env("LC_ALL", "C").env("PGSSLMODE", "disable").env("PGCONNECT_TIMEOUT", "5");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        if let Some(user) = self.user {
            command.uid(user.uid).gid(user.gid).env("USER", &user.name);
        }
        if let Some(dir) = self.cwd {
            command.current_dir(dir);
        }
        // Own process group, so a timeout also ends what the tool forked
        // (pg_basebackup streams WAL from a child process).
        command.process_group(0).kill_on_drop(true);
        command.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| RuntimeError::Spawn { member: self.member.to_string(), program: self.program.clone(), source })?;
        let pid = child.id();
        if let (Some(input), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            // A tool that dies early closes the pipe; its exit status tells why.
            let _ = pipe.write_all(input.as_bytes()).await;
            drop(pipe);
        }
        let failed = |status: String, stdout: &[u8], stderr: &[u8]| {
            let combined = format!("{}\n{}", String::from_utf8_lossy(stdout), String::from_utf8_lossy(stderr));
            RuntimeError::Command { member: self.member.to_string(), command: self.display(), status, output: tail(&combined, self.secret, 12) }
        };
        match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(output)) if output.status.success() => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
            Ok(Ok(output)) => Err(failed(output.status.to_string(), &output.stdout, &output.stderr)),
            Ok(Err(source)) => Err(RuntimeError::Spawn { member: self.member.to_string(), program: self.program.clone(), source }),
            Err(_) => {
                if let Some(pid) = pid {
                    kill_group(pid, libc::SIGKILL);
                }
                Err(failed(format!("timed out after {:?}", self.timeout), b"", b""))
            }
        }
    }
}

/// Signals a whole process group (the server and everything it forked).
pub(crate) fn kill_group(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions; a stale group only yields ESRCH.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

/// Signals one process.
pub(crate) fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: as above.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}
