//! `runner bench`'s fleet figures: seed 001's staged rollout over N fleet
//! members answered from canned responses (a virtual clock, no cluster),
//! each member's work a real sandboxed sub-run of `aks-upgrade`; then a
//! resume of that run from its run log, cut at the (N/2)-th finished member
//! as if the runner had been killed there.
//!
//! It runs in a process of its own (`runner bench --fleet-only`, started by
//! `runner bench`), so its peak resident set is the fleet's alone and the
//! run directories can be pointed at a scratch folder before any thread starts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Figures, failure, ms};
use crate::engine::{Engine, Limits};
use crate::imports::Approval;
use crate::run::{Exit, Failure, RunBuilder, RunReport, runtime};
use crate::runs::RunDir;
use crate::session::{CANNED_EPOCH_MS, CannedResponse, Session};
use crate::target::{Fleet, MAX_MEMBERS, Member, Target};

/// The stages of the rollout: seed 001's dev, test and prod, with their soaks.
const STAGES: &str = "dev@30m;test@60m;prod";

/// The pattern each member's sub-run is (the `member` slot's default).
const MEMBER_PATTERN: &str = "aks-upgrade";

/// The version the fleet is rolled out to.
const VERSION: &str = "1.30.5";

/// Members of the warm-up run (one per stage) that compiles every component into the cache.
const WARM_UP_MEMBERS: usize = 3;

/// Why `members` cannot be benchmarked, if it cannot: 0 skips the fleet
/// figures; otherwise every stage needs a member and a fleet has at most
/// [`MAX_MEMBERS`].
pub(super) fn check_members(members: usize) -> Result<(), Failure> {
    if members == 0 || (WARM_UP_MEMBERS..=MAX_MEMBERS).contains(&members) {
        return Ok(());
    }
    Err(Failure::bad_input(format!(
        "--fleet-members {members}: 0 (no fleet figures) or {WARM_UP_MEMBERS} to {MAX_MEMBERS} (one member at least in each of dev, test and prod)"
    )))
}

/// How many members of `n` are in each group: dev 1%, test 9% (each at least one), prod the rest.
fn group_sizes(n: usize) -> (usize, usize, usize) {
    let dev = (n / 100).max(1);
    let test = (n * 9 / 100).max(1);
    (dev, test, n.saturating_sub(dev + test))
}

/// A fleet of `n` members in groups dev, test and prod, none reachable
/// (every member's calls are answered by the canned session).
fn fleet(n: usize, path: &Path) -> Result<Fleet, Failure> {
    let target = Target::parse("", path).map_err(failure)?;
    let (dev, test, _) = group_sizes(n);
    let members = (0..n)
        .map(|i| {
            let group = if i < dev {
                "dev"
            } else if i < dev + test {
                "test"
            } else {
                "prod"
            };
            Member { name: format!("{group}-{i:05}"), group: group.into(), labels: BTreeMap::new(), target: target.clone() }
        })
        .collect();
    Ok(Fleet { path: path.to_path_buf(), members, traffic: Vec::new() })
}

/// The rollout's configuration: prod needs the operator's approval.
fn config() -> serde_json::Map<String, Value> {
    serde_json::Map::from_iter([
        ("kubernetes-version".to_string(), json!(VERSION)),
        ("stages".to_string(), json!(STAGES)),
        ("approve-before".to_string(), json!("prod")),
    ])
}

