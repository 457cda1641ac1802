//! The health rules of a Redis cluster, as pure functions of what each
//! member answered, so they are tested natively and shared by the gate and
//! the pattern's waits.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::info::{self, Replication};
use crate::nodes::{self, Node, SLOTS};

/// What one member answered.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// `CLUSTER INFO` fields.
    pub cluster: BTreeMap<String, String>,
    /// `CLUSTER NODES`.
    pub nodes: Vec<Node>,
    /// `INFO replication`.
    pub replication: Replication,
}

impl State {
    /// Parse the three answers.
    pub fn parse(cluster_info: &str, cluster_nodes: &str, replication: &str) -> Result<State, String> {
        Ok(State { cluster: info::fields(cluster_info), nodes: nodes::parse(cluster_nodes)?, replication: info::replication(replication) })
    }

    fn number(&self, key: &str) -> Option<u64> {
        self.cluster.get(key).and_then(|v| v.trim().parse().ok())
    }

    /// The answering node's own line.
    pub fn myself(&self) -> Option<&Node> {
        nodes::myself(&self.nodes)
    }
}

/// One member of the StatefulSet and what it answered.
#[derive(Clone, Debug)]
pub struct Member {
    pub name: String,
    pub ip: Option<String>,
    pub ready: bool,
    /// `Err` says why there is no answer (Pod not Ready, the call failed).
    pub state: Result<State, String>,
}

/// The bounds a healthy cluster keeps.
#[derive(Clone, Debug)]
pub struct Limits {
    /// How far (bytes of replication stream) a replica may trail its master.
    pub max_offset_lag: u64,
    /// Connected, caught-up replicas every master needs.
    pub min_replicas: u32,
    /// Masters expected (0: any number).
    pub masters: u32,
}

/// What [`evaluate`] found.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    pub failures: Vec<String>,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    pub evidence: Value,
}

/// A name for the node at `ip`: the member's name when a member has that
/// address, else the node's short id and address.
fn node_name(members: &[Member], node: &Node) -> String {
    match members.iter().find(|m| m.ip.as_deref() == Some(node.ip.as_str()) && !node.ip.is_empty()) {
        Some(m) => m.name.clone(),
        None => format!("node {} at {}:{}", node.short_id(), node.ip, node.port),
    }
}

