//! References to policies in registries and image layouts:
//! `oci://REGISTRY/REPO[:TAG|@sha256:HEX]` and `oci-layout:DIR[:TAG|@sha256:HEX]`.

use std::fmt;
use std::path::PathBuf;

use super::DistributionError;

/// The tag a reference without one means.
pub const DEFAULT_TAG: &str = "latest";

const REGISTRY_SCHEME: &str = "oci://";
const LAYOUT_SCHEME: &str = "oci-layout:";

/// Whether `arg` is a reference rather than a bundled name or a file path.
pub fn is_reference(arg: &str) -> bool {
    arg.starts_with(REGISTRY_SCHEME) || arg.starts_with(LAYOUT_SCHEME)
}

/// Which manifest of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// A tag, which may move.
    Tag(String),
    /// A manifest digest, `sha256:<hex>`.
    Digest(String),
}

/// Where the artifact lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A registry: `host[:port]` and a repository path.
    Registry {
        /// `host[:port]`.
        registry: String,
        /// `team/gates/pods-ready`.
        repository: String,
    },
    /// An OCI image-layout directory (or a tar of one).
    Layout(PathBuf),
}

/// A parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Where.
    pub location: Location,
    /// Which manifest.
    pub selector: Selector,
}

impl Reference {
    /// Parse a reference; a malformed one is bad input naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, DistributionError> {
        let bad = |reason: &str| DistributionError::BadReference { reference: text.to_string(), reason: reason.to_string() };
        if let Some(rest) = text.strip_prefix(REGISTRY_SCHEME) {
            let (name, selector) = split_selector(rest, true).map_err(|r| bad(&r))?;
            let (registry, repository) = name.split_once('/').ok_or_else(|| bad("expected oci://REGISTRY/REPOSITORY"))?;
            check_registry(registry).map_err(|r| bad(&r))?;
            check_repository(repository).map_err(|r| bad(&r))?;
            Ok(Reference { location: Location::Registry { registry: registry.into(), repository: repository.into() }, selector })
        } else if let Some(rest) = text.strip_prefix(LAYOUT_SCHEME) {
            let (path, selector) = split_selector(rest, false).map_err(|r| bad(&r))?;
            if path.is_empty() {
                return Err(bad("expected oci-layout:DIR or oci-layout:FILE.tar"));
            }
            Ok(Reference { location: Location::Layout(PathBuf::from(path)), selector })
        } else {
            Err(bad("a reference starts with oci:// or oci-layout:"))
        }
    }

    /// The same place at another manifest.
    pub fn at_digest(&self, digest: &str) -> Reference {
        Reference { location: self.location.clone(), selector: Selector::Digest(digest.to_string()) }
    }

    /// `registry/repository` (or the layout path): what trust rules and lock entries name.
    pub fn repository_name(&self) -> String {
        match &self.location {
            Location::Registry { registry, repository } => format!("{registry}/{repository}"),
            Location::Layout(path) => path.display().to_string(),
        }
    }

    /// The tag, if the reference selects one.
    pub fn tag(&self) -> Option<&str> {
        match &self.selector {
            Selector::Tag(tag) => Some(tag),
            Selector::Digest(_) => None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::Registry { registry, repository } => write!(f, "{REGISTRY_SCHEME}{registry}/{repository}")?,
            Location::Layout(path) => write!(f, "{LAYOUT_SCHEME}{}", path.display())?,
        }
        match &self.selector {
            Selector::Tag(tag) => write!(f, ":{tag}"),
            Selector::Digest(digest) => write!(f, "@{digest}"),
        }
    }
}

/// Split `NAME[:TAG|@DIGEST]`. In a registry name a `:` before the first
/// `/` is the port; in a layout path only a `:` after the last `/` starts a tag.
fn split_selector(rest: &str, registry: bool) -> Result<(&str, Selector), String> {
    if let Some((name, digest)) = rest.split_once('@') {
        check_digest(digest)?;
        return Ok((name, Selector::Digest(digest.to_string())));
    }
    let after = if registry { rest.find('/').unwrap_or(rest.len()) } else { rest.rfind('/').map_or(0, |i| i + 1) };
    match rest[after..].rfind(':') {
        Some(i) => {
            let (name, tag) = (&rest[..after + i], &rest[after + i + 1..]);
            check_tag(tag)?;
            Ok((name, Selector::Tag(tag.to_string())))
        }
        None => Ok((rest, Selector::Tag(DEFAULT_TAG.to_string()))),
    }
}