/// The canned answers, the same for every member (none names a `member`).
/// The rollout's gates say every member is behind and ready; its approval
/// of prod is a yes. Each member's `aks-upgrade` finds its control plane at
/// 1.29.9 and its one pool already at the version, no database, a passing
/// readiness gate, and an upgrade of the control plane that succeeds at
/// once: discover, readiness, the control plane's upgrade, the pool
/// skipped. The `fleet.run-group` calls are not canned: they run the
/// member pattern on every member.
fn responses() -> Result<Vec<CannedResponse>, Failure> {
    let behind = json!({"outcome": "fail", "reasons": ["control plane runs 1.29.9, not 1.30.5"], "evidence": "{}"});
    let pass = json!({"outcome": "pass", "reasons": ["canned"], "evidence": "{}"});
    let plane = json!({
        "managedCluster": {"name": "aks", "location": "eastus", "properties": {"provisioningState": "Succeeded", "kubernetesVersion": "1.29.9", "currentKubernetesVersion": "1.29.9"}},
        "upgradeProfile": {"name": "default", "properties": {"controlPlaneProfile": {"kubernetesVersion": "1.29.9", "upgrades": [{"kubernetesVersion": VERSION}]}, "agentPoolProfiles": []}},
    });
    let pools = json!({"value": [{"name": "nodepool1", "properties": {
        "mode": "System", "count": 3, "orchestratorVersion": VERSION, "currentOrchestratorVersion": VERSION,
        "nodeImageVersion": "AKSUbuntu-2204gen2containerd-202411.12.0", "provisioningState": "Succeeded", "upgradeSettings": {},
    }}]});
    let operation = json!({
        "id": "/subscriptions/6b1a9f6e-5c1d-4a8e-9a51-0c8f2b7d9e10/providers/Microsoft.ContainerService/locations/eastus/operations/5b1c3f0e",
        "name": "5b1c3f0e", "status": "Succeeded", "startTime": "2026-01-01T00:00:06Z", "endTime": "2026-01-01T00:09:40Z", "percentComplete": 100,
    });
    let list = json!([
        {"call": "cluster-read.control-plane", "response": plane},
        {"call": "cluster-read.node-pools", "response": pools},
        {"call": "kube-read.list", "args": {"kind": "Node"}, "response": [{"metadata": {"name": "aks-nodepool1-0", "labels": {"agentpool": "nodepool1"}}}]},
        {"call": "gates.run", "args": {"slot": "readiness"}, "response": pass},
        {"call": "cluster-write.upgrade-control-plane", "args": {"version": VERSION}, "response": operation},
        {"call": "fleet.run-gate", "args": {"slot": "skip-check"}, "response": behind},
        {"call": "fleet.run-gate", "args": {"slot": "before-stage"}, "response": pass},
        {"call": "fleet.run-gate", "args": {"slot": "after-stage"}, "response": pass},
        {"call": "approval.request", "args": {"summary": "~start stage prod"}, "response": true},
    ]);
    let responses: Vec<CannedResponse> = serde_json::from_value(list).map_err(failure)?;
    responses.iter().try_for_each(CannedResponse::check).map_err(failure)?;
    Ok(responses)
}

/// Where one run writes.
struct Place<'a> {
    engine: &'a Arc<Engine>,
    fleet_file: &'a Path,
    attachments: &'a Path,
    journal: Option<PathBuf>,
}

/// The rollout over `n` members, its session's clock starting at `clock_ms`.
fn rollout(place: &Place<'_>, n: usize, clock_ms: u64, resume: Option<String>) -> Result<RunBuilder, Failure> {
    let builder = RunBuilder::new("staged-rollout")
        .config_object(config())
        .session(Session::canned(responses()?, clock_ms))
        .fleet(fleet(n, place.fleet_file)?)
        .allow_requested()
        .approval(Approval::PreApproved)
        .offline("runner bench fleet")
        .attachments(place.attachments.to_path_buf())
        .engine(place.engine.clone());
    let builder = match &place.journal {
        Some(path) => builder.journal(path.clone()),
        None => builder.without_journal(),
    };
    Ok(match resume {
        Some(id) => builder.resume(id),
        None => builder,
    })
}

/// Run `builder` to its end: its report and its wall time, from before it
/// is assembled (the policy loaded, the artifacts read from the cache).
fn timed_run(rt: &tokio::runtime::Runtime, builder: RunBuilder) -> Result<(RunReport, Duration), Failure> {
    let start = Instant::now();
    let report = rt.block_on(async { builder.build().await?.execute().await })?;
    Ok((report, start.elapsed()))
}

/// The run must have succeeded, every one of its `n` members completed.
fn check_succeeded(report: &RunReport, what: &str, n: usize) -> Result<(), Failure> {
    let ending = &report.ending;
    let reasons = ending.reasons.join("; ");
    if ending.outcome != "succeeded" || ending.exit != Exit::Success {
        let error = ending.error.as_ref().map(|e| format!("; error: {}", e.message)).unwrap_or_default();
        let stopped = ending.stopped.as_ref().map(|s| format!("; stopped: {s}")).unwrap_or_default();
        return Err(failure(format!("fleet bench: {what} ended {} (exit {}), not succeeded: {reasons}{error}{stopped}", ending.outcome, ending.exit as u8)));
    }
    let completed = format!("{n} member(s) completed");
    if !reasons.contains(&completed) {
        return Err(failure(format!("fleet bench: {what} succeeded but not with {completed}: {reasons}")));
    }
    Ok(())
}

