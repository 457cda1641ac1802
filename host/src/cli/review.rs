//! `runner review`: print what a policy can touch and will do; with
//! `--against`, what changed; with `--rbac`, the least-privilege Kubernetes
//! RBAC its capabilities need (computed by [`crate::run::review`] and [`crate::run::rbac`]).

use std::fmt::Write;

use clap::Args;
use serde_json::Value;

use super::{CommandResult, Exit, Failure, OutputFormat};
use crate::policy::Policy;
use crate::run::review::{capabilities, describe, diff};
use crate::run::{load_policy, rbac};
use crate::target::Target;

/// `runner review`'s arguments.
#[derive(Args, Debug)]
pub struct ReviewArgs {
    /// A bundled policy's name, a component file, or a reference (`oci://REGISTRY/REPO:TAG`, `oci-layout:DIR:TAG`).
    policy: String,

    /// Show only what changed since this earlier version (name or file).
    #[arg(long, value_name = "OLD", conflicts_with = "rbac")]
    against: Option<String>,

    /// Print the minimal RBAC Role (and ClusterRole, for cluster-scoped kinds) its capabilities need, as YAML.
    #[arg(long)]
    rbac: bool,

    /// With --rbac: the target whose databases name the credential Secrets the rules grant (`lab` or a target file).
    #[arg(long, default_value = "lab", value_name = "lab|FILE", requires = "rbac")]
    target: String,

