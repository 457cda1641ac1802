//! `run-info`: the facts of the run a component belongs to. Always allowed,
//! and answered from the [`RunContext`](super::RunContext) alone: the
//! answers are fixed before any component starts and change nothing, so
//! they are not journaled (every journal line already carries the run id,
//! and a dry run's mutations are journaled as `planned`) nor recorded in a
//! session (a replay answers with the facts of the replaying run).

use super::HostState;
use crate::wit::pattern::runner::policy::run_info;

impl run_info::Host for HostState {
    fn id(&mut self) -> wasmtime::Result<String> {
        Ok(self.run.run_id.clone())
    }

    fn dry_run(&mut self) -> wasmtime::Result<bool> {
        Ok(self.run.dry_run)
    }

    fn resumed(&mut self) -> wasmtime::Result<bool> {
        Ok(self.run.resumed)
    }

    fn databases(&mut self) -> wasmtime::Result<Vec<run_info::Database>> {
        Ok(self
            .target_databases()
            .iter()
            .map(|db| run_info::Database {
                name: db.name.clone(),
                engine: db.engine.name().to_string(),
                namespace: db.namespace.clone().unwrap_or_default(),
                stateful_set: db.stateful_set.clone(),
            })
            .collect())
    }
}
