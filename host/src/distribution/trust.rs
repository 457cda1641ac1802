//! Placeholder for the signature helper's trust policy: the agreed API with
//! minimal bodies, so the distribution code compiles before the real file is
//! merged over this one.

use std::path::Path;

use super::signature::NamedKey;

/// The operator's rules for references.
pub struct Trust {
    rules: Vec<Rule>,
}

impl Trust {
    /// Read a trust file.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        #[derive(serde::Deserialize)]
        struct File {
            sources: Vec<Source>,
        }
        #[derive(serde::Deserialize)]
        struct Source {
            #[serde(rename = "match")]
            pattern: String,
            #[serde(default)]
            keys: Vec<String>,
            worlds: Option<Vec<String>>,
            imports: Option<Vec<String>>,
        }
        let unusable = |reason: String| TrustError::Unavailable(format!("{}: {reason}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| unusable(e.to_string()))?;
        let file: File = serde_yaml::from_str(&text).map_err(|e| unusable(e.to_string()))?;
        let mut rules = Vec::new();
        for source in file.sources {
            let mut keys = Vec::new();
            for key in &source.keys {
                let file = path.parent().unwrap_or(Path::new(".")).join(key);
                let pem = std::fs::read_to_string(&file).map_err(|e| unusable(format!("{}: {e}", file.display())))?;
                keys.push(NamedKey { name: key.clone(), key: super::signature::PublicKey::from_pem(&pem).map_err(|e| unusable(e.to_string()))? });
            }
            rules.push(Rule { pattern: source.pattern, keys, worlds: source.worlds, imports: source.imports });
        }
        Ok(Trust { rules })
    }
    /// No rules: nothing is required.
    pub fn empty() -> Self {
        Trust { rules: Vec::new() }
    }
    /// The first rule matching this registry and repository.
    pub fn rule_for(&self, registry: &str, repository: &str) -> Option<&Rule> {
        let full = format!("{registry}/{repository}");
        let matches = |pattern: &str| match pattern.strip_suffix('*').map(|p| p.trim_end_matches('*')) {
            Some(prefix) => full.starts_with(prefix),
            None => full == pattern,
        };
        self.rules.iter().find(|rule| matches(&rule.pattern))
    }
}

/// One rule.
pub struct Rule {
    /// The `match` pattern.
    pub pattern: String,
    /// Keys one of which must have signed.
    pub keys: Vec<NamedKey>,
    /// The worlds allowed.
    pub worlds: Option<Vec<String>>,
    /// The interfaces allowed.
    pub imports: Option<Vec<String>>,
}

impl Rule {
    /// Whether a component of this world with these imports is allowed.
    pub fn admit(&self, world: &str, _imports: &[String]) -> Result<(), String> {
        match &self.worlds {
            Some(worlds) if !worlds.iter().any(|w| w == world) => Err(format!("`{}` does not allow world {world}", self.pattern)),
            _ => Ok(()),
        }
    }
}

/// A trust file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file cannot be read or used.
    #[error("{0}")]
    Unavailable(String),
}
