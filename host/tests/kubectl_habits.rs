//! Cluster selection as kubectl users expect it, on the lab (subnet 234):
//! `KUBECONFIG` with a missing file in its list, the lab found from its own
//! kubeconfig, `--kubeconfig`/`--context`/`-n`, an exec credential plugin
//! run once per run, and a refused connection that names the server and
//! the context. `kubectl` reads the same kubeconfigs as an independent client.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::lab::Lab;
use common::*;

/// `runner ARGS` as a user with `env` would run it: no `RUNNER_LAB_DIR`
/// (selection comes from the kubeconfig), a private cache and HOME.
fn runner_as_user(lab: &Lab, env: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("runner"));
    command
        .args(args)
        .env_remove("RUNNER_LOG")
        .env_remove("KUBECONFIG")
        .env_remove("RUNNER_LAB_DIR")
        .env("HOME", lab.dir.path().join("home"))
        .env("RUNNER_CACHE_DIR", lab.dir.path().join("cache"))
        .env("RUNNER_POLICY_PATH", repo().join("policies/dist"));
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

/// The lab's kubeconfig with its user replaced by `user` (YAML lines under `user:`) and its server by `server`.
fn rewritten_kubeconfig(lab: &Lab, name: &str, server: Option<&str>, user: &str) -> PathBuf {
    let text = std::fs::read_to_string(lab.kubeconfig()).unwrap();
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("server:")
            && let Some(server) = server
        {
            out.push(format!("    server: \"{server}\""));
        } else if line.trim() == "user:" && lines.peek().is_some_and(|next| next.trim_start().starts_with("token:")) {
            lines.next();
            out.push("  user:".into());
            out.push(user.into());
        } else {
            out.push(line.to_string());
        }
    }
    let file = lab.dir.path().join(name);
    // The context, cluster and user renamed (not the lab's directory, whose name starts the same).
    let renamed: Vec<String> =
        out.iter().map(|line| if line.ends_with(": runner-lab") { line.replace(": runner-lab", &format!(": {name}")) } else { line.clone() }).collect();
    std::fs::write(&file, renamed.join("\n") + "\n").unwrap();
    file
}

fn token(lab: &Lab) -> String {
    std::fs::read_to_string(lab.dir.path().join("token")).unwrap().trim().to_string()
}

#[test]
fn the_cluster_is_chosen_as_kubectl_chooses_it() {
    let lab = Lab::up(&["--postgres", "--subnet", "234"]);
    let missing = lab.dir.path().join("missing-kubeconfig");
    let list = std::env::join_paths([missing.as_path(), lab.kubeconfig().as_path()]).unwrap();
    let list = PathBuf::from(list);

    // KUBECONFIG as `lab up` says to set it, with a missing file first: the lab, with its databases.
    let output = runner_as_user(&lab, &[("KUBECONFIG", &list)], &["exec", "pods-ready", "-o", "json"]);
    let report = json_of(&output);
    assert_eq!(output.status.code(), Some(0), "{}{}", stdout(&output), stderr(&output));
    assert_eq!(report["target"], "lab", "{report}");
    let journal = std::fs::read_to_string(report["journal"].as_str().unwrap()).unwrap();
    let header: serde_json::Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    let header = &header["header"];
    assert_eq!((header["target"]["name"].as_str(), header["target"]["context"].as_str()), (Some("lab"), Some("runner-lab")), "{header}");
    assert_eq!(header["policy"]["digest"], report["policy"]["digest"], "{header}");
    assert_eq!(header["config"]["selector"], "app=postgres", "{header}");
    let check = runner_as_user(&lab, &[("KUBECONFIG", &list)], &["target", "check", "-o", "json"]);
    assert_eq!(json_of(&check)["databases"][0]["name"], "postgres-cluster", "{}", stdout(&check));

    // -n moves the default namespace: no postgres Pods there, so the gate fails on its own verdict.
    let elsewhere = runner_as_user(&lab, &[("KUBECONFIG", &list)], &["exec", "pods-ready", "-n", "kube-system", "-o", "json"]);
    assert_eq!(elsewhere.status.code(), Some(1), "{}{}", stdout(&elsewhere), stderr(&elsewhere));
    let bad_namespace = runner_as_user(&lab, &[("KUBECONFIG", &list)], &["exec", "pods-ready", "-n", "default/secrets?x="]);
    assert!(expect_exit(&bad_namespace, 2).contains("--namespace"));

    // --context that no file defines: exit 2, naming the contexts there are.
    let unknown = runner_as_user(&lab, &[], &["exec", "pods-ready", "--kubeconfig", path(&lab.kubeconfig()), "--context", "aks-prod"]);
    let message = expect_exit(&unknown, 2);
    assert!(message.contains("no context `aks-prod`") && message.contains("runner-lab"), "{message}");

    // An exec credential plugin: called once per run (kubectl, too, calls it once per command).
    let calls = lab.dir.path().join("plugin-calls");
    let plugin = lab.dir.path().join("credential-plugin.sh");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\necho called >> '{}'\ntest -n \"$KUBERNETES_EXEC_INFO\" || exit 3\nprintf '%s' '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{}\",\"expirationTimestamp\":\"2099-01-01T00:00:00Z\"}}}}'\n",
            calls.display(),
            token(&lab)
        ),
    )
    .unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&plugin).status().unwrap();
    let exec_user = format!("    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never", plugin.display());
    let with_plugin = rewritten_kubeconfig(&lab, "plugin-cluster", None, &exec_user);
    let output = runner_as_user(&lab, &[], &["exec", "pods-ready", "--kubeconfig", path(&with_plugin), "-o", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}{}", stdout(&output), stderr(&output));
    assert_eq!(json_of(&output)["target"], "context plugin-cluster", "a copy of the lab's kubeconfig is a plain kubeconfig");
    let called = std::fs::read_to_string(&calls).unwrap_or_default().lines().count();
    assert_eq!(called, 1, "the plugin ran {called} times in one run");
    let kubectl = Command::new("kubectl").arg("--kubeconfig").arg(&with_plugin).args(["get", "pods", "-o", "name"]).output().unwrap();
    assert!(stdout(&kubectl).contains("pod/postgres-cluster-0"), "kubectl reads the same kubeconfig: {}{}", stdout(&kubectl), stderr(&kubectl));

    // A refused connection names the server and the context (exit 4).
    let dead = rewritten_kubeconfig(&lab, "dead-cluster", Some("http://127.0.0.1:1"), &format!("    token: \"{}\"", token(&lab)));
    let refused = runner_as_user(&lab, &[("KUBECONFIG", &dead)], &["exec", "pods-ready"]);
    let message = expect_exit(&refused, 4);
    assert!(message.contains("http://127.0.0.1:1") && message.contains("context dead-cluster"), "{message}");
}
