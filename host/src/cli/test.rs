//! `runner test [PATH]`: run every `*.test.yaml` case under PATH (the format
//! is described in [`crate::run::cases`]); one line per case and a summary.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use serde_json::json;

use super::{CommandResult, Exit, Failure};
use crate::run::cases::{CaseRunner, Verdict, find_cases};

/// `runner test`'s arguments.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// A directory searched for `*.test.yaml` files, or one test file.
    #[arg(default_value = ".", value_name = "DIR|FILE")]
    path: PathBuf,
    /// How results are printed: a line per case, one JSON document, or JUnit XML for CI.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: TestOutput,
}

/// `runner test --output`. Crate-private: a doc comment on a variant would become its help text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
enum TestOutput {
    #[default]
    Text,
    Json,
    Junit,
}

/// One case as it ended.
struct Outcome {
    name: String,
    file: PathBuf,
    verdict: Verdict,
    took: Duration,
}

/// Run every case, print one line each and a summary; exit 1 if one failed, 2 if a file is invalid.
pub fn run(args: TestArgs, cache_dir: Option<PathBuf>) -> CommandResult {
    let files = find_cases(&args.path).map_err(Failure::bad_input)?;
    if files.is_empty() {
        return Err(Failure::bad_input(format!("{}: no *.test.yaml files", args.path.display())));
    }
    let cases = CaseRunner::new(cache_dir)?;
    let root = if args.path.is_dir() { args.path.clone() } else { args.path.parent().map(Path::to_path_buf).unwrap_or_default() };
    let mut outcomes = Vec::new();
    for file in &files {
        let started = Instant::now();
        let (given_name, verdict) = cases.run(file);
        let name = given_name.unwrap_or_else(|| {
            file.strip_prefix(&root).unwrap_or(file).display().to_string().trim_end_matches(".test.yaml").trim_end_matches(".test.yml").to_string()
        });
        let outcome = Outcome { name, file: file.clone(), verdict, took: started.elapsed() };
        if args.output == TestOutput::Text {
            println!("{}", line(&outcome));
        }
        outcomes.push(outcome);
    }
    let count = |wanted: fn(&Verdict) -> bool| outcomes.iter().filter(|o| wanted(&o.verdict)).count();
    let (passed, failed, bad) = (count(|v| matches!(v, Verdict::Passed)), count(|v| matches!(v, Verdict::Failed(_))), count(|v| matches!(v, Verdict::Bad(_))));
    match args.output {
        TestOutput::Text => {
            let bad_note = if bad > 0 { format!(", {bad} bad test file(s)") } else { String::new() };
            println!("{passed} passed, {} failed{bad_note}", failed + bad);
        }
        TestOutput::Json => {
            let cases: Vec<_> = outcomes
                .iter()
                .map(|o| {
                    let (result, why) = match &o.verdict {
                        Verdict::Passed => ("passed", None),
                        Verdict::Failed(why) => ("failed", Some(why)),
                        Verdict::Bad(why) => ("bad", Some(why)),
                    };
                    json!({"name": o.name, "file": o.file, "result": result, "why": why, "ms": o.took.as_millis() as u64})
                })
                .collect();
            println!("{:#}", json!({"passed": passed, "failed": failed, "bad": bad, "cases": cases}));
        }
        TestOutput::Junit => println!("{}", junit(&args.path, &outcomes)?),
    }
    Ok(if bad > 0 {
        Exit::BadInput
    } else if failed > 0 {
        Exit::PolicyFailed
    } else {
        Exit::Success
    })
}

/// The text line for one case.
fn line(outcome: &Outcome) -> String {
    let Outcome { name, file, verdict, took } = outcome;
    match verdict {
        Verdict::Passed => format!("ok   {name} ({} ms)", took.as_millis()),
        Verdict::Failed(why) => format!("FAIL {name}: {why}"),
        Verdict::Bad(why) => format!("BAD  {name}: {}: {why}", file.display()),
    }
}

/// JUnit XML: one suite for the tested path; a failed case is a `failure`,
/// a bad test file an `error` (as CI systems tell the two apart).
fn junit(path: &Path, outcomes: &[Outcome]) -> Result<String, Failure> {
    let mut suite = TestSuite::new(path.display().to_string());
    for outcome in outcomes {
        let status = match &outcome.verdict {
            Verdict::Passed => TestCaseStatus::success(),
            Verdict::Failed(why) | Verdict::Bad(why) => {
                let kind = if matches!(outcome.verdict, Verdict::Bad(_)) { NonSuccessKind::Error } else { NonSuccessKind::Failure };
                let mut status = TestCaseStatus::non_success(kind);
                status.set_message(why.clone());
                status
            }
        };
        let mut case = TestCase::new(outcome.name.clone(), status);
        case.set_time(outcome.took).set_classname(outcome.file.display().to_string());
        suite.add_test_case(case);
    }
    let mut report = Report::new("runner test");
    report.add_test_suite(suite);
    report.to_string().map_err(|e| Failure::new(Exit::PolicyFailed, format!("cannot write the JUnit report: {e}")))
}