/// The process's peak resident set so far (`VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib(kib: Option<u64>) -> f64 {
    kib.unwrap_or(0) as f64 / 1024.0
}

/// A run log cut after its `k`-th finished member, as a kill there leaves it.
#[derive(Debug, Default, PartialEq)]
struct Cut {
    /// Bytes of the log kept.
    kept: usize,
    /// The members whose sub-run the kept part records as finished.
    finished: BTreeSet<String>,
    /// The component's calls the kept part records as done (what a resume replays).
    done: usize,
    /// The latest `clock.now` the kept part answered: the resumed session's clock starts there.
    clock_ms: Option<u64>,
    /// Lines kept.
    kept_lines: usize,
    /// Lines of the whole log, before the cut.
    lines: usize,
}

/// The member a run log line records as finished (`{"member", "during", "run"}`), if it is such a line.
fn finished_member(line: &Value) -> Option<&str> {
    line.get("during")?;
    line.get("member")?.as_str()
}

/// Where to cut `text` (a run log) right after the line recording its
/// `k`-th finished member; `None` when it records fewer.
fn cut_after_member(text: &str, k: usize) -> Option<Cut> {
    let mut cut = Cut { lines: text.lines().count(), ..Cut::default() };
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        offset += line.len();
        let Ok(value) = serde_json::from_str::<Value>(line) else { continue };
        if value.get("done").is_some() {
            cut.done += 1;
            if value["call"] == "clock.now" {
                cut.clock_ms = cut.clock_ms.max(value["response"].as_u64());
            }
        }
        if let Some(member) = finished_member(&value) {
            cut.finished.insert(member.to_string());
            if cut.finished.len() == k {
                cut.kept = offset;
                cut.kept_lines = text[..offset].lines().count();
                return Some(cut);
            }
        }
    }
    None
}

/// The members `text` (what a resumed run appended to its log) records as finished.
fn members_in(text: &str) -> Vec<String> {
    text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter_map(|v| finished_member(&v).map(str::to_string)).collect()
}

/// How the resume went.
struct Resumed {
    wall: Duration,
    /// Until the resumed run first appended to the run log: its replay ran out
    /// (the first member run again finished, or the call in flight ended).
    caught_up: Option<Duration>,
    from_log: usize,
    run_again: usize,
    replayed_calls: usize,
    log_kib: f64,
    kept_lines: usize,
    log_lines: usize,
}