/// Judge the cluster from every member's answers.
pub fn evaluate(members: &[Member], limits: &Limits) -> Findings {
    let mut f = Findings::default();
    let answering: Vec<(&Member, &State)> = members.iter().filter_map(|m| m.state.as_ref().ok().map(|s| (m, s))).collect();
    for m in members {
        if let Err(why) = &m.state {
            f.failures.push(format!("{}: {why}", m.name));
        }
    }
    if answering.is_empty() {
        f.failures.push("no member answered; the cluster's health is unknown".into());
        f.evidence = json!({"members": members.len(), "answering": 0});
        return f;
    }

    // 1. Each member's own verdict on the cluster.
    for (m, s) in &answering {
        let state = s.cluster.get("cluster_state").map(String::as_str).unwrap_or("unknown");
        if state != "ok" {
            f.failures.push(format!("{}: cluster_state:{state}", m.name));
        }
        let assigned = s.number("cluster_slots_assigned").unwrap_or(0);
        let ok = s.number("cluster_slots_ok").unwrap_or(0);
        if assigned < u64::from(SLOTS) {
            f.failures.push(format!("{}: only {assigned}/{SLOTS} slots assigned", m.name));
        }
        if ok < assigned {
            let (pfail, fail) = (s.number("cluster_slots_pfail").unwrap_or(0), s.number("cluster_slots_fail").unwrap_or(0));
            f.failures.push(format!("{}: only {ok}/{SLOTS} slots served (on failing masters: {pfail} pfail, {fail} fail)", m.name));
        }
    }

    // 2. Trouble flags and uncovered slots, each reported once with who sees it.
    let mut flagged: BTreeMap<(String, &'static str), Vec<String>> = BTreeMap::new();
    let mut uncovered: BTreeMap<Vec<(u16, u16)>, Vec<String>> = BTreeMap::new();
    for (m, s) in &answering {
        for node in &s.nodes {
            if let Some(flag) = node.trouble() {
                flagged.entry((node_name(members, node), flag)).or_default().push(m.name.clone());
            }
        }
        let missing = nodes::unassigned(&s.nodes);
        if !missing.is_empty() {
            uncovered.entry(missing).or_default().push(m.name.clone());
        }
    }
    for ((node, flag), seen_by) in &flagged {
        f.failures.push(format!("{node} flagged {flag} (seen by {})", seen_by.join(", ")));
    }
    for (missing, seen_by) in &uncovered {
        f.failures.push(format!("slots {} ({} slots) have no master (seen by {})", nodes::show_ranges(missing), nodes::count(missing), seen_by.join(", ")));
    }

    // 3. Every member belongs to the cluster the others see.
    let known: BTreeSet<&str> = answering.iter().flat_map(|(_, s)| s.nodes.iter().filter(|n| !n.myself()).map(|n| n.id.as_str())).collect();
    for (m, s) in &answering {
        match s.myself() {
            Some(me) if answering.len() > 1 && !known.contains(me.id.as_str()) => {
                f.failures.push(format!("{}: node {} is not known to any other member (not part of the cluster)", m.name, me.short_id()));
            }
            Some(_) => {}
            None => f.failures.push(format!("{}: CLUSTER NODES has no `myself` line", m.name)),
        }
    }

    // 4. Masters, by their own answers: replicas connected and caught up.
    let mut summary = Vec::new();
    let mut masters = 0u32;
    let mut replicas = 0u32;
    for (m, s) in &answering {
        let me = s.myself();
        let slots = me.map_or(0, Node::slot_count);
        if s.replication.is_master() {
            masters += 1;
            if slots == 0 {
                f.warnings.push(format!("{}: a master that serves no slots", m.name));
            }
            let offset = s.replication.master_repl_offset;
            let mut good = Vec::new();
            let mut bad = Vec::new();
            for r in &s.replication.replicas {
                let behind = offset.saturating_sub(r.offset);
                let name = members.iter().find(|x| x.ip.as_deref() == Some(r.ip.as_str())).map_or_else(|| format!("{}:{}", r.ip, r.port), |x| x.name.clone());
                if r.state == "online" && behind <= limits.max_offset_lag {
                    good.push(name);
                } else {
                    bad.push(format!("{name} state={} {behind} bytes behind", r.state));
                }
            }
            if (good.len() as u32) < limits.min_replicas {
                let detail = if bad.is_empty() { "none connected".to_string() } else { bad.join("; ") };
                f.failures.push(format!(
                    "{}: {} replica(s) online within {} bytes of its offset {offset}, needs {} ({detail})",
                    m.name,
                    good.len(),
                    limits.max_offset_lag,
                    limits.min_replicas
                ));
            }
            summary.push(json!({"member": m.name, "role": "master", "slots": slots, "offset": offset, "replicas": good, "lagging": bad}));
        } else {
            replicas += 1;
            let r = &s.replication;
            let upstream = r
                .master_host
                .as_deref()
                .map(|h| members.iter().find(|x| x.ip.as_deref() == Some(h)).map_or_else(|| h.to_string(), |x| x.name.clone()))
                .unwrap_or_else(|| "?".into());
            if !r.link_up {
                f.failures.push(format!("{}: replica of {upstream} with master_link_status:down", m.name));
            } else if r.sync_in_progress {
                f.failures.push(format!("{}: still syncing from {upstream}", m.name));
            }
            summary.push(
                json!({"member": m.name, "role": "replica", "master": upstream, "offset": r.replica_offset, "link": if r.link_up { "up" } else { "down" }}),
            );
        }
    }
    if limits.masters > 0 && masters != limits.masters {
        f.failures.push(format!("{masters} master(s) among the members, expected {}", limits.masters));
    }
    f.notes.push(format!("{masters} master(s) and {replicas} replica(s) answered out of {} member(s)", members.len()));
    f.evidence = json!({"masters": masters, "replicas": replicas, "members": summary});
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const IPS: [&str; 6] = ["127.0.1.10", "127.0.1.11", "127.0.1.12", "127.0.1.13", "127.0.1.14", "127.0.1.15"];
    const IDS: [&str; 6] = ["aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc", "dddddddddd", "eeeeeeeeee", "ffffffffff"];
    const SLOT_RANGES: [&str; 3] = ["0-5460", "5461-10922", "10923-16383"];

    /// CLUSTER NODES of a 3+3 cluster as seen by member `me`; members 3..5 replicate 0..2.
    fn nodes_text(me: usize, flags: &[(usize, &str)]) -> String {
        (0..6)
            .map(|i| {
                let mut f = if i < 3 { "master".to_string() } else { "slave".to_string() };
                if i == me {
                    f = format!("myself,{f}");
                }
                if let Some((_, extra)) = flags.iter().find(|(n, _)| *n == i) {
                    f = format!("{f},{extra}");
                }
                let master = if i < 3 { "-".to_string() } else { IDS[i - 3].to_string() };
                let slots = if i < 3 { SLOT_RANGES[i] } else { "" };
                format!("{} {}:6379@16379 {f} {master} 0 0 {} connected {slots}\n", IDS[i], IPS[i], i + 1)
            })
            .collect()
    }

    fn healthy() -> Vec<Member> {
        (0..6)
            .map(|i| {
                let replication = if i < 3 {
                    format!("role:master\r\nslave0:ip={},port=6379,state=online,offset=1000,lag=0\r\nmaster_repl_offset:1000\r\n", IPS[i + 3])
                } else {
                    format!(
                        "role:slave\r\nmaster_host:{}\r\nmaster_port:6379\r\nmaster_link_status:up\r\nmaster_sync_in_progress:0\r\nslave_repl_offset:1000\r\n",
                        IPS[i - 3]
                    )
                };
                let state =
                    State::parse("cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n", &nodes_text(i, &[]), &replication).unwrap();
                Member { name: format!("redis-cluster-{i}"), ip: Some(IPS[i].into()), ready: true, state: Ok(state) }
            })
            .collect()
    }

    fn limits() -> Limits {
        Limits { max_offset_lag: 100, min_replicas: 1, masters: 3 }
    }

    #[test]
    fn a_healthy_cluster_passes() {
        let f = evaluate(&healthy(), &limits());
        assert!(f.failures.is_empty(), "{:?}", f.failures);
        assert!(f.warnings.is_empty(), "{:?}", f.warnings);
        assert_eq!(f.evidence["masters"], 3);
        assert_eq!(f.evidence["members"][0]["replicas"][0], "redis-cluster-3");
    }

    #[test]
    fn a_replica_down_is_named() {
        let mut members = healthy();
        members[4].state = Err("Pod not Ready".into());
        for (i, m) in members.iter_mut().enumerate() {
            if let Ok(s) = &mut m.state {
                s.nodes = nodes::parse(&nodes_text(i, &[(4, "fail")])).unwrap();
            }
        }
        // Its master no longer lists it.
        if let Ok(s) = &mut members[1].state {
            s.replication.replicas.clear();
        }
        let f = evaluate(&members, &limits());
        assert!(f.failures.contains(&"redis-cluster-4: Pod not Ready".to_string()), "{:?}", f.failures);
        assert!(f.failures.iter().any(|r| r.starts_with("redis-cluster-4 flagged fail (seen by redis-cluster-0")), "{:?}", f.failures);
        assert!(f.failures.iter().any(|r| r.starts_with("redis-cluster-1: 0 replica(s) online") && r.contains("none connected")), "{:?}", f.failures);
    }

    #[test]
    fn lagging_replicas_and_uncovered_slots_are_figures() {
        let mut members = healthy();
        if let Ok(s) = &mut members[0].state {
            s.replication.replicas[0].offset = 500;
            s.cluster.insert("cluster_state".into(), "fail".into());
            s.cluster.insert("cluster_slots_assigned".into(), "16284".into());
            s.nodes = nodes::parse(&nodes_text(0, &[]).replace("0-5460", "100-5460")).unwrap();
        }
        let f = evaluate(&members, &limits());
        assert!(f.failures.contains(&"redis-cluster-0: cluster_state:fail".to_string()), "{:?}", f.failures);
        assert!(f.failures.contains(&"redis-cluster-0: only 16284/16384 slots assigned".to_string()), "{:?}", f.failures);
        assert!(f.failures.contains(&"slots 0-99 (100 slots) have no master (seen by redis-cluster-0)".to_string()), "{:?}", f.failures);
        assert!(
            f.failures.iter().any(|r| r.contains("redis-cluster-0: 0 replica(s) online within 100 bytes of its offset 1000")
                && r.contains("redis-cluster-3 state=online 500 bytes behind")),
            "{:?}",
            f.failures
        );
    }

    #[test]
    fn a_replica_with_its_link_down_and_a_missing_master_count() {
        let mut members = healthy();
        if let Ok(s) = &mut members[5].state {
            s.replication.link_up = false;
        }
        let f = evaluate(&members, &Limits { masters: 4, ..limits() });
        assert!(f.failures.contains(&"redis-cluster-5: replica of redis-cluster-2 with master_link_status:down".to_string()), "{:?}", f.failures);
        assert!(f.failures.contains(&"3 master(s) among the members, expected 4".to_string()), "{:?}", f.failures);
    }
}
