//! The journal: every host call of a run, one JSON line each, appended as it
//! happens, with secrets redacted from the arguments.
//!
//! A line looks like
//! `{"ts":"2026-11-21T20:01:02.345Z","run":"...","component":"pods-ready","call":"kube-read.list","args":{...},"outcome":"ok","ms":1.2}`.
//! `outcome` is `ok`, `planned` (a mutation under `--dry-run`), `denied`, or
//! an error code (`not-found`, `unavailable`, ...) with `error` holding the
//! message. A mutation gets a `started` line, written and synced to disk
//! before the call reaches its backend, then its outcome: a journal that
//! ends on `started` names the change whose outcome is unknown.

pub(crate) mod redact;

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

pub use redact::redact;

/// One host call, as recorded.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// The component that made the call.
    pub component: &'a str,
    /// The pattern slot path it runs at, when a pattern ran it through a
    /// slot (`postgres`, `pools/postgres`); absent for the run's own component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<&'a str>,
    /// The fleet member the call reached, when a pattern ran the component on one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<&'a str>,
    /// `interface.function`, e.g. `kube-write.patch`.
    pub call: &'a str,
    /// The arguments, already redacted.
    pub args: Value,
    /// `started`, `ok`, `planned`, `denied`, `invalid` or an error code.
    pub outcome: &'a str,
    /// The error message, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    /// What a mutation answered, when its answer is what undoing it needs
    /// (a traffic switch's weights before and after); already redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<Value>,
    /// How long the call took.
    #[serde(skip)]
    pub duration: Duration,
}

#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    run: &'a str,
    #[serde(flatten)]
    entry: &'a Entry<'a>,
    ms: f64,
}

/// An append-only journal file shared by every component of one run.
#[derive(Debug)]
pub struct Journal {
    run_id: String,
    path: Option<PathBuf>,
    out: Option<Mutex<Writer>>,
    limit: Limit,
}

/// How much one run may journal: a component calling `clock.now` in a loop
/// must not fill the disk (10 M calls wrote 1.64 GB in 23 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Bytes of journal lines.
    pub bytes: u64,
    /// Lines (calls).
    pub lines: u64,
}

impl Default for Limit {
    fn default() -> Self {
        Limit { bytes: 256 << 20, lines: 1_000_000 }
    }
}

#[derive(Debug)]
struct Writer {
    file: BufWriter<File>,
    bytes: u64,
    lines: u64,
}

