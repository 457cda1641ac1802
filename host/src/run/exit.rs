//! How a run (or any command) ends, as the exit code the README documents.

use crate::engine::EngineError;
use crate::target::TargetError;

/// Exit codes, as documented in the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Success, or a gate passed (or warned).
    Success = 0,
    /// The policy reported failure: a gate failed, a pattern rolled back or aborted.
    PolicyFailed = 1,
    /// Bad input: unreadable or invalid component, bad config, target or flag.
    BadInput = 2,
    /// The sandbox stopped the component: deadline, memory, trap, capability denied.
    Sandbox = 3,
    /// A backend was unreachable.
    Unavailable = 4,
}

/// A command that did not succeed: what to print and how to exit.
#[derive(Debug)]
pub struct Failure {
    /// The exit code it earns.
    pub exit: Exit,
    /// What to tell the operator, without the `error: ` prefix.
    pub message: String,
    /// The command already printed its report on stdout (which names this
    /// failure), so `--output json` must not add an error document after it.
    pub reported: bool,
}

impl Failure {
    /// A failure with this exit code.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure { exit, message: message.into(), reported: false }
    }

    /// The same failure, its report already printed.
    pub fn after_report(mut self) -> Self {
        self.reported = true;
        self
    }

    /// Bad input (exit 2).
    pub fn bad_input(message: impl Into<String>) -> Self {
        Failure::new(Exit::BadInput, message)
    }
}

impl From<EngineError> for Failure {
    /// An invalid component is bad input; a stopped one is the sandbox's doing.
    fn from(error: EngineError) -> Self {
        let exit = match error {
            EngineError::Invalid(_) => Exit::BadInput,
            EngineError::Stopped { .. } => Exit::Sandbox,
            EngineError::Host(_) => Exit::PolicyFailed,
        };
        Failure::new(exit, error.to_string())
    }
}

impl From<TargetError> for Failure {
    /// A wrong target file is bad input; a cluster out of reach is exit 4.
    fn from(error: TargetError) -> Self {
        match error {
            TargetError::Bad(message) => Failure::bad_input(message),
            TargetError::Unreachable(message) => Failure::new(Exit::Unavailable, message),
        }
    }
}
