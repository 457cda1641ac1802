//! Composition: a pattern runs another bound to a slot (`patterns.run`).
//! Its own sandbox and grants, rebinding with `--pattern`, nesting in the
//! report and the journal, each kind of result, sessions, and the
//! documents a run attaches (`report.attach`).

mod common;

use std::path::Path;
use std::process::Output;

use common::*;
use serde_json::{Value, json};

/// `runner ARGS` as [`Sandbox::runner`] runs it, with the test components
/// findable by name too (`compose-parent`'s slots default to `compose-child`).
fn runner(sandbox: &Sandbox, args: &[&str]) -> Output {
    let no_lab = sandbox.dir.path().join("no-lab");
    std::fs::create_dir_all(&no_lab).unwrap();
    let search = std::env::join_paths([repo().join("tests/fixtures/dist"), repo().join("policies/dist")]).unwrap();
    let mut command = assert_cmd::Command::cargo_bin("runner").unwrap();
    command
        .env("RUNNER_CACHE_DIR", sandbox.dir.path().join("cache"))
        .env("RUNNER_LAB_DIR", &no_lab)
        .env_remove("RUNNER_LOG")
        .env("RUNNER_POLICY_PATH", search)
        .args(args);
    if args.first() == Some(&"exec") {
        command.arg("--journal").arg(sandbox.journal());
    }
    command.timeout(std::time::Duration::from_secs(120));
    command.output().unwrap()
}

/// `runner exec compose-parent` with `child-config` and more flags.
fn parent(sandbox: &Sandbox, child_config: Value, extra: &[&str]) -> Output {
    let parent = fixture("compose-parent");
    let config = format!("child-config={child_config}");
    let mut args = vec!["exec", path(&parent), "--config", &config];
    args.extend_from_slice(extra);
    runner(sandbox, &args)
}

fn report(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("JSON report ({e}): {}{}", stdout(output), stderr(output)))
}

/// `(slot_path, component, name)` of every step, in order.
fn steps(report: &Value) -> Vec<(Option<String>, String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["slot_path"].as_str().map(str::to_string), s["component"].as_str().unwrap().to_string(), s["name"].as_str().unwrap().to_string()))
        .collect()
}

fn step(slot: Option<&str>, component: &str, name: &str) -> (Option<String>, String, String) {
    (slot.map(str::to_string), component.to_string(), name.to_string())
}

#[test]
fn a_dry_run_runs_the_sub_pattern_and_plans_its_mutations_under_its_slot() {
    let sandbox = Sandbox::new();
    let output = parent(&sandbox, json!({}), &["--dry-run", "--allow", "kube:scale", "-o", "json"]);
    expect_exit(&output, 0);
    let report = report(&output);
    assert_eq!(report["outcome"], "succeeded");
    assert_eq!(report["reasons"][0], "child succeeded: scaled to 4");
    assert_eq!(steps(&report), vec![step(None, "compose-parent", "run-child"), step(Some("child"), "compose-child", "scale")]);
    let plan = report["plan"].as_array().unwrap();
    assert_eq!(plan.len(), 1, "{plan:?}");
    assert_eq!((plan[0]["component"].as_str(), plan[0]["call"].as_str()), (Some("compose-child"), Some("kube-write.scale")));
    assert_eq!(plan[0]["needs_allow"], Value::Null, "requested by the child and allowed by the operator");
    let runs = report["patterns"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["slot_path"], "child");
    assert_eq!(runs[0]["pattern"], "compose-child");
    assert_eq!(runs[0]["parent_step"], "run-child");
    assert_eq!(runs[0]["outcome"], "succeeded");
    // The journal: the child's lines carry the slot and its own name.
    let journal = sandbox.journal_lines();
    let scale = journal.iter().find(|l| l["call"] == "kube-write.scale").expect("scale journaled");
    assert_eq!((scale["component"].as_str(), scale["slot"].as_str(), scale["outcome"].as_str()), (Some("compose-child"), Some("child"), Some("planned")));
    let run = journal.iter().find(|l| l["call"] == "patterns.run").expect("patterns.run journaled");
    assert_eq!((run["component"].as_str(), run["slot"].as_str(), run["args"]["slot"].as_str()), (Some("compose-parent"), None, Some("child")));
    assert_eq!(sandbox.journal_headers()[0]["patterns"]["child"], "compose-child");
    // Not allowed: still planned in a dry run, marked with the --allow a real run needs.
    let output = parent(&Sandbox::new(), json!({}), &["--dry-run", "-o", "json"]);
    expect_exit(&output, 0);
    assert_eq!(report_of(&output)["plan"][0]["needs_allow"], "kube:scale:apps/v1/StatefulSet");
    // The text report shows the child's steps under the parent's.
    let text = expect_exit(&parent(&Sandbox::new(), json!({}), &["--dry-run", "--allow", "kube:scale"]), 0);
    let run_child = text.find("  step run-child").unwrap_or_else(|| panic!("{text}"));
    let nested = text.find("    step [child] scale").unwrap_or_else(|| panic!("{text}"));
    assert!(run_child < nested, "{text}");
    assert!(text.contains("  pattern child") && text.contains("compose-child (in step run-child)"), "{text}");
    // So does the report for a change ticket.
    let sandbox = Sandbox::new();
    let markdown = sandbox.dir.path().join("report.md");
    expect_exit(&parent(&sandbox, json!({}), &["--dry-run", "--allow", "kube:scale", "--report", path(&markdown)]), 0);
    let markdown = std::fs::read_to_string(&markdown).unwrap();
    assert!(markdown.contains("| 2 | ↳ scale | compose-child (slot child) | succeeded |"), "{markdown}");
}

