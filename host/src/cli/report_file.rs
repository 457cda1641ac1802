//! `exec --report FILE.html|FILE.md`: a self-contained document of one run,
//! for an operator to attach to a change ticket.
//!
//! It holds who ran what, where and when (operator, UTC start and end,
//! target and kube context, the policy's name, version and digest, the
//! allowances and the configuration), the steps on a timeline, the gates
//! with their verdicts, the write probe's timeline plotted with the longest
//! gap marked, every mutation the journal holds (one line each), the
//! journal's path, the exit code and the outcome.
//!
//! HTML is one file: inline CSS and SVG, nothing fetched, no script.
//! Markdown is one file too: its two figures are inline `<svg>` blocks (a
//! renderer that strips raw HTML shows the tables only). Every text a
//! component or the cluster supplied is escaped, so a hostile step name or
//! reason cannot add markup; arguments come from the journal, which is
//! redacted, and the configuration is redacted the same way.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

use super::render::{describe_change, shorten_long_texts};
use crate::caps::calls::verb_of_call;
use crate::probe::ProbeSummary;
use crate::run::{Failure, RunReport};

/// Mutations listed by name; past this the report says how many more the journal holds.
const MAX_CHANGES: usize = 2000;

/// Steps drawn on the timeline (the table lists them all).
const MAX_DRAWN_STEPS: usize = 200;

/// The document's format, from the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.html` / `.htm`.
    Html,
    /// `.md` / `.markdown`.
    Markdown,
}

impl Format {
    /// The format `path`'s extension names, or a message saying which ones are known.
    pub fn of(path: &Path) -> Result<Format, String> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("html" | "htm") => Ok(Format::Html),
            Some("md" | "markdown") => Ok(Format::Markdown),
            _ => Err(format!("--report {}: unknown report format: name a .html or a .md file", path.display())),
        }
    }
}

/// A report file checked before the run: its format is known and its path writable.
#[derive(Debug)]
pub struct ReportFile {
    path: PathBuf,
    format: Format,
    /// Whether the check created the file (then a run that never starts removes it again).
    created: bool,
}