impl Journal {
    /// Append to `path`, creating it and its directory if needed.
    pub fn open(path: &Path, run_id: String) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let writer = Writer { file: BufWriter::new(file), bytes: 0, lines: 0 };
        Ok(Journal { run_id, path: Some(path.to_path_buf()), out: Some(Mutex::new(writer)), limit: Limit::default() })
    }

    /// The same journal with another bound on what the run may write.
    pub fn with_limit(mut self, limit: Limit) -> Self {
        self.limit = limit;
        self
    }

    /// A journal that records nothing (benchmarks only).
    pub fn disabled() -> Self {
        Journal { run_id: String::new(), path: None, out: None, limit: Limit::default() }
    }

    /// The default file for a new run: `<state dir>/runner/journal/<run id>.jsonl`.
    pub fn default_path(run_id: &str) -> PathBuf {
        dirs::state_dir().or_else(dirs::data_local_dir).unwrap_or_else(std::env::temp_dir).join("runner/journal").join(format!("{run_id}.jsonl"))
    }

    /// Whether entries are recorded at all.
    pub fn is_enabled(&self) -> bool {
        self.out.is_some()
    }

    /// The file being written, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The file's path for messages (empty for a disabled journal).
    pub fn shown_path(&self) -> String {
        self.path.as_deref().map(|p| p.display().to_string()).unwrap_or_default()
    }

    /// The run this journal belongs to.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Append one entry. With `sync` the line (and every line before it) is
    /// written and synced to disk before this returns: the record of a
    /// change must exist before the change does.
    pub fn record(&self, entry: &Entry<'_>, sync: bool) -> std::io::Result<()> {
        let Some(out) = &self.out else { return Ok(()) };
        let line = Line { ts: timestamp(), run: &self.run_id, entry, ms: entry.duration.as_secs_f64() * 1000.0 };
        let mut out = out.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut text = serde_json::to_vec(&line)?;
        text.push(b'\n');
        if out.lines >= self.limit.lines || out.bytes + text.len() as u64 > self.limit.bytes {
            return Err(std::io::Error::other(format!(
                "the journal limit is reached ({} lines, {} bytes of at most {} lines, {} bytes; --journal-limit raises it)",
                out.lines, out.bytes, self.limit.lines, self.limit.bytes
            )));
        }
        out.file.write_all(&text)?;
        out.lines += 1;
        out.bytes += text.len() as u64;
        if sync {
            out.file.flush()?;
            sync_data(out.file.get_ref())?;
        }
        Ok(())
    }

    /// Write the run's header (who ran what, where, allowed to do what) as
    /// a line of its own, `{"ts", "run", "header"}`. It is buffered, not
    /// synced: the first synced line (a mutation's `started`) or the run's
    /// final flush carries it to disk, so a read-only run pays no extra
    /// fsync. It does not count against the journal's limit.
    pub fn header(&self, header: &Value) -> std::io::Result<()> {
        let Some(out) = &self.out else { return Ok(()) };
        let mut out = out.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut text = serde_json::to_vec(&serde_json::json!({"ts": timestamp(), "run": self.run_id, "header": header}))?;
        text.push(b'\n');
        out.file.write_all(&text)
    }

    /// Hand everything buffered to the operating system without syncing it:
    /// a runner killed after this leaves these lines in the file (a step's
    /// end, so a re-run and its reader know where the run stopped).
    pub fn write_out(&self) -> std::io::Result<()> {
        match &self.out {
            Some(out) => out.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).file.flush(),
            None => Ok(()),
        }
    }

    /// Write out and sync everything buffered; an error means lines were lost.
    pub fn flush(&self) -> std::io::Result<()> {
        match &self.out {
            Some(out) => {
                let mut out = out.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                out.file.flush()?;
                sync_data(out.file.get_ref())
            }
            None => Ok(()),
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!("the journal {} lost its last lines: {e}", self.shown_path());
        }
    }
}

/// `fsync` the data of `file`; a file that cannot be synced at all (a pipe,
/// `/dev/null`) has nothing more to make durable.
fn sync_data(file: &File) -> std::io::Result<()> {
    match file.sync_data() {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EROFS) | Some(libc::ENOTSUP)) => Ok(()),
        other => other,
    }
}

/// RFC 3339 UTC time with milliseconds.
pub fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z")).unwrap_or_default()
}

/// A run identifier that sorts by time: `20261121T200102Z-<pid>`.
pub fn new_run_id(name: &str) -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now.format(&time::macros::format_description!("[year][month][day]T[hour][minute][second]Z")).unwrap_or_default();
    format!("{stamp}-{name}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_one_json_line_per_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/run.jsonl");
        let journal = Journal::open(&path, "run-1".into()).unwrap();
        for outcome in ["ok", "denied"] {
            let entry = Entry {
                component: "pods-ready",
                slot: None,
                member: None,
                call: "kube-read.list",
                args: serde_json::json!({"kind": "Pod"}),
                outcome,
                error: None,
                answer: None,
                duration: Duration::from_micros(1500),
            };
            journal.record(&entry, false).unwrap();
        }
        drop(journal);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["outcome"], "denied");
        assert_eq!(lines[0]["run"], "run-1");
        assert_eq!(lines[0]["call"], "kube-read.list");
        assert_eq!(lines[0]["ms"], 1.5);
        assert!(lines[0]["ts"].as_str().unwrap().ends_with('Z'));
    }
}
