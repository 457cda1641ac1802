//! The controllers over a real lab: the daemon in-process with its
//! PostgreSQL StatefulSet, driven with kubectl and read through the lab's
//! own client, as `runner lab` does. Scheduler, StatefulSet controller,
//! kubelet and Service proxies each have to do their part.

use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::{Duration, Instant};

use runner_lab::client::LabClient;
use runner_lab::daemon::{self, LabDir};
use runner_lab::ops;
use runner_lab::topology::Topology;
use serde_json::Value;

/// This test's loopback subnet (127.SUBNET.x.y), apart from other labs on the machine.
const SUBNET: u8 = 173;
const READY: Duration = Duration::from_secs(240);
/// A scale-up creates its Pod on the StatefulSet's change, not at some later pass.
const CREATE_WITHIN: Duration = Duration::from_secs(5);

async fn kubectl(dir: &LabDir, args: &[&str]) -> Output {
    let output = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(dir.kubeconfig())
        .arg("--cache-dir")
        .arg(dir.root.join("kube-cache"))
        .args(args)
        .env("HOME", &dir.root)
        .env_remove("KUBECONFIG")
        .kill_on_drop(true)
        .output()
        .await
        .expect("kubectl must be installed");
    assert!(output.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

async fn pod(client: &LabClient, name: &str) -> Option<Value> {
    client.get(&format!("/api/v1/namespaces/default/pods/{name}")).await.expect("get pod")
}

/// Waits until `check` holds for the Pod (or its absence), up to `within`.
async fn wait_pod(client: &LabClient, name: &str, within: Duration, what: &str, check: impl Fn(Option<&Value>) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let current = pod(client, name).await;
        if check(current.as_ref()) {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{name}: not {what} after {within:?}: {current:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ready(pod: Option<&Value>) -> bool {
    pod.is_some_and(runner_lab::controllers::pod_ready)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn statefulset_members_are_real_servers_that_scale_and_come_back() {
    // The database processes run as the postgres user when the tests run as root.
    let root = tempfile::Builder::new().prefix("lab-controllers-").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = LabDir::new(root.path());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let topology = Topology { nodes_per_pool: 2, postgres: true, redis: false, mongo: false, ..Topology::default() };
    let lab = tokio::spawn(daemon::serve(dir.clone(), topology, SUBNET, async {
        let _ = stopped.await;
    }));
    let started = Instant::now();
    let client = loop {
        if let Ok(client) = LabClient::new(&dir)
            && client.alive().await
        {
            break client;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the lab's API server did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ops::wait_ready(&client, READY).await.unwrap();

    // The kubelet labels each member's role as the server reports it, a probe or two after Ready.
    let rows = loop {
        let rows = ops::status(&client).await.unwrap();
        if rows.iter().all(|r| r.role != "-") || started.elapsed() > READY {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rows.len(), 3, "{rows:#?}");
    for row in &rows {
        assert!(row.ready && row.pool == "nodepool1", "scheduled on the old pool and Ready: {row:?}");
        assert!(row.address.starts_with(&format!("127.{SUBNET}.1.")), "a Pod address of its own: {row:?}");
    }
    assert_eq!(rows.iter().filter(|r| r.role == "primary").count(), 1, "one primary: {rows:#?}");
    let service = client.get("/api/v1/namespaces/default/services/postgres-primary").await.unwrap().unwrap();
    let address = service["spec"]["clusterIP"].as_str().expect("the Service's address is recorded");
    assert!(address.starts_with(&format!("127.{SUBNET}.2.")), "{address}");
    tokio::net::TcpStream::connect((address, 5432)).await.expect("the Service proxies to the primary");

    kubectl(&dir, &["scale", "statefulset", "postgres-cluster", "--replicas=4"]).await;
    let created = wait_pod(&client, "postgres-cluster-3", CREATE_WITHIN, "created", |p| p.is_some()).await;
    println!("scale-up created postgres-cluster-3 in {created:?}");
    wait_pod(&client, "postgres-cluster-3", READY, "Ready (cloned from the primary)", ready).await;

    let before = pod(&client, "postgres-cluster-1").await.unwrap();
    kubectl(&dir, &["delete", "pod", "postgres-cluster-1", "--wait=false"]).await;
    wait_pod(&client, "postgres-cluster-1", READY, "replaced and Ready", |p| p.is_some_and(|p| p["metadata"]["uid"] != before["metadata"]["uid"]) && ready(p))
        .await;

    kubectl(&dir, &["scale", "statefulset", "postgres-cluster", "--replicas=3"]).await;
    wait_pod(&client, "postgres-cluster-3", READY, "removed", |p| p.is_none()).await;
    ops::wait_ready(&client, READY).await.unwrap();

    stop.send(()).unwrap();
    lab.await.unwrap().unwrap();
}
