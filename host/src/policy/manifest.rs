//! The manifest every component carries in its `runner-manifest` custom
//! section: who it is, what it asks for, how it is configured.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::caps::Capability;

/// The custom section that holds the manifest (TOML text).
pub const SECTION: &str = "runner-manifest";

/// Which world a component was built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum World {
    /// A read-only check exporting `evaluate`.
    Gate,
    /// An upgrade procedure exporting `run`.
    Pattern,
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            World::Gate => "gate",
            World::Pattern => "pattern",
        })
    }
}

/// A component's manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Short name, used to find bundled policies (`pods-ready`).
    pub name: String,
    /// Semantic version of the policy.
    pub version: String,
    /// One paragraph for the reviewer.
    #[serde(default)]
    pub description: String,
    /// The world the component targets.
    pub world: World,
    /// Capabilities the component asks for (`kube:list:v1/Pod`).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Configuration keys the component accepts.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigField>,
    /// Gate slots a pattern runs through `gates.run`.
    #[serde(default)]
    pub gates: BTreeMap<String, GateSlot>,
    /// Pattern slots a pattern runs through `patterns.run` (`[patterns.<slot>]`).
    #[serde(default)]
    pub patterns: BTreeMap<String, PatternSlot>,
    /// A pattern's steps, in order, for the reviewer.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// How a pattern undoes its work when a step fails.
    #[serde(default)]
    pub rollback: String,
}

/// One configuration key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigField {
    /// The value's type.
    #[serde(rename = "type")]
    pub kind: ConfigType,
    /// What the key means.
    #[serde(default)]
    pub description: String,
    /// The value used when the operator gives none.
    #[serde(default)]
    pub default: Option<toml::Value>,
    /// Whether the operator must give a value (only meaningful without a default).
    #[serde(default)]
    pub required: bool,
}

/// The type of a configuration value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigType {
    /// Text.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A duration such as `30s` or `24h`, handed to the component in milliseconds.
    Duration,
}

impl std::fmt::Display for ConfigType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConfigType::String => "string",
            ConfigType::Integer => "integer",
            ConfigType::Number => "number",
            ConfigType::Boolean => "boolean",
            ConfigType::Duration => "duration",
        })
    }
}

/// A gate slot in a pattern.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSlot {
    /// The gate bound to the slot unless the operator passes `--gate`.
    pub default: String,
    /// When the pattern runs the slot and what a failure means.
    #[serde(default)]
    pub description: String,
}

/// A pattern slot in a pattern: another pattern it runs in a sandbox of its
/// own (`patterns.run`), which the operator may rebind with `--pattern`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternSlot {
    /// The pattern bound to the slot unless the operator passes `--pattern`.
    pub default: String,
    /// When the pattern runs the slot and what it is for.
    #[serde(default)]
    pub description: String,
}

/// One step of a pattern.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The name the pattern reports it under.
    pub name: String,
    /// What it does, for reviewers.
    #[serde(default)]
    pub description: String,
}

/// Why a manifest was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// No manifest section.
    #[error("the component carries no `{SECTION}` custom section; build it with runner_sdk::manifest!")]
    Missing,
    /// The section is not UTF-8.
    #[error("the `{SECTION}` custom section is not UTF-8 text")]
    NotText,
    /// The TOML does not parse or breaks a rule; the reason.
    #[error("the manifest is not valid: {0}")]
    Invalid(String),
}

