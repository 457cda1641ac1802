//! Run directories: what other processes can see of a run and say to it.
//!
//! Every run with a journal gets `<state>/runner/runs/<RUN-ID>/` (beside
//! `<state>/runner/journal/`): `run.json` (policy, pid, operator, state,
//! when it started and ended), `approval.json` while an approval waits
//! (what it asks), `answer.json` once someone answered it (`runner approve`
//! or `runner reject`: who, when, yes or no), and `stop` once someone asked
//! the run to stop at its next step boundary (`runner stop`); `calls.jsonl`,
//! the run log a resume replays, and `invocation.json`, the arguments it was
//! started with (`runner exec --resume RUN-ID`). Any process
//! that can write the directory can answer: a second shell, CI, a chat bot.
//! Files are written whole (a temporary file renamed into place), so a
//! reader never sees half of one.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Where the run directories live: `$XDG_STATE_HOME/runner/runs` (or the
/// platform's equivalent), or `RUNNER_RUNS_DIR`.
pub fn root() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUNNER_RUNS_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::state_dir().or_else(dirs::data_local_dir).unwrap_or_else(std::env::temp_dir).join("runner/runs")
}

/// A run's state as `runner runs` lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunState {
    /// The run's id.
    pub id: String,
    /// The policy it runs.
    pub policy: String,
    /// Who started it.
    pub operator: String,
    /// The runner's process id while it runs.
    pub pid: u32,
    /// `running`, `waiting-approval`, `stopping`, or how it ended
    /// (`succeeded`, `rolled-back`, `failed`, `error`, `stopped`, ...).
    pub state: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// When it ended, once it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// Its journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<PathBuf>,
    /// The digest of the policy it runs: a resume runs the same one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// How many times it was resumed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resumed: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An approval waiting for an answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PendingApproval {
    /// What is asked, one line.
    pub summary: String,
    /// What exactly will happen.
    pub details: String,
    /// The component that asks.
    pub component: String,
    /// The pattern step running when it asked, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// When it was asked (RFC 3339).
    pub asked: String,
}

/// Someone's answer to an approval.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApprovalAnswer {
    /// Yes or no.
    pub approved: bool,
    /// Who answered (`$USER` of the answering process, or `--as`).
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// How: `runner approve`, `runner reject`, `terminal`, `--approve`.
    pub via: String,
}

/// Why a run directory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    /// No run has that id (no directory).
    #[error("no run `{0}` in {1} (see `runner runs`)")]
    NotFound(String, PathBuf),
    /// The run exists but is not waiting for what was asked.
    #[error("{0}")]
    Refused(String),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
}

/// The directory of one run.
#[derive(Clone, Debug)]
pub struct RunDir {
    dir: PathBuf,
}

const RUN: &str = "run.json";
const APPROVAL: &str = "approval.json";
const ANSWER: &str = "answer.json";
const STOP: &str = "stop";
const INVOCATION: &str = "invocation.json";
const LOG: &str = "calls.jsonl";

impl RunDir {
    /// The directory of run `id` under `root`; nothing is created.
    pub fn at(root: &Path, id: &str) -> RunDir {
        RunDir { dir: root.join(id) }
    }

