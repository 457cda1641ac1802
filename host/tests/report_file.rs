//! `runner exec --report FILE.html|FILE.md`: the document a change ticket
//! gets, rendered in real headless Chromium (Debian's `chromium`, which
//! `scripts/setup` installs; without it these tests fail, they never skip).
//! A gate reporting markup checks the escaping; a Ferris wheel on the lab
//! (subnet 232) with a write probe checks the header, steps, gates,
//! changes and the probe's plot.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::lab::Lab;
use common::*;
use serde_json::Value;

/// Text a hostile component reports as its step's name and detail and as its reason.
const MARKUP: &str = r#"<img src=x onerror=alert(1)><script>document.title="pwned"</script></td></tr></table><b id="injected">|*x*"#;

/// The browser: Debian's `chromium`; its absence is a failure, with how to install it.
fn chromium() -> Command {
    let binary = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|name| Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success()))
        .unwrap_or_else(|| panic!("chromium is not installed: `apt-get install -y chromium` (scripts/setup does)"));
    let mut command = Command::new(binary);
    command.args(["--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--no-first-run", "--disable-extensions"]);
    command
}

fn url(file: &Path) -> String {
    format!("file://{}", file.canonicalize().unwrap().display())
}

/// The DOM Chromium built from `file` (scripts would have run by then, had the file any).
fn dump_dom(file: &Path) -> String {
    let output = chromium().arg("--dump-dom").arg(url(file)).output().unwrap();
    assert!(output.status.success(), "chromium --dump-dom failed: {}", stderr(&output));
    let dom = stdout(&output);
    assert!(dom.contains("</html>"), "not a DOM:\n{dom}\n{}", stderr(&output));
    dom
}

/// A screenshot of `file`: a PNG, not empty.
fn screenshot(file: &Path, png: &Path) {
    let output = chromium().arg(format!("--screenshot={}", png.display())).arg("--window-size=1200,2400").arg(url(file)).output().unwrap();
    assert!(output.status.success(), "chromium --screenshot failed: {}", stderr(&output));
    let bytes = std::fs::read(png).unwrap_or_else(|e| panic!("no screenshot {}: {e}\n{}", png.display(), stderr(&output)));
    assert!(bytes.len() > 10_000 && bytes.starts_with(b"\x89PNG"), "an empty or broken screenshot: {} bytes", bytes.len());
}

/// The `<tr>` elements of the table with this id.
fn rows<'a>(dom: &'a str, table: &str) -> Vec<&'a str> {
    let start = dom.find(&format!("<table id=\"{table}\">")).unwrap_or_else(|| panic!("no table {table} in\n{dom}"));
    let body = &dom[start..start + dom[start..].find("</table>").unwrap()];
    body.split("<tr").skip(1).collect()
}

/// The header row's value.
fn header<'a>(dom: &'a str, id: &str) -> &'a str {
    let row = rows(dom, "header").into_iter().find(|r| r.starts_with(&format!(" id=\"h-{id}\""))).unwrap_or_else(|| panic!("no header row {id}"));
    let value = &row[row.find("<td>").unwrap() + 4..];
    &value[..value.find("</td>").unwrap()]
}

