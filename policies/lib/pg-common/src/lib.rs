//! Shared by the PostgreSQL gates (`pg-preflight`, `pg-healthy`) and patterns
//! (`postgres-ferris-wheel`, `postgres-emergency-failover`). A library, not a
//! component: each policy links only what it calls, so a gate that uses the
//! read helpers never imports a mutating interface. The Kubernetes side
//! (members, Service, node pools) is `kube-common`'s.

pub mod cluster;
pub mod ops;
pub mod pg;
pub mod rows;
pub mod text;
