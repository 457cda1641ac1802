//! Names with separators in every import argument that reaches a Kubernetes
//! request path or a database connection, from a gate and from a pattern,
//! against a real lab. Each must be refused as `invalid` before the
//! capability check (a namespace such as `default/secrets/x?` once turned a
//! granted Pod read into a read of a Secret); the same calls with valid names
//! succeed on the same lab, so the refusals are not everything being denied.

mod common;

use std::collections::BTreeSet;

use common::lab::Lab;
use common::*;
use serde_json::Value;

/// Separators and look-alikes: `/`, `?`, `#`, `%2F`, `..`, whitespace, unicode.
const HOSTILE: &[&str] = &[
    "default/secrets/postgres-credentials?x=",
    "default/secrets",
    "postgres-cluster-0?x=1",
    "postgres-cluster-0#x",
    "default%2Fsecrets",
    "..",
    "../secrets",
    "postgres cluster",
    "postgres-cluster-0\n",
    "postgres-clüster-0",
    "postgres-cluster-０",
];

/// Every (call, argument) a hostile string is tried in, per world.
const GATE_CALLS: &[&str] = &[
    "kube-read.get namespace",
    "kube-read.get name",
    "kube-read.get api-version",
    "kube-read.get kind",
    "kube-read.wait-for-condition namespace",
    "kube-read.wait-for-condition name",
    "kube-read.wait-for-condition api-version",
    "kube-read.wait-for-condition kind",
    "kube-read.list namespace",
    "kube-read.list label-selector",
    "kube-read.list field-selector",
    "kube-read.list api-version",
    "kube-read.list kind",
    "postgres-read.query member",
    "redis-read.command member",
    "mongo-read.run-command member",
    "mongo-read.run-command db",
];

const PATTERN_CALLS: &[&str] = &[
    "kube-write.patch namespace",
    "kube-write.patch name",
    "kube-write.patch api-version",
    "kube-write.patch kind",
    "kube-write.delete namespace",
    "kube-write.delete name",
    "kube-write.delete api-version",
    "kube-write.delete kind",
    "kube-write.scale namespace",
    "kube-write.scale name",
    "kube-write.scale api-version",
    "kube-write.scale kind",
    "kube-write.evict namespace",
    "kube-write.evict pod",
    "kube-write.exec namespace",
    "kube-write.exec pod",
    "kube-write.exec container",
    "kube-write.cordon node",
    "kube-write.uncordon node",
    "kube-write.drain node",
    "postgres-write.execute member",
    "redis-write.command member",
    "mongo-write.run-command member",
    "mongo-write.run-command db",
];

/// The controls that must succeed on the lab (the rest reach databases the
/// lab does not run here and must only not be refused as invalid or denied).
const MUST_SUCCEED: &[&str] = &[
    "kube-read.get",
    "kube-read.wait-for-condition",
    "kube-read.list",
    "postgres-read.query",
    "kube-write.patch",
    "kube-write.cordon",
    "kube-write.uncordon",
    "postgres-write.execute",
];

fn check(answers: &[Value], world_calls: &[&str]) {
    let mut tried = BTreeSet::new();
    for answer in answers {
        let (call, argument, value, code) =
            (answer["call"].as_str().unwrap(), answer["argument"].as_str().unwrap(), answer["value"].as_str().unwrap(), answer["answer"].as_str().unwrap());
        if argument == "control" {
            if MUST_SUCCEED.contains(&call) {
                assert_eq!(code, "ok", "the valid {call} must succeed on the lab: {answer}");
            } else {
                assert!(!matches!(code, "invalid" | "denied"), "the valid {call} was refused: {answer}");
            }
            continue;
        }
        assert_eq!(code, "invalid", "{call} with {argument} = {value:?} must be refused as invalid: {answer}");
        tried.insert(format!("{call} {argument}"));
    }
    let expected: BTreeSet<String> = world_calls.iter().map(|s| s.to_string()).collect();
    assert_eq!(tried, expected, "every name-taking argument is tried");
    assert_eq!(answers.iter().filter(|a| a["argument"] != "control").count(), world_calls.len() * HOSTILE.len(), "each with every hostile string");
}

