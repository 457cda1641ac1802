//! `runner new gate|pattern NAME`: a crate that builds as generated.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::{CommandResult, Exit, Failure};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    Gate,
    Pattern,
}

#[derive(Args, Debug)]
pub struct NewArgs {
    /// What to create.
    #[arg(value_enum)]
    kind: Kind,

    /// The policy's name: lowercase letters, digits and dashes.
    name: String,

    /// Where to create the crate (default: ./NAME).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// The runner SDK to depend on (default: the SDK of this runner's source tree).
    #[arg(long, value_name = "PATH", env = "RUNNER_SDK_PATH")]
    sdk: Option<PathBuf>,
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
    let sdk = args.sdk.clone().unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk"));
    let sdk = sdk
        .canonicalize()
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file())
        .ok_or_else(|| Failure::bad_input(format!("cannot find the runner SDK at {}; pass --sdk PATH", sdk.display())))?;
    let files = [
        ("Cargo.toml", cargo_toml(name, &sdk)),
        (
            "src/lib.rs",
            match args.kind {
                Kind::Gate => gate_source(name),
                Kind::Pattern => pattern_source(name),
            },
        ),
        (".gitignore", "/target\n".to_string()),
    ];
    for (file, text) in files {
        let path = dir.join(file);
        let written = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&path, text));
        written.map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))?;
    }
    let module = name.replace('-', "_");
    println!("created {} {name} in {}", if args.kind == Kind::Gate { "gate" } else { "pattern" }, dir.display());
    println!("\nbuild it:\n  cd {} && cargo build --release --target wasm32-wasip2", dir.display());
    println!("review and run it:\n  runner review target/wasm32-wasip2/release/{module}.wasm\n  runner exec target/wasm32-wasip2/release/{module}.wasm");
    Ok(Exit::Success)
}

fn cargo_toml(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
runner-sdk = {{ path = "{sdk}" }}
serde = {{ version = "1", features = ["derive"] }}

# A component of its own, not part of an enclosing workspace.
[workspace]

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true
"#,
        sdk = sdk.display()
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
