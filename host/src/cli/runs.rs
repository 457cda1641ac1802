//! `runner runs`, `runner approve`, `runner reject`, `runner stop`: what
//! other processes can see of a run and say to it, through its directory
//! (see [`crate::runs`]).

use clap::Args;

use super::{CommandResult, Exit, Failure, OutputFormat};
use crate::runs::{self, ApprovalAnswer, RunDir, RunsError};

/// `runner runs`'s arguments.
#[derive(Args, Debug)]
pub struct RunsArgs {
    /// Report format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// `runner approve` and `runner reject`'s arguments.
#[derive(Args, Debug)]
pub struct AnswerArgs {
    /// The run (`runner runs` lists them; a run prints its id when it asks).
    run_id: String,
    /// The step (or the summary) the approval must be in, so an answer never reaches a later question.
    step: Option<String>,
    /// Who answers, for the journal (default: `$USER`).
    #[arg(long = "as", value_name = "NAME")]
    by: Option<String>,
    /// Report format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// `runner stop`'s arguments.
#[derive(Args, Debug)]
pub struct StopArgs {
    /// The run to stop at its next step boundary.
    run_id: String,
}

fn failure(e: RunsError) -> Failure {
    match e {
        RunsError::Io(message) => Failure::new(Exit::Unavailable, message),
        other => Failure::bad_input(other.to_string()),
    }
}

/// The directory of run `id`, which must be running: only a live run can take an answer or a stop.
fn running(id: &str) -> Result<RunDir, Failure> {
    let run = RunDir::existing(&runs::root(), id).map_err(failure)?;
    if !run.alive() {
        return Err(Failure::bad_input(format!("run {id} is not running (it is {})", run.state().map(|s| s.state).unwrap_or_default())));
    }
    Ok(run)
}

/// List the runs, newest first.
pub fn list(args: RunsArgs) -> CommandResult {
    let root = runs::root();
    let all = runs::list(&root);
    let rows: Vec<serde_json::Value> = all
        .iter()
        .map(|(dir, state)| {
            // A run whose process is gone without an ending was killed.
            let shown = if state.ended.is_none() && !dir.alive() { "interrupted".to_string() } else { state.state.clone() };
            serde_json::json!({
                "id": state.id, "policy": state.policy, "state": shown, "operator": state.operator,
                "started": state.started, "ended": state.ended, "journal": state.journal,
                "approval": dir.pending().map(|p| p.summary),
                "resumed": state.resumed,
                "resumable": (shown == "interrupted" || shown == "stopped") && dir.log_path().is_file() && dir.invocation().is_some(),
            })
        })
        .collect();
    match args.output {
        OutputFormat::Text => {
            if rows.is_empty() {
                println!("no runs in {}", root.display());
            }
            for row in &rows {
                let mut approval = row["approval"].as_str().map(|a| format!("  (waits: {a})")).unwrap_or_default();
                if row["resumable"] == true {
                    approval.push_str(&format!("  (runner exec --resume {})", row["id"].as_str().unwrap_or("")));
                }
                println!(
                    "{:<48} {:<18} {:<17} {}{approval}",
                    row["id"].as_str().unwrap_or(""),
                    row["policy"].as_str().unwrap_or(""),
                    row["state"].as_str().unwrap_or(""),
                    row["started"].as_str().unwrap_or("")
                );
            }
        }
        format => format.print(&serde_json::Value::Array(rows)),
    }
    Ok(Exit::Success)
}

/// Answer a run's waiting approval.
pub fn answer(args: AnswerArgs, approved: bool) -> CommandResult {
    let run = running(&args.run_id)?;
    let via = if approved { "runner approve" } else { "runner reject" };
    let answer = ApprovalAnswer { approved, by: args.by.unwrap_or_else(runs::operator), at: crate::journal::timestamp(), via: via.into() };
    let pending = run.respond(&answer, args.step.as_deref()).map_err(failure)?;
    match args.output {
        OutputFormat::Text => println!("{} {}: {}", if approved { "approved" } else { "rejected" }, args.run_id, pending.summary),
        format => format.print(&serde_json::json!({"run": args.run_id, "approval": pending, "answer": answer})),
    }
    Ok(Exit::Success)
}

/// Ask a run to stop at its next step boundary.
pub fn stop(args: StopArgs) -> CommandResult {
    let run = running(&args.run_id)?;
    run.request_stop(&runs::operator()).map_err(failure)?;
    println!("run {} stops before its next step", args.run_id);
    Ok(Exit::Success)
}
