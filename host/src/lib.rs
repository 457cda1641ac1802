//! `runner`: run database-aware Kubernetes upgrade patterns and validation
//! gates that ship as sandboxed WebAssembly components.
//!
//! Data flows one way: [`cli`] → [`run`] → [`engine`] → component → [`imports`]
//! (capability check via [`caps`]) → [`backends`] → [`journal`]; a
//! [`target`] says which cluster the backends reach; a [`session`] records
//! a run's calls or answers them instead of the backends; a [`probe`]
//! writes to a database beside the run, as a client would, to measure
//! downtime and loss.

pub mod backends;
pub mod caps;
pub mod cli;
pub mod domain;
pub mod engine;
pub mod imports;
pub mod journal;
pub mod policy;
pub mod probe;
pub mod run;
pub mod session;
pub mod target;
pub mod wit;
