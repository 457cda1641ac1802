//! Running the pattern bound to a slot (`patterns.run`): composition, as
//! [`GateCall`](crate::GateCall) is for gates.

use serde_json::Value;

use crate::patterns::{self, PatternRun};
use crate::{Error, ErrorCode};

/// What running the pattern bound to a slot came to.
#[derive(Clone, Debug)]
pub enum PatternCall {
    /// Every step of the sub-pattern succeeded; its summary.
    Succeeded(String),
    /// A step failed and the sub-pattern restored the previous state; its summary.
    RolledBack(String),
    /// The sub-pattern stopped without completing or rolling back: its error
    /// (the message starts with its name and says what state it left).
    Errored(Error),
    /// The sandbox stopped it (deadline, memory, trap, output limit); the text names it.
    Stopped(String),
    /// The host did not start it: the pattern lacks `patterns:run:<slot>`
    /// (`denied`), no pattern is bound to the slot (`not-found`), the
    /// configuration was refused (`invalid`) or this run cannot run
    /// patterns (`unavailable`).
    Host(Error),
}

impl PatternCall {
    /// `patterns.run` on `slot` with `config` (a JSON object).
    pub fn run(slot: &str, config: &Value) -> PatternCall {
        Self::from_answer(patterns::run(slot, &config.to_string()))
    }

    /// The typed form of the host's answer.
    pub fn from_answer(answer: Result<PatternRun, Error>) -> PatternCall {
        match answer {
            Ok(PatternRun::Succeeded(summary)) => PatternCall::Succeeded(summary),
            Ok(PatternRun::RolledBack(summary)) => PatternCall::RolledBack(summary),
            Ok(PatternRun::PatternError(e)) => PatternCall::Errored(e),
            Ok(PatternRun::Stopped(why)) => PatternCall::Stopped(why),
            Err(e) => PatternCall::Host(e),
        }
    }

    /// The summary when it succeeded, else an error saying what it came to:
    /// a roll-back is `internal` quoting the sub-pattern's summary (the
    /// state is as before it, which the caller must say), a stop `internal`
    /// quoting the sandbox; the sub-pattern's and the host's errors keep
    /// their code. Every message starts with "pattern slot `<slot>`".
    pub fn into_result(self, slot: &str) -> Result<String, Error> {
        match self {
            PatternCall::Succeeded(summary) => Ok(summary),
            PatternCall::RolledBack(summary) => Err(Error::internal(format!("pattern slot `{slot}` rolled back: {summary}"))),
            PatternCall::Stopped(why) => Err(Error::internal(format!("pattern slot `{slot}` stopped: {why}"))),
            PatternCall::Errored(e) => Err(Error::new(e.code, format!("pattern slot `{slot}` failed: {}", e.message))),
            PatternCall::Host(e) => Err(Error::new(e.code, format!("pattern slot `{slot}` not started: {}", e.message))),
        }
    }

    /// Whether the sub-pattern left the cluster as it found it: it rolled
    /// back, or the host never started it. Only then may a caller say
    /// nothing was changed by it.
    pub fn unchanged(&self) -> bool {
        matches!(self, PatternCall::RolledBack(_) | PatternCall::Host(_))
    }

    /// Whether the operator declined the sub-pattern's approval (its
    /// roll-back summary says so, as [`Approval::declined`](crate::Approval::declined) words it).
    pub fn declined(&self) -> bool {
        matches!(self, PatternCall::RolledBack(summary) if summary.contains("the operator declined to"))
            || matches!(self, PatternCall::Errored(e) if e.code == ErrorCode::Denied && e.message.contains("the operator declined to"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_success_is_ok_and_every_error_names_the_slot() {
        assert_eq!(PatternCall::from_answer(Ok(PatternRun::Succeeded("moved 3 members".into()))).into_result("postgres").unwrap(), "moved 3 members");
        let rolled = PatternCall::from_answer(Ok(PatternRun::RolledBack("the operator declined to promote pg-3".into())));
        assert!(rolled.unchanged() && rolled.declined());
        let e = rolled.into_result("postgres").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::Internal, "pattern slot `postgres` rolled back: the operator declined to promote pg-3"));
        let errored =
            PatternCall::from_answer(Ok(PatternRun::PatternError(Error::new(ErrorCode::Timeout, "pattern `redis-rolling-replace`: redis-3 not Ready"))));
        assert!(!errored.unchanged() && !errored.declined());
        let e = errored.into_result("redis").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::Timeout, "pattern slot `redis` failed: pattern `redis-rolling-replace`: redis-3 not Ready"));
        let stopped = PatternCall::from_answer(Ok(PatternRun::Stopped("mongo-stepdown-cascade: deadline exceeded".into())));
        assert!(!stopped.unchanged());
        assert_eq!(stopped.into_result("mongo").unwrap_err().code, ErrorCode::Internal);
        let host = PatternCall::from_answer(Err(Error::new(ErrorCode::Denied, "patterns:run:postgres not requested")));
        assert!(host.unchanged());
        let e = host.into_result("postgres").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::Denied, "pattern slot `postgres` not started: patterns:run:postgres not requested"));
    }
}
