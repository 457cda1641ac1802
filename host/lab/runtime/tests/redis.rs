//! A six-member Redis cluster with real servers (addresses 127.0.14.x): three
//! masters with one replica each, and a replica replaced from its volume.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::{Lab, eventually};
use runner_lab_runtime::{self as runtime, Bootstrap, MemberSpec, RedisReply, Workload};

async fn text(spec: &MemberSpec, args: &[&str]) -> String {
    runtime::redis_command(spec, args).await.unwrap_or_else(|e| panic!("{e}")).as_text().unwrap_or_default()
}

async fn role(spec: &MemberSpec) -> String {
    match runtime::redis_command(spec, &["ROLE"]).await {
        Ok(RedisReply::Array(items)) => items.first().and_then(RedisReply::as_text).unwrap_or_default(),
        _ => String::new(),
    }
}

#[tokio::test]
async fn six_members_form_a_cluster_and_a_replica_rejoins_with_its_identity() {
    let mut lab = Lab::new();
    let members: Vec<MemberSpec> = (1..=6).map(|n| lab.spec(&format!("redis-{n}"), Workload::Redis, Ipv4Addr::new(127, 0, 14, n))).collect();
    for member in &members {
        runtime::prepare(member, &Bootstrap::Redis).await.expect("prepare");
        lab.start(member).await;
    }
    runtime::redis_cluster_create(&members, 1).await.expect("cluster create");

    let info = text(&members[0], &["CLUSTER", "INFO"]).await;
    assert!(info.contains("cluster_state:ok"), "{info}");
    assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
    assert!(info.contains("cluster_known_nodes:6"), "{info}");
    let nodes = text(&members[0], &["CLUSTER", "NODES"]).await;
    let count = |flag: &str| nodes.lines().filter(|l| l.split_whitespace().nth(2).is_some_and(|f| f.split(',').any(|x| x == flag))).count();
    assert_eq!((count("master"), count("slave")), (3, 3), "{nodes}");
    for member in &members {
        assert!(text(member, &["CLUSTER", "INFO"]).await.contains("cluster_state:ok"), "{} sees the cluster ok", member.name);
    }
    // Masters list their replicas at the replicas' own addresses, as in a real cluster.
    let replica_ips: Vec<String> = members.iter().map(|m| m.ip.to_string()).collect();
    eventually("every master to list its replica at the replica's address", Duration::from_secs(20), || async {
        let mut listed = 0;
        for member in &members {
            let info = text(member, &["INFO", "replication"]).await;
            for line in info.lines().filter(|l| l.starts_with("slave") && l.contains("ip=")) {
                let ip = line.split("ip=").nth(1).and_then(|r| r.split(',').next()).unwrap_or_default();
                assert!(replica_ips.iter().any(|r| r == ip), "{} lists a replica at {ip}: {line}", member.name);
                listed += 1;
            }
        }
        listed == 3
    })
    .await;
    common::assert_password_not_in_any_command_line();

    // Creating it again is a no-op: the lab may call it after coming back.
    runtime::redis_cluster_create(&members, 1).await.expect("create is idempotent");

    let mut replica = None;
    for member in &members {
        if role(member).await == "slave" {
            replica = Some(member.clone());
            break;
        }
    }
    let replica = replica.expect("a replica");
    let master = members.iter().find(|m| m.name != replica.name).expect("another member").clone();
    let id = text(&replica, &["CLUSTER", "MYID"]).await;

    assert!(lab.stop(&replica.name).await.success(), "graceful stop");
    assert!(!runtime::is_ready(&replica).await);
    // The others notice (node timeout 2 s), as they would a deleted Pod.
    eventually("the cluster to flag the replica failed", Duration::from_secs(20), || async {
        text(&master, &["CLUSTER", "NODES"]).await.lines().any(|l| l.starts_with(&id) && l.contains("fail"))
    })
    .await;

    runtime::prepare(&replica, &Bootstrap::Redis).await.expect("prepare over the old volume");
    lab.start(&replica).await;
    assert_eq!(text(&replica, &["CLUSTER", "MYID"]).await, id, "same node id, from nodes.conf in the volume");
    runtime::redis_cluster_meet(&replica, &master).await.expect("meet");
    eventually("the replica replicating again", Duration::from_secs(20), || async {
        role(&replica).await == "slave" && text(&replica, &["INFO", "replication"]).await.contains("master_link_status:up")
    })
    .await;
    eventually("every member to see a healthy cluster of six", Duration::from_secs(20), || async {
        let nodes = text(&master, &["CLUSTER", "NODES"]).await;
        nodes.lines().count() == 6 && !nodes.contains("fail") && text(&master, &["CLUSTER", "INFO"]).await.contains("cluster_state:ok")
    })
    .await;
}
