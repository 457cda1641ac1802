//! `runner test [PATH]`: run every `*.test.yaml` case under PATH (the format
//! is described in [`crate::run::cases`]); one line per case and a summary.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use super::{CommandResult, Exit, Failure};
use crate::run::cases::{CaseRunner, Verdict, find_cases};

/// `runner test`'s arguments.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// A directory searched for `*.test.yaml` files, or one test file.
    #[arg(default_value = ".", value_name = "DIR|FILE")]
    path: PathBuf,
}

/// Run every case, print one line each and a summary; exit 1 if one failed, 2 if a file is invalid.
pub fn run(args: TestArgs, cache_dir: Option<PathBuf>) -> CommandResult {
    let files = find_cases(&args.path).map_err(Failure::bad_input)?;
    if files.is_empty() {
        return Err(Failure::bad_input(format!("{}: no *.test.yaml files", args.path.display())));
    }
    let cases = CaseRunner::new(cache_dir)?;
    let root = if args.path.is_dir() { args.path.clone() } else { args.path.parent().map(Path::to_path_buf).unwrap_or_default() };
    let (mut passed, mut failed, mut bad) = (0, 0, 0);
    for file in &files {
        let started = Instant::now();
        let (given_name, verdict) = cases.run(file);
        let name = given_name.unwrap_or_else(|| {
            file.strip_prefix(&root).unwrap_or(file).display().to_string().trim_end_matches(".test.yaml").trim_end_matches(".test.yml").to_string()
        });
        match verdict {
            Verdict::Passed => {
                passed += 1;
                println!("ok   {name} ({} ms)", started.elapsed().as_millis());
            }
            Verdict::Failed(why) => {
                failed += 1;
                println!("FAIL {name}: {why}");
            }
            Verdict::Bad(why) => {
                bad += 1;
                println!("BAD  {name}: {}: {why}", file.display());
            }
        }
    }
    let bad_note = if bad > 0 { format!(", {bad} bad test file(s)") } else { String::new() };
    println!("{passed} passed, {} failed{bad_note}", failed + bad);
    Ok(if bad > 0 {
        Exit::BadInput
    } else if failed > 0 {
        Exit::PolicyFailed
    } else {
        Exit::Success
    })
}
