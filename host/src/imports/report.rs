//! `report`: logs, steps and metrics. Always allowed; journaled like any call.

use std::time::Instant;

use serde_json::json;

use super::{HostState, Metric, RunRecord, StepRecord};
use crate::wit::pattern::runner::policy::report::{self, Level, StepOutcome};

/// Longest log line kept; a component cannot flood the terminal through `log`.
const MAX_LOG_LINE: usize = 4096;
/// Longest step or metric name and unit kept.
const MAX_NAME: usize = 256;
/// Longest step description or detail kept.
const MAX_TEXT: usize = 4096;
/// Bytes of log and step lines one component may have the host print in all (its stdout and stderr
/// have `--output-limit` of their own).
const MAX_LOGGED: usize = 16 << 20;
/// Steps and metrics a run keeps in its report; past them the run stops,
/// since a pattern with that many is looping, not upgrading.
const MAX_ENTRIES: usize = 10_000;

impl HostState {
    /// Count `bytes` the host is about to print for the component; stop it
    /// once it has had its share.
    fn print_budget(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.logged += bytes;
        if self.logged > MAX_LOGGED {
            return Err(super::Stop::Limit(format!(
                "output limit exceeded: the component had the host print more than {MAX_LOGGED} bytes of log and step lines"
            ))
            .into());
        }
        Ok(())
    }

    /// Stop a component that has filled its report.
    fn within_report_bound(&self, what: &str, kept: usize) -> wasmtime::Result<()> {
        if kept >= MAX_ENTRIES {
            return Err(super::Stop::Limit(format!("the report holds {MAX_ENTRIES} {what} already: stopped a component that does not end")).into());
        }
        Ok(())
    }
}

impl report::Host for HostState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let started = Instant::now();
        let message = truncate(message, MAX_LOG_LINE, " [truncated]");
        self.print_budget(message.len())?;
        let component = &*self.component;
        self.run.progress.suspend(|| match level {
            Level::Debug => tracing::debug!(target: "policy", "[{component}] {message}"),
            Level::Info => tracing::info!(target: "policy", "[{component}] {message}"),
            Level::Warn => tracing::warn!(target: "policy", "[{component}] {message}"),
            Level::Error => tracing::error!(target: "policy", "[{component}] {message}"),
        });
        self.note("report.log", json!({"level": format!("{level:?}").to_lowercase(), "message": message}), started)
    }

    fn progress(&mut self, what: String, observed: String) -> wasmtime::Result<()> {
        // Not journaled, not recorded: it changes nothing and answers nothing.
        if what.is_empty() {
            self.run.progress.done();
        } else {
            let what = format!("[{}] {}", self.component, truncate(what, MAX_NAME, "…"));
            self.run.progress.waiting(&what, &truncate(observed, MAX_NAME, "…"));
        }
        Ok(())
    }

    fn step_begin(&mut self, name: String, description: String) -> wasmtime::Result<()> {
        self.run.progress.done();
        let started = Instant::now();
        let (name, description) = (truncate(name, MAX_NAME, "…"), truncate(description, MAX_TEXT, " [truncated]"));
        self.within_report_bound("steps", self.run.record().steps.len())?;
        self.print_budget(name.len() + description.len())?;
        tracing::info!(target: "policy", "[{}] step {name}: {description}", self.component);
        let args = json!({"name": name, "description": description});
        let mut record = self.run.record();
        let description = kept(&mut record, description);
        record.steps.push(StepRecord {
            component: self.component.to_string(),
            name,
            description,
            outcome: "running".into(),
            detail: String::new(),
            ms: 0.0,
            at_ms: (started - self.run.started).as_secs_f64() * 1000.0,
            started: Some(started),
        });
        self.note("report.step-begin", args, started)
    }

    fn step_end(&mut self, name: String, outcome: StepOutcome, detail: String) -> wasmtime::Result<()> {
        self.run.progress.done();
        let started = Instant::now();
        let (name, detail) = (truncate(name, MAX_NAME, "…"), truncate(detail, MAX_TEXT, " [truncated]"));
        self.print_budget(name.len() + detail.len())?;
        let outcome = match outcome {
            StepOutcome::Succeeded => "succeeded",
            StepOutcome::Failed => "failed",
            StepOutcome::Skipped => "skipped",
            StepOutcome::RolledBack => "rolled-back",
        };
        tracing::info!(target: "policy", "[{}] step {name} {outcome} {detail}", self.component);
        {
            let mut record = self.run.record();
            let full = record.steps.len() >= MAX_ENTRIES;
            let kept_detail = kept(&mut record, detail.clone());
            let open = record.steps.iter_mut().rev().find(|s| s.name == name && s.component == *self.component && s.outcome == "running");
            match open {
                Some(step) => {
                    step.outcome = outcome.into();
                    step.detail = kept_detail;
                    step.ms = step.started.map(|t| t.elapsed().as_secs_f64() * 1000.0).unwrap_or_default();
                }
                None if !full => record.steps.push(StepRecord {
                    component: self.component.to_string(),
                    name: name.clone(),
                    description: String::new(),
                    outcome: outcome.into(),
                    detail: kept_detail,
                    ms: 0.0,
                    at_ms: (started - self.run.started).as_secs_f64() * 1000.0,
                    started: None,
                }),
                None => {}
            }
        }
        self.note("report.step-end", json!({"name": name, "outcome": outcome, "detail": detail}), started)?;
        // A step boundary is where a killed run is resumed from: its line must survive the kill.
        self.run.journal.write_out().map_err(|e| self.journal_lost(e, "stopped; nothing more was sent to the cluster".into()))
    }

    fn metric(&mut self, name: String, value: f64, unit: String) -> wasmtime::Result<()> {
        let started = Instant::now();
        let (name, unit) = (truncate(name, MAX_NAME, "…"), truncate(unit, MAX_NAME, "…"));
        self.within_report_bound("metrics", self.run.record().metrics.len())?;
        let args = json!({"name": name, "value": value, "unit": unit});
        self.run.record().metrics.push(Metric { component: self.component.to_string(), name, value, unit });
        self.note("report.metric", args, started)
    }

    fn attach(&mut self, _name: String, _content: String) -> wasmtime::Result<Result<(), crate::wit::Error>> {
        // Skeleton: attachments are written by the run next.
        Ok(Err(crate::wit::Error { code: crate::wit::ErrorCode::Unavailable, message: "attachments are not built yet".into() }))
    }
}

/// Cut `text` to at most `max` bytes (on a character boundary), marking the cut with `marker`.
/// Bytes of step descriptions and details the run's report keeps in all: the
/// report is printed whole even when the sandbox stops a flood.
const MAX_KEPT_STEP_TEXT: usize = 1 << 20;

/// `text` as the report keeps it: whole while the report's budget lasts.
fn kept(record: &mut RunRecord, text: String) -> String {
    let room = MAX_KEPT_STEP_TEXT.saturating_sub(record.step_text);
    let text = truncate(text, room, "[the report keeps no more step text]");
    record.step_text += text.len();
    text
}

pub(crate) fn truncate(mut text: String, max: usize, marker: &str) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(marker);
        // A kept string must not keep the megabytes it was cut from.
        text.shrink_to_fit();
    }
    text
}
