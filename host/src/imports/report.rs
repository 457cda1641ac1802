//! `report`: logs, steps and metrics. Always allowed; journaled like any call.

use std::time::Instant;

use serde_json::json;

use super::{HostState, Metric, StepRecord};
use crate::wit::pattern::runner::policy::report::{self, Level, StepOutcome};

/// Longest log line kept; a component cannot flood the terminal through `log`.
const MAX_LOG_LINE: usize = 4096;

impl report::Host for HostState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let started = Instant::now();
        let message = truncate(message, MAX_LOG_LINE, " [truncated]");
        let component = &*self.component;
        match level {
            Level::Debug => tracing::debug!(target: "policy", "[{component}] {message}"),
            Level::Info => tracing::info!(target: "policy", "[{component}] {message}"),
            Level::Warn => tracing::warn!(target: "policy", "[{component}] {message}"),
            Level::Error => tracing::error!(target: "policy", "[{component}] {message}"),
        }
        self.note("report.log", json!({"level": format!("{level:?}").to_lowercase(), "message": message}), started)
    }

    fn step_begin(&mut self, name: String, description: String) -> wasmtime::Result<()> {
        let started = Instant::now();
        tracing::info!(target: "policy", "[{}] step {name}: {description}", self.component);
        let args = json!({"name": name, "description": description});
        self.run.record().steps.push(StepRecord {
            component: self.component.to_string(),
            name,
            description,
            outcome: "running".into(),
            detail: String::new(),
            ms: 0.0,
            started: Some(started),
        });
        self.note("report.step-begin", args, started)
    }

    fn step_end(&mut self, name: String, outcome: StepOutcome, detail: String) -> wasmtime::Result<()> {
        let started = Instant::now();
        let outcome = match outcome {
            StepOutcome::Succeeded => "succeeded",
            StepOutcome::Failed => "failed",
            StepOutcome::Skipped => "skipped",
            StepOutcome::RolledBack => "rolled-back",
        };
        tracing::info!(target: "policy", "[{}] step {name} {outcome} {detail}", self.component);
        {
            let mut record = self.run.record();
            let open = record.steps.iter_mut().rev().find(|s| s.name == name && s.component == *self.component && s.outcome == "running");
            match open {
                Some(step) => {
                    step.outcome = outcome.into();
                    step.detail = detail.clone();
                    step.ms = step.started.map(|t| t.elapsed().as_secs_f64() * 1000.0).unwrap_or_default();
                }
                None => record.steps.push(StepRecord {
                    component: self.component.to_string(),
                    name: name.clone(),
                    description: String::new(),
                    outcome: outcome.into(),
                    detail: detail.clone(),
                    ms: 0.0,
                    started: None,
                }),
            }
        }
        self.note("report.step-end", json!({"name": name, "outcome": outcome, "detail": detail}), started)
    }

    fn metric(&mut self, name: String, value: f64, unit: String) -> wasmtime::Result<()> {
        let started = Instant::now();
        let args = json!({"name": name, "value": value, "unit": unit});
        self.run.record().metrics.push(Metric { component: self.component.to_string(), name, value, unit });
        self.note("report.metric", args, started)
    }
}

/// Cut `text` to at most `max` bytes (on a character boundary), marking the cut with `marker`.
pub(crate) fn truncate(mut text: String, max: usize, marker: &str) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(marker);
    }
    text
}