/// Make run `id` look killed at its `(n/2)`-th finished member and resume it.
fn resume(rt: &tokio::runtime::Runtime, place: &Place<'_>, id: &str, n: usize) -> Result<Resumed, Failure> {
    let run_dir = RunDir::existing(&crate::runs::root(), id).map_err(failure)?;
    let log = run_dir.log_path();
    let text = std::fs::read_to_string(&log).map_err(|e| {
        failure(format!(
            "fleet bench: run {id} kept no run log ({}: {e}); the run builder keeps one only for a live session, so a canned run cannot be resumed",
            log.display()
        ))
    })?;
    let k = n / 2;
    let cut = cut_after_member(&text, k)
        .ok_or_else(|| failure(format!("fleet bench: the run log {} records {} finished member(s), not {k}", log.display(), members_in(&text).len())))?;
    std::fs::OpenOptions::new().write(true).open(&log).and_then(|f| f.set_len(cut.kept as u64)).map_err(failure)?;
    let mut state = run_dir.state().ok_or_else(|| failure(format!("fleet bench: run {id}: its run.json cannot be read")))?;
    // Killed: no process runs it (there is no pid 0 in /proc), and it never ended.
    (state.pid, state.state, state.ended) = (0, "running".into(), None);
    run_dir.set_state(&state).map_err(failure)?;
    if run_dir.alive() {
        return Err(failure(format!("fleet bench: run {id} still looks alive after it was marked killed")));
    }

    let builder = rollout(place, n, cut.clock_ms.unwrap_or(CANNED_EPOCH_MS), Some(id.to_string()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, log, kept) = (stop.clone(), log.clone(), cut.kept as u64);
        let start = Instant::now();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if std::fs::metadata(&log).is_ok_and(|m| m.len() > kept) {
                    return Some(start.elapsed());
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            None
        })
    };
    let resumed = timed_run(rt, builder);
    stop.store(true, Ordering::Relaxed);
    let caught_up = watcher.join().unwrap_or(None);
    let (report, wall) = resumed.map_err(|f| Failure { message: format!("fleet bench: cannot resume the rollout: {}", f.message), ..f })?;
    check_succeeded(&report, "the resumed rollout", n)?;

    let after = std::fs::read(&log).map_err(failure)?;
    let appended = String::from_utf8_lossy(after.get(cut.kept..).unwrap_or_default());
    let again = members_in(&appended);
    let twice: Vec<&String> = again.iter().filter(|m| cut.finished.contains(*m)).collect();
    if !twice.is_empty() {
        return Err(failure(format!(
            "fleet bench: the resumed run ran again {} member(s) that had finished before the kill ({}{})",
            twice.len(),
            twice.iter().take(5).map(|m| m.as_str()).collect::<Vec<_>>().join(", "),
            if twice.len() > 5 { ", ..." } else { "" }
        )));
    }
    if again.len() != n - k {
        return Err(failure(format!("fleet bench: the resumed run ran {} member(s) again, not the {} left after the kill", again.len(), n - k)));
    }
    Ok(Resumed {
        wall,
        caught_up,
        from_log: cut.finished.len(),
        run_again: again.len(),
        replayed_calls: cut.done,
        log_kib: text.len() as f64 / 1024.0,
        kept_lines: cut.kept_lines,
        log_lines: cut.lines,
    })
}

/// Point the symlink `link` at `dir` (created if need be).
fn point(link: &Path, dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(failure)?;
    match std::fs::remove_file(link) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failure(format!("{}: {e}", link.display()))),
        _ => {}
    }
    std::os::unix::fs::symlink(dir, link).map_err(|e| failure(format!("{}: {e}", link.display())))
}

