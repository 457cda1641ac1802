//! Targets: where a run goes.
//!
//! A target is chosen as kubectl chooses a cluster ([`Target::select`]):
//! `--target` (`lab`, a target file, or a kubeconfig), else `--kubeconfig`,
//! else the lab named by `RUNNER_LAB_DIR`, else the current context of
//! `KUBECONFIG`'s files (missing ones skipped) or `~/.kube/config`, else the
//! lab in its default directory. A kubeconfig that is a lab's own (the one
//! `runner lab up` tells you to export) is that lab, databases included.
//! `--context` and `-n/--namespace` then override what was chosen.
//!
//! A target file (YAML) names any cluster: a kubeconfig context, the
//! default namespace, and per database cluster its StatefulSet, primary
//! Service, member port and where its credentials come from. See the
//! README's "Targets" section for the schema.
//!
//! A target is configuration only: connecting to the cluster and resolving
//! credentials are the backends' work (`backends::kube::connect`,
//! `backends::members`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use runner_lab::daemon::LabDir;
use serde::Deserialize;

use crate::domain::{error_chain, names};

mod fleet;
mod traffic;
pub use fleet::{Fleet, MAX_MEMBERS, Member};
pub use traffic::{SwitchConfig, SwitchVia, lab_switches};

/// Why a target cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The target file or the kubeconfig it names is wrong (exit code 2).
    #[error("{0}")]
    Bad(String),
    /// The cluster cannot be reached at all (exit code 4): the lab is not running.
    #[error("{0}")]
    Unreachable(String),
}

/// A database engine, which sets the default member port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// PostgreSQL (port 5432).
    Postgres,
    /// Redis (port 6379).
    Redis,
    /// MongoDB (port 27017).
    Mongo,
}

impl Engine {
    /// As the target file spells it (`postgres`).
    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Redis => "redis",
            Engine::Mongo => "mongo",
        }
    }

    /// What one cluster of it is called (`PostgreSQL cluster`).
    pub fn cluster_noun(self) -> &'static str {
        match self {
            Engine::Postgres => "PostgreSQL cluster",
            Engine::Redis => "Redis cluster",
            Engine::Mongo => "MongoDB replica set",
        }
    }

    /// The port members listen on unless the target says otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::Redis => 6379,
            Engine::Mongo => 27017,
        }
    }
}

/// How the runner reaches a cluster's members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reach {
    /// At their Pods' IP addresses: the runner runs where Pod IPs route
    /// (in the cluster, on its network, or the lab).
    #[default]
    PodAddress,
    /// Through the Kubernetes API server's `pods/portforward`, as `kubectl
    /// port-forward` does: from a laptop outside the cluster's network.
    PortForward,
}

impl Reach {
    /// As the target file spells it (`port-forward`).
    pub fn name(self) -> &'static str {
        match self {
            Reach::PodAddress => "pod-address",
            Reach::PortForward => "port-forward",
        }
    }
}

/// Where a database cluster's password comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "from")]
pub enum CredentialSource {
    /// A key of a Secret in the database's namespace.
    Secret {
        /// The Secret's name.
        name: String,
        /// The key in its `data`.
        key: String,
    },
    /// An environment variable of the runner's own process.
    Env {
        /// The variable's name.
        var: String,
    },
}

impl std::fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::Secret { name, key } => write!(f, "Secret {name} key {key}"),
            CredentialSource::Env { var } => write!(f, "environment variable {var}"),
        }
    }
}

/// One database cluster of a target, with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Database {
    /// The logical name (`postgres-cluster`); members are `<statefulSet>-<ordinal>`.
    pub name: String,
    /// Which database it is.
    pub engine: Engine,
    /// Its namespace: the target's unless the file overrides it.
    pub namespace: Option<String>,
    /// The StatefulSet whose Pods are the members.
    pub stateful_set: String,
    /// The Service that points at the primary (for Redis: the cluster's Service), if any.
    pub primary_service: Option<String>,
    /// The port members listen on.
    pub port: u16,
    /// The user to connect as, when the engine has users.
    pub user: Option<String>,
    /// Where the password comes from.
    pub credentials: CredentialSource,
    /// How its members are reached.
    pub reach: Reach,
    /// A cluster the lab may or may not run (`runner lab up --redis`):
    /// its absence is reported, not counted as missing.
    #[serde(skip)]
    pub optional: bool,
}

impl Database {
    /// Whether `member` names one of this cluster's members: its
    /// StatefulSet's name, `-`, and an ordinal written as Kubernetes writes
    /// it (digits, no sign, no leading zero), so one member has one name.
    pub fn has_member(&self, member: &str) -> bool {
        let ordinal = member.strip_prefix(self.stateful_set.as_str()).and_then(|rest| rest.strip_prefix('-'));
        ordinal.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0')) && n.len() <= 9)
    }
}

/// Where a target comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The lab in this directory.
    Lab(PathBuf),
    /// A target file.
    File(PathBuf),
    /// A kubeconfig and its context, as kubectl reads them: no database entries.
    Kubeconfig,
}

/// A target: a cluster and the database clusters in it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The lab or the file this target came from.
    pub source: Source,
    /// The kubeconfig files, merged as kubectl merges `KUBECONFIG`'s list
    /// (the first file to name a context, cluster or user wins); empty:
    /// kubectl's rules when the run connects (`KUBECONFIG`, `~/.kube/config`,
    /// or the Pod's service account inside a cluster).
    pub kubeconfig: Vec<PathBuf>,
    /// The kubeconfig context; `None` is the current one.
    pub context: Option<String>,
    /// The default namespace; `None` is the context's (else `default`).
    pub namespace: Option<String>,
    /// The database clusters the target names.
    pub databases: Vec<Database>,
    /// The cluster's own API (`cluster:` in a target file); the lab's is
    /// read from its `arm.json` when a run connects ([`Target::cluster_api`]).
    pub cluster: Option<Box<AksConfig>>,
    /// The weighted traffic switches a target file names (`traffic:`); a
    /// lab's own are added by [`Target::switches`].
    pub traffic: Vec<SwitchConfig>,
}