fn report_of(output: &Output) -> Value {
    report(output)
}

#[test]
fn a_mutation_the_operator_did_not_allow_is_denied_to_the_sub_pattern() {
    let sandbox = Sandbox::new();
    let output = parent(&sandbox, json!({}), &["-o", "json"]);
    expect_exit(&output, 3);
    let report = report(&output);
    assert_eq!(report["outcome"], "error");
    let message = report["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("child failed: pattern `compose-child`: "), "{message}");
    assert!(message.contains("pass --allow kube:scale:apps/v1/StatefulSet"), "{message}");
    assert_eq!(report["error"]["code"], "denied");
    assert!(report["denied"][0].as_str().unwrap().starts_with("compose-child: kube-write.scale:"), "{}", report["denied"]);
    assert_eq!(report["patterns"][0]["outcome"], "error");
    let scale = sandbox.journal_lines().into_iter().find(|l| l["call"] == "kube-write.scale").unwrap();
    assert_eq!((scale["outcome"].as_str(), scale["slot"].as_str()), (Some("denied"), Some("child")));
    // Allowed: the call passes the sandbox and reaches the backend (no lab runs here: unavailable, exit 4).
    let sandbox = Sandbox::new();
    let output = parent(&sandbox, json!({}), &["--allow", "kube:scale", "-o", "json"]);
    expect_exit(&output, 4);
    let scale = sandbox.journal_with_intents().into_iter().filter(|l| l["call"] == "kube-write.scale").collect::<Vec<_>>();
    assert_eq!(scale.iter().map(|l| l["outcome"].as_str().unwrap()).collect::<Vec<_>>(), vec!["started", "unavailable"]);
    assert_eq!(report_of(&output)["denied"], json!([]));
}

#[test]
fn what_the_sub_pattern_did_not_request_stays_denied_whatever_is_allowed() {
    let sandbox = Sandbox::new();
    let output = parent(&sandbox, json!({"patch": true}), &["--dry-run", "--allow", "*:*", "-o", "json"]);
    expect_exit(&output, 3);
    let report = report(&output);
    let denied = report["denied"][0].as_str().unwrap();
    assert!(denied.contains("compose-child: kube-write.patch: `compose-child` did not request `kube:patch:v1/Service`"), "{denied}");
    assert!(report["error"]["message"].as_str().unwrap().contains("child failed: pattern `compose-child`"), "{report}");
    // What it did request and the operator allowed went into the plan.
    assert_eq!(report["plan"][0]["call"], "kube-write.scale");
}

#[test]
fn a_parent_without_the_slots_capability_is_denied() {
    let sandbox = Sandbox::new();
    let output = runner(&sandbox, &["exec", path(&fixture("compose-parent")), "--config", "slot=other", "--dry-run", "-o", "json"]);
    expect_exit(&output, 3);
    let report = report(&output);
    let message = report["error"]["message"].as_str().unwrap();
    assert!(message.contains("patterns.run refused: denied: `compose-parent` did not request `patterns:run:other`"), "{message}");
    let journal = sandbox.journal_lines();
    assert!(journal.iter().any(|l| l["call"] == "patterns.run" && l["outcome"] == "denied"), "{journal:?}");
    assert!(journal.iter().all(|l| l["component"] != "compose-child"), "the child never ran");
    assert_eq!(report["patterns"], json!([]));
    // A slot that is not declared at all: not-found.
    let output = runner(&Sandbox::new(), &["exec", path(&fixture("compose-parent")), "--config", "slot=nothing", "--dry-run", "-o", "json"]);
    let report = report_of(&output);
    assert!(report["error"]["message"].as_str().unwrap().contains("denied"), "not requested, so refused before the lookup: {report}");
}

#[test]
fn pattern_rebinds_a_slot_and_bad_bindings_are_refused_before_the_run() {
    let sandbox = Sandbox::new();
    let probe = format!("child={}", path(&fixture("probe-pattern")));
    let output = parent(&sandbox, json!({}), &["--pattern", &probe, "--dry-run", "--approve", "-o", "json"]);
    let report = report(&output);
    // probe-pattern's steps, under the slot, and its own gate slot bound to its default.
    let nested: Vec<_> = steps(&report).into_iter().filter(|s| s.0.is_some()).map(|s| (s.1, s.2)).collect();
    assert_eq!(nested[0], ("probe-pattern".to_string(), "check".to_string()), "{report}");
    assert_eq!(report["patterns"][0]["pattern"], "probe-pattern");
    assert_eq!(report["gates"][0]["gate"], "pods-ready");
    assert_eq!(report["gates"][0]["slot_path"], "child");
    assert!(sandbox.journal_lines().iter().any(|l| l["component"] == "pods-ready" && l["slot"] == "child"), "the gate's lines carry the slot");
    let refusals = [
        (vec!["--pattern", "nope=compose-child"], "--pattern: `compose-parent` has no pattern slot `nope` (slots: child, other)"),
        (vec!["--pattern", "child/nope=compose-child"], "--pattern: `compose-child` has no pattern slot `child/nope` (slots: inner)"),
        (vec!["--pattern", "child"], "--pattern:"),
    ];
    for (flags, expected) in refusals {
        let text = expect_exit(&parent(&Sandbox::new(), json!({}), &flags), 2);
        assert!(text.contains(expected), "{flags:?}: {text}");
    }
    let gate = format!("child={}", path(&fixture("hostile-gate")));
    let text = expect_exit(&parent(&Sandbox::new(), json!({}), &["--pattern", &gate]), 2);
    assert!(text.contains("pattern slot `child`: `hostile-gate` is a gate, not a pattern"), "{text}");
    let junk = sandbox.dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not a component").unwrap();
    let junk = format!("child={}", path(&junk));
    let text = expect_exit(&parent(&Sandbox::new(), json!({}), &["--pattern", &junk]), 2);
    assert!(text.contains("pattern slot `child`:"), "{text}");
}

#[test]
fn nested_patterns_report_under_their_slot_path_and_stop_at_the_depth_bound() {
    let sandbox = Sandbox::new();
    let output = parent(&sandbox, json!({"nest": 1}), &["--dry-run", "--allow", "kube:scale", "-o", "json"]);
    expect_exit(&output, 0);
    let report = report(&output);
    assert_eq!(
        steps(&report),
        vec![
            step(None, "compose-parent", "run-child"),
            step(Some("child"), "compose-child", "scale"),
            step(Some("child"), "compose-child", "nest"),
            step(Some("child/inner"), "compose-child", "scale"),
        ]
    );
    let runs: Vec<(&str, &str)> =
        report["patterns"].as_array().unwrap().iter().map(|r| (r["slot_path"].as_str().unwrap(), r["parent_step"].as_str().unwrap())).collect();
    assert_eq!(runs, vec![("child/inner", "nest"), ("child", "run-child")], "in the order they ended");
    assert_eq!(report["plan"].as_array().unwrap().len(), 2, "both scales planned");
    assert!(sandbox.journal_lines().iter().any(|l| l["call"] == "kube-write.scale" && l["slot"] == "child/inner"));
    // A pattern at depth 4 may not run one more.
    let output = parent(&Sandbox::new(), json!({"nest": 4}), &["--dry-run", "--allow", "kube:scale", "-o", "json"]);
    let report = report_of(&output);
    let message = report["error"]["message"].as_str().unwrap();
    assert!(message.contains("pattern slot `child/inner/inner/inner/inner` would run a pattern 5 deep; patterns nest at most 4 deep"), "{message}");
    assert_eq!(report["error"]["code"], "invalid");
    assert_eq!(report["patterns"].as_array().unwrap().len(), 4, "depths 1 to 4 ran");
}

#[test]
fn the_parent_sees_each_kind_of_result() {
    let cases: [(Value, &[&str], i32, &str, &str); 4] = [
        (json!({"mode": "rolled-back"}), &[], 1, "rolled-back", "child rolled back: scaled back to 3"),
        (json!({"mode": "fail"}), &[], 1, "error", "child failed: pattern `compose-child`: asked to fail; postgres-cluster left at 4"),
        (json!({"mode": "trap"}), &[], 1, "error", "child stopped: pattern `compose-child`: compose-child: stopped by the sandbox: the component panicked"),
        (json!({"mode": "nonsense", "replicas": "four"}), &[], 2, "error", "patterns.run refused: invalid: pattern `compose-child`:"),
    ];
    for (config, extra, exit, outcome, reason) in cases {
        let mut flags = vec!["--dry-run", "--allow", "kube:scale", "-o", "json"];
        flags.extend_from_slice(extra);
        let output = parent(&Sandbox::new(), config.clone(), &flags);
        let report = report(&output);
        assert_eq!(output.status.code(), Some(exit), "{config}: {report}");
        assert_eq!(report["outcome"], outcome, "{config}: {report}");
        assert!(report["reasons"][0].as_str().unwrap().contains(reason), "{config}: {}", report["reasons"]);
    }
    // A config that is not a JSON object never starts the child.
    let output = runner(&Sandbox::new(), &["exec", path(&fixture("compose-parent")), "--config", "child-config=[1]", "--dry-run", "-o", "json"]);
    assert!(report(&output)["error"]["message"].as_str().unwrap().contains("the config must be a JSON object"), "{}", stdout(&output));
}

#[test]
fn a_sub_pattern_past_the_deadline_is_stopped() {
    let sandbox = Sandbox::new();
    let output = parent(&sandbox, json!({"mode": "loop"}), &["--dry-run", "--allow", "kube:scale", "--deadline", "2s", "-o", "json"]);
    expect_exit(&output, 3);
    let report = report(&output);
    assert_eq!(report["outcome"], "stopped");
    let run = &report["patterns"][0];
    assert_eq!(run["outcome"], "stopped");
    assert!(run["detail"].as_str().unwrap().contains("pattern `compose-child`: compose-child: stopped by the sandbox: deadline exceeded"), "{run}");
    // Its deadline is no later than its caller's: it stopped within the run's 2 s.
    assert!(run["ms"].as_f64().unwrap() < 2500.0, "{run}");
}

#[test]
fn a_replay_runs_the_sub_pattern_again_from_the_session() {
    let sandbox = Sandbox::new();
    let session = sandbox.dir.path().join("compose.session.json");
    let flags = ["--dry-run", "--allow", "kube:scale", "-o", "json", "--record", path(&session)];
    let recorded = report(&parent(&sandbox, json!({"nest": 1}), &flags));
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&session).unwrap()).unwrap();
    let calls: Vec<(&str, &str)> = file["calls"].as_array().unwrap().iter().map(|c| (c["component"].as_str().unwrap(), c["call"].as_str().unwrap())).collect();
    assert_eq!(calls.first(), Some(&("compose-parent", "patterns.run")), "{calls:?}");
    assert!(calls.iter().filter(|c| c.1 == "patterns.run").count() == 2, "{calls:?}");
    let replayed = report(&parent(&Sandbox::new(), json!({"nest": 1}), &["--allow", "kube:scale", "-o", "json", "--replay", path(&session)]));
    assert_eq!(replayed["outcome"], "succeeded", "{replayed}");
    assert_eq!(steps(&replayed), steps(&recorded));
    assert_eq!(replayed["patterns"].as_array().unwrap().len(), 2);
    // A different sub-pattern config diverges at the sub-pattern's call.
    let output = parent(&Sandbox::new(), json!({"nest": 1, "replicas": 5}), &["--allow", "kube:scale", "--replay", path(&session)]);
    let text = expect_exit(&output, 1);
    assert!(text.contains("differs at args.config.replicas"), "{text}");
}

