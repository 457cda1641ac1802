//! Every kind of bad input gets one clear line and exit code 2, never a panic.

mod common;

use common::*;

fn expect_bad_input(output: &std::process::Output, mentions: &str) {
    let text = expect_exit(output, 2);
    let err = stderr(output);
    assert!(err.contains(mentions), "stderr should mention `{mentions}`:\n{text}");
    assert!(!err.contains("panicked"), "no panics:\n{text}");
}

/// A component binary with a `runner-manifest` custom section appended.
fn component_with_manifest(wat: &str, manifest: &str) -> Vec<u8> {
    let mut bytes = wat::parse_str(wat).unwrap();
    let name = b"runner-manifest";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(manifest.as_bytes());
    bytes.push(0);
    let mut size = payload.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            bytes.push(byte);
            break;
        }
        bytes.push(byte | 0x80);
    }
    bytes.extend_from_slice(&payload);
    bytes
}

const GATE_MANIFEST: &str = "name = \"odd\"\nversion = \"0.1.0\"\nworld = \"gate\"\n";

#[test]
fn missing_file() {
    let sandbox = Sandbox::new();
    expect_bad_input(&sandbox.runner(&["exec", "/nonexistent/gate.wasm"]), "cannot read");
    expect_bad_input(&sandbox.runner(&["exec", "no-such-policy"]), "no policy named no-such-policy");
}

/// Policies are found by the name `runner list` shows (their manifest's),
/// whatever their file is called, and a name never reads the current
/// directory (where `runner new` leaves a crate folder of that name).
#[test]
fn a_policy_is_found_by_its_manifest_name_and_never_shadowed_by_a_folder() {
    let sandbox = Sandbox::new();
    let shelf = sandbox.dir.path().join("shelf");
    std::fs::create_dir_all(shelf.join("injection-gate")).unwrap();
    // Cargo names the artifact with underscores; the manifest says injection-gate.
    std::fs::copy(fixture("injection-gate"), shelf.join("injection_gate.wasm")).unwrap();
    let runner = |args: &[&str]| {
        let mut command = assert_cmd::Command::cargo_bin("runner").unwrap();
        command.current_dir(&shelf).env("RUNNER_CACHE_DIR", sandbox.dir.path().join("cache")).env("RUNNER_POLICY_PATH", &shelf).args(args);
        command.output().unwrap()
    };
    let list = stdout(&runner(&["list", "--output", "json"]));
    let names: Vec<String> =
        serde_json::from_str::<serde_json::Value>(&list).unwrap().as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect();
    assert!(names.contains(&"injection-gate".to_string()), "{list}");
    let review = runner(&["review", "injection-gate", "--output", "json"]);
    let text = expect_exit(&review, 0);
    assert!(json_of(&review)["path"].as_str().is_some_and(|p| p.ends_with("injection_gate.wasm")), "{text}");
    // A path is a path: the folder is read as one, and refused as a directory.
    expect_bad_input(&runner(&["review", "./injection-gate"]), "a directory");
    // A name nobody has mentions the folder that was not looked at.
    std::fs::create_dir_all(shelf.join("nobody")).unwrap();
    expect_bad_input(&runner(&["review", "nobody"]), "./nobody in this directory is not looked at");
}

#[test]
fn not_wasm() {
    let sandbox = Sandbox::new();
    let file = sandbox.dir.path().join("notes.wasm");
    std::fs::write(&file, "just some text").unwrap();
    expect_bad_input(&sandbox.runner(&["exec", path(&file)]), "not a WebAssembly component");
}

#[test]
fn truncated_component() {
    let sandbox = Sandbox::new();
    let bytes = std::fs::read(bundled("pods-ready")).unwrap();
    let file = sandbox.dir.path().join("truncated.wasm");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    expect_bad_input(&sandbox.runner(&["exec", path(&file)]), "truncated or corrupt");
    expect_bad_input(&sandbox.runner(&["review", path(&file)]), "truncated or corrupt");
}

