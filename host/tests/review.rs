//! `review`, `list`, `new` and completions: what a reviewer and a policy
//! author see.

mod common;

use common::*;

#[test]
fn review_shows_what_a_policy_can_touch() {
    let sandbox = Sandbox::new();
    let output = sandbox.runner(&["review", path(&fixture("probe-pattern"))]);
    let text = expect_exit(&output, 0);
    let mutating: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with("MUTATES")).collect();
    assert_eq!(mutating.len(), 3, "{text}");
    let first_cap = text.lines().skip_while(|l| !l.starts_with("capabilities")).nth(1).unwrap();
    assert!(first_cap.contains("MUTATES"), "mutations come first: {text}");
    for expected in
        ["probe-pattern 0.1.0 (pattern)", "digest:  sha256:", "gate slots:", "check", "-> pods-ready", "steps:", "rollback:", "outcome", "kube-write"]
    {
        assert!(text.contains(expected), "`{expected}` missing:\n{text}");
    }
    assert!(!text.contains("disagree"), "kube-read imported only for its types is not a mismatch:\n{text}");
}

#[test]
fn review_json_is_complete() {
    let sandbox = Sandbox::new();
    let output = sandbox.runner(&["review", "pods-ready", "--output", "json"]);
    expect_exit(&output, 0);
    let review: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(review["name"], "pods-ready");
    assert_eq!(review["world"], "gate");
    assert_eq!(review["capabilities"], serde_json::json!([{"capability": "kube:list:v1/Pod", "mutating": false}]));
    assert_eq!(review["imports"]["policy"], serde_json::json!(["kube-read"]));
    assert_eq!(review["config"]["selector"]["default"], "app=postgres");
    assert!(review["digest"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn review_against_puts_new_capabilities_first() {
    let sandbox = Sandbox::new();
    let output = sandbox.runner(&["review", path(&fixture("probe-pattern")), "--against", "pods-ready"]);
    let text = expect_exit(&output, 0);
    let changes: Vec<&str> = text.lines().skip(1).collect();
    assert!(changes[0].contains("a different policy: pods-ready -> probe-pattern"), "{text}");
    assert!(changes[1].contains("NEW MUTATING CAPABILITY"), "{text}");
    assert!(text.contains("- capability: kube:list:v1/Pod"), "{text}");
    assert!(text.contains("+ config: outcome"), "{text}");
    let same = sandbox.runner(&["review", "pods-ready", "--against", path(&bundled("pods-ready")), "--output", "json"]);
    expect_exit(&same, 0);
    let diff: serde_json::Value = serde_json::from_slice(&same.stdout).unwrap();
    assert_eq!(diff["code_changed"], false);
    assert_eq!(diff["capabilities_added"], serde_json::json!([]));
}

#[test]
fn list_shows_the_bundled_policies() {
    let sandbox = Sandbox::new();
    let output = sandbox.runner(&["list"]);
    let text = expect_exit(&output, 0);
    assert!(text.lines().any(|l| l.starts_with("pods-ready") && l.contains("gate")), "{text}");
}

#[test]
fn completions_are_printed() {
    let sandbox = Sandbox::new();
    for shell in ["zsh", "fish"] {
        let output = sandbox.runner(&["completions", shell]);
        assert!(expect_exit(&output, 0).contains("runner list --names"), "{shell}: the policy names are asked for");
    }
}

/// The bash completions, sourced in a real bash: `runner exec <TAB>` offers
/// the policies `runner list --names` finds, `--target <TAB>` offers `lab`,
/// and a flag still completes through clap's function.
#[test]
fn bash_completes_policy_names_and_lab() {
    let sandbox = Sandbox::new();
    let script = sandbox.dir.path().join("runner.bash");
    std::fs::write(&script, sandbox.runner(&["completions", "bash"]).stdout).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("runner");
    let complete = |words: &str| {
        let program = format!(
            "source '{}'; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _runner_with_policies runner; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let output = std::process::Command::new("bash")
            .args(["-c", &program])
            .env("PATH", format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default()))
            .env("RUNNER_POLICY_PATH", repo().join("policies/dist"))
            .current_dir(sandbox.dir.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{words}: {}", stderr(&output));
        stdout(&output).lines().map(str::to_string).collect::<Vec<_>>()
    };
    let policies = complete("runner exec pg-");
    assert!(policies.contains(&"pg-preflight".to_string()) && policies.contains(&"pg-healthy".to_string()), "{policies:?}");
    assert!(!policies.contains(&"pods-ready".to_string()), "only what matches the prefix: {policies:?}");
    assert!(complete("runner review ''").contains(&"postgres-ferris-wheel".to_string()));
    assert!(complete("runner exec pods-ready --target ''").contains(&"lab".to_string()));
    assert!(complete("runner exec pods-ready --dry").contains(&"--dry-run".to_string()), "flags still complete");
}

#[test]
fn a_scaffold_builds_as_generated_and_runs() {
    let sandbox = Sandbox::new();
    for kind in ["gate", "pattern"] {
        let dir = sandbox.dir.path().join(format!("my-{kind}"));
        let name = format!("my-{kind}");
        let output = sandbox.runner(&["new", kind, &name, "--dir", path(&dir)]);
        expect_exit(&output, 0);
        // Shareable as generated: no path outside the crate (the SDK is copied into it).
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains(r#"runner-sdk = { path = "runner-sdk" }"#) && !manifest.contains(path(&repo())), "{manifest}");
        assert!(dir.join("runner-sdk/src/bindings.rs").is_file());
        let target_dir = std::env::var("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_else(|_| repo().join("target"));
        let build = std::process::Command::new("cargo")
            .args(["build", "--release", "--quiet", "--target", "wasm32-wasip2", "--target-dir"])
            .arg(&target_dir)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(build.status.success(), "the generated {kind} must build:\n{}", String::from_utf8_lossy(&build.stderr));
        let wasm = target_dir.join(format!("wasm32-wasip2/release/my_{kind}.wasm"));
        let review = sandbox.runner(&["review", path(&wasm)]);
        assert!(expect_exit(&review, 0).contains(&format!("{name} 0.1.0 ({kind})")));
        // No lab runs: the gate (and the pattern's preflight gate) cannot reach Kubernetes, exit 4.
        let exec = sandbox.runner(&["exec", path(&wasm), "--dry-run"]);
        expect_exit(&exec, 4);
    }
    let as_json = sandbox.runner(&["new", "pattern", "as-json", "--dir", path(&sandbox.dir.path().join("as-json")), "-o", "json"]);
    let document = json_of(&as_json);
    assert_eq!((document["kind"].as_str(), document["component"].as_str()), (Some("pattern"), Some("target/wasm32-wasip2/release/as_json.wasm")), "{document}");
    assert!(document["files"].as_array().is_some_and(|f| f.iter().any(|f| f == "runner-sdk/Cargo.toml")), "{document}");
    let git = sandbox.dir.path().join("from-git");
    expect_exit(&sandbox.runner(&["new", "gate", "from-git", "--dir", path(&git), "--sdk-git", "https://git.example.com/sre/runner#v0.1.0"]), 0);
    let manifest = std::fs::read_to_string(git.join("Cargo.toml")).unwrap();
    assert!(manifest.contains(r#"runner-sdk = { git = "https://git.example.com/sre/runner", rev = "v0.1.0" }"#), "{manifest}");
    assert!(!git.join("runner-sdk").exists(), "a git dependency copies nothing");
    let again = sandbox.runner(&["new", "gate", "my-gate", "--dir", path(&sandbox.dir.path().join("my-gate"))]);
    assert!(expect_exit(&again, 2).contains("already exists"));
    assert!(expect_exit(&sandbox.runner(&["new", "gate", "Bad Name"]), 2).contains("not a valid name"));
}

/// The rules of each role in `runner review --rbac` YAML: (kind, group, resource, verbs).
fn rbac_rules(yaml: &str) -> Vec<(String, String, String, Vec<String>)> {
    let mut rules = Vec::new();
    for doc in yaml.split("\n---\n") {
        let role: serde_json::Value = serde_yaml::from_str(doc).unwrap_or_else(|e| panic!("not YAML ({e}):\n{doc}"));
        assert_eq!(role["apiVersion"], "rbac.authorization.k8s.io/v1");
        for rule in role["rules"].as_array().unwrap() {
            let strings = |v: &serde_json::Value| v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect::<Vec<_>>();
            for resource in strings(&rule["resources"]) {
                rules.push((role["kind"].as_str().unwrap().to_string(), strings(&rule["apiGroups"])[0].clone(), resource, strings(&rule["verbs"])));
            }
        }
    }
    rules
}

#[test]
fn review_rbac_prints_the_minimal_role() {
    let sandbox = Sandbox::new();
    let output = sandbox.runner(&["review", "pods-ready", "--rbac"]);
    let yaml = stdout(&output);
    expect_exit(&output, 0);
    assert_eq!(rbac_rules(&yaml), vec![("Role".into(), "".into(), "pods".into(), vec!["list".into(), "watch".into()])], "{yaml}");
    assert!(yaml.contains("# kube:list:v1/Pod"), "each rule says which capability needs it:\n{yaml}");

    // A pattern: its own capabilities and those of the gate bound to its slot.
    let output = sandbox.runner(&["review", path(&fixture("probe-pattern")), "--rbac"]);
    let yaml = stdout(&output);
    expect_exit(&output, 0);
    let rules = rbac_rules(&yaml);
    let has = |kind: &str, group: &str, resource: &str, verbs: &[&str]| {
        rules.iter().any(|r| r.0 == kind && r.1 == group && r.2 == resource && r.3 == verbs.iter().map(|v| v.to_string()).collect::<Vec<_>>())
    };
    assert!(has("Role", "apps", "statefulsets/scale", &["get", "update", "patch"]), "{yaml}");
    assert!(has("Role", "", "services", &["patch"]), "{yaml}");
    assert!(rules.iter().any(|r| r.2 == "pods" && r.3.contains(&"list".to_string())), "the gate's list of Pods: {yaml}");
    assert!(!rules.iter().any(|r| r.0 == "ClusterRole"), "nothing cluster-scoped: {yaml}");
    assert!(yaml.contains("gate slot check: pods-ready"), "{yaml}");

    let json = sandbox.runner(&["review", "pods-ready", "--rbac", "--output", "json"]);
    expect_exit(&json, 0);
    let list: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["kind"], "Role");

    expect_exit(&sandbox.runner(&["review", "pods-ready", "--rbac", "--against", "pods-ready"]), 2);
}

/// The Secret rules of `runner review --rbac` YAML, as their `resourceNames` (null: every Secret).
fn secret_rules(yaml: &str) -> Vec<serde_json::Value> {
    let mut names = Vec::new();
    for doc in yaml.split("\n---\n") {
        let role: serde_json::Value = serde_yaml::from_str(doc).unwrap_or_else(|e| panic!("not YAML ({e}):\n{doc}"));
        for rule in role["rules"].as_array().unwrap().iter().filter(|r| r["resources"][0] == "secrets") {
            assert_eq!(rule["verbs"], serde_json::json!(["get"]), "{yaml}");
            names.push(rule["resourceNames"].clone());
        }
    }
    names
}

#[test]
fn review_rbac_grants_only_the_credential_secrets_the_target_names() {
    let sandbox = Sandbox::new();
    // The lab's target (the default): its PostgreSQL cluster's Secret, by name.
    let output = sandbox.runner(&["review", "pg-healthy", "--rbac"]);
    let yaml = expect_exit(&output, 0);
    assert_eq!(secret_rules(&yaml), vec![serde_json::json!(["postgres-credentials"])], "{yaml}");

    // A target file: its Secret; a database reading its password from the environment needs none.
    let target = sandbox.dir.path().join("prod.yaml");
    std::fs::write(
        &target,
        "namespace: databases\ndatabases:\n  orders:\n    engine: postgres\n    credentials:\n      secret: orders-superuser\n  reports:\n    engine: postgres\n    credentials:\n      env: REPORTS_PASSWORD\n",
    )
    .unwrap();
    let output = sandbox.runner(&["review", "pg-healthy", "--rbac", "--target", path(&target)]);
    let yaml = expect_exit(&output, 0);
    assert_eq!(secret_rules(&yaml), vec![serde_json::json!(["orders-superuser"])], "{yaml}");
    let json = sandbox.runner(&["review", "pg-healthy", "--rbac", "--target", path(&target), "--output", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let rules = list["items"][0]["rules"].as_array().unwrap();
    assert!(
        rules.iter().any(|r| r["resources"] == serde_json::json!(["secrets"]) && r["resourceNames"] == serde_json::json!(["orders-superuser"])),
        "{list:#}"
    );

    // A target only the RBAC uses: without --rbac it is a mistake, and a bad file is one too.
    expect_exit(&sandbox.runner(&["review", "pg-healthy", "--target", path(&target)]), 2);
    std::fs::write(&target, "databases: {orders: {engine: oracle}}\n").unwrap();
    expect_exit(&sandbox.runner(&["review", "pg-healthy", "--rbac", "--target", path(&target)]), 2);
}
