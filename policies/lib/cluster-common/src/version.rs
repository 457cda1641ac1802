//! Kubernetes versions as AKS writes them (`1.29.9`, `v1.30.5`, `1.30`),
//! compared as numbers: `1.29.9 < 1.30.5`, `1.9.0 < 1.10.0`.

use std::cmp::Ordering;
use std::fmt;

/// A parsed `MAJOR.MINOR[.PATCH]`; a missing patch counts as 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch (0 when not written).
    pub patch: u32,
}

impl Version {
    /// Parse `1.29.9` (a leading `v` is allowed, as `/version` reports
    /// `v1.29.9`; a build suffix such as `-aks.1` or `+k3s1` is ignored).
    pub fn parse(text: &str) -> Result<Version, String> {
        let trimmed = text.trim();
        let bare = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let core = bare.split(['-', '+']).next().unwrap_or_default();
        let parts: Vec<&str> = core.split('.').collect();
        let num = |s: &str| -> Option<u32> { (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten() };
        let bad = || format!("`{text}` is not a Kubernetes version (MAJOR.MINOR.PATCH, e.g. 1.30.5)");
        match parts.as_slice() {
            [major, minor] => Ok(Version { major: num(major).ok_or_else(bad)?, minor: num(minor).ok_or_else(bad)?, patch: 0 }),
            [major, minor, patch] => Ok(Version { major: num(major).ok_or_else(bad)?, minor: num(minor).ok_or_else(bad)?, patch: num(patch).ok_or_else(bad)? }),
            _ => Err(bad()),
        }
    }

    /// Whether `self` and `other` are the same minor release (`1.30.x`).
    pub fn same_minor(&self, other: &Version) -> bool {
        (self.major, self.minor) == (other.major, other.minor)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Compare two version texts; an unparsable one is an error naming it.
pub fn compare(a: &str, b: &str) -> Result<Ordering, String> {
    Ok(Version::parse(a)?.cmp(&Version::parse(b)?))
}

/// Whether `running` is at `target` or newer (a pool or control plane
/// already there needs no upgrade). An unparsable `running` (empty: not
/// reported) is not there.
pub fn reached(running: &str, target: &Version) -> bool {
    Version::parse(running).is_ok_and(|v| v >= *target)
}

/// Whether `target` is among `offered` (the upgrade profile's list), compared as versions.
pub fn offered(target: &Version, offered: &[String]) -> bool {
    offered.iter().any(|o| Version::parse(o).is_ok_and(|v| v == *target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_as_numbers_not_text() {
        assert_eq!(compare("1.29.9", "1.30.5"), Ok(Ordering::Less));
        assert_eq!(compare("1.9.0", "1.10.0"), Ok(Ordering::Less));
        assert_eq!(compare("v1.30.5", "1.30.5"), Ok(Ordering::Equal));
        assert_eq!(compare("1.30", "1.30.0"), Ok(Ordering::Equal));
        assert_eq!(compare("1.30.10", "1.30.9"), Ok(Ordering::Greater));
        assert_eq!(Version::parse("v1.29.9-aks.1").unwrap().to_string(), "1.29.9");
    }

    #[test]
    fn refuses_what_is_not_a_version() {
        for bad in ["", "1", "latest", "1.x.0", "1.30.5.1", "1..5", "-1.30.5"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
        assert!(compare("1.30.5", "soon").unwrap_err().contains("`soon` is not a Kubernetes version"));
    }

    #[test]
    fn reached_and_offered() {
        let target = Version::parse("1.30.5").unwrap();
        assert!(reached("1.30.5", &target) && reached("1.31.0", &target));
        assert!(!reached("1.29.9", &target) && !reached("", &target));
        assert!(offered(&target, &["1.30.3".into(), "v1.30.5".into()]));
        assert!(!offered(&target, &["1.30.3".into(), "1.31.1".into()]));
        assert!(target.same_minor(&Version::parse("1.30.0").unwrap()));
    }
}
