//! A fleet's members as a run reaches them ([`FleetReach`]): each member's
//! backends are connected the first time a pattern runs something on it,
//! then kept for the rest of the run; a replayed or canned run connects
//! none (the session answers every member's calls).

use std::sync::Arc;

use tokio::sync::OnceCell;

use super::builder::backends_of;
use crate::backends::{BackendError, ErrorCode};
use crate::imports::{FleetMember, FleetReach, MemberScope};
use crate::target::Fleet;

/// The members of one run's fleet.
pub(super) struct FleetBackends {
    fleet: Fleet,
    members: Vec<FleetMember>,
    connected: Vec<OnceCell<MemberScope>>,
    /// Replaying: no member is reached.
    offline: bool,
}

impl FleetBackends {
    pub(super) fn new(fleet: Fleet, offline: bool) -> Self {
        let members = fleet
            .members
            .iter()
            .map(|m| FleetMember { name: m.name.clone(), group: m.group.clone(), labels: m.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect() })
            .collect();
        let connected = fleet.members.iter().map(|_| OnceCell::new()).collect();
        FleetBackends { fleet, members, connected, offline }
    }
}

#[async_trait::async_trait]
impl FleetReach for FleetBackends {
    fn members(&self) -> &[FleetMember] {
        &self.members
    }

    async fn reach(&self, name: &str) -> Result<MemberScope, BackendError> {
        let Some(index) = self.fleet.members.iter().position(|m| m.name == name) else {
            return Err(BackendError::new(ErrorCode::NotFound, format!("the fleet {} has no member `{name}`", self.fleet.path.display())));
        };
        let member = &self.fleet.members[index];
        let scope = self.connected[index]
            .get_or_try_init(|| async {
                let target = &member.target;
                let backends = backends_of(target, self.offline)
                    .await
                    .map_err(|f| BackendError::new(ErrorCode::Unavailable, format!("member `{name}`: {}", f.message)))?;
                Ok::<_, BackendError>(MemberScope { name: name.into(), backends: Arc::new(backends), databases: Arc::new(target.databases.clone()) })
            })
            .await?;
        Ok(scope.clone())
    }
}
