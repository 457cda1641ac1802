//! Capabilities: what a component may ask the host to do.
//!
//! A capability is `interface:verb[:scope]`, for example
//! `kube:list:v1/Pod`, `kube:patch:apps/v1/StatefulSet`,
//! `postgres:query:postgres-cluster-0` or `gates:run:preflight`. Requests in a
//! manifest and allowances from the operator are patterns: a `*` segment or a
//! scope ending in `*` matches anything there, and a missing scope means any
//! scope.
//!
//! A component may make a call when the capability it needs matches one of the
//! component's own requests **and** is either a read (allowed by default) or
//! matched by one of the operator's `--allow` patterns.

pub mod calls;
mod grants;
mod imports;

pub use calls::VERBS;
pub use grants::{Decision, GrantState, Grants};
pub use imports::{Family, ImportReport, family_of_interface};

use std::fmt;
use std::str::FromStr;

/// A capability pattern such as `kube:patch:apps/v1/*`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Capability {
    interface: String,
    verb: String,
    scope: Option<String>,
}

/// Why a capability string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("capability `{0}` is not of the form interface:verb[:scope] (e.g. kube:patch:apps/v1/StatefulSet)")]
    /// Not `interface:verb[:scope]`; the text as given.
    Shape(String),
    #[error("capability `{cap}` names unknown verb `{interface}:{verb}`; known: {known}")]
    /// A verb the call table does not know.
    UnknownVerb {
        /// The capability as given.
        cap: String,
        /// Its interface part.
        interface: String,
        /// Its verb part.
        verb: String,
        /// Every `interface:verb` the host knows, for the message.
        known: String,
    },
}

impl FromStr for Capability {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        let mut parts = text.splitn(3, ':');
        let interface = parts.next().unwrap_or_default();
        let verb = parts.next().unwrap_or_default();
        let scope = parts.next();
        let valid_segment = |s: &str| !s.is_empty() && !s.chars().any(char::is_whitespace);
        if !valid_segment(interface) || !valid_segment(verb) || scope.is_some_and(|s| !valid_segment(s)) {
            return Err(ParseError::Shape(text.to_string()));
        }
        let known = interface == "*" || VERBS.iter().any(|v| v.interface == interface && (verb == "*" || v.verb == verb));
        if !known {
            return Err(ParseError::UnknownVerb {
                cap: text.to_string(),
                interface: interface.to_string(),
                verb: verb.to_string(),
                known: VERBS.iter().map(|v| format!("{}:{}", v.interface, v.verb)).collect::<Vec<_>>().join(", "),
            });
        }
        Ok(Capability { interface: interface.to_string(), verb: verb.to_string(), scope: scope.filter(|s| *s != "*").map(str::to_string) })
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.interface, self.verb)?;
        if let Some(scope) = &self.scope {
            write!(f, ":{scope}")?;
        }
        Ok(())
    }
}

impl Capability {
    /// A concrete capability needed by one call.
    pub fn needed(interface: &str, verb: &str, scope: &str) -> Self {
        Capability { interface: interface.into(), verb: verb.into(), scope: Some(scope.into()) }
    }

    /// The interface part (`kube`).
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The verb part (`patch`).
    pub fn verb(&self) -> &str {
        &self.verb
    }

    /// The scope part (`apps/v1/StatefulSet`), if any.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// Whether this pattern can match a call that changes something.
    pub fn is_mutating(&self) -> bool {
        VERBS.iter().any(|v| v.mutating && (self.interface == "*" || self.interface == v.interface) && (self.verb == "*" || self.verb == v.verb))
    }

    /// Whether this pattern covers the concrete capability `needed`.
    pub fn matches(&self, needed: &Capability) -> bool {
        self.matches_parts(&needed.interface, &needed.verb, needed.scope.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(s: &str) -> Capability {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(cap("kube:patch:apps/v1/StatefulSet").to_string(), "kube:patch:apps/v1/StatefulSet");
        assert_eq!(cap("kube:get").scope(), None);
        assert_eq!(cap("kube:get:*").scope(), None, "a `*` scope is the same as no scope");
    }

    #[test]
    fn rejects_malformed_and_unknown() {
        assert!(matches!("kube".parse::<Capability>(), Err(ParseError::Shape(_))));
        assert!(matches!("kube::x".parse::<Capability>(), Err(ParseError::Shape(_))));
        assert!(matches!("kube:get: x".parse::<Capability>(), Err(ParseError::Shape(_))));
        assert!(matches!("kube:frobnicate".parse::<Capability>(), Err(ParseError::UnknownVerb { .. })));
        assert!(matches!("dns:resolve".parse::<Capability>(), Err(ParseError::UnknownVerb { .. })));
    }

    #[test]
    fn matching_follows_segments_and_scope_prefixes() {
        let needed = Capability::needed("kube", "patch", "apps/v1/StatefulSet");
        assert!(cap("kube:patch").matches(&needed));
        assert!(cap("kube:*").matches(&needed));
        assert!(cap("*:*").matches(&needed));
        assert!(cap("kube:patch:apps/v1/*").matches(&needed));
        assert!(cap("kube:patch:apps/v1/StatefulSet").matches(&needed));
        assert!(!cap("kube:patch:v1/*").matches(&needed));
        assert!(!cap("kube:patch:apps/v1/Deployment").matches(&needed));
        assert!(!cap("kube:delete").matches(&needed));
        assert!(!cap("postgres:*").matches(&needed));
    }

    #[test]
    fn classifies_reads_and_mutations() {
        assert!(!cap("kube:get").is_mutating());
        assert!(!cap("postgres:query:db-0").is_mutating());
        assert!(cap("kube:patch").is_mutating());
        assert!(cap("kube:*").is_mutating(), "a wildcard verb can reach mutations");
        assert!(cap("redis:command").is_mutating());
        assert!(!cap("gates:run:preflight").is_mutating());
    }
}