    /// An existing run's directory, or why there is none.
    pub fn existing(root: &Path, id: &str) -> Result<RunDir, RunsError> {
        // A run id is a file name, never a path.
        if id.is_empty() || id.contains(['/', '\\']) || id.starts_with('.') {
            return Err(RunsError::Refused(format!("`{id}` is not a run id")));
        }
        let run = RunDir::at(root, id);
        if !run.dir.join(RUN).is_file() {
            return Err(RunsError::NotFound(id.to_string(), root.to_path_buf()));
        }
        Ok(run)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn write<T: Serialize>(&self, name: &str, value: &T) -> Result<(), RunsError> {
        let io = |e: std::io::Error| RunsError::Io(format!("{}: {e}", self.dir.join(name).display()));
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let text = serde_json::to_string_pretty(value).map_err(|e| RunsError::Io(e.to_string()))?;
        let temporary = self.dir.join(format!(".{name}.{}", std::process::id()));
        std::fs::write(&temporary, text).map_err(io)?;
        std::fs::rename(&temporary, self.dir.join(name)).map_err(io)
    }

    fn read<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Option<T> {
        let text = std::fs::read_to_string(self.dir.join(name)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Record the run's state.
    pub fn set_state(&self, state: &RunState) -> Result<(), RunsError> {
        self.write(RUN, state)
    }

    /// The run's state, if readable.
    pub fn state(&self) -> Option<RunState> {
        self.read(RUN)
    }

    /// Change only the `state` field (and `ended` for an ending).
    pub fn update_state(&self, state: &str, ended: bool) {
        if let Some(mut current) = self.state() {
            current.state = state.to_string();
            if ended {
                current.ended = Some(crate::journal::timestamp());
            }
            if let Err(e) = self.set_state(&current) {
                tracing::warn!("run state: {e}");
            }
        }
    }

    /// Publish an approval waiting for an answer; an earlier answer is cleared.
    pub fn ask(&self, pending: &PendingApproval) -> Result<(), RunsError> {
        let _ = std::fs::remove_file(self.dir.join(ANSWER));
        self.write(APPROVAL, pending)?;
        self.update_state("waiting-approval", false);
        Ok(())
    }

    /// The approval waiting, if one is.
    pub fn pending(&self) -> Option<PendingApproval> {
        self.read(APPROVAL)
    }

    /// The answer given, if any.
    pub fn answer(&self) -> Option<ApprovalAnswer> {
        self.read(ANSWER)
    }

    /// The approval is over: nothing waits any more. A stop asked for
    /// meanwhile stays in the state (`stopping`).
    pub fn settle(&self) {
        let _ = std::fs::remove_file(self.dir.join(APPROVAL));
        let _ = std::fs::remove_file(self.dir.join(ANSWER));
        if self.state().is_some_and(|s| s.state == "waiting-approval") {
            self.update_state("running", false);
        }
    }

    /// Answer the waiting approval (`runner approve` / `runner reject`).
    /// `step`, when given, must be the step the approval was asked in.
    pub fn respond(&self, answer: &ApprovalAnswer, step: Option<&str>) -> Result<PendingApproval, RunsError> {
        let id = self.dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let Some(pending) = self.pending() else {
            let state = self.state().map(|s| s.state).unwrap_or_else(|| "unknown".into());
            return Err(RunsError::Refused(format!("run {id} is not waiting for an approval (it is {state})")));
        };
        if let Some(step) = step
            && pending.step.as_deref() != Some(step)
            && pending.summary != step
        {
            return Err(RunsError::Refused(format!(
                "run {id} waits for an approval in step `{}` ({}), not `{step}`",
                pending.step.as_deref().unwrap_or("none"),
                pending.summary
            )));
        }
        if self.answer().is_some() {
            return Err(RunsError::Refused(format!("run {id}'s approval ({}) was already answered", pending.summary)));
        }
        self.write(ANSWER, answer)?;
        Ok(pending)
    }

    /// Ask the run to stop at its next step boundary (`runner stop`).
    pub fn request_stop(&self, by: &str) -> Result<(), RunsError> {
        std::fs::write(self.dir.join(STOP), format!("{by} {}\n", crate::journal::timestamp()))
            .map_err(|e| RunsError::Io(format!("{}: {e}", self.dir.join(STOP).display())))?;
        self.update_state("stopping", false);
        Ok(())
    }

    /// Who asked the run to stop, once someone did.
    pub fn stop_requested(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join(STOP)).ok().map(|t| t.trim().to_string())
    }

    /// The run log's file: what the run's own component was answered, for a resume.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG)
    }

    /// Keep what starting the run again needs (`runner exec --resume`).
    pub fn set_invocation(&self, invocation: &serde_json::Value) -> Result<(), RunsError> {
        self.write(INVOCATION, invocation)
    }

    /// What starting the run again needs, if the run kept it.
    pub fn invocation(&self) -> Option<serde_json::Value> {
        self.read(INVOCATION)
    }

    /// Forget an earlier attempt's stop request and unanswered approval: a
    /// resumed run starts with neither.
    pub fn clear_requests(&self) {
        for name in [STOP, APPROVAL, ANSWER] {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
    }

    /// Whether the process that runs it is alive (a killed run is not).
    pub fn alive(&self) -> bool {
        let Some(state) = self.state() else { return false };
        state.ended.is_none() && Path::new(&format!("/proc/{}", state.pid)).exists()
    }
}

/// Who ran the command: `$USER`, else the OS user of the process.
pub fn operator() -> String {
    let os_user = os_user();
    match std::env::var("USER").ok().filter(|u| !u.trim().is_empty()) {
        Some(user) if os_user.as_deref().is_none_or(|os| os == user) => user,
        Some(user) => format!("{user} (OS user {})", os_user.unwrap_or_default()),
        None => os_user.unwrap_or_else(|| "unknown".into()),
    }
}

/// The name of the process's real user, from the password database.
fn os_user() -> Option<String> {
    let mut buffer = vec![0 as libc::c_char; 4096];
    // SAFETY: `passwd` and `buffer` outlive the call; getpwuid_r writes only
    // within `buffer.len()` bytes and sets `result` to null or to `passwd`.
    unsafe {
        let mut passwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let status = libc::getpwuid_r(libc::getuid(), &mut passwd, buffer.as_mut_ptr(), buffer.len(), &mut result);
        if status != 0 || result.is_null() || passwd.pw_name.is_null() {
            return None;
        }
        Some(std::ffi::CStr::from_ptr(passwd.pw_name).to_string_lossy().into_owned())
    }
}

/// Every run under `root`, newest first.
pub fn list(root: &Path) -> Vec<(RunDir, RunState)> {
    let mut runs: Vec<(RunDir, RunState, SystemTime)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let run = RunDir { dir: entry.path() };
            let modified = entry.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
            run.state().map(|state| (run, state, modified))
        })
        .collect();
    runs.sort_by(|a, b| b.1.started.cmp(&a.1.started).then(b.2.cmp(&a.2)));
    runs.into_iter().map(|(run, state, _)| (run, state)).collect()
}

