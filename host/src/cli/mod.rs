//! The `runner` command line: arguments and printing. Each verb lives in
//! its own module and calls the run library ([`crate::run`]), never another verb.

mod bench;
mod build;
mod completions;
mod demo;
mod demo_blue_green;
mod demo_fleet;
mod exec;
mod lab;
mod list;
mod push;
mod render;
mod report_file;
mod review;
mod runs;
mod scaffold;
mod target;
mod test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

pub use crate::run::{Exit, Failure};

/// What a command returns.
pub type CommandResult = Result<Exit, Failure>;

/// Run database-aware Kubernetes upgrade patterns and gates shipped as sandboxed WebAssembly components.
#[derive(Parser, Debug)]
#[command(name = "runner", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// More log output (-v: info, -vv: debug). RUNNER_LOG, else RUST_LOG, overrides (an EnvFilter).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Log lines on stderr as text or as one JSON object each.
    #[arg(long, global = true, value_enum, default_value_t, env = "RUNNER_LOG_FORMAT")]
    log_format: LogFormat,

    /// Where compiled components are cached.
    #[arg(long, global = true, env = "RUNNER_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// A loopback registry (`127.0.0.1:5000`, `localhost:5000`, `[::1]:5000`) spoken to over plain HTTP; repeatable.
    /// Any other host is refused: plain HTTP elsewhere hands components and credentials to the network.
    #[arg(long = "insecure-registry", global = true, env = "RUNNER_INSECURE_REGISTRIES", value_delimiter = ',', value_name = "HOST:PORT")]
    insecure_registries: Vec<String>,

    /// Never touch the network: references come from the OCI cache (a tag from the tag it last resolved to).
    #[arg(long, global = true)]
    offline: bool,

    /// The trust policy for references (which registries and repositories, which worlds and imports, whose signatures);
    /// default ~/.config/runner/trust.yaml when it exists.
    #[arg(long, global = true, env = "RUNNER_TRUST", value_name = "FILE")]
    trust: Option<PathBuf>,

    /// Refuse any reference (oci://, oci-layout:) not in the lock file and run tags at their locked digests.
    /// Bundled names and file paths are not affected.
    #[arg(long, global = true)]
    locked: bool,

    /// The lock file `runner pull` writes and `--locked` reads.
    #[arg(long, global = true, default_value = "runner.lock", value_name = "FILE")]
    lock: PathBuf,

    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str = "Exit codes: 0 success or gate pass, 1 the policy reported failure, 2 bad input, \
3 the sandbox stopped the component (deadline, memory, trap, capability denied), 4 a backend was unreachable.";

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a gate or a pattern.
    Exec(Box<exec::ExecArgs>),
    /// The main job on a fresh lab: upgrade a real database cluster with a write probe; print downtime and lost writes.
    Demo(demo::DemoArgs),
    /// Show what a policy can touch and will do, before it runs.
    Review(review::ReviewArgs),
    /// List the bundled policies.
    List(list::ListArgs),
    /// The embedded local cluster: a Kubernetes API server whose Pods are real PostgreSQL and Redis servers.
    Lab(lab::LabArgs),
    /// Create a new gate or pattern (a Rust crate, or a Python gate with --lang python) that builds as generated.
    New(scaffold::NewArgs),
    /// Build a policy folder (Rust crate or Python gate) into a component, check it as `exec` would and precompile it.
    Build(build::BuildArgs),
    /// Run declarative tests (`*.test.yaml`): policies replayed from sessions or canned responses, no cluster needed.
    Test(test::TestArgs),
    /// Targets: check that a cluster has what the runner needs (`runner target check FILE|lab`).
    Target(target::TargetArgs),
    /// Print shell completions.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Measure the engine: compile, cached load, instantiate, host calls, exec.
    Bench(bench::BenchArgs),
    /// List runs (running, waiting for an approval, ended) with their state.
    Runs(runs::RunsArgs),
    /// Approve the approval a run waits for (from any shell, CI or bot that can reach the run's state).
    Approve(runs::AnswerArgs),
    /// Reject the approval a run waits for.
    Reject(runs::AnswerArgs),
    /// Stop a run cleanly at its next step boundary.
    Stop(runs::StopArgs),
    /// Push a component to an OCI registry as a CNCF Wasm artifact.
    Push(push::PushArgs),
    /// Pull a reference into the cache (trust policy and digests checked) and pin it in the lock file.
    Pull(push::PullArgs),
    /// Sign a reference's manifest with a key, cosign's way (tag `sha256-<hex>.sig`).
    Sign(push::SignArgs),
    /// Check a reference's signature against public keys.
    Verify(push::VerifyArgs),
    /// Signing keys: `runner key generate` writes a cosign-compatible key pair.
    Key(push::KeyArgs),
}

