//! Gate `mongo-replset-healthy`: is the MongoDB replica set whole? One
//! primary, every member healthy and caught up, a majority of voters up,
//! `w: "majority"` writes able to commit.

use kube_common::StatefulSet;
use kube_common::text::millis;
use mongo_common::cluster;
use mongo_common::rs::{self, ConfigMember, RECOVERING, ROLLBACK, STARTUP2, Status};
use runner_sdk::prelude::*;
use serde::Deserialize;

runner_sdk::manifest!(include_str!("../manifest.toml"));

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    max_lag: u64,
    #[serde(flatten)]
    members: StatefulSet,
}

/// Judge a status against the limits. `pods` names members by Pod.
fn judge(check: &mut Check, status: &Status, config: Option<&[ConfigMember]>, pods: &[(String, Option<String>)], max_lag_ms: u64) {
    let name = |member: &str| rs::pod_of(member, pods).map(str::to_string).unwrap_or_else(|| member.to_string());
    let primaries = status.primaries();
    match primaries.as_slice() {
        [] => {
            let states: Vec<String> = status.members.iter().map(|m| format!("{} {}", name(&m.name), m.state_str)).collect();
            check.fail(format!("no PRIMARY in replica set {} ({})", status.set, states.join(", ")));
        }
        [one] => {
            check.note(format!("{} is the PRIMARY of replica set {}", name(&one.name), status.set));
        }
        many => {
            let names: Vec<String> = many.iter().map(|m| name(&m.name)).collect();
            check.fail(format!("{} members claim PRIMARY: {}", many.len(), names.join(", ")));
        }
    }
    let arbiter = |host: &str| config.is_some_and(|c| c.iter().any(|c| c.host == host && c.arbiter));
    for m in &status.members {
        let who = name(&m.name);
        if m.health != 1.0 {
            let why = if m.last_heartbeat_message.is_empty() { String::new() } else { format!(": {}", m.last_heartbeat_message) };
            check.fail(format!("{who}: health {} ({}){why}", m.health, m.state_str));
            continue;
        }
        match m.state {
            RECOVERING | ROLLBACK | STARTUP2 => {
                check.fail(format!("{who}: in {} (state {})", m.state_str, m.state));
            }
            rs::PRIMARY | rs::SECONDARY => {}
            rs::ARBITER if arbiter(&m.name) || config.is_none() => {}
            _ => {
                check.fail(format!("{who}: state {} ({}), not PRIMARY or SECONDARY", m.state_str, m.state));
            }
        }
        if m.state == rs::SECONDARY {
            match status.lag_ms(m) {
                Some(lag) if lag > max_lag_ms => {
                    check.fail(format!("{who}: {} behind the primary > {}", millis(lag as f64), millis(max_lag_ms as f64)));
                }
                Some(_) => {}
                None if status.primary().is_some() => {
                    check.fail(format!("{who}: no optime to compare with the primary's"));
                }
                None => {}
            }
        }
    }
    let majority = rs::majority(status, config);
    let down: Vec<String> = majority.voters.iter().filter(|v| !majority.voters_up.contains(v)).map(|v| name(v)).collect();
    let down_text = if down.is_empty() { String::new() } else { format!(" (down: {})", down.join(", ")) };
    if (majority.voters_up.len() as u64) < majority.needed {
        check.fail(format!(
            "{} of {} voting members up; electing a primary needs {}{down_text}",
            majority.voters_up.len(),
            majority.voters.len(),
            majority.needed
        ));
    } else {
        check.note(format!("{} of {} voting members up (a majority is {}){down_text}", majority.voters_up.len(), majority.voters.len(), majority.needed));
    }
    if (majority.data_voters_up.len() as u64) < majority.write_needed {
        check.fail(format!("w: majority needs {} data-bearing voting members, {} up{down_text}", majority.write_needed, majority.data_voters_up.len()));
    }
    if let Some(lag) = status.commit_lag_ms().filter(|lag| *lag > max_lag_ms) {
        check.fail(format!(
            "the majority commit point trails the last applied operation by {} > {}: w: majority writes are not being acknowledged",
            millis(lag as f64),
            millis(max_lag_ms as f64)
        ));
    }
}

