//! `runner target check`: print what a target has and what a run would lack
//! (computed by [`crate::run::inspect`]).

use std::fmt::Write;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::{CommandResult, Exit, OutputFormat};
use crate::run::inspect::inspect;
use crate::run::runtime;
use crate::target::Target;

/// `runner target ...`.
#[derive(Args, Debug)]
pub struct TargetArgs {
    #[command(subcommand)]
    command: TargetCommand,
}

#[derive(Subcommand, Debug)]
enum TargetCommand {
    /// Connect, list what the target has (nodes, pools, members, roles, Services, credentials) and what is missing. Changes nothing.
    Check {
        /// `lab`, a target file or a kubeconfig (default: the current kubeconfig context, else the lab).
        #[arg(value_name = "FILE|lab")]
        target: Option<String>,
        #[command(flatten)]
        cluster: super::ClusterArgs,
        /// Report format.
        #[arg(short = 'o', long, value_enum, default_value_t)]
        output: OutputFormat,
    },
}

/// Run a `target` subcommand.
pub fn run(args: TargetArgs) -> CommandResult {
    match args.command {
        TargetCommand::Check { target, cluster, output } => check(cluster.select(target)?, output),
    }
}

fn check(target: Target, output: OutputFormat) -> CommandResult {
    let report = runtime()?.block_on(inspect(&target))?;
    match output {
        format @ (OutputFormat::Json | OutputFormat::Yaml) => format.print(&report),
        OutputFormat::Text => print!("{}", text_report(&report)),
    }
    Ok(if report["missing"].as_array().is_some_and(|m| m.is_empty()) { Exit::Success } else { Exit::PolicyFailed })
}

