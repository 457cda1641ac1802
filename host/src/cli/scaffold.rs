//! `runner new gate|pattern NAME`: a crate that builds as generated, or
//! (`--lang python`) a Python gate folder that `runner build` builds.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{CommandResult, Exit, Failure};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    Gate,
    Pattern,
}

/// The language of the new policy. Crate-private: a doc comment on a variant would become its help text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
enum Lang {
    #[default]
    Rust,
    Python,
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// What to create.
    #[arg(value_enum)]
    kind: Kind,

    /// The policy's name: lowercase letters, digits and dashes.
    name: String,

    /// The language: a Rust crate, or a Python gate built by componentize-py (`runner build`).
    #[arg(long, value_enum, default_value_t)]
    lang: Lang,

    /// Where to create the crate (default: ./NAME).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// Depend on the runner SDK at this path (for work on the SDK itself)
    /// instead of a copy of it inside the new crate.
    #[arg(long, value_name = "PATH", env = "RUNNER_SDK_PATH", conflicts_with = "sdk_git")]
    sdk: Option<PathBuf>,

    /// Depend on the runner SDK from this git repository (`URL` or
    /// `URL#REV`, REV a tag, branch or commit) instead of a copy of it
    /// inside the new crate.
    #[arg(long, value_name = "URL[#REV]")]
    sdk_git: Option<String>,

    /// Report format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: super::OutputFormat,
}

/// The SDK's sources, built into the runner: `runner new` copies them into
/// the new crate (`runner-sdk/`, and the contract it binds to in `wit/`), so the crate builds and can be shared
/// (pushed to any git host) without the runner's source tree or a published
/// SDK crate, and an installed runner scaffolds as a checkout does.
const SDK_FILES: [(&str, &str); 10] = [
    ("src/lib.rs", include_str!("../../../sdk/src/lib.rs")),
    ("src/ask.rs", include_str!("../../../sdk/src/ask.rs")),
    ("src/bindings.rs", include_str!("../../../sdk/src/bindings.rs")),
    ("src/check.rs", include_str!("../../../sdk/src/check.rs")),
    ("src/cluster.rs", include_str!("../../../sdk/src/cluster.rs")),
    ("src/compose.rs", include_str!("../../../sdk/src/compose.rs")),
    ("src/helpers.rs", include_str!("../../../sdk/src/helpers.rs")),
    ("src/steps.rs", include_str!("../../../sdk/src/steps.rs")),
    ("src/traffic.rs", include_str!("../../../sdk/src/traffic.rs")),
    ("src/wait.rs", include_str!("../../../sdk/src/wait.rs")),
];

/// Where the new crate's SDK comes from.
enum SdkSource {
    /// A copy inside the crate (the default).
    Vendored,
    /// A local checkout.
    Path(PathBuf),
    /// A git repository, at a revision when one is given.
    Git { url: String, rev: Option<String> },
}

impl SdkSource {
    fn of(args: &NewArgs) -> Result<SdkSource, Failure> {
        if let Some(text) = &args.sdk_git {
            let (url, rev) = match text.split_once('#') {
                Some((url, rev)) => (url.to_string(), Some(rev.to_string())),
                None => (text.clone(), None),
            };
            if url.is_empty() || url.contains(['"', '\\', '\n']) || rev.as_deref().is_some_and(|r| r.is_empty() || r.contains(['"', '\\', '\n'])) {
                return Err(Failure::bad_input(format!("--sdk-git `{text}`: give a repository URL, optionally followed by #REV")));
            }
            return Ok(SdkSource::Git { url, rev });
        }
        match &args.sdk {
            Some(path) => path
                .canonicalize()
                .ok()
                .filter(|p| p.join("Cargo.toml").is_file())
                .map(SdkSource::Path)
                .ok_or_else(|| Failure::bad_input(format!("--sdk {}: no SDK crate there (no Cargo.toml)", path.display()))),
            None => Ok(SdkSource::Vendored),
        }
    }