fn evidence(check: &mut Check, status: &Status, pods: &[(String, Option<String>)]) {
    let members: Vec<Value> = status
        .members
        .iter()
        .map(|m| json!({"member": rs::pod_of(&m.name, pods).unwrap_or(&m.name), "name": m.name, "state": m.state_str, "health": m.health, "lag_ms": if m.state == rs::SECONDARY { status.lag_ms(m) } else { None }}))
        .collect();
    check.evidence("set", &status.set);
    check.evidence("primary", status.primary().map(|p| rs::pod_of(&p.name, pods).unwrap_or(&p.name)));
    check.evidence("members", members);
}

struct Gate;

impl runner_sdk::gate::Guest for Gate {
    fn evaluate(config: String) -> Result<Verdict, Error> {
        let config: Config = parse_config(&config)?;
        let set = config.members.read()?;
        let pods = config.members.pods_of(&set)?;
        let index = cluster::pod_index(&pods);
        let mut check = Check::new();
        let (answered, status) = match cluster::status(&pods) {
            Ok(found) => found,
            Err(e) if e.code == ErrorCode::Unavailable || e.code == ErrorCode::NotFound => {
                check.fail(format!("StatefulSet {}: {}", config.members.name, e.message));
                return Ok(check.verdict());
            }
            Err(e) => return Err(e),
        };
        check.evidence("asked", &answered);
        let replica_config = match cluster::config_of(&answered) {
            Ok(c) => Some(c),
            Err(e) => {
                check.warn(format!("votes and priorities unknown, every member counted as a voter: {}", e.message));
                None
            }
        };
        judge(&mut check, &status, replica_config.as_deref(), &index, config.max_lag);
        for pod in &pods {
            if !status.members.iter().any(|m| rs::pod_of(&m.name, &index) == Some(pod.name.as_str())) {
                check.warn(format!("Pod {} is not a member of replica set {}", pod.name, status.set));
            }
        }
        if (pods.len() as u32) < set.replicas {
            check.warn(format!("StatefulSet {} wants {} replicas, {} Pods exist", config.members.name, set.replicas, pods.len()));
        }
        evidence(&mut check, &status, &index);
        Ok(check.verdict())
    }
}

runner_sdk::export_gate!(Gate);

#[cfg(test)]
mod tests {
    use super::*;
    use mongo_common::rs::parse_status;

    fn pods() -> Vec<(String, Option<String>)> {
        (0..3).map(|i| (format!("mongo-{i}"), Some(format!("10.0.0.{}", 5 + i)))).collect()
    }

    /// A replSetGetStatus reply in the manual's shape (relaxed Extended
    /// JSON): `(state, stateStr, health, optimeDate seconds)` per member.
    fn status(members: &[(i64, &str, f64, u64)]) -> Status {
        let members: Vec<Value> = members
            .iter()
            .enumerate()
            .map(|(i, (state, state_str, health, secs))| {
                json!({"_id": i, "name": format!("mongo-{i}.mongo.db.svc.cluster.local:27017"), "health": health, "state": state, "stateStr": state_str,
                       "optime": {"ts": {"$timestamp": {"t": secs, "i": 1}}, "t": 3},
                       "optimeDate": {"$date": {"$numberLong": (secs * 1000).to_string()}},
                       "lastHeartbeatMessage": if *health == 0.0 { "Error connecting to mongo-2.mongo.db.svc.cluster.local:27017 :: caused by :: Connection refused" } else { "" }})
            })
            .collect();
        let n = members.len();
        parse_status(&json!({"set": "rs0", "members": members, "majorityVoteCount": n / 2 + 1, "writeMajorityCount": n / 2 + 1,
            "optimes": {"lastCommittedOpTime": {"ts": {"$timestamp": {"t": 1000, "i": 1}}, "t": 3}, "appliedOpTime": {"ts": {"$timestamp": {"t": 1000, "i": 1}}, "t": 3}}, "ok": 1.0}))
        .unwrap()
    }

