//! `runner.lock`: references pinned to manifest digests.
//!
//! ```toml
//! [[policy]]
//! name = "pods-ready"
//! reference = "oci://127.0.0.1:5000/gates/pods-ready:1"
//! digest = "sha256:..."
//! ```
//!
//! With `--locked` a reference must be in the lock: a tag is rewritten to
//! its locked digest (a moved tag is not followed) and a digest must be one
//! the lock names for that repository.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::DistributionError;
use super::reference::{Reference, Selector};

/// The lock file's default name.
pub const DEFAULT_LOCK_FILE: &str = "runner.lock";

/// A lock file's entries.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// One per reference.
    #[serde(default, rename = "policy")]
    pub policies: Vec<Entry>,
}

/// One pinned reference.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The policy's name.
    pub name: String,
    /// The reference as written.
    pub reference: String,
    /// The manifest digest it resolved to.
    pub digest: String,
}

impl Lock {
    /// Read `path`; a missing file is an empty lock.
    pub fn load(path: &Path) -> Result<Self, DistributionError> {
        let bad = |reason: String| DistributionError::Lock { path: path.display().to_string(), reason };
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| bad(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock::default()),
            Err(e) => Err(bad(e.to_string())),
        }
    }

    /// Write it to `path`.
    pub fn save(&self, path: &Path) -> Result<(), DistributionError> {
        let text = toml::to_string_pretty(self).map_err(|e| DistributionError::Lock { path: path.display().to_string(), reason: e.to_string() })?;
        std::fs::write(path, text).map_err(|e| DistributionError::Lock { path: path.display().to_string(), reason: e.to_string() })
    }

    /// Add the entry for `reference`, or move it to `digest`.
    pub fn upsert(&mut self, name: &str, reference: &str, digest: &str) {
        let entry = Entry { name: name.into(), reference: reference.into(), digest: digest.into() };
        match self.policies.iter_mut().find(|e| e.reference == reference) {
            Some(existing) => *existing = entry,
            None => self.policies.push(entry),
        }
    }

    /// `reference` as the lock pins it; refused when the lock does not name it.
    pub fn pin(&self, reference: &Reference, lock_file: &Path) -> Result<Reference, DistributionError> {
        let same_place = |entry: &Entry| Reference::parse(&entry.reference).ok().filter(|r| r.location == reference.location);
        let pinned = match &reference.selector {
            Selector::Tag(_) => self.policies.iter().find(|e| same_place(e).is_some_and(|r| r.selector == reference.selector)),
            Selector::Digest(digest) => self.policies.iter().find(|e| same_place(e).is_some() && &e.digest == digest),
        };
        match pinned {
            Some(entry) => Ok(reference.at_digest(&entry.digest)),
            None => Err(DistributionError::NotLocked { reference: reference.to_string(), lock: lock_file.display().to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn a_lock_round_trips_as_toml() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEFAULT_LOCK_FILE);
        assert_eq!(Lock::load(&path).unwrap(), Lock::default());
        let mut lock = Lock::default();
        lock.upsert("pods-ready", "oci://r.io/g/pods-ready:1", A);
        lock.upsert("pods-ready", "oci://r.io/g/pods-ready:1", B);
        lock.save(&path).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("[[policy]]"));
        let read = Lock::load(&path).unwrap();
        assert_eq!(read.policies.len(), 1);
        assert_eq!(read.policies[0].digest, B);
    }

    #[test]
    fn tags_are_pinned_and_unknown_references_refused() {
        let mut lock = Lock::default();
        lock.upsert("pods-ready", "oci://r.io/g/pods-ready:1", A);
        let file = Path::new("runner.lock");
        let pinned = lock.pin(&Reference::parse("oci://r.io/g/pods-ready:1").unwrap(), file).unwrap();
        assert_eq!(pinned.selector, Selector::Digest(A.into()));
        assert!(lock.pin(&Reference::parse(&format!("oci://r.io/g/pods-ready@{A}")).unwrap(), file).is_ok());
        for refused in ["oci://r.io/g/pods-ready:2", "oci://r.io/g/other:1", &format!("oci://r.io/g/pods-ready@{B}")] {
            let error = lock.pin(&Reference::parse(refused).unwrap(), file).unwrap_err();
            assert!(error.to_string().contains("runner pull") && error.to_string().contains("runner.lock"), "{error}");
            assert_eq!(error.exit_code(), 2);
        }
    }

    #[test]
    fn a_malformed_lock_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runner.lock");
        std::fs::write(&path, "[[policy]]\nname = 1\n").unwrap();
        assert!(Lock::load(&path).unwrap_err().to_string().contains("runner.lock"));
    }
}