    /// Report format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// Print what a policy can touch, what changed since an earlier version, or the RBAC it needs.
pub fn run(args: ReviewArgs) -> CommandResult {
    let policy = load_policy(&args.policy)?;
    if args.rbac {
        let target = Target::from_arg(&args.target).map_err(|e| Failure::bad_input(e.to_string()))?;
        let roles = rbac::roles(&policy, &target);
        match args.output {
            OutputFormat::Text => print!("{}", roles.yaml()),
            format @ (OutputFormat::Json | OutputFormat::Yaml) => format.print(&roles.json()),
        }
        return Ok(Exit::Success);
    }
    let old = args.against.as_deref().map(load_policy).transpose()?;
    match (&old, args.output) {
        (None, OutputFormat::Text) => print!("{}", text(&policy)),
        (None, format @ (OutputFormat::Json | OutputFormat::Yaml)) => format.print(&describe(&policy)),
        (Some(old), OutputFormat::Text) => print!("{}", diff_text(&diff(old, &policy))),
        (Some(old), format @ (OutputFormat::Json | OutputFormat::Yaml)) => format.print(&diff(old, &policy)),
    }
    Ok(Exit::Success)
}

/// The review as text, mutations first.
fn text(policy: &Policy) -> String {
    let m = &policy.manifest;
    let mut out = String::new();
    let _ = writeln!(out, "{} {} ({})", m.name, m.version, m.world);
    if !m.description.is_empty() {
        let _ = writeln!(out, "  {}", m.description);
    }
    let _ = writeln!(out, "digest:  {}", policy.digest);
    match &policy.origin {
        Some(origin) => {
            let _ = writeln!(out, "from:    {} ({} KiB)", origin.reference, policy.bytes.len().div_ceil(1024));
            let _ = writeln!(out, "manifest: {}", origin.manifest_digest);
            let _ = writeln!(out, "signer:  {}", origin.signer.as_deref().unwrap_or("none (the trust policy asks for no signature)"));
        }
        None => {
            let _ = writeln!(out, "file:    {} ({} KiB)", policy.path.display(), policy.bytes.len().div_ceil(1024));
        }
    }
    let caps = capabilities(policy);
    let mutating = caps.iter().filter(|(_, m)| *m).count();
    let _ = writeln!(out, "\ncapabilities ({} requested, {mutating} mutating):", caps.len());
    if caps.is_empty() {
        let _ = writeln!(out, "  none");
    }
    // Mutations first: they are what a reviewer must weigh.
    for (cap, is_mutating) in caps.iter().filter(|(_, m)| *m).chain(caps.iter().filter(|(_, m)| !*m)) {
        let _ = writeln!(out, "  {:<8} {cap}", if *is_mutating { "MUTATES" } else { "reads" });
    }
    let report = &policy.import_report;
    let _ = writeln!(out, "\nimports:");
    let _ = writeln!(out, "  runner:policy  {}", report.policy_interfaces.join(", "));
    let _ = writeln!(out, "  wasi           {} (nothing ambient: no files, network, environment or stdin)", report.wasi_interfaces.len());
    let mismatches = report.mismatches();
    if !mismatches.is_empty() {
        let _ = writeln!(out, "\nmanifest and imports disagree:");
        for line in mismatches {
            let _ = writeln!(out, "  ! {line}");
        }
    }
    let _ = writeln!(out, "\nconfig:");
    if m.config.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for (key, field) in &m.config {
        let default = match (&field.default, field.required) {
            (Some(d), _) => format!("default {d}"),
            (None, true) => "required".into(),
            (None, false) => "optional".into(),
        };
        let _ = writeln!(out, "  {key:<20} {:<8} {default:<24} {}", field.kind.to_string(), field.description);
    }
    if !m.gates.is_empty() {
        let _ = writeln!(out, "\ngate slots:");
        for (slot, gate) in &m.gates {
            let _ = writeln!(out, "  {slot:<20} -> {:<20} {}", gate.default, gate.description);
        }
    }
    if !m.patterns.is_empty() {
        let _ = writeln!(out, "\npattern slots (each runs in its own sandbox with its own manifest's requests, within the run's --allow):");
        for (slot, pattern) in &m.patterns {
            let _ = writeln!(out, "  {slot:<20} -> {:<20} {}", pattern.default, pattern.description);
        }
    }
    if !m.steps.is_empty() {
        let _ = writeln!(out, "\nsteps:");
        for (i, step) in m.steps.iter().enumerate() {
            let _ = writeln!(out, "  {:>2}. {:<24} {}", i + 1, step.name, step.description);
        }
    }
    if !m.rollback.is_empty() {
        let _ = writeln!(out, "\nrollback: {}", m.rollback);
    }
    out
}

/// What changed, as text, most alarming first.
fn diff_text(diff: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} -> {}",
        diff["name"].as_str().unwrap_or_default(),
        diff["old"]["version"].as_str().unwrap_or_default(),
        diff["new"]["version"].as_str().unwrap_or_default()
    );
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let mut changes = 0;
    let mut line = |out: &mut String, text: String| {
        changes += 1;
        let _ = writeln!(out, "{text}");
    };
    if diff["old"]["name"] != diff["name"] {
        line(
            &mut out,
            format!("  ! a different policy: {} -> {}", diff["old"]["name"].as_str().unwrap_or_default(), diff["name"].as_str().unwrap_or_default()),
        );
    }
    for cap in list(&diff["capabilities_added"]) {
        let tag = if cap["mutating"].as_bool() == Some(true) { "NEW MUTATING CAPABILITY" } else { "new capability" };
        line(&mut out, format!("  + {tag}: {}", cap["capability"].as_str().unwrap_or_default()));
    }
    if !diff["world"].is_null() {
        line(&mut out, format!("  ! world: {} -> {}", diff["world"]["before"], diff["world"]["after"]));
    }
    for cap in list(&diff["capabilities_removed"]) {
        line(&mut out, format!("  - capability: {}", cap.as_str().unwrap_or_default()));
    }
    for import in list(&diff["imports_added"]) {
        line(&mut out, format!("  + import: runner:policy/{}", import.as_str().unwrap_or_default()));
    }
    for import in list(&diff["imports_removed"]) {
        line(&mut out, format!("  - import: runner:policy/{}", import.as_str().unwrap_or_default()));
    }
    for slot in list(&diff["gate_slots_changed"]) {
        line(&mut out, format!("  ~ gate slot {}: {} -> {}", slot["slot"].as_str().unwrap_or_default(), slot["before"], slot["after"]));
    }
    for slot in list(&diff["pattern_slots_changed"]) {
        line(&mut out, format!("  ~ pattern slot {}: {} -> {}", slot["slot"].as_str().unwrap_or_default(), slot["before"], slot["after"]));
    }
    for key in list(&diff["config_added"]) {
        line(&mut out, format!("  + config: {}", key.as_str().unwrap_or_default()));
    }
    for key in list(&diff["config_removed"]) {
        line(&mut out, format!("  - config: {}", key.as_str().unwrap_or_default()));
    }
    for change in list(&diff["config_changed"]) {
        line(&mut out, format!("  ~ config {}: {} -> {}", change["key"].as_str().unwrap_or_default(), change["before"], change["after"]));
    }
    if !diff["steps"].is_null() {
        line(&mut out, format!("  ~ steps: {} -> {}", diff["steps"]["before"], diff["steps"]["after"]));
    }
    if !diff["rollback"].is_null() {
        line(&mut out, format!("  ~ rollback: {} -> {}", diff["rollback"]["before"], diff["rollback"]["after"]));
    }
    if diff["description_changed"].as_bool() == Some(true) {
        line(&mut out, "  ~ description changed".into());
    }
    if changes == 0 {
        let code = if diff["code_changed"].as_bool() == Some(true) { "the code changed (digest differs)" } else { "identical component" };
        let _ = writeln!(out, "  no change in capabilities, imports, config, slots or steps; {code}");
    }
    let _ = writeln!(out, "  digest: {} -> {}", diff["old"]["digest"].as_str().unwrap_or_default(), diff["new"]["digest"].as_str().unwrap_or_default());
    out
}