    /// The `runner-sdk = ...` dependency line.
    fn dependency(&self) -> String {
        let quoted = |text: &str| serde_json::to_string(text).unwrap_or_default();
        match self {
            SdkSource::Vendored => r#"runner-sdk = { path = "runner-sdk" }"#.to_string(),
            SdkSource::Path(path) => format!("runner-sdk = {{ path = {} }}", quoted(&path.display().to_string())),
            SdkSource::Git { url, rev: None } => format!("runner-sdk = {{ git = {} }}", quoted(url)),
            SdkSource::Git { url, rev: Some(rev) } => format!("runner-sdk = {{ git = {}, rev = {} }}", quoted(url), quoted(rev)),
        }
    }
}

/// The vendored SDK's manifest: the workspace's fields written out.
fn sdk_cargo_toml() -> String {
    format!(
        r#"# A copy of the runner SDK {version}, written by `runner new`.
[package]
name = "runner-sdk"
description = "Write runner gates and patterns: WIT bindings, JSON helpers, waits on the host clock, the manifest macro"
version = "{version}"
edition = "2024"
license = "Apache-2.0"

[dependencies]
wit-bindgen = {{ version = "0.63", default-features = false, features = ["macros", "realloc"] }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"
"#,
        version = env!("CARGO_PKG_VERSION")
    )
}

pub fn run(args: NewArgs) -> CommandResult {
    let name = &args.name;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') || name.starts_with('-') {
        return Err(Failure::bad_input(format!("`{name}` is not a valid name: use lowercase letters, digits and dashes")));
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        return Err(Failure::bad_input(format!("{}: already exists", dir.display())));
    }
    if args.lang == Lang::Python {
        return python(&args, &dir);
    }
    let sdk = SdkSource::of(&args)?;
    let mut files = vec![
        ("Cargo.toml".to_string(), cargo_toml(name, &sdk.dependency())),
        (
            "src/lib.rs".to_string(),
            match args.kind {
                Kind::Gate => gate_source(name),
                Kind::Pattern => pattern_source(name),
            },
        ),
        (".gitignore".to_string(), "/target\n".to_string()),
    ];
    if let SdkSource::Vendored = sdk {
        files.push(("runner-sdk/Cargo.toml".to_string(), sdk_cargo_toml()));
        files.extend(SDK_FILES.iter().map(|(file, text)| (format!("runner-sdk/{file}"), text.to_string())));
        // The SDK's bindings read the contract from `../wit`, beside the SDK.
        files.push(("wit/policy.wit".to_string(), include_str!("../../../wit/policy.wit").to_string()));
    }
    write_files(&dir, &files)?;
    let module = name.replace('-', "_");
    if args.output != super::OutputFormat::Text {
        let wasm = format!("target/wasm32-wasip2/release/{module}.wasm");
        args.output.print(&serde_json::json!({
            "created": dir,
            "kind": if args.kind == Kind::Gate { "gate" } else { "pattern" },
            "name": name,
            "files": files.iter().map(|(file, _)| file).collect::<Vec<_>>(),
            "build": "cargo build --release --target wasm32-wasip2",
            "component": wasm,
        }));
        return Ok(Exit::Success);
    }
    println!("created {} {name} in {}", if args.kind == Kind::Gate { "gate" } else { "pattern" }, dir.display());
    println!("\nbuild it:\n  cd {} && cargo build --release --target wasm32-wasip2", dir.display());
    println!("review and run it:\n  runner review target/wasm32-wasip2/release/{module}.wasm\n  runner exec target/wasm32-wasip2/release/{module}.wasm");
    Ok(Exit::Success)
}

fn write_files(dir: &std::path::Path, files: &[(String, String)]) -> Result<(), Failure> {
    for (file, text) in files {
        let path = dir.join(file);
        let written = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&path, text));
        written.map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// The bundled Python gate, the model of a new one: its name is the only change.
const PYTHON_MODEL: &str = "pod-restarts";
const PYTHON_APP: &str = include_str!("../../../policies/python/pod-restarts/app.py");
const PYTHON_MANIFEST: &str = include_str!("../../../policies/python/pod-restarts/manifest.toml");
const PYTHON_CASE: &str = include_str!("../../../policies/python/pod-restarts/tests/crash-looping.test.yaml");

