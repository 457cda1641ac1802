//! Policies by reference: components pushed to and pulled from OCI
//! registries (`oci://REGISTRY/REPO:TAG`) and image-layout directories
//! (`oci-layout:DIR:TAG`) as CNCF Wasm OCI artifacts, kept in a
//! content-addressed cache, checked against the operator's trust policy
//! (world and imports from the config, signatures) before the component
//! itself is downloaded, and pinned by a lock file.

pub mod cache;
pub mod client;
pub mod layout;
pub mod lock;
pub mod reference;
pub mod signature;
pub mod trust;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use cache::{Cache, digest_of};
use client::Remote;
pub use reference::{Location, Reference, Selector, is_reference};

/// The CNCF Wasm OCI artifact's config media type.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The CNCF Wasm OCI artifact's layer media type.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// wasm-to-oci's older config media type, still read.
pub const LEGACY_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v1+json";
/// wasm-to-oci's older layer media type, still read.
pub const LEGACY_LAYER_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// The OCI image manifest media type every manifest written here has.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The config media type of a cosign signature manifest.
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Manifest annotation: the policy's name.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// Manifest annotation: the policy's version.
pub const VERSION_ANNOTATION: &str = "org.opencontainers.image.version";
/// Manifest annotation: the policy's world (`gate`, `pattern`).
pub const WORLD_ANNOTATION: &str = "dev.runner.world";

/// How references are reached and checked.
pub struct Settings {
    /// `HOST:PORT` of loopback registries spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// The blob cache (`.../runner/oci`).
    pub cache: PathBuf,
    /// Never touch the network: everything comes from the cache.
    pub offline: bool,
    /// The operator's rules by registry and repository.
    pub trust: trust::Trust,
    /// `--locked`: only references in this lock file, tags pinned to its digests.
    pub locked: Option<PathBuf>,
}

impl Settings {
    /// Nothing insecure, online, no trust rules, no lock, the default cache.
    pub fn new(cache: PathBuf) -> Self {
        Settings { insecure: Vec::new(), cache, offline: false, trust: trust::Trust::empty(), locked: None }
    }

    /// The blob cache beside the compiled-component cache `compiled` (its
    /// sibling `oci`), else `<user cache>/runner/oci`.
    pub fn cache_beside(compiled: Option<&Path>) -> PathBuf {
        match compiled.and_then(Path::parent) {
            Some(parent) => parent.join("oci"),
            None => dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("runner/oci"),
        }
    }
}

/// A component pulled by reference.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The canonical reference, at its manifest digest.
    pub reference: String,
    /// `sha256:` of the manifest.
    pub manifest_digest: String,
    /// `sha256:` of the component (the one layer).
    pub layer_digest: String,
    /// The component.
    pub bytes: Vec<u8>,
    /// Who signed it, when the trust policy asked for a signature.
    pub signer: Option<String>,
    /// Served from the cache, with no network call.
    pub from_cache: bool,
    /// The policy's name from the manifest's annotations, when it has them.
    pub title: Option<String>,
}

/// A component pushed.
#[derive(Debug, Clone, Serialize)]
pub struct Pushed {
    /// The canonical reference, at its manifest digest.
    pub reference: String,
    /// `sha256:` of the manifest.
    pub manifest_digest: String,
    /// `sha256:` of the component.
    pub layer_digest: String,
    /// The component's size in bytes.
    pub size: u64,
}