/// The ARM endpoint of Azure's public cloud, where `cluster.aks.endpoint` defaults.
pub const ARM_ENDPOINT: &str = "https://management.azure.com";

/// A cluster on AKS, reached through Azure Resource Manager.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AksConfig {
    /// The subscription id (a UUID).
    pub subscription: String,
    /// The resource group.
    pub resource_group: String,
    /// The managed cluster's name.
    pub name: String,
    /// The ARM endpoint (`https://management.azure.com`, or the lab's loopback URL).
    pub endpoint: String,
    /// A file holding a static bearer token (the lab's); `None`: `azure_identity`.
    pub token_file: Option<PathBuf>,
    /// An extra root CA (PEM) to trust (the lab's).
    pub ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    aks: AksFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct AksFile {
    subscription: String,
    #[serde(alias = "resourceGroup")]
    resource_group: String,
    name: String,
    endpoint: Option<String>,
    #[serde(alias = "tokenFile")]
    token_file: Option<PathBuf>,
    #[serde(alias = "caFile")]
    ca_file: Option<PathBuf>,
}

/// The lab's `arm.json`, as the lab writes it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LabArm {
    endpoint: String,
    subscription_id: String,
    resource_group: String,
    cluster_name: String,
    ca_file: PathBuf,
    token_file: PathBuf,
}

impl AksConfig {
    /// Check a `cluster.aks` section; relative files are read from `base`.
    fn checked(file: AksFile, base: &Path) -> Result<AksConfig, String> {
        let uuid = |v: &str| {
            let parts: Vec<&str> = v.split('-').collect();
            parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
        };
        if !uuid(&file.subscription) {
            return Err(format!("cluster.aks.subscription `{}` is not a subscription id (a UUID)", file.subscription.escape_debug()));
        }
        // Azure's rules: a resource group is 1-90 letters, digits, `-_.()`,
        // not ending in `.`; a managed cluster 1-63 letters, digits, `-_`.
        let group_ok = (1..=90).contains(&file.resource_group.len())
            && file.resource_group.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.()".contains(&b))
            && !file.resource_group.ends_with('.');
        if !group_ok {
            return Err(format!(
                "cluster.aks.resource-group `{}`: 1-90 letters, digits, `-`, `_`, `.`, `(`, `)`, not ending in `.`",
                file.resource_group.escape_debug()
            ));
        }
        let name_ok = (1..=63).contains(&file.name.len())
            && file.name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && file.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(format!("cluster.aks.name `{}`: 1-63 letters, digits, `-` and `_`, starting alphanumeric", file.name.escape_debug()));
        }
        let endpoint = file.endpoint.unwrap_or_else(|| ARM_ENDPOINT.into());
        let endpoint = check_endpoint(&endpoint).map_err(|why| format!("cluster.aks.endpoint `{}`: {why}", endpoint.escape_debug()))?;
        let anchored = |p: PathBuf| {
            let p = expand_home(&p);
            if p.is_relative() { base.join(p) } else { p }
        };
        Ok(AksConfig {
            subscription: file.subscription,
            resource_group: file.resource_group,
            name: file.name,
            endpoint,
            token_file: file.token_file.map(anchored),
            ca_file: file.ca_file.map(anchored),
        })
    }
}

/// An ARM endpoint: `https://` a host (and port), no path, query or
/// credentials; plain `http` only to loopback, never across a network.
fn check_endpoint(text: &str) -> Result<String, String> {
    let (scheme, rest) = text.split_once("://").ok_or("an https:// URL")?;
    let host_port = rest.trim_end_matches('/');
    if host_port.is_empty() || host_port.contains(['/', '?', '#', '@', ' ']) {
        return Err("a scheme and a host (and port) only, no path, query or user".into());
    }
    let host = host_port.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(host_port, |(host, _)| host);
    let loopback = host == "localhost" || host == "[::1]" || host.starts_with("127.");
    match scheme {
        "https" => Ok(format!("https://{host_port}")),
        "http" if loopback => Ok(format!("http://{host_port}")),
        "http" => Err("plain http only to a loopback address; ARM is https".into()),
        _ => Err("an https:// URL".into()),
    }
}

/// The file as written; validated into a [`Target`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TargetFile {
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    // In the file's order: `run-info.databases` answers in it.
    databases: indexmap::IndexMap<String, DatabaseFile>,
    cluster: Option<ClusterFile>,
    traffic: Option<traffic::TrafficFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DatabaseFile {
    engine: Engine,
    namespace: Option<String>,
    stateful_set: Option<String>,
    primary_service: Option<String>,
    port: Option<u16>,
    reach: Option<Reach>,
    credentials: CredentialsFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    secret: Option<String>,
    key: Option<String>,
    env: Option<String>,
    user: Option<String>,
}

/// The largest target file read: a real one is a few kilobytes.
pub const MAX_TARGET_BYTES: u64 = 1 << 20;

/// The deepest nesting of a target file (block indentation or flow
/// brackets); a real one nests five levels.
pub const MAX_TARGET_NESTING: usize = 32;

/// How deep `text` nests, when deeper than `limit`: flow brackets outside
/// quotes, and block levels counted by indentation (two spaces or one `- `
/// item each), so a hostile file is refused before the YAML parser recurses.
fn nesting_beyond(text: &str, limit: usize) -> Option<usize> {
    let (mut flow, mut deepest) = (0usize, 0usize);
    for line in text.lines() {
        let indent = line.len() - line.trim_start_matches([' ', '-']).len();
        let mut quote: Option<char> = None;
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') => break,
                (None, '[' | '{') => flow += 1,
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            deepest = deepest.max(flow + indent / 2);
        }
    }
    (deepest > limit).then_some(deepest)
}

