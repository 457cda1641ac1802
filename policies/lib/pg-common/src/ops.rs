//! What the PostgreSQL patterns do to a cluster: fence, catch up, stop,
//! promote, re-point, verify and rejoin, each naming the member and the
//! figure when it fails. Gates never call anything here.

use std::cell::Cell;

use kube_common::{POD_NAME_LABEL, Pod, StatefulSet, merge_patch, namespace, service_ref, service_target};
use runner_sdk::kube_write;
use runner_sdk::prelude::*;
use runner_sdk::{DryRun, postgres_write};
use serde::Deserialize;

use crate::pg::{self, DEFAULT_PORT, Standby, State, port};
use crate::text::{self, slot_name};

/// The script `kube-write.exec` runs in a member's Pod to make it a standby.
pub const STANDBY_SCRIPT: &str = include_str!("standby.sh");

/// Stops client writes on a primary: new transactions default to read only
/// (persisted with ALTER SYSTEM, so a restart keeps the fence), and open
/// client sessions are ended so none keeps a read-write transaction going.
/// The runner's own connections (application_name `runner...`) are spared.
pub const FENCE_SQL: [&str; 3] = [
    "ALTER SYSTEM SET default_transaction_read_only = on",
    "SELECT pg_reload_conf()",
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND coalesce(application_name, '') NOT LIKE 'runner%'",
];

/// Lifts the fence (also run on every promoted member and rejoined standby,
/// so a former primary's fence never outlives its role).
pub const UNFENCE_SQL: [&str; 2] = ["ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()"];

/// Creates a member's physical slot unless it exists. Works on a standby
/// too, so a member about to be promoted holds WAL for its future standbys.
pub const ENSURE_SLOT_SQL: &str =
    "SELECT pg_create_physical_replication_slot($1::text::name, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1::text::name)";

/// Drops inactive physical slots except those named in `$1` (comma-separated):
/// a slot nobody streams from pins WAL forever.
pub const DROP_SLOTS_SQL: &str = "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE slot_type = 'physical' AND NOT active AND slot_name::text <> ALL (string_to_array($1::text, ','))";

/// The inactive physical slots, which [`DROP_SLOTS_SQL`] drops unless kept.
pub const INACTIVE_SLOTS_SQL: &str = "SELECT slot_name::text AS slot_name FROM pg_replication_slots WHERE slot_type = 'physical' AND NOT active";

/// Whether a primary still carries standby settings (a promotion cut short
/// before [`Ctx::promote`] forgot them).
pub const HAS_UPSTREAM_SQL: &str = "SELECT EXISTS (SELECT 1 FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf' AND name IN ('primary_conninfo', 'primary_slot_name')) AS upstream";

/// Ends recovery without waiting inside the call; callers poll
/// pg_is_in_recovery() so the wait follows the pattern's own timeout.
pub const PROMOTE_SQL: &str = "SELECT pg_promote(false)";

pub const RELOAD_SQL: &str = "SELECT pg_reload_conf()";

/// A primary's leftover standby settings (from an earlier life as a
/// standby) do nothing on it, but pg_basebackup copies postgresql.auto.conf
/// into every new clone, where they would override the clone's own.
pub const FORGET_UPSTREAM_SQL: [&str; 3] = ["ALTER SYSTEM RESET primary_conninfo", "ALTER SYSTEM RESET primary_slot_name", "SELECT pg_reload_conf()"];

/// The configuration both PostgreSQL patterns take (their manifests
/// declare these keys; each pattern adds its own).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Settings {
    pub service: String,
    pub container: String,
    pub password_env: String,
    pub replication_user: String,
    pub rewind_user: String,
    pub write_check_table: String,
    pub catch_up_timeout: u64,
    pub stop_timeout: u64,
    pub promote_timeout: u64,
    pub stream_timeout: u64,
    pub rejoin_timeout: u64,
    pub write_timeout: u64,
    pub poll_interval: u64,
    pub paused_poll_interval: u64,
    #[serde(flatten)]
    pub members: StatefulSet,
}