impl ReportFile {
    /// Check `path` before anything runs: a known extension, and a file that
    /// can be opened for writing (created empty if missing, an existing one
    /// left as it is until the run ends). Either failing is bad input (exit 2).
    pub fn prepare(path: &Path) -> Result<ReportFile, Failure> {
        let format = Format::of(path).map_err(Failure::bad_input)?;
        let existed = path.exists();
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Failure::bad_input(format!("--report {}: cannot write the report: {e} (nothing was run)", path.display())))?;
        Ok(ReportFile { path: path.to_path_buf(), format, created: !existed })
    }

    /// Render `report` and write it over the file.
    pub fn write(&self, report: &RunReport) -> std::io::Result<()> {
        let document = Document::of(report);
        let text = match self.format {
            Format::Html => document.html(),
            Format::Markdown => document.markdown(),
        };
        std::fs::write(&self.path, text)
    }

    /// The run never started (no report): remove the file the check created.
    fn abandon(&self) {
        if self.created {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Run `run` with the report file `path` (when given) checked before and
/// written after: every run that ends with a report gets its document,
/// whatever its exit code. A document that cannot be written at the end is
/// an error line; the run's own exit code stands.
pub fn around(path: Option<PathBuf>, run: impl FnOnce() -> Result<RunReport, Failure>) -> Result<RunReport, Failure> {
    let Some(path) = path else { return run() };
    let file = ReportFile::prepare(&path)?;
    let report = run().inspect_err(|_| file.abandon())?;
    match file.write(&report) {
        Ok(()) => tracing::info!("report written to {}", path.display()),
        Err(e) => eprintln!("error: --report {}: cannot write the report: {e}", path.display()),
    }
    Ok(report)
}

/// `2026-12-03T07:05:04.123Z`.
fn utc(time: SystemTime) -> String {
    let time = time::OffsetDateTime::from(time);
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time.format(&format).unwrap_or_default()
}

/// HTML-escape `text`: safe in element content and in quoted attributes.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escape `text` for a Markdown table cell or the rest of a line (never a
/// line's start: every such text follows `| `, `- ` or other words): `&`,
/// `<`, `>` as entities (raw HTML passes through Markdown), the punctuation
/// of emphasis, code, links and tables backslash-escaped, all on one line.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// One mutation the journal holds, in words.
#[derive(Debug, Clone, PartialEq)]
struct Change {
    when: String,
    component: String,
    what: String,
    outcome: String,
}

/// A long text (a script) the changes refer to by digest: (digest, text, uses).
type LongText = (String, String, usize);

/// The run's mutations (outcome lines, not the intents written before
/// them), read from its journal by run id; with how many more there were.
/// Long texts (scripts) are shown once each, referred to by digest, as in
/// the dry run's plan.
fn journaled_changes(journal: &Path, run_id: &str, texts: &mut Vec<LongText>) -> (Vec<Change>, usize) {
    let Ok(file) = std::fs::File::open(journal) else { return (Vec::new(), 0) };
    let mut changes = Vec::new();
    let mut more = 0;
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        let Ok(mut entry) = serde_json::from_str::<Value>(&line) else { continue };
        let call = entry["call"].as_str().unwrap_or_default().to_string();
        if entry["run"] != run_id || entry["outcome"] == "started" || !verb_of_call(&call).is_some_and(|v| v.mutating) {
            continue;
        }
        if changes.len() >= MAX_CHANGES {
            more += 1;
            continue;
        }
        let outcome = match (entry["outcome"].as_str().unwrap_or_default(), entry["error"].as_str()) {
            (outcome, Some(error)) => format!("{outcome}: {error}"),
            (outcome, None) => outcome.to_string(),
        };
        shorten_long_texts(&mut entry["args"], texts);
        changes.push(Change {
            when: entry["ts"].as_str().unwrap_or_default().to_string(),
            component: entry["component"].as_str().unwrap_or_default().to_string(),
            what: describe_change(&call, &entry["args"]),
            outcome,
        });
    }
    (changes, more)
}

/// Everything the document shows, gathered once for either format.
struct Document<'a> {
    report: &'a RunReport,
    operator: String,
    /// (label, value) rows of the header, in order.
    header: Vec<(&'static str, String)>,
    changes: Vec<Change>,
    more_changes: usize,
    /// The long texts the changes refer to by digest.
    texts: Vec<LongText>,
    /// The run's length in ms (the timeline's width).
    span_ms: f64,
}

impl<'a> Document<'a> {
    fn of(report: &'a RunReport) -> Self {
        let m = &report.policy.manifest;
        let run = &report.run;
        // Who, where, allowed to do what: the run's header (its config already redacted).
        let facts = &report.header;
        let text = |value: &serde_json::Value| value.as_str().map(str::to_string);
        let operator = text(&facts["operator"]).unwrap_or_else(|| "unknown".into());
        let allowances: Vec<String> = facts["allowances"].as_array().into_iter().flatten().filter_map(text).collect();
        let allowances = if allowances.is_empty() { "none (reads only)".to_string() } else { allowances.join(", ") };
        let header = vec![
            ("Operator", operator.clone()),
            ("Started (UTC)", utc(run.started_at)),
            ("Ended (UTC)", utc(run.ended_at)),
            ("Duration", format!("{:.1} s", report.wall.as_secs_f64())),
            ("Target", text(&facts["target"]["name"]).unwrap_or_else(|| "none".into())),
            ("Kube context", text(&facts["target"]["context"]).unwrap_or_else(|| "none known (in-cluster, or no kubeconfig)".into())),
            ("Policy", m.name.clone()),
            ("Version", m.version.clone()),
            ("World", m.world.to_string()),
            ("Digest", report.policy.digest.clone()),
            ("Component", report.policy.path.display().to_string()),
            ("Allowances", allowances),
            ("Config", facts["config"].to_string()),
            ("Dry run", if report.dry_run { "yes: no mutation was performed".into() } else { "no".into() }),
            ("Run id", run.id.clone()),
            ("Journal", report.journal.as_ref().map_or_else(|| "none".into(), |p| p.display().to_string())),
            ("Exit code", (report.exit() as u8).to_string()),
            ("Outcome", report.outcome().to_string()),
        ];
        let mut texts = Vec::new();
        let (changes, more_changes) = report.journal.as_deref().map(|j| journaled_changes(j, &run.id, &mut texts)).unwrap_or_default();
        let steps_end = report.record.steps.iter().map(|s| s.at_ms + s.ms).fold(0.0, f64::max);
        let span_ms = (report.wall.as_secs_f64() * 1000.0).max(steps_end).max(1.0);
        Document { report, operator, header, changes, more_changes, texts, span_ms }
    }

    fn title(&self) -> String {
        let m = &self.report.policy.manifest;
        format!("{} {}: {} (exit {})", m.name, m.version, self.report.outcome(), self.report.exit() as u8)
    }

    /// Gate rows: the gates a pattern ran, or the gate this run was.
    fn gates(&self) -> Vec<(String, String, String, String)> {
        let record = &self.report.record;
        // A gate a sub-pattern ran is named by its full slot path (`postgres/preflight`).
        let slot = |g: &crate::imports::GateRecord| g.slot_path.as_ref().map_or_else(|| g.slot.clone(), |under| format!("{under}/{}", g.slot));
        let mut rows: Vec<_> = record.gates.iter().map(|g| (slot(g), g.gate.clone(), g.outcome.clone(), g.reasons.join("; "))).collect();
        if self.report.policy.manifest.world == crate::policy::World::Gate {
            rows.push(("(this run)".into(), self.report.policy.manifest.name.clone(), self.report.outcome().into(), self.report.ending.reasons.join("; ")));
        }
        rows
    }

    fn html(&self) -> String {
        let report = self.report;
        let record = &report.record;
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>runner report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
            escape_html(&self.title())
        );
        let _ = writeln!(out, "<h1>Run report: <span id=\"title\">{}</span></h1>", escape_html(&self.title()));
        let _ = writeln!(out, "<p class=\"outcome {}\" id=\"outcome\">{}</p>", outcome_class(report.outcome()), escape_html(&report.outcome().to_uppercase()));
        out.push_str("<h2>Run</h2>\n<table id=\"header\">\n");
        for (label, value) in &self.header {
            let id: Vec<String> = label.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_ascii_lowercase).collect();
            let _ = writeln!(out, "<tr id=\"h-{}\"><th>{}</th><td>{}</td></tr>", id.join("-"), escape_html(label), escape_html(value));
        }
        out.push_str("</table>\n");

        out.push_str("<h2>Outcome</h2>\n<ul id=\"reasons\">\n");
        for reason in &report.ending.reasons {
            let _ = writeln!(out, "<li>{}</li>", escape_html(reason));
        }
        for line in record.denied.iter().chain(&record.unavailable) {
            let _ = writeln!(out, "<li class=\"problem\">{}</li>", escape_html(line));
        }
        out.push_str("</ul>\n");

        let _ = writeln!(out, "<h2>Steps</h2>\n{}", self.steps_svg());
        out.push_str(
            "<table id=\"steps\">\n<tr><th>#</th><th>step</th><th>component</th><th>outcome</th><th>start</th><th>duration</th><th>detail</th></tr>\n",
        );
        for (i, step) in record.steps.iter().enumerate() {
            let _ = writeln!(
                out,
                "<tr class=\"step {}\"><td>{}</td><td class=\"name\">{}</td><td>{}</td><td class=\"step-outcome\">{}</td><td>+{:.1} s</td><td>{}</td><td>{}</td></tr>",
                outcome_class(&step.outcome),
                i + 1,
                escape_html(&nested_name(step)),
                escape_html(&nested_component(step)),
                escape_html(&step.outcome),
                step.at_ms / 1000.0,
                duration(step.ms),
                escape_html(&step.detail)
            );
        }
        if record.steps.is_empty() {
            out.push_str("<tr><td colspan=\"7\">no step was reported</td></tr>\n");
        }
        out.push_str("</table>\n");

        out.push_str("<h2>Gates</h2>\n<table id=\"gates\">\n<tr><th>slot</th><th>gate</th><th>verdict</th><th>reasons</th></tr>\n");
        let gates = self.gates();
        for (slot, gate, verdict, reasons) in &gates {
            let _ = writeln!(
                out,
                "<tr class=\"gate {}\"><td>{}</td><td>{}</td><td class=\"verdict\">{}</td><td>{}</td></tr>",
                outcome_class(verdict),
                escape_html(slot),
                escape_html(gate),
                escape_html(verdict),
                escape_html(reasons)
            );
        }
        if gates.is_empty() {
            out.push_str("<tr><td colspan=\"4\">no gate was run</td></tr>\n");
        }
        out.push_str("</table>\n");

        if !record.metrics.is_empty() {
            out.push_str("<h2>Metrics</h2>\n<table id=\"metrics\">\n<tr><th>component</th><th>metric</th><th>value</th></tr>\n");
            for metric in &record.metrics {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{} {}</td></tr>",
                    escape_html(&metric.component),
                    escape_html(&metric.name),
                    metric.value,
                    escape_html(&metric.unit)
                );
            }
            out.push_str("</table>\n");
        }

        out.push_str("<h2>Write probe</h2>\n");
        match report.probe() {
            Some(probe) => {
                let _ = writeln!(out, "<p id=\"probe\">{}: {}</p>", escape_html(&probe.what), escape_html(&probe.line()));
                if !probe.errors.is_empty() {
                    out.push_str("<ul id=\"probe-errors\">\n");
                    for error in &probe.errors {
                        let _ = writeln!(out, "<li>{}</li>", escape_html(error));
                    }
                    out.push_str("</ul>\n");
                }
                let _ = writeln!(out, "<figure id=\"probe-plot\">{}</figure>", probe_plot(probe, report.run.probe_at_ms));
            }
            None => out.push_str("<p id=\"probe\">no write probe ran (<code>--write-probe DATABASE</code> runs one)</p>\n"),
        }

        let _ = writeln!(out, "<h2>Changes</h2>\n<p>{}</p>", escape_html(&self.changes_intro()));
        if !self.changes.is_empty() {
            out.push_str("<ol id=\"changes\">\n");
            for change in &self.changes {
                let by = if change.component == report.policy.manifest.name { String::new() } else { format!("[{}] ", change.component) };
                let _ = writeln!(
                    out,
                    "<li class=\"change\"><span class=\"ts\">{}</span> {}{} <span class=\"change-outcome\">({})</span></li>",
                    escape_html(&change.when),
                    escape_html(&by),
                    escape_html(&change.what),
                    escape_html(&change.outcome)
                );
            }
            out.push_str("</ol>\n");
        }
        if self.more_changes > 0 {
            let _ = writeln!(out, "<p>... and {} more in the journal</p>", self.more_changes);
        }
        for (digest, text, uses) in &self.texts {
            let _ = writeln!(
                out,
                "<details class=\"text\"><summary>text {} ({} bytes, used {uses} time(s))</summary><pre>{}</pre></details>",
                escape_html(digest),
                text.len(),
                escape_html(text)
            );
        }
        let _ = writeln!(
            out,
            "<footer>Written by runner {} for {} at {}.</footer>\n</body>\n</html>",
            env!("CARGO_PKG_VERSION"),
            escape_html(&self.operator),
            escape_html(&utc(SystemTime::now()))
        );
        out
    }

    fn changes_intro(&self) -> String {
        let journal = self.report.journal.as_ref().map_or_else(|| "no journal was kept".into(), |p| format!("journal: {}", p.display()));
        let count = self.changes.len() + self.more_changes;
        match (self.report.dry_run, count) {
            (true, n) => format!("{n} mutation(s) planned, none performed (dry run); {journal}"),
            (false, 0) => format!("nothing was changed: no mutation is journaled; {journal}"),
            (false, n) => format!("{n} mutation(s) journaled; {journal}"),
        }
    }

    fn markdown(&self) -> String {
        let report = self.report;
        let record = &report.record;
        let mut out = String::new();
        let _ = writeln!(out, "# Run report: {}\n", escape_markdown(&self.title()));
        let _ = writeln!(out, "**{}**\n", escape_markdown(&report.outcome().to_uppercase()));
        out.push_str("## Run\n\n| | |\n|---|---|\n");
        for (label, value) in &self.header {
            let _ = writeln!(out, "| {} | {} |", escape_markdown(label), escape_markdown(value));
        }
        out.push_str("\n## Outcome\n\n");
        for reason in &report.ending.reasons {
            let _ = writeln!(out, "- {}", escape_markdown(reason));
        }
        for line in record.denied.iter().chain(&record.unavailable) {
            let _ = writeln!(out, "- ! {}", escape_markdown(line));
        }
        let _ = writeln!(out, "\n## Steps\n\n{}\n", markdown_block(&self.steps_svg()));
        if record.steps.is_empty() {
            out.push_str("No step was reported.\n");
        } else {
            out.push_str("| # | step | component | outcome | start | duration | detail |\n|---|---|---|---|---|---|---|\n");
            for (i, step) in record.steps.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | +{:.1} s | {} | {} |",
                    i + 1,
                    escape_markdown(&nested_name(step)),
                    escape_markdown(&nested_component(step)),
                    escape_markdown(&step.outcome),
                    step.at_ms / 1000.0,
                    duration(step.ms),
                    escape_markdown(&step.detail)
                );
            }
        }
        out.push_str("\n## Gates\n\n");
        let gates = self.gates();
        if gates.is_empty() {
            out.push_str("No gate was run.\n");
        } else {
            out.push_str("| slot | gate | verdict | reasons |\n|---|---|---|---|\n");
            for (slot, gate, verdict, reasons) in &gates {
                let _ =
                    writeln!(out, "| {} | {} | {} | {} |", escape_markdown(slot), escape_markdown(gate), escape_markdown(verdict), escape_markdown(reasons));
            }
        }
        if !record.metrics.is_empty() {
            out.push_str("\n## Metrics\n\n| component | metric | value |\n|---|---|---|\n");
            for metric in &record.metrics {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} {} |",
                    escape_markdown(&metric.component),
                    escape_markdown(&metric.name),
                    metric.value,
                    escape_markdown(&metric.unit)
                );
            }
        }
        out.push_str("\n## Write probe\n\n");
        match report.probe() {
            Some(probe) => {
                let _ = writeln!(out, "{}: {}\n", escape_markdown(&probe.what), escape_markdown(&probe.line()));
                for error in &probe.errors {
                    let _ = writeln!(out, "- {}", escape_markdown(error));
                }
                let _ = writeln!(out, "\n{}", markdown_block(&probe_plot(probe, report.run.probe_at_ms)));
            }
            None => out.push_str("No write probe ran.\n"),
        }
        let _ = writeln!(out, "\n## Changes\n\n{}\n", escape_markdown(&self.changes_intro()));
        for (i, change) in self.changes.iter().enumerate() {
            let by = if change.component == report.policy.manifest.name { String::new() } else { format!("[{}] ", change.component) };
            let _ = writeln!(
                out,
                "{}. {} {}{} ({})",
                i + 1,
                escape_markdown(&change.when),
                escape_markdown(&by),
                escape_markdown(&change.what),
                escape_markdown(&change.outcome)
            );
        }
        if self.more_changes > 0 {
            let _ = writeln!(out, "\n... and {} more in the journal", self.more_changes);
        }
        for (digest, text, uses) in &self.texts {
            // Indented: a code block, where nothing is markup; the fence-free form cannot be closed by the text.
            let _ = writeln!(out, "\ntext {} ({} bytes, used {uses} time(s)):\n", escape_markdown(digest), text.len());
            for line in text.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
        let _ = writeln!(
            out,
            "\n---\nWritten by runner {} for {} at {}.",
            env!("CARGO_PKG_VERSION"),
            escape_markdown(&self.operator),
            escape_markdown(&utc(SystemTime::now()))
        );
        out
    }

    /// The steps as bars on one time axis (hand-drawn SVG: every name escaped).
    fn steps_svg(&self) -> String {
        let steps = &self.report.record.steps;
        let drawn = &steps[..steps.len().min(MAX_DRAWN_STEPS)];
        let (label_w, bar_w, row_h, top) = (260.0, 620.0, 20.0, 28.0);
        let height = top + row_h * drawn.len().max(1) as f64 + 10.0;
        let width = label_w + bar_w + 20.0;
        let mut svg = String::new();
        let _ = write!(
            svg,
            "<svg id=\"steps-timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\"><title>steps over {}</title>",
            duration(self.span_ms)
        );
        // A time axis: 0, half way, the end.
        for fraction in [0.0, 0.5, 1.0] {
            let x = label_w + bar_w * fraction;
            let _ = write!(
                svg,
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#bbb\"/><text x=\"{x:.1}\" y=\"16\" font-size=\"11\" text-anchor=\"middle\">+{:.1} s</text>",
                top - 6.0,
                height - 6.0,
                self.span_ms * fraction / 1000.0
            );
        }
        if drawn.is_empty() {
            let _ = write!(svg, "<text x=\"{label_w}\" y=\"{:.1}\" font-size=\"12\">no step was reported</text>", top + 14.0);
        }
        for (i, step) in drawn.iter().enumerate() {
            let y = top + row_h * i as f64;
            let x = label_w + bar_w * (step.at_ms / self.span_ms).clamp(0.0, 1.0);
            let w = (bar_w * step.ms / self.span_ms).max(2.0).min(label_w + bar_w - x + 2.0);
            // The full name is the bar's tooltip and in the table; the label fits its column.
            let name: String = if step.name.chars().count() > 34 { step.name.chars().take(33).chain(['…']).collect() } else { step.name.clone() };
            let _ = write!(
                svg,
                "<g class=\"bar\"><title>{}: {} in {}</title><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{}</text><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\"/></g>",
                escape_html(&step.name),
                escape_html(&step.outcome),
                duration(step.ms),
                label_w - 8.0,
                y + 13.0,
                escape_html(&name),
                y + 3.0,
                row_h - 6.0,
                outcome_colour(&step.outcome)
            );
        }
        svg.push_str("</svg>");
        if steps.len() > drawn.len() {
            let _ = write!(svg, "<p>the first {} of {} steps are drawn; the table lists every one</p>", drawn.len(), steps.len());
        }
        svg
    }
}

