//! A policy on disk: found by name or path, read, fingerprinted and
//! inspected without being compiled or run.

pub mod config;
pub mod manifest;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmparser::{Encoding, Parser, Payload};

use crate::caps::ImportReport;
use crate::wit::CONTRACT_VERSION;
pub use manifest::{Manifest, World};

/// The largest component file read: a Python gate is about 20 MB, a Rust one 60 KB.
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// Why a policy could not be loaded. All of these are bad input (exit 2).
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs, reason = "the fields are named by the message each variant prints")]
pub enum PolicyError {
    /// No policy of that name in the search path (the name, the names there).
    #[error("no policy named {name} (found: {found}){hint}; build the bundled ones with scripts/build-policies, or give a path (./{name}.wasm)")]
    NotFound { name: String, found: String, hint: String },
    /// The file exists but cannot be read.
    #[error("{path}: cannot read: {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    /// A directory, FIFO, socket or device where a component file should be.
    #[error("{path}: {what}, not a component file")]
    NotAFile { path: PathBuf, what: &'static str },
    /// Larger than any component this host runs.
    #[error("{path}: {size} bytes; a component is at most {MAX_COMPONENT_BYTES} bytes")]
    TooLarge { path: PathBuf, size: u64 },
    /// No wasm header.
    #[error("{0}: not a WebAssembly component (no wasm header)")]
    NotWasm(PathBuf),
    /// A core module, not a component.
    #[error("{0}: a core WebAssembly module, not a component; build for wasm32-wasip2")]
    CoreModule(PathBuf),
    /// The binary does not parse.
    #[error("{path}: truncated or corrupt component: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// The manifest is missing or invalid.
    #[error("{path}: {source}")]
    Manifest { path: PathBuf, source: manifest::ManifestError },
    /// Built against another version of the contract.
    #[error(
        "{path}: built for contract runner:policy@{built_for}, but this runner speaks runner:policy@{speaks}: rebuild it with the runner SDK of this runner"
    )]
    Contract { path: PathBuf, built_for: String, speaks: &'static str },
    /// Imports the host does not serve.
    #[error("{path}: imports the host cannot provide: {imports}")]
    UnknownImports { path: PathBuf, imports: String },
    /// The imports or exports contradict the manifest's world.
    #[error("{path}: manifest says world `{world}` but the component {reason}")]
    WrongWorld { path: PathBuf, world: World, reason: String },
}

/// A policy read from disk and inspected.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where it was read from.
    pub path: PathBuf,
    /// The component's bytes.
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
    /// The embedded manifest.
    pub manifest: Manifest,
    /// Every top-level import, by full name.
    pub imports: Vec<String>,
    /// Every top-level export, by name.
    pub exports: Vec<String>,
    /// Imports compared with the manifest's requests.
    pub import_report: ImportReport,
    /// Where it was pulled from, for a policy loaded by reference (None for files).
    pub origin: Option<Origin>,
}

/// The registry or image layout a policy was pulled from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Origin {
    /// The canonical reference, at its manifest digest.
    pub reference: String,
    /// `sha256:` of the manifest.
    pub manifest_digest: String,
    /// Who signed it, when the trust policy asked for a signature.
    pub signer: Option<String>,
}

impl Policy {
    /// Find a policy by path or bundled name and load it.
    pub fn find(name_or_path: &str, search: &[PathBuf]) -> Result<Self, PolicyError> {
        Self::load(&locate(name_or_path, search)?)
    }

