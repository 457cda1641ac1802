//! Policies by reference against a real registry (Debian's docker-registry,
//! distribution 2.8, on loopback): push and pull by tag and digest, the
//! cache with the registry stopped, a tampered layer, `--insecure-registry`,
//! `--locked`, image layouts, trust rules before the layer is fetched, a
//! `runner test` case whose component is a reference, and signatures.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::registry::Registry;
use common::{Sandbox, bundled, json_of, stderr, stdout};

/// `runner ARGS` speaking plain HTTP to `registry`, with the sandbox's lock file.
fn runner(sandbox: &Sandbox, registry: &Registry, args: &[&str]) -> Output {
    let lock = lock_file(sandbox);
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--insecure-registry", &registry.address, "--lock", lock.to_str().unwrap()]);
    sandbox.runner(&all)
}

fn lock_file(sandbox: &Sandbox) -> PathBuf {
    sandbox.dir.path().join("runner.lock")
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

fn push(sandbox: &Sandbox, registry: &Registry, component: &str, reference: &str) -> serde_json::Value {
    let file = bundled(component);
    let output = runner(sandbox, registry, &["push", file.to_str().unwrap(), reference, "-o", "json"]);
    assert_eq!(code(&output), 0, "push {component}: {}{}", stdout(&output), stderr(&output));
    json_of(&output)
}

fn pull(sandbox: &Sandbox, registry: &Registry, reference: &str) -> Output {
    runner(sandbox, registry, &["pull", reference, "-o", "json"])
}

fn pulled(sandbox: &Sandbox, registry: &Registry, reference: &str) -> serde_json::Value {
    let output = pull(sandbox, registry, reference);
    assert_eq!(code(&output), 0, "pull {reference}: {}{}", stdout(&output), stderr(&output));
    json_of(&output)
}

#[test]
fn push_then_pull_by_tag_and_by_digest_gives_one_cncf_artifact() {
    let registry = Registry::start();
    let sandbox = Sandbox::new();
    let reference = format!("oci://{}/gates/pods-ready:1", registry.address);
    let pushed = push(&sandbox, &registry, "pods-ready", &reference);
    let digest = pushed["manifest_digest"].as_str().unwrap().to_string();

    // An independent client sees the CNCF Wasm artifact and the runner's annotations.
    let manifest = registry.manifest("gates/pods-ready", "1");
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.wasm.config.v0+json");
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    assert_eq!(manifest["annotations"]["org.opencontainers.image.title"], "pods-ready");
    assert_eq!(manifest["annotations"]["dev.runner.world"], "gate");
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let (status, config) = registry.get(&format!("/v2/gates/pods-ready/blobs/{config_digest}"), "*/*");
    assert_eq!(status, 200);
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert!(config["component"]["exports"].as_array().unwrap().iter().any(|e| e == "evaluate"), "{config}");
    assert!(config["component"]["imports"].as_array().unwrap().iter().any(|i| i.as_str().unwrap().starts_with("runner:policy/")), "{config}");
    assert_eq!(config["layerDigests"][0], manifest["layers"][0]["digest"]);

    let fresh = Sandbox::new();
    let by_tag = pulled(&fresh, &registry, &reference);
    assert_eq!(by_tag["digest"], digest.as_str());
    assert_eq!(by_tag["from_cache"], false);
    assert_eq!(by_tag["layer_digest"], manifest["layers"][0]["digest"]);
    let component = std::fs::read(bundled("pods-ready")).unwrap();
    assert_eq!(by_tag["size_bytes"], component.len());
    let by_digest = pulled(&Sandbox::new(), &registry, &format!("oci://{}/gates/pods-ready@{digest}", registry.address));
    assert_eq!(by_digest["digest"], digest.as_str());
    assert_eq!(by_digest["layer_digest"], by_tag["layer_digest"]);

    // exec loads it through the same path: the run's journal header names where it came from.
    let exec = runner(&fresh, &registry, &["exec", &reference, "--target", "lab"]);
    assert!(code(&exec) != 2, "exec of a reference: {}", stderr(&exec));
    let headers = fresh.journal_headers();
    assert_eq!(headers[0]["policy"]["origin"]["manifest_digest"], digest.as_str(), "{headers:?}");
    assert_eq!(headers[0]["policy"]["name"], "pods-ready");

    let lock = std::fs::read_to_string(lock_file(&fresh)).unwrap();
    assert!(lock.contains("[[policy]]") && lock.contains(&reference) && lock.contains(&digest), "{lock}");
}

#[test]
fn a_cached_digest_needs_no_registry_and_a_tag_does() {
    let mut registry = Registry::start();
    let sandbox = Sandbox::new();
    let reference = format!("oci://{}/gates/pods-ready:1", registry.address);
    let digest = push(&sandbox, &registry, "pods-ready", &reference)["manifest_digest"].as_str().unwrap().to_string();
    let by_digest = format!("oci://{}/gates/pods-ready@{digest}", registry.address);
    pulled(&sandbox, &registry, &by_digest);
    registry.stop();

    let cached = pulled(&sandbox, &registry, &by_digest);
    assert_eq!(cached["from_cache"], true);
    assert_eq!(cached["digest"], digest.as_str());
    let review = sandbox.runner(&["review", &by_digest, "-o", "json"]);
    assert_eq!(code(&review), 0, "{}", stderr(&review));
    assert_eq!(json_of(&review)["origin"]["manifest_digest"], digest.as_str());

    let tag = pull(&sandbox, &registry, &reference);
    assert_eq!(code(&tag), 4, "{}", stderr(&tag));
    assert!(stderr(&tag).contains(&registry.address) && stderr(&tag).contains("unreachable"), "{}", stderr(&tag));
    // Offline, the tag resolves from the cache's tags; an unknown one is not in the cache (exit 2).
    let offline = runner(&sandbox, &registry, &["pull", &reference, "--offline", "-o", "json"]);
    assert_eq!(code(&offline), 0, "{}", stderr(&offline));
    assert_eq!(json_of(&offline)["digest"], digest.as_str());
    let unknown = runner(&sandbox, &registry, &["pull", &format!("oci://{}/gates/pods-ready:2", registry.address), "--offline"]);
    assert_eq!(code(&unknown), 2, "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("not in the cache"), "{}", stderr(&unknown));
}

#[test]
fn a_tampered_layer_is_refused() {
    let registry = Registry::start();
    let sandbox = Sandbox::new();
    let reference = format!("oci://{}/gates/pods-ready:1", registry.address);
    let pushed = push(&sandbox, &registry, "pods-ready", &reference);
    let blob = registry.blob_file(pushed["layer_digest"].as_str().unwrap());
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();

    let fresh = Sandbox::new();
    let output = pull(&fresh, &registry, &reference);
    assert_eq!(code(&output), 2, "{}{}", stdout(&output), stderr(&output));
    assert!(stderr(&output).contains("tampered"), "{}", stderr(&output));
    let exec = runner(&fresh, &registry, &["review", &reference]);
    assert_eq!(code(&exec), 2, "{}", stderr(&exec));
}

#[test]
fn plain_http_is_refused_for_a_registry_off_loopback() {
    let sandbox = Sandbox::new();
    for host in ["10.0.0.1:5000", "registry.example.com:5000"] {
        let output = sandbox.runner(&["pull", &format!("oci://{host}/gates/pods-ready:1"), "--insecure-registry", host]);
        assert_eq!(code(&output), 2, "{}", stderr(&output));
        assert!(stderr(&output).contains(host) && stderr(&output).contains("loopback"), "{}", stderr(&output));
    }
    let malformed = sandbox.runner(&["pull", "oci://127.0.0.1:5000/Gates/x:1"]);
    assert_eq!(code(&malformed), 2);
    assert!(stderr(&malformed).contains("malformed reference"), "{}", stderr(&malformed));
}

#[test]
fn locked_refuses_what_the_lock_lacks_and_pins_a_moved_tag() {
    let registry = Registry::start();
    let sandbox = Sandbox::new();
    let reference = format!("oci://{}/gates/gate:1", registry.address);
    let first = push(&sandbox, &registry, "pods-ready", &reference)["manifest_digest"].as_str().unwrap().to_string();
    pulled(&sandbox, &registry, &reference);
    // The tag moves to another component.
    let moved = push(&sandbox, &registry, "pg-healthy", &reference)["manifest_digest"].as_str().unwrap().to_string();
    assert_ne!(first, moved);

    let locked = runner(&sandbox, &registry, &["review", &reference, "--locked", "-o", "json"]);
    assert_eq!(code(&locked), 0, "{}", stderr(&locked));
    assert_eq!(json_of(&locked)["origin"]["manifest_digest"], first.as_str());
    assert_eq!(json_of(&locked)["name"], "pods-ready");
    let unlocked = runner(&sandbox, &registry, &["review", &reference, "-o", "json"]);
    assert_eq!(json_of(&unlocked)["name"], "pg-healthy");

    let other = format!("oci://{}/gates/gate:2", registry.address);
    let refused = runner(&sandbox, &registry, &["review", &other, "--locked"]);
    assert_eq!(code(&refused), 2);
    assert!(stderr(&refused).contains("runner pull") && stderr(&refused).contains("runner.lock"), "{}", stderr(&refused));
    let by_moved_digest = runner(&sandbox, &registry, &["review", &format!("oci://{}/gates/gate@{moved}", registry.address), "--locked"]);
    assert_eq!(code(&by_moved_digest), 2, "{}", stderr(&by_moved_digest));
    // Bundled names are not affected.
    assert_eq!(code(&runner(&sandbox, &registry, &["review", "pods-ready", "--locked"])), 0);
}

#[test]
fn an_image_layout_written_by_pull_serves_with_the_registry_gone() {
    let mut registry = Registry::start();
    let sandbox = Sandbox::new();
    let reference = format!("oci://{}/gates/pods-ready:1", registry.address);
    let digest = push(&sandbox, &registry, "pods-ready", &reference)["manifest_digest"].as_str().unwrap().to_string();
    let layout = sandbox.dir.path().join("layout");
    let output = runner(&sandbox, &registry, &["pull", &reference, "--layout", layout.to_str().unwrap()]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    registry.stop();
    assert!(layout.join("oci-layout").is_file());

    let elsewhere = Sandbox::new();
    let from_layout = elsewhere.runner(&["review", &format!("oci-layout:{}:1", layout.display()), "-o", "json"]);
    assert_eq!(code(&from_layout), 0, "{}", stderr(&from_layout));
    assert_eq!(json_of(&from_layout)["origin"]["manifest_digest"], digest.as_str());
    // The same layout as a tar (made by tar(1), an independent writer).
    let tar_file = sandbox.dir.path().join("layout.tar");
    let status = std::process::Command::new("tar").arg("-cf").arg(&tar_file).arg("-C").arg(&layout).arg(".").status().unwrap();
    assert!(status.success());
    let from_tar = elsewhere.runner(&["review", &format!("oci-layout:{}:1", tar_file.display()), "-o", "json"]);
    assert_eq!(code(&from_tar), 0, "{}", stderr(&from_tar));
    assert_eq!(json_of(&from_tar)["origin"]["manifest_digest"], digest.as_str());
    let missing_tag = elsewhere.runner(&["review", &format!("oci-layout:{}:2", layout.display())]);
    assert_eq!(code(&missing_tag), 2);
    assert!(stderr(&missing_tag).contains("`2`"), "{}", stderr(&missing_tag));
}

fn write_trust(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("trust.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn the_trust_policy_refuses_a_pattern_from_a_gates_only_repository_before_its_layer() {
    let registry = Registry::start();
    let sandbox = Sandbox::new();
    let reference = format!("oci://{}/gates/rollout:1", registry.address);
    let pushed = push(&sandbox, &registry, "staged-rollout", &reference);
    std::fs::remove_file(registry.blob_file(pushed["layer_digest"].as_str().unwrap())).unwrap();
    let trust = write_trust(sandbox.dir.path(), &format!("sources:\n  - match: \"{}/gates/*\"\n    worlds: [gate]\n", registry.address));

    let fresh = Sandbox::new();
    let output = runner(&fresh, &registry, &["review", &reference, "--trust", trust.to_str().unwrap()]);
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(stderr(&output).contains("refused by the trust policy") && stderr(&output).contains("pattern"), "{}", stderr(&output));
    // Without the rule the missing layer is what stops it.
    let untrusted = runner(&fresh, &registry, &["review", &reference]);
    assert_eq!(code(&untrusted), 2);
    assert!(!stderr(&untrusted).contains("trust policy"), "{}", stderr(&untrusted));
}

/// pods-ready's `too-few-pods` case, in a directory of its own, with its component named by `reference`.
fn case_by_reference(sandbox: &Sandbox, reference: &str) -> PathBuf {
    let case = std::fs::read_to_string(common::repo().join("policies/gates/pods-ready/tests/too-few-pods.test.yaml")).unwrap();
    let case = case.replace("component: pods-ready", &format!("component: {reference}"));
    assert!(case.contains(reference));
    let dir = sandbox.dir.path().join("cases");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("too-few-pods.test.yaml"), case).unwrap();
    dir
}

#[test]
fn a_test_case_runs_a_component_by_reference() {
    let registry = Registry::start();
    let sandbox = Sandbox::new();
    let reference = format!("oci://{}/gates/pods-ready:1", registry.address);
    push(&sandbox, &registry, "pods-ready", &reference);
    let dir = case_by_reference(&sandbox, &reference);
    let output = runner(&sandbox, &registry, &["test", dir.to_str().unwrap()]);
    assert_eq!(code(&output), 0, "{}{}", stdout(&output), stderr(&output));
    assert!(stdout(&output).contains("too-few-pods"), "{}", stdout(&output));
}

/// A P-256 key pair made by openssl (SEC1 private key, SPKI public key).
fn key_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let ok = |args: &[&str]| {
        let status = std::process::Command::new("openssl").args(args).stderr(std::process::Stdio::null()).status().unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    ok(&["ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", private.to_str().unwrap()]);
    ok(&["ec", "-in", private.to_str().unwrap(), "-pubout", "-out", public.to_str().unwrap()]);
    (private, public)
}

#[test]
fn a_signature_verifies_with_its_key_and_not_with_another() {
    let registry = Registry::start();
    let sandbox = Sandbox::new();
    let reference = format!("oci://{}/gates/pods-ready:1", registry.address);
    let digest = push(&sandbox, &registry, "pods-ready", &reference)["manifest_digest"].as_str().unwrap().to_string();
    let (team_key, team_pub) = key_pair(sandbox.dir.path(), "team");
    let (_, other_pub) = key_pair(sandbox.dir.path(), "other");

    let signed = runner(&sandbox, &registry, &["sign", &reference, "--key", team_key.to_str().unwrap()]);
    assert_eq!(code(&signed), 0, "{}", stderr(&signed));
    let tag = format!("{}.sig", digest.replacen(':', "-", 1));
    assert!(stdout(&signed).contains(&tag), "{}", stdout(&signed));
    let signature = registry.manifest("gates/pods-ready", &tag);
    assert_eq!(signature["layers"][0]["mediaType"], "application/vnd.dev.cosign.simplesigning.v1+json");
    assert!(signature["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"].is_string());

    let verified = runner(&sandbox, &registry, &["verify", &reference, "--key", team_pub.to_str().unwrap()]);
    assert_eq!(code(&verified), 0, "{}", stderr(&verified));
    assert!(stdout(&verified).contains("team.pub"), "{}", stdout(&verified));
    let wrong = runner(&sandbox, &registry, &["verify", &reference, "--key", other_pub.to_str().unwrap()]);
    assert_eq!(code(&wrong), 2, "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("other.pub"), "{}", stderr(&wrong));
}

#[test]
fn a_rule_with_keys_refuses_an_unsigned_component_and_runs_a_signed_one() {
    let registry = Registry::start();
    let sandbox = Sandbox::new();
    let reference = format!("oci://{}/gates/pods-ready:1", registry.address);
    push(&sandbox, &registry, "pods-ready", &reference);
    let (team_key, _) = key_pair(sandbox.dir.path(), "team");
    let trust = write_trust(sandbox.dir.path(), &format!("sources:\n  - match: \"{}/gates/*\"\n    keys: [team.pub]\n", registry.address));
    let dir = case_by_reference(&sandbox, &reference);
    let test = || runner(&sandbox, &registry, &["test", dir.to_str().unwrap(), "--trust", trust.to_str().unwrap()]);

    let unsigned = runner(&sandbox, &registry, &["review", &reference, "--trust", trust.to_str().unwrap()]);
    assert_eq!(code(&unsigned), 2, "{}", stderr(&unsigned));
    assert!(stderr(&unsigned).contains("not signed") && stderr(&unsigned).contains("team.pub"), "{}", stderr(&unsigned));
    assert_ne!(code(&test()), 0);

    let signed = runner(&sandbox, &registry, &["sign", &reference, "--key", team_key.to_str().unwrap()]);
    assert_eq!(code(&signed), 0, "{}", stderr(&signed));
    let review = runner(&sandbox, &registry, &["review", &reference, "--trust", trust.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code(&review), 0, "{}", stderr(&review));
    assert!(json_of(&review)["origin"]["signer"].as_str().unwrap().contains("team.pub"));
    let passed = test();
    assert_eq!(code(&passed), 0, "{}{}", stdout(&passed), stderr(&passed));
}

/// `runner key generate PREFIX` with `password`.
fn generated_key(sandbox: &Sandbox, name: &str, password: &str) -> (PathBuf, PathBuf) {
    let prefix = sandbox.dir.path().join(name);
    let output = sandbox.runner_env(&["key", "generate", prefix.to_str().unwrap()], &[("COSIGN_PASSWORD", password)]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

#[test]
fn key_generate_writes_an_encrypted_cosign_key_and_refuses_to_overwrite() {
    let sandbox = Sandbox::new();
    let (private, public) = generated_key(&sandbox, "team", "s3cret");
    let pem = std::fs::read_to_string(&private).unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"), "{pem}");
    assert!(!pem.contains("s3cret"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
    // openssl, an independent reader, takes the public key as a P-256 SPKI key.
    let text = std::process::Command::new("openssl").args(["pkey", "-pubin", "-noout", "-text", "-in"]).arg(&public).output().unwrap();
    assert!(text.status.success() && String::from_utf8_lossy(&text.stdout).contains("prime256v1"), "{}", String::from_utf8_lossy(&text.stderr));

    let again = sandbox.runner_env(&["key", "generate", sandbox.dir.path().join("team").to_str().unwrap()], &[("COSIGN_PASSWORD", "x")]);
    assert_eq!(code(&again), 2);
    assert!(stderr(&again).contains("team.key exists") && stderr(&again).contains("--force"), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(&private).unwrap(), pem, "a refused generate leaves the key alone");
    let no_password = sandbox.runner_env(&["key", "generate", sandbox.dir.path().join("other").to_str().unwrap()], &[]);
    assert_eq!(code(&no_password), 2);
    assert!(stderr(&no_password).contains("COSIGN_PASSWORD"), "{}", stderr(&no_password));
}

#[test]
fn air_gapped_a_gate_is_pushed_signed_and_run_from_a_layout_with_no_registry() {
    let sandbox = Sandbox::new();
    let layout = sandbox.dir.path().join("carry");
    let reference = format!("oci-layout:{}:1", layout.display());
    let file = bundled("pods-ready");
    let pushed = sandbox.runner(&["push", file.to_str().unwrap(), &reference, "-o", "json"]);
    assert_eq!(code(&pushed), 0, "{}", stderr(&pushed));
    let digest = json_of(&pushed)["manifest_digest"].as_str().unwrap().to_string();
    let index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    assert_eq!(index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "1");

    let (team_key, team_pub) = generated_key(&sandbox, "team", "");
    let (_, other_pub) = generated_key(&sandbox, "other", "");
    let trust = write_trust(sandbox.dir.path(), "sources:\n  - match: \"oci-layout/**\"\n    keys: [team.pub]\n");
    // Unsigned: refused before it runs, naming the key expected.
    let unsigned = sandbox.runner(&["review", &reference, "--trust", trust.to_str().unwrap()]);
    assert_eq!(code(&unsigned), 2, "{}", stderr(&unsigned));
    assert!(stderr(&unsigned).contains("not signed") && stderr(&unsigned).contains("team.pub"), "{}", stderr(&unsigned));

    let signed = sandbox.runner_env(&["sign", &reference, "--key", team_key.to_str().unwrap()], &[("COSIGN_PASSWORD", "")]);
    assert_eq!(code(&signed), 0, "{}", stderr(&signed));
    let verified = sandbox.runner(&["verify", &reference, "--key", team_pub.to_str().unwrap()]);
    assert_eq!(code(&verified), 0, "{}", stderr(&verified));
    let wrong = sandbox.runner(&["verify", &reference, "--key", other_pub.to_str().unwrap()]);
    assert_eq!(code(&wrong), 2, "{}", stderr(&wrong));

    // Carried as a tar (made by tar(1)) into a sandbox with no cache: the signed gate runs its test case.
    let tar_file = sandbox.dir.path().join("carry.tar");
    assert!(std::process::Command::new("tar").arg("-cf").arg(&tar_file).arg("-C").arg(&layout).arg(".").status().unwrap().success());
    let elsewhere = Sandbox::new();
    let from_tar = format!("oci-layout:{}:1", tar_file.display());
    let review = elsewhere.runner(&["review", &from_tar, "--trust", trust.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code(&review), 0, "{}", stderr(&review));
    assert_eq!(json_of(&review)["origin"]["manifest_digest"], digest.as_str());
    assert!(json_of(&review)["origin"]["signer"].as_str().unwrap().contains("team.pub"), "{}", stdout(&review));
    let cases = case_by_reference(&elsewhere, &from_tar);
    let test = elsewhere.runner(&["test", cases.to_str().unwrap(), "--trust", trust.to_str().unwrap()]);
    assert_eq!(code(&test), 0, "{}{}", stdout(&test), stderr(&test));

    // A tar is read-only: signing into it is refused and names what to do.
    let into_tar = elsewhere.runner_env(&["sign", &from_tar, "--key", team_key.to_str().unwrap()], &[("COSIGN_PASSWORD", "")]);
    assert_eq!(code(&into_tar), 2, "{}", stderr(&into_tar));
    assert!(stderr(&into_tar).contains("read-only"), "{}", stderr(&into_tar));
}
