//! A lab API server in-process, with kubectl as an independent client.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use runner_lab::apiserver::{ApiServer, ProcessExec, Store};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

pub const TOKEN: &str = "test-token-0123456789";

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub server: Option<ApiServer>,
    pub kubeconfig: PathBuf,
    /// `http://127.0.0.1:PORT` (the same port also speaks HTTPS).
    pub http: String,
}

impl Lab {
    /// Starts a server on 127.0.0.1:0 over a fresh store.
    pub async fn start() -> Lab {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("state")).expect("open store");
        Self::serve(dir, store).await
    }

    /// Starts a server over `store` (kept in `dir`).
    pub async fn serve(dir: tempfile::TempDir, store: Store) -> Lab {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let server = ApiServer::start(store.clone(), listener, TOKEN.into(), Arc::new(ProcessExec)).expect("start");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, runner_lab::apiserver::kubeconfig(&server.url(), TOKEN, "default")).expect("kubeconfig");
        let http = format!("http://{}", server.local_addr());
        Lab { dir, store, server: Some(server), kubeconfig, http }
    }

    /// Runs kubectl against the server (30 s at most).
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_stdin(args, None).await
    }

    pub async fn kubectl_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG")
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("kubectl must be installed (/usr/bin/kubectl)");
        if let Some(input) = stdin {
            let mut w = child.stdin.take().expect("stdin");
            w.write_all(input.as_bytes()).await.expect("write stdin");
            drop(w);
        }
        tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish in 30 s"))
            .expect("kubectl output")
    }

    /// Runs kubectl and asserts success; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(out.status.success(), "kubectl {args:?} failed: {}{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    /// Runs kubectl with stdin and asserts success; returns stdout.
    pub async fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.kubectl_with_stdin(args, Some(stdin)).await;
        assert!(out.status.success(), "kubectl {args:?} failed: {}{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    /// Runs kubectl and returns parsed JSON from stdout.
    pub async fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {args:?}: not JSON ({e}): {out}"))
    }

    /// A raw HTTP request over plain HTTP with the token.
    pub async fn http(&self, method: reqwest::Method, path: &str, content_type: &str, body: Option<String>) -> (u16, Value) {
        let client = reqwest::Client::new();
        let mut req =
            client.request(method, format!("{}{path}", self.http)).header("Authorization", format!("Bearer {TOKEN}")).header("Content-Type", content_type);
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.expect("request");
        let code = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn stop(mut self) -> (tempfile::TempDir, Store) {
        if let Some(s) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(5), s.stop()).await.expect("server stops in time").expect("server ok");
        }
        (self.dir, self.store)
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The objects the kubectl tests create: one of each served kind.
pub const ALL_KINDS: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: db
---
apiVersion: v1
kind: Node
metadata:
  name: node-1
  labels:
    node-role.kubernetes.io/worker: ""
    agentpool: blue
spec: {}
status:
  conditions:
  - type: Ready
    status: "True"
  nodeInfo:
    kubeletVersion: v1.31.2
---
apiVersion: v1
kind: Pod
metadata:
  name: pg-0
  namespace: db
  labels: {app: pg, role: primary}
spec:
  nodeName: node-1
  containers:
  - name: postgres
    image: postgres:16
    ports:
    - containerPort: 5432
    env:
    - name: PGDATA
      value: /data
---
apiVersion: v1
kind: Service
metadata: {name: pg-primary, namespace: db}
spec:
  selector: {app: pg, role: primary}
  ports:
  - port: 5432
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: pg, namespace: db}
spec:
  replicas: 3
  serviceName: pg
  selector:
    matchLabels: {app: pg}
  template:
    metadata:
      labels: {app: pg}
    spec:
      containers:
      - name: postgres
        image: postgres:16
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pg-pdb, namespace: db}
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: pg}
---
apiVersion: batch/v1
kind: Job
metadata: {name: backup, namespace: db}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: backup
        image: busybox
        command: ["true"]
---
apiVersion: v1
kind: Secret
metadata: {name: pg-secret, namespace: db}
stringData:
  password: hunter2
---
apiVersion: v1
kind: ConfigMap
metadata: {name: pg-config, namespace: db}
data:
  max_connections: "100"
"#;
