//! Write probes: clients that keep writing through a pattern run and then
//! prove that no acknowledged write was lost.
//!
//! (Minimal module for the Redis branch; main's `probe/mod.rs` replaces it.)

pub mod redis;

/// What a probe measured.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ProbeSummary {
    /// Writes the database confirmed as durable (for Redis: held by a replica).
    pub acknowledged_writes: u64,
    /// Acknowledged writes missing or changed when read back after the run.
    pub lost_writes: u64,
    /// The first few lost keys.
    pub lost_sample: Vec<String>,
    /// Operations that failed as a client sees it.
    pub failed_ops: u64,
    /// The longest gap between acknowledged writes.
    pub downtime_ms: f64,
    /// The slowest operation.
    pub max_latency_ms: f64,
    /// Operations attempted.
    pub ops: u64,
    /// How long the probe ran.
    pub duration_ms: f64,
    /// The first few distinct errors.
    pub errors: Vec<String>,
}
