//! Text that more than one command prints: a run's report, the lab's Pods.

use std::fmt::Write;

use runner_lab::ops::PodRow;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::imports::PlannedCall;
use crate::run::{RunReport, short_digest};

/// A run's report as text: steps, gates, metrics, the probe, the outcome with
/// its reasons, refused or unreachable calls, the dry run's plan, the journal.
pub fn report_text(report: &RunReport) -> String {
    let m = &report.policy.manifest;
    let record = &report.record;
    let mut out = String::new();
    let _ = write!(out, "{} {} ({}) {}", m.name, m.version, m.world, short_digest(&report.policy.digest));
    let target = &report.header["target"];
    match (target["name"].as_str(), target["context"].as_str()) {
        (Some(name), Some(context)) if !name.ends_with(context) => {
            let _ = write!(out, " on {name} (context {context})");
        }
        (Some(name), _) => {
            let _ = write!(out, " on {name}");
        }
        _ => {}
    }
    out.push('\n');
    let resumed = &report.header["resumed"];
    if resumed.is_object() {
        let _ = writeln!(
            out,
            "  resumed: attempt {} of the run started {}; its first {} call(s) answered from the run log, reaching no cluster",
            resumed["attempt"],
            resumed["started"].as_str().unwrap_or("?"),
            resumed["replayed_calls"]
        );
    }
    // One column width for every step and gate name, so long member names do not shift the table.
    let width = record.steps.iter().map(|s| s.name.chars().count()).chain(record.gates.iter().map(|g| g.slot.chars().count())).max().unwrap_or(0).clamp(20, 48);
    // A sub-pattern's steps follow the caller's step that ran them (they
    // began while it ran), indented one level per slot and tagged with the slot path.
    for step in &record.steps {
        let (indent, tag) = nesting(step.slot_path.as_deref(), step.member.as_deref());
        let name_width = width.saturating_sub(indent.len() + tag.len());
        let _ = writeln!(out, "  {indent}step {tag}{:<name_width$} {:<12} {:>9.1} ms  {}", step.name, step.outcome, step.ms, step.detail);
    }
    for gate in &record.gates {
        let (indent, tag) = nesting(gate.slot_path.as_deref(), gate.member.as_deref());
        let name_width = width.saturating_sub(indent.len() + tag.len());
        let _ = writeln!(out, "  {indent}gate {tag}{:<name_width$} {:<12} {}  {}", gate.slot, gate.outcome, gate.gate, gate.reasons.join("; "));
    }
    for run in &record.patterns {
        let under = run.parent_step.as_deref().map(|step| format!(" (in step {step})")).unwrap_or_default();
        let at = match &run.member {
            Some(member) => format!("{} on {member}", run.slot_path),
            None => run.slot_path.clone(),
        };
        let _ = writeln!(out, "  pattern {at:<width$} {:<12} {}{under}  {}", run.outcome, run.pattern, run.detail);
    }
    for metric in &record.metrics {
        let _ = writeln!(out, "  metric {} = {} {}", metric.name, metric.value, metric.unit);
    }
    for probe in &report.probes {
        let _ = writeln!(out, "  probe {}: {}", probe.what, probe.line());
        for error in &probe.errors {
            let _ = writeln!(out, "    write error {error}");
        }
    }
    for probe in &report.http_probes {
        let _ = writeln!(out, "  http probe {}: {}", probe.url, probe.line());
        for error in &probe.errors {
            let _ = writeln!(out, "    request error {error}");
        }
    }
    let _ = writeln!(out, "{}", report.outcome().to_uppercase());
    for reason in &report.ending.reasons {
        let _ = writeln!(out, "  - {reason}");
    }
    for line in record.denied.iter().chain(&record.unavailable) {
        let _ = writeln!(out, "  ! {line}");
    }
    if report.dry_run {
        out.push_str(&plan_text(&report.policy.manifest.name, &record.plan));
    }
    for attachment in &record.attachments {
        let _ = writeln!(out, "attachment: {} ({} bytes)", attachment.path.display(), attachment.bytes);
    }
    if let Some(path) = &report.journal {
        let _ = writeln!(out, "journal: {}", path.display());
    }
    out
}

/// The indent and tag of a record made at pattern slot path `path` (on
/// fleet member `member`): two spaces per level, `[pools/postgres] `,
/// `[dev: member] `, `[dev] `.
fn nesting(path: Option<&str>, member: Option<&str>) -> (String, String) {
    match (path, member) {
        (Some(path), Some(member)) => ("  ".repeat(path.split('/').count()), format!("[{member}: {path}] ")),
        (Some(path), None) => ("  ".repeat(path.split('/').count()), format!("[{path}] ")),
        (None, Some(member)) => ("  ".to_string(), format!("[{member}] ")),
        (None, None) => (String::new(), String::new()),
    }
}

/// Text of several lines (a script), or longer than this, in a planned call
/// is shown once, below the plan, and referred to by its digest.
const LONG_TEXT: usize = 400;

