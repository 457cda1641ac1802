//! A running server process: the lab's "container".

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::os::{self, OsUser};
use crate::{MemberSpec, RuntimeError, Workload, mongo, postgres, redis};

/// How long [`Process::stop`] waits for a SIGKILLed server to be reaped
/// before it reports a timeout: a process in uninterruptible sleep (a hung
/// disk) may not die at once.
const REAP_AFTER_KILL: Duration = Duration::from_secs(10);

/// A server process started by [`start`](crate::start).
///
/// It is not daemonised: it is this process's child, leader of its own
/// process group (so a Ctrl-C in the runner's terminal does not reach it, and
/// a kill reaches everything it forked). Dropping a `Process` whose server
/// still runs kills that server's group with SIGKILL, so a panic cannot leak
/// servers; stop it with [`Process::stop`] for a clean shutdown.
#[derive(Debug)]
pub struct Process {
    child: Child,
    member: String,
    workload: Workload,
    log: PathBuf,
    pid_file: PathBuf,
    status: Option<ExitStatus>,
}

impl Process {
    /// The server's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file the server's stdout and stderr go to, in the member's run dir.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The exit status if the server has exited, without waiting.
    pub fn try_exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exited(status);
        }
        self.status
    }

    /// Stops the server the way a container runtime stops a container: the
    /// workload's stop signal, then SIGKILL to the whole process group once
    /// `grace` has passed. The stop signal is SIGINT for PostgreSQL ("fast"
    /// shutdown, the official image's STOPSIGNAL: SIGTERM would be "smart"
    /// shutdown, which waits for every client to disconnect) and SIGTERM for
    /// Redis. Returns at once if the server has already exited.
    pub async fn stop(&mut self, grace: Duration) -> Result<ExitStatus, RuntimeError> {
        if let Some(status) = self.try_exited() {
            return Ok(status);
        }
        let stop_signal = match self.workload {
            Workload::Postgres => libc::SIGINT,
            Workload::Redis | Workload::Mongo => libc::SIGTERM,
        };
        os::signal(self.pid(), stop_signal);
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = self.try_exited() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20).min(deadline - Instant::now())).await;
        }
        tracing::warn!("member {}: still running {grace:?} after the stop signal; killing it", self.member);
        // The leader is not reaped yet (try_wait said so), so its pid, and thus
        // the group id, cannot have been reused.
        os::kill_group(self.pid(), libc::SIGKILL);
        let deadline = Instant::now() + REAP_AFTER_KILL;
        while Instant::now() < deadline {
            if let Some(status) = self.try_exited() {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(RuntimeError::Timeout { member: self.member.clone(), what: format!("process {} to die after SIGKILL", self.pid()), waited: REAP_AFTER_KILL })
    }

    fn exited(&mut self, status: ExitStatus) {
        self.status = Some(status);
        let _ = fs::remove_file(&self.pid_file);
        tracing::debug!("member {}: server process {} exited: {status}", self.member, self.child.id());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.try_exited().is_none() {
            os::kill_group(self.pid(), libc::SIGKILL);
            // SIGKILL cannot be caught: the wait is short, and it reaps the zombie.
            if let Ok(status) = self.child.wait() {
                self.exited(status);
            }
        }
    }
}

/// Describes an exit status the way a Pod status would ("exit status: 1",
/// "signal: 9 (SIGKILL)").
pub(crate) fn describe(status: &ExitStatus) -> String {
    match status.signal() {
        Some(libc::SIGKILL) => "signal: 9 (SIGKILL)".to_string(),
        _ => status.to_string(),
    }
}

/// The file in the run dir that records the server's pid, for
/// [`kill_leftover`](crate::kill_leftover).
pub(crate) fn pid_file(spec: &MemberSpec) -> PathBuf {
    spec.run_dir.join("server.pid")
}

/// Fails when something already listens on the member's address, which the
/// server itself would only report in its log before exiting.
fn check_free(spec: &MemberSpec, port: u16) -> Result<(), RuntimeError> {
    let address = std::net::SocketAddr::from((spec.ip, port));
    match std::net::TcpListener::bind(address) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(RuntimeError::AddressInUse { member: spec.name.clone(), address }),
        Err(e) => Err(RuntimeError::io(&spec.name, "listen on", address.to_string(), e)),
    }
}