/// A Python gate: `app.py` (the `WitWorld` class componentize-py exports),
/// `manifest.toml`, the contract in `wit/` (for `componentize-py bindings`
/// and the build) and a `runner test` case against the built component.
fn python(args: &NewArgs, dir: &std::path::Path) -> CommandResult {
    let name = &args.name;
    if args.kind == Kind::Pattern {
        return Err(Failure::bad_input("--lang python makes gates only: write a pattern in Rust (`runner new pattern NAME`)"));
    }
    if args.sdk.is_some() || args.sdk_git.is_some() {
        return Err(Failure::bad_input("--sdk and --sdk-git are for Rust crates; a Python gate uses componentize-py's bindings"));
    }
    let component = format!("target/{name}.wasm");
    let files = vec![
        ("app.py".to_string(), PYTHON_APP.replace(PYTHON_MODEL, name)),
        ("manifest.toml".to_string(), PYTHON_MANIFEST.replace(PYTHON_MODEL, name).replace(". Written in Python.", ".")),
        (format!("tests/{name}.test.yaml"), PYTHON_CASE.replace(&format!("component: {PYTHON_MODEL}"), &format!("component: ../{component}"))),
        ("wit/policy.wit".to_string(), include_str!("../../../wit/policy.wit").to_string()),
        ("README.md".to_string(), python_readme(name, &dir.display().to_string())),
        (".gitignore".to_string(), "/target\n/.bindings\n__pycache__/\n".to_string()),
    ];
    write_files(dir, &files)?;
    if args.output != super::OutputFormat::Text {
        args.output.print(&serde_json::json!({
            "created": dir,
            "kind": "gate",
            "lang": "python",
            "name": name,
            "files": files.iter().map(|(file, _)| file).collect::<Vec<_>>(),
            "build": format!("runner build {}", dir.display()),
            "component": dir.join(&component),
        }));
        return Ok(Exit::Success);
    }
    println!("created Python gate {name} in {}", dir.display());
    println!("\nbuild it (componentize-py, about 20 s, then the compile for this runner):\n  runner build {}", dir.display());
    println!("test and run it:\n  runner test {}\n  runner exec {} --target lab", dir.display(), dir.join(&component).display());
    Ok(Exit::Success)
}

fn python_readme(name: &str, dir: &str) -> String {
    format!(
        r#"# {name}

A runner gate written in Python: `app.py` exports the `gate` world of
`wit/policy.wit` (class `WitWorld`, method `evaluate`), `manifest.toml` says
what it may call and what it can be configured with.

```sh
runner build {dir}                    # componentize-py, then precompiled for this runner
runner test {dir}                     # the cases in tests/, from canned answers
runner lab up                         # a local cluster
runner exec {dir}/target/{name}.wasm --target lab --config selector=app=postgres
```

Editor completion for the bindings (`wit_world`): `componentize-py -d wit -w gate bindings .bindings`
and add `.bindings` to the editor's Python path (`runner build` generates its own).
"#
    )
}

fn cargo_toml(name: &str, sdk_dependency: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
{sdk_dependency}
serde = {{ version = "1", features = ["derive"] }}

# A component of its own, not part of an enclosing workspace.
[workspace]

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true
"#
    )
}

