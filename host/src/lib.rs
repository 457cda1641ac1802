//! `runner`: run database-aware Kubernetes upgrade patterns and validation
//! gates that ship as sandboxed WebAssembly components.
//!
//! Data flows one way: [`cli`] → [`engine`] → component → [`imports`]
//! (capability check via [`caps`]) → [`backends`] → [`journal`]; a
//! [`target`] says which cluster the backends reach.

pub mod backends;
pub mod caps;
pub mod cli;
pub mod engine;
pub mod imports;
pub mod journal;
pub mod policy;
pub mod probe;
pub mod target;
pub mod wit;
