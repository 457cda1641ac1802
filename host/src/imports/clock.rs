//! `clock`: the only way a component can tell or spend time. A sleep never
//! outlives the component's deadline. A session records both calls, and a
//! replay answers them without waiting: patterns poll with sleeps.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::HostState;
use super::Stop;
use crate::session::{Diverged, Logging, Sleep};
use crate::wit::pattern::runner::policy::clock;

impl clock::Host for HostState {
    fn now(&mut self) -> wasmtime::Result<u64> {
        let started = Instant::now();
        let logging = match self.run_log() {
            Some(log) => Some(log.begin("clock.now", &Value::Null, super::wall_ms())?),
            None => None,
        };
        let now = match logging {
            Some(Logging::Replayed(answer)) => replayed_ms(answer)?,
            live => {
                let now = self.run.session.now(&self.component, self.member_name(), super::wall_ms)?;
                if let (Some(log), Some(Logging::Live(index))) = (self.run_log(), live) {
                    log.finish(index, "clock.now", &Value::Null, Ok(Value::from(now)));
                }
                now
            }
        };
        self.note("clock.now", Value::Null, started)?;
        Ok(now)
    }

    async fn sleep(&mut self, ms: u64) -> wasmtime::Result<()> {
        let started = Instant::now();
        let args = json!({"ms": ms});
        // A resumed run's sleep counts the time its earlier attempt already slept.
        let mut left = ms;
        let mut logged = None;
        if let Some(log) = self.run_log() {
            let now = super::wall_ms();
            match log.begin("clock.sleep", &args, now)? {
                Logging::Replayed(_) => return self.note("clock.sleep", args, started),
                Logging::Live(index) => {
                    left = ms.saturating_sub(now.saturating_sub(log.begun_at(index).unwrap_or(now)));
                    logged = Some(index);
                }
            }
        }
        let slot = match self.run.session.sleep(&self.component, self.member_name(), ms)? {
            Sleep::Skip => {
                self.slept(logged, &args);
                return self.note("clock.sleep", args, started);
            }
            Sleep::Stopped => return self.stopped_sleep(ms, started),
            Sleep::Real(slot) => slot,
        };
        let wanted = started + Duration::from_millis(left);
        if wanted > self.deadline {
            tokio::time::sleep_until(self.deadline.into()).await;
            if let Some(slot) = slot {
                self.run.session.finish_stopped(slot);
            }
            return self.stopped_sleep(ms, started);
        }
        self.note("clock.sleep", args.clone(), started)?;
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
            self.run.session.finish(slot, Ok(Value::Null));
        }
        self.slept(logged, &args);
        Ok(())
    }
}

/// A `clock.now` answer from the run log.
fn replayed_ms(answer: Result<Value, crate::backends::BackendError>) -> Result<u64, Diverged> {
    match answer {
        Ok(value) => value.as_u64().ok_or_else(|| Diverged(format!("cannot resume: the run log answers clock.now with {value}, not milliseconds"))),
        Err(e) => Err(Diverged(format!("cannot resume: the run log says clock.now failed ({})", e.message))),
    }
}

impl HostState {
    /// A sleep of the run's own component ended: the run log keeps it, so a resumed run does not sleep it again.
    fn slept(&self, logged: Option<usize>, args: &Value) {
        if let (Some(log), Some(index)) = (self.run_log(), logged) {
            log.finish(index, "clock.sleep", args, Ok(Value::Null));
        }
    }

    /// A sleep the deadline cut short: journaled as stopped, then the stop.
    fn stopped_sleep(&self, ms: u64, started: Instant) -> wasmtime::Result<()> {
        self.journal_stopped("clock.sleep", json!({"ms": ms}), started)?;
        Err(Stop::Deadline.into())
    }
}
