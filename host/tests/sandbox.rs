//! Hostile components are stopped by the sandbox with exit code 3 and a
//! one-line reason, within the deadline plus one second.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn hostile(sandbox: &Sandbox, mode: &str, extra: &[&str]) -> (std::process::Output, Duration) {
    let gate = fixture("hostile-gate");
    let config = format!("mode={mode}");
    let mut args = vec!["exec", path(&gate), "--config", &config];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let output = sandbox.runner(&args);
    (output, started.elapsed())
}

#[track_caller]
fn expect_stopped(output: &std::process::Output, reason: &str) {
    let text = expect_exit(output, 3);
    let last = stderr(output).lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("error: hostile-gate: stopped by the sandbox: "), "one clear last line:\n{text}");
    assert!(last.contains(reason), "`{last}` should mention `{reason}`");
}

#[test]
fn a_well_behaved_gate_passes() {
    let sandbox = Sandbox::new();
    let (output, _) = hostile(&sandbox, "pass", &[]);
    assert!(expect_exit(&output, 0).contains("PASS"));
}

#[test]
fn infinite_loop_hits_the_deadline() {
    let sandbox = Sandbox::new();
    let (output, elapsed) = hostile(&sandbox, "loop", &["--deadline", "1s"]);
    expect_stopped(&output, "deadline exceeded");
    // Without the deadline it would never end; the bound leaves room for
    // compiling the component in a debug build on a busy 2-core machine.
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
}

#[test]
fn sleeping_past_the_deadline_is_stopped_too() {
    let sandbox = Sandbox::new();
    let (output, elapsed) = hostile(&sandbox, "sleep", &["--deadline", "1s"]);
    expect_stopped(&output, "deadline exceeded");
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
}

#[test]
fn allocating_past_the_cap() {
    let sandbox = Sandbox::new();
    let (output, _) = hostile(&sandbox, "alloc", &["--memory", "64MiB"]);
    expect_stopped(&output, "memory limit exceeded: the component tried to grow past 64 MiB");
}

#[test]
fn instance_and_table_limits_are_enforced() {
    let sandbox = Sandbox::new();
    for flags in [["--max-instances", "1"], ["--max-tables", "1"], ["--max-table-elements", "2"]] {
        let (output, _) = hostile(&sandbox, "pass", &flags);
        expect_stopped(&output, "exceeds the sandbox's instance or table limits");
    }
}

#[test]
fn overflowing_the_wasm_stack() {
    let sandbox = Sandbox::new();
    let (output, _) = hostile(&sandbox, "stack", &[]);
    expect_stopped(&output, "stack overflow");
}

#[test]
fn overflowing_the_shadow_stack() {
    let sandbox = Sandbox::new();
    let (output, _) = hostile(&sandbox, "shadow-stack", &[]);
    expect_stopped(&output, "out-of-bounds memory access");
}

#[test]
fn trapping() {
    let sandbox = Sandbox::new();
    let (output, _) = hostile(&sandbox, "trap", &[]);
    expect_stopped(&output, "unreachable code reached");
}

#[test]
fn panicking_names_the_panic() {
    let sandbox = Sandbox::new();
    let (output, _) = hostile(&sandbox, "panic", &[]);
    expect_stopped(&output, "the component panicked: hostile-gate panicked on purpose");
}

#[test]
fn printing_100_mib_is_cut_off() {
    let sandbox = Sandbox::new();
    let (output, _) = hostile(&sandbox, "print", &["--output-limit", "256KiB"]);
    expect_stopped(&output, "output limit exceeded: the component wrote more than 262144 bytes to stdout");
    assert!(output.stderr.len() < 1 << 20, "the log is bounded too: {} bytes", output.stderr.len());
}

#[test]
fn an_ungranted_call_is_denied_and_journaled() {
    let sandbox = Sandbox::new();
    let (output, _) = hostile(&sandbox, "denied", &[]);
    let text = expect_exit(&output, 3);
    assert!(text.contains("did not request `kube:list:v1/Secret`"), "{text}");
    let denied: Vec<_> = sandbox.journal_lines().into_iter().filter(|l| l["outcome"] == "denied").collect();
    assert_eq!(denied.len(), 1, "one denied call journaled");
    assert_eq!(denied[0]["call"], "kube-read.list");
    assert_eq!(denied[0]["args"]["kind"], "Secret");
    assert_eq!(denied[0]["component"], "hostile-gate");
}