/// The environment variable that moves the lab (as for `runner lab --dir`).
pub const LAB_DIR_ENV: &str = "RUNNER_LAB_DIR";

/// A Kubernetes object name (a DNS-1123 subdomain).
fn valid_name(name: &str) -> bool {
    names::subdomain("name", name).is_ok()
}

/// Which cluster the operator picked: `--target`, and kubectl's own flags over it.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `--target`: `lab`, a target file, or a kubeconfig file.
    pub target: Option<String>,
    /// `--kubeconfig`: this file instead of `KUBECONFIG`'s (and instead of a target file's).
    pub kubeconfig: Option<PathBuf>,
    /// `--context`: this context instead of the current one.
    pub context: Option<String>,
    /// `-n/--namespace`: the default namespace instead of the target's or the context's.
    pub namespace: Option<String>,
}

/// What the process's environment says about clusters, read once so that
/// selection is a function of it.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `RUNNER_LAB_DIR`.
    pub lab_dir: Option<PathBuf>,
    /// `KUBECONFIG`, a list of files as kubectl reads it.
    pub kubeconfig: Option<OsString>,
    /// The home directory, for `~/.kube/config`.
    pub home: Option<PathBuf>,
}

impl Environment {
    /// This process's environment.
    pub fn current() -> Environment {
        Environment {
            lab_dir: std::env::var_os(LAB_DIR_ENV).filter(|d| !d.is_empty()).map(PathBuf::from),
            kubeconfig: std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()),
            home: dirs::home_dir(),
        }
    }

    /// The kubeconfig files kubectl would read: `KUBECONFIG`'s that exist
    /// (a missing one is skipped, as kubectl skips it), else
    /// `~/.kube/config` if it exists; `None` when neither names a file.
    pub fn kubeconfig_files(&self) -> Result<Option<Vec<PathBuf>>, TargetError> {
        if let Some(list) = &self.kubeconfig {
            let named: Vec<PathBuf> = std::env::split_paths(list).filter(|p| !p.as_os_str().is_empty()).collect();
            let existing: Vec<PathBuf> = named.iter().filter(|p| p.exists()).cloned().collect();
            if existing.is_empty() && !named.is_empty() {
                let shown: Vec<String> = named.iter().map(|p| p.display().to_string()).collect();
                return Err(TargetError::Bad(format!("KUBECONFIG names no file that exists ({})", shown.join(", "))));
            }
            if !existing.is_empty() {
                return Ok(Some(existing));
            }
        }
        Ok(self.home.as_ref().map(|h| h.join(".kube").join("config")).filter(|p| p.is_file()).map(|p| vec![p]))
    }
}

impl Target {
    /// The target `selection` picks in `env` (see the module's documentation for the order).
    pub fn select(selection: &Selection, env: &Environment) -> Result<Target, TargetError> {
        let context = selection.context.as_deref();
        let mut target = match (selection.target.as_deref(), &selection.kubeconfig) {
            (Some("lab"), Some(_)) => return Err(TargetError::Bad("--kubeconfig and --target lab name two clusters; give one".into())),
            (Some(text), kubeconfig) => {
                let mut target = Target::from_arg_in(text, context, env)?;
                if let Some(file) = kubeconfig {
                    target.kubeconfig = vec![explicit_kubeconfig(file)?];
                }
                target
            }
            (None, Some(file)) => Target::of_kubeconfigs(vec![explicit_kubeconfig(file)?], context)?,
            (None, None) => match (&env.lab_dir, env.kubeconfig_files()?) {
                (Some(dir), _) => Target::lab(dir.clone()),
                (None, Some(files)) => Target::of_kubeconfigs(files, context)?,
                (None, None) => Target::lab(LabDir::default_root()),
            },
        };
        if let Some(context) = context {
            target.context = Some(context.to_string());
        }
        if let Some(namespace) = &selection.namespace {
            names::subdomain("namespace", namespace).map_err(|e| TargetError::Bad(format!("--namespace: {e}")))?;
            target.namespace = Some(namespace.clone());
        }
        Ok(target)
    }

    /// `lab`, a target file or a kubeconfig, as `--target` takes it, in this process's environment.
    pub fn from_arg(text: &str) -> Result<Target, TargetError> {
        Target::from_arg_in(text, None, &Environment::current())
    }