/// kubectl's cluster-selection flags, on every command that reaches a cluster.
#[derive(clap::Args, Debug, Default, Clone)]
pub(crate) struct ClusterArgs {
    /// The kubeconfig file to use instead of KUBECONFIG's (and instead of a target file's own).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use instead of the current one.
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// The default namespace instead of the target's or the context's.
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    namespace: Option<String>,
}

impl ClusterArgs {
    /// Whether any of the flags was given.
    pub(crate) fn given(&self) -> bool {
        self.kubeconfig.is_some() || self.context.is_some() || self.namespace.is_some()
    }

    /// The target these flags and `--target` pick (see [`crate::target::Target::select`]).
    pub(crate) fn select(&self, target: Option<String>) -> Result<crate::target::Target, Failure> {
        let selection =
            crate::target::Selection { target, kubeconfig: self.kubeconfig.clone(), context: self.context.clone(), namespace: self.namespace.clone() };
        crate::target::Target::select(&selection, &crate::target::Environment::current()).map_err(Failure::from)
    }
}

/// How results are printed. Crate-private: a doc comment on a variant would become its help text in `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum OutputFormat {
    #[default]
    Text,
    Json,
    Yaml,
}

impl OutputFormat {
    /// Print `document` on stdout as JSON (pretty) or YAML; text has no
    /// generic form, so it prints JSON too (callers print their own text).
    pub(crate) fn print(self, document: &impl serde::Serialize) {
        match self {
            OutputFormat::Yaml => print!("{}", serde_yaml::to_string(document).unwrap_or_default()),
            _ => println!("{}", serde_json::to_string_pretty(document).unwrap_or_default()),
        }
    }
}