/// What the PostgreSQL patterns work with: the members, the Service, the
/// settings, and whether this is a dry run.
pub struct Ctx {
    pub set: StatefulSet,
    pub service: String,
    pub container: Option<String>,
    pub password_env: String,
    pub replication_user: String,
    pub rewind_user: String,
    pub write_check_table: String,
    pub poll_ms: u64,
    /// While writes are paused (fence to verified write on the new primary)
    /// every millisecond of polling latency is downtime, so waits look more often.
    pub paused_poll_ms: u64,
    pub writes_paused: Cell<bool>,
    pub stream_timeout_ms: u64,
    pub rejoin_timeout_ms: u64,
    pub promote_timeout_ms: u64,
    pub write_timeout_ms: u64,
    /// In a dry run nothing waits for a change that will not happen.
    pub dry: DryRun,
}

impl Ctx {
    /// The context for `settings`; refuses a `password-env` that is not a variable name.
    pub fn new(settings: &Settings) -> Result<Ctx, Error> {
        let env = &settings.password_env;
        if env.is_empty() || !env.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(Error::invalid(format!("password-env `{env}` is not an environment variable name")));
        }
        Ok(Ctx {
            set: settings.members.clone(),
            service: settings.service.clone(),
            container: (!settings.container.is_empty()).then(|| settings.container.clone()),
            password_env: settings.password_env.clone(),
            replication_user: settings.replication_user.clone(),
            rewind_user: settings.rewind_user.clone(),
            write_check_table: settings.write_check_table.clone(),
            poll_ms: settings.poll_interval.max(10),
            paused_poll_ms: settings.paused_poll_interval.clamp(5, settings.poll_interval.max(10)),
            writes_paused: Cell::new(false),
            stream_timeout_ms: settings.stream_timeout,
            rejoin_timeout_ms: settings.rejoin_timeout,
            promote_timeout_ms: settings.promote_timeout,
            write_timeout_ms: settings.write_timeout,
            dry: DryRun::of_this_run(),
        })
    }

    pub fn log(&self, level: report::Level, message: &str) {
        report::log(level, message);
    }

    /// [`wait_for`] on `condition`, looking more often while writes are
    /// paused; in a dry run, not at all.
    pub fn wait(&self, what: &str, timeout_ms: u64, condition: impl FnMut() -> Result<Poll<()>, Error>) -> Result<(), Error> {
        if self.dry.active() {
            self.log(report::Level::Info, &format!("dry run: not waiting for {what}"));
            return Ok(());
        }
        let interval = if self.writes_paused.get() { self.paused_poll_ms } else { self.poll_ms };
        wait_for(what, timeout_ms, interval, condition)
    }

    /// Run one statement on `member`; errors name the member and the statement.
    pub fn execute(&self, member: &str, sql: &str, params: &[&str]) -> Result<u64, Error> {
        let params: Vec<String> = params.iter().map(|p| p.to_string()).collect();
        postgres_write::execute(member, sql, &params).map_err(|e| Error::new(e.code, format!("{member}: `{sql}`: {}", e.message)))
    }

    /// Run a command in a member's Pod; a non-zero exit is an error quoting stderr.
    pub fn exec(&self, pod: &str, command: &[String]) -> Result<String, Error> {
        let ns = namespace(&self.set.namespace);
        let out = kube_write::exec(ns.as_deref(), pod, self.container.as_deref(), command)
            .map_err(|e| Error::new(e.code, format!("exec in {pod}: {}", e.message)))?;
        if out.exit_code != 0 {
            let stderr = out.stderr.trim();
            let tail = stderr.char_indices().rev().nth(600).map_or(stderr, |(i, _)| &stderr[i..]);
            return Err(Error::internal(format!("{pod}: `{}` exited with {}: {tail}", command.first().map_or("", String::as_str), out.exit_code)));
        }
        Ok(out.stdout)
    }

    pub fn pods(&self) -> Result<Vec<Pod>, Error> {
        self.set.pods()
    }

    pub fn pod(&self, name: &str) -> Result<Option<Pod>, Error> {
        self.set.pod(name)
    }

    /// A merge patch; returns the host's answer.
    pub fn patch(&self, object: &ObjectRef, body: &Value) -> Result<Value, Error> {
        merge_patch(object, body)
    }

    /// Point the primary Service at `member`.
    pub fn repoint_service(&self, member: &str) -> Result<(), Error> {
        let body = json!({"spec": {"selector": {POD_NAME_LABEL: member}}});
        self.patch(&service_ref(&self.set.namespace, &self.service), &body).map(|_| ())
    }

    pub fn service_target(&self) -> Result<Option<String>, Error> {
        service_target(&self.set.namespace, &self.service)
    }

    /// Fence a primary and wait until new sessions see the fence.
    pub fn fence(&self, member: &str) -> Result<(), Error> {
        for sql in FENCE_SQL {
            self.execute(member, sql, &[])?;
        }
        self.wait(&format!("{member} to refuse writes (default_transaction_read_only = on)"), self.promote_timeout_ms, || {
            Ok(if pg::state(member)?.read_only { Poll::Done(()) } else { Poll::NotYet(format!("{member}: default_transaction_read_only still off")) })
        })
    }

    pub fn unfence(&self, member: &str) -> Result<(), Error> {
        for sql in UNFENCE_SQL {
            self.execute(member, sql, &[])?;
        }
        Ok(())
    }

    pub fn ensure_slot(&self, on: &str, for_member: &str) -> Result<(), Error> {
        let slot = slot_name(for_member);
        self.execute(on, ENSURE_SLOT_SQL, &[&slot]).map(|_| ())
    }

    /// The inactive physical slots on `on` that [`Ctx::drop_inactive_slots`]
    /// with `keep` would drop: looking first lets a repeated tidy change nothing.
    pub fn inactive_slots(&self, on: &str, keep: &[String]) -> Result<Vec<String>, Error> {
        let keep: Vec<String> = keep.iter().map(|m| slot_name(m)).collect();
        let rows = pg::query(on, INACTIVE_SLOTS_SQL, &[])?;
        Ok(rows.iter().filter_map(|r| crate::rows::text(r, "slot_name")).filter(|slot| !keep.iter().any(|k| k == slot)).map(str::to_string).collect())
    }

    pub fn drop_inactive_slots(&self, on: &str, keep: &[String]) -> Result<(), Error> {
        let keep: Vec<String> = keep.iter().map(|m| slot_name(m)).collect();
        self.execute(on, DROP_SLOTS_SQL, &[&keep.join(",")]).map(|_| ())
    }

    /// [`Ctx::drop_inactive_slots`], only when there is a slot to drop.
    pub fn drop_inactive_slots_if_any(&self, on: &str, keep: &[String]) -> Result<(), Error> {
        if self.inactive_slots(on, keep)?.is_empty() { Ok(()) } else { self.drop_inactive_slots(on, keep) }
    }

    /// [`Ctx::unfence`], only when the member is fenced.
    pub fn unfence_if_fenced(&self, member: &str) -> Result<(), Error> {
        if pg::state(member)?.read_only { self.unfence(member) } else { Ok(()) }
    }

    /// What [`Ctx::promote`] does after the promotion itself, for a primary
    /// whose promotion was cut short; whether there was anything to do.
    pub fn finish_promotion(&self, member: &str) -> Result<bool, Error> {
        let fenced = pg::state(member)?.read_only;
        // Only what ALTER SYSTEM set counts: a standby's postgresql.conf may name its
        // upstream too (the lab's does), which RESET cannot remove, so checking the live
        // setting would make every re-run change something again.
        let upstream = pg::query(member, HAS_UPSTREAM_SQL, &[])?.first().and_then(|r| crate::rows::flag(r, "upstream")).unwrap_or(false);
        if fenced {
            self.unfence(member)?;
        }
        if upstream {
            self.forget_upstream(member)?;
        }
        Ok(fenced || upstream)
    }

    /// The exec command that makes `member` a standby of `upstream`.
    pub fn standby_command(&self, mode: &str, member: &str, upstream: &Pod) -> Vec<String> {
        let host = upstream.ip.clone().unwrap_or_else(|| format!("<{} Pod IP>", upstream.name));
        let args = [
            "sh",
            "-c",
            STANDBY_SCRIPT,
            "sh",
            mode,
            &host,
            &port(upstream).to_string(),
            &self.replication_user,
            &slot_name(member),
            member,
            &self.password_env,
            &self.rewind_user,
        ];
        args.iter().map(|a| a.to_string()).collect()
    }

    /// Write `member`'s standby settings pointing at `upstream` (slot on the
    /// upstream first). A running standby is told to reload: since
    /// PostgreSQL 13 its WAL receiver reconnects with the new settings.
    pub fn point_at(&self, member: &str, upstream: &Pod, reload: bool) -> Result<(), Error> {
        self.point_at_then(member, upstream, reload, || {})
    }

    /// `point_at`, calling `written` once the settings are on disk (from then
    /// on a rollback has something to undo, even if the reload fails).
    pub fn point_at_then(&self, member: &str, upstream: &Pod, reload: bool, written: impl FnOnce()) -> Result<(), Error> {
        self.ensure_slot(&upstream.name, member)?;
        self.exec(member, &self.standby_command("config", member, upstream))?;
        written();
        if reload {
            self.execute(member, RELOAD_SQL, &[])?;
        }
        Ok(())
    }

    /// Stop `member`, pg_rewind it against `upstream` and restart it as its
    /// standby, all inside its Pod (see standby.sh). Only for a member whose
    /// server runs: one that diverged and was restarted cannot start at all.
    pub fn rewind(&self, member: &str, upstream: &Pod) -> Result<(), Error> {
        // Until its first checkpoint a just-promoted primary's control file
        // names its old timeline; pg_rewind (PostgreSQL 15) would then pick
        // the wrong common ancestor and leave a member that cannot start.
        self.execute(&upstream.name, "CHECKPOINT", &[])?;
        self.ensure_slot(&upstream.name, member)?;
        self.exec(member, &self.standby_command("rewind", member, upstream)).map(|_| ())
    }

    /// Whether `member` streams from `primary`, by the primary's pg_stat_replication.
    pub fn streams_from(&self, primary: &str, member: &str, ip: Option<&str>) -> Result<Option<Standby>, Error> {
        Ok(pg::standbys(primary)?.into_iter().find(|s| s.is(member, ip) && s.state == "streaming"))
    }

    /// Wait until `member` streams from `primary`; if it does not within the
    /// stream timeout and its server runs, rewind it once and wait again.
    pub fn ensure_following(&self, member: &str, primary: &Pod) -> Result<(), Error> {
        let what = format!("{member} to stream from {}", primary.name);
        let poll = || -> Result<Poll<()>, Error> {
            let ip = self.pod(member)?.and_then(|p| p.ip);
            Ok(match self.streams_from(&primary.name, member, ip.as_deref())? {
                Some(_) => Poll::Done(()),
                None => Poll::NotYet(format!("{member} is not in {}'s pg_stat_replication as streaming", primary.name)),
            })
        };
        match self.wait(&what, self.stream_timeout_ms, poll) {
            Err(e) if e.code == ErrorCode::Timeout => {
                self.log(report::Level::Warn, &format!("{}; rewinding {member} against {}", e.message, primary.name));
                self.rewind(member, primary)?;
                self.wait(&what, self.rejoin_timeout_ms, poll)
            }
            other => other,
        }
    }

    /// Promote `member` and wait until it leaves recovery, then lift any
    /// fence it carried from an earlier life as a primary.
    pub fn promote(&self, member: &str) -> Result<(), Error> {
        self.execute(member, PROMOTE_SQL, &[])?;
        self.wait(&format!("{member} to leave recovery"), self.promote_timeout_ms, || {
            Ok(if pg::state(member)?.in_recovery { Poll::NotYet(format!("{member}: pg_is_in_recovery() still true")) } else { Poll::Done(()) })
        })?;
        self.unfence(member)?;
        self.forget_upstream(member)
    }

    /// Make sure the member kept as primary stays one across a restart: no
    /// standby.signal (a rolled-back stop step may have written it), no
    /// upstream settings, no fence.
    pub fn keep_primary(&self, member: &str) -> Result<(), Error> {
        let command: Vec<String> = ["sh", "-c", r#"rm -f "${PGDATA:?PGDATA is not set}/standby.signal""#].iter().map(|a| a.to_string()).collect();
        self.exec(member, &command)?;
        self.unfence(member)?;
        self.forget_upstream(member)
    }

    pub fn forget_upstream(&self, member: &str) -> Result<(), Error> {
        for sql in FORGET_UPSTREAM_SQL {
            self.execute(member, sql, &[])?;
        }
        Ok(())
    }

    /// Prove `member` commits a write: a row in the write-check table,
    /// retried until it commits (a commit waits for a synchronous standby).
    pub fn verify_writes(&self, member: &str) -> Result<(), Error> {
        let table = &self.write_check_table;
        if !text::plain_identifier(table) {
            return Err(Error::invalid(format!("write-check-table `{table}` must be a lower-case SQL identifier (schema.table allowed)")));
        }
        let create = format!("CREATE TABLE IF NOT EXISTS {table} (id bigserial PRIMARY KEY, member text NOT NULL, at timestamptz NOT NULL DEFAULT now())");
        let insert = format!("INSERT INTO {table} (member) VALUES ($1::text)");
        if self.dry.active() {
            // Shown in the plan; nothing to wait for.
            self.execute(member, &create, &[])?;
            self.execute(member, &insert, &[member])?;
            return Ok(());
        }
        self.wait(&format!("{member} to commit a write to {table}"), self.write_timeout_ms, || {
            self.execute(member, &create, &[])?;
            let rows = self.execute(member, &insert, &[member])?;
            Ok(if rows == 1 || self.dry.active() { Poll::Done(()) } else { Poll::NotYet(format!("{member}: the insert affected {rows} rows")) })
        })
    }

    /// Wait until the Pod of `member` is gone, or back under a new uid.
    pub fn wait_pod_replaced(&self, member: &str, old_uid: &str, timeout_ms: u64) -> Result<(), Error> {
        self.wait(&format!("{member}'s server to stop (Pod {old_uid} gone)"), timeout_ms, || self.set.pod_gone(member, old_uid))
    }

    /// Wait until `member`'s Pod is Ready, and (given a pool) on a Node of it.
    pub fn wait_pod_ready(&self, member: &str, pool: Option<(&str, &str)>, timeout_ms: u64) -> Result<Pod, Error> {
        self.wait(&format!("{member} to be Ready{}", pool.map(|(_, v)| format!(" on pool {v}")).unwrap_or_default()), timeout_ms, || {
            self.set.pod_ready(member, pool)
        })?;
        Ok(self.pod(member)?.unwrap_or_else(|| self.placeholder(member)))
    }

    /// A stand-in for a Pod that does not exist yet in a dry run.
    pub fn placeholder(&self, member: &str) -> Pod {
        Pod { name: member.to_string(), ordinal: self.set.ordinal(member).unwrap_or_default(), container_port: Some(DEFAULT_PORT), ..Default::default() }
    }

    /// The Pod of `member`, or a stand-in in a dry run.
    pub fn pod_or_placeholder(&self, member: &str) -> Result<Pod, Error> {
        match self.pod(member)? {
            Some(pod) => Ok(pod),
            None if self.dry.active() => Ok(self.placeholder(member)),
            None => Err(Error::new(ErrorCode::NotFound, format!("{member}: no such Pod"))),
        }
    }
}