/// Measure the fleet figures in this process and add them to `figures`.
///
/// Points `RUNNER_RUNS_DIR` at a scratch folder: call it before any other
/// thread starts (`runner bench --fleet-only` calls it first).
pub(super) fn measure(n: usize, figures: &mut Figures) -> Result<(), Failure> {
    check_members(n)?;
    if n == 0 {
        return Ok(());
    }
    let scratch = tempfile::tempdir().map_err(failure)?;
    // The run directories' root, a symlink: to a folder beside the journals,
    // then to one on tmpfs for the run that shows what the disk costs.
    let runs = scratch.path().join("runs");
    point(&runs, &scratch.path().join("runs-here"))?;
    // SAFETY: `runner bench --fleet-only` calls this first thing on its main
    // thread, before the runtime or any other thread exists: nothing reads
    // the environment concurrently.
    unsafe { std::env::set_var("RUNNER_RUNS_DIR", &runs) };
    let engine = Arc::new(Engine::new(Limits::default(), Some(scratch.path().join("cache"))).map_err(failure)?);
    let rt = runtime()?;
    let attachments = scratch.path().join("attachments");
    let place = |journal: Option<PathBuf>| Place { engine: &engine, fleet_file: Path::new("bench-fleet.yaml"), attachments: &attachments, journal };
    let journal = |name: &str| Some(scratch.path().join("journal").join(name));
    let shown_tmp = std::env::temp_dir().display().to_string();

    let (warm_up, warm_up_wall) = timed_run(&rt, rollout(&place(None), WARM_UP_MEMBERS, CANNED_EPOCH_MS, None)?)?;
    check_succeeded(&warm_up, "the warm-up rollout", WARM_UP_MEMBERS)?;
    figures.add(
        "fleet_warm_up_ms",
        ms(warm_up_wall).into(),
        format!(
            "fleet warm-up ({WARM_UP_MEMBERS} members)    {:>10.1} ms  (compiles staged-rollout, {MEMBER_PATTERN} and their gates into the cache)",
            ms(warm_up_wall)
        ),
    );
    let (small, overhead) = timed_run(&rt, rollout(&place(journal("small.jsonl")), WARM_UP_MEMBERS, CANNED_EPOCH_MS, None)?)?;
    check_succeeded(&small, "the small rollout", WARM_UP_MEMBERS)?;
    figures.add(
        "fleet_run_overhead_ms",
        ms(overhead).into(),
        format!("fleet run of {WARM_UP_MEMBERS} members        {:>10.1} ms  (cached, journaled: about what any run costs, however many members)", ms(overhead)),
    );
    let rss_before = peak_rss_kib();

    let journaled = place(journal("fleet.jsonl"));
    let (report, wall) = timed_run(&rt, rollout(&journaled, n, CANNED_EPOCH_MS, None)?)?;
    check_succeeded(&report, "the rollout", n)?;
    let rss_after = peak_rss_kib();
    let (dev, test, prod) = group_sizes(n);
    figures.add(
        "fleet_members",
        json!({"members": n, "dev": dev, "test": test, "prod": prod, "stages": STAGES, "member_pattern": MEMBER_PATTERN}),
        format!(
            "fleet rollout                {n:>10} members  (staged-rollout {STAGES}, groups dev {dev}, test {test}, prod {prod}; \
             each member a sandboxed {MEMBER_PATTERN} sub-run; canned answers, virtual clock)"
        ),
    );
    figures.add(
        "fleet_wall_ms",
        ms(wall).into(),
        format!("fleet rollout wall           {:>10.1} ms  (journal and run log in {shown_tmp}, the run log's fsyncs included)", ms(wall)),
    );
    let per_member = ms(wall) / n as f64;
    let marginal = ms(wall.saturating_sub(overhead)) / n.saturating_sub(WARM_UP_MEMBERS).max(1) as f64;
    figures.add(
        "fleet_per_member_ms",
        json!({"wall_per_member": per_member, "beyond_the_run": marginal}),
        format!(
            "fleet time per member        {per_member:>10.2} ms  (wall / {n}; goal <= 10 ms; {marginal:.2} ms a member beyond the {WARM_UP_MEMBERS}-member run)"
        ),
    );
    figures.add(
        "fleet_peak_rss_mib",
        json!({"before": mib(rss_before), "after": mib(rss_after)}),
        format!("fleet peak RSS               {:>10.1} MiB (VmHWM; {:.1} MiB before the rollout)", mib(rss_after), mib(rss_before)),
    );

    let resumed = resume(&rt, &journaled, &report.run.id, n)?;
    let rss_resumed = peak_rss_kib();
    figures.add(
        "fleet_resume_ms",
        ms(resumed.wall).into(),
        format!(
            "fleet resume at member {:<6}{:>10.1} ms  (the whole resumed run; its run log cut to {} of {} lines ({:.0} KiB) as a kill there leaves it)",
            n / 2,
            ms(resumed.wall),
            resumed.kept_lines,
            resumed.log_lines,
            resumed.log_kib
        ),
    );
    let caught_up = resumed.caught_up.map(ms);
    figures.add(
        "fleet_resume_caught_up_ms",
        caught_up.into(),
        match caught_up {
            Some(t) => format!(
                "fleet resume caught up       {t:>10.1} ms  ({} calls replayed; until its first new run log line: the first member run again done)",
                resumed.replayed_calls
            ),
            None => format!("fleet resume caught up                 -     (it never appended to its run log; {} calls replayed)", resumed.replayed_calls),
        },
    );
    figures.add(
        "fleet_resume_members",
        json!({"from_log": resumed.from_log, "run_again": resumed.run_again}),
        format!("fleet resume members         {:>10} from the log, {} run again (none that had finished)", resumed.from_log, resumed.run_again),
    );
    figures.add("fleet_resume_peak_rss_mib", mib(rss_resumed).into(), format!("fleet peak RSS after resume  {:>10.1} MiB (VmHWM)", mib(rss_resumed)));

    // The same rollout with its journal and run log in memory: what is left without the disk.
    let Some(tmpfs) = Path::new("/dev/shm").is_dir().then(|| tempfile::tempdir_in("/dev/shm").ok()).flatten() else { return Ok(()) };
    point(&runs, &tmpfs.path().join("runs"))?;
    let in_memory = Place { journal: Some(tmpfs.path().join("fleet.jsonl")), ..place(None) };
    let (report, wall) = timed_run(&rt, rollout(&in_memory, n, CANNED_EPOCH_MS, None)?)?;
    check_succeeded(&report, "the rollout on tmpfs", n)?;
    figures.add(
        "fleet_tmpfs_wall_ms",
        ms(wall).into(),
        format!("fleet rollout on tmpfs       {:>10.1} ms  (the same, journal and run log in /dev/shm: {:.2} ms a member)", ms(wall), ms(wall) / n as f64),
    );
    Ok(())
}