    fn verdict(s: &Status) -> Verdict {
        let mut check = Check::new();
        judge(&mut check, s, None, &pods(), 10_000);
        check.verdict()
    }

    #[test]
    fn a_whole_set_passes() {
        let v = verdict(&status(&[(1, "PRIMARY", 1.0, 1000), (2, "SECONDARY", 1.0, 999), (2, "SECONDARY", 1.0, 1000)]));
        assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
        assert_eq!(v.reasons, vec!["mongo-0 is the PRIMARY of replica set rs0", "3 of 3 voting members up (a majority is 2)"]);
    }

    #[test]
    fn a_lagging_secondary_is_named_with_its_lag() {
        let v = verdict(&status(&[(1, "PRIMARY", 1.0, 1000), (2, "SECONDARY", 1.0, 988), (2, "SECONDARY", 1.0, 1000)]));
        assert_eq!(v.outcome, Outcome::Fail);
        assert_eq!(v.reasons[0], "mongo-1: 12.0 s behind the primary > 10.0 s");
    }

    #[test]
    fn unhealthy_and_recovering_members() {
        let v = verdict(&status(&[(1, "PRIMARY", 1.0, 1000), (3, "RECOVERING", 1.0, 900), (8, "(not reachable/healthy)", 0.0, 0)]));
        assert_eq!(v.outcome, Outcome::Fail);
        assert!(v.reasons.contains(&"mongo-1: in RECOVERING (state 3)".to_string()), "{:?}", v.reasons);
        assert!(
            v.reasons.contains(
                &"mongo-2: health 0 ((not reachable/healthy)): Error connecting to mongo-2.mongo.db.svc.cluster.local:27017 :: caused by :: Connection refused"
                    .to_string()
            ),
            "{:?}",
            v.reasons
        );
        // RECOVERING counts as not up: only the primary votes.
        assert!(v.reasons.contains(&"1 of 3 voting members up; electing a primary needs 2 (down: mongo-1, mongo-2)".to_string()), "{:?}", v.reasons);
        assert!(v.reasons.contains(&"w: majority needs 2 data-bearing voting members, 1 up (down: mongo-1, mongo-2)".to_string()), "{:?}", v.reasons);
    }

    #[test]
    fn primaries_must_be_exactly_one() {
        let none = verdict(&status(&[(2, "SECONDARY", 1.0, 1000), (2, "SECONDARY", 1.0, 1000), (2, "SECONDARY", 1.0, 1000)]));
        assert_eq!(none.reasons[0], "no PRIMARY in replica set rs0 (mongo-0 SECONDARY, mongo-1 SECONDARY, mongo-2 SECONDARY)");
        let two = verdict(&status(&[(1, "PRIMARY", 1.0, 1000), (1, "PRIMARY", 1.0, 1000), (2, "SECONDARY", 1.0, 1000)]));
        assert_eq!(two.reasons[0], "2 members claim PRIMARY: mongo-0, mongo-1");
    }

    #[test]
    fn a_stalled_commit_point_fails() {
        let mut s = status(&[(1, "PRIMARY", 1.0, 1000), (2, "SECONDARY", 1.0, 1000), (2, "SECONDARY", 1.0, 1000)]);
        s.last_committed = Some((970, 1));
        let v = verdict(&s);
        assert_eq!(
            v.reasons[0],
            "the majority commit point trails the last applied operation by 30.0 s > 10.0 s: w: majority writes are not being acknowledged"
        );
    }

    #[test]
    fn arbiters_are_allowed_when_configured() {
        let s = status(&[(1, "PRIMARY", 1.0, 1000), (2, "SECONDARY", 1.0, 1000), (7, "ARBITER", 1.0, 0)]);
        let config: Vec<ConfigMember> = s
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| ConfigMember { host: m.name.clone(), votes: 1, priority: if i == 2 { 0.0 } else { 1.0 }, arbiter: i == 2, hidden: false })
            .collect();
        let mut check = Check::new();
        judge(&mut check, &s, Some(&config), &pods(), 10_000);
        assert_eq!(check.verdict().outcome, Outcome::Pass, "{:?}", check.verdict().reasons);
    }
}
