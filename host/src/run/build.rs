//! `runner build`: a policy's sources to a component the host accepts,
//! precompiled into the compiled-component cache.
//!
//! A Rust crate (`Cargo.toml`) is built with cargo for wasm32-wasip2; its
//! manifest is already inside (the SDK's `manifest!`). A Python gate
//! (`manifest.toml` + `app.py`) is built with componentize-py, and the
//! manifest is appended as the `runner-manifest` custom section, which is
//! valid at the end of a component. Either way the result goes through
//! [`Policy::from_bytes`], so what the host would refuse is refused here, and
//! is then compiled with the engine `runner exec` uses: the first run of a
//! Python gate (15-30 s of compile) then loads in milliseconds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Exit, Failure};
use crate::engine::{Engine, Limits};
use crate::policy::manifest::SECTION;
use crate::policy::{Manifest, Policy, World};

/// The componentize-py requirement `scripts/setup` installs
/// (`policies/python/requirements.txt`, its only line).
pub const COMPONENTIZE_PY_REQUIREMENT: &str = include_str!("../../../policies/python/requirements.txt");

/// The contract, for a Python policy folder without its own `wit/`.
const CONTRACT_WIT: &str = include_str!("../../../wit/policy.wit");

/// What a policy folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// A cdylib crate built with cargo for wasm32-wasip2.
    Rust,
    /// `app.py` and `manifest.toml`, built with componentize-py.
    Python,
}

impl Language {
    /// The language of the policy in `dir`: `Cargo.toml` means Rust,
    /// `manifest.toml` beside `app.py` means Python.
    pub fn of(dir: &Path) -> Result<Language, Failure> {
        if dir.join("Cargo.toml").is_file() {
            Ok(Language::Rust)
        } else if dir.join("manifest.toml").is_file() && dir.join("app.py").is_file() {
            Ok(Language::Python)
        } else {
            Err(Failure::bad_input(format!(
                "{}: neither a Rust policy crate (Cargo.toml) nor a Python policy (manifest.toml and app.py); create one with `runner new gate NAME [--lang python]`",
                dir.display()
            )))
        }
    }
}

/// A component built, checked and precompiled.
#[derive(Debug, serde::Serialize)]
pub struct Built {
    /// The policy's name (its manifest's).
    pub name: String,
    /// Its world.
    pub world: World,
    /// What it was written in.
    pub language: Language,
    /// The component file written.
    pub component: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// `sha256:<hex>` of the component.
    pub digest: String,
    /// Every top-level import.
    pub imports: Vec<String>,
    /// Time to build the component (cargo or componentize-py).
    #[serde(serialize_with = "millis")]
    pub build_time: Duration,
    /// Time to compile it for this host, or to find it compiled in the cache.
    #[serde(serialize_with = "millis")]
    pub compile_time: Duration,
    /// Whether the compiled artifact was already in the cache.
    pub already_compiled: bool,
    /// The cache it was compiled into (none: `--cache-dir` unset and no default).
    pub cache_dir: Option<PathBuf>,
}

fn millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_millis() as u64)
}

