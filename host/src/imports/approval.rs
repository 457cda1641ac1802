//! `approval`: a human says yes before a pattern does something that cannot
//! be undone. Capability `approval:request`.

use std::io::{BufRead, IsTerminal, Write};

use serde_json::json;

use super::{Effect, HostState};
use crate::backends::{BackendError, ErrorCode};
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
        let args = json!({"summary": summary, "details": details});
        let mode = self.run.approval;
        let component = self.component.clone();
        let deadline = self.deadline;
        // Under --dry-run the request is part of the plan and counts as approved.
        let effect = Effect::Mutate { dry_run_answer: true };
        self.guarded("approval.request", Ok("*"), move || args, effect, async move {
            match mode {
                Approval::PreApproved => Ok(true),
                Approval::Unattended => Err(BackendError::new(
                    ErrorCode::Unavailable,
                    "approval needed but nobody can answer (stdin is not a terminal); pass --approve to pre-approve",
                )),
                // A thread of its own, not the runtime's blocking pool: a
                // prompt nobody answers must not keep the runner from exiting.
                Approval::Ask => {
                    let (answer, answered) = tokio::sync::oneshot::channel();
                    std::thread::spawn(move || answer.send(ask(&component, &summary, &details)));
                    match tokio::time::timeout_at(deadline.into(), answered).await {
                        Ok(Ok(answer)) => answer,
                        Ok(Err(_)) => Err(BackendError::new(ErrorCode::Internal, "the approval prompt ended without an answer")),
                        Err(_) => Err(BackendError::new(ErrorCode::Timeout, "nobody answered the approval prompt before the deadline")),
                    }
                }
            }
        })
        .await
    }
}

fn ask(component: &str, summary: &str, details: &str) -> Result<bool, BackendError> {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\n[{component}] approval needed: {summary}\n{details}\nApprove? [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(|e| BackendError::new(ErrorCode::Unavailable, format!("cannot read the answer: {e}")))?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}
