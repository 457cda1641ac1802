//! `report`: logs, steps, metrics and attachments. Always allowed; journaled like any call.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use super::{AttachmentRecord, HostState, Metric, RunRecord, StepRecord};
use crate::wit::pattern::runner::policy::report::{self, Level, StepOutcome};
use crate::wit::{Error, ErrorCode};

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
        // A step boundary is where `runner stop` takes effect: nothing of this step has begun.
        if let Some(by) = self.run.run_dir.as_ref().and_then(|dir| dir.stop_requested()) {
            return Err(super::Stop::Requested(format!("stopped by `runner stop` ({by}) before step `{name}` of `{}` began", self.component)).into());
        }
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
            slot_path: self.slot_path().map(str::to_string),
            member: self.member_name().map(str::to_string),
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
            let (slot_path, member) = (self.slot_path(), self.member_name());
            let open = record.steps.iter_mut().rev().find(|s| {
                s.name == name
                    && s.component == *self.component
                    && s.slot_path.as_deref() == slot_path
                    && s.member.as_deref() == member
                    && s.outcome == "running"
            });
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
                    slot_path: self.slot_path().map(str::to_string),
                    member: self.member_name().map(str::to_string),
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

    fn attach(&mut self, name: String, content: String) -> wasmtime::Result<Result<(), Error>> {
        let started = Instant::now();
        // The name and size are journaled, never the content: a document can be large.
        let args = json!({"name": truncate(name.clone(), MAX_NAME, "…"), "bytes": content.len()});
        let refused = |code: ErrorCode, message: String| -> wasmtime::Result<Result<(), Error>> {
            let outcome = crate::imports::code_name(code);
            self.journal("report.attach", args.clone(), outcome, Some(message.as_str()), started.elapsed(), false)?;
            Ok(Err(Error { code, message }))
        };
        if let Err(why) = attachment_name(&name) {
            return refused(ErrorCode::Invalid, why);
        }
        if content.len() > MAX_ATTACHMENT_BYTES {
            return refused(
                ErrorCode::Invalid,
                format!("attachment `{name}` is {} bytes; at most {MAX_ATTACHMENT_BYTES} bytes (1 MiB) are kept", content.len()),
            );
        }
        let replaces = self.run.record().attachments.iter().any(|a| a.name == name);
        if !replaces && self.run.record().attachments.len() >= MAX_ATTACHMENTS {
            return refused(ErrorCode::Invalid, format!("a run keeps at most {MAX_ATTACHMENTS} attachments; `{name}` would be one more"));
        }
        let Some(dir) = self.run.attachments.dir() else {
            return refused(ErrorCode::Unavailable, "this run keeps no attachments (no journal, so no folder beside it)".into());
        };
        let path = dir.join(&name);
        if let Err(e) = write_attachment(dir, &path, content.as_bytes()) {
            return refused(ErrorCode::Unavailable, format!("cannot write the attachment {}: {e}", path.display()));
        }
        tracing::info!(target: "policy", "[{}] attached {} ({} bytes)", self.component, path.display(), content.len());
        {
            let mut record = self.run.record();
            let bytes = content.len() as u64;
            match record.attachments.iter_mut().find(|a| a.name == name) {
                Some(kept) => kept.bytes = bytes,
                None => record.attachments.push(AttachmentRecord { name, path, bytes }),
            }
        }
        self.note("report.attach", args, started)?;
        Ok(Ok(()))
    }
}

/// Documents one run may attach.
pub const MAX_ATTACHMENTS: usize = 16;
/// Bytes one attachment may hold.
pub const MAX_ATTACHMENT_BYTES: usize = 1 << 20;
/// The suffixes an attachment's name may end with.
const ATTACHMENT_SUFFIXES: &[&str] = &[".md", ".json", ".txt"];

/// Where a run's attachments go: a folder, created at the first
/// `report.attach`, or none (the call then answers `unavailable`).
#[derive(Debug, Default)]
pub struct Attachments {
    dir: Option<PathBuf>,
    /// A temporary folder (`runner test`), removed with the run.
    _temporary: Option<tempfile::TempDir>,
}

impl Attachments {
    /// No folder: `report.attach` answers `unavailable`.
    pub fn none() -> Self {
        Attachments::default()
    }

    /// Write attachments into `dir` (created when the first one is written).
    pub fn at(dir: PathBuf) -> Self {
        Attachments { dir: Some(dir), _temporary: None }
    }

    /// A temporary folder, removed when the run is dropped.
    pub fn temporary() -> std::io::Result<Self> {
        let temporary = tempfile::Builder::new().prefix("runner-attachments-").tempdir()?;
        Ok(Attachments { dir: Some(temporary.path().to_path_buf()), _temporary: Some(temporary) })
    }

    /// The folder, when there is one.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

/// Why `name` cannot be an attachment's file name: the WIT's charset
/// (letters, digits, `.`, `-`, `_`), one of its suffixes, and nothing a
/// file system reads as a path (no `/`, no leading `.`, so no `..`).
fn attachment_name(name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("attachment name `{}` {why}", truncate(name.to_string(), MAX_NAME, "…")));
    if name.is_empty() || name.len() > 200 {
        return bad("must have 1 to 200 characters");
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))) {
        return bad(&format!("has `{c}`; use letters, digits, `.`, `-` and `_`"));
    }
    if name.starts_with('.') {
        return bad("must not start with `.`");
    }
    if !ATTACHMENT_SUFFIXES.iter().any(|suffix| name.len() > suffix.len() && name.ends_with(suffix)) {
        return bad("must end with .md, .json or .txt");
    }
    Ok(())
}

/// Write `content` to `path` in `dir` whole or not at all: a reader never
/// sees half a document, and a second one of the same name replaces the first.
fn write_attachment(dir: &Path, path: &Path, content: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(content)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_names_follow_the_contract() {
        for good in ["compliance-report.md", "pools_before.json", "a.txt", "v1.2.md"] {
            assert!(attachment_name(good).is_ok(), "{good}");
        }
        let cases = [
            ("", "1 to 200"),
            ("../etc/passwd.md", "has `/`"),
            ("..md", "must not start with `.`"),
            (".md", "must not start with `.`"),
            ("report.html", "must end with .md, .json or .txt"),
            ("report md", "has ` `"),
            ("résumé.md", "has `é`"),
            ("md", "must end with"),
        ];
        for (name, why) in cases {
            let error = attachment_name(name).unwrap_err();
            assert!(error.contains(why), "{name}: {error}");
        }
    }

    #[test]
    fn an_attachment_is_written_whole_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("run-1");
        let path = folder.join("a.md");
        write_attachment(&folder, &path, b"first").unwrap();
        write_attachment(&folder, &path, b"second").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
        assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 1, "no temporary file left behind");
    }
}
