//! Gate `pg-preflight`: is the PostgreSQL cluster fit for a switchover?
//! Enough synchronous standbys, each close behind in time and bytes, and a
//! recent completed backup.

use kube_common::text::{bytes, millis};
use kube_common::{Pod, job_ref};
use pg_common::cluster::{ClusterConfig, Found};
use pg_common::pg::{self, Standby};
use runner_sdk::prelude::*;
use serde::Deserialize;

runner_sdk::manifest!(include_str!("../manifest.toml"));

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    min_sync: i64,
    max_replay_lag: u64,
    max_lag_bytes: i64,
    backup_job: String,
    max_backup_age: u64,
    #[serde(flatten)]
    cluster: ClusterConfig,
}

/// What the replication rows say, against the limits.
fn judge_replication(check: &mut Check, primary: &str, standbys: &[Standby], pods: &[Pod], config: &Config) -> usize {
    let mut synchronous = 0;
    let mut others = Vec::new();
    for standby in standbys {
        let member = pg::member_of(standby, pods).unwrap_or_else(|| {
            let addr = standby.client_addr.as_deref().unwrap_or("?");
            format!("{} ({addr})", standby.application_name)
        });
        if standby.is_synchronous() {
            synchronous += 1;
        } else {
            others.push(format!("{member}: {} {}", standby.sync_state, standby.state));
        }
        if standby.state != "streaming" {
            check.fail(format!("{member}: replication state {} on {primary}, not streaming", standby.state));
        }
        let lag_ms = standby.lag_ms.unwrap_or(0.0);
        if lag_ms > config.max_replay_lag as f64 {
            check.fail(format!("{member}: replay lag {} > {}", millis(lag_ms), millis(config.max_replay_lag as f64)));
        }
        match standby.lag_bytes {
            None => {
                check.fail(format!("{member}: reports no replay position to {primary} yet"));
            }
            Some(behind) if behind > config.max_lag_bytes as f64 => {
                check.fail(format!("{member}: {} of WAL not replayed > {}", bytes(behind), bytes(config.max_lag_bytes as f64)));
            }
            Some(_) => {}
        }
    }
    for pod in pods.iter().filter(|p| p.name != primary) {
        if !standbys.iter().any(|s| s.is(&pod.name, pod.ip.as_deref())) {
            others.push(format!("{}: not connected", pod.name));
        }
    }
    if (synchronous as i64) < config.min_sync {
        let detail = if others.is_empty() { String::new() } else { format!(" ({})", others.join(", ")) };
        check.fail(format!("{synchronous} standby(s) in sync or quorum state on {primary}, {} required{detail}", config.min_sync));
    } else {
        check.note(format!("{synchronous} standby(s) in sync or quorum state on {primary} (at least {} required)", config.min_sync));
    }
    synchronous
}

/// When the Job completed (ms since the epoch), or why it did not.
/// The backup check with this gate's configuration.
fn judge_backup(check: &mut Check, config: &Config, job: Result<Value, Error>, now_ms: u64) {
    kube_common::judge_backup(check, &config.backup_job, job, now_ms, config.max_backup_age);
}

struct Gate;

impl runner_sdk::gate::Guest for Gate {
    fn evaluate(config: String) -> Result<Verdict, Error> {
        let config: Config = parse_config(&config)?;
        let Found { pods, service_target: target, primary, .. } = config.cluster.find()?;
        let mut check = Check::new();
        check.evidence("primary", &primary);
        if target.as_deref() != Some(primary.as_str()) {
            // A switchover would fence a primary that clients are not even using.
            check.fail(format!("Service {} selects {}, not the primary {primary}", config.cluster.service, target.as_deref().unwrap_or("no member")));
        }
        let standbys = pg::standbys(&primary)?;
        let synchronous = judge_replication(&mut check, &primary, &standbys, &pods, &config);
        check.evidence("synchronous_standbys", synchronous);
        let figures: Vec<Value> = standbys
            .iter()
            .map(|s| json!({"member": pg::member_of(s, &pods).unwrap_or_else(|| s.application_name.clone()), "state": s.state, "sync_state": s.sync_state, "replay_lag_ms": s.lag_ms, "replay_lag_bytes": s.lag_bytes, "replay_lsn": s.replay_lsn}))
            .collect();
        check.evidence("standbys", figures);
        if config.backup_job.is_empty() {
            check.warn("backup check skipped: config backup-job is empty");
        } else {
            let job = get_json(&job_ref(&config.cluster.members.namespace, &config.backup_job));
            judge_backup(&mut check, &config, job, clock::now());
        }
        Ok(check.verdict())
    }
}