/// Build the policy in `dir` into `output` (default `dir/target/NAME.wasm`),
/// check it as the host loads it and precompile it into `cache_dir`.
/// `progress` gets one line per stage (a compile takes seconds).
pub fn build(dir: &Path, output: Option<&Path>, cache_dir: Option<PathBuf>, progress: &mut dyn FnMut(&str)) -> Result<Built, Failure> {
    let language = Language::of(dir)?;
    let started = Instant::now();
    let (bytes, name_hint) = match language {
        Language::Rust => (build_rust(dir, progress)?, None),
        Language::Python => {
            let manifest = read_manifest(dir)?;
            (build_python(dir, &manifest, progress)?, Some(manifest.name))
        }
    };
    let build_time = started.elapsed();
    // Checked as the host checks it before anything is written under its name.
    let checked_as = output.map(Path::to_path_buf).unwrap_or_else(|| dir.join("target").join(format!("{}.wasm", name_hint.as_deref().unwrap_or("component"))));
    let mut policy = Policy::from_bytes(&checked_as, bytes).map_err(|e| Failure::bad_input(e.to_string()))?;
    let component = output.map(Path::to_path_buf).unwrap_or_else(|| dir.join("target").join(format!("{}.wasm", policy.name())));
    write_component(&component, &policy.bytes)?;
    policy.path = component.clone();
    progress(&format!("compiling {} for this runner ({} MB; a Python component takes 15-30 s)", policy.name(), policy.bytes.len() >> 20));
    let started = Instant::now();
    let engine = Engine::new(Limits::default(), cache_dir.clone()).map_err(Failure::from)?;
    let prepared = engine.prepare(&policy).map_err(Failure::from)?;
    Ok(Built {
        name: policy.name().to_string(),
        world: policy.manifest.world,
        language,
        bytes: policy.bytes.len() as u64,
        digest: policy.digest,
        imports: policy.imports,
        component,
        build_time,
        compile_time: started.elapsed(),
        already_compiled: prepared.from_cache,
        cache_dir,
    })
}

fn read_manifest(dir: &Path) -> Result<Manifest, Failure> {
    let path = dir.join("manifest.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))?;
    Manifest::parse(&text).map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))
}

fn write_component(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let written = path.parent().filter(|p| !p.as_os_str().is_empty()).map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(path, bytes));
    written.map_err(|e| Failure::bad_input(format!("{}: cannot write the component: {e}", path.display())))
}

/// Append the manifest as the `runner-manifest` custom section (id 0,
/// size, name, bytes): a custom section may end a component.
pub fn append_manifest(component: &mut Vec<u8>, manifest_text: &str) {
    use wasm_encoder::Section;
    wasm_encoder::CustomSection { name: SECTION.into(), data: manifest_text.as_bytes().into() }.append_to(component);
}

/// Where componentize-py is: `RUNNER_COMPONENTIZE_PY` (a path), else the
/// venv `scripts/setup` makes (`RUNNER_PYTHON_VENV`, default
/// `~/.cache/runner/python-venv`), else `PATH`.
pub fn componentize_py() -> Result<PathBuf, Failure> {
    let missing = |why: String| {
        Failure::bad_input(format!(
            "{why}; install it with scripts/setup, or: python3 -m venv {venv} && {venv}/bin/pip install {requirement}",
            venv = python_venv().map_or("VENV".into(), |v| v.display().to_string()),
            requirement = COMPONENTIZE_PY_REQUIREMENT.trim()
        ))
    };
    if let Some(path) = std::env::var_os("RUNNER_COMPONENTIZE_PY").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() { Ok(path) } else { Err(missing(format!("componentize-py not found at RUNNER_COMPONENTIZE_PY={}", path.display()))) };
    }
    let in_venv = python_venv().map(|venv| venv.join("bin/componentize-py")).filter(|p| p.is_file());
    let on_path = || std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("componentize-py")).find(|p| p.is_file()));
    in_venv.or_else(on_path).ok_or_else(|| missing("componentize-py not found (a Python policy needs it)".into()))
}

/// The venv `scripts/setup` installs componentize-py into.
pub fn python_venv() -> Option<PathBuf> {
    std::env::var_os("RUNNER_PYTHON_VENV").filter(|v| !v.is_empty()).map(PathBuf::from).or_else(|| dirs::cache_dir().map(|d| d.join("runner/python-venv")))
}