fn gate_source(name: &str) -> String {
    format!(
        r##"//! Gate `{name}`.

use runner_sdk::prelude::*;
use serde::Deserialize;

runner_sdk::manifest!(
    r#"
name = "{name}"
version = "0.1.0"
description = "Every Pod matching the selector is Ready."
world = "gate"
capabilities = ["kube:list:v1/Pod"]

[config.selector]
type = "string"
default = "app=postgres"
description = "label selector of the Pods to check"
"#
);

#[derive(Deserialize)]
struct Config {{
    selector: String,
}}

struct Gate;

impl runner_sdk::gate::Guest for Gate {{
    fn evaluate(config: String) -> Result<Verdict, Error> {{
        let config: Config = parse_config(&config)?;
        let pods = list_json(&ListOptions::of("v1", "Pod").labels(&config.selector))?;
        let mut check = Check::new();
        for pod in pods.iter().filter(|pod| !pod_is_ready(pod)) {{
            check.fail(format!("{{}}: not Ready", pod["metadata"]["name"].as_str().unwrap_or("?")));
        }}
        check.note(format!("{{}} Pods checked", pods.len())).evidence("pods", pods.len());
        Ok(check.verdict())
    }}
}}

runner_sdk::export_gate!(Gate);
"##
    )
}

fn pattern_source(name: &str) -> String {
    format!(
        r##"//! Pattern `{name}`.

use runner_sdk::pattern::PatternResult;
use runner_sdk::prelude::*;
use runner_sdk::{{DryRun, preflight_gate}};
use serde::Deserialize;

runner_sdk::manifest!(
    r#"
name = "{name}"
version = "0.1.0"
description = "Scale a StatefulSet once its Pods are Ready."
world = "pattern"
capabilities = ["gates:run:preflight", "kube:scale:apps/v1/StatefulSet"]
steps = [
  {{ name = "preflight", description = "run the preflight gate" }},
  {{ name = "scale", description = "scale the StatefulSet" }},
]
rollback = "scale back to the previous replica count"

[config.statefulset]
type = "string"
default = "postgres-cluster"
description = "the StatefulSet to scale"

[config.replicas]
type = "integer"
default = 3
description = "replica count to set"

[gates.preflight]
default = "pods-ready"
description = "must pass before anything changes"
"#
);

#[derive(Deserialize)]
struct Config {{
    statefulset: String,
    replicas: u32,
}}

struct Pattern;

impl runner_sdk::pattern::Guest for Pattern {{
    fn run(config: String) -> Result<PatternResult, Error> {{
        let config: Config = parse_config(&config)?;
        // A gate that fails, or cannot decide, ends the run rolled back with nothing changed.
        if let Some(refused) = preflight_gate("preflight", "{{}}") {{
            return refused;
        }}
        // Under --dry-run the scale is only planned: say so rather than claim it was done.
        let dry = DryRun::of_this_run();
        let statefulset = ObjectRef::named("apps/v1", "StatefulSet", &config.statefulset);
        step("scale", "scale the StatefulSet", || runner_sdk::kube_write::scale(&statefulset, config.replicas))?;
        Ok(PatternResult::succeeded(format!("{{}} scaled to {{}}{{}}", config.statefulset, config.replicas, dry.summary_note())))
    }}
}}

runner_sdk::export_pattern!(Pattern);
"##
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_sdk_holds_every_source_file_of_the_sdk() {
        let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/src");
        let mut on_disk: Vec<String> = std::fs::read_dir(&sdk).unwrap().map(|e| format!("src/{}", e.unwrap().file_name().to_string_lossy())).collect();
        on_disk.sort();
        let mut vendored: Vec<String> = SDK_FILES.iter().map(|(file, _)| file.to_string()).collect();
        vendored.sort();
        assert_eq!(vendored, on_disk, "add the SDK's new file to SDK_FILES");
        let manifest = std::fs::read_to_string(sdk.join("../Cargo.toml")).unwrap();
        let dependencies = manifest.split("[dependencies]").nth(1).unwrap().trim();
        assert!(sdk_cargo_toml().contains(dependencies), "the vendored manifest has the SDK's dependencies:\n{dependencies}");
    }

    #[test]
    fn sdk_dependencies() {
        assert_eq!(SdkSource::Vendored.dependency(), r#"runner-sdk = { path = "runner-sdk" }"#);
        let git = SdkSource::Git { url: "https://git.example.com/sre/runner".into(), rev: Some("v0.1.0".into()) };
        assert_eq!(git.dependency(), r#"runner-sdk = { git = "https://git.example.com/sre/runner", rev = "v0.1.0" }"#);
    }
}
