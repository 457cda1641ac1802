//! The content-addressed store of pulled blobs (`blobs/sha256/<hex>`:
//! manifests, configs, layers) and the tags last resolved
//! (`tags.json`: `registry/repository:tag` -> manifest digest).
//!
//! Every blob is checked against its name when stored and when read: a
//! cached blob that no longer matches is removed and refused, never used.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::DistributionError;

/// `sha256:<hex>` of some bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// The cache under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Cache { root: root.into() }
    }

    /// Its directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob of `digest` is (or would be) stored.
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, DistributionError> {
        super::reference::check_digest(digest).map_err(DistributionError::Format)?;
        Ok(self.root.join("blobs/sha256").join(&digest["sha256:".len()..]))
    }

    /// The blob of `digest`, if cached and intact. A blob whose bytes no
    /// longer hash to its name is removed and refused.
    pub fn get(&self, digest: &str) -> Result<Option<Vec<u8>>, DistributionError> {
        let path = self.blob_path(digest)?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(&path, e)),
        };
        let found = digest_of(&bytes);
        if found != digest {
            let _ = std::fs::remove_file(&path);
            return Err(DistributionError::Tampered { what: format!("cached blob {}", path.display()), expected: digest.into(), found });
        }
        Ok(Some(bytes))
    }

    /// Store `bytes` as the blob of `digest` (write, then rename, so a
    /// reader never sees half a blob); bytes that do not hash to `digest` are refused.
    pub fn put(&self, digest: &str, bytes: &[u8]) -> Result<PathBuf, DistributionError> {
        let found = digest_of(bytes);
        if found != digest {
            return Err(DistributionError::Tampered { what: "downloaded blob".into(), expected: digest.into(), found });
        }
        let path = self.blob_path(digest)?;
        if path.is_file() {
            return Ok(path);
        }
        write_atomically(&path, bytes).map_err(|e| self.io(&path, e))?;
        Ok(path)
    }

    /// The manifest digest a tag was last resolved to.
    pub fn tag(&self, key: &str) -> Result<Option<String>, DistributionError> {
        Ok(self.tags()?.remove(key))
    }

    /// Remember what a tag resolved to.
    pub fn set_tag(&self, key: &str, digest: &str) -> Result<(), DistributionError> {
        let mut tags = self.tags()?;
        if tags.get(key).map(String::as_str) == Some(digest) {
            return Ok(());
        }
        tags.insert(key.to_string(), digest.to_string());
        let path = self.tags_path();
        let text = serde_json::to_vec_pretty(&tags).unwrap_or_default();
        write_atomically(&path, &text).map_err(|e| self.io(&path, e))
    }

    fn tags(&self) -> Result<BTreeMap<String, String>, DistributionError> {
        let path = self.tags_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| DistributionError::Cache(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(self.io(&path, e)),
        }
    }

    fn tags_path(&self) -> PathBuf {
        self.root.join("tags.json")
    }

    fn io(&self, path: &Path, error: std::io::Error) -> DistributionError {
        DistributionError::Cache(format!("{}: {error}", path.display()))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_round_trips_and_a_wrong_digest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let digest = digest_of(b"layer");
        assert_eq!(cache.get(&digest).unwrap(), None);
        let path = cache.put(&digest, b"layer").unwrap();
        assert!(path.ends_with(&digest["sha256:".len()..]));
        assert_eq!(cache.get(&digest).unwrap().as_deref(), Some(&b"layer"[..]));
        assert!(matches!(cache.put(&digest_of(b"other"), b"layer"), Err(DistributionError::Tampered { .. })));
    }

    #[test]
    fn a_tampered_cached_blob_is_removed_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let digest = digest_of(b"layer");
        let path = cache.put(&digest, b"layer").unwrap();
        std::fs::write(&path, b"evil").unwrap();
        let error = cache.get(&digest).unwrap_err();
        assert!(matches!(error, DistributionError::Tampered { .. }), "{error}");
        assert!(!path.exists());
        assert_eq!(cache.get(&digest).unwrap(), None);
    }

    #[test]
    fn tags_remember_the_last_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        assert_eq!(cache.tag("r/a:1").unwrap(), None);
        cache.set_tag("r/a:1", "sha256:aa").unwrap();
        cache.set_tag("r/a:1", "sha256:bb").unwrap();
        assert_eq!(cache.tag("r/a:1").unwrap().as_deref(), Some("sha256:bb"));
    }
}
