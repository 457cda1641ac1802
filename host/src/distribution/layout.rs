//! OCI image-layout directories (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`): a source beside registries for clusters with no
//! registry access, and what `runner pull --layout DIR` writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cache::Cache;
use super::{DistributionError, OCI_MANIFEST_MEDIA_TYPE, Selector, Source};

/// The annotation naming a manifest's tag in `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<IndexEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// An image layout read as a source; its blobs are checked like the cache's.
pub(super) struct LayoutSource {
    dir: PathBuf,
    blobs: Cache,
    index: Index,
    /// A tar's contents, unpacked for as long as the source is read.
    _unpacked: Option<tempfile::TempDir>,
}

impl LayoutSource {
    /// Open the layout at `path`.
    pub(super) fn open(path: &Path) -> Result<Self, DistributionError> {
        let bad = |reason: String| DistributionError::Layout { path: path.display().to_string(), reason };
        let unpacked = if path.is_file() { Some(unpack(path).map_err(|e| bad(format!("cannot unpack the tar: {e}")))?) } else { None };
        let root = unpacked.as_ref().map_or(path, |dir| dir.path());
        let text = std::fs::read(root.join("index.json")).map_err(|e| bad(format!("index.json: {e}")))?;
        let index = serde_json::from_slice(&text).map_err(|e| bad(format!("index.json: {e}")))?;
        Ok(LayoutSource { dir: path.to_path_buf(), blobs: Cache::new(root), index, _unpacked: unpacked })
    }

    fn bad(&self, reason: String) -> DistributionError {
        DistributionError::Layout { path: self.dir.display().to_string(), reason }
    }
}

/// Unpack a tar of a layout; `tar` refuses entries that would land outside the directory.
fn unpack(file: &Path) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    tar::Archive::new(std::fs::File::open(file)?).unpack(dir.path())?;
    Ok(dir)
}

impl Source for LayoutSource {
    fn trust_key(&self) -> (String, String) {
        ("oci-layout".into(), self.dir.display().to_string())
    }

    fn manifest(&mut self, selector: &Selector) -> Result<(Vec<u8>, String), DistributionError> {
        match selector {
            Selector::Digest(digest) => Ok((self.blob(digest)?, digest.clone())),
            Selector::Tag(tag) => self.tagged(tag)?.ok_or_else(|| self.bad(format!("no manifest is tagged `{tag}` in index.json"))),
        }
    }

    fn blob(&mut self, digest: &str) -> Result<Vec<u8>, DistributionError> {
        self.blobs.get(digest)?.ok_or_else(|| self.bad(format!("blob {digest} is missing")))
    }

    fn tagged(&mut self, tag: &str) -> Result<Option<(Vec<u8>, String)>, DistributionError> {
        let found = self.index.manifests.iter().find(|m| m.annotations.get(REF_NAME_ANNOTATION).map(String::as_str) == Some(tag)).map(|m| m.digest.clone());
        match found {
            Some(digest) => Ok(Some((self.blob(&digest)?, digest))),
            None => Ok(None),
        }
    }
}

/// Write a manifest and the blobs it names from `cache` into the layout
/// `dir` (created when missing), tagged `tag` in `index.json`; also its signature
/// manifest when the cache has one (tag `sha256-<hex>.sig`), so a policy and
/// its signature travel together.
pub fn write(dir: &Path, cache: &Cache, manifest_digest: &str, tag: Option<&str>, signature_digest: Option<&str>) -> Result<(), DistributionError> {
    let bad = |reason: String| DistributionError::Layout { path: dir.display().to_string(), reason };
    std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
    let target = Cache::new(dir);
    let mut index: Index = match std::fs::read(dir.join("index.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| bad(format!("index.json: {e}")))?,
        Err(_) => Index { schema_version: 2, media_type: Some(INDEX_MEDIA_TYPE.into()), manifests: Vec::new() },
    };
    let mut add = |digest: &str, tag: Option<String>| -> Result<(), DistributionError> {
        let bytes = cache.get(digest)?.ok_or_else(|| bad(format!("manifest {digest} is not in the cache")))?;
        let manifest = super::parse_manifest(&bytes)?;
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            let blob_bytes = cache.get(&blob.digest)?.ok_or_else(|| bad(format!("blob {} is not in the cache", blob.digest)))?;
            target.put(&blob.digest, &blob_bytes)?;
        }
        target.put(digest, &bytes)?;
        let mut annotations = BTreeMap::new();
        if let Some(tag) = &tag {
            // One manifest per tag: a tag written again moves.
            index.manifests.retain(|m| m.annotations.get(REF_NAME_ANNOTATION) != Some(tag));
            annotations.insert(REF_NAME_ANNOTATION.to_string(), tag.clone());
        } else if index.manifests.iter().any(|m| m.digest == digest) {
            return Ok(());
        }
        index.manifests.push(IndexEntry { media_type: OCI_MANIFEST_MEDIA_TYPE.into(), digest: digest.into(), size: bytes.len() as u64, annotations });
        Ok(())
    };
    add(manifest_digest, tag.map(str::to_string))?;
    if let Some(signature_digest) = signature_digest {
        add(signature_digest, Some(super::signature::signature_tag(manifest_digest)))?;
    }
    let write_file = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).map_err(|e| bad(format!("{name}: {e}")));
    write_file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    write_file("index.json", &serde_json::to_vec_pretty(&index).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_without_index_is_refused_naming_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let error = LayoutSource::open(dir.path()).err().unwrap();
        assert!(error.to_string().contains("index.json"), "{error}");
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn a_tar_of_a_layout_reads_like_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        let cache = Cache::new(&layout);
        let manifest = b"{}";
        let digest = super::super::cache::digest_of(manifest);
        cache.put(&digest, manifest).unwrap();
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST_MEDIA_TYPE, "digest": digest, "size": 2, "annotations": {REF_NAME_ANNOTATION: "v1"}}]});
        std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
        let tar_file = dir.path().join("layout.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&tar_file).unwrap());
        builder.append_dir_all(".", &layout).unwrap();
        builder.finish().unwrap();
        drop(builder);
        let mut source = LayoutSource::open(&tar_file).unwrap();
        assert_eq!(source.manifest(&Selector::Tag("v1".into())).unwrap(), (manifest.to_vec(), digest));
        let not_a_tar = dir.path().join("not.tar");
        std::fs::write(&not_a_tar, b"no").unwrap();
        assert!(LayoutSource::open(&not_a_tar).err().unwrap().to_string().contains("not.tar"));
    }

    #[test]
    fn tags_resolve_through_the_index_and_blobs_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let manifest = br#"{"schemaVersion":2,"config":{"mediaType":"c","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":0},"layers":[]}"#;
        let digest = super::super::cache::digest_of(manifest);
        cache.put(&digest, manifest).unwrap();
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST_MEDIA_TYPE, "digest": digest, "size": manifest.len(), "annotations": {REF_NAME_ANNOTATION: "v1"}}]});
        std::fs::write(dir.path().join("index.json"), index.to_string()).unwrap();
        let mut source = LayoutSource::open(dir.path()).unwrap();
        assert_eq!(source.manifest(&Selector::Tag("v1".into())).unwrap().1, digest);
        assert!(source.manifest(&Selector::Tag("v2".into())).unwrap_err().to_string().contains("v2"));
        std::fs::write(cache.blob_path(&digest).unwrap(), b"tampered").unwrap();
        assert!(matches!(source.manifest(&Selector::Tag("v1".into())), Err(DistributionError::Tampered { .. })));
    }
}
