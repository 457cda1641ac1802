//! Rust bindings for the WIT contract in `wit/policy.wit`.
//!
//! The `pattern` world imports everything a gate imports and more, so its
//! bindings own every interface; the `gate` world reuses them.

/// Bindings for the `pattern` world and every `runner:policy` interface.
pub mod pattern {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "pattern",
        imports: {
            "runner:policy/clock.now": trappable,
            "runner:policy/report": trappable,
            default: async | trappable,
        },
        exports: { default: async },
    });
}

/// Bindings for the `gate` world.
pub mod gate {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "gate",
        with: { "runner:policy": super::pattern::runner::policy },
        exports: { default: async },
    });
}

pub use pattern::runner::policy::types::{Error, ErrorCode, Outcome, Verdict};