/// An SVG, with the blank lines a Markdown HTML block would end at taken out.
fn markdown_block(svg: &str) -> String {
    svg.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join("\n")
}

/// `850 ms`, `12.3 s`.
fn duration(ms: f64) -> String {
    if ms < 1000.0 { format!("{ms:.0} ms") } else { format!("{:.1} s", ms / 1000.0) }
}

/// A CSS class for an outcome: good, bad, warn or other.
fn outcome_class(outcome: &str) -> &'static str {
    match outcome {
        "pass" | "succeeded" | "ok" => "good",
        "fail" | "failed" | "error" | "stopped" | "rolled-back" => "bad",
        "warn" | "skipped" | "running" => "warn",
        _ => "other",
    }
}

fn outcome_colour(outcome: &str) -> &'static str {
    match outcome_class(outcome) {
        "good" => "#2e7d32",
        "bad" => "#c62828",
        "warn" => "#f9a825",
        _ => "#607d8b",
    }
}

/// The probe's timeline drawn by plotters: acknowledged (and failed) writes
/// per second above, the slowest write per bucket below, x in seconds into
/// the run, the longest gap shaded in both and named in the caption.
pub fn probe_plot(probe: &ProbeSummary, probe_at_ms: f64) -> String {
    match draw_probe(probe, probe_at_ms) {
        Ok(svg) => svg,
        Err(e) => format!("<p>the probe's timeline could not be drawn: {}</p>", escape_html(&e)),
    }
}