#[test]
fn an_unreachable_backend_exits_4() {
    // No lab runs in the sandbox's lab directory: the default target cannot be reached.
    let sandbox = Sandbox::new();
    let (output, _) = hostile(&sandbox, "kube", &[]);
    let text = expect_exit(&output, 4);
    assert!(text.contains("unavailable: the lab in") && text.contains("is not running; start it with `runner lab up`"), "{text}");
    let output = sandbox.runner(&["exec", "pods-ready"]);
    assert!(expect_exit(&output, 4).contains("runner lab up"));
}

#[test]
fn a_second_exec_loads_the_compiled_artifact_from_the_cache() {
    let sandbox = Sandbox::new();
    let report = |output: &std::process::Output| -> serde_json::Value { serde_json::from_slice(&output.stdout).expect("JSON report") };
    let gate = fixture("hostile-gate");
    let first = sandbox.runner(&["exec", path(&gate), "--output", "json"]);
    expect_exit(&first, 0);
    assert_eq!(report(&first)["compiled_from_cache"], false);
    let cached: Vec<_> = std::fs::read_dir(sandbox.dir.path().join("cache")).unwrap().collect();
    assert_eq!(cached.len(), 1, "one compiled artifact on disk");
    let second = sandbox.runner(&["exec", path(&gate), "--output", "json"]);
    expect_exit(&second, 0);
    assert_eq!(report(&second)["compiled_from_cache"], true, "the second exec must not recompile");
    // A corrupt cache entry is recompiled, not trusted.
    let entry = std::fs::read_dir(sandbox.dir.path().join("cache")).unwrap().next().unwrap().unwrap().path();
    std::fs::write(&entry, b"garbage").unwrap();
    let third = sandbox.runner(&["exec", path(&gate), "--output", "json"]);
    expect_exit(&third, 0);
    assert_eq!(report(&third)["compiled_from_cache"], false);
}

#[test]
fn the_sandbox_has_nothing_ambient() {
    let gate = fixture("hostile-gate");
    let mut command = assert_cmd::Command::cargo_bin("runner").unwrap();
    let sandbox = Sandbox::new();
    command
        .env("RUNNER_CACHE_DIR", sandbox.dir.path().join("cache"))
        .env("RUNNER_LAB_DIR", sandbox.dir.path())
        .env("DATABASE_PASSWORD", "hunter2")
        .args(["exec", path(&gate), "--config", "mode=ambient", "--output", "json", "--journal", path(&sandbox.journal())])
        .write_stdin("a line the component must not read\n");
    let output = command.output().unwrap();
    expect_exit(&output, 0);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let evidence = &report["evidence"];
    assert_eq!(evidence["env"], 0, "no environment variables: {evidence}");
    assert_eq!(evidence["args"], 0, "no arguments: {evidence}");
    assert_eq!(evidence["fs"], false, "no filesystem: {evidence}");
    assert_eq!(evidence["stdin_bytes"], 0, "no inherited stdin: {evidence}");
    assert_eq!(evidence["net"], false, "no network: {evidence}");
}

#[test]
fn a_journal_that_cannot_be_written_fails_a_run_that_only_read() {
    let sandbox = Sandbox::new();
    std::os::unix::fs::symlink("/dev/full", sandbox.journal()).unwrap();
    // A gate makes no mutation: its lines are buffered, and lost only at the
    // end (here its reads find no lab, which alone would exit 4).
    let output = sandbox.runner(&["exec", "pods-ready"]);
    let text = expect_exit(&output, 3);
    assert!(text.contains("cannot write the journal") && text.contains("the run's record is incomplete"), "{text}");
}

#[test]
fn strings_handed_to_the_report_are_bounded_and_a_flood_is_stopped() {
    for mode in ["log-flood", "step-flood"] {
        let sandbox = Sandbox::new();
        let (output, _) = hostile(&sandbox, mode, &["--output", "json"]);
        assert_eq!(output.status.code(), Some(3), "{mode}: {}", stderr(&output).lines().last().unwrap_or_default());
        let all = format!("{}{}", stdout(&output), stderr(&output));
        let last = stderr(&output).lines().last().unwrap_or_default().to_string();
        assert!(last.contains("output limit exceeded: the component had the host print more than"), "{mode}: {}", &last[..last.len().min(500)]);
        // Each 1 MiB string was cut to a few KiB before the host kept or printed it.
        assert!(all.len() < 24 << 20, "{mode}: {} bytes of output", all.len());
    }
}

