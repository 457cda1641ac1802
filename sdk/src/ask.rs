//! Asking the operator before a pattern does what cannot be undone.

use crate::{Error, ErrorCode, approval};

const DECLINED: &str = "the operator declined to ";

/// What `approval.request` came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Approval {
    /// The operator said yes (or pre-approved with `--approve`; a dry run
    /// counts as approved, and the request is in its plan).
    Approved,
    /// The operator said no: the pattern ends with nothing changed since the
    /// question, its `rolled-back` summary starting "the operator declined to"
    /// ([`Approval::declined`]).
    Declined,
}

impl Approval {
    /// Ask once: `summary` is one line, `details` say exactly what will
    /// happen. Nobody able to answer (no terminal, no `--approve`) is an
    /// `unavailable` error whose message starts "approval needed: pass
    /// --approve or run on a terminal"; other errors (a capability not
    /// granted, a prompt's deadline) keep their code.
    pub fn ask(summary: &str, details: &str) -> Result<Approval, Error> {
        match approval::request(summary, details) {
            Ok(true) => Ok(Approval::Approved),
            Ok(false) => Ok(Approval::Declined),
            Err(e) if e.code == ErrorCode::Unavailable => {
                // The host's own words when they add something (a terminal that could not be read).
                let why = if e.message.contains("--approve") { String::new() } else { format!("; {}", e.message) };
                Err(Error::new(ErrorCode::Unavailable, format!("approval needed: pass --approve or run on a terminal (to {summary}{why})")))
            }
            Err(e) => Err(Error::new(e.code, format!("approval request: {}", e.message))),
        }
    }

    /// The error a pattern carries to its end when the operator said no to
    /// `summary` (`denied`, "the operator declined to <summary>"); its
    /// message starts the `rolled-back` summary ([`Approval::was_declined`]).
    pub fn declined(summary: &str) -> Error {
        Error::new(ErrorCode::Denied, format!("{DECLINED}{summary}"))
    }

    /// Whether `e` is [`Approval::declined`]'s error.
    pub fn was_declined(e: &Error) -> bool {
        e.code == ErrorCode::Denied && e.message.starts_with(DECLINED)
    }

    /// Whether `e` is [`Approval::ask`]'s error for nobody able to answer.
    pub fn needed(e: &Error) -> bool {
        e.code == ErrorCode::Unavailable && e.message.starts_with("approval needed:")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_no_and_nobody_to_answer_are_told_apart_from_other_errors() {
        let no = Approval::declined("promote pg-3");
        assert_eq!((no.code, no.message.as_str()), (ErrorCode::Denied, "the operator declined to promote pg-3"));
        assert!(Approval::was_declined(&no) && !Approval::needed(&no));
        assert!(!Approval::was_declined(&Error::new(ErrorCode::Denied, "`approval:request` was not requested")));
        let needed = Error::new(ErrorCode::Unavailable, "approval needed: pass --approve or run on a terminal (to promote pg-3)");
        assert!(Approval::needed(&needed) && !Approval::was_declined(&needed));
        assert!(!Approval::needed(&Error::new(ErrorCode::Unavailable, "pg-0: connection refused")));
    }
}
