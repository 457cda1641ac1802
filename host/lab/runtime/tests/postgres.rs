//! PostgreSQL streaming replication with real servers: a primary and its
//! standbys, a standby restarted from its volume, and a failover with the old
//! primary rewound into a standby.
//!
//! Each test has its own addresses (127.0.11.x, 127.0.12.x, 127.0.13.x) so
//! they run in parallel.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::{Lab, eventually, in_recovery, replication, sql, streams, values};
use runner_lab_runtime::{self as runtime, Bootstrap, Workload};

const SETTLE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn primary_and_two_standbys_stream_with_quorum_commit() {
    let mut lab = Lab::new();
    let primary = lab.spec("pg-0", Workload::Postgres, Ipv4Addr::new(127, 0, 11, 1));
    let standbys = [lab.spec("pg-1", Workload::Postgres, Ipv4Addr::new(127, 0, 11, 2)), lab.spec("pg-2", Workload::Postgres, Ipv4Addr::new(127, 0, 11, 3))];

    runtime::prepare(&primary, &Bootstrap::PostgresPrimary).await.expect("prepare primary");
    lab.start(&primary).await;
    let from_primary = |slot: &str| Bootstrap::PostgresStandby { primary: primary.address(), slot: slot.to_string() };
    // Both standbys clone at once, as a StatefulSet scale-up might.
    let (slot_1, slot_2) = (from_primary("pg_1"), from_primary("pg_2"));
    let (one, two) = tokio::join!(runtime::prepare(&standbys[0], &slot_1), runtime::prepare(&standbys[1], &slot_2));
    one.expect("prepare standby pg-1");
    two.expect("prepare standby pg-2");
    for standby in &standbys {
        lab.start(standby).await;
    }

    eventually("two streaming quorum standbys", SETTLE, || async {
        let rows = replication(primary.address()).await;
        rows.len() == 2 && rows.iter().all(|(_, state, sync)| state == "streaming" && sync == "quorum")
    })
    .await;
    let names: Vec<String> = replication(primary.address()).await.into_iter().map(|(name, _, _)| name).collect();
    assert_eq!(names, ["pg-1", "pg-2"], "standbys report their member names");

    assert!(runtime::pg_is_primary(&primary).await.expect("ask the primary"));
    assert!(!in_recovery(primary.address()).await);
    for standby in &standbys {
        assert!(in_recovery(standby.address()).await, "{} is in recovery", standby.name);
        assert!(!runtime::pg_is_primary(standby).await.expect("ask a standby"));
    }

    let client = sql(primary.address()).await;
    client.batch_execute("CREATE TABLE t (v text); INSERT INTO t VALUES ('written on the primary')").await.expect("write on the primary");
    for standby in &standbys {
        eventually("the row on the standby", SETTLE, || async { values(standby.address()).await == ["written on the primary"] }).await;
    }

    // A recreated Pod calls prepare again over its volume: nothing changes.
    let version = std::fs::metadata(primary.volume.join("PG_VERSION")).expect("PG_VERSION").modified().expect("mtime");
    runtime::prepare(&primary, &Bootstrap::PostgresPrimary).await.expect("prepare is idempotent");
    runtime::prepare(&standbys[0], &from_primary("pg_1")).await.expect("prepare is idempotent for a standby");
    assert_eq!(std::fs::metadata(primary.volume.join("PG_VERSION")).expect("PG_VERSION").modified().expect("mtime"), version);

    common::assert_password_not_in_any_command_line();
    for log in ["pg-0", "pg-1", "pg-2"].map(|name| lab.dir.path().join("run").join(name).join("postgres.log")) {
        let text = std::fs::read_to_string(&log).expect("server log");
        assert!(!text.contains(common::PASSWORD), "the password is in {}", log.display());
    }

    // Standbys first: a primary with quorum commit is happiest with company.
    for name in ["pg-2", "pg-1", "pg-0"] {
        assert!(lab.stop(name).await.success(), "{name} shuts down cleanly");
    }
}

#[tokio::test]
async fn a_restarted_standby_streams_again_from_its_volume() {
    let mut lab = Lab::new();
    let primary = lab.spec("pg-0", Workload::Postgres, Ipv4Addr::new(127, 0, 12, 1));
    let standby = lab.spec("pg-1", Workload::Postgres, Ipv4Addr::new(127, 0, 12, 2));
    let bootstrap = Bootstrap::PostgresStandby { primary: primary.address(), slot: "pg_1".to_string() };
    runtime::prepare(&primary, &Bootstrap::PostgresPrimary).await.expect("prepare primary");
    lab.start(&primary).await;
    runtime::prepare(&standby, &bootstrap).await.expect("prepare standby");
    lab.start(&standby).await;
    eventually("the standby streaming", SETTLE, || streams(primary.address(), "pg-1")).await;

    let status = lab.stop("pg-1").await;
    assert!(status.success(), "graceful stop: {status}");
    assert!(!runtime::is_ready(&standby).await);
    eventually("the primary to notice", SETTLE, || async { replication(primary.address()).await.is_empty() }).await;

    // As the kubelet does for a recreated Pod: prepare (a no-op now), start.
    runtime::prepare(&standby, &bootstrap).await.expect("prepare over the old volume");
    lab.start(&standby).await;
    eventually("the standby streaming again", SETTLE, || streams(primary.address(), "pg-1")).await;

    // Quorum commit works again: the write returns, and reaches the standby.
    let client = sql(primary.address()).await;
    client.batch_execute("CREATE TABLE t (v text); INSERT INTO t VALUES ('after the restart')").await.expect("write on the primary");
    eventually("the row on the standby", SETTLE, || async { values(standby.address()).await == ["after the restart"] }).await;
    assert!(in_recovery(standby.address()).await);

    // Scaled down for good: its slot goes, so the primary stops keeping WAL for it.
    assert!(runtime::pg_drop_slot(&primary, "pg_1").await.is_err(), "not while it streams");
    lab.stop("pg-1").await;
    eventually("the slot to be released", SETTLE, || async { runtime::pg_drop_slot(&primary, "pg_1").await.is_ok() }).await;
    let slots: i64 = sql(primary.address()).await.query_one("SELECT count(*) FROM pg_replication_slots", &[]).await.expect("slots").get(0);
    assert_eq!(slots, 0);
    runtime::pg_drop_slot(&primary, "pg_1").await.expect("dropping a missing slot does nothing");
}

