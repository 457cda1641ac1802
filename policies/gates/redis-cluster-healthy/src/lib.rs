//! Gate `redis-cluster-healthy`: is the Redis cluster whole? Every member
//! answers and says `cluster_state:ok`, all 16384 slots are assigned to
//! masters that are not failing, every master has a connected replica
//! whose replication offset is within a bound of its own, and no member
//! sees any node flagged fail or pfail.

use kube_common::StatefulSet;
use redis_common::cluster;
use redis_common::health::{self, Limits};
use runner_sdk::prelude::*;
use serde::Deserialize;

runner_sdk::manifest!(include_str!("../manifest.toml"));

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    max_offset_lag: i64,
    min_replicas: i64,
    masters: i64,
    settle_timeout: u64,
    poll_interval: u64,
    #[serde(flatten)]
    members: StatefulSet,
}

struct RedisClusterHealthy;

fn look(cfg: &Config, limits: &Limits) -> Result<Check, Error> {
    let set = cfg.members.read()?;
    let pods = cfg.members.pods_of(&set)?;
    let mut check = Check::new();
    if pods.is_empty() {
        check.fail(format!("StatefulSet {} has no Pods", cfg.members.name));
        return Ok(check);
    }
    // A member whose Pod was deleted and not made again yet (an interrupted
    // replacement) answers nothing: it is named, not merely missed.
    for ordinal in (0..set.replicas).filter(|o| !pods.iter().any(|p| p.ordinal == *o)) {
        check.fail(format!("{}: no Pod (StatefulSet {} wants {} members)", cfg.members.member(ordinal), cfg.members.name, set.replicas));
    }
    let findings = health::evaluate(&cluster::gather(&pods), limits);
    for failure in findings.failures {
        check.fail(failure);
    }
    for warning in findings.warnings {
        check.warn(warning);
    }
    for note in findings.notes {
        check.note(note);
    }
    check.evidence("statefulset", &cfg.members.name).evidence("cluster", findings.evidence);
    Ok(check)
}

impl runner_sdk::gate::Guest for RedisClusterHealthy {
    fn evaluate(config: String) -> Result<Verdict, Error> {
        let cfg: Config = parse_config(&config)?;
        if cfg.max_offset_lag < 0 || cfg.min_replicas < 0 || cfg.masters < 0 {
            return Err(Error::invalid("max-offset-lag, min-replicas and masters must not be negative"));
        }
        let limits = Limits { max_offset_lag: cfg.max_offset_lag as u64, min_replicas: cfg.min_replicas as u32, masters: cfg.masters as u32 };
        let started = clock::now();
        loop {
            let check = look(&cfg, &limits)?;
            let elapsed = clock::now().saturating_sub(started);
            if !check.failed() || elapsed >= cfg.settle_timeout {
                return Ok(check.verdict());
            }
            clock::sleep(cfg.poll_interval.max(50).min(cfg.settle_timeout - elapsed));
        }
    }
}

runner_sdk::export_gate!(RedisClusterHealthy);
