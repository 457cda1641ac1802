//! A binary directory that does not exist is an error naming it. This test
//! has its own binary because it changes the process environment.

mod common;

use std::net::Ipv4Addr;

use common::Lab;
use runner_lab_runtime::{self as runtime, Bootstrap, PG_BIN_DIR_ENV, REDIS_BIN_DIR_ENV, RuntimeError, Workload};

#[test]
fn a_missing_binary_dir_is_an_error() {
    // SAFETY: the only test of this binary, and no other thread runs yet: the
    // runtime is built below.
    unsafe {
        std::env::set_var(PG_BIN_DIR_ENV, "/nonexistent/postgresql/bin");
        std::env::set_var(REDIS_BIN_DIR_ENV, "/nonexistent/redis/bin");
    }
    let runtime_ = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
    runtime_.block_on(async {
        let lab = Lab::new();
        let pg = lab.spec("pg", Workload::Postgres, Ipv4Addr::new(127, 0, 17, 1));
        let error = runtime::prepare(&pg, &Bootstrap::PostgresPrimary).await.expect_err("no initdb");
        assert!(matches!(&error, RuntimeError::MissingBinary { binary, .. } if binary == "initdb"), "{error:?}");
        assert!(error.to_string().contains("/nonexistent/postgresql/bin"), "{error}");
        assert!(!pg.volume.exists(), "nothing half-made is left");

        let redis = lab.spec("redis", Workload::Redis, Ipv4Addr::new(127, 0, 17, 2));
        runtime::prepare(&redis, &Bootstrap::Redis).await.expect("prepare needs no binary");
        let error = runtime::start(&redis).expect_err("no redis-server");
        assert!(matches!(&error, RuntimeError::MissingBinary { binary, .. } if binary == "redis-server"), "{error:?}");
    });
}