#[test]
fn names_with_separators_are_invalid_in_every_world_and_reach_nothing() {
    let lab = Lab::up(&["--subnet", "212"]);
    let control = lab.dir.path().join("injection-control.json");
    std::fs::write(&control, r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "injection-control"}, "data": {"k": "v"}}"#).unwrap();
    lab.kubectl(&["create", "-f", path(&control)]);
    let password = lab.password("postgres-credentials");
    let values = format!("values={}", serde_json::to_string(HOSTILE).unwrap());
    let journal = lab.dir.path().join("journal.jsonl");

    let gate = fixture("injection-gate");
    let output = lab.runner(&["exec", path(&gate), "--config", &values, "--output", "json", "--journal", path(&journal)]);
    let report = json_of(&output);
    assert_eq!(report["outcome"], "pass", "{}{}", stdout(&output), stderr(&output));
    let evidence = report["evidence"].as_array().unwrap_or_else(|| panic!("evidence: {report}"));
    check(evidence, GATE_CALLS);
    for text in [stdout(&output), stderr(&output), std::fs::read_to_string(&journal).unwrap()] {
        assert!(!text.contains(&password), "the PostgreSQL password leaked");
    }

    let pattern = fixture("injection-pattern");
    let journal = lab.dir.path().join("pattern-journal.jsonl");
    let allow = ["--allow", "kube:*", "--allow", "postgres:*", "--allow", "redis:*", "--allow", "mongo:*"];
    let mut args = vec!["exec", path(&pattern), "--config", &values, "--output", "json", "--journal", path(&journal)];
    args.extend_from_slice(&allow);
    let output = lab.runner(&args);
    let report = json_of(&output);
    assert_eq!(report["outcome"], "succeeded", "{}{}", stdout(&output), stderr(&output));
    let answers: Vec<Value> = serde_json::from_str(report["reasons"][0].as_str().unwrap()).unwrap();
    let calls: Vec<&str> = GATE_CALLS.iter().chain(PATTERN_CALLS).copied().collect();
    check(&answers, &calls);

    // The journal names each refusal as invalid, with the arguments as given.
    let journaled: Vec<Value> = std::fs::read_to_string(&journal).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let invalid = journaled.iter().filter(|e| e["outcome"] == "invalid").count();
    assert_eq!(invalid, answers.iter().filter(|a| a["argument"] != "control").count(), "one journal line per refusal");

    // Nothing a hostile call aimed at changed; the control's patch landed.
    assert_eq!(lab.kubectl(&["get", "configmap", "injection-control", "-o", "jsonpath={.metadata.labels.injected}"]).trim(), "yes");
    assert!(lab.kubectl_raw(&["get", "secret", "postgres-credentials"]).status.success(), "the Secret is still there");
    assert_eq!(lab.kubectl(&["get", "service", "postgres-primary", "-o", "jsonpath={.metadata.labels.injected}"]).trim(), "");
    assert_eq!(lab.kubectl(&["get", "statefulset", "postgres-cluster", "-o", "jsonpath={.spec.replicas}"]).trim(), "3");
    // A bundled gate, from operator configuration alone.
    let output = lab.runner(&["exec", "pods-ready", "--config", "namespace=default/secrets?x=", "--output", "json"]);
    let report = json_of(&output);
    assert_eq!(report["error"]["code"], "invalid", "{report}");
    assert!(!stdout(&output).contains(&password) && !stderr(&output).contains(&password));

    let unschedulable = lab.kubectl(&["get", "nodes", "-o", "jsonpath={.items[*].spec.unschedulable}"]);
    assert!(!unschedulable.contains("true"), "no node left cordoned: {unschedulable}");

    // The cluster's own refusal (a wrong token: 401) is a denial too: exit 3,
    // in the server's words, listed in the report.
    let kubeconfig = std::fs::read_to_string(lab.kubeconfig()).unwrap();
    let token = kubeconfig.lines().find_map(|l| l.trim().strip_prefix("token: ")).expect("the lab's kubeconfig has a token").trim().to_string();
    let wrong = lab.dir.path().join("wrong-token.kubeconfig");
    std::fs::write(&wrong, kubeconfig.replace(&token, "not-the-token")).unwrap();
    let target = lab.dir.path().join("wrong-token.yaml");
    std::fs::write(&target, format!("kubeconfig: {}\n", wrong.display())).unwrap();
    let output = lab.runner(&["exec", "pods-ready", "--target", path(&target), "--output", "json"]);
    let report = json_of(&output);
    assert_eq!(report["exit_code"], 3, "{report}");
    let denied = report["denied"][0].as_str().unwrap_or_default();
    assert!(denied.contains("the cluster refused"), "{report}");
}