fn build_python(dir: &Path, manifest: &Manifest, progress: &mut dyn FnMut(&str)) -> Result<Vec<u8>, Failure> {
    let tool = componentize_py()?;
    let scratch = tempfile::tempdir().map_err(|e| Failure::new(Exit::PolicyFailed, format!("cannot make a scratch directory: {e}")))?;
    // The folder's own copy of the contract if it has one (what its
    // bindings were read from), else the contract this runner speaks.
    let wit = if dir.join("wit").is_dir() {
        std::path::absolute(dir.join("wit")).unwrap_or_else(|_| dir.join("wit"))
    } else {
        let wit = scratch.path().join("wit");
        std::fs::create_dir_all(&wit)
            .and_then(|()| std::fs::write(wit.join("policy.wit"), CONTRACT_WIT))
            .map_err(|e| Failure::new(Exit::PolicyFailed, format!("cannot write the contract: {e}")))?;
        wit
    };
    let out = scratch.path().join("component.wasm");
    let world = match manifest.world {
        World::Gate => "gate",
        World::Pattern => "pattern",
    };
    progress(&format!("building {} with {} (about 20 s)", manifest.name, tool.display()));
    // --stub-wasi: the component imports only the host's interfaces, and the
    // interpreter's WASI calls (clock, random, files) answer from stubs.
    let result = Command::new(&tool)
        .current_dir(dir)
        .args(["-d".as_ref(), wit.as_os_str(), "-w".as_ref(), world.as_ref(), "componentize".as_ref(), "app".as_ref(), "-p".as_ref(), ".".as_ref()])
        .args(["--stub-wasi".as_ref(), "-o".as_ref(), out.as_os_str()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure::bad_input(format!("{}: cannot run componentize-py: {e}", tool.display())))?;
    if !result.status.success() {
        return Err(Failure::bad_input(format!("componentize-py failed on {}:\n{}", dir.display(), tail(&result.stderr, &result.stdout))));
    }
    let mut bytes = std::fs::read(&out).map_err(|e| Failure::bad_input(format!("componentize-py wrote no component: {e}")))?;
    let text = std::fs::read_to_string(dir.join("manifest.toml")).map_err(|e| Failure::bad_input(format!("{}: {e}", dir.display())))?;
    append_manifest(&mut bytes, &text);
    Ok(bytes)
}

fn build_rust(dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<Vec<u8>, Failure> {
    progress(&format!("building {} with cargo (--release --target wasm32-wasip2)", dir.display()));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let result = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--message-format=json-render-diagnostics", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Failure::bad_input(format!("cannot run cargo: {e}")))?;
    if !result.status.success() {
        return Err(Failure::bad_input(format!("cargo build failed in {} (its messages are above)", dir.display())));
    }
    // The component is the cdylib artifact cargo reports, wherever CARGO_TARGET_DIR puts it.
    let wasm = String::from_utf8_lossy(&result.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact" && message["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib")))
        .filter_map(|message| message["filenames"].as_array()?.iter().filter_map(|f| f.as_str()).find(|f| f.ends_with(".wasm")).map(PathBuf::from))
        .next_back()
        .ok_or_else(|| Failure::bad_input(format!("{}: cargo built no cdylib component (is crate-type [\"cdylib\"] set?)", dir.display())))?;
    std::fs::read(&wasm).map_err(|e| Failure::bad_input(format!("{}: {e}", wasm.display())))
}

/// The last lines a failed tool printed: its reason is at the end.
fn tail(stderr: &[u8], stdout: &[u8]) -> String {
    let text = if stderr.iter().any(|b| !b.is_ascii_whitespace()) { stderr } else { stdout };
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_appended_manifest_is_found_where_the_host_looks() {
        let manifest = "name = \"odd\"\nversion = \"0.1.0\"\nworld = \"gate\"\n";
        let mut component = wat::parse_str("(component)").unwrap();
        append_manifest(&mut component, manifest);
        let found: Vec<Vec<u8>> = wasmparser::Parser::new(0)
            .parse_all(&component)
            .filter_map(|payload| match payload.unwrap() {
                wasmparser::Payload::CustomSection(section) if section.name() == SECTION => Some(section.data().to_vec()),
                _ => None,
            })
            .collect();
        assert_eq!(found, vec![manifest.as_bytes().to_vec()]);
        wasmparser::Validator::new().validate_all(&component).unwrap();
    }

    #[test]
    fn a_folder_without_sources_is_bad_input() {
        let empty = tempfile::tempdir().unwrap();
        let failure = Language::of(empty.path()).unwrap_err();
        assert_eq!(failure.exit, Exit::BadInput);
        assert!(failure.message.contains("runner new gate"), "{}", failure.message);
    }
}