/// Every member's state, or why it did not answer.
pub fn states(pods: &[Pod]) -> Vec<(Pod, Result<State, Error>)> {
    pods.iter().map(|p| (p.clone(), pg::state(&p.name))).collect()
}

/// Bring the cluster to one writable primary behind the Service with every
/// reachable standby following it: keep the only primary, else promote the
/// most advanced standby (`prefer` wins ties). Returns the primary and a
/// description of what it did and what it could not.
pub fn recover(ctx: &Ctx, prefer: &str) -> Result<(String, Vec<String>), Error> {
    let mut done = Vec::new();
    let pods = ctx.pods()?;
    let found = states(&pods);
    let primaries: Vec<&Pod> = found.iter().filter(|(_, s)| s.as_ref().is_ok_and(|s| !s.in_recovery)).map(|(p, _)| p).collect();
    let primary = match primaries.as_slice() {
        [only] => only.name.clone(),
        [] => {
            let mut ranked: Vec<(String, Option<u64>)> =
                found.iter().filter_map(|(p, s)| s.as_ref().ok().map(|s| (p.name.clone(), s.wal_position()))).collect();
            ranked.sort_by_key(|(name, _)| name != prefer);
            let best = pg::most_advanced(&ranked).ok_or_else(|| Error::new(ErrorCode::Unavailable, "no member answers: nothing to promote"))?;
            ctx.promote(&best)?;
            done.push(format!("promoted {best}, the most advanced standby"));
            best
        }
        several => {
            let names: Vec<&str> = several.iter().map(|p| p.name.as_str()).collect();
            for name in &names {
                let _ = ctx.fence(name);
            }
            return Err(Error::internal(format!("{} are all writable primaries; all fenced (read only); choose one by hand", names.join(" and "))));
        }
    };
    ctx.keep_primary(&primary)?;
    if ctx.service_target()?.as_deref() != Some(primary.as_str()) {
        ctx.repoint_service(&primary)?;
        done.push(format!("Service {} re-pointed to {primary}", ctx.service));
    }
    let primary_pod = ctx.pod_or_placeholder(&primary)?;
    let connected = pg::standbys(&primary).unwrap_or_default();
    for (pod, state) in &found {
        if pod.name == primary {
            continue;
        }
        match state {
            Err(e) => done.push(format!("{} not reachable ({}); not rejoined", pod.name, e.message)),
            Ok(_) if connected.iter().any(|s| s.is(&pod.name, pod.ip.as_deref()) && s.state == "streaming") => {}
            Ok(_) => {
                let followed = ctx.point_at(&pod.name, &primary_pod, true).and_then(|_| ctx.ensure_following(&pod.name, &primary_pod));
                match followed {
                    Ok(()) => done.push(format!("{} re-pointed to {primary}", pod.name)),
                    Err(e) => done.push(format!("{} does not follow {primary}: {}", pod.name, e.message)),
                }
            }
        }
    }
    ctx.verify_writes(&primary)?;
    done.push(format!("{primary} accepts writes"));
    Ok((primary, done))
}