#[test]
fn core_module_instead_of_component() {
    let sandbox = Sandbox::new();
    let file = sandbox.dir.path().join("core.wasm");
    std::fs::write(&file, wat::parse_str("(module (func (export \"evaluate\")))").unwrap()).unwrap();
    expect_bad_input(&sandbox.runner(&["exec", path(&file)]), "core WebAssembly module, not a component");
}

#[test]
fn component_without_manifest() {
    let sandbox = Sandbox::new();
    let file = sandbox.dir.path().join("bare.wasm");
    std::fs::write(&file, wat::parse_str("(component)").unwrap()).unwrap();
    expect_bad_input(&sandbox.runner(&["exec", path(&file)]), "no `runner-manifest` custom section");
}

#[test]
fn unknown_imports() {
    let sandbox = Sandbox::new();
    let file = sandbox.dir.path().join("exfiltrate.wasm");
    let wat = r#"(component
        (import "acme:evil/exfiltrate" (instance (export "send" (func (param "data" string)))))
        (core module $m (func (export "evaluate")))
    )"#;
    std::fs::write(&file, component_with_manifest(wat, GATE_MANIFEST)).unwrap();
    expect_bad_input(&sandbox.runner(&["exec", path(&file)]), "imports the host cannot provide: acme:evil/exfiltrate");
}

#[test]
fn component_of_another_world() {
    let sandbox = Sandbox::new();
    // Says gate, exports nothing a gate exports.
    let file = sandbox.dir.path().join("no-export.wasm");
    std::fs::write(&file, component_with_manifest("(component)", GATE_MANIFEST)).unwrap();
    expect_bad_input(&sandbox.runner(&["exec", path(&file)]), "does not export `evaluate`");
    // Exports `evaluate` with the wrong signature.
    let file = sandbox.dir.path().join("wrong-signature.wasm");
    let wat = r#"(component
        (core module $m (func (export "f")))
        (core instance $i (instantiate $m))
        (func (export "evaluate") (canon lift (core func $i "f")))
    )"#;
    std::fs::write(&file, component_with_manifest(wat, GATE_MANIFEST)).unwrap();
    expect_bad_input(&sandbox.runner(&["exec", path(&file)]), "does not match the `gate` world");
    // A real pattern presented as a gate to a slot, and a gate that imports a mutating interface.
    expect_bad_input(&sandbox.runner(&["exec", path(&fixture("sneaky-gate"))]), "imports interfaces a gate may not have: kube-write");
    let probe = fixture("probe-pattern");
    expect_bad_input(&sandbox.runner(&["exec", path(&probe), "--gate", &format!("check={}", path(&probe))]), "is a pattern, not a gate");
}

#[test]
fn bad_config_values() {
    let sandbox = Sandbox::new();
    expect_bad_input(&sandbox.runner(&["exec", "pods-ready", "--config", "colour=red"]), "unknown config key `colour`");
    expect_bad_input(&sandbox.runner(&["exec", "pods-ready", "--config", "min-pods=several"]), "not a valid integer");
    expect_bad_input(&sandbox.runner(&["exec", "pods-ready", "--config", "novalue"]), "is not KEY=VALUE");
}

#[test]
fn bad_allow_values() {
    let sandbox = Sandbox::new();
    expect_bad_input(&sandbox.runner(&["exec", "pods-ready", "--allow", "kube"]), "not of the form interface:verb");
    expect_bad_input(&sandbox.runner(&["exec", "pods-ready", "--allow", "kube:teleport"]), "unknown verb");
    let grants = sandbox.dir.path().join("grants.toml");
    std::fs::write(&grants, "allow = [\"kube:patch\"]\nextra = 1\n").unwrap();
    expect_bad_input(&sandbox.runner(&["exec", "pods-ready", "--grants", path(&grants)]), "unknown field");
}