/// Why a reference could not be pushed, pulled, signed or verified.
#[derive(Debug, thiserror::Error)]
pub enum DistributionError {
    /// The reference does not parse.
    #[error("malformed reference `{reference}`: {reason}")]
    BadReference {
        /// As written.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// An `--insecure-registry` entry that is not loopback.
    #[error("--insecure-registry {entry} refused: {reason}")]
    Insecure {
        /// The entry.
        entry: String,
        /// Why.
        reason: String,
    },
    /// The registry could not be reached (connection refused, timeout, DNS).
    #[error("registry {registry} is unreachable: {reason}")]
    Unreachable {
        /// `host:port`.
        registry: String,
        /// The cause.
        reason: String,
    },
    /// The registry answered with an error.
    #[error("registry {registry}: {reason}")]
    Registry {
        /// `host:port`.
        registry: String,
        /// Its answer.
        reason: String,
    },
    /// No such manifest or blob.
    #[error("{0} not found")]
    NotFound(String),
    /// `--offline` and not cached.
    #[error("{0} is not in the cache (offline: no network call made)")]
    NotCached(String),
    /// Bytes that do not hash to their digest.
    #[error("{what} is tampered with: expected {expected}, found {found}")]
    Tampered {
        /// Which blob.
        what: String,
        /// The digest it should have.
        expected: String,
        /// The digest it has.
        found: String,
    },
    /// Not a wasm policy artifact (media types, layers, JSON).
    #[error("not a wasm policy artifact: {0}")]
    Format(String),
    /// The trust policy refuses the config's world or imports.
    #[error("{reference} refused by the trust policy: {reason}")]
    Refused {
        /// The reference.
        reference: String,
        /// The rule's reason.
        reason: String,
    },
    /// The trust policy asks for a signature and there is none.
    #[error("{reference} is not signed (no {tag}); the trust policy requires a signature by {expected}")]
    Unsigned {
        /// The reference.
        reference: String,
        /// The signature tag looked for.
        tag: String,
        /// The keys one of which must have signed.
        expected: String,
    },
    /// The signatures found do not verify.
    #[error("{reference}: no valid signature by {expected}: {reason}")]
    BadSignature {
        /// The reference.
        reference: String,
        /// The keys one of which must have signed.
        expected: String,
        /// What was found.
        reason: String,
    },
    /// `--locked` and the reference is not in the lock file.
    #[error("{reference} is not in the lock file {lock} (--locked): add it with `runner pull {reference} --lock {lock}`")]
    NotLocked {
        /// The reference.
        reference: String,
        /// The lock file.
        lock: String,
    },
    /// A lock file that cannot be read or written.
    #[error("lock file {path}: {reason}")]
    Lock {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An image layout that cannot be read or written.
    #[error("image layout {path}: {reason}")]
    Layout {
        /// The directory.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The blob cache cannot be read or written.
    #[error("OCI cache: {0}")]
    Cache(String),
    /// The component is not one the host would run.
    #[error("{0}")]
    Policy(String),
}

impl DistributionError {
    /// 4 when a registry could not be reached, else 2 (bad input: refused,
    /// unsigned, wrongly signed, tampered, not in the lock file or cache).
    pub fn exit_code(&self) -> u8 {
        match self {
            DistributionError::Unreachable { .. } => 4,
            _ => 2,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageManifest {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

impl Descriptor {
    fn of(media_type: &str, bytes: &[u8]) -> Self {
        Descriptor { media_type: media_type.into(), digest: digest_of(bytes), size: bytes.len() as u64, annotations: BTreeMap::new() }
    }
}

/// The CNCF wasm config (oci-wasm's `WasmConfig`, written here: oci-wasm 0.6 is built on oci-client 0.17).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig {
    created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    layer_digests: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    component: Option<WasmComponent>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct WasmComponent {
    #[serde(default)]
    exports: Vec<String>,
    #[serde(default)]
    imports: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

/// Where manifests and blobs of one repository come from.
trait Source {
    /// `registry` and `repository` as trust rules match them.
    fn trust_key(&self) -> (String, String);
    /// The manifest `selector` names and its digest.
    fn manifest(&mut self, selector: &Selector) -> Result<(Vec<u8>, String), DistributionError>;
    /// The blob `digest`, checked against it.
    fn blob(&mut self, digest: &str) -> Result<Vec<u8>, DistributionError>;
    /// The manifest at `tag`, if there is one (signatures).
    fn tagged(&mut self, tag: &str) -> Result<Option<(Vec<u8>, String)>, DistributionError>;
}

/// Fetch the component `reference` names: resolve the tag, read the
/// manifest and config, apply the trust rule (world, imports, signature)
/// and only then download the layer and check it against the manifest.
///
/// A digest reference whose blobs are cached makes no network call (and
/// starts no runtime). Network work runs on a scoped thread with its own
/// current-thread runtime, so this works inside or outside a runtime.
pub fn fetch(reference: &Reference, settings: &Settings) -> Result<Fetched, DistributionError> {
    let reference = match &settings.locked {
        Some(lock_file) => lock::Lock::load(lock_file)?.pin(reference, lock_file)?,
        None => reference.clone(),
    };
    match &reference.location {
        Location::Layout(path) => resolve(&mut layout::LayoutSource::open(path)?, &reference, settings, false),
        Location::Registry { registry, repository } => {
            let cache = Cache::new(&settings.cache);
            if settings.offline || matches!(reference.selector, Selector::Digest(_)) {
                let mut cached = CachedSource { cache: cache.clone(), registry: registry.clone(), repository: repository.clone() };
                match resolve(&mut cached, &reference, settings, true) {
                    Err(DistributionError::NotCached(_)) if !settings.offline => {}
                    done => return done,
                }
            }
            client::check_insecure(&settings.insecure)?;
            on_network_thread(|| {
                let remote = Remote::connect(registry, &settings.insecure)?;
                let mut source = RegistrySource { remote, cache, registry: registry.clone(), repository: repository.clone() };
                resolve(&mut source, &reference, settings, false)
            })
        }
    }
}

/// Push a component as a CNCF Wasm OCI artifact at a tag; the manifest is
/// annotated with the runner manifest's name, version and world. To a
/// registry, or into an image-layout directory (created when missing), so a
/// policy can be published for an air-gapped cluster with no registry at all.
pub fn push(component_bytes: &[u8], reference: &Reference, settings: &Settings) -> Result<Pushed, DistributionError> {
    let tag = reference.tag().ok_or_else(|| DistributionError::BadReference {
        reference: reference.to_string(),
        reason: "push needs a tag (a digest is what the push produces)".into(),
    })?;
    let cache = Cache::new(&settings.cache);
    let artifact = package(component_bytes, reference, &cache)?;
    let manifest_digest = digest_of(&artifact.manifest);
    match &reference.location {
        Location::Layout(dir) => layout::write(writable_layout(dir)?, &cache, &manifest_digest, Some(tag), None)?,
        Location::Registry { registry, repository } => {
            if settings.offline {
                return Err(DistributionError::NotCached(format!("{reference} (push needs the network)")));
            }
            client::check_insecure(&settings.insecure)?;
            on_network_thread(|| {
                let remote = Remote::connect(registry, &settings.insecure)?;
                remote.push_blob(repository, component_bytes, &artifact.layer.digest)?;
                remote.push_blob(repository, &artifact.config, &digest_of(&artifact.config))?;
                remote.push_manifest(repository, tag, &artifact.manifest, OCI_MANIFEST_MEDIA_TYPE)
            })?;
            cache.set_tag(&tag_key(registry, repository, tag), &manifest_digest)?;
        }
    }
    Ok(Pushed {
        reference: reference.at_digest(&manifest_digest).to_string(),
        manifest_digest,
        layer_digest: artifact.layer.digest,
        size: component_bytes.len() as u64,
    })
}

/// A component's artifact: its manifest and config bytes and its layer.
struct Artifact {
    manifest: Vec<u8>,
    config: Vec<u8>,
    layer: Descriptor,
}

/// Inspect a component as the host would load it and build its artifact;
/// its blobs are written into `cache` (what a later pull by digest reads).
fn package(component_bytes: &[u8], reference: &Reference, cache: &Cache) -> Result<Artifact, DistributionError> {
    let policy =
        crate::policy::Policy::from_bytes(Path::new(&reference.to_string()), component_bytes.to_vec()).map_err(|e| DistributionError::Policy(e.to_string()))?;
    let layer = Descriptor::of(WASM_LAYER_MEDIA_TYPE, component_bytes);
    let created = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let config = WasmConfig {
        created,
        author: None,
        description: Some(policy.manifest.description.clone()).filter(|d| !d.is_empty()),
        architecture: "wasm".into(),
        os: "wasip2".into(),
        layer_digests: vec![layer.digest.clone()],
        component: Some(WasmComponent {
            exports: policy.exports.clone(),
            imports: policy.imports.clone(),
            target: Some(format!("runner:policy/{}", policy.manifest.world)),
        }),
    };
    let config_bytes = serde_json::to_vec(&config).map_err(|e| DistributionError::Format(e.to_string()))?;
    let annotations = BTreeMap::from([
        (TITLE_ANNOTATION.to_string(), policy.manifest.name.clone()),
        (VERSION_ANNOTATION.to_string(), policy.manifest.version.clone()),
        (WORLD_ANNOTATION.to_string(), policy.manifest.world.to_string()),
    ]);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST_MEDIA_TYPE.into()),
        config: Descriptor::of(WASM_CONFIG_MEDIA_TYPE, &config_bytes),
        layers: vec![layer.clone()],
        annotations,
    };
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| DistributionError::Format(e.to_string()))?;
    for (digest, bytes) in [(&layer.digest, component_bytes), (&manifest.config.digest, &config_bytes[..]), (&digest_of(&manifest_bytes), &manifest_bytes[..])]
    {
        cache.put(digest, bytes)?;
    }
    Ok(Artifact { manifest: manifest_bytes, config: config_bytes, layer })
}

/// A layout directory to write into: a tar is read-only.
fn writable_layout(path: &Path) -> Result<&Path, DistributionError> {
    if path.is_file() {
        return Err(DistributionError::Layout {
            path: path.display().to_string(),
            reason: "a tar of a layout is read-only: write into a directory (oci-layout:DIR), then tar it".into(),
        });
    }
    Ok(path)
}

/// Sign the manifest `reference` names, cosign's way: a simple-signing
/// payload layer with the signature in an annotation, in a manifest at the
/// tag `sha256-<hex>.sig` (appended to the signatures already there). In a
/// registry, or in an image-layout directory, where no network is needed.
/// Returns the signature tag.
pub fn sign(reference: &Reference, key: &signature::SigningKey, settings: &Settings) -> Result<String, DistributionError> {
    match &reference.location {
        Location::Layout(dir) => {
            let mut source = layout::LayoutSource::open(writable_layout(dir)?)?;
            let (_, manifest_digest) = source.manifest(&reference.selector)?;
            let signatures = signature_manifest(&mut source, &reference.repository_name(), &manifest_digest, key)?;
            // The layout's own blobs are where layout::write reads from.
            let blobs = Cache::new(dir);
            for bytes in [&signatures.payload, &signatures.config, &signatures.manifest] {
                blobs.put(&digest_of(bytes), bytes)?;
            }
            layout::write(dir, &blobs, &manifest_digest, None, Some(&digest_of(&signatures.manifest)))?;
            Ok(signatures.tag)
        }
        Location::Registry { registry, repository } => {
            if settings.offline {
                return Err(DistributionError::NotCached(format!("{reference} (signing a registry's manifest needs the network)")));
            }
            client::check_insecure(&settings.insecure)?;
            on_network_thread(|| {
                let remote = Remote::connect(registry, &settings.insecure)?;
                let mut source = RegistrySource { remote, cache: Cache::new(&settings.cache), registry: registry.clone(), repository: repository.clone() };
                let (_, manifest_digest) = source.manifest(&reference.selector)?;
                let signatures = signature_manifest(&mut source, &format!("{registry}/{repository}"), &manifest_digest, key)?;
                let remote = &source.remote;
                remote.push_blob(repository, &signatures.payload, &digest_of(&signatures.payload))?;
                remote.push_blob(repository, &signatures.config, &digest_of(&signatures.config))?;
                remote.push_manifest(repository, &signatures.tag, &signatures.manifest, OCI_MANIFEST_MEDIA_TYPE)?;
                // What an offline pull checks is what was just pushed.
                let manifest_digest = digest_of(&signatures.manifest);
                source.cache.put(&digest_of(&signatures.payload), &signatures.payload)?;
                source.cache.put(&manifest_digest, &signatures.manifest)?;
                source.cache.set_tag(&tag_key(registry, repository, &signatures.tag), &manifest_digest)?;
                Ok(signatures.tag)
            })
        }
    }
}

/// A signature manifest and the blobs it names.
struct Signatures {
    tag: String,
    manifest: Vec<u8>,
    config: Vec<u8>,
    payload: Vec<u8>,
}

/// The signature manifest of `manifest_digest` once `key`'s signature is
/// appended to those `source` already has (a signature already there is kept once).
fn signature_manifest(
    source: &mut dyn Source,
    docker_reference: &str,
    manifest_digest: &str,
    key: &signature::SigningKey,
) -> Result<Signatures, DistributionError> {
    let payload = signature::payload(docker_reference, manifest_digest);
    let mut layer = Descriptor::of(signature::PAYLOAD_MEDIA_TYPE, &payload);
    layer.annotations.insert(signature::SIGNATURE_ANNOTATION.into(), key.sign(&payload));
    let tag = signature::signature_tag(manifest_digest);
    let mut layers = match source.tagged(&tag)? {
        Some((bytes, _)) => parse_manifest(&bytes)?.layers,
        None => Vec::new(),
    };
    if !layers.iter().any(|l| l.digest == layer.digest && l.annotations == layer.annotations) {
        layers.push(layer);
    }
    let config = b"{}".to_vec();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST_MEDIA_TYPE.into()),
        config: Descriptor::of(EMPTY_CONFIG_MEDIA_TYPE, &config),
        layers,
        annotations: BTreeMap::new(),
    };
    let manifest = serde_json::to_vec(&manifest).map_err(|e| DistributionError::Format(e.to_string()))?;
    Ok(Signatures { tag, manifest, config, payload })
}

/// Check the signatures of the manifest `reference` names against `keys`.
pub fn verify(reference: &Reference, keys: &[signature::NamedKey], settings: &Settings) -> Result<signature::Signer, DistributionError> {
    let check = |source: &mut dyn Source| {
        let (_, manifest_digest) = source.manifest(&reference.selector)?;
        verify_signature(source, reference, &manifest_digest, keys)
    };
    match &reference.location {
        Location::Layout(path) => check(&mut layout::LayoutSource::open(path)?),
        Location::Registry { registry, repository } => {
            client::check_insecure(&settings.insecure)?;
            if settings.offline {
                return check(&mut CachedSource { cache: Cache::new(&settings.cache), registry: registry.clone(), repository: repository.clone() });
            }
            on_network_thread(|| {
                let remote = Remote::connect(registry, &settings.insecure)?;
                check(&mut RegistrySource { remote, cache: Cache::new(&settings.cache), registry: registry.clone(), repository: repository.clone() })
            })
        }
    }
}

/// Write what `fetched` came from (its manifest, config and layer, and its
/// signature manifest when one was pulled) from the cache into the image
/// layout `dir`, tagged as `reference` is: what an air-gapped cluster reads
/// as `oci-layout:DIR:TAG`.
pub fn write_layout(fetched: &Fetched, reference: &Reference, settings: &Settings, dir: &Path) -> Result<(), DistributionError> {
    let cache = Cache::new(&settings.cache);
    let signature = match &reference.location {
        Location::Registry { registry, repository } => cache.tag(&tag_key(registry, repository, &signature::signature_tag(&fetched.manifest_digest)))?,
        Location::Layout(_) => None,
    };
    layout::write(dir, &cache, &fetched.manifest_digest, reference.tag(), signature.as_deref())
}

/// Where the cache keeps the blob `digest`, if it has it.
pub fn cached_blob(settings: &Settings, digest: &str) -> Option<PathBuf> {
    Cache::new(&settings.cache).blob_path(digest).ok().filter(|p| p.is_file())
}

/// Run network work on a thread of its own, where a current-thread runtime
/// may block even if the caller is inside a runtime.
fn on_network_thread<T: Send>(work: impl FnOnce() -> Result<T, DistributionError> + Send) -> Result<T, DistributionError> {
    std::thread::scope(|scope| scope.spawn(work).join()).unwrap_or_else(|_| Err(DistributionError::Cache("the registry client thread panicked".into())))
}

fn tag_key(registry: &str, repository: &str, tag: &str) -> String {
    format!("{registry}/{repository}:{tag}")
}

fn parse_manifest(bytes: &[u8]) -> Result<ImageManifest, DistributionError> {
    serde_json::from_slice(bytes).map_err(|e| DistributionError::Format(format!("manifest: {e}")))
}

fn resolve(source: &mut dyn Source, reference: &Reference, settings: &Settings, from_cache: bool) -> Result<Fetched, DistributionError> {
    let (manifest_bytes, manifest_digest) = source.manifest(&reference.selector)?;
    let manifest = parse_manifest(&manifest_bytes)?;
    if let Some(media_type) = manifest.media_type.as_deref().filter(|m| !client::ACCEPTED_MANIFESTS.contains(m)) {
        return Err(DistributionError::Format(format!("manifest media type {media_type}")));
    }
    if ![WASM_CONFIG_MEDIA_TYPE, LEGACY_CONFIG_MEDIA_TYPE].contains(&manifest.config.media_type.as_str()) {
        return Err(DistributionError::Format(format!(
            "config media type {} (expected {WASM_CONFIG_MEDIA_TYPE} or {LEGACY_CONFIG_MEDIA_TYPE})",
            manifest.config.media_type
        )));
    }
    let [layer] = &manifest.layers[..] else {
        return Err(DistributionError::Format(format!("{} layers (a policy artifact has exactly one)", manifest.layers.len())));
    };
    if ![WASM_LAYER_MEDIA_TYPE, LEGACY_LAYER_MEDIA_TYPE].contains(&layer.media_type.as_str()) {
        return Err(DistributionError::Format(format!("layer media type {} (expected {WASM_LAYER_MEDIA_TYPE})", layer.media_type)));
    }
    // As for a file: a component larger than the host would load is refused before it is downloaded.
    if layer.size > crate::policy::MAX_COMPONENT_BYTES {
        return Err(DistributionError::Format(format!(
            "the layer is {} bytes; a component is at most {} bytes",
            layer.size,
            crate::policy::MAX_COMPONENT_BYTES
        )));
    }
    const MAX_CONFIG_BYTES: u64 = 1 << 20;
    if manifest.config.size > MAX_CONFIG_BYTES {
        return Err(DistributionError::Format(format!("the config is {} bytes; at most {MAX_CONFIG_BYTES}", manifest.config.size)));
    }
    let config_bytes = source.blob(&manifest.config.digest)?;
    let config: WasmConfig = serde_json::from_slice(&config_bytes).map_err(|e| DistributionError::Format(format!("config: {e}")))?;
    let canonical = reference.at_digest(&manifest_digest).to_string();
    let (registry, repository) = source.trust_key();
    let mut signer = None;
    if let Some(rule) = settings.trust.rule_for(&registry, &repository) {
        let world = manifest.annotations.get(WORLD_ANNOTATION).map(String::as_str).unwrap_or("unknown");
        let imports = config.component.as_ref().map(|c| c.imports.clone()).unwrap_or_default();
        rule.admit(world, &imports).map_err(|reason| DistributionError::Refused { reference: canonical.clone(), reason })?;
        if !rule.keys.is_empty() {
            let found = verify_signature(source, reference, &manifest_digest, &rule.keys)?;
            signer = Some(format!("{} ({})", found.key, found.fingerprint));
        }
    }
    let bytes = source.blob(&layer.digest)?;
    Ok(Fetched {
        reference: canonical,
        manifest_digest,
        layer_digest: layer.digest.clone(),
        bytes,
        signer,
        from_cache,
        title: manifest.annotations.get(TITLE_ANNOTATION).cloned(),
    })
}

fn verify_signature(
    source: &mut dyn Source,
    reference: &Reference,
    manifest_digest: &str,
    keys: &[signature::NamedKey],
) -> Result<signature::Signer, DistributionError> {
    let expected = keys.iter().map(|k| format!("{} ({})", k.name, k.key.fingerprint())).collect::<Vec<_>>().join(", ");
    let expected = if expected.is_empty() { "one of the given keys".to_string() } else { expected };
    let tag = signature::signature_tag(manifest_digest);
    let named = reference.at_digest(manifest_digest).to_string();
    let Some((bytes, _)) = source.tagged(&tag)? else {
        return Err(DistributionError::Unsigned { reference: named, tag, expected });
    };
    let manifest = parse_manifest(&bytes)?;
    let mut layers = Vec::new();
    for layer in manifest.layers.iter().filter(|l| l.media_type == signature::PAYLOAD_MEDIA_TYPE) {
        let Some(signature) = layer.annotations.get(signature::SIGNATURE_ANNOTATION) else { continue };
        layers.push(signature::SignedLayer { payload: source.blob(&layer.digest)?, signature: signature.clone() });
    }
    if layers.is_empty() {
        return Err(DistributionError::Unsigned { reference: named, tag, expected });
    }
    signature::verify(&layers, keys, manifest_digest).map_err(|e| DistributionError::BadSignature { reference: named, expected, reason: e.to_string() })
}

/// The cache alone: a miss is [`DistributionError::NotCached`].
struct CachedSource {
    cache: Cache,
    registry: String,
    repository: String,
}

impl CachedSource {
    fn cached(&self, digest: &str) -> Result<Vec<u8>, DistributionError> {
        self.cache.get(digest)?.ok_or_else(|| DistributionError::NotCached(format!("{}/{}@{digest}", self.registry, self.repository)))
    }
}

impl Source for CachedSource {
    fn trust_key(&self) -> (String, String) {
        (self.registry.clone(), self.repository.clone())
    }

    fn manifest(&mut self, selector: &Selector) -> Result<(Vec<u8>, String), DistributionError> {
        let digest = match selector {
            Selector::Digest(digest) => digest.clone(),
            Selector::Tag(tag) => self
                .cache
                .tag(&tag_key(&self.registry, &self.repository, tag))?
                .ok_or_else(|| DistributionError::NotCached(tag_key(&self.registry, &self.repository, tag)))?,
        };
        Ok((self.cached(&digest)?, digest))
    }

    fn blob(&mut self, digest: &str) -> Result<Vec<u8>, DistributionError> {
        self.cached(digest)
    }

    fn tagged(&mut self, tag: &str) -> Result<Option<(Vec<u8>, String)>, DistributionError> {
        self.manifest(&Selector::Tag(tag.to_string())).map(Some)
    }
}

/// A registry, through the cache: what is cached is not downloaded again,
/// what is downloaded is checked and cached.
struct RegistrySource {
    remote: Remote,
    cache: Cache,
    registry: String,
    repository: String,
}

impl Source for RegistrySource {
    fn trust_key(&self) -> (String, String) {
        (self.registry.clone(), self.repository.clone())
    }

    fn manifest(&mut self, selector: &Selector) -> Result<(Vec<u8>, String), DistributionError> {
        let name = match selector {
            Selector::Digest(digest) => {
                if let Some(bytes) = self.cache.get(digest)? {
                    return Ok((bytes, digest.clone()));
                }
                digest.clone()
            }
            Selector::Tag(tag) => tag.clone(),
        };
        self.tagged(&name)?.ok_or_else(|| DistributionError::NotFound(format!("manifest {}/{}:{name}", self.registry, self.repository)))
    }

    fn blob(&mut self, digest: &str) -> Result<Vec<u8>, DistributionError> {
        if let Some(bytes) = self.cache.get(digest)? {
            return Ok(bytes);
        }
        let bytes = self
            .remote
            .blob(&self.repository, digest)?
            .ok_or_else(|| DistributionError::NotFound(format!("blob {}/{}@{digest}", self.registry, self.repository)))?;
        self.cache.put(digest, &bytes).map_err(|e| match e {
            DistributionError::Tampered { expected, found, .. } => {
                DistributionError::Tampered { what: format!("blob {}/{}@{expected} from the registry", self.registry, self.repository), expected, found }
            }
            other => other,
        })?;
        Ok(bytes)
    }

    fn tagged(&mut self, tag: &str) -> Result<Option<(Vec<u8>, String)>, DistributionError> {
        let Some((bytes, _)) = self.remote.manifest(&self.repository, tag)? else { return Ok(None) };
        // The digest is the bytes' own, never the registry's word for it.
        let digest = digest_of(&bytes);
        if tag.starts_with("sha256:") && digest != tag {
            return Err(DistributionError::Tampered {
                what: format!("manifest {}/{}@{tag}", self.registry, self.repository),
                expected: tag.into(),
                found: digest,
            });
        }
        self.cache.put(&digest, &bytes)?;
        if !tag.starts_with("sha256:") {
            self.cache.set_tag(&tag_key(&self.registry, &self.repository, tag), &digest)?;
        }
        Ok(Some((bytes, digest)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unreachable_registry_is_exit_4() {
        assert_eq!(DistributionError::Unreachable { registry: "r".into(), reason: "refused".into() }.exit_code(), 4);
        assert_eq!(DistributionError::NotCached("r/a:1".into()).exit_code(), 2);
        assert_eq!(DistributionError::Tampered { what: "w".into(), expected: "a".into(), found: "b".into() }.exit_code(), 2);
    }

    /// Store a manifest with these config and layer media types (and a tiny config and layer) in a cache.
    fn cached_artifact(cache: &Cache, config_type: &str, layer_types: &[&str]) -> String {
        let config = br#"{"created":"2026-12-07T00:00:00Z","component":{"imports":[],"exports":["evaluate"]}}"#;
        cache.put(&digest_of(config), config).unwrap();
        cache.put(&digest_of(b"\0asm"), b"\0asm").unwrap();
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST_MEDIA_TYPE.into()),
            config: Descriptor::of(config_type, config),
            layers: layer_types.iter().map(|t| Descriptor::of(t, b"\0asm")).collect(),
            annotations: BTreeMap::new(),
        };
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let digest = digest_of(&bytes);
        cache.put(&digest, &bytes).unwrap();
        digest
    }

    fn resolve_cached(cache: &Cache, digest: &str) -> Result<Fetched, DistributionError> {
        let reference = Reference::parse(&format!("oci://127.0.0.1:5000/gates/g@{digest}")).unwrap();
        let settings = Settings::new(cache.root().to_path_buf());
        let mut source = CachedSource { cache: cache.clone(), registry: "127.0.0.1:5000".into(), repository: "gates/g".into() };
        resolve(&mut source, &reference, &settings, true)
    }

    #[test]
    fn cncf_and_wasm_to_oci_media_types_are_read_and_others_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        for (config, layers) in [(WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE), (LEGACY_CONFIG_MEDIA_TYPE, LEGACY_LAYER_MEDIA_TYPE)] {
            let fetched = resolve_cached(&cache, &cached_artifact(&cache, config, &[layers])).unwrap();
            assert_eq!(fetched.bytes, b"\0asm");
            assert!(fetched.from_cache && fetched.reference.contains("@sha256:"));
        }
        for (config, layers, reason) in [
            ("application/vnd.oci.image.config.v1+json", &[WASM_LAYER_MEDIA_TYPE][..], "config media type"),
            (WASM_CONFIG_MEDIA_TYPE, &[WASM_LAYER_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE][..], "2 layers"),
            (WASM_CONFIG_MEDIA_TYPE, &[][..], "0 layers"),
            (WASM_CONFIG_MEDIA_TYPE, &["application/vnd.oci.image.layer.v1.tar+gzip"][..], "layer media type"),
        ] {
            let error = resolve_cached(&cache, &cached_artifact(&cache, config, layers)).unwrap_err();
            assert!(error.to_string().contains(reason), "{error}");
            assert_eq!(error.exit_code(), 2);
        }
    }

    #[test]
    fn a_cached_digest_missing_a_blob_is_a_cache_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let digest = cached_artifact(&cache, WASM_CONFIG_MEDIA_TYPE, &[WASM_LAYER_MEDIA_TYPE]);
        std::fs::remove_file(cache.blob_path(&digest_of(b"\0asm")).unwrap()).unwrap();
        assert!(matches!(resolve_cached(&cache, &digest), Err(DistributionError::NotCached(_))));
    }

    #[test]
    fn the_oci_cache_sits_beside_the_compiled_cache() {
        assert_eq!(Settings::cache_beside(Some(Path::new("/c/runner/components"))), PathBuf::from("/c/runner/oci"));
        assert!(Settings::cache_beside(None).ends_with("runner/oci"));
    }
}