fn draw_probe(probe: &ProbeSummary, probe_at_ms: f64) -> Result<String, String> {
    use plotters::prelude::*;

    let timeline = &probe.timeline;
    let bucket_s = timeline.bucket_ms.max(1) as f64 / 1000.0;
    let offset_s = probe_at_ms / 1000.0;
    let at = |i: usize| offset_s + (i as f64 + 0.5) * bucket_s;
    let acked: Vec<(f64, f64)> = timeline.buckets.iter().enumerate().map(|(i, b)| (at(i), f64::from(b.acknowledged) / bucket_s)).collect();
    let failed: Vec<(f64, f64)> = timeline.buckets.iter().enumerate().map(|(i, b)| (at(i), f64::from(b.failed) / bucket_s)).collect();
    let latency: Vec<(f64, f64)> = timeline.buckets.iter().enumerate().map(|(i, b)| (at(i), b.max_latency_ms)).collect();
    let x_end = (offset_s + probe.duration_ms / 1000.0).max(offset_s + timeline.buckets.len() as f64 * bucket_s).max(offset_s + 1.0);
    let rate_max = acked.iter().chain(&failed).map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let latency_max = latency.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let gap_start = offset_s + probe.downtime_began_at_ms / 1000.0;
    let gap_end = gap_start + probe.downtime_ms / 1000.0;
    let err = |e: DrawingAreaErrorKind<std::io::Error>| e.to_string();

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (upper, lower) = root.split_vertically(260);
        let gap_style = RGBColor(198, 40, 40).mix(0.18).filled();
        let caption = format!("Acknowledged writes per second (shaded: the longest gap, {} at +{:.1} s)", duration(probe.downtime_ms), gap_start);

        let mut rates = ChartBuilder::on(&upper)
            .caption(caption, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x_end, 0f64..rate_max)
            .map_err(err)?;
        rates.configure_mesh().x_desc("seconds into the run").y_desc("writes/s").draw().map_err(err)?;
        rates.draw_series(std::iter::once(Rectangle::new([(gap_start, 0.0), (gap_end, rate_max)], gap_style))).map_err(err)?;
        rates
            .draw_series(LineSeries::new(acked, BLUE.stroke_width(2)))
            .map_err(err)?
            .label("acknowledged/s")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.stroke_width(2)));
        rates
            .draw_series(LineSeries::new(failed, RED.stroke_width(1)))
            .map_err(err)?
            .label("failed/s")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED));
        rates.configure_series_labels().position(SeriesLabelPosition::UpperRight).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;

        let mut latencies = ChartBuilder::on(&lower)
            .caption("Slowest acknowledged write per bucket", ("sans-serif", 14))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x_end, 0f64..latency_max)
            .map_err(err)?;
        latencies.configure_mesh().x_desc("seconds into the run").y_desc("latency (ms)").draw().map_err(err)?;
        latencies.draw_series(std::iter::once(Rectangle::new([(gap_start, 0.0), (gap_end, latency_max)], gap_style))).map_err(err)?;
        latencies.draw_series(LineSeries::new(latency, RGBColor(106, 27, 154).stroke_width(2))).map_err(err)?;
        root.present().map_err(err)?;
    }
    // The root element carries an id, so a reader (and a test) can find the plot.
    Ok(svg.replacen("<svg ", "<svg id=\"probe-svg\" ", 1))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}#header th{width:11em}td{word-break:break-word}\