#[test]
fn a_gate_report_holds_the_header_and_steps_and_escapes_what_the_component_said() {
    let sandbox = Sandbox::new();
    let html = sandbox.dir.path().join("run.html");
    let gate = fixture("hostile-gate");
    let text = format!("text={MARKUP}");
    let output = sandbox.runner(&["exec", path(&gate), "--config", "mode=markup", "--config", &text, "--report", path(&html), "-o", "json"]);
    let report = json_of(&output);
    expect_exit(&output, 1);

    let dom = dump_dom(&html);
    // Nothing the component said became markup: no script, no image, no element of its own, the title untouched.
    assert!(!dom.contains("<script") && !dom.contains("<img") && !dom.contains("<b id="), "markup got through:\n{dom}");
    assert!(dom.contains("<title>runner report: hostile-gate 0.1.0: fail (exit 1)</title>"), "{dom}");
    let escaped = "&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;document.title=\"pwned\"&lt;/script&gt;&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;b id=\"injected\"&gt;|*x*";
    assert!(dom.contains(escaped), "the text is shown as text:\n{dom}");

    assert_eq!(header(&dom, "policy"), "hostile-gate");
    assert_eq!(header(&dom, "version"), "0.1.0");
    assert_eq!(header(&dom, "digest"), report["policy"]["digest"].as_str().unwrap());
    assert_eq!(header(&dom, "exit-code"), "1");
    assert_eq!(header(&dom, "outcome"), "fail");
    assert_eq!(header(&dom, "target"), "lab");
    assert_eq!(header(&dom, "allowances"), "none (reads only)");
    assert_eq!(header(&dom, "journal"), path(&sandbox.journal()));
    let operator = std::env::var("USER").ok().filter(|u| !u.is_empty());
    if let Some(user) = operator {
        assert!(header(&dom, "operator").starts_with(&user), "{}", header(&dom, "operator"));
    }
    assert!(!header(&dom, "operator").is_empty());
    for when in ["started-utc", "ended-utc"] {
        let value = header(&dom, when);
        assert!(value.len() == 24 && value.ends_with('Z') && value.as_bytes()[10] == b'T', "{when}: {value}");
    }
    assert!(header(&dom, "config").contains("\"mode\":\"markup\""), "{}", header(&dom, "config"));

    let steps = rows(&dom, "steps");
    assert_eq!(steps.len(), 2, "a heading and the one step: {steps:?}");
    assert!(steps[1].contains("class=\"step bad\"") && steps[1].contains(escaped) && steps[1].contains(">failed<"), "{}", steps[1]);
    let gates = rows(&dom, "gates");
    assert!(gates[1].contains(">hostile-gate<") && gates[1].contains(">fail<") && gates[1].contains(escaped), "{gates:?}");
    assert!(dom.contains("<svg id=\"steps-timeline\""), "{dom}");
    assert!(dom.contains("nothing was changed: no mutation is journaled"), "{dom}");
    screenshot(&html, &sandbox.dir.path().join("run.png"));

    // Markdown: the same escaping, one line per table row.
    let md = sandbox.dir.path().join("run.md");
    expect_exit(&sandbox.runner(&["exec", path(&gate), "--config", "mode=markup", "--config", &text, "--report", path(&md)]), 1);
    let markdown = std::fs::read_to_string(&md).unwrap();
    assert!(!markdown.contains("<script") && !markdown.contains("<img") && !markdown.contains("<b "), "{markdown}");
    assert!(markdown.contains("| Policy | hostile-gate |"), "{markdown}");
    assert!(markdown.contains("&lt;script&gt;") && markdown.contains("\\|\\*x\\*"), "{markdown}");
    assert!(markdown.contains("<svg id=\"steps-timeline\""), "{markdown}");
}

#[test]
fn a_report_path_is_checked_before_anything_runs() {
    let sandbox = Sandbox::new();
    let gate = fixture("hostile-gate");
    let text = expect_exit(&sandbox.runner(&["exec", path(&gate), "--report", path(&sandbox.dir.path().join("run.pdf"))]), 2);
    assert!(text.contains("unknown report format: name a .html or a .md file"), "{text}");
    let unwritable = sandbox.dir.path().join("no-such-dir/run.html");
    let text = expect_exit(&sandbox.runner(&["exec", path(&gate), "--config", "mode=markup", "--report", path(&unwritable)]), 2);
    assert!(text.contains("cannot write the report") && text.contains("nothing was run"), "{text}");
    assert!(sandbox.journal_with_intents().is_empty(), "the policy ran: {:?}", sandbox.journal_with_intents());
    // A run that never starts leaves no empty report behind.
    let html = sandbox.dir.path().join("never.html");
    expect_exit(&sandbox.runner(&["exec", path(&gate), "--config", "no-such-key=1", "--report", path(&html)]), 2);
    assert!(!html.exists(), "an empty report was left behind");
}