/// Run [`measure`] in a child process (`runner bench --fleet-only`): its
/// text lines go straight to stdout; a document's figures join `figures`.
pub(super) fn in_child(n: usize, figures: &mut Figures) -> Result<(), Failure> {
    let exe = std::env::current_exe().map_err(failure)?;
    let text = figures.output == super::OutputFormat::Text;
    let mut command = std::process::Command::new(exe);
    command.args(["bench", "--fleet-only", "--fleet-members", &n.to_string(), "-o", if text { "text" } else { "json" }]);
    // Each member's pattern logs at info and warns of its target naming no database: the figures are what this prints.
    if std::env::var_os("RUNNER_LOG").is_none() && std::env::var_os("RUST_LOG").is_none() {
        command.env("RUNNER_LOG", "runner=warn,runner_lab=warn,runner_lab_runtime=warn,policy=error");
    }
    command.stdin(std::process::Stdio::null()).stderr(std::process::Stdio::inherit());
    command.stdout(if text { std::process::Stdio::inherit() } else { std::process::Stdio::piped() });
    let output = command.output().map_err(|e| failure(format!("fleet bench: cannot start `runner bench --fleet-only`: {e}")))?;
    let document: Option<serde_json::Map<String, Value>> = serde_json::from_slice(&output.stdout).ok();
    if !output.status.success() {
        let why = document.as_ref().and_then(|d| d.get("error")).and_then(|e| e["message"].as_str()).unwrap_or("see its error above");
        return Err(Failure::new(Exit::PolicyFailed, format!("fleet bench failed ({}): {why}", output.status)));
    }
    if !text {
        let document = document.ok_or_else(|| failure("fleet bench: `runner bench --fleet-only -o json` printed no JSON object"))?;
        figures.kept.extend(document);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_one_and_nine_percent_and_the_rest() {
        assert_eq!(group_sizes(1000), (10, 90, 900));
        assert_eq!(group_sizes(3), (1, 1, 1));
        assert!(check_members(0).is_ok() && check_members(3).is_ok() && check_members(MAX_MEMBERS).is_ok());
        assert!(check_members(2).is_err() && check_members(MAX_MEMBERS + 1).is_err());
        let fleet = fleet(200, Path::new("f")).unwrap();
        assert_eq!(fleet.members.iter().filter(|m| m.group == "test").count(), 18);
        assert_eq!(fleet.members[0].name, "dev-00000");
        assert!(fleet.members.iter().all(|m| crate::domain::names::label("member", &m.name).is_ok()));
        assert!(responses().is_ok());
    }

    #[test]
    fn a_log_is_cut_after_its_kth_finished_member() {
        let log = concat!(
            "{\"begun\":0,\"call\":\"clock.now\",\"args\":null,\"at\":1}\n",
            "{\"done\":0,\"call\":\"clock.now\",\"args\":null,\"response\":7}\n",
            "{\"begun\":1,\"call\":\"fleet.run-group\",\"args\":{},\"at\":2}\n",
            "{\"member\":\"a\",\"during\":1,\"run\":{\"succeeded\":\"ok\"}}\n",
            "{\"member\":\"b\",\"during\":1,\"run\":{\"succeeded\":\"ok\"}}\n",
            "{\"member\":\"c\",\"during\":1,\"run\":{\"succeeded\":\"ok\"}}\n",
        );
        let cut = cut_after_member(log, 2).unwrap();
        assert!(log[..cut.kept].ends_with("\"b\",\"during\":1,\"run\":{\"succeeded\":\"ok\"}}\n"));
        assert_eq!(cut.finished, BTreeSet::from(["a".to_string(), "b".to_string()]));
        assert_eq!((cut.done, cut.clock_ms, cut.kept_lines, cut.lines), (1, Some(7), 5, 6));
        assert_eq!(members_in(&log[cut.kept..]), vec!["c"]);
        assert!(cut_after_member(log, 4).is_none());
    }
}