/// How often a waiting approval looks for an answer.
pub const POLL: Duration = Duration::from_millis(200);

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str, started: &str) -> RunState {
        RunState {
            id: id.into(),
            policy: "staged-rollout".into(),
            operator: "sre".into(),
            pid: std::process::id(),
            state: "running".into(),
            started: started.into(),
            ended: None,
            journal: None,
            digest: String::new(),
            resumed: 0,
        }
    }

    #[test]
    fn an_approval_is_answered_once_by_another_process_and_named() {
        let root = tempfile::tempdir().unwrap();
        let run = RunDir::at(root.path(), "r1");
        run.set_state(&state("r1", "2026-12-04T10:00:00Z")).unwrap();
        let answer = ApprovalAnswer { approved: true, by: "dba".into(), at: "2026-12-04T10:01:00Z".into(), via: "runner approve".into() };
        let refused = RunDir::existing(root.path(), "r1").unwrap().respond(&answer, None).unwrap_err();
        assert!(refused.to_string().contains("is not waiting for an approval (it is running)"), "{refused}");
        let pending = PendingApproval {
            summary: "start stage prod (prod)".into(),
            details: "roll prod out".into(),
            component: "staged-rollout".into(),
            step: Some("approve prod".into()),
            asked: "2026-12-04T10:00:30Z".into(),
        };
        run.ask(&pending).unwrap();
        assert_eq!(run.state().unwrap().state, "waiting-approval");
        let wrong = run.respond(&answer, Some("approve test")).unwrap_err();
        assert!(wrong.to_string().contains("waits for an approval in step `approve prod`"), "{wrong}");
        assert_eq!(run.respond(&answer, Some("approve prod")).unwrap(), pending);
        assert_eq!(run.answer(), Some(answer.clone()));
        assert!(run.respond(&answer, None).unwrap_err().to_string().contains("already answered"));
        run.settle();
        assert!(run.pending().is_none() && run.answer().is_none());
        assert_eq!(run.state().unwrap().state, "running");
        run.ask(&pending).unwrap();
        run.request_stop("sre").unwrap();
        run.settle();
        assert_eq!(run.state().unwrap().state, "stopping", "a stop asked for while the approval waited is not forgotten");
    }

    #[test]
    fn runs_are_listed_newest_first_and_stops_are_recorded() {
        let root = tempfile::tempdir().unwrap();
        for (id, started) in [("old", "2026-12-01T00:00:00Z"), ("new", "2026-12-04T00:00:00Z")] {
            RunDir::at(root.path(), id).set_state(&state(id, started)).unwrap();
        }
        let ids: Vec<String> = list(root.path()).into_iter().map(|(_, s)| s.id).collect();
        assert_eq!(ids, ["new", "old"]);
        let run = RunDir::existing(root.path(), "new").unwrap();
        assert!(run.alive(), "this process runs it");
        assert!(run.stop_requested().is_none());
        run.request_stop("sre").unwrap();
        assert!(run.stop_requested().unwrap().starts_with("sre "));
        assert_eq!(run.state().unwrap().state, "stopping");
        assert!(matches!(RunDir::existing(root.path(), "nope"), Err(RunsError::NotFound(..))));
        assert!(matches!(RunDir::existing(root.path(), "../etc"), Err(RunsError::Refused(_))));
    }
}
