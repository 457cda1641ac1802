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

runner_sdk::manifest!(
    r#"
name = "redis-cluster-healthy"
version = "0.1.0"
description = "A Redis cluster (the Pods of one StatefulSet) is healthy. Every Pod is Ready and its member answers CLUSTER INFO, CLUSTER NODES and INFO replication (read-only commands). Each member reports cluster_state:ok with all 16384 slots assigned and served (cluster_slots_ok). No member's CLUSTER NODES shows a node flagged fail, fail? (pfail), handshake or noaddr, and every slot belongs to a master in every member's view. Every member is known to the others. Every master lists at least `min-replicas` replicas in state online whose offset is within `max-offset-lag` bytes of its master_repl_offset; every replica has master_link_status:up and is not syncing. Optionally the number of masters is checked. Each failure names the member and the figure. With `settle-timeout`, the checks are repeated until they pass or the time is up (after a change the cluster needs a moment to agree)."
world = "gate"
capabilities = ["kube:get:apps/v1/StatefulSet", "kube:list:v1/Pod", "redis:read:*"]

[config.statefulset]
type = "string"
default = "redis-cluster"
description = "the Redis StatefulSet; its Pods are the members"

[config.namespace]
type = "string"
default = ""
description = "namespace (empty: the target's default)"

[config.max-offset-lag]
type = "integer"
default = 1048576
description = "how many bytes of replication stream a replica may trail its master"

[config.min-replicas]
type = "integer"
default = 1
description = "online replicas within the bound that every master needs"

[config.masters]
type = "integer"
default = 0
description = "masters expected (0: any number)"

[config.settle-timeout]
type = "duration"
default = "0s"
description = "repeat the checks until they pass, for at most this long (0: look once)"

[config.poll-interval]
type = "duration"
default = "500ms"
description = "how often to look again within settle-timeout"
"#
);

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    statefulset: String,
    namespace: String,
    max_offset_lag: i64,
    min_replicas: i64,
    masters: i64,
    settle_timeout: u64,
    poll_interval: u64,
}

struct RedisClusterHealthy;

fn look(cfg: &Config, limits: &Limits) -> Result<Check, Error> {
    let pods = StatefulSet::new(&cfg.namespace, &cfg.statefulset).pods()?;
    let mut check = Check::new();
    if pods.is_empty() {
        check.fail(format!("StatefulSet {} has no Pods", cfg.statefulset));
        return Ok(check);
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
    check.evidence("statefulset", &cfg.statefulset).evidence("cluster", findings.evidence);
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
