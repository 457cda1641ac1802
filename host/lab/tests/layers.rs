//! The top-level modules of runner-lab point one way: no two of them import
//! each other, directly or around a longer loop. The allowed direction,
//! from the top:
//!
//! ```text
//! ops (what `runner lab status|backup|down` do)
//!  -> client (the lab's own API client)
//!  -> daemon (one process: API server + controllers, its directory)
//!  -> exec (kubectl exec into a running member),
//!     arm (the AKS / Azure Resource Manager emulation, on the store)
//!  -> controllers (scheduler, StatefulSets, Services, kubelet, setups)
//!  -> apiserver (the store and the REST API), net (loopback addresses),
//!     topology (a fresh lab's objects)
//! ```
//!
//! `apiserver` imports no other module of the crate: it is a cluster, and
//! knows nothing of what makes its objects real. The test reads every
//! `crate::` path (and every `super::` path that climbs to the crate root)
//! in each module's files and fails naming the first cycle it finds.

#[path = "support/module_graph.rs"]
mod module_graph;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use module_graph::{crate_references, cycle, imports};

#[test]
fn no_two_top_level_modules_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = imports(&src);
    assert!(graph.len() >= 5, "the modules of {}: {graph:?}", src.display());
    let listing: Vec<String> = graph.iter().map(|(m, t)| format!("{m} -> {}", t.iter().cloned().collect::<Vec<_>>().join(", "))).collect();
    if let Some(cycle) = cycle(&graph) {
        panic!("import cycle: {}\nimports:\n{}", cycle.join(" -> "), listing.join("\n"));
    }
    assert!(graph["apiserver"].is_empty(), "the API server imports nothing of the lab: {:?}", graph["apiserver"]);
    // The ARM emulation sits beside the controllers, below the daemon that starts it.
    for above in ["daemon", "client", "ops", "exec"] {
        assert!(!graph["arm"].contains(above), "arm imports {above}: {:?}", graph["arm"]);
    }
    assert!(graph["daemon"].contains("arm"), "the daemon starts the ARM server: {:?}", graph["daemon"]);
}

#[test]
fn references_are_read_from_every_form() {
    let code = "use crate::apiserver::Store;\nuse crate::{\n    net::Addresses,\n    topology,\n};\nlet x = crate::controllers::now(); // crate::ops in a comment\nuse super::daemon::LabDir;\nuse super::super::exec;";
    let names: Vec<String> = crate_references(code, 1).into_iter().collect();
    assert_eq!(names, ["apiserver", "controllers", "daemon", "net", "topology"]);
    let nested: Vec<String> = crate_references(code, 2).into_iter().collect();
    assert_eq!(nested, ["apiserver", "controllers", "exec", "net", "topology"]);
    let graph = BTreeMap::from([("a".to_string(), BTreeSet::from(["b".to_string()])), ("b".to_string(), BTreeSet::from(["a".to_string()]))]);
    assert_eq!(cycle(&graph), Some(vec!["a".to_string(), "b".to_string(), "a".to_string()]));
}