    fn from_arg_in(text: &str, context: Option<&str>, env: &Environment) -> Result<Target, TargetError> {
        if text == "lab" {
            return Ok(Target::lab(env.lab_dir.clone().unwrap_or_else(LabDir::default_root)));
        }
        let path = Path::new(text);
        let bad = |what: &str| TargetError::Bad(format!("--target `{text}`: {what}"));
        // The file type first: a FIFO would block the read, a device never end it.
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(bad("not `lab` and no such file")),
            Err(e) => return Err(bad(&format!("cannot read it: {e}"))),
        };
        if metadata.is_dir() {
            return Err(bad("is a directory, not a target file"));
        }
        if !metadata.is_file() {
            return Err(bad("is not a regular file (a FIFO, socket or device)"));
        }
        if metadata.len() > MAX_TARGET_BYTES {
            return Err(bad(&format!("is {} bytes; a target file is at most {MAX_TARGET_BYTES}", metadata.len())));
        }
        let mut body = String::new();
        use std::io::Read;
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_TARGET_BYTES + 1).read_to_string(&mut body))
            .map_err(|e| TargetError::Bad(format!("target {text}: cannot read it: {e}")))?;
        if body.len() as u64 > MAX_TARGET_BYTES {
            return Err(bad(&format!("grew past {MAX_TARGET_BYTES} bytes while it was read")));
        }
        if is_kubeconfig(&body) {
            return Target::of_kubeconfigs(vec![path.to_path_buf()], context);
        }
        Target::parse(&body, path)
    }

    /// The cluster of kubeconfig `files` (merged, kubectl's order) at
    /// `context` (`None`: the current one): a lab when the file that
    /// defines that context is a lab's own kubeconfig, with the lab's
    /// databases; otherwise a cluster without database entries.
    fn of_kubeconfigs(files: Vec<PathBuf>, context: Option<&str>) -> Result<Target, TargetError> {
        let mut current = context.map(str::to_string);
        for file in &files {
            let Ok(config) = Kubeconfig::read_from(file) else { continue };
            if current.is_none() {
                current = config.current_context.clone();
            }
            if let Some(name) = &current
                && config.contexts.iter().any(|c| &c.name == name)
            {
                if let Some(lab) = LabDir::of_kubeconfig(file) {
                    return Ok(Target::lab(lab.root));
                }
                break;
            }
        }
        Ok(Target { source: Source::Kubeconfig, kubeconfig: files, context: None, namespace: None, databases: Vec::new(), cluster: None, traffic: Vec::new() })
    }

    /// The lab in `dir`: its kubeconfig, namespace `default`, and the
    /// database clusters a lab can run.
    pub fn lab(dir: PathBuf) -> Target {
        let secret = |name: &str| CredentialSource::Secret { name: name.into(), key: "password".into() };
        let databases = vec![
            Database {
                name: "postgres-cluster".into(),
                engine: Engine::Postgres,
                namespace: None,
                stateful_set: "postgres-cluster".into(),
                primary_service: Some("postgres-primary".into()),
                port: 5432,
                user: Some("postgres".into()),
                credentials: secret("postgres-credentials"),
                reach: Reach::PodAddress,
                optional: true,
            },
            Database {
                name: "redis-cluster".into(),
                engine: Engine::Redis,
                namespace: None,
                stateful_set: "redis-cluster".into(),
                primary_service: Some("redis-cluster".into()),
                port: 6379,
                user: None,
                credentials: secret("redis-credentials"),
                reach: Reach::PodAddress,
                optional: true,
            },
            Database {
                name: "mongo".into(),
                engine: Engine::Mongo,
                namespace: None,
                stateful_set: "mongo".into(),
                primary_service: Some("mongo".into()),
                port: 27017,
                user: Some("root".into()),
                credentials: secret("mongo-credentials"),
                reach: Reach::PodAddress,
                optional: true,
            },
        ];
        Target {
            kubeconfig: vec![LabDir::new(&dir).kubeconfig()],
            source: Source::Lab(dir),
            context: None,
            namespace: Some("default".into()),
            databases,
            cluster: None,
            traffic: Vec::new(),
        }
    }

    /// Parse a target file's text; `path` names it in errors and anchors
    /// a relative `kubeconfig`.
    pub fn parse(text: &str, path: &Path) -> Result<Target, TargetError> {
        let shown = path.display();
        let bad = |what: String| TargetError::Bad(format!("target {shown}: {what}"));
        // An empty file is a valid target: the current context, no databases.
        let text = if text.trim().is_empty() { "{}" } else { text };
        if let Some(depth) = nesting_beyond(text, MAX_TARGET_NESTING) {
            return Err(bad(format!("nested {depth} levels deep; a target file nests at most {MAX_TARGET_NESTING}")));
        }
        let file: TargetFile = serde_yaml::from_str(text).map_err(|e| bad(e.to_string().replace('\n', " ")))?;
        if let Some(ns) = file.namespace.as_deref().filter(|ns| !valid_name(ns)) {
            return Err(bad(format!("namespace `{ns}` is not a valid Kubernetes name")));
        }
        let kubeconfig: Vec<PathBuf> = file
            .kubeconfig
            .map(|p| {
                let p = expand_home(&p);
                if p.is_relative() { path.parent().unwrap_or(Path::new(".")).join(p) } else { p }
            })
            .into_iter()
            .collect();
        let mut databases = Vec::new();
        for (name, db) in file.databases {
            let bad = |what: String| bad(format!("databases.{name}: {what}"));
            let stateful_set = db.stateful_set.unwrap_or_else(|| name.clone());
            for (field, value) in [("statefulSet", Some(&stateful_set)), ("primaryService", db.primary_service.as_ref()), ("namespace", db.namespace.as_ref())]
            {
                if let Some(value) = value.filter(|v| !valid_name(v)) {
                    return Err(bad(format!("{field} `{value}` is not a valid Kubernetes name")));
                }
            }
            if db.port == Some(0) {
                return Err(bad("port 0 is not a port".into()));
            }
            let c = db.credentials;
            let credentials = match (c.secret, c.env) {
                (Some(_), Some(_)) => return Err(bad("credentials: give either `secret` (with `key`) or `env`, not both".into())),
                (None, None) => return Err(bad("credentials: give `secret` (with `key`, default `password`) or `env`".into())),
                (Some(secret), None) => {
                    if !valid_name(&secret) {
                        return Err(bad(format!("credentials: secret `{secret}` is not a valid Kubernetes name")));
                    }
                    CredentialSource::Secret { name: secret, key: c.key.unwrap_or_else(|| "password".into()) }
                }
                (None, Some(var)) => {
                    if c.key.is_some() {
                        return Err(bad("credentials: `key` belongs to `secret`, not `env`".into()));
                    }
                    if var.is_empty() || var.contains(['=', '\0']) {
                        return Err(bad(format!("credentials: `{var}` is not an environment variable name")));
                    }
                    CredentialSource::Env { var }
                }
            };
            let user = c.user.or_else(|| (db.engine == Engine::Postgres).then(|| "postgres".to_string()));
            databases.push(Database {
                port: db.port.unwrap_or(db.engine.default_port()),
                name,
                engine: db.engine,
                namespace: db.namespace,
                stateful_set,
                primary_service: db.primary_service,
                user,
                credentials,
                reach: db.reach.unwrap_or_default(),
                optional: false,
            });
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let cluster = file.cluster.map(|c| AksConfig::checked(c.aks, base).map(Box::new)).transpose().map_err(&bad)?;
        let traffic = file.traffic.map(traffic::TrafficFile::checked).transpose().map_err(bad)?.unwrap_or_default();
        Ok(Target { source: Source::File(path.to_path_buf()), kubeconfig, context: file.context, namespace: file.namespace, databases, cluster, traffic })
    }

    /// The traffic switches this target names: a target file's `traffic:`
    /// section; a lab's front door (`frontdoor` by its HTTPRoute,
    /// `frontdoor-tm` by its Traffic Manager profile) at the address the
    /// running lab wrote.
    pub fn switches(&self) -> Vec<SwitchConfig> {
        match &self.source {
            Source::Lab(dir) => lab_switches(LabDir::new(dir).frontdoor_url()),
            _ => self.traffic.clone(),
        }
    }

    /// The cluster API this target names: a target file's `cluster:`
    /// section, or for the lab its `<lab>/arm.json` (`Unreachable` when the
    /// lab is not running or serves no ARM API); `None`: none configured.
    pub fn cluster_api(&self) -> Result<Option<AksConfig>, TargetError> {
        let Source::Lab(dir) = &self.source else { return Ok(self.cluster.as_deref().cloned()) };
        let path = dir.join("arm.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TargetError::Unreachable(format!(
                    "the lab in {} serves no ARM API ({} is missing): start it with `runner lab up`",
                    dir.display(),
                    path.display()
                )));
            }
            Err(e) => return Err(TargetError::Bad(format!("{}: cannot read it: {e}", path.display()))),
        };
        let arm: LabArm = serde_json::from_str(&text).map_err(|e| TargetError::Bad(format!("{}: {e}", path.display())))?;
        let file = AksFile {
            subscription: arm.subscription_id,
            resource_group: arm.resource_group,
            name: arm.cluster_name,
            endpoint: Some(arm.endpoint),
            token_file: Some(arm.token_file),
            ca_file: Some(arm.ca_file),
        };
        AksConfig::checked(file, dir).map(Some).map_err(|why| TargetError::Bad(format!("{}: {why}", path.display())))
    }

    /// `lab` or the file's path, for messages.
    pub fn label(&self) -> String {
        match &self.source {
            Source::Lab(_) => "lab".into(),
            Source::File(path) => path.display().to_string(),
            Source::Kubeconfig => match self.context_name() {
                Some(context) => format!("context {context}"),
                None => "the current kubeconfig context".into(),
            },
        }
    }

    /// The kube-rs configuration for this target, and what to add to
    /// "cannot reach" messages.
    pub async fn kube_config(&self) -> Result<(kube::Config, Option<String>), TargetError> {
        if let Source::Lab(dir) = &self.source {
            let lab = LabDir::new(dir);
            if runner_lab::ops::daemon_pid(&lab).is_none() || !lab.kubeconfig().is_file() {
                return Err(TargetError::Unreachable(format!("the lab in {} is not running; start it with `runner lab up`", dir.display())));
            }
            let hint = format!("is the lab in {} still running? start it with `runner lab up`", dir.display());
            let config = self
                .config_of(
                    Kubeconfig::read_from(lab.kubeconfig())
                        .map_err(|e| TargetError::Bad(format!("the lab's kubeconfig {}: {e}", lab.kubeconfig().display())))?,
                )
                .await?;
            return Ok((config, Some(hint)));
        }
        let files = match self.kubeconfig_files() {
            Ok(Some(files)) => files,
            Ok(None) if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
                let mut config = kube::Config::incluster().map_err(|e| self.bad(format!("in-cluster configuration: {}", error_chain(&e))))?;
                if let Some(ns) = &self.namespace {
                    config.default_namespace = ns.clone();
                }
                return Ok((config, None));
            }
            Ok(None) => {
                return Err(self
                    .bad("no kubeconfig: pass --kubeconfig, name one with `kubeconfig:` in the target file, set KUBECONFIG, or create ~/.kube/config".into()));
            }
            Err(e) => return Err(e),
        };
        let kubeconfig = merged(&files).map_err(|e| self.bad(e))?;
        Ok((self.config_of(kubeconfig).await?, None))
    }

    async fn config_of(&self, kubeconfig: Kubeconfig) -> Result<kube::Config, TargetError> {
        if let Some(context) = &self.context
            && !kubeconfig.contexts.iter().any(|c| &c.name == context)
        {
            let known: Vec<&str> = kubeconfig.contexts.iter().map(|c| c.name.as_str()).collect();
            return Err(
                self.bad(format!("the kubeconfig has no context `{context}` (it has: {})", if known.is_empty() { "none".into() } else { known.join(", ") }))
            );
        }
        let options = KubeConfigOptions { context: self.context.clone(), ..KubeConfigOptions::default() };
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| self.bad(format!("kubeconfig: {}", error_chain(&e))))?;
        if let Some(ns) = &self.namespace {
            config.default_namespace = ns.clone();
        }
        Ok(config)
    }

    fn bad(&self, what: String) -> TargetError {
        TargetError::Bad(format!("target {}: {what}", self.label()))
    }

    /// The kubeconfig files this target reads: its own, or kubectl's.
    fn kubeconfig_files(&self) -> Result<Option<Vec<PathBuf>>, TargetError> {
        if self.kubeconfig.is_empty() { Environment::current().kubeconfig_files() } else { Ok(Some(self.kubeconfig.clone())) }
    }

    /// The context the target uses, for reports (`None`: in-cluster or unknown).
    pub fn context_name(&self) -> Option<String> {
        if let Some(context) = &self.context {
            return Some(context.clone());
        }
        merged(&self.kubeconfig_files().ok()??).ok()?.current_context
    }
}