#[test]
fn a_test_case_binds_pattern_slots_and_counts_the_sub_patterns_mutations() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path();
    let case = |name: &str, body: &str| std::fs::write(dir.join(format!("{name}.test.yaml")), body).unwrap();
    let parent = fixture("compose-parent");
    let child = fixture("compose-child");
    case(
        "runs",
        &format!(
            "component: {}\npatterns: {{child: {}}}\nresponses:\n  - call: kube-write.scale\n    args: {{name: postgres-cluster, replicas: 4}}\nexpect:\n  outcome: succeeded\n  reasons: [\"child succeeded\"]\n  mutations: [{{call: kube-write.scale, component: compose-child}}]\n",
            path(&parent),
            path(&child)
        ),
    );
    case(
        "canned",
        &format!(
            "component: {}\nresponses:\n  - call: patterns.run\n    response: {{rolled-back: \"restored\"}}\nexpect:\n  outcome: rolled-back\n  reasons: [\"child rolled back: restored\"]\n  mutations: []\n",
            path(&parent)
        ),
    );
    let output = runner(&sandbox, &["test", path(dir), "-o", "json"]);
    let text = expect_exit(&output, 0);
    assert!(text.contains("runs") && text.contains("canned"), "{text}");
}

#[test]
fn documents_are_attached_beside_the_journal_or_in_the_folder_given() {
    let sandbox = Sandbox::new();
    let output = parent(&sandbox, json!({"attach-name": "compliance.md", "attach-bytes": 100}), &["--dry-run", "--allow", "kube:scale", "-o", "json"]);
    expect_exit(&output, 0);
    let report = report(&output);
    let attachment = &report["attachments"][0];
    assert_eq!(attachment["name"], "compliance.md");
    assert_eq!(attachment["bytes"], 100 + "# compliance.md\n".len());
    let written = Path::new(attachment["path"].as_str().unwrap());
    let run_id = sandbox.journal_lines()[0]["run"].as_str().unwrap().to_string();
    assert_eq!(written, sandbox.dir.path().join(&run_id).join("compliance.md"), "a folder named after the run id beside the journal");
    assert!(std::fs::read_to_string(written).unwrap().starts_with("# compliance.md\nxxx"));
    let line = sandbox.journal_lines().into_iter().find(|l| l["call"] == "report.attach").unwrap();
    assert_eq!(line["args"], json!({"name": "compliance.md", "bytes": 116}), "name and size, never the content");
    assert_eq!(line["slot"], "child");

    let dir = sandbox.dir.path().join("given");
    let flags = ["--dry-run", "--allow", "kube:scale", "--attachments", path(&dir)];
    let text = expect_exit(&parent(&Sandbox::new(), json!({"attach-name": "notes.txt", "attach-count": 2}), &flags), 0);
    assert!(text.contains(&format!("attachment: {}", dir.join("0-notes.txt").display())), "{text}");
    assert!(dir.join("1-notes.txt").is_file());

    let refusals = [
        (json!({"attach-name": "notes.txt", "attach-count": 17}), "a run keeps at most 16 attachments"),
        (json!({"attach-name": "..md"}), "must not start with `.`"),
        (json!({"attach-name": "report.html"}), "must end with .md, .json or .txt"),
        (json!({"attach-name": "big.md", "attach-bytes": 1 << 20}), "at most 1048576 bytes"),
    ];
    for (config, expected) in refusals {
        let sandbox = Sandbox::new();
        let output = parent(&sandbox, config.clone(), &["--dry-run", "--allow", "kube:scale", "-o", "json"]);
        let report = report_of(&output);
        assert_eq!(report["error"]["code"], "invalid", "{config}: {report}");
        assert!(report["error"]["message"].as_str().unwrap().contains(expected), "{config}: {report}");
        let refused = sandbox.journal_lines().into_iter().filter(|l| l["call"] == "report.attach" && l["outcome"] == "invalid").count();
        assert_eq!(refused, 1, "{config}");
    }
}

#[test]
fn review_shows_pattern_slots() {
    let sandbox = Sandbox::new();
    let parent = fixture("compose-parent");
    let text = expect_exit(&runner(&sandbox, &["review", path(&parent)]), 0);
    assert!(text.contains("pattern slots"), "{text}");
    assert!(text.contains("child") && text.contains("-> compose-child"), "{text}");
    let json = json_of(&runner(&sandbox, &["review", path(&parent), "-o", "json"]));
    assert_eq!(json["patterns"]["child"]["default"], "compose-child", "{json}");
}