/// `sha256:` and 64 lowercase hex digits.
pub fn check_digest(digest: &str) -> Result<(), String> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| format!("digest `{digest}` is not sha256:<64 hex digits>"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("digest `{digest}` is not sha256:<64 lowercase hex digits>"));
    }
    Ok(())
}

/// The distribution spec's tag grammar: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), String> {
    let mut bytes = tag.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !first_ok || tag.len() > 128 || !bytes.all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(format!("tag `{tag}` is not a valid tag ([A-Za-z0-9_][A-Za-z0-9._-]{{0,127}})"));
    }
    Ok(())
}

fn check_registry(registry: &str) -> Result<(), String> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || registry.starts_with('[') => (host, Some(port)),
        _ => (registry, None),
    };
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b)) {
        return Err(format!("registry `{registry}` is not a host name or address"));
    }
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(format!("registry `{registry}` has a port that is not a number"));
    }
    Ok(())
}

/// Lowercase path components of `[a-z0-9]` separated by `.`, `_`, `__` or `-`.
fn check_repository(repository: &str) -> Result<(), String> {
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    if !repository.split('/').all(component_ok) {
        return Err(format!("repository `{repository}` is not lowercase path components of [a-z0-9._-]"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn registry(text: &str) -> (String, String, Selector) {
        match Reference::parse(text).unwrap() {
            Reference { location: Location::Registry { registry, repository }, selector } => (registry, repository, selector),
            other => panic!("not a registry reference: {other:?}"),
        }
    }

    #[test]
    fn registry_references_parse_with_port_tag_and_digest() {
        assert_eq!(registry("oci://127.0.0.1:5000/gates/pods-ready:1.0"), ("127.0.0.1:5000".into(), "gates/pods-ready".into(), Selector::Tag("1.0".into())));
        assert_eq!(registry("oci://ghcr.io/team/pods-ready"), ("ghcr.io".into(), "team/pods-ready".into(), Selector::Tag("latest".into())));
        assert_eq!(registry(&format!("oci://localhost:5000/p@{DIGEST}")), ("localhost:5000".into(), "p".into(), Selector::Digest(DIGEST.into())));
    }

    #[test]
    fn layout_references_take_the_tag_after_the_last_slash() {
        let parsed = Reference::parse("oci-layout:/tmp/a:b/layout:v1").unwrap();
        assert_eq!(parsed.location, Location::Layout("/tmp/a:b/layout".into()));
        assert_eq!(parsed.selector, Selector::Tag("v1".into()));
        let tar = Reference::parse(&format!("oci-layout:gates.tar@{DIGEST}")).unwrap();
        assert_eq!(tar.location, Location::Layout("gates.tar".into()));
    }

    #[test]
    fn references_print_back_as_written() {
        for text in ["oci://127.0.0.1:5000/gates/pods-ready:1.0", &format!("oci://r.io/a/b@{DIGEST}"), "oci-layout:dir:latest"] {
            assert_eq!(Reference::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn malformed_references_are_refused_with_the_reason() {
        for (text, reason) in [
            ("oci://registry-only", "REGISTRY/REPOSITORY"),
            ("oci://r.io/Upper/case", "lowercase"),
            ("oci://r.io/a:bad tag", "valid tag"),
            ("oci://r.io/a@sha256:abc", "64"),
            ("oci://r.io:port/a", "port"),
            ("oci-layout:", "oci-layout:DIR"),
            ("pods-ready", "starts with"),
        ] {
            let error = Reference::parse(text).unwrap_err();
            assert!(error.to_string().contains(reason), "{text}: {error}");
            assert_eq!(error.exit_code(), 2);
        }
    }

    #[test]
    fn names_and_paths_are_not_references() {
        assert!(is_reference("oci://r.io/a") && is_reference("oci-layout:dir"));
        assert!(!is_reference("pods-ready") && !is_reference("./gate.wasm") && !is_reference("oci/gate.wasm"));
    }
}
