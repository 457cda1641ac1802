//! Distribution of components: cosign-compatible signatures and the operator's trust policy.

pub mod signature;
pub mod trust;