/// `files` merged as kubectl merges `KUBECONFIG`'s list.
fn merged(files: &[PathBuf]) -> Result<Kubeconfig, String> {
    files.iter().try_fold(Kubeconfig::default(), |merged, file| {
        let next = Kubeconfig::read_from(file).map_err(|e| format!("kubeconfig {}: {}", file.display(), error_chain(&e)))?;
        merged.merge(next).map_err(|e| format!("kubeconfig {}: {}", file.display(), error_chain(&e)))
    })
}

/// A `--kubeconfig` file, which must exist (only `KUBECONFIG`'s list skips missing files).
fn explicit_kubeconfig(file: &Path) -> Result<PathBuf, TargetError> {
    if file.is_file() { Ok(file.to_path_buf()) } else { Err(TargetError::Bad(format!("--kubeconfig {}: no such file", file.display()))) }
}

/// Whether a `--target` file is a kubeconfig (`kind: Config`) rather than a target file.
fn is_kubeconfig(text: &str) -> bool {
    serde_yaml::from_str::<serde_yaml::Value>(text).is_ok_and(|v| v.get("kind").and_then(|k| k.as_str()) == Some("Config") && v.get("apiVersion").is_some())
}

fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), dirs::home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Target, TargetError> {
        Target::parse(text, Path::new("/etc/runner/prod.yaml"))
    }

    #[test]
    fn a_full_target_file() {
        let target = parse(
            "kubeconfig: kube/prod.yaml\ncontext: aks-prod\nnamespace: databases\ndatabases:\n  orders:\n    engine: postgres\n    statefulSet: orders-pg\n    primaryService: orders-primary\n    credentials:\n      secret: orders-credentials\n      key: superuser-password\n  cache:\n    engine: redis\n    port: 7000\n    reach: port-forward\n    credentials:\n      env: REDIS_PASSWORD\n",
        )
        .unwrap();
        assert_eq!(target.kubeconfig, vec![PathBuf::from("/etc/runner/kube/prod.yaml")]);
        assert_eq!(target.context.as_deref(), Some("aks-prod"));
        assert_eq!(target.namespace.as_deref(), Some("databases"));
        let orders = target.databases.iter().find(|d| d.name == "orders").unwrap();
        assert_eq!((orders.stateful_set.as_str(), orders.port, orders.user.as_deref()), ("orders-pg", 5432, Some("postgres")));
        assert_eq!(orders.credentials, CredentialSource::Secret { name: "orders-credentials".into(), key: "superuser-password".into() });
        let cache = target.databases.iter().find(|d| d.name == "cache").unwrap();
        assert_eq!((cache.stateful_set.as_str(), cache.port, cache.primary_service.as_deref()), ("cache", 7000, None));
        assert_eq!(cache.credentials, CredentialSource::Env { var: "REDIS_PASSWORD".into() });
        assert_eq!((orders.reach, cache.reach), (Reach::PodAddress, Reach::PortForward), "pod-address unless the entry says otherwise");
    }

    #[test]
    fn a_cluster_section() {
        let target = parse(
            "cluster:\n  aks:\n    subscription: 00000000-1111-2222-3333-444444444444\n    resource-group: rg-prod\n    name: aks-prod\n    token-file: arm-token\n",
        )
        .unwrap();
        let aks = target.cluster.unwrap();
        assert_eq!((aks.resource_group.as_str(), aks.name.as_str(), aks.endpoint.as_str()), ("rg-prod", "aks-prod", ARM_ENDPOINT));
        assert_eq!(aks.token_file, Some(PathBuf::from("/etc/runner/arm-token")), "relative to the target file");
        assert_eq!(aks.ca_file, None);
        let lab = parse("cluster:\n  aks:\n    subscription: 00000000-1111-2222-3333-444444444444\n    resourceGroup: runner-lab\n    name: lab\n    endpoint: https://127.0.0.1:8443/\n").unwrap();
        assert_eq!(lab.cluster.unwrap().endpoint, "https://127.0.0.1:8443", "camelCase spellings too, the trailing slash dropped");
        assert!(parse("{}").unwrap().cluster.is_none());
        let sub = "subscription: 00000000-1111-2222-3333-444444444444";
        let cases = [
            ("cluster:\n  aks:\n    subscription: prod\n    resource-group: rg\n    name: c\n".to_string(), "not a subscription id"),
            (format!("cluster:\n  aks:\n    {sub}\n    name: c\n"), "missing field `resource-group`"),
            (format!("cluster:\n  aks:\n    {sub}\n    resource-group: rg/x\n    name: c\n"), "cluster.aks.resource-group"),
            (format!("cluster:\n  aks:\n    {sub}\n    resource-group: rg\n    name: c?x\n"), "cluster.aks.name"),
            (
                format!("cluster:\n  aks:\n    {sub}\n    resource-group: rg\n    name: c\n    endpoint: http://arm.example.com\n"),
                "plain http only to a loopback",
            ),
            (format!("cluster:\n  aks:\n    {sub}\n    resource-group: rg\n    name: c\n    endpoint: https://x/subscriptions\n"), "no path"),
            (format!("cluster:\n  aks:\n    {sub}\n    resource-group: rg\n    name: c\n    tokn-file: x\n"), "unknown field `tokn-file`"),
            ("cluster:\n  gke: {}\n".to_string(), "unknown field `gke`"),
        ];
        for (text, expected) in cases {
            let message = parse(&text).unwrap_err().to_string();
            assert!(message.contains(expected), "{text:?}: {message}");
        }
    }

    #[test]
    fn the_labs_cluster_api_is_its_arm_json() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::lab(dir.path().to_path_buf());
        assert!(matches!(target.cluster_api(), Err(TargetError::Unreachable(m)) if m.contains("arm.json")));
        std::fs::write(
            dir.path().join("arm.json"),
            r#"{"endpoint":"https://127.0.0.1:4431","subscriptionId":"6b1a9f6e-5c1d-4a8e-9a51-0c8f2b7d9e10","resourceGroup":"runner-lab","clusterName":"lab","location":"eastus","caFile":"/l/ca.pem","tokenFile":"/l/arm-token"}"#,
        )
        .unwrap();
        let aks = target.cluster_api().unwrap().unwrap();
        assert_eq!((aks.endpoint.as_str(), aks.name.as_str()), ("https://127.0.0.1:4431", "lab"));
        assert_eq!((aks.token_file.unwrap(), aks.ca_file.unwrap()), (PathBuf::from("/l/arm-token"), PathBuf::from("/l/ca.pem")));
        std::fs::write(dir.path().join("arm.json"), "{").unwrap();
        assert!(matches!(target.cluster_api(), Err(TargetError::Bad(_))));
    }

    #[test]
    fn databases_keep_the_files_order() {
        let target =
            parse("databases:\n  zeta:\n    engine: redis\n    credentials: {env: A}\n  alpha:\n    engine: postgres\n    credentials: {env: B}\n").unwrap();
        let names: Vec<&str> = target.databases.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha"]);
    }

    #[test]
    fn an_empty_file_means_the_current_context() {
        let target = parse("{}").unwrap();
        assert!(target.kubeconfig.is_empty() && target.context.is_none() && target.databases.is_empty());
    }

    #[test]
    fn bad_files_say_what_and_where() {
        let cases = [
            ("namespce: x\n", "unknown field `namespce`"),
            ("databases:\n  pg:\n    engine: oracle\n    credentials: {env: X}\n", "unknown variant `oracle`"),
            ("databases:\n  pg:\n    engine: postgres\n", "missing field `credentials`"),
            ("databases:\n  pg:\n    engine: postgres\n    credentials: {env: X, secret: y}\n", "either `secret`"),
            ("databases:\n  pg:\n    engine: postgres\n    credentials: {}\n", "give `secret`"),
            ("databases:\n  pg:\n    engine: postgres\n    statefulSet: Bad_Name\n    credentials: {env: X}\n", "statefulSet `Bad_Name`"),
            ("databases:\n  pg:\n    engine: postgres\n    port: 70000\n    credentials: {env: X}\n", "port"),
            ("- a list\n", "invalid type"),
            (
                "databases:\n  pg:\n    engine: postgres\n    reach: vpn\n    credentials: {env: X}\n",
                "unknown variant `vpn`, expected `pod-address` or `port-forward`",
            ),
            (":\n  - ][", "did not find expected"),
        ];
        for (text, expected) in cases {
            match parse(text) {
                Err(TargetError::Bad(message)) => {
                    assert!(message.contains(expected), "{text:?}: {message}");
                    assert!(message.starts_with("target /etc/runner/prod.yaml: "), "{message}");
                    assert!(!message.contains('\n'), "one line: {message}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn hostile_files_are_refused_quickly_and_clearly() {
        let deep = format!("databases: {}{}", "[".repeat(10_000), "]".repeat(10_000));
        let message = parse(&deep).unwrap_err().to_string();
        assert!(message.contains("nested 10000 levels deep"), "{message}");
        let indented: String = (0..200).map(|i| format!("{}a{i}:\n", "  ".repeat(i))).collect();
        assert!(parse(&indented).unwrap_err().to_string().contains("levels deep"));
        let dir = tempfile::tempdir().unwrap();
        let shown = |arg: &Path| Target::from_arg(arg.to_str().unwrap()).unwrap_err().to_string();
        assert!(shown(dir.path()).contains("is a directory"), "{}", shown(dir.path()));
        assert!(shown(Path::new("/dev/zero")).contains("is not a regular file"));
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert!(shown(&fifo).contains("is not a regular file"), "a FIFO is refused without opening it");
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, "#".repeat(2 << 20)).unwrap();
        assert!(shown(&big).contains("a target file is at most 1048576"), "{}", shown(&big));
        assert!(shown(&dir.path().join("missing.yaml")).contains("no such file"));
    }

    #[test]
    fn members_have_one_spelling() {
        let target = parse("databases:\n  pg:\n    engine: postgres\n    statefulSet: pg\n    credentials: {env: X}\n").unwrap();
        let pg = &target.databases[0];
        for member in ["pg-0", "pg-2", "pg-10"] {
            assert!(pg.has_member(member), "{member}");
        }
        for not in ["pg", "pg-", "pg-+1", "pg-01", "pg--1", "pg-1 ", "pg-1/x", "pg-1.x", "pgx-1", "pg-a", "pg-1%2F", "pg-9999999999"] {
            assert!(!pg.has_member(not), "{not}");
        }
    }

    /// A kubeconfig with one context `name` (current) at `server`.
    fn kubeconfig(dir: &Path, file: &str, name: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            format!("apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster: {{server: 'https://127.0.0.1:1'}}\nusers:\n- name: {name}\n  user: {{token: t}}\ncontexts:\n- name: {name}\n  context: {{cluster: {name}, user: {name}}}\ncurrent-context: {name}\n"),
        )
        .unwrap();
        path
    }

    /// A lab's directory as `runner lab up` leaves it: its kubeconfig beside its token.
    fn lab_dir(dir: &Path) -> PathBuf {
        let lab = dir.join("lab");
        kubeconfig(&lab, "kubeconfig", "runner-lab");
        std::fs::write(lab.join("token"), "secret").unwrap();
        lab
    }

    fn select(selection: &Selection, env: &Environment) -> Result<Target, TargetError> {
        Target::select(selection, env)
    }

    fn kubeconfig_env(files: &[&Path]) -> Environment {
        Environment { kubeconfig: Some(std::env::join_paths(files).unwrap()), ..Environment::default() }
    }

    #[test]
    fn kubeconfig_lists_skip_missing_files_as_kubectl_does() {
        let dir = tempfile::tempdir().unwrap();
        let prod = kubeconfig(dir.path(), "prod.yaml", "aks-prod");
        let staging = kubeconfig(dir.path(), "staging.yaml", "aks-staging");
        let missing = dir.path().join("missing.yaml");
        let target = select(&Selection::default(), &kubeconfig_env(&[&missing, &prod, &staging])).unwrap();
        assert_eq!(target.source, Source::Kubeconfig);
        assert_eq!(target.kubeconfig, vec![prod.clone(), staging.clone()], "the missing file is skipped, the order kept");
        assert_eq!(target.context_name().as_deref(), Some("aks-prod"), "the first file's current-context wins");
        assert_eq!(target.label(), "context aks-prod");
        let other = select(&Selection { context: Some("aks-staging".into()), ..Selection::default() }, &kubeconfig_env(&[&prod, &staging])).unwrap();
        assert_eq!(other.context_name().as_deref(), Some("aks-staging"), "--context picks another merged context");
        let message = select(&Selection::default(), &kubeconfig_env(&[&missing])).unwrap_err().to_string();
        assert!(message.contains("KUBECONFIG names no file that exists") && message.contains("missing.yaml"), "{message}");
    }

    #[test]
    fn a_labs_own_kubeconfig_is_the_lab() {
        let dir = tempfile::tempdir().unwrap();
        let lab = lab_dir(dir.path());
        let prod = kubeconfig(dir.path(), "prod.yaml", "aks-prod");
        let target = select(&Selection::default(), &kubeconfig_env(&[&lab.join("kubeconfig")])).unwrap();
        assert_eq!(target.source, Source::Lab(lab.clone()), "export KUBECONFIG=<lab>/kubeconfig, as `lab up` says, reaches that lab");
        assert_eq!(target.databases.len(), 3, "with the lab's databases");
        let through_flag = select(&Selection { kubeconfig: Some(lab.join("kubeconfig")), ..Selection::default() }, &Environment::default()).unwrap();
        assert_eq!(through_flag.source, Source::Lab(lab.clone()));
        let as_target =
            select(&Selection { target: Some(lab.join("kubeconfig").display().to_string()), ..Selection::default() }, &Environment::default()).unwrap();
        assert_eq!(as_target.source, Source::Lab(lab.clone()), "--target takes a kubeconfig too");
        // The lab's file listed second, but the current context comes from the first: not the lab.
        let behind = select(&Selection::default(), &kubeconfig_env(&[&prod, &lab.join("kubeconfig")])).unwrap();
        assert_eq!(behind.source, Source::Kubeconfig);
        let chosen =
            select(&Selection { context: Some("runner-lab".into()), ..Selection::default() }, &kubeconfig_env(&[&prod, &lab.join("kubeconfig")])).unwrap();
        assert_eq!(chosen.source, Source::Lab(lab.clone()), "--context runner-lab picks the lab's context, defined by the lab's file");
        // A copy of the lab's kubeconfig elsewhere is a plain kubeconfig: nothing says which lab it is.
        std::fs::copy(lab.join("kubeconfig"), dir.path().join("copy")).unwrap();
        let copy = select(&Selection { kubeconfig: Some(dir.path().join("copy")), ..Selection::default() }, &Environment::default()).unwrap();
        assert_eq!(copy.source, Source::Kubeconfig);
    }

    #[test]
    fn selection_order_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let prod = kubeconfig(dir.path(), "prod.yaml", "aks-prod");
        let explicit_lab = Environment { lab_dir: Some(dir.path().join("elsewhere")), ..kubeconfig_env(&[&prod]) };
        assert_eq!(
            select(&Selection::default(), &explicit_lab).unwrap().source,
            Source::Lab(dir.path().join("elsewhere")),
            "RUNNER_LAB_DIR wins over KUBECONFIG"
        );
        let home = Environment { home: Some(dir.path().join("home")), ..Environment::default() };
        kubeconfig(&dir.path().join("home"), ".kube/config", "home-cluster");
        assert_eq!(select(&Selection::default(), &home).unwrap().context_name().as_deref(), Some("home-cluster"), "~/.kube/config when KUBECONFIG is unset");
        let nothing = Environment { home: Some(dir.path().join("no-home")), ..Environment::default() };
        assert!(matches!(select(&Selection::default(), &nothing).unwrap().source, Source::Lab(_)), "no kubeconfig at all: the lab");
        let file = dir.path().join("target.yaml");
        std::fs::write(&file, "namespace: databases\ncontext: aks-prod\n").unwrap();
        let overridden = Selection {
            target: Some(file.display().to_string()),
            kubeconfig: Some(prod.clone()),
            context: Some("aks-other".into()),
            namespace: Some("payments".into()),
        };
        let target = select(&overridden, &Environment::default()).unwrap();
        assert_eq!((target.kubeconfig, target.context.as_deref(), target.namespace.as_deref()), (vec![prod.clone()], Some("aks-other"), Some("payments")));
        let bad = |selection: Selection| select(&selection, &Environment::default()).unwrap_err().to_string();
        assert!(bad(Selection { namespace: Some("default/secrets?x=".into()), ..Selection::default() }).contains("--namespace"));
        assert!(bad(Selection { target: Some("lab".into()), kubeconfig: Some(prod.clone()), ..Selection::default() }).contains("give one"));
        assert!(bad(Selection { kubeconfig: Some(dir.path().join("nope")), ..Selection::default() }).contains("--kubeconfig"));
    }

    #[test]
    fn the_lab_target() {
        let target = Target::lab(PathBuf::from("/tmp/some-lab"));
        assert_eq!(target.label(), "lab");
        assert_eq!(target.kubeconfig, vec![PathBuf::from("/tmp/some-lab/kubeconfig")]);
        assert!(target.databases.iter().all(|d| d.optional));
    }
}