.outcome{font-weight:bold;font-size:1.2em}.good{color:#2e7d32}.bad{color:#c62828}.warn{color:#a66f00}\
tr.step.good td.step-outcome,tr.gate.good td.verdict{color:#2e7d32}tr.step.bad td.step-outcome,tr.gate.bad td.verdict{color:#c62828}\
tr.step,tr.gate{color:#222}.problem{color:#c62828}.ts{color:#777;font-size:.85em}figure{margin:0}\
footer{margin-top:2em;color:#777;font-size:.85em}";

/// A step's name, indented under the caller's step that ran it: one `↳`
/// per pattern slot level (the rows are in the order the steps began).
fn nested_name(step: &crate::imports::StepRecord) -> String {
    match &step.slot_path {
        Some(path) => format!("{} {}", "↳".repeat(path.split('/').count()), step.name),
        None => step.name.clone(),
    }
}

/// A step's component, with the pattern slot path it ran at.
fn nested_component(step: &crate::imports::StepRecord) -> String {
    match &step.slot_path {
        Some(path) => format!("{} (slot {path})", step.component),
        None => step.component.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_extension() {
        assert_eq!(Format::of(Path::new("a/run.html")), Ok(Format::Html));
        assert_eq!(Format::of(Path::new("RUN.HTM")), Ok(Format::Html));
        assert_eq!(Format::of(Path::new("run.md")), Ok(Format::Markdown));
        assert!(Format::of(Path::new("run.pdf")).unwrap_err().contains("unknown report format"));
        assert!(Format::of(Path::new("run")).is_err());
    }

    #[test]
    fn hostile_text_is_escaped() {
        let hostile = "<script>alert(1)</script> & \"x\" 'y'";
        assert_eq!(escape_html(hostile), "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot; &#39;y&#39;");
        let md = escape_markdown("a | b\n<img src=x onerror=alert(1)> [link](javascript:x)");
        assert!(!md.contains('<') && !md.contains('\n') && !md.contains(" | "), "{md}");
        assert!(md.contains("\\[link\\](javascript:x)"), "{md}");
    }

    #[test]
    fn the_probe_plot_is_an_svg_with_lines_and_the_gap_marked() {
        let mut probe = ProbeSummary { downtime_ms: 1200.0, downtime_began_at_ms: 2000.0, duration_ms: 5000.0, ..ProbeSummary::default() };
        probe.timeline.bucket_ms = 100;
        probe.timeline.buckets = (0..50)
            .map(|i| crate::probe::ProbeBucket { acknowledged: if (20..32).contains(&i) { 0 } else { 20 }, failed: u32::from(i == 25), max_latency_ms: 2.0 })
            .collect();
        let svg = probe_plot(&probe, 500.0);
        assert!(svg.starts_with("<svg id=\"probe-svg\" "), "{svg}");
        assert!(svg.contains("<polyline"), "{svg}");
        assert!(svg.contains("the longest gap, 1.2 s at +2.5 s"), "{svg}");
    }
}
