//! Shared by the Redis gate (`redis-cluster-healthy`) and pattern
//! (`redis-rolling-replace`): parsers for what Redis answers, the health
//! rules, the replacement order, and the cluster as seen through the host.

pub mod cluster;
pub mod health;
pub mod info;
pub mod nodes;
pub mod plan;
