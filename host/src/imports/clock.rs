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
        let now = self
            .run
            .session
            .now(&self.component, self.member_name(), || SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default())?;
        self.note("clock.now", serde_json::Value::Null, started)?;
        Ok(now)
    }

    async fn sleep(&mut self, ms: u64) -> wasmtime::Result<()> {
        let started = Instant::now();
        let slot = match self.run.session.sleep(&self.component, self.member_name(), ms)? {
            Sleep::Skip => return self.note("clock.sleep", json!({"ms": ms}), started),
            Sleep::Stopped => return self.stopped_sleep(ms, started),
            Sleep::Real(slot) => slot,
        };
        let wanted = started + Duration::from_millis(ms);
        if wanted > self.deadline {
            tokio::time::sleep_until(self.deadline.into()).await;
            if let Some(slot) = slot {
                self.run.session.finish_stopped(slot);
            }
            return self.stopped_sleep(ms, started);
        }
        self.note("clock.sleep", json!({"ms": ms}), started)?;
        match &self.run.run_dir {
            // A sleep is a point where nothing is in flight: `runner stop` need not wait out a soak.
            Some(run_dir) => {
                let stop = async {
                    loop {
                        if let Some(by) = run_dir.stop_requested() {
                            return by;
                        }
                        tokio::time::sleep(crate::runs::POLL).await;
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep_until(wanted.into()) => {}
                    by = stop => return Err(Stop::Requested(format!("stopped by `runner stop` ({by}) while `{}` slept", self.component)).into()),
                }
            }
            None => tokio::time::sleep_until(wanted.into()).await,
        }
        if let Some(slot) = slot {
            self.run.session.finish(slot, Ok(serde_json::Value::Null));
        }
        Ok(())
    }
}

impl HostState {
    /// A sleep the deadline cut short: journaled as stopped, then the stop.
    fn stopped_sleep(&self, ms: u64, started: Instant) -> wasmtime::Result<()> {
        self.journal_stopped("clock.sleep", json!({"ms": ms}), started)?;
        Err(Stop::Deadline.into())
    }
}
