//! Compiled components on disk, keyed by the component's digest and the
//! engine's compatibility hash, so a second run never recompiles.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;

use super::{EngineError, error_chain};
use crate::policy::Policy;

/// The default cache directory: `<cache dir>/runner/compiled`.
pub fn default_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("runner/compiled"))
}

/// Load the compiled component from `dir` or compile it and store it there.
/// Returns whether it came from the cache.
pub fn load_or_compile(engine: &wasmtime::Engine, dir: Option<&Path>, policy: &Policy) -> Result<(Component, bool), EngineError> {
    let compile = || {
        Component::new(engine, &policy.bytes).map_err(|e| {
            let reason = error_chain(&e);
            // The pooling allocator refuses components larger than the sandbox's limits.
            if reason.contains("pooling allocator") {
                EngineError::Stopped { component: policy.manifest.name.clone(), reason: format!("exceeds the sandbox's instance or table limits: {reason}") }
            } else {
                EngineError::Invalid(format!("{}: not a valid component: {reason}", policy.path.display()))
            }
        })
    };
    let Some(dir) = dir else { return Ok((compile()?, false)) };
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let digest = policy.digest.trim_start_matches("sha256:");
    let path = dir.join(format!("{}-{:016x}.cwasm", &digest[..32.min(digest.len())], hasher.finish()));
    if path.is_file() {
        // SAFETY: the file was written by this function from a component
        // compiled by an engine with the same compatibility hash, in a
        // directory owned by the user running the host.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok((component, true)),
            Err(e) => tracing::warn!("ignoring unusable cache entry {}: {}", path.display(), error_chain(&e)),
        }
    }
    let component = compile()?;
    if let Err(e) = store(&component, dir, &path) {
        tracing::warn!("cannot cache the compiled component in {}: {e}", dir.display());
    }
    Ok((component, false))
}

fn store(component: &Component, dir: &Path, path: &Path) -> Result<(), String> {
    let bytes = component.serialize().map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    // Write then rename, so a concurrent run never reads half a file.
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&partial, bytes).map_err(|e| e.to_string())?;
    std::fs::rename(&partial, path).map_err(|e| e.to_string())
}
