//! `approval`: a human says yes before a pattern does something that cannot
//! be undone. Capability `approval:request`.
//!
//! The question is answered by `--approve`, at the terminal, or from any
//! other process through the run's directory (`runner approve RUN-ID`,
//! `runner reject RUN-ID`; see [`crate::runs`]), whichever comes first;
//! without a terminal it waits for the latter only with `--approval-timeout`.
//! The answer is journaled after the request (`approval.answer`: who, when, how).

use std::io::{BufRead, IsTerminal, Write};

use serde_json::json;

use std::sync::{Arc, Mutex};

use super::{Effect, HostState, RunContext};
use crate::backends::{BackendError, ErrorCode};
use crate::runs::{ApprovalAnswer, PendingApproval};
use crate::wit::Error;
use crate::wit::pattern::runner::policy::approval;

/// How approval requests are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Approval {
    /// `--approve`: every request is approved, and journaled as such.
    PreApproved,
    /// Ask on the terminal.
    Ask,
    /// Nobody can answer: requests fail with `unavailable`.
    Unattended,
}

impl Approval {
    /// `--approve` wins; otherwise ask when stdin is a terminal.
    pub fn from_flags(approve: bool) -> Self {
        if approve {
            Approval::PreApproved
        } else if std::io::stdin().is_terminal() {
            Approval::Ask
        } else {
            Approval::Unattended
        }
    }
}

impl approval::Host for HostState {
    async fn request(&mut self, summary: String, details: String) -> wasmtime::Result<Result<bool, Error>> {
        let started = std::time::Instant::now();
        let args = json!({"summary": summary, "details": details});
        let pending = PendingApproval {
            summary: summary.clone(),
            details: details.clone(),
            component: self.component.to_string(),
            step: self.running_step(),
            asked: crate::journal::timestamp(),
        };
        let (run, deadline) = (self.run.clone(), self.deadline);
        let answered: Arc<Mutex<Option<ApprovalAnswer>>> = Arc::default();
        let given = answered.clone();
        // Under --dry-run the request is part of the plan and counts as approved.
        let effect = Effect::Mutate { dry_run_answer: true };
        let result = self
            .guarded("approval.request", Ok("*"), move || args, effect, async move {
                let answer = answer(&run, pending, deadline).await?;
                let approved = answer.approved;
                *given.lock().unwrap_or_else(|p| p.into_inner()) = Some(answer);
                Ok(approved)
            })
            .await?;
        // Who answered, and how: beside the request in the journal.
        if let Some(answer) = answered.lock().unwrap_or_else(|p| p.into_inner()).take() {
            self.note("approval.answer", serde_json::to_value(&answer).unwrap_or_default(), started)?;
        }
        Ok(result)
    }
}

/// The operator's answer: `--approve`'s, or the first of the terminal's and
/// another process's (`runner approve`/`runner reject`), within the
/// approval's own timeout and never past the run's deadline.
async fn answer(run: &RunContext, pending: PendingApproval, deadline: std::time::Instant) -> Result<ApprovalAnswer, BackendError> {
    let by_operator = |approved: bool, via: &str| ApprovalAnswer { approved, by: crate::runs::operator(), at: crate::journal::timestamp(), via: via.into() };
    let mode = run.approval;
    if mode == Approval::PreApproved {
        return Ok(by_operator(true, "--approve"));
    }
    let external = run.run_dir.as_ref().filter(|_| mode == Approval::Ask || !run.approval_timeout.is_zero());
    let Some(run_dir) = external else {
        if mode == Approval::Unattended {
            return Err(BackendError::new(
                ErrorCode::Unavailable,
                "approval needed but nobody can answer (stdin is not a terminal); pass --approve to pre-approve, or --approval-timeout to wait for `runner approve RUN-ID`",
            ));
        }
        return ask_terminal(&pending, deadline).await.map(|approved| by_operator(approved, "terminal"));
    };
    run_dir.ask(&pending).map_err(|e| BackendError::new(ErrorCode::Unavailable, format!("cannot publish the approval: {e}")))?;
    if mode == Approval::Ask {
        eprintln!("(or answer from anywhere: runner approve {0} / runner reject {0})", run.run_id);
    }
    let limit = if run.approval_timeout.is_zero() { deadline } else { deadline.min(std::time::Instant::now() + run.approval_timeout) };
    let from_elsewhere = async {
        loop {
            if let Some(answer) = run_dir.answer() {
                return answer;
            }
            tokio::time::sleep(crate::runs::POLL).await;
        }
    };
    let terminal = async {
        match mode {
            Approval::Ask => ask_terminal(&pending, limit).await.map(|approved| by_operator(approved, "terminal")),
            _ => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        answer = from_elsewhere => Ok(answer),
        answer = terminal => answer,
        _ = tokio::time::sleep_until(limit.into()) => Err(BackendError::new(
            ErrorCode::Timeout,
            match mode {
                Approval::Ask => format!("nobody answered the approval prompt before the deadline (nor `runner approve {}`)", run.run_id),
                _ => format!("nobody answered the approval ({}) within --approval-timeout (`runner approve {}`)", pending.summary, run.run_id),
            },
        )),
    };
    run_dir.settle();
    result
}

/// Ask on the terminal, on a thread of its own rather than the runtime's
/// blocking pool: a prompt nobody answers must not keep the runner from exiting.
async fn ask_terminal(pending: &PendingApproval, until: std::time::Instant) -> Result<bool, BackendError> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    let (component, summary, details) = (pending.component.clone(), pending.summary.clone(), pending.details.clone());
    std::thread::spawn(move || answer.send(ask(&component, &summary, &details)));
    match tokio::time::timeout_at(until.into(), answered).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => Err(BackendError::new(ErrorCode::Internal, "the approval prompt ended without an answer")),
        Err(_) => Err(BackendError::new(ErrorCode::Timeout, "nobody answered the approval prompt before the deadline")),
    }
}

fn ask(component: &str, summary: &str, details: &str) -> Result<bool, BackendError> {
    {
        // Not held while the read blocks: the run goes on logging to stderr, and a prompt
        // nobody answers must not stop it from printing its report at the deadline.
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\n[{component}] approval needed: {summary}\n{details}\nApprove? [y/N] ");
        let _ = err.flush();
    }
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(|e| BackendError::new(ErrorCode::Unavailable, format!("cannot read the answer: {e}")))?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}
