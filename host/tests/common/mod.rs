//! Shared helpers for the command-line tests: the built components, a
//! sandboxed cache and journal per test, and a runner invocation.
#![allow(dead_code)]

pub mod interrupt;
pub mod lab;
pub mod redis_cluster;
pub mod registry;
pub mod verdict;
pub mod webapp;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::JoinHandle;

/// A runner started in the background whose stdout and stderr are read as
/// it writes them: a pipe nobody reads fills up (64 KiB) and stops a
/// chatty run, which a test polling `try_wait` would take for a hang.
pub struct Background {
    child: Child,
    stdout: JoinHandle<Vec<u8>>,
    stderr: JoinHandle<Vec<u8>>,
}

impl Background {
    /// Start `command` with both outputs piped and drained.
    pub fn spawn(mut command: Command) -> Background {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("runner starts");
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        };
        let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
        let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
        Background { child, stdout, stderr }
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("runner status")
    }

    /// Wait for it to end; what it printed and its status.
    pub fn wait_with_output(mut self) -> Output {
        let status = self.child.wait().expect("runner ends");
        Output { status, stdout: self.stdout.join().unwrap_or_default(), stderr: self.stderr.join().unwrap_or_default() }
    }
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A built test component (`hostile-gate`), or a panic saying how to build it.
pub fn fixture(name: &str) -> PathBuf {
    built(&repo().join("tests/fixtures/dist").join(format!("{name}.wasm")))
}

/// A built bundled policy.
pub fn bundled(name: &str) -> PathBuf {
    built(&repo().join("policies/dist").join(format!("{name}.wasm")))
}

fn built(path: &Path) -> PathBuf {
    assert!(path.is_file(), "{} is missing: run scripts/build-policies first (scripts/test does)", path.display());
    path.to_path_buf()
}

/// One test's private cache and journal.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox { dir: tempfile::tempdir().unwrap() }
    }

    pub fn journal(&self) -> PathBuf {
        self.dir.path().join("journal.jsonl")
    }

    /// The journal's outcome lines: each call once, as it ended (a
    /// mutation's `started` line, written before it, is left out).
    pub fn journal_lines(&self) -> Vec<serde_json::Value> {
        self.journal_with_intents().into_iter().filter(|l| l["outcome"] != "started").collect()
    }

    /// Every journal line of a call, `started` lines included (the run's header left out).
    pub fn journal_with_intents(&self) -> Vec<serde_json::Value> {
        self.journal_all().into_iter().filter(|l| l.get("header").is_none()).collect()
    }

    /// The journal's header lines: one per run that appended to it.
    pub fn journal_headers(&self) -> Vec<serde_json::Value> {
        self.journal_all().into_iter().filter_map(|l| l.get("header").cloned()).collect()
    }

    fn journal_all(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.journal()).unwrap_or_default().lines().map(|l| serde_json::from_str(l).expect("journal line is JSON")).collect()
    }

    /// `runner ARGS` with this sandbox's cache; `exec` also gets its journal.
    /// The lab is moved to an empty directory of the sandbox, so `--target
    /// lab` finds none and every Kubernetes call answers `unavailable` (exit 4),
    /// whatever lab a developer has running.
    pub fn runner(&self, args: &[&str]) -> Output {
        self.runner_env(args, &[])
    }

    /// [`Sandbox::runner`] with these environment variables set (and
    /// COSIGN_PASSWORD only when given: a developer's own never leaks in).
    pub fn runner_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let no_lab = self.dir.path().join("no-lab");
        std::fs::create_dir_all(&no_lab).unwrap();
        let mut command = assert_cmd::Command::cargo_bin("runner").unwrap();
        command
            .env("RUNNER_CACHE_DIR", self.dir.path().join("cache"))
            .env("RUNNER_LAB_DIR", &no_lab)
            .env_remove("RUNNER_LOG")
            .env_remove("COSIGN_PASSWORD")
            .env("RUNNER_POLICY_PATH", repo().join("policies/dist"));
        command.envs(env.iter().copied()).args(args);
        if args.first() == Some(&"exec") {
            command.arg("--journal").arg(self.journal());
        }
        // A hang guard, not a timing: `runner test policies` compiles every
        // bundled component into an empty cache, minutes on a loaded 2-core machine.
        command.timeout(std::time::Duration::from_secs(600));
        command.output().unwrap()
    }
}

/// The JSON a command printed on stdout; panics with its output otherwise.
pub fn json_of(output: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(output)).unwrap_or_else(|e| panic!("not a JSON report ({e}):\n{}{}", stdout(output), stderr(output)))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Assert the exit code and return stdout+stderr for further checks.
#[track_caller]
pub fn expect_exit(output: &Output, code: i32) -> String {
    let text = format!("{}{}", stdout(output), stderr(output));
    assert_eq!(output.status.code(), Some(code), "expected exit {code}, got {:?}\n{text}", output.status.code());
    text
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}
