//! Build a gate's verdict from findings.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Outcome, Verdict};

/// Findings collected while a gate looks around; [`Check::verdict`] turns them
/// into the answer: `fail` if anything failed, else `warn` if anything
/// warned, else `pass`.
#[derive(Debug, Default)]
pub struct Check {
    failures: Vec<String>,
    warnings: Vec<String>,
    notes: Vec<String>,
    evidence: Map<String, Value>,
}

impl Check {
    /// No findings yet.
    pub fn new() -> Self {
        Check::default()
    }

    /// Something that makes it unsafe to proceed. Name the member and the figure.
    pub fn fail(&mut self, reason: impl Into<String>) -> &mut Self {
        self.failures.push(reason.into());
        self
    }

    /// Something a human should look at, not a blocker.
    pub fn warn(&mut self, reason: impl Into<String>) -> &mut Self {
        self.warnings.push(reason.into());
        self
    }

    /// A finding reported when all is well (`3/3 pods ready`).
    pub fn note(&mut self, reason: impl Into<String>) -> &mut Self {
        self.notes.push(reason.into());
        self
    }

    /// A measurement to keep with the verdict.
    pub fn evidence(&mut self, key: &str, value: impl Serialize) -> &mut Self {
        self.evidence.insert(key.to_string(), serde_json::to_value(value).unwrap_or(Value::Null));
        self
    }

    /// Whether anything failed so far.
    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
    }

    /// The verdict: failures first, then warnings, then notes.
    pub fn verdict(&self) -> Verdict {
        let outcome = if !self.failures.is_empty() {
            Outcome::Fail
        } else if !self.warnings.is_empty() {
            Outcome::Warn
        } else {
            Outcome::Pass
        };
        let reasons = self.failures.iter().chain(&self.warnings).chain(&self.notes).cloned().collect();
        Verdict { outcome, reasons, evidence: Value::Object(self.evidence.clone()).to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_finding_decides() {
        assert_eq!(Check::new().note("fine").verdict().outcome, Outcome::Pass);
        assert_eq!(Check::new().warn("hmm").note("fine").verdict().outcome, Outcome::Warn);
        let verdict = Check::new().note("fine").warn("hmm").fail("db-2: lag 3 s").evidence("lag_ms", 3000).verdict();
        assert_eq!(verdict.outcome, Outcome::Fail);
        assert_eq!(verdict.reasons, vec!["db-2: lag 3 s", "hmm", "fine"]);
        assert_eq!(verdict.evidence, r#"{"lag_ms":3000}"#);
    }
}