#[test]
fn bad_target_gate_binding_and_flags() {
    let sandbox = Sandbox::new();
    expect_bad_input(&sandbox.runner(&["exec", "pods-ready", "--target", "/nonexistent/target.yaml"]), "no such file");
    let probe = fixture("probe-pattern");
    expect_bad_input(&sandbox.runner(&["exec", path(&probe), "--gate", "nope=pods-ready"]), "has no slot `nope`");
    expect_bad_input(&sandbox.runner(&["exec", "pods-ready", "--gate", "x=pods-ready"]), "has no slot `x`");
    expect_bad_input(&sandbox.runner(&["exec", "pods-ready", "--memory", "lots"]), "not a size");
    expect_bad_input(&sandbox.runner(&["exec", "pods-ready", "--deadline", "soon"]), "not a duration");
    expect_exit(&sandbox.runner(&["exec", "pods-ready", "--frobnicate"]), 2);
    expect_exit(&sandbox.runner(&["launch"]), 2);
}

#[test]
fn a_component_built_for_another_contract() {
    let sandbox = Sandbox::new();
    let file = sandbox.dir.path().join("contract-0.1.wasm");
    // What the SDK built before contract 0.2: the same names, another version.
    let wat = r#"(component
        (import "runner:policy/kube-read@0.1.0" (instance (export "get" (func (param "name" string)))))
        (core module $m (func (export "f")))
        (core instance $i (instantiate $m))
        (func (export "evaluate") (canon lift (core func $i "f")))
    )"#;
    std::fs::write(&file, component_with_manifest(wat, GATE_MANIFEST)).unwrap();
    let refused = "built for contract runner:policy@0.1.0, but this runner speaks runner:policy@0.2.0";
    expect_bad_input(&sandbox.runner(&["exec", path(&file)]), refused);
    expect_bad_input(&sandbox.runner(&["exec", path(&fixture("probe-pattern")), "--gate", &format!("check={}", path(&file))]), refused);
    expect_bad_input(&sandbox.runner(&["review", path(&file)]), refused);
    expect_bad_input(&sandbox.runner(&["review", "pods-ready", "--against", path(&file)]), refused);
}

#[test]
fn files_that_are_not_components_are_refused_before_they_are_read() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path();
    let fifo = dir.join("gate.fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let huge = dir.join("huge.wasm");
    // Sparse: 2 GB on paper, nothing on disk; it must not be read whole.
    std::fs::File::create(&huge).unwrap().set_len(2 << 30).unwrap();
    let started = std::time::Instant::now();
    expect_bad_input(&sandbox.runner(&["exec", path(&fifo)]), "not a regular file (a FIFO, socket or device)");
    expect_bad_input(&sandbox.runner(&["exec", "/dev/zero"]), "not a regular file");
    expect_bad_input(&sandbox.runner(&["exec", path(dir)]), "a directory, not a component file");
    expect_bad_input(&sandbox.runner(&["exec", path(&huge)]), "a component is at most 268435456 bytes");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "refused at once, took {:?}", started.elapsed());
}

/// With JSON asked for (`-o json` or `--output=json`), an error is a JSON
/// document on stdout too, whether the arguments or the input are wrong.
#[test]
fn errors_are_json_when_json_was_asked_for() {
    let sandbox = Sandbox::new();
    for (args, mentions) in [
        (&["exec", "no-such-policy", "-o", "json"][..], "no policy named no-such-policy"),
        (&["review", "no-such-policy", "--output=json"][..], "no policy named no-such-policy"),
        (&["exec", "pods-ready", "--bogus", "-o", "json"][..], "unexpected argument '--bogus'"),
    ] {
        let output = sandbox.runner(args);
        expect_bad_input(&output, mentions);
        let document = json_of(&output);
        assert_eq!(document["exit"], 2, "{document}");
        assert!(document["error"]["message"].as_str().is_some_and(|m| m.contains(mentions)), "{document}");
    }
    // YAML asked for: the same document in YAML.
    for args in [&["exec", "no-such-policy", "-o", "yaml"][..], &["list", "--bogus", "--output=yaml"][..]] {
        let output = sandbox.runner(args);
        let document: serde_json::Value = serde_yaml::from_str(&stdout(&output)).unwrap_or_else(|e| panic!("{args:?}: not YAML ({e}): {}", stdout(&output)));
        assert_eq!(document["exit"], 2, "{document}");
        assert!(document["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{document}");
    }
    // Text stays text: nothing on stdout.
    assert_eq!(stdout(&sandbox.runner(&["exec", "no-such-policy"])), "");
}