runner_sdk::export_gate!(Gate);

#[cfg(test)]
mod tests {
    use super::*;
    use kube_common::StatefulSet;

    fn config() -> Config {
        Config {
            min_sync: 2,
            max_replay_lag: 100,
            max_lag_bytes: 16 << 20,
            backup_job: "postgres-backup".into(),
            max_backup_age: 24 * 3_600_000,
            cluster: ClusterConfig { service: "pg-primary".into(), members: StatefulSet::new("", "pg"), ..Default::default() },
        }
    }

    fn standby(name: &str, sync: &str, lag_ms: Option<f64>, lag_bytes: Option<f64>) -> Standby {
        Standby { application_name: name.into(), state: "streaming".into(), sync_state: sync.into(), lag_ms, lag_bytes, ..Default::default() }
    }

    fn pods() -> Vec<Pod> {
        ["pg-0", "pg-1", "pg-2"].iter().map(|n| Pod { name: n.to_string(), ..Default::default() }).collect()
    }

    fn reasons(check: &Check) -> Vec<String> {
        check.verdict().reasons
    }

    #[test]
    fn two_quorum_standbys_pass() {
        let mut check = Check::new();
        let n = judge_replication(
            &mut check,
            "pg-0",
            &[standby("pg-1", "quorum", None, Some(0.0)), standby("pg-2", "quorum", Some(3.0), Some(120.0))],
            &pods(),
            &config(),
        );
        assert_eq!(n, 2);
        assert_eq!(check.verdict().outcome, Outcome::Pass, "{:?}", reasons(&check));
    }

    #[test]
    fn names_the_member_and_the_figure() {
        let mut check = Check::new();
        judge_replication(
            &mut check,
            "pg-0",
            &[standby("pg-1", "async", Some(340.0), Some(20.0 * 1048576.0)), standby("pg-2", "quorum", None, None)],
            &pods(),
            &config(),
        );
        let reasons = reasons(&check);
        assert_eq!(check.verdict().outcome, Outcome::Fail);
        assert!(reasons.contains(&"pg-1: replay lag 340 ms > 100 ms".to_string()), "{reasons:?}");
        assert!(reasons.contains(&"pg-1: 20.0 MiB of WAL not replayed > 16.0 MiB".to_string()), "{reasons:?}");
        assert!(reasons.contains(&"pg-2: reports no replay position to pg-0 yet".to_string()), "{reasons:?}");
        assert!(reasons.contains(&"1 standby(s) in sync or quorum state on pg-0, 2 required (pg-1: async streaming)".to_string()), "{reasons:?}");
    }

    #[test]
    fn a_missing_standby_is_named() {
        let mut check = Check::new();
        judge_replication(&mut check, "pg-0", &[standby("pg-1", "quorum", None, Some(0.0))], &pods(), &config());
        assert!(reasons(&check).iter().any(|r| r.contains("pg-2: not connected")), "{:?}", reasons(&check));
    }

    #[test]
    fn backups() {
        let now = kube_common::text::parse_timestamp_ms("2026-11-21T20:00:00Z").unwrap();
        let done = |stamp: &str| Ok(json!({"status": {"completionTime": stamp, "succeeded": 1}}));
        let mut fresh = Check::new();
        judge_backup(&mut fresh, &config(), done("2026-11-21T08:00:00Z"), now);
        assert_eq!(fresh.verdict().outcome, Outcome::Pass);
        let mut stale = Check::new();
        judge_backup(&mut stale, &config(), done("2026-11-20T14:00:00Z"), now);
        assert_eq!(reasons(&stale), vec!["backup Job postgres-backup: completed 30h 0m ago > 24h 0m"]);
        let mut by_condition = Check::new();
        judge_backup(
            &mut by_condition,
            &config(),
            Ok(json!({"status": {"conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-11-21T19:00:00Z"}]}})),
            now,
        );
        assert_eq!(by_condition.verdict().outcome, Outcome::Pass);
        let mut never = Check::new();
        judge_backup(&mut never, &config(), Ok(json!({"status": {"active": 1}})), now);
        assert_eq!(reasons(&never), vec!["backup Job postgres-backup: has not completed (active 1, failed 0)"]);
        let mut missing = Check::new();
        judge_backup(&mut missing, &config(), Err(Error::new(ErrorCode::NotFound, "jobs.batch \"postgres-backup\" not found")), now);
        assert_eq!(reasons(&missing), vec!["backup Job postgres-backup: jobs.batch \"postgres-backup\" not found"]);
    }
}