#[cfg(test)]
mod tests {
    use super::STANDBY_SCRIPT;
    use std::process::Command;

    /// Runs the in-Pod script in `config` mode on a scratch data directory,
    /// as `kube-write.exec` would (`sh -c SCRIPT sh ARGS...`).
    fn run(pgdata: &std::path::Path, password: Option<&str>) -> std::process::Output {
        let mut command = Command::new("sh");
        command.args(["-c", STANDBY_SCRIPT, "sh", "config", "10.0.0.3", "5432", "replicator", "pg_1", "pg-1", "TEST_PG_PASSWORD", "postgres"]);
        command.env("PGDATA", pgdata).env_remove("TEST_PG_PASSWORD");
        if let Some(password) = password {
            command.env("TEST_PG_PASSWORD", password);
        }
        command.output().expect("sh runs")
    }

    #[test]
    fn standby_settings_replace_old_ones_and_keep_the_rest() {
        let dir = std::env::temp_dir().join(format!("pg-common-standby-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("postgresql.auto.conf"),
            "# Do not edit this file manually!\ndefault_transaction_read_only = 'on'\nprimary_conninfo = 'host=old'\nprimary_slot_name = 'old'\n",
        )
        .unwrap();
        let out = run(&dir, Some(r"a'b\c"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok config pg-1 -> 10.0.0.3:5432 slot pg_1");
        let conf = std::fs::read_to_string(dir.join("postgresql.auto.conf")).unwrap();
        assert_eq!(
            conf,
            "# Do not edit this file manually!\ndefault_transaction_read_only = 'on'\n\
             primary_conninfo = 'host=''10.0.0.3'' port=''5432'' user=''replicator'' password=''a\\\\''b\\\\\\\\c'' application_name=''pg-1'' connect_timeout=5'\n\
             primary_slot_name = 'pg_1'\n"
        );
        assert!(dir.join("standby.signal").is_file());
        // The password never reaches the output.
        assert!(!String::from_utf8_lossy(&out.stdout).contains("a'b"));

        std::fs::remove_file(dir.join("standby.signal")).unwrap();
        let refused = run(&dir, None);
        assert_eq!(refused.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&refused.stderr).contains("TEST_PG_PASSWORD is not set in pg-1's container environment"));
        assert!(!dir.join("standby.signal").exists(), "nothing is written without a password");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Writes an executable shell script.
    fn tool(dir: &std::path::Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// pg_rewind deletes the target's postmaster.pid (it is on its exclusion
    /// list) while it runs; a server a kubelet restarted then started on the
    /// directory being rewound, and the script's exit then deleted that
    /// server's own lock file. Stand-ins for the PostgreSQL tools check that
    /// the socket's lock file still names the script after pg_rewind deleted
    /// postmaster.pid, and that a lock file the script did not make survives it.
    #[test]
    fn rewind_holds_the_socket_lock_through_pg_rewind_and_leaves_other_locks_alone() {
        let root = std::env::temp_dir().join(format!("pg-common-rewind-{}", std::process::id()));
        let (pgdata, run, bin) = (root.join("data"), root.join("run"), root.join("bin"));
        for dir in [&pgdata, &run, &bin] {
            std::fs::create_dir_all(dir).unwrap();
        }
        // A socket lock left by a server killed with SIGKILL: a process that no longer runs.
        let mut gone = Command::new("true").spawn().unwrap();
        let gone_pid = gone.id();
        gone.wait().unwrap();
        std::fs::write(run.join(".s.PGSQL.5432.lock"), format!("{gone_pid}\n{}\n", pgdata.display())).unwrap();
        tool(&bin, "pg_ctl", "exit 3\n");
        tool(&bin, "pg_controldata", "echo 'Database cluster state:               shut down'\n");
        tool(
            &bin,
            "pg_rewind",
            r#"holder() { sed -n 1p "$1"; }
[ "$(holder "$PGDATA/postmaster.pid")" = "$PPID" ] || { echo "postmaster.pid is not the script's" >&2; exit 11; }
rm "$PGDATA/postmaster.pid"
[ "$(holder "$PGHOST/.s.PGSQL.$PGPORT.lock")" = "$PPID" ] || { echo "the socket lock is not the script's" >&2; exit 12; }
# A server restarted meanwhile made its own postmaster.pid (and gave up at the socket lock).
printf '4194305\n%s\n' "$PGDATA" > "$PGDATA/postmaster.pid"
"#,
        );
        let out = Command::new("sh")
            .args(["-c", STANDBY_SCRIPT, "sh", "rewind", "10.0.0.3", "5432", "replicator", "pg_1", "pg-1", "TEST_PG_PASSWORD", "postgres"])
            .env("PGDATA", &pgdata)
            .env("PGHOST", &run)
            .env("PGPORT", "5432")
            .env("TEST_PG_PASSWORD", "secret")
            .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
            .output()
            .expect("sh runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok rewind pg-1 -> 10.0.0.3:5432 slot pg_1");
        assert!(!run.join(".s.PGSQL.5432.lock").exists(), "the script's socket lock is gone once it is done");
        assert_eq!(std::fs::read_to_string(pgdata.join("postmaster.pid")).unwrap().lines().next(), Some("4194305"), "another's lock file stays");
        assert!(pgdata.join("standby.signal").is_file());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
