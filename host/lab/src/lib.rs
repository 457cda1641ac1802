//! The lab: a small Kubernetes API server on loopback and the controllers
//! that make its objects real (a Pod is a real database server process).
//!
//! The lab knows nothing of the runner's engine: the runner reaches it
//! through its API like any other cluster.

#![warn(missing_docs)]

pub mod apiserver;
pub mod arm;
pub mod client;
pub mod controllers;
pub mod daemon;
pub mod exec;
pub mod frontdoor;
pub mod net;
pub mod ops;
pub mod topology;