impl Manifest {
    /// Parse and check manifest text.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Invalid(e.message().to_string()))?;
        manifest.check()?;
        Ok(manifest)
    }

    /// The requested capabilities, parsed (they were checked by [`Manifest::parse`]).
    pub fn requested(&self) -> Vec<Capability> {
        self.capabilities.iter().filter_map(|c| c.parse().ok()).collect()
    }

    fn check(&self) -> Result<(), ManifestError> {
        let invalid = |msg: String| Err(ManifestError::Invalid(msg));
        let valid_name = |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid_name(&self.name) {
            return invalid(format!("name `{}` must be lowercase letters, digits and dashes", self.name));
        }
        if self.version.split('.').count() != 3 || self.version.split('.').any(|p| p.parse::<u64>().is_err()) {
            return invalid(format!("version `{}` is not MAJOR.MINOR.PATCH", self.version));
        }
        for cap in &self.capabilities {
            if let Err(e) = cap.parse::<Capability>() {
                return invalid(e.to_string());
            }
        }
        if self.world == World::Gate {
            if let Some(cap) = self.requested().iter().find(|c| c.is_mutating()) {
                return invalid(format!("a gate cannot request the mutating capability `{cap}`"));
            }
            if !self.gates.is_empty() {
                return invalid("a gate cannot have gate slots".into());
            }
            if !self.patterns.is_empty() {
                return invalid("a gate cannot have pattern slots".into());
            }
        }
        for (key, field) in &self.config {
            if let Some(default) = &field.default
                && let Err(e) = super::config::coerce_toml(field.kind, default)
            {
                return invalid(format!("config `{key}`: default {e}"));
            }
        }
        for slot in self.gates.keys() {
            if !valid_name(slot) {
                return invalid(format!("gate slot `{slot}` must be lowercase letters, digits and dashes"));
            }
        }
        for slot in self.patterns.keys() {
            if !valid_name(slot) {
                return invalid(format!("pattern slot `{slot}` must be lowercase letters, digits and dashes"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATE: &str = r#"
name = "pods-ready"
version = "0.1.0"
description = "All pods matching a selector are Ready."
world = "gate"
capabilities = ["kube:list:v1/Pod"]

[config.selector]
type = "string"
default = "app=postgres"
description = "label selector"
"#;

    #[test]
    fn parses_a_gate() {
        let m = Manifest::parse(GATE).unwrap();
        assert_eq!(m.name, "pods-ready");
        assert_eq!(m.world, World::Gate);
        assert_eq!(m.requested()[0].to_string(), "kube:list:v1/Pod");
        assert_eq!(m.config["selector"].kind, ConfigType::String);
    }

    #[test]
    fn a_pattern_declares_pattern_slots() {
        let text = GATE.replace("world = \"gate\"", "world = \"pattern\"")
            + "\n[patterns.postgres]\ndefault = \"postgres-ferris-wheel\"\ndescription = \"moves PostgreSQL off the pool\"\n";
        let m = Manifest::parse(&text).unwrap();
        assert_eq!(m.patterns["postgres"].default, "postgres-ferris-wheel");
        assert_eq!(m.patterns["postgres"].description, "moves PostgreSQL off the pool");
        let bad = text.replace("[patterns.postgres]", "[patterns.Postgres]");
        assert!(Manifest::parse(&bad).unwrap_err().to_string().contains("pattern slot `Postgres` must be lowercase"));
        let unknown = text.replace("description = \"moves", "descripton = \"moves");
        assert!(Manifest::parse(&unknown).unwrap_err().to_string().contains("unknown field"));
    }

    #[test]
    fn rejects_what_a_reviewer_could_be_misled_by() {
        let cases = [
            (GATE.replace("kube:list:v1/Pod", "kube:patch"), "mutating capability"),
            (GATE.replace("kube:list:v1/Pod", "kube:teleport"), "unknown verb"),
            (GATE.replace("0.1.0", "1"), "MAJOR.MINOR.PATCH"),
            (GATE.replace("pods-ready", "Pods Ready"), "lowercase"),
            (GATE.replace("default = \"app=postgres\"", "default = 3"), "default"),
            (format!("{GATE}\nsurprise = true\n"), "unknown field"),
            (GATE.replace("world = \"gate\"", "world = \"daemon\""), "unknown variant"),
            (format!("{GATE}\n[patterns.db]\ndefault = \"postgres-ferris-wheel\"\n"), "a gate cannot have pattern slots"),
        ];
        for (text, expected) in cases {
            let err = Manifest::parse(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "`{err}` should mention `{expected}`");
        }
    }
}
