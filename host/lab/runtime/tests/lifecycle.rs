//! Readiness follows the real server (127.0.15.x), and bad cases are errors,
//! not panics (127.0.16.x).

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Lab, PASSWORD};
use runner_lab_runtime::{self as runtime, Bootstrap, RuntimeError, Workload};

#[tokio::test]
async fn readiness_is_false_before_start_and_after_stop() {
    let mut lab = Lab::new();
    for (spec, bootstrap) in [
        (lab.spec("pg", Workload::Postgres, Ipv4Addr::new(127, 0, 15, 1)), Bootstrap::PostgresPrimary),
        (lab.spec("redis", Workload::Redis, Ipv4Addr::new(127, 0, 15, 2)), Bootstrap::Redis),
    ] {
        runtime::prepare(&spec, &bootstrap).await.expect("prepare");
        assert!(!runtime::is_ready(&spec).await, "{} is not ready before it starts", spec.name);
        lab.start(&spec).await;
        assert!(runtime::is_ready(&spec).await, "{} is ready once started", spec.name);

        if spec.workload == Workload::Redis {
            let mut wrong = spec.clone();
            wrong.password = "not the password".to_string();
            assert!(!runtime::is_ready(&wrong).await, "a PONG needs the right password");
        }

        let pid = lab.process(&spec.name).pid();
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert!(lab.process(&spec.name).try_exited().is_none());
        let status = lab.stop(&spec.name).await;
        assert!(status.success(), "{} stops cleanly: {status}", spec.name);
        assert!(!runtime::is_ready(&spec).await, "{} is not ready after it stops", spec.name);
    }
}

#[tokio::test]
async fn a_process_that_ignores_the_stop_signal_is_killed_after_the_grace_period() {
    let lab = Lab::new();
    let spec = lab.spec("redis", Workload::Redis, Ipv4Addr::new(127, 0, 15, 3));
    runtime::prepare(&spec, &Bootstrap::Redis).await.expect("prepare");
    let mut process = runtime::start(&spec).expect("start");
    runtime::wait_ready(&spec, &mut process, common::READY).await.expect("ready");
    // A stopped process cannot act on SIGTERM; only SIGKILL ends it.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(process.pid() as i32, libc::SIGSTOP) };
    let status = process.stop(Duration::from_millis(300)).await.expect("stop");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
    assert!(!runtime::is_ready(&spec).await);
}

#[tokio::test]
async fn a_server_left_over_by_a_dead_runtime_is_found_and_stopped() {
    let lab = Lab::new();
    let spec = lab.spec("redis", Workload::Redis, Ipv4Addr::new(127, 0, 15, 4));
    runtime::prepare(&spec, &Bootstrap::Redis).await.expect("prepare");
    assert!(!runtime::kill_leftover(&spec, Duration::from_secs(5)).await.expect("nothing to kill"));
    let mut process = runtime::start(&spec).expect("start");
    runtime::wait_ready(&spec, &mut process, common::READY).await.expect("ready");
    // Another runtime's server: ours stops it by its pid file.
    assert!(runtime::kill_leftover(&spec, Duration::from_secs(5)).await.expect("kill"));
    let status = process.stop(Duration::from_secs(5)).await.expect("reaped");
    assert!(status.success(), "it got the graceful stop signal: {status}");
}

/// No error message carries the password.
fn message(error: RuntimeError) -> String {
    let text = error.to_string();
    assert!(!text.contains(PASSWORD), "the password leaks into: {text}");
    text
}

#[tokio::test]
async fn an_address_in_use_is_an_error() {
    let lab = Lab::new();
    let redis = lab.spec("redis", Workload::Redis, Ipv4Addr::new(127, 0, 16, 1));
    let _taken = TcpListener::bind(redis.address()).expect("bind");
    runtime::prepare(&redis, &Bootstrap::Redis).await.expect("prepare");
    let error = runtime::start(&redis).expect_err("the port is taken");
    assert!(matches!(error, RuntimeError::AddressInUse { .. }), "{error:?}");
    assert!(message(error).contains("127.0.16.1:6379"));

    let pg = lab.spec("pg", Workload::Postgres, Ipv4Addr::new(127, 0, 16, 2));
    let _taken = TcpListener::bind(pg.address()).expect("bind");
    runtime::prepare(&pg, &Bootstrap::PostgresPrimary).await.expect("prepare");
    let error = runtime::start(&pg).expect_err("the port is taken");
    assert!(matches!(error, RuntimeError::AddressInUse { .. }), "{error:?}");
}

