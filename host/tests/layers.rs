//! The top-level modules of `runner` point down only. From the top:
//!
//! ```text
//! cli       arguments and printing
//! run       assembling a run: policy, grants, target or session, limits, probe; the run record; exit codes
//! probe     a client writing beside a run (downtime, lost writes)
//! engine    the sandbox: compile, cache, instantiate, limits
//! imports   the host side of each WIT interface: one checkpoint per call
//! session   record and replay
//! backends  Kubernetes and the databases (know nothing of wasm)
//! target    configuration only: which cluster, which databases
//! journal   the JSON-lines record of calls
//! policy    finding and reading components and their manifests
//! caps      capabilities and the call table
//! wit       the generated bindings
//! domain    plain values and rules every layer shares
//! ```
//!
//! A module may import only modules below its own line (`target`,
//! `journal` and `policy` share one; so do `caps` and `wit`), so there is
//! no cycle and nothing points back up.

#[path = "../lab/tests/support/module_graph.rs"]
mod module_graph;

use std::path::Path;

/// Each module's layer: a module may import only modules of a lower layer.
const LAYERS: &[(&str, u8)] = &[
    ("cli", 10),
    ("run", 9),
    ("probe", 8),
    ("engine", 7),
    ("imports", 6),
    ("session", 5),
    ("backends", 4),
    ("target", 3),
    ("journal", 3),
    ("runs", 4),
    ("distribution", 4),
    ("policy", 3),
    ("caps", 2),
    ("wit", 2),
    ("progress", 1),
    ("domain", 0),
];

#[test]
fn every_module_imports_only_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph::imports(&src);
    let layer = |module: &str| LAYERS.iter().find(|(name, _)| *name == module).map(|(_, layer)| *layer);
    for module in graph.keys() {
        assert!(layer(module).is_some(), "module `{module}` has no layer in host/tests/layers.rs (and CONTRIBUTING.md)");
    }
    let mut upward = Vec::new();
    for (module, targets) in &graph {
        for target in targets {
            if layer(target) >= layer(module) {
                upward.push(format!("{module} -> {target}"));
            }
        }
    }
    assert!(upward.is_empty(), "imports that do not point down: {}", upward.join(", "));
    assert_eq!(module_graph::cycle(&graph), None);
}
