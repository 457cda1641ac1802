//! The operator's trust policy for references: which keys must have signed a
//! component from a registry path, and which worlds and imports it may have.
//!
//! A YAML file (`~/.config/runner/trust.yaml` or `--trust FILE`):
//!
//! ```yaml
//! sources:
//!   - match: "127.0.0.1:5000/gates/*"   # registry/repository
//!     keys: [keys/team.pub]              # relative to this file; non-empty: a signature by one is required
//!     worlds: [gate]                     # optional: the worlds a component from here may declare
//!     imports: ["runner:policy/k8s-read", "wasi:*"]   # optional: the interfaces it may import
//!   - match: "**"
//!     keys: []
//! ```
//!
//! In `match`, `*` stands for one or more characters within one path segment
//! (it never crosses a `/`) and `**` for anything, `/` included, or nothing.
//! The first matching rule wins; no match means nothing is required.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::signature::{NamedKey, PublicKey};

/// Why a trust file could not be loaded (bad input: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file could not be read.
    #[error("cannot read the trust file {path}: {source}")]
    Read {
        /// The trust file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The YAML is malformed or has an unknown field.
    #[error("trust file {}{}: {message}", path.display(), line.map(|line| format!(", line {line}")).unwrap_or_default())]
    Parse {
        /// The trust file.
        path: PathBuf,
        /// The line, when the YAML parser gives it.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A rule is not usable (e.g. an empty `match`).
    #[error("trust file {}, rule `{pattern}`: {message}", path.display())]
    Rule {
        /// The trust file.
        path: PathBuf,
        /// The rule's `match`.
        pattern: String,
        /// What is wrong.
        message: String,
    },
    /// A key named by a rule is missing or not a usable public key.
    #[error("trust file {}, rule `{pattern}`: key {}: {message}", path.display(), key.display())]
    Key {
        /// The trust file.
        path: PathBuf,
        /// The rule's `match`.
        pattern: String,
        /// The key file, resolved against the trust file's directory.
        key: PathBuf,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFile {
    #[serde(default)]
    sources: Vec<SourceEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceEntry {
    #[serde(rename = "match")]
    pattern: String,
    #[serde(default)]
    keys: Vec<PathBuf>,
    worlds: Option<Vec<String>>,
    imports: Option<Vec<String>>,
}

/// The operator's rules, in file order.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    rules: Vec<Rule>,
}

/// One `sources` entry with its keys loaded.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The `match` pattern, as written.
    pub pattern: String,
    /// The keys of which one must have signed (none: no signature required).
    pub keys: Vec<NamedKey>,
    /// The worlds a component may declare (`None`: any).
    pub worlds: Option<Vec<String>>,
    /// The interfaces a component may import, without versions (`None`: any).
    pub imports: Option<Vec<String>>,
}

impl Trust {
    /// Reads a trust file and the key files it names (relative to its directory).
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let text = std::fs::read_to_string(path).map_err(|source| TrustError::Read { path: path.to_path_buf(), source })?;
        let file: TrustFile = serde_yaml::from_str(&text).map_err(|error| TrustError::Parse {
            path: path.to_path_buf(),
            line: error.location().map(|location| location.line()),
            message: error.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        let rules = file.sources.into_iter().map(|entry| load_rule(path, base, entry)).collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// `$XDG_CONFIG_HOME/runner/trust.yaml`, else `~/.config/runner/trust.yaml`
    /// (the same on every Unix, as the documentation says); `None` without a home.
    pub fn default_path() -> Option<PathBuf> {
        default_path_from(std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from), dirs::home_dir())
    }

    /// No rules: nothing is required of any reference.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The rules in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The first rule whose `match` covers `registry/repository`.
    pub fn rule_for(&self, registry: &str, repository: &str) -> Option<&Rule> {
        let reference = format!("{registry}/{repository}");
        self.rules.iter().find(|rule| glob_matches(rule.pattern.as_bytes(), reference.as_bytes()))
    }
}

fn default_path_from(xdg_config_home: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    // XDG says a relative XDG_CONFIG_HOME is invalid and must be ignored.
    let config = xdg_config_home.filter(|dir| dir.is_absolute()).or_else(|| home.map(|home| home.join(".config")))?;
    Some(config.join("runner").join("trust.yaml"))
}

fn load_rule(path: &Path, base: &Path, entry: SourceEntry) -> Result<Rule, TrustError> {
    if entry.pattern.trim().is_empty() {
        return Err(TrustError::Rule { path: path.to_path_buf(), pattern: entry.pattern, message: "`match` is empty (use \"**\" for every reference)".into() });
    }
    let mut keys = Vec::with_capacity(entry.keys.len());
    for key in &entry.keys {
        let key_path = base.join(key);
        let key_error = |message: String| TrustError::Key { path: path.to_path_buf(), pattern: entry.pattern.clone(), key: key_path.clone(), message };
        let pem = std::fs::read_to_string(&key_path).map_err(|error| key_error(error.to_string()))?;
        let public = PublicKey::from_pem(&pem).map_err(|error| key_error(error.to_string()))?;
        keys.push(NamedKey { name: key_path.display().to_string(), key: public });
    }
    Ok(Rule {
        pattern: entry.pattern,
        keys,
        worlds: entry.worlds,
        imports: entry.imports.map(|imports| imports.iter().map(|name| unversioned(name).to_string()).collect()),
    })
}

impl Rule {
    /// Whether a signature by one of [`Rule::keys`] is required.
    pub fn requires_signature(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether a component declaring `world` and importing `imports` may come from here.
    pub fn admit(&self, world: &str, imports: &[String]) -> Result<(), String> {
        let mut refusals = Vec::new();
        if let Some(worlds) = &self.worlds
            && !worlds.iter().any(|allowed| allowed == world)
        {
            refusals.push(format!("world `{world}` is not allowed (allowed: {})", list(worlds)));
        }
        if let Some(allowed) = &self.imports {
            let refused: Vec<&str> =
                imports.iter().map(|import| unversioned(import)).filter(|import| !allowed.iter().any(|entry| import_allowed(entry, import))).collect();
            if !refused.is_empty() {
                refusals.push(format!("imports not allowed: {} (allowed: {})", refused.join(", "), list(allowed)));
            }
        }
        if refusals.is_empty() { Ok(()) } else { Err(format!("trust rule `{}`: {}", self.pattern, refusals.join("; "))) }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

/// `runner:policy/k8s-read@0.2.0` → `runner:policy/k8s-read`.
fn unversioned(interface: &str) -> &str {
    interface.split_once('@').map_or(interface, |(name, _)| name)
}

/// An entry is an interface name, or a prefix ending in `*` such as `wasi:*`.
fn import_allowed(entry: &str, import: &str) -> bool {
    match entry.strip_suffix('*') {
        Some(prefix) => import.len() > prefix.len() && import.starts_with(prefix),
        None => entry == import,
    }
}

/// `**` matches anything (possibly empty); `*` one or more bytes other than `/`.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    match pattern {
        [] => text.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=text.len()).any(|skip| glob_matches(rest, &text[skip..])),
        [b'*', rest @ ..] => {
            let segment = text.iter().position(|&byte| byte == b'/').unwrap_or(text.len());
            (1..=segment).any(|take| glob_matches(rest, &text[take..]))
        }
        [first, rest @ ..] => text.first() == Some(first) && glob_matches(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::super::signature::SigningKey;
    use super::*;

    fn rule(pattern: &str, worlds: Option<&[&str]>, imports: Option<&[&str]>) -> Rule {
        let owned = |items: &[&str]| items.iter().map(|item| unversioned(item).to_string()).collect();
        Rule { pattern: pattern.into(), keys: Vec::new(), worlds: worlds.map(owned), imports: imports.map(owned) }
    }

    fn trust(patterns: &[&str]) -> Trust {
        Trust { rules: patterns.iter().map(|pattern| rule(pattern, None, None)).collect() }
    }

    #[test]
    fn a_single_star_stays_inside_one_segment_and_needs_a_character() {
        let trust = trust(&["127.0.0.1:5000/gates/*"]);
        assert!(trust.rule_for("127.0.0.1:5000", "gates/drain").is_some());
        assert!(trust.rule_for("127.0.0.1:5000", "gates/drain/v2").is_none());
        assert!(trust.rule_for("127.0.0.1:5000", "gates/").is_none());
        assert!(trust.rule_for("127.0.0.1:5001", "gates/drain").is_none());
        assert!(trust.rule_for("127.0.0.1:5000", "patterns/drain").is_none());
    }

    #[test]
    fn a_double_star_crosses_segments() {
        let trust = trust(&["127.0.0.1:5000/**"]);
        assert!(trust.rule_for("127.0.0.1:5000", "gates/drain/v2").is_some());
        assert!(trust.rule_for("127.0.0.2:5000", "gates").is_none());
        assert!(self::trust(&["**"]).rule_for("any.registry", "a/b/c").is_some());
    }

    #[test]
    fn the_first_matching_rule_wins_and_none_matching_gives_none() {
        let trust = trust(&["127.0.0.1:5000/gates/*", "127.0.0.1:5000/**", "**"]);
        assert_eq!(trust.rule_for("127.0.0.1:5000", "gates/x").unwrap().pattern, "127.0.0.1:5000/gates/*");
        assert_eq!(trust.rule_for("127.0.0.1:5000", "patterns/x").unwrap().pattern, "127.0.0.1:5000/**");
        assert_eq!(trust.rule_for("10.0.0.1", "x").unwrap().pattern, "**");
        assert!(self::trust(&["127.0.0.1:5000/**"]).rule_for("10.0.0.1", "x").is_none());
        assert!(Trust::empty().rule_for("127.0.0.1:5000", "gates/x").is_none());
    }

    #[test]
    fn admit_compares_imports_without_versions_and_allows_wasi_by_prefix() {
        let rule = rule("127.0.0.1:5000/gates/*", Some(&["gate"]), Some(&["runner:policy/k8s-read@0.2.0", "runner:policy/run-info", "wasi:*"]));
        let imports = ["runner:policy/k8s-read@0.2.0", "runner:policy/run-info@0.1.0", "wasi:io/streams@0.2.3"].map(String::from);
        assert_eq!(rule.admit("gate", &imports), Ok(()));
        assert_eq!(rule.admit("gate", &[]), Ok(()));
    }

    #[test]
    fn admit_names_the_rule_the_world_and_the_imports_it_refuses() {
        let rule = rule("127.0.0.1:5000/gates/*", Some(&["gate"]), Some(&["runner:policy/k8s-read"]));
        let imports = ["runner:policy/k8s-read@0.2.0", "runner:policy/k8s-write@0.2.0", "wasi:io/streams@0.2.3"].map(String::from);
        let error = rule.admit("pattern", &imports).unwrap_err();
        assert!(error.contains("`127.0.0.1:5000/gates/*`"), "{error}");
        assert!(error.contains("world `pattern` is not allowed"), "{error}");
        assert!(error.contains("runner:policy/k8s-write,") && error.contains("wasi:io/streams"), "{error}");
        assert!(!error.contains("not allowed: runner:policy/k8s-read"), "{error}");
        assert!(rule.admit("gate", &imports[..1]).is_ok());
    }

    #[test]
    fn no_worlds_or_imports_lists_admit_anything() {
        let rule = rule("**", None, None);
        assert!(rule.admit("anything", &["x:y/z@1.0.0".to_string()]).is_ok());
        let empty = self::rule("**", Some(&[]), Some(&[]));
        assert!(empty.admit("gate", &[]).is_err(), "an empty worlds list allows no world");
        assert!(self::rule("**", None, Some(&[])).admit("gate", &["wasi:cli/stdout".into()]).is_err());
    }

    #[test]
    fn the_default_path_prefers_an_absolute_xdg_config_home() {
        let home = Some(PathBuf::from("/home/op"));
        assert_eq!(default_path_from(None, home.clone()), Some(PathBuf::from("/home/op/.config/runner/trust.yaml")));
        assert_eq!(default_path_from(Some("/xdg".into()), home.clone()), Some(PathBuf::from("/xdg/runner/trust.yaml")));
        assert_eq!(default_path_from(Some("relative".into()), home), Some(PathBuf::from("/home/op/.config/runner/trust.yaml")));
        assert_eq!(default_path_from(None, None), None);
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn load_reads_keys_relative_to_the_trust_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate().public_key();
        write(dir.path(), "keys/team.pub", &key.to_pem());
        let path = write(
            dir.path(),
            "trust.yaml",
            "sources:\n  - match: \"127.0.0.1:5000/gates/*\"\n    keys: [keys/team.pub]\n    worlds: [gate]\n    \
             imports: [\"runner:policy/k8s-read@0.2.0\", \"wasi:*\"]\n  - match: \"**\"\n    keys: []\n",
        );
        let trust = Trust::load(&path).unwrap();
        let gates = trust.rule_for("127.0.0.1:5000", "gates/drain").unwrap();
        assert_eq!(gates.keys.len(), 1);
        assert!(gates.requires_signature());
        assert_eq!(gates.keys[0].key, key);
        assert!(gates.keys[0].name.ends_with("team.pub"), "{}", gates.keys[0].name);
        assert_eq!(gates.worlds.as_deref(), Some(&["gate".to_string()][..]));
        assert_eq!(gates.imports.as_deref(), Some(&["runner:policy/k8s-read".to_string(), "wasi:*".to_string()][..]));
        let rest = trust.rule_for("127.0.0.1:5000", "patterns/x").unwrap();
        assert!(!rest.requires_signature() && rest.worlds.is_none() && rest.imports.is_none());
    }

    #[test]
    fn load_refuses_unknown_fields_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "trust.yaml", "sources:\n  - match: \"**\"\n    key: [a.pub]\n");
        let error = Trust::load(&path).unwrap_err();
        assert!(matches!(error, TrustError::Parse { line: Some(_), .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("trust.yaml") && message.contains("line ") && message.contains("key"), "{message}");
    }

    #[test]
    fn load_refuses_bad_yaml_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "trust.yaml", "sources: [\n");
        assert!(matches!(Trust::load(&path), Err(TrustError::Parse { .. })));
        let missing = dir.path().join("absent.yaml");
        let error = Trust::load(&missing).unwrap_err();
        assert!(matches!(error, TrustError::Read { .. }) && error.to_string().contains("absent.yaml"), "{error}");
        let empty_match = write(dir.path(), "empty.yaml", "sources:\n  - match: \"\"\n");
        assert!(matches!(Trust::load(&empty_match), Err(TrustError::Rule { .. })));
    }

    #[test]
    fn load_names_a_missing_or_unusable_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "trust.yaml", "sources:\n  - match: \"**\"\n    keys: [keys/missing.pub]\n");
        let error = Trust::load(&path).unwrap_err().to_string();
        assert!(error.contains("missing.pub") && error.contains("`**`"), "{error}");

        write(dir.path(), "keys/private.pem", &SigningKey::generate().to_encrypted_pem(b"pw"));
        let path = write(dir.path(), "private.yaml", "sources:\n  - match: \"**\"\n    keys: [keys/private.pem]\n");
        let error = Trust::load(&path).unwrap_err().to_string();
        assert!(error.contains("private.pem") && error.contains("PUBLIC KEY"), "{error}");
    }
}
