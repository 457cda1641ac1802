//! Weighted traffic switches (`traffic-read`, `traffic-write`): each switch
//! of the target (`traffic.switches.<name>`) is served by an HTTPRoute
//! through the target's Kubernetes API ([`httproute`]) or by a Traffic
//! Manager profile through ARM ([`trafficmanager`]); `observe` GETs the
//! switch's address or a backend's over plain HTTP ([`observe`]).
//!
//! What a change may do is decided here, once, for both kinds
//! ([`crate::domain::traffic::apply_weights`]): the server of a switch only
//! reads its state and writes the backends it is handed, conditionally on
//! the state it read.

pub mod httproute;
pub mod observe;
pub mod trafficmanager;

use std::sync::Arc;

pub use httproute::HttpRouteSwitch;
pub use trafficmanager::ProfileSwitch;

use super::{BackendError, BackendResult, ErrorCode};
use crate::domain::traffic::{self as rules};
pub use crate::domain::traffic::{BackendWeight, HttpObservation, HttpRequests, SwitchChange, SwitchDocument, SwitchKind, SwitchState};
use crate::target::SwitchConfig;

/// The target's traffic switches, by name.
#[async_trait::async_trait]
pub trait Traffic: Send + Sync {
    /// The switch's backends and weights now.
    async fn weights(&self, switch: &str) -> BackendResult<SwitchState>;
    /// Set the named backends' weights, only while the switch is at
    /// `generation`: `conflict` (nothing changed) when it moved since.
    async fn set_weights(&self, switch: &str, weights: &[BackendWeight], generation: &str) -> BackendResult<SwitchChange>;
    /// GET the switch's address (or `backend`'s own) as `requests` says, and count what answered.
    async fn observe(&self, switch: &str, backend: Option<&str>, requests: &HttpRequests) -> BackendResult<HttpObservation>;
}

/// What reads and writes one switch: its route or profile.
#[async_trait::async_trait]
pub trait SwitchServer: Send + Sync {
    /// Which kind of switch it serves (and so the weights it takes).
    fn kind(&self) -> SwitchKind;
    /// The state now (`writer` is the caller's to set).
    async fn read(&self) -> BackendResult<SwitchState>;
    /// Write `next` (the whole list, as the rules made it) conditionally on
    /// `read` still being the switch's state; the state after.
    async fn write(&self, read: &SwitchState, next: &[BackendWeight]) -> BackendResult<SwitchState>;
}

/// One configured switch and what serves it.
pub struct Switch {
    /// As the target configures it.
    pub config: SwitchConfig,
    /// Its route or profile.
    pub server: Arc<dyn SwitchServer>,
}

/// The switches of one target.
pub struct Switches {
    switches: Vec<Switch>,
    /// Who the target is, for messages.
    target: String,
}

impl Switches {
    /// The switches `switches` of target `target` (its label).
    pub fn new(target: String, switches: Vec<Switch>) -> Self {
        Switches { switches, target }
    }

    fn switch(&self, name: &str) -> BackendResult<&Switch> {
        self.switches.iter().find(|s| s.config.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.switches.iter().map(|s| s.config.name.as_str()).collect();
            BackendError::new(ErrorCode::NotFound, format!("target {} has no traffic switch `{name}` (it has: {})", self.target, known.join(", ")))
        })
    }

    async fn read(switch: &Switch) -> BackendResult<SwitchState> {
        let mut state = switch.server.read().await?;
        state.writer = switch.config.writer;
        Ok(state)
    }
}

fn refused((code, message): rules::Refusal) -> BackendError {
    BackendError::new(code, message)
}

#[async_trait::async_trait]
impl Traffic for Switches {
    async fn weights(&self, switch: &str) -> BackendResult<SwitchState> {
        Switches::read(self.switch(switch)?).await
    }

    async fn set_weights(&self, switch: &str, weights: &[BackendWeight], generation: &str) -> BackendResult<SwitchChange> {
        let s = self.switch(switch)?;
        let previous = Switches::read(s).await?;
        if previous.generation != generation {
            return Err(refused(rules::stale(switch, generation, &previous.generation)));
        }
        let next = rules::apply_weights(&previous.backends, weights, s.server.kind(), s.config.writer).map_err(refused)?;
        let mut current = s.server.write(&previous, &next).await.map_err(|e| match e.code {
            // The server's own precondition failed (a 412, a generation moved while it retried).
            ErrorCode::Conflict => {
                BackendError::new(ErrorCode::Conflict, format!("switch {switch} changed since it was read ({}); nothing was changed", e.message))
            }
            _ => e,
        })?;
        current.writer = s.config.writer;
        Ok(SwitchChange { previous, current })
    }

    async fn observe(&self, switch: &str, backend: Option<&str>, requests: &HttpRequests) -> BackendResult<HttpObservation> {
        let s = self.switch(switch)?;
        rules::check_requests(requests).map_err(refused)?;
        let base = match backend {
            None => s.config.url.clone().ok_or_else(|| {
                BackendError::new(
                    ErrorCode::Unavailable,
                    format!("switch {switch}: no address known (the lab writes <lab>/frontdoor when its front door is up)"),
                )
            })?,
            Some(name) => s.config.backends.iter().find(|(b, _)| b == name).map(|(_, address)| address.clone()).ok_or_else(|| {
                BackendError::new(
                    ErrorCode::NotFound,
                    format!("switch {switch}: backend `{name}` has no address in the target (traffic.switches.{switch}.backends)"),
                )
            })?,
        };
        observe::observe(&base, requests).await
    }
}
