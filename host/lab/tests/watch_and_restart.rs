//! Watch streams (raw HTTP and kubectl), resourceVersion replay, and
//! persistence across a restart.

mod common;

use std::time::Duration;

use common::{Lab, TOKEN, text};
use runner_lab::apiserver::{EventType, PatchType, Store};
use serde_json::{Value, json};

/// A watch over plain HTTP, read line by line.
struct Watch {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Watch {
    async fn open(lab: &Lab, path: &str) -> Watch {
        let resp =
            reqwest::Client::new().get(format!("{}{path}", lab.http)).header("Authorization", format!("Bearer {TOKEN}")).send().await.expect("watch request");
        assert_eq!(resp.status().as_u16(), 200);
        Watch { resp, buf: Vec::new() }
    }

    /// The next event, or None when the stream ends (5 s at most).
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).expect("event JSON"));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.resp.chunk()).await.expect("watch event within 5 s").expect("stream");
            self.buf.extend_from_slice(&chunk?);
        }
    }
}

fn cm(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default", "labels": {"app": "w"}}, "data": {"v": value}})
}

fn rv(o: &Value) -> u64 {
    o["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_delivers_added_modified_deleted_in_order() {
    let lab = Lab::start().await;
    lab.store.create(cm("before", "0")).unwrap();
    // List, then watch from the list's resourceVersion: nothing is lost in between.
    let (code, list) = lab.http(reqwest::Method::GET, "/api/v1/namespaces/default/configmaps", "application/json", None).await;
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "ConfigMapList");
    let list_rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let created = lab.store.create(cm("a", "1")).unwrap(); // between list and watch
    let mut w = Watch::open(&lab, &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={list_rv}&labelSelector=app%3Dw")).await;
    let mut updated = created.clone();
    updated["data"]["v"] = json!("2");
    lab.store.update(updated).unwrap();
    lab.ok(&["delete", "cm", "a"]).await;
    let mut last = list_rv.parse::<u64>().unwrap();
    for expected in ["ADDED", "MODIFIED", "DELETED"] {
        let ev = w.next().await.unwrap();
        assert_eq!(ev["type"], expected, "{ev}");
        assert_eq!(ev["object"]["metadata"]["name"], "a");
        assert_eq!(ev["object"]["kind"], "ConfigMap");
        assert!(rv(&ev["object"]) > last, "resourceVersions increase");
        last = rv(&ev["object"]);
    }

    // Watch from an old resourceVersion replays every later change, in order.
    let mut w = Watch::open(&lab, &format!("/api/v1/watch/namespaces/default/configmaps?resourceVersion={list_rv}")).await;
    let types: Vec<String> = [(); 3].iter().map(|_| String::new()).collect();
    let mut got = Vec::new();
    for _ in types {
        let ev = w.next().await.unwrap();
        got.push((ev["type"].as_str().unwrap().to_string(), rv(&ev["object"])));
    }
    assert_eq!(got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["ADDED", "MODIFIED", "DELETED"]);
    assert!(got.windows(2).all(|p| p[0].1 < p[1].1));

    // Without a resourceVersion: current objects first, as ADDED; then bookmarks and the timeout end the stream.
    let mut w = Watch::open(&lab, "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&allowWatchBookmarks=true").await;
    let ev = w.next().await.unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("before")));
    assert!(w.next().await.is_none(), "timeoutSeconds ends the watch");

    // A label change out of the selector is a DELETED for that watch.
    let mut w =
        Watch::open(&lab, &format!("/api/v1/namespaces/default/configmaps?watch=1&labelSelector=app%3Dw&resourceVersion={}", lab.store.resource_version()))
            .await;
    lab.store.patch("v1", "ConfigMap", Some("default"), "before", PatchType::Merge, br#"{"metadata":{"labels":{"app":"other"}}}"#).unwrap();
    let ev = w.next().await.unwrap();
    assert_eq!((ev["type"].as_str(), ev["object"]["metadata"]["name"].as_str()), (Some("DELETED"), Some("before")));

    // kubectl's own watch prints the events too.
    let lab2 = &lab;
    let watcher = async { lab2.kubectl(&["get", "configmaps", "--watch", "-o", "json", "--output-watch-events", "-l", "app=k", "--request-timeout=3s"]).await };
    let writer = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let o = lab2
            .store
            .create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "k", "namespace": "default", "labels": {"app": "k"}}}))
            .unwrap();
        let mut o2 = o.clone();
        o2["data"] = json!({"x": "y"});
        lab2.store.update(o2).unwrap();
        lab2.store.delete("v1", "ConfigMap", Some("default"), "k", None).unwrap();
    };
    let (out, ()) = tokio::join!(watcher, writer);
    let stdout = text(&out.stdout);
    let types: Vec<String> =
        serde_json::Deserializer::from_str(&stdout).into_iter::<Value>().map(|v| v.unwrap()["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"], "{stdout}{}", text(&out.stderr));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_prints_table_rows() {
    let lab = Lab::start().await;
    let watcher = lab.kubectl(&["get", "configmaps", "-w", "--request-timeout=2s"]);
    let writer = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        lab.store.create(cm("t1", "1")).unwrap();
    };
    let (out, ()) = tokio::join!(watcher, writer);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("NAME") && stdout.contains("DATA") && stdout.lines().any(|l| l.starts_with("t1 ")), "{stdout}{}", text(&out.stderr));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_objects_and_resource_version() {
    let lab = Lab::start().await;
    lab.ok_stdin(&["apply", "-f", "-"], common::ALL_KINDS).await;
    let before = lab.store.get("v1", "Pod", Some("db"), "pg-0").unwrap();
    let rv_before = lab.store.resource_version();
    let (dir, store) = lab.stop().await;
    store.flush().unwrap();
    drop(store);

    let store = Store::open(&dir.path().join("state")).unwrap();
    assert_eq!(store.resource_version(), rv_before);
    assert_eq!(store.get("v1", "Pod", Some("db"), "pg-0").unwrap(), before);
    for (api, kind, ns, name) in [
        ("v1", "Namespace", None, "db"),
        ("v1", "Node", None, "node-1"),
        ("v1", "Service", Some("db"), "pg-primary"),
        ("apps/v1", "StatefulSet", Some("db"), "pg"),
        ("policy/v1", "PodDisruptionBudget", Some("db"), "pg-pdb"),
        ("batch/v1", "Job", Some("db"), "backup"),
        ("v1", "Secret", Some("db"), "pg-secret"),
        ("v1", "ConfigMap", Some("db"), "pg-config"),
    ] {
        assert!(store.get(api, kind, ns, name).is_some(), "{kind} {name} survived");
    }
    let lab = Lab::serve(dir, store).await;
    let out = lab.ok(&["get", "pod", "pg-0", "-n", "db", "-o", "json"]).await;
    let pod: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pod["metadata"]["uid"], before["metadata"]["uid"]);
    let created = lab.store.create(cm("after", "1")).unwrap();
    assert_eq!(rv(&created), rv_before + 1);
    // A watch from before the restart is too old: an ERROR event with a 410 Expired Status.
    let mut w = Watch::open(&lab, "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=2").await;
    let ev = w.next().await.unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!((ev["object"]["code"].as_i64(), ev["object"]["reason"].as_str()), (Some(410), Some("Expired")));
    // From the restart on, replay works.
    let mut w = Watch::open(&lab, &format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv_before}")).await;
    assert_eq!(w.next().await.unwrap()["object"]["metadata"]["name"], "after");
    let (dir, store) = lab.stop().await;
    drop(store);
    // Changes are saved without an explicit flush too (on drop of the last handle).
    let store = Store::open(&dir.path().join("state")).unwrap();
    assert!(store.get("v1", "ConfigMap", Some("default"), "after").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_events_generation_and_noop_updates() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let second = Store::open(dir.path()).unwrap_err();
    assert_eq!(second.kind(), std::io::ErrorKind::WouldBlock, "one open store per directory");
    let mut rx = store.subscribe();
    let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    let created = store.create(sts).unwrap();
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["status"]["replicas"], 0);
    // A no-op update returns the object unchanged, with no event.
    let same = store.update(created.clone()).unwrap();
    assert_eq!(same["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"]);
    // A status update changes only status and not generation.
    let mut st = created.clone();
    st["status"]["readyReplicas"] = json!(1);
    st["spec"]["replicas"] = json!(9);
    let st = store.update_status(st).unwrap();
    assert_eq!((st["spec"]["replicas"].as_i64(), st["status"]["readyReplicas"].as_i64(), st["metadata"]["generation"].as_i64()), (Some(1), Some(1), Some(1)));
    // A spec update bumps generation and keeps status.
    let mut sp = st.clone();
    sp["spec"]["replicas"] = json!(2);
    sp["status"] = json!({});
    let sp = store.update(sp).unwrap();
    assert_eq!((sp["metadata"]["generation"].as_i64(), sp["status"]["readyReplicas"].as_i64()), (Some(2), Some(1)));
    // A stale update conflicts.
    let err = store.update(st.clone()).unwrap_err();
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    let types: Vec<EventType> = (0..3).map(|_| rx.try_recv().unwrap().event_type).collect();
    assert_eq!(types, [EventType::Added, EventType::Modified, EventType::Modified]);
    assert!(rx.try_recv().is_err());

    // Owned pods go with their owner; finalizers hold a deletion.
    let pod = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": {"a": "b"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "s", "uid": sp["metadata"]["uid"], "controller": true}]},
        "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "i"}]}})
    };
    store.create(pod("s-0")).unwrap();
    store.create(pod("s-1")).unwrap();
    let mut fin = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "f", "namespace": "default", "finalizers": ["lab/x"]}});
    fin = store.create(fin).unwrap();
    store.delete("v1", "ConfigMap", Some("default"), "f", None).unwrap();
    let held = store.get("v1", "ConfigMap", Some("default"), "f").unwrap();
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    let mut released = held.clone();
    released["metadata"]["finalizers"] = json!([]);
    store.update(released).unwrap();
    assert!(store.get("v1", "ConfigMap", Some("default"), "f").is_none(), "{fin}");
    store.delete("apps/v1", "StatefulSet", Some("default"), "s", None).unwrap();
    let pods = store.list("v1", "Pod", Some("default"), Some("a=b")).unwrap();
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| p["metadata"]["deletionTimestamp"].is_string()), "dependents deleted gracefully");

    // Deleting a namespace deletes its content, then the namespace.
    store.set_graceful_pod_deletion(false);
    store.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp"}})).unwrap();
    store.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "tmp"}})).unwrap();
    store.delete("v1", "Namespace", None, "tmp", None).unwrap();
    assert!(store.get("v1", "Namespace", None, "tmp").is_none());
    assert!(store.get("v1", "ConfigMap", Some("tmp"), "c").is_none());
    let err = store.delete("v1", "Namespace", None, "default", None).unwrap_err();
    assert_eq!(err.code, 403);
}
