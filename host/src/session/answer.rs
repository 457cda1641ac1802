//! How each kind of host-call answer is written to a session and read back.

use serde_json::{Value, json};

use crate::wit::pattern::runner::policy::kube_write::ExecOutput;
use crate::wit::{Error, Outcome, Verdict};

/// A host call's successful answer, as session JSON and back.
pub trait Answer: Sized {
    /// The JSON kept in the session.
    fn to_json(&self) -> Value;
    /// The answer from session JSON, or what is wrong with it.
    fn from_json(value: &Value) -> Result<Self, String>;
    /// What of it the journal keeps on the call's line: nothing, unless
    /// undoing the call needs it (a switch's weights before the change).
    fn journaled(&self) -> Option<Value> {
        None
    }
}

/// Key of the object that holds a text answer that is not JSON.
const TEXT: &str = "$text";

impl Answer for String {
    /// JSON text is kept parsed (readable, editable); anything else as `{"$text": ...}`.
    fn to_json(&self) -> Value {
        serde_json::from_str(self).unwrap_or_else(|_| json!({ TEXT: self }))
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        if let Some(text) = value.as_object().filter(|o| o.len() == 1).and_then(|o| o.get(TEXT)).and_then(Value::as_str) {
            return Ok(text.to_string());
        }
        Ok(value.to_string())
    }
}

impl Answer for () {
    fn to_json(&self) -> Value {
        Value::Null
    }

    fn from_json(_: &Value) -> Result<Self, String> {
        Ok(())
    }
}

impl Answer for u64 {
    fn to_json(&self) -> Value {
        json!(self)
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        value.as_u64().ok_or_else(|| format!("expected a non-negative integer, found {value}"))
    }
}

impl Answer for bool {
    fn to_json(&self) -> Value {
        json!(self)
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        value.as_bool().ok_or_else(|| format!("expected true or false, found {value}"))
    }
}

impl Answer for ExecOutput {
    fn to_json(&self) -> Value {
        json!({"exitCode": self.exit_code, "stdout": self.stdout, "stderr": self.stderr})
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        let exit_code = value["exitCode"]
            .as_i64()
            .and_then(|c| i32::try_from(c).ok())
            .ok_or_else(|| format!("expected {{\"exitCode\": N, \"stdout\": ..., \"stderr\": ...}}, found {value}"))?;
        let text = |key: &str| value[key].as_str().unwrap_or_default().to_string();
        Ok(ExecOutput { exit_code, stdout: text("stdout"), stderr: text("stderr") })
    }
}

/// `gates.run`: the gate's verdict, or the error the pattern got instead.
impl Answer for Result<Verdict, Error> {
    fn to_json(&self) -> Value {
        match self {
            Ok(verdict) => {
                let outcome = match verdict.outcome {
                    Outcome::Pass => "pass",
                    Outcome::Warn => "warn",
                    Outcome::Fail => "fail",
                };
                let evidence = serde_json::from_str(&verdict.evidence).unwrap_or_else(|_| json!(verdict.evidence));
                json!({"outcome": outcome, "reasons": verdict.reasons, "evidence": evidence})
            }
            Err(error) => json!({"error": {"code": crate::domain::ErrorCode::from(error.code).as_str(), "message": error.message}}),
        }
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        if let Some(error) = value.get("error") {
            let code = error["code"]
                .as_str()
                .and_then(crate::domain::ErrorCode::from_name)
                .ok_or_else(|| format!("a gate error needs a known `code`, found {error}"))?;
            return Ok(Err(Error { code: super::to_wit_code(code), message: error["message"].as_str().unwrap_or_default().to_string() }));
        }
        let outcome = match value["outcome"].as_str() {
            Some("pass") => Outcome::Pass,
            Some("warn") => Outcome::Warn,
            Some("fail") => Outcome::Fail,
            _ => return Err(format!("a verdict needs `outcome` pass, warn or fail, found {value}")),
        };
        let reasons =
            value["reasons"].as_array().map(|r| r.iter().map(|r| r.as_str().map_or_else(|| r.to_string(), str::to_string)).collect()).unwrap_or_default();
        let evidence = match &value["evidence"] {
            Value::Null => "{}".to_string(),
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        Ok(Ok(Verdict { outcome, reasons, evidence }))
    }
}
