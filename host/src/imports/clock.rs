//! `clock`: the only way a component can tell or spend time. A sleep never
//! outlives the component's deadline. A session records both calls, and a
//! replay answers them without waiting: patterns poll with sleeps.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::HostState;
use super::Stop;
use crate::session::Sleep;
use crate::wit::pattern::runner::policy::clock;

impl clock::Host for HostState {
    fn now(&mut self) -> wasmtime::Result<u64> {
        let started = Instant::now();
        let now = self.run.session.now(&self.component, || SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default())?;
        self.note("clock.now", serde_json::Value::Null, started)?;
        Ok(now)
    }

    async fn sleep(&mut self, ms: u64) -> wasmtime::Result<()> {
        let started = Instant::now();
        self.note("clock.sleep", json!({"ms": ms}), started)?;
        let slot = match self.run.session.sleep(&self.component, ms)? {
            Sleep::Skip => return Ok(()),
            Sleep::Stopped => return Err(Stop::Deadline.into()),
            Sleep::Real(slot) => slot,
        };
        let wanted = started + Duration::from_millis(ms);
        if wanted > self.deadline {
            tokio::time::sleep_until(self.deadline.into()).await;
            if let Some(slot) = slot {
                self.run.session.finish_stopped(slot);
            }
            return Err(Stop::Deadline.into());
        }
        tokio::time::sleep_until(wanted.into()).await;
        if let Some(slot) = slot {
            self.run.session.finish(slot, Ok(serde_json::Value::Null));
        }
        Ok(())
    }
}
