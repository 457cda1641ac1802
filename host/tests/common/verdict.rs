//! What makes a gate's run a verdict on a cluster, for the tests that run
//! gates against a real API server (`real_cluster.rs`) and the lab's
//! refusals (`refusals_lab.rs`).

use serde_json::Value;

/// Words in which an API server or the runner says a call was refused: a
/// gate that quotes them in its verdict decided nothing about the cluster.
pub const REFUSALS: &[&str] = &["forbidden", "Forbidden", "Unauthorized", "denied:", "cannot authenticate"];

/// Why a gate's run is not a verdict on the cluster, if it is not: it was
/// refused, stopped or could not reach the cluster, any of its calls was
/// refused (a 403 answered to a database call's member lookup is journaled
/// `denied` without ever reaching the report's `denied`), its verdict quotes
/// a refusal, or no read of it was answered at all. A gate that passes, fails,
/// or errors because the cluster lacks what it checks reached a verdict.
pub fn not_a_verdict(code: Option<i32>, report: &Value, journal: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if !matches!(code, Some(0 | 1)) {
        problems.push(format!("exit {code:?}"));
    }
    for list in ["denied", "unavailable"] {
        if report[list].as_array().is_none_or(|calls| !calls.is_empty()) {
            problems.push(format!("{list}: {}", report[list]));
        }
    }
    // A gate may error on a cluster that lacks what it checks (`not-found`); not for want of rights or reach.
    if let Some(code @ ("denied" | "unavailable" | "timeout")) = report["error"]["code"].as_str() {
        problems.push(format!("the gate's error is `{code}`: {}", report["error"]["message"]));
    }
    let said = format!("{} {}", report["reasons"], report["evidence"]);
    if let Some(word) = REFUSALS.iter().find(|word| said.contains(*word)) {
        problems.push(format!("its verdict quotes a refusal ({word}): {}", report["reasons"]));
    }
    let entries: Vec<Value> = journal.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    for entry in &entries {
        if matches!(entry["outcome"].as_str(), Some("denied" | "unavailable" | "timeout")) {
            problems.push(format!("call {} answered {}: {}", entry["call"], entry["outcome"], entry["error"]));
        }
    }
    // `not-found` is an answer too: the server was asked and said so.
    let answered = |e: &&Value| matches!(e["outcome"].as_str(), Some("ok" | "not-found"));
    let reads_answered = entries.iter().filter(answered).filter(|e| e["call"].as_str().is_some_and(|c| c.contains("-read."))).count();
    if reads_answered == 0 {
        problems.push(format!("no read was answered: the gate saw nothing of the cluster ({} journaled call(s))", entries.len()));
    }
    problems
}
