//! Gates written in Python: `runner new gate --lang python`, `runner build`
//! (componentize-py, the manifest section, the host's checks, the compile
//! cache) and `runner test` of the scaffolded case.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

/// `runner ARGS` with `sandbox`'s cache and an extra environment.
fn runner_with(sandbox: &Sandbox, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = assert_cmd::Command::cargo_bin("runner").unwrap();
    command.env("RUNNER_CACHE_DIR", sandbox.dir.path().join("cache")).env_remove("RUNNER_LOG").args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.timeout(std::time::Duration::from_secs(900));
    command.output().unwrap()
}

fn compiled_entries(cache: &Path) -> usize {
    std::fs::read_dir(cache).map(|d| d.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "cwasm")).count()).unwrap_or(0)
}

/// One componentize-py build (~20 s) and one compile shared by every assert
/// about the scaffolded gate; then a second build whose contract copy lets
/// the gate import a mutating interface, which the host refuses.
#[test]
fn a_scaffolded_python_gate_builds_into_a_checked_precompiled_component_and_passes_its_case() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("replica-check");
    let created = sandbox.runner(&["new", "gate", "replica-check", "--lang", "python", "--dir", path(&dir), "-o", "json"]);
    let created = json_of(&created);
    assert_eq!(created["lang"], "python");
    for file in ["app.py", "manifest.toml", "wit/policy.wit", "tests/replica-check.test.yaml", "README.md"] {
        assert!(dir.join(file).is_file(), "{file} missing; created: {created}");
    }
    assert!(std::fs::read_to_string(dir.join("manifest.toml")).unwrap().contains("name = \"replica-check\""));

    let built = runner_with(&sandbox, &[], &["build", path(&dir), "-o", "json"]);
    let text = expect_exit(&built, 0);
    let report = json_of(&built);
    let component = dir.join("target/replica-check.wasm");
    assert_eq!(report["component"], path(&component), "{text}");
    assert_eq!(report["name"], "replica-check");
    assert_eq!(report["language"], "python");
    assert_eq!(report["bytes"].as_u64(), Some(std::fs::metadata(&component).unwrap().len()));
    assert!(report["digest"].as_str().unwrap().starts_with("sha256:"));
    let imports: Vec<&str> = report["imports"].as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect();
    assert!(imports.iter().any(|i| i.starts_with("runner:policy/kube-read@")), "{imports:?}");
    assert!(imports.iter().all(|i| i.starts_with("runner:policy/")), "only the host's interfaces, no WASI: {imports:?}");
    assert!(text.contains("build: compiling replica-check"), "progress on stderr:\n{text}");
    assert_eq!(report["already_compiled"], false);
    assert_eq!(compiled_entries(&sandbox.dir.path().join("cache")), 1, "the build compiled it into the cache");

    // `runner review` reads the appended manifest as it reads a Rust gate's.
    let review = json_of(&sandbox.runner(&["review", path(&component), "-o", "json"]));
    assert!(review.to_string().contains("kube:list:v1/Pod"), "{review}");

    // The first exec loads what the build compiled (no lab here: the list answers unavailable, exit 4).
    let exec = sandbox.runner(&["exec", path(&component), "-o", "json"]);
    let text = expect_exit(&exec, 4);
    assert_eq!(json_of(&exec)["compiled_from_cache"], true, "the first exec after `runner build` must not compile:\n{text}");

    let tested = sandbox.runner(&["test", path(&dir)]);
    let text = expect_exit(&tested, 0);
    assert!(text.contains("1 passed"), "{text}");

    // A gate importing a mutating interface is refused as `runner exec` refuses it.
    let wit = dir.join("wit/policy.wit");
    let contract = std::fs::read_to_string(&wit).unwrap();
    let widened = contract.replacen("world gate {\n    include gate-imports;\n", "world gate {\n    include gate-imports;\n    import kube-write;\n", 1);
    assert_ne!(widened, contract, "the contract's gate world has moved: update this test");
    std::fs::write(&wit, widened).unwrap();
    let refused = runner_with(&sandbox, &[], &["build", path(&dir), "--out", path(&sandbox.dir.path().join("refused.wasm"))]);
    let text = expect_exit(&refused, 2);
    assert!(text.contains("manifest says world `gate`") && text.contains("kube-write"), "{text}");
    assert!(!sandbox.dir.path().join("refused.wasm").exists(), "nothing written for a refused component");
}

#[test]
fn a_missing_componentize_py_is_bad_input_naming_the_install_command() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("my-check");
    expect_exit(&sandbox.runner(&["new", "gate", "my-check", "--lang", "python", "--dir", path(&dir)]), 0);
    let missing = runner_with(&sandbox, &[("RUNNER_COMPONENTIZE_PY", "/nonexistent/componentize-py")], &["build", path(&dir)]);
    let text = expect_exit(&missing, 2);
    assert!(text.contains("/nonexistent/componentize-py"), "{text}");
    assert!(text.contains("pip install componentize-py==0.25.1"), "the exact install command: {text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn python_patterns_and_sdk_flags_are_refused_clearly() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("p");
    let text = expect_exit(&sandbox.runner(&["new", "pattern", "p", "--lang", "python", "--dir", path(&dir)]), 2);
    assert!(text.contains("gates only"), "{text}");
    assert!(!dir.exists());
    let text = expect_exit(&sandbox.runner(&["new", "gate", "p", "--lang", "python", "--sdk", "/tmp", "--dir", path(&dir)]), 2);
    assert!(text.contains("--sdk"), "{text}");
    let text = expect_exit(&sandbox.runner(&["build", path(sandbox.dir.path())]), 2);
    assert!(text.contains("neither a Rust policy crate"), "{text}");
}
