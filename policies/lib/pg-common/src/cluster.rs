//! Finding a PostgreSQL cluster and its primary through the host.

use kube_common::{Pod, Set, StatefulSet, service_target};
use runner_sdk::Error;
use serde::Deserialize;

use crate::pg;

/// The configuration keys that name the cluster, as the PostgreSQL gates take them.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClusterConfig {
    /// The primary member (Pod name); empty: find it.
    pub primary: String,
    /// The Service clients reach the primary through.
    pub service: String,
    #[serde(flatten)]
    pub members: StatefulSet,
}

/// The cluster as found.
pub struct Found {
    pub set: Set,
    pub pods: Vec<Pod>,
    /// The member the Service selects.
    pub service_target: Option<String>,
    /// Confirmed by `pg_is_in_recovery() = false`.
    pub primary: String,
}

impl ClusterConfig {
    /// Read the StatefulSet, its Pods and the Service, then confirm the
    /// primary: the configured one, else the labelled one or the Service's.
    pub fn find(&self) -> Result<Found, Error> {
        let set = self.members.read()?;
        let pods = self.members.pods_of(&set)?;
        let service_target = service_target(&self.members.namespace, &self.service)?;
        let primary = pg::confirm_primary(&pg::primary_candidates(&self.primary, &pods, service_target.as_deref()))?;
        Ok(Found { set, pods, service_target, primary })
    }
}
