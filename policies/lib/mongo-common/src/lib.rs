//! Shared by the MongoDB gate (`mongo-replset-healthy`) and pattern
//! (`mongo-stepdown-cascade`). A library, not a component: it calls only
//! the read-only MongoDB interface, so a gate linking it never imports a
//! mutating one.

pub mod cluster;
pub mod rs;
