//! `runner`: run database-aware Kubernetes upgrade patterns and validation
//! gates that ship as sandboxed WebAssembly components.
//!
//! Layers point down only (`tests/layers.rs` checks it; CONTRIBUTING.md
//! is the map): [`cli`] → [`run`] → [`probe`] → [`engine`] → [`imports`] (one
//! checkpoint per call: names, capability via [`caps`], [`journal`], plan)
//! → [`session`] → [`backends`] → [`target`] (configuration only), with
//! [`policy`], [`caps`], [`wit`] and [`domain`] below them.

#![warn(missing_docs)]

pub mod backends;
pub mod caps;
pub mod cli;
pub mod distribution;
pub mod domain;
pub mod engine;
pub mod imports;
pub mod journal;
pub mod policy;
pub mod probe;
pub mod progress;
pub mod run;
pub mod runs;
pub mod session;
pub mod target;
pub mod wit;