#[tokio::test]
async fn failover_then_the_old_primary_rejoins_rewound() {
    let mut lab = Lab::new();
    let old = lab.spec("pg-0", Workload::Postgres, Ipv4Addr::new(127, 0, 13, 1));
    let new = lab.spec("pg-1", Workload::Postgres, Ipv4Addr::new(127, 0, 13, 2));
    runtime::prepare(&old, &Bootstrap::PostgresPrimary).await.expect("prepare primary");
    lab.start(&old).await;
    runtime::prepare(&new, &Bootstrap::PostgresStandby { primary: old.address(), slot: "pg_1".to_string() }).await.expect("prepare standby");
    lab.start(&new).await;
    eventually("the standby streaming", SETTLE, || streams(old.address(), "pg-1")).await;
    sql(old.address()).await.batch_execute("CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')").await.expect("write");

    // The standby drops out, and the old primary goes on alone for a moment:
    // WAL the standby never sees, which pg_rewind must undo.
    lab.stop("pg-1").await;
    sql(old.address()).await.batch_execute("SET synchronous_commit = local; INSERT INTO t VALUES ('diverged')").await.expect("local write");
    assert!(lab.stop("pg-0").await.success());
    assert!(!runtime::is_ready(&old).await);

    // The standby comes back with its primary gone, and is promoted.
    lab.start(&new).await;
    runtime::pg_promote(&new).await.expect("promote");
    assert!(runtime::pg_is_primary(&new).await.expect("ask the new primary"));
    assert!(!in_recovery(new.address()).await);
    runtime::pg_promote(&new).await.expect("promoting a primary does nothing");

    runtime::pg_rejoin_as_standby(&old, new.address(), "pg_0").await.expect("rejoin with pg_rewind");
    lab.start(&old).await;
    eventually("the old primary streaming from the new one", SETTLE, || streams(new.address(), "pg-0")).await;
    assert!(in_recovery(old.address()).await);

    sql(new.address()).await.execute("INSERT INTO t VALUES ('after failover')", &[]).await.expect("quorum write on the new primary");
    eventually("the new row on the old primary", SETTLE, || async { values(old.address()).await == ["after failover", "kept"] }).await;
    assert!(!values(old.address()).await.contains(&"diverged".to_string()), "pg_rewind discarded the diverged write");
}

#[tokio::test]
async fn after_a_promotion_the_other_standby_follows_without_a_restart() {
    let mut lab = Lab::new();
    let old = lab.spec("pg-0", Workload::Postgres, Ipv4Addr::new(127, 0, 19, 1));
    let new = lab.spec("pg-1", Workload::Postgres, Ipv4Addr::new(127, 0, 19, 2));
    let other = lab.spec("pg-2", Workload::Postgres, Ipv4Addr::new(127, 0, 19, 3));
    runtime::prepare(&old, &Bootstrap::PostgresPrimary).await.expect("prepare primary");
    lab.start(&old).await;
    for (standby, slot) in [(&new, "pg_1"), (&other, "pg_2")] {
        runtime::prepare(standby, &Bootstrap::PostgresStandby { primary: old.address(), slot: slot.to_string() }).await.expect("prepare standby");
        lab.start(standby).await;
    }
    eventually("both standbys streaming", SETTLE, || async { streams(old.address(), "pg-1").await && streams(old.address(), "pg-2").await }).await;
    sql(old.address()).await.batch_execute("CREATE TABLE t (v text); INSERT INTO t VALUES ('before')").await.expect("write");

    // A planned switchover: the primary stops cleanly, so both standbys hold all of its WAL.
    assert!(lab.stop("pg-0").await.success());
    runtime::pg_promote(&new).await.expect("promote");
    let pid = lab.process("pg-2").pid();
    runtime::pg_follow(&other, new.address(), "pg_2").await.expect("follow the new primary");
    assert_eq!(lab.process("pg-2").pid(), pid, "no restart");
    eventually("the other standby streaming from the new primary", SETTLE, || streams(new.address(), "pg-2")).await;

    sql(new.address()).await.execute("INSERT INTO t VALUES ('after')", &[]).await.expect("quorum write on the new primary");
    eventually("the new row on the other standby", SETTLE, || async { values(other.address()).await == ["after", "before"] }).await;

    let error = runtime::pg_follow(&new, other.address(), "pg_1").await.expect_err("a primary does not follow");
    assert!(error.to_string().contains("not a standby"), "{error}");
}
