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
        Err(TrustError::Unavailable(path.display().to_string()))
    }
    /// No rules: nothing is required.
    pub fn empty() -> Self {
        Trust { rules: Vec::new() }
    }
    /// The first rule matching this registry and repository.
    pub fn rule_for(&self, registry: &str, repository: &str) -> Option<&Rule> {
        let full = format!("{registry}/{repository}");
        self.rules.iter().find(|rule| rule.pattern == full || rule.pattern == "**")
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
    /// This build cannot read trust files yet.
    #[error("{0}: trust files are not available in this build")]
    Unavailable(String),
}