    /// Read and inspect the component at `path`: its file type first (a
    /// FIFO would block the read, a device never end it), then its size,
    /// then its header, and only then the rest.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        use std::io::Read;
        let unreadable = |source| PolicyError::Unreadable { path: path.into(), source };
        let metadata = std::fs::metadata(path).map_err(unreadable)?;
        if !metadata.is_file() {
            let what = if metadata.is_dir() { "a directory" } else { "not a regular file (a FIFO, socket or device)" };
            return Err(PolicyError::NotAFile { path: path.into(), what });
        }
        if metadata.len() > MAX_COMPONENT_BYTES {
            return Err(PolicyError::TooLarge { path: path.into(), size: metadata.len() });
        }
        let mut file = std::fs::File::open(path).map_err(unreadable)?;
        let mut bytes = vec![0u8; 4];
        if file.read_exact(&mut bytes).is_err() || bytes != b"\0asm" {
            return Err(PolicyError::NotWasm(path.into()));
        }
        file.take(MAX_COMPONENT_BYTES).read_to_end(&mut bytes).map_err(unreadable)?;
        if bytes.len() as u64 > MAX_COMPONENT_BYTES {
            return Err(PolicyError::TooLarge { path: path.into(), size: bytes.len() as u64 });
        }
        Self::from_bytes(path, bytes)
    }

    /// Inspect component bytes that claim to come from `path`.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, PolicyError> {
        let path = path.to_path_buf();
        if !bytes.starts_with(b"\0asm") {
            return Err(PolicyError::NotWasm(path));
        }
        if Parser::is_core_wasm(&bytes) {
            return Err(PolicyError::CoreModule(path));
        }
        let inspected = inspect(&bytes).map_err(|reason| PolicyError::Corrupt { path: path.clone(), reason })?;
        // Before anything else: a component of another contract would only
        // fail later with a confusing mismatch of imports or exports.
        let foreign: Vec<&str> = inspected.contracts.iter().map(String::as_str).filter(|v| *v != CONTRACT_VERSION).collect();
        if !foreign.is_empty() {
            return Err(PolicyError::Contract { path, built_for: foreign.join(", "), speaks: CONTRACT_VERSION });
        }
        let text =
            inspected.manifest.ok_or(manifest::ManifestError::Missing).and_then(|raw| String::from_utf8(raw).map_err(|_| manifest::ManifestError::NotText));
        let manifest = text.and_then(|t| Manifest::parse(&t)).map_err(|source| PolicyError::Manifest { path: path.clone(), source })?;
        let import_report = ImportReport::new(&inspected.imports, &manifest.requested());
        if !import_report.unknown.is_empty() {
            return Err(PolicyError::UnknownImports { path, imports: import_report.unknown.join(", ") });
        }
        let wrong_world = |reason: String| PolicyError::WrongWorld { path: path.clone(), world: manifest.world, reason };
        let export = match manifest.world {
            World::Gate => "evaluate",
            World::Pattern => "run",
        };
        if !inspected.exports.iter().any(|e| e == export) {
            return Err(wrong_world(format!("does not export `{export}` (exports: {})", list_or_none(&inspected.exports))));
        }
        if manifest.world == World::Gate {
            let mutating = import_report.mutating_interfaces();
            if !mutating.is_empty() {
                return Err(wrong_world(format!("imports interfaces a gate may not have: {}", mutating.join(", "))));
            }
        }
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        Ok(Policy { path, bytes, digest, manifest, imports: inspected.imports, exports: inspected.exports, import_report, origin: None })
    }

    /// The name to show for this policy (`pods-ready`).
    pub fn name(&self) -> &str {
        &self.manifest.name
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

struct Inspected {
    /// Imports through which the component can call the host: instances
    /// with at least one function, and bare functions. An instance imported
    /// only for its types (kube-write needs kube-read's `object-ref`) is not one.
    imports: Vec<String>,
    exports: Vec<String>,
    manifest: Option<Vec<u8>>,
    /// Every `runner:policy` version the component imports, type-only
    /// imports included (a gate that calls nothing still imports `types`).
    contracts: std::collections::BTreeSet<String>,
}

fn inspect(bytes: &[u8]) -> Result<Inspected, String> {
    let types = wasmparser::Validator::new().validate_all(bytes).map_err(|e| e.to_string())?;
    let types = types.as_ref();
    let callable = |ty: &wasmparser::ComponentTypeRef| match ty {
        wasmparser::ComponentTypeRef::Instance(index) => match types.component_any_type_at(*index) {
            wasmparser::component_types::ComponentAnyTypeId::Instance(id) => {
                types[id].exports.values().any(|item| matches!(item.ty, wasmparser::component_types::ComponentEntityType::Func(_)))
            }
            _ => true,
        },
        wasmparser::ComponentTypeRef::Type(_) => false,
        _ => true,
    };
    let mut found = Inspected { imports: Vec::new(), exports: Vec::new(), manifest: None, contracts: Default::default() };
    // Nested modules and components each end with their own `End`.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| e.to_string())? {
            Payload::Version { encoding: Encoding::Module, .. } if depth == 0 => return Err("not a component".into()),
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| e.to_string())?;
                    if let Some((_, version)) = import.name.name.strip_prefix("runner:policy/").and_then(|rest| rest.split_once('@')) {
                        found.contracts.insert(version.to_string());
                    }
                    if callable(&import.ty) {
                        found.imports.push(import.name.name.to_string());
                    }
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| e.to_string())?;
                    if export.kind != wasmparser::ComponentExternalKind::Type {
                        found.exports.push(export.name.name.to_string());
                    }
                }
            }
            Payload::CustomSection(section) if section.name() == manifest::SECTION => {
                if found.manifest.is_some() {
                    return Err(format!("more than one `{}` section", manifest::SECTION));
                }
                found.manifest = Some(section.data().to_vec());
            }
            _ => {}
        }
    }
    Ok(found)
}