/// The dry run's plan for a reviewer: one line per change in order, long
/// texts (scripts) once each by digest, then the `--allow`s a real run
/// still needs, each once. `--output json` keeps every call whole.
fn plan_text(policy: &str, plan: &[PlannedCall]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "plan: {} call(s) that change something or need a human; none was performed", plan.len());
    let mut texts: Vec<(String, String, usize)> = Vec::new();
    for (i, call) in plan.iter().enumerate() {
        let mut args = call.args.clone();
        shorten_long_texts(&mut args, &mut texts);
        let by = if call.component == policy { String::new() } else { format!("[{}] ", call.component) };
        let _ = writeln!(out, "  {:>3}. {by}{}", i + 1, describe_change(&call.call, &args));
    }
    for (digest, text, uses) in &texts {
        let _ = writeln!(out, "  text {digest} ({} bytes, used {uses} time(s)):", text.len());
        for line in text.lines() {
            let _ = writeln!(out, "      {line}");
        }
    }
    let mut needed: Vec<&str> = Vec::new();
    for allow in plan.iter().filter_map(|c| c.needs_allow.as_deref()) {
        if !needed.contains(&allow) {
            needed.push(allow);
        }
    }
    if needed.is_empty() {
        out.push_str("  allowed: every planned call; a real run needs no further --allow\n");
    } else {
        let _ = writeln!(out, "  a real run also needs: {}", needed.iter().map(|a| format!("--allow {a}")).collect::<Vec<_>>().join(" "));
    }
    out
}

/// Replace every string longer than [`LONG_TEXT`] with a reference to its digest, remembering the text.
pub(super) fn shorten_long_texts(value: &mut Value, texts: &mut Vec<(String, String, usize)>) {
    match value {
        Value::String(text) if text.len() > LONG_TEXT || text.trim_end().contains('\n') => {
            let digest = format!("sha256:{}", &hex::encode(Sha256::digest(text.as_bytes()))[..12]);
            match texts.iter_mut().find(|(d, _, _)| *d == digest) {
                Some(entry) => entry.2 += 1,
                None => texts.push((digest.clone(), std::mem::take(text), 1)),
            }
            *value = Value::String(format!("<text {digest}>"));
        }
        Value::Array(items) => items.iter_mut().for_each(|item| shorten_long_texts(item, texts)),
        Value::Object(map) => map.values_mut().for_each(|item| shorten_long_texts(item, texts)),
        _ => {}
    }
}

/// One planned call in words: "scale StatefulSet postgres-cluster to 4".
pub(super) fn describe_change(call: &str, args: &Value) -> String {
    let text = |key: &str| match &args[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let object = || format!("{} {}", text("kind"), text("name"));
    match call {
        // The human in the loop: answered yes in a dry run, asked (or --approve) in a real one.
        "approval.request" => format!("ask the operator to approve: {} (details: {})", text("summary"), text("details")),
        "kube-write.scale" => format!("scale {} to {}", object(), text("replicas")),
        "kube-write.patch" => format!("patch {} ({}): {}", object(), text("patchType"), args["body"]),
        "kube-write.delete" => format!("delete {}", object()),
        "kube-write.evict" => format!("evict Pod {}", text("name")),
        "kube-write.exec" => {
            let command: Vec<String> =
                args["command"].as_array().map(|a| a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect()).unwrap_or_default();
            format!("exec in Pod {}: {}", text("pod"), command.join(" "))
        }
        "postgres-write.execute" => {
            let params = match args["params"].as_array() {
                Some(p) if !p.is_empty() => format!(" with {}", args["params"]),
                _ => String::new(),
            };
            format!("SQL on {}: {}{params}", text("member"), text("sql"))
        }
        _ => format!("{call} {args}"),
    }
}

/// The lab's Pods as a table.
pub fn print_status(rows: &[PodRow]) {
    println!("{:<22} {:<12} {:<6} {:<8} {:<36} {:<14} {:<8} ADDRESS", "POD", "PHASE", "READY", "ROLE", "NODE", "POOL", "VERSION");
    for r in rows {
        println!(
            "{:<22} {:<12} {:<6} {:<8} {:<36} {:<14} {:<8} {}",
            r.name,
            r.phase,
            if r.ready { "1/1" } else { "0/1" },
            r.role,
            r.node,
            r.pool,
            r.version,
            r.address
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn planned(call: &str, args: Value, needs: Option<&str>) -> PlannedCall {
        PlannedCall { component: "wheel".into(), member: None, call: call.into(), args, needs_allow: needs.map(String::from) }
    }

    #[test]
    fn a_plan_shows_each_change_on_a_line_each_script_once_and_each_allow_once() {
        let script = "#!/bin/sh\nset -eu\n".repeat(40);
        let exec = |pod: &str| planned("kube-write.exec", json!({"pod": pod, "command": ["sh", "-c", script, "sh", "config"]}), Some("kube:exec:v1/Pod"));
        let plan = vec![
            planned("approval.request", json!({"summary": "promote postgres-cluster-3", "details": "first line\nsecond line"}), None),
            planned("kube-write.scale", json!({"kind": "StatefulSet", "name": "postgres-cluster", "replicas": 4}), Some("kube:scale:apps/v1/StatefulSet")),
            exec("postgres-cluster-3"),
            exec("postgres-cluster-1"),
            planned("postgres-write.execute", json!({"member": "postgres-cluster-3", "sql": "SELECT pg_promote(false)", "params": []}), None),
        ];
        let text = plan_text("wheel", &plan);
        assert!(text.contains("  1. ask the operator to approve: promote postgres-cluster-3 (details: <text sha256:"), "{text}");
        assert!(text.contains("      first line\n      second line\n"), "the details are printed whole:\n{text}");
        assert!(text.contains("  2. scale StatefulSet postgres-cluster to 4\n"), "{text}");
        assert!(text.contains("  5. SQL on postgres-cluster-3: SELECT pg_promote(false)\n"), "{text}");
        assert_eq!(text.matches("set -eu").count(), 40, "the script is printed once:\n{text}");
        assert!(text.contains("(720 bytes, used 2 time(s))"), "{text}");
        assert!(text.contains("exec in Pod postgres-cluster-1: sh -c <text sha256:"), "{text}");
        assert!(text.ends_with("a real run also needs: --allow kube:scale:apps/v1/StatefulSet --allow kube:exec:v1/Pod\n"), "{text}");
    }
}