pub(crate) fn start(spec: &MemberSpec) -> Result<Process, RuntimeError> {
    crate::validate(spec)?;
    let user = os::server_user(spec)?;
    os::private_dir(&spec.name, &spec.run_dir, user.as_ref())?;
    if let Some(user) = &user {
        os::check_reachable(&spec.name, &spec.volume, user)?;
        os::check_reachable(&spec.name, &spec.run_dir, user)?;
    }
    check_free(spec, spec.port)?;
    let (program, args) = match spec.workload {
        Workload::Postgres => postgres::server_command(spec)?,
        Workload::Redis => {
            // The cluster bus listens on port + 10000.
            if let Some(bus) = spec.port.checked_add(10_000) {
                check_free(spec, bus)?;
            }
            redis::server_command(spec)?
        }
        Workload::Mongo => mongo::server_command(spec)?,
    };
    let log = spec.run_dir.join(match spec.workload {
        Workload::Postgres => "postgres.log",
        Workload::Redis => "redis.log",
        Workload::Mongo => "mongod.log",
    });
    spawn(spec, &program, &args, user.as_ref(), &log)
}

fn spawn(spec: &MemberSpec, program: &Path, args: &[String], user: Option<&OsUser>, log: &Path) -> Result<Process, RuntimeError> {
    let open_log = || fs::OpenOptions::new().create(true).append(true).mode(0o600).open(log);
    let out = open_log().map_err(|e| RuntimeError::io(&spec.name, "open log", log, e))?;
    let err = out.try_clone().map_err(|e| RuntimeError::io(&spec.name, "open log", log, e))?;
    os::chown(&spec.name, log, user)?;
    let mut command = std::process::Command::new(program);
    command.args(args);
    // Nothing of the runtime's environment leaks into the server.
    command.env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin").env("LC_ALL", "C");
    if let Some(user) = user {
        command.uid(user.uid).gid(user.gid).env("USER", &user.name);
    }
    command.current_dir(&spec.run_dir).process_group(0).stdin(Stdio::null()).stdout(Stdio::from(out)).stderr(Stdio::from(err));
    let child = command.spawn().map_err(|source| RuntimeError::Spawn { member: spec.name.clone(), program: program.to_path_buf(), source })?;
    let pid_file = pid_file(spec);
    // Best effort: the file only helps clean up after a runtime that died.
    // It records the executable too, to recognise the process later.
    let exe = fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
    let _ = fs::write(&pid_file, format!("{}\n{}\n", child.id(), exe.display()));
    tracing::info!("member {}: started {} as pid {}", spec.name, program.display(), child.id());
    Ok(Process { child, member: spec.name.clone(), workload: spec.workload, log: log.to_path_buf(), pid_file, status: None })
}

/// The process recorded in the run dir, if it is still this member's server.
pub(crate) fn leftover_pid(spec: &MemberSpec) -> Option<u32> {
    let record = fs::read_to_string(pid_file(spec)).ok()?;
    let mut lines = record.lines();
    let pid: u32 = lines.next()?.trim().parse().ok()?;
    let recorded_exe = PathBuf::from(lines.next()?);
    // The pid may have been reused by an unrelated process: only the same
    // executable working in this member's volume counts (both servers change
    // into their data directory; Redis rewrites its command line, so that
    // cannot tell). A zombie has neither link.
    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let cwd = fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let volume = fs::canonicalize(&spec.volume).ok()?;
    // mongod stays in the directory it was started in: the run dir.
    let home = if spec.workload == Workload::Mongo { fs::canonicalize(&spec.run_dir).ok()? } else { volume };
    (exe == recorded_exe && cwd == home).then_some(pid)
}

pub(crate) async fn kill_leftover(spec: &MemberSpec, grace: Duration) -> Result<bool, RuntimeError> {
    let Some(pid) = leftover_pid(spec) else { return Ok(false) };
    tracing::warn!("member {}: a server left over from an earlier runtime runs as pid {pid}; stopping it", spec.name);
    let stop_signal = match spec.workload {
        Workload::Postgres => libc::SIGINT,
        Workload::Redis | Workload::Mongo => libc::SIGTERM,
    };
    os::signal(pid, stop_signal);
    let alive = || Path::new(&format!("/proc/{pid}")).exists() && leftover_pid(spec) == Some(pid);
    let deadline = Instant::now() + grace;
    while alive() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if alive() {
        os::kill_group(pid, libc::SIGKILL);
        let deadline = Instant::now() + REAP_AFTER_KILL;
        while alive() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if alive() {
            return Err(RuntimeError::Timeout { member: spec.name.clone(), what: format!("left-over process {pid} to die"), waited: REAP_AFTER_KILL });
        }
    }
    let _ = fs::remove_file(pid_file(spec));
    Ok(true)
}