#[tokio::test]
async fn a_standby_whose_primary_is_unreachable_is_an_error() {
    let lab = Lab::new();
    let standby = lab.spec("pg-1", Workload::Postgres, Ipv4Addr::new(127, 0, 16, 3));
    let nowhere = SocketAddr::from((Ipv4Addr::new(127, 0, 16, 99), 5432));
    let error = runtime::prepare(&standby, &Bootstrap::PostgresStandby { primary: nowhere, slot: "pg_1".to_string() }).await.expect_err("no primary");
    let text = message(error);
    assert!(text.contains("pg-1") && text.contains("127.0.16.99:5432"), "{text}");
    assert!(!standby.volume.join("PG_VERSION").exists(), "nothing half-made is left");
    let staging = lab.dir.path().join("volumes").join(".pg-1.runner-bootstrap");
    assert!(!staging.exists(), "the staging directory is cleaned up");

    let error = runtime::prepare(&standby, &Bootstrap::PostgresStandby { primary: nowhere, slot: "bad-slot".to_string() }).await.expect_err("bad slot name");
    assert!(matches!(error, RuntimeError::Invalid { .. }), "{error:?}");
}

#[tokio::test]
async fn misuse_is_an_error() {
    let lab = Lab::new();
    let pg = lab.spec("pg", Workload::Postgres, Ipv4Addr::new(127, 0, 16, 4));
    let error = runtime::start(&pg).expect_err("not prepared");
    assert!(message(error).contains("prepare the member first"));
    let error = runtime::prepare(&pg, &Bootstrap::Redis).await.expect_err("wrong bootstrap");
    assert!(matches!(error, RuntimeError::Invalid { .. }), "{error:?}");
    let redis = lab.spec("redis", Workload::Redis, Ipv4Addr::new(127, 0, 16, 5));
    let mut open = redis.clone();
    open.password.clear();
    let error = runtime::prepare(&open, &Bootstrap::Redis).await.expect_err("no password");
    assert!(message(error).contains("needs a password"));
    assert!(runtime::pg_promote(&redis).await.is_err());
    let error = runtime::redis_cluster_create(std::slice::from_ref(&redis), 0).await.expect_err("too small");
    assert!(message(error).contains("at least 3 masters"));
    let error = runtime::pg_rejoin_as_standby(&pg, SocketAddr::from((Ipv4Addr::new(127, 0, 16, 99), 5432)), "pg").await.expect_err("no data");
    assert!(matches!(error, RuntimeError::Invalid { .. }), "{error:?}");

    // A volume holding something else is never overwritten.
    std::fs::create_dir_all(&pg.volume).expect("mkdir");
    std::fs::write(pg.volume.join("precious"), "data").expect("write");
    let error = runtime::prepare(&pg, &Bootstrap::PostgresPrimary).await.expect_err("foreign data");
    assert!(message(error).contains("no PG_VERSION"));
    assert!(pg.volume.join("precious").exists());
}

#[tokio::test]
async fn a_directory_the_postgres_user_cannot_reach_is_named() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return; // Only root hands directories to another user.
    }
    let lab = Lab::new();
    let closed = lab.dir.path().join("closed");
    std::fs::create_dir(&closed).expect("mkdir");
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let mut pg = lab.spec("pg", Workload::Postgres, Ipv4Addr::new(127, 0, 16, 6));
    pg.volume = closed.join("volume");
    let error = runtime::prepare(&pg, &Bootstrap::PostgresPrimary).await.expect_err("unreachable");
    let text = message(error);
    assert!(text.contains("cannot reach") && text.contains("closed"), "{text}");
}

#[tokio::test]
async fn a_server_that_dies_at_start_reports_its_log() {
    let lab = Lab::new();
    let pg = lab.spec("pg", Workload::Postgres, Ipv4Addr::new(127, 0, 16, 7));
    runtime::prepare(&pg, &Bootstrap::PostgresPrimary).await.expect("prepare");
    // A setting the server rejects: it exits before it listens.
    let conf = pg.volume.join("runner.conf");
    let mut text = std::fs::read_to_string(&conf).expect("runner.conf");
    text.push_str("shared_buffers = 'lots'\n");
    std::fs::write(&conf, text).expect("write runner.conf");
    let mut process = runtime::start(&pg).expect("spawned");
    let error = runtime::wait_ready(&pg, &mut process, common::READY).await.expect_err("it dies");
    assert!(matches!(error, RuntimeError::Exited { .. }), "{error:?}");
    assert!(message(error).contains("shared_buffers"), "the log tail says why");
}
