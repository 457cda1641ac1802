//! Targets: where a run goes.
//!
//! `lab` (the default) is the running lab, reached through the kubeconfig it
//! writes. A target file (YAML) names any cluster: a kubeconfig context
//! (default: the current one, from `KUBECONFIG` or `~/.kube/config`, like
//! kubectl), the default namespace, and per database cluster its
//! StatefulSet, primary Service, member port and where its credentials come
//! from. See the README's "Targets" section for the schema.
//!
//! A target is configuration only: connecting to the cluster and resolving
//! credentials are the backends' work (`backends::kube::connect`,
//! `backends::members`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use runner_lab::daemon::LabDir;
use serde::Deserialize;

use crate::domain::names;

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
}

/// A target: a cluster and the database clusters in it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The lab or the file this target came from.
    pub source: Source,
    /// The kubeconfig file named by the target, if any (else kubectl's rules).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context; `None` is the current one.
    pub context: Option<String>,
    /// The default namespace; `None` is the context's (else `default`).
    pub namespace: Option<String>,
    /// The database clusters the target names.
    pub databases: Vec<Database>,
}

/// The file as written; validated into a [`Target`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TargetFile {
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    databases: BTreeMap<String, DatabaseFile>,
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

impl Target {
    /// `lab` or a target file, as `--target` takes it.
    pub fn from_arg(text: &str) -> Result<Target, TargetError> {
        if text == "lab" {
            let dir = std::env::var_os(LAB_DIR_ENV).filter(|d| !d.is_empty()).map(PathBuf::from).unwrap_or_else(LabDir::default_root);
            return Ok(Target::lab(dir));
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
        Target::parse(&body, path)
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
        Target { kubeconfig: Some(LabDir::new(&dir).kubeconfig()), source: Source::Lab(dir), context: None, namespace: Some("default".into()), databases }
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
        let kubeconfig = file.kubeconfig.map(|p| {
            let p = expand_home(&p);
            if p.is_relative() { path.parent().unwrap_or(Path::new(".")).join(p) } else { p }
        });
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
        Ok(Target { source: Source::File(path.to_path_buf()), kubeconfig, context: file.context, namespace: file.namespace, databases })
    }

    /// `lab` or the file's path, for messages.
    pub fn label(&self) -> String {
        match &self.source {
            Source::Lab(_) => "lab".into(),
            Source::File(path) => path.display().to_string(),
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
        let kubeconfig = match &self.kubeconfig {
            Some(path) => Kubeconfig::read_from(path).map_err(|e| self.bad(format!("kubeconfig {}: {}", path.display(), one_line(&e))))?,
            None if std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) || default_kubeconfig().is_some_and(|p| p.is_file()) => {
                Kubeconfig::read().map_err(|e| self.bad(format!("kubeconfig (KUBECONFIG or ~/.kube/config): {}", one_line(&e))))?
            }
            None if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
                let mut config = kube::Config::incluster().map_err(|e| self.bad(format!("in-cluster configuration: {}", one_line(&e))))?;
                if let Some(ns) = &self.namespace {
                    config.default_namespace = ns.clone();
                }
                return Ok((config, None));
            }
            None => return Err(self.bad("no kubeconfig: name one with `kubeconfig:` in the target file, set KUBECONFIG, or create ~/.kube/config".into())),
        };
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
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| self.bad(format!("kubeconfig: {}", one_line(&e))))?;
        if let Some(ns) = &self.namespace {
            config.default_namespace = ns.clone();
        }
        Ok(config)
    }

    fn bad(&self, what: String) -> TargetError {
        TargetError::Bad(format!("target {}: {what}", self.label()))
    }

    /// The context the target uses, for reports (`None`: in-cluster or unknown).
    pub fn context_name(&self) -> Option<String> {
        if let Some(context) = &self.context {
            return Some(context.clone());
        }
        let kubeconfig = match &self.kubeconfig {
            Some(path) => Kubeconfig::read_from(path).ok()?,
            None => Kubeconfig::read().ok()?,
        };
        kubeconfig.current_context
    }
}

fn default_kubeconfig() -> Option<PathBuf> {
    dirs::home_dir().map(|h| h.join(".kube").join("config"))
}

fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), dirs::home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_path_buf(),
    }
}

/// An error and its causes, on one line.
fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        source = e.source();
    }
    text
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
        assert_eq!(target.kubeconfig.as_deref(), Some(Path::new("/etc/runner/kube/prod.yaml")));
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
    fn an_empty_file_means_the_current_context() {
        let target = parse("{}").unwrap();
        assert!(target.kubeconfig.is_none() && target.context.is_none() && target.databases.is_empty());
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

    #[test]
    fn the_lab_target() {
        let target = Target::lab(PathBuf::from("/tmp/some-lab"));
        assert_eq!(target.label(), "lab");
        assert_eq!(target.kubeconfig.as_deref(), Some(Path::new("/tmp/some-lab/kubeconfig")));
        assert!(target.databases.iter().all(|d| d.optional));
    }
}