/// Find a policy. An argument that looks like a path (it contains `/` or
/// ends in `.wasm`) is that file; any other is a name, never a file of the
/// current directory (a crate folder `runner new` made would shadow it):
/// `name.wasm` in the first directory of `search` that has it, else the
/// first component there whose manifest is named `name` (`replica_count.wasm`
/// answers to `replica-count`, as `runner list` shows it).
pub fn locate(name_or_path: &str, search: &[PathBuf]) -> Result<PathBuf, PolicyError> {
    if looks_like_path(name_or_path) {
        return Ok(PathBuf::from(name_or_path));
    }
    if let Some(file) = search.iter().map(|dir| dir.join(format!("{name_or_path}.wasm"))).find(|candidate| candidate.is_file()) {
        return Ok(file);
    }
    let catalog = catalog(search);
    if let Some(entry) = catalog.iter().find(|entry| entry.name == name_or_path) {
        return Ok(entry.path.clone());
    }
    let names: Vec<String> = catalog.into_iter().map(|entry| entry.name).collect();
    let hint = if Path::new(name_or_path).exists() { format!("; ./{name_or_path} in this directory is not looked at for a name") } else { String::new() };
    Err(PolicyError::NotFound { name: name_or_path.to_string(), found: list_or_none(&names), hint })
}

/// Whether a policy argument names a file rather than a policy.
fn looks_like_path(argument: &str) -> bool {
    argument.contains('/') || argument.ends_with(".wasm")
}

/// A component found in the search path.
#[derive(Debug)]
pub struct CatalogEntry {
    /// The name it answers to: its manifest's, or the file's stem when it cannot be read.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// The component, inspected, or why it cannot be used.
    pub loaded: Result<Policy, PolicyError>,
}

/// Every component in the search path, in search order, each name once
/// (the first directory that has it wins): what `runner list` shows and
/// every name `locate` resolves.
pub fn catalog(search: &[PathBuf]) -> Vec<CatalogEntry> {
    let mut found: Vec<CatalogEntry> = Vec::new();
    for dir in search {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "wasm")).collect();
        paths.sort();
        for path in paths {
            let loaded = Policy::load(&path);
            let name = match &loaded {
                Ok(policy) => policy.name().to_string(),
                Err(_) => path.file_stem().unwrap_or_default().to_string_lossy().to_string(),
            };
            if !found.iter().any(|entry| entry.name == name) {
                found.push(CatalogEntry { name, path, loaded });
            }
        }
    }
    found
}

/// Where bundled policies are looked for, in order: `RUNNER_POLICY_PATH`
/// (colon-separated), the `policies` folder beside the `runner` executable,
/// the source checkout's `policies/dist` (filled by scripts/build-policies),
/// and the user's data directory (`~/.local/share/runner/policies`).
pub fn default_search_path() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("RUNNER_POLICY_PATH").map(|v| std::env::split_paths(&v).collect()).unwrap_or_default();
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)) {
        dirs.push(exe_dir.join("policies"));
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/dist"));
    if let Some(data) = dirs::data_dir() {
        dirs.push(data.join("runner/policies"));
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gate component importing `interfaces` (WAT instance imports), with a
    /// manifest; only inspected, never run, so `evaluate` need not be typed.
    fn gate(interfaces: &str) -> Vec<u8> {
        let manifest = "name = \"odd\"\nversion = \"0.1.0\"\nworld = \"gate\"\n";
        let wat = format!(
            r#"(component
                {interfaces}
                (core module $m (func (export "f")))
                (core instance $i (instantiate $m))
                (func (export "evaluate") (canon lift (core func $i "f")))
                (@custom "{SECTION}" "{manifest}")
            )"#,
            SECTION = manifest::SECTION,
            manifest = manifest.replace('"', "\\\"").replace('\n', "\\n"),
        );
        wat::parse_str(wat).unwrap()
    }

    #[test]
    fn a_component_of_another_contract_is_refused_naming_both_versions() {
        // A gate that calls nothing still imports the types of the contract it was built for.
        let old = gate(r#"(import "runner:policy/types@0.1.0" (instance))"#);
        let err = Policy::from_bytes(Path::new("old.wasm"), old).unwrap_err();
        assert!(matches!(err, PolicyError::Contract { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "old.wasm: built for contract runner:policy@0.1.0, but this runner speaks runner:policy@0.2.0: rebuild it with the runner SDK of this runner"
        );
    }

    #[test]
    fn run_info_is_an_interface_of_both_worlds_that_needs_no_capability() {
        let imports = r#"(import "runner:policy/run-info@0.2.0" (instance (export "dry-run" (func (result bool)))))"#;
        let policy = Policy::from_bytes(Path::new("new.wasm"), gate(imports)).unwrap();
        assert_eq!(policy.import_report.policy_interfaces, vec!["run-info"]);
        assert!(policy.import_report.mismatches().is_empty(), "{:?}", policy.import_report.mismatches());
    }
}