/// The inspection report as text, what is missing last.
fn text_report(report: &Value) -> String {
    let s = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| if v.is_null() { "-".into() } else { v.to_string() });
    let mut out = String::new();
    let _ = writeln!(out, "target {}: context {}, namespace {}", s(&report["target"]), s(&report["context"]), s(&report["namespace"]));
    if !report["server"].is_null() {
        let _ = writeln!(out, "API server {} ({})", s(&report["server"]["version"]), s(&report["server"]["platform"]));
    }
    let nodes = report["nodes"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(out, "\nnodes ({}):", nodes.len());
    for node in &nodes {
        let state = match (node["ready"] == true, node["cordoned"] == true) {
            (true, false) => "Ready",
            (true, true) => "Ready, cordoned",
            (false, false) => "NotReady",
            (false, true) => "NotReady, cordoned",
        };
        let _ = writeln!(out, "  {:<40} pool {:<16} kubelet {:<10} {state}", s(&node["name"]), s(&node["pool"]), s(&node["kubeletVersion"]));
    }
    for db in report["databases"].as_array().cloned().unwrap_or_default() {
        let _ = writeln!(out, "\ndatabase {} ({}, namespace {}, port {}):", s(&db["name"]), s(&db["engine"]), s(&db["namespace"]), s(&db["port"]));
        if let Some(note) = db["note"].as_str() {
            let _ = writeln!(out, "  {note} (StatefulSet {} not found)", s(&db["statefulSet"]["name"]));
            continue;
        }
        let set = &db["statefulSet"];
        if set["found"] == true {
            let _ = writeln!(out, "  StatefulSet {}: {}/{} Ready", s(&set["name"]), s(&set["ready"]), s(&set["replicas"]));
        } else if let Some(problem) = set["problem"].as_str() {
            let _ = writeln!(out, "  StatefulSet {}: cannot read it: {problem}", s(&set["name"]));
        } else {
            let _ = writeln!(out, "  StatefulSet {}: not found", s(&set["name"]));
        }
        for m in db["members"].as_array().cloned().unwrap_or_default() {
            let role = if m["primary"] == true { "primary (per Service)".to_string() } else { s(&m["role"]) };
            let _ = writeln!(
                out,
                "  member {:<24} {:<8} role {:<22} node {} (pool {}, kubelet {}) {}",
                s(&m["name"]),
                if m["ready"] == true { "Ready" } else { "NotReady" },
                role,
                s(&m["node"]),
                s(&m["pool"]),
                s(&m["kubeletVersion"]),
                s(&m["address"])
            );
        }
        let svc = &db["primaryService"];
        if svc["found"] == true {
            let points: Vec<String> = svc["pointsTo"].as_array().map(|a| a.iter().map(s).collect()).unwrap_or_default();
            let _ = writeln!(
                out,
                "  primary Service {} ({}, ports {}) -> {}",
                s(&svc["name"]),
                s(&svc["clusterIP"]),
                s(&svc["ports"]),
                if points.is_empty() { "no member".into() } else { points.join(", ") }
            );
        } else if let Some(problem) = svc["problem"].as_str() {
            let _ = writeln!(out, "  primary Service {}: cannot read it: {problem}", s(&svc["name"]));
        } else if !svc.is_null() {
            let _ = writeln!(out, "  primary Service {}: not found", s(&svc["name"]));
        }
        if !db["credentials"].is_null() {
            let found = if db["credentials"]["found"] == true { "present".to_string() } else { format!("MISSING ({})", s(&db["credentials"]["problem"])) };
            let _ = writeln!(out, "  credentials: {}: {found}", s(&db["credentials"]["source"]));
        }
    }
    let cluster = &report["cluster"];
    if !cluster.is_null() {
        let _ = writeln!(
            out,
            "\ncluster API: AKS {} (subscription {}, resource group {}) at {}, api-version {}, {}",
            s(&cluster["name"]),
            s(&cluster["subscription"]),
            s(&cluster["resourceGroup"]),
            s(&cluster["endpoint"]),
            s(&cluster["apiVersion"]),
            s(&cluster["credential"])
        );
        let plane = &cluster["controlPlane"];
        if !plane.is_null() {
            let upgrades: Vec<String> = plane["upgrades"].as_array().map(|a| a.iter().map(s).collect()).unwrap_or_default();
            let _ = writeln!(
                out,
                "  control plane {} ({}), upgrades offered: {}",
                s(&plane["currentKubernetesVersion"]),
                s(&plane["provisioningState"]),
                if upgrades.is_empty() { "none".into() } else { upgrades.join(", ") }
            );
        }
        for pool in cluster["pools"].as_array().cloned().unwrap_or_default() {
            let _ = writeln!(
                out,
                "  pool {:<16} {:<6} {:<8} {} node(s), image {} ({})",
                s(&pool["name"]),
                s(&pool["mode"]),
                s(&pool["orchestratorVersion"]),
                s(&pool["count"]),
                s(&pool["nodeImageVersion"]),
                s(&pool["provisioningState"])
            );
        }
    }
    for switch in report["traffic"].as_array().cloned().unwrap_or_default() {
        let backends: Vec<String> = switch["backends"]
            .as_array()
            .map(|list| {
                list.iter().map(|b| format!("{} {}{}", s(&b["name"]), s(&b["weight"]), if b["enabled"] == true { "" } else { " (disabled)" })).collect()
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "\ntraffic switch {}{}: {} at {}{}",
            s(&switch["name"]),
            if switch["writer"] == true { " (writer)" } else { "" },
            s(&switch["via"]),
            s(&switch["url"]),
            match switch["problem"].as_str() {
                Some(problem) => format!(", not read: {problem}"),
                None => format!(", generation {}: {}", s(&switch["generation"]), backends.join(", ")),
            }
        );
    }
    let warnings = report["warnings"].as_array().cloned().unwrap_or_default();
    if !warnings.is_empty() {
        let _ = writeln!(out, "\nwarnings:");
        for w in &warnings {
            let _ = writeln!(out, "  ~ {}", s(w));
        }
    }
    let missing = report["missing"].as_array().cloned().unwrap_or_default();
    if missing.is_empty() {
        let _ = writeln!(out, "\nCOMPLETE: nothing is missing");
    } else {
        let _ = writeln!(out, "\nINCOMPLETE: {} thing(s) missing", missing.len());
        for m in &missing {
            let _ = writeln!(out, "  - {}", s(m));
        }
    }
    out
}