#[test]
fn a_sleep_cut_short_is_journaled_as_stopped_and_a_zero_deadline_runs_nothing() {
    let sandbox = Sandbox::new();
    let (output, _) = hostile(&sandbox, "sleep", &["--deadline", "1s"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let sleep = sandbox.journal_lines().into_iter().find(|l| l["call"] == "clock.sleep").expect("the sleep is journaled");
    assert_eq!(sleep["outcome"], "stopped", "{sleep}");

    let sandbox = Sandbox::new();
    let (output, _) = hostile(&sandbox, "pass", &["--deadline", "0s"]);
    let text = expect_exit(&output, 2);
    assert!(text.contains("a deadline must be longer than 0"), "{text}");
    assert!(sandbox.journal_lines().is_empty(), "nothing ran");
}

#[test]
fn a_run_that_fills_its_journal_limit_is_stopped() {
    let sandbox = Sandbox::new();
    let (output, _) = hostile(&sandbox, "calls", &["--config", "n=1000", "--journal-limit", "1MiB,50"]);
    let text = expect_exit(&output, 3);
    assert!(text.contains("the journal limit is reached (50 lines"), "{text}");
    assert_eq!(sandbox.journal_lines().len(), 50, "the journal holds exactly its limit");
    let headers = sandbox.journal_headers();
    assert_eq!(headers.len(), 1, "one header, outside the limit: {headers:?}");
    assert_eq!(headers[0]["policy"]["name"], "hostile-gate");
    assert!(headers[0]["policy"]["digest"].as_str().is_some_and(|d| d.starts_with("sha256:")), "{}", headers[0]);
    assert_eq!(headers[0]["config"]["n"], 1000, "{}", headers[0]);
    assert!(headers[0]["operator"].as_str().is_some_and(|o| !o.is_empty()), "{}", headers[0]);
}

/// `--output json` prints the whole report when the sandbox stops the
/// component, as when it answers: exit 3, `outcome: stopped`, `stopped`
/// naming the stop, and what the run did up to it (steps, journal).
#[test]
fn a_stopped_run_still_prints_its_json_report() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("loop", &["--deadline", "1s"], "deadline exceeded"),
        ("alloc", &["--memory", "64MiB"], "memory limit exceeded"),
        ("log-flood", &[], "output limit exceeded"),
        ("step-flood", &[], "output limit exceeded"),
        ("calls", &["--config", "n=1000", "--journal-limit", "1MiB,50"], "the journal limit is reached"),
    ];
    for (mode, extra, reason) in cases {
        let sandbox = Sandbox::new();
        let mut args = vec!["--output", "json"];
        args.extend_from_slice(extra);
        let (output, _) = hostile(&sandbox, mode, &args);
        assert_eq!(output.status.code(), Some(3), "{mode}: {}", stderr(&output).lines().last().unwrap_or_default());
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{mode}: no JSON report on stdout ({e}): {:.2000}", stdout(&output)));
        assert_eq!(report["outcome"], "stopped", "{mode}");
        assert_eq!(report["exit_code"], 3, "{mode}");
        assert_eq!(report["policy"]["name"], "hostile-gate", "{mode}");
        let stopped = report["stopped"].as_str().unwrap_or_else(|| panic!("{mode}: `stopped` names the stop: {:.2000}", report.to_string()));
        assert!(stopped.starts_with("hostile-gate: stopped by the sandbox: ") && stopped.contains(reason), "{mode}: {stopped}");
        assert!(report["reasons"].as_array().unwrap().iter().any(|r| r == stopped), "{mode}");
        assert!(report["journal"].is_string(), "{mode}: the report names its journal");
        // The error line on stderr stays, for people and for scripts reading it.
        assert!(stderr(&output).lines().last().unwrap_or_default().contains(reason), "{mode}");
        if *mode == "step-flood" {
            assert!(!report["steps"].as_array().unwrap().is_empty(), "the steps made before the stop are reported");
        }
    }

    // A journal lost at the end: the component answered, the record is incomplete.
    let sandbox = Sandbox::new();
    std::os::unix::fs::symlink("/dev/full", sandbox.journal()).unwrap();
    let output = sandbox.runner(&["exec", "pods-ready", "--output", "json"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    assert_eq!(report["outcome"], "stopped");
    assert!(report["stopped"].as_str().is_some_and(|s| s.contains("cannot write the journal") && s.contains("record is incomplete")), "{report:#}");
    // What the gate answered (its reads found no lab) is kept beside the stop.
    assert!(report["reasons"].as_array().unwrap().len() >= 2, "{report:#}");
}
