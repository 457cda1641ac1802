//! Bindings generated from `wit/policy.wit`.
//!
//! `imports` holds every interface a policy may import; `gate` and `pattern`
//! hold only each world's export and reuse the `imports` types, so one
//! helper works for both. A component only imports what it calls: an unused
//! interface leaves no trace in the built component.
//!
//! Generated items carry the WIT's own documentation where it has any.
#![allow(missing_docs)]

/// Every `runner:policy` interface.
pub mod imports {
    wit_bindgen::generate!({
        path: "../wit",
        world: "imports",
        generate_all,
    });
}

/// One world's export, reusing the `imports` types: the read-only
/// interfaces every world has, then those the world adds.
macro_rules! world_export {
    ($world:tt, $export_macro:tt, $bindings_module:tt, { $($added:tt)* }) => {
        wit_bindgen::generate!({
            path: "../wit",
            world: $world,
            with: {
                "runner:policy/types@0.2.0": crate::bindings::imports::runner::policy::types,
                "runner:policy/kube-read@0.2.0": crate::bindings::imports::runner::policy::kube_read,
                "runner:policy/postgres-read@0.2.0": crate::bindings::imports::runner::policy::postgres_read,
                "runner:policy/redis-read@0.2.0": crate::bindings::imports::runner::policy::redis_read,
                "runner:policy/mongo-read@0.2.0": crate::bindings::imports::runner::policy::mongo_read,
                "runner:policy/report@0.2.0": crate::bindings::imports::runner::policy::report,
                "runner:policy/clock@0.2.0": crate::bindings::imports::runner::policy::clock,
                "runner:policy/run-info@0.2.0": crate::bindings::imports::runner::policy::run_info,
                "runner:policy/cluster-read@0.2.0": crate::bindings::imports::runner::policy::cluster_read,
                "runner:policy/traffic-read@0.2.0": crate::bindings::imports::runner::policy::traffic_read,
                $($added)*
            },
            pub_export_macro: true,
            export_macro_name: $export_macro,
            default_bindings_module: $bindings_module,
        });
    };
}

/// The `gate` world's export: implement [`gate::Guest`] and call
/// [`export_gate!`](crate::export_gate).
pub mod gate {
    world_export!("gate", "export_gate", "runner_sdk::bindings::gate", {});
}

/// The `pattern` world's export: implement [`pattern::Guest`] and call
/// [`export_pattern!`](crate::export_pattern).
pub mod pattern {
    world_export!("pattern", "export_pattern", "runner_sdk::bindings::pattern", {
        "runner:policy/kube-write@0.2.0": crate::bindings::imports::runner::policy::kube_write,
        "runner:policy/postgres-write@0.2.0": crate::bindings::imports::runner::policy::postgres_write,
        "runner:policy/redis-write@0.2.0": crate::bindings::imports::runner::policy::redis_write,
        "runner:policy/mongo-write@0.2.0": crate::bindings::imports::runner::policy::mongo_write,
        "runner:policy/approval@0.2.0": crate::bindings::imports::runner::policy::approval,
        "runner:policy/gates@0.2.0": crate::bindings::imports::runner::policy::gates,
        "runner:policy/cluster-write@0.2.0": crate::bindings::imports::runner::policy::cluster_write,
        "runner:policy/patterns@0.2.0": crate::bindings::imports::runner::policy::patterns,
        "runner:policy/traffic-write@0.2.0": crate::bindings::imports::runner::policy::traffic_write,
    });
}
