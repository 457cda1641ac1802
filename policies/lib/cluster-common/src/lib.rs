//! Shared by the policies that upgrade the cluster itself (`aks-upgrade`,
//! `node-image-patch`) and the gate that says whether it may
//! (`upgrade-readiness`): Kubernetes versions, AKS pool names, maintenance
//! windows, which database members run on which pool, PodDisruptionBudgets,
//! Nodes and their events, and the per-pool plan a re-run recomputes from
//! the cluster. A library, not a component: a gate links only the reads it
//! calls.

pub mod names;
pub mod nodes;
pub mod pdb;
pub mod placement;
pub mod plan;
pub mod run;
pub mod version;
pub mod window;

pub use placement::{Database, Placement};
pub use plan::{Cluster, Destination, Move, PoolPlan, Strategy};
pub use version::Version;
pub use window::Window;