/// `--log-format`. Crate-private: a doc comment on a variant would become its help text in `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Entry point of the `runner` binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                return ExitCode::SUCCESS;
            }
            if let Some(format) = asked_for_document() {
                let text = e.to_string();
                let message = text.lines().next().unwrap_or_default().trim_start_matches("error: ").to_string();
                format.print(&serde_json::json!({"error": {"message": message, "exit_code": Exit::BadInput as u8}, "exit": Exit::BadInput as u8}));
            }
            return ExitCode::from(Exit::BadInput as u8);
        }
    };
    // The lab daemon's log is its only record of what it did.
    let daemon = matches!(&cli.command, Command::Lab(args) if args.is_daemon());
    // `runner test` prints one line per case; the components' own logs only with -v.
    let quiet = matches!(&cli.command, Command::Test(_)) && cli.verbose == 0;
    init_logging(cli.verbose.max(u8::from(daemon)), quiet, cli.log_format);
    let cache_dir = cli.cache_dir.clone().or_else(crate::engine::default_cache_dir);
    if let Err(failure) = distribution_settings(&cli, cache_dir.as_deref()).map(crate::run::set_distribution_settings) {
        eprintln!("error: {}", failure.message);
        return ExitCode::from(failure.exit as u8);
    }
    let lock_file = cli.lock.clone();
    let result = match cli.command {
        Command::Exec(args) => exec::run(*args, cache_dir),
        Command::Demo(args) => demo::run(args, cache_dir),
        Command::Review(args) => review::run(args),
        Command::List(args) => list::run(args),
        Command::Lab(args) => lab::run(args),
        Command::New(args) => scaffold::run(args),
        Command::Build(args) => build::run(args, cache_dir),
        Command::Target(args) => target::run(args),
        Command::Test(args) => test::run(args, cache_dir),
        Command::Completions { shell } => {
            completions::print(shell, &mut Cli::command());
            Ok(Exit::Success)
        }
        Command::Bench(args) => bench::run(args, cache_dir),
        Command::Runs(args) => runs::list(args),
        Command::Approve(args) => runs::answer(args, true),
        Command::Reject(args) => runs::answer(args, false),
        Command::Stop(args) => runs::stop(args),
        Command::Push(args) => push::push(args),
        Command::Pull(args) => push::pull(args, lock_file),
        Command::Sign(args) => push::sign(args),
        Command::Verify(args) => push::verify(args),
        Command::Key(args) => push::key(args),
    };
    match result {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            if let Some(format) = asked_for_document().filter(|_| !failure.reported) {
                format.print(&serde_json::json!({"error": {"message": failure.message, "exit_code": failure.exit as u8}, "exit": failure.exit as u8}));
            }
            ExitCode::from(failure.exit as u8)
        }
    }
}

/// The distribution settings the global flags describe: refused when an
/// insecure registry is not loopback or the trust file does not load.
fn distribution_settings(cli: &Cli, cache_dir: Option<&std::path::Path>) -> Result<crate::distribution::Settings, Failure> {
    use crate::distribution::{Settings, client, trust::Trust};
    client::check_insecure(&cli.insecure_registries).map_err(|e| Failure::bad_input(e.to_string()))?;
    let trust_file = cli.trust.clone().or_else(|| dirs::config_dir().map(|d| d.join("runner/trust.yaml")).filter(|p| p.is_file()));
    let trust = match trust_file {
        Some(path) => Trust::load(&path).map_err(|e| Failure::bad_input(format!("trust policy {}: {e}", path.display())))?,
        None => Trust::empty(),
    };
    Ok(Settings {
        insecure: cli.insecure_registries.clone(),
        cache: Settings::cache_beside(cache_dir),
        offline: cli.offline,
        trust,
        locked: cli.locked.then(|| cli.lock.clone()),
    })
}

/// The document format the command line asks for (`-o json`, `--output=yaml`,
/// ...), read from the arguments themselves so that an error found while
/// parsing or checking them is answered in that format too.
fn asked_for_document() -> Option<OutputFormat> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let format = |name: &str| match name {
        "json" => Some(OutputFormat::Json),
        "yaml" => Some(OutputFormat::Yaml),
        _ => None,
    };
    args.iter().enumerate().find_map(|(i, arg)| match arg.as_str() {
        "-o" | "--output" => args.get(i + 1).and_then(|next| format(next)),
        other => other.strip_prefix("--output=").or_else(|| other.strip_prefix("-o=")).or_else(|| other.strip_prefix("-o")).and_then(format),
    })
}

fn init_logging(verbose: u8, quiet: bool, format: LogFormat) {
    // At the default level only the runner's own warnings and the components'
    // logs: a library's error about a call the runner reports itself is noise.
    let default = match verbose {
        0 if quiet => "runner=warn,runner_lab=warn,runner_lab_runtime=warn",
        0 => "runner=warn,runner_lab=warn,runner_lab_runtime=warn,policy=info",
        1 => "info",
        _ => "debug,cranelift_codegen=info,wasmtime=info",
    };
    let filter = ["RUNNER_LOG", "RUST_LOG"]
        .into_iter()
        .find_map(|variable| std::env::var(variable).ok().filter(|v| !v.trim().is_empty()).and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok()))
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
