//! Text that more than one command prints: a run's report, the lab's Pods.

use std::fmt::Write;

use runner_lab::ops::PodRow;

use crate::run::{RunReport, short_digest};

/// A run's report as text: steps, gates, metrics, the probe, the outcome with
/// its reasons, refused or unreachable calls, the dry run's plan, the journal.
pub fn report_text(report: &RunReport) -> String {
    let m = &report.policy.manifest;
    let record = &report.record;
    let mut out = String::new();
    let _ = writeln!(out, "{} {} ({}) {}", m.name, m.version, m.world, short_digest(&report.policy.digest));
    for step in &record.steps {
        let _ = writeln!(out, "  step {:<28} {:<12} {:>9.1} ms  {}", step.name, step.outcome, step.ms, step.detail);
    }
    for gate in &record.gates {
        let _ = writeln!(out, "  gate {:<28} {:<12} {}  {}", gate.slot, gate.outcome, gate.gate, gate.reasons.join("; "));
    }
    for metric in &record.metrics {
        let _ = writeln!(out, "  metric {} = {} {}", metric.name, metric.value, metric.unit);
    }
    if let Some(probe) = &report.probe {
        let _ = writeln!(out, "  probe {}: {}", probe.what, probe.line());
        for error in &probe.errors {
            let _ = writeln!(out, "    write error {error}");
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
        let _ = writeln!(out, "plan: {} call(s) that change something or need a human; none was performed", record.plan.len());
        for (i, call) in record.plan.iter().enumerate() {
            let needs = call.needs_allow.as_ref().map(|c| format!("  [needs --allow {c}]")).unwrap_or_default();
            let _ = writeln!(out, "  {:>2}. {} {} {}{needs}", i + 1, call.component, call.call, call.args);
        }
    }
    if let Some(path) = &report.journal {
        let _ = writeln!(out, "journal: {}", path.display());
    }
    out
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