#[test]
fn a_ferris_wheel_with_a_write_probe_reports_steps_gates_changes_and_the_probe_plot() {
    let lab = Lab::up(&["--postgres", "--subnet", "232"]);
    // The preflight gate wants a completed backup.
    assert!(lab.runner(&["lab", "--dir", path(lab.dir.path()), "backup"]).status.success());
    let html: PathBuf = lab.dir.path().join("wheel.html");
    let journal = lab.dir.path().join("wheel.jsonl");
    let output = lab.runner(&[
        "exec",
        "postgres-ferris-wheel",
        "--allow",
        "kube:*",
        "--allow",
        "postgres:*",
        "--approve",
        "--write-probe",
        "postgres-cluster",
        "--journal",
        path(&journal),
        "--report",
        path(&html),
        "-o",
        "json",
    ]);
    let report = json_of(&output);
    expect_exit(&output, 0);
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    // The JSON report gained the timeline, additively.
    let buckets = report["probe"]["timeline"]["buckets"].as_array().unwrap();
    assert!(buckets.len() > 10 && report["probe"]["timeline"]["bucket_ms"].as_u64().unwrap() >= 100, "{:#}", report["probe"]);
    let acknowledged: u64 = buckets.iter().map(|b| b["acknowledged"].as_u64().unwrap()).sum();
    assert_eq!(acknowledged, report["probe"]["acknowledged_writes"].as_u64().unwrap());

    let dom = dump_dom(&html);
    assert!(!dom.contains("<script"), "{dom}");
    assert_eq!(header(&dom, "policy"), "postgres-ferris-wheel");
    assert_eq!(header(&dom, "digest"), report["policy"]["digest"].as_str().unwrap());
    assert_eq!(header(&dom, "target"), "lab");
    assert_eq!(header(&dom, "exit-code"), "0");
    assert_eq!(header(&dom, "outcome"), "succeeded");
    assert_eq!(header(&dom, "allowances"), "kube:*, postgres:*");
    assert_eq!(header(&dom, "journal"), path(&journal));
    assert!(!header(&dom, "kube-context").starts_with("none known"), "the lab's kubeconfig names its context");

    let json_steps = report["steps"].as_array().unwrap();
    let steps = rows(&dom, "steps");
    assert_eq!(steps.len(), json_steps.len() + 1, "one row per step: {steps:?}");
    for (row, step) in steps[1..].iter().zip(json_steps) {
        assert!(row.contains(&format!(">{}<", step["name"].as_str().unwrap())) && row.contains(">succeeded<"), "{row}");
    }
    assert!(dom.matches("<g class=\"bar\">").count() == json_steps.len(), "one bar per step on the timeline");
    let gates = rows(&dom, "gates");
    assert!(gates.len() > 1 && gates[1..].iter().all(|g| g.contains(">pass<") || g.contains(">warn<")), "{gates:?}");

    // The plot: plotters' SVG, lines drawn, the longest gap labelled.
    let plot = &dom[dom.find("<svg id=\"probe-svg\"").expect("no probe plot")..];
    let plot = &plot[..plot.find("</svg>").unwrap()];
    assert!(plot.contains("<polyline"), "{plot}");
    assert!(plot.contains("seconds into the run") && plot.contains("the longest gap, "), "{plot}");

    // Every mutation the journal holds, one line each, in the plan's words.
    let mutations = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["outcome"] != "started" && e["call"].as_str().is_some_and(|c| c.starts_with("kube-write.") || c.starts_with("postgres-write.")))
        .count();
    assert!(mutations > 0);
    assert_eq!(dom.matches("<li class=\"change\">").count(), mutations, "{dom}");
    assert!(dom.contains("scale StatefulSet postgres-cluster to 4"), "{dom}");
    screenshot(&html, &lab.dir.path().join("wheel.png"));
}
