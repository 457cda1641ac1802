//! Waiting on the host clock: until a condition holds, telling errors that
//! may pass (a member restarting does not answer) from those that will not.

use crate::{Error, ErrorCode, clock, report};

/// One look at a condition: done (with what was found), or not yet and why.
#[derive(Clone, Debug, PartialEq)]
pub enum Poll<T> {
    /// The condition holds.
    Done(T),
    /// Not yet; the reason is quoted if the wait runs out of time.
    NotYet(String),
}

impl Error {
    /// Whether no retry can help: the call was refused (`denied`) or its
    /// arguments were rejected (`invalid`). Anything else may pass.
    pub fn is_fatal(&self) -> bool {
        matches!(self.code, ErrorCode::Denied | ErrorCode::Invalid)
    }
}

/// Poll `condition` on the host clock every `interval_ms` until it yields a
/// value, fails, or `timeout_ms` passes (then a `timeout` error naming `what`).
pub fn wait_until<T>(what: &str, timeout_ms: u64, interval_ms: u64, mut condition: impl FnMut() -> Result<Option<T>, Error>) -> Result<T, Error> {
    let start = clock::now();
    loop {
        if let Some(value) = condition()? {
            return Ok(value);
        }
        let elapsed = clock::now().saturating_sub(start);
        if elapsed >= timeout_ms {
            return Err(Error::timeout(format!("{what}: not done after {timeout_ms} ms")));
        }
        clock::sleep(interval_ms.min(timeout_ms - elapsed));
    }
}

/// [`wait_until`] for conditions that look through the host: a fatal error
/// ([`Error::is_fatal`]) ends the wait at once, any other error counts as
/// "not yet". When time runs out, the `timeout` error quotes the last reason
/// (`<what>: not done after N ms; last seen: <reason>`), so the operator
/// learns what was still missing.
pub fn wait_for<T>(what: &str, timeout_ms: u64, interval_ms: u64, mut condition: impl FnMut() -> Result<Poll<T>, Error>) -> Result<T, Error> {
    let mut last = String::new();
    let result = wait_until(what, timeout_ms, interval_ms, || {
        let polled = match condition() {
            Ok(Poll::Done(value)) => return Ok(Some(value)),
            Ok(Poll::NotYet(why)) => why,
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) => e.message,
        };
        // The operator's terminal shows what is awaited and what was last seen.
        report::progress(what, &polled);
        last = polled;
        Ok(None)
    });
    report::progress("", "");
    result.map_err(|e| if e.code == ErrorCode::Timeout && !last.is_empty() { Error::timeout(format!("{}; last seen: {last}", e.message)) } else { e })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_fatal_and_outages_are_not() {
        assert!(Error::new(ErrorCode::Denied, "no grant").is_fatal());
        assert!(Error::invalid("bad SQL").is_fatal());
        for code in [ErrorCode::NotFound, ErrorCode::Conflict, ErrorCode::Timeout, ErrorCode::Unavailable, ErrorCode::Internal] {
            assert!(!Error::new(code, "may pass").is_fatal(), "{code}");
        }
    }
}
