//! `patterns`: a pattern runs the pattern bound to one of its slots.
//! Skeleton until composition lands: every call answers `unavailable`.

use super::HostState;
use crate::wit::Error;
use crate::wit::ErrorCode;
use crate::wit::pattern::runner::policy::patterns;

impl patterns::Host for HostState {
    async fn run(&mut self, _slot: String, _config: String) -> wasmtime::Result<Result<patterns::PatternRun, Error>> {
        Ok(Err(Error { code: ErrorCode::Unavailable, message: "pattern slots are not built yet".into() }))
    }
}
