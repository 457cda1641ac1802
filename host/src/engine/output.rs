//! A component's stdout and stderr: forwarded to the log line by line,
//! tagged with the component's name, and stopped at a size limit.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use super::Stop;

/// Lines of stderr kept to explain a panic.
const KEPT_LINES: usize = 20;
/// Longest line forwarded to the log.
const MAX_LINE: usize = 1000;

#[derive(Debug, Default)]
struct State {
    written: usize,
    exceeded: bool,
    partial: Vec<u8>,
    recent: Vec<String>,
}

/// One output stream of one component.
#[derive(Clone, Debug)]
pub struct Output {
    component: Arc<str>,
    stream: &'static str,
    limit: usize,
    state: Arc<Mutex<State>>,
}

impl Output {
    /// A stream named `stream` (`stdout`) for `component`, cut off at `limit` bytes.
    pub fn new(component: Arc<str>, stream: &'static str, limit: usize) -> Self {
        Output { component, stream, limit, state: Arc::default() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The size limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the component wrote past the limit.
    pub fn exceeded(&self) -> bool {
        self.state().exceeded
    }

    /// The last lines written, oldest first (a panic message ends up here).
    pub fn recent(&self) -> Vec<String> {
        self.flush_partial();
        self.state().recent.clone()
    }

    /// Emit a final line that did not end in a newline.
    pub fn flush_partial(&self) {
        let mut state = self.state();
        if !state.partial.is_empty() {
            let line = String::from_utf8_lossy(&std::mem::take(&mut state.partial)).into_owned();
            self.emit(&mut state, line);
        }
    }

    fn emit(&self, state: &mut State, line: String) {
        let line = crate::imports::truncate(line, MAX_LINE, " [line truncated]");
        tracing::info!(target: "policy", "[{} {}] {line}", self.component, self.stream);
        if state.recent.len() == KEPT_LINES {
            state.recent.remove(0);
        }
        state.recent.push(line);
    }
}

impl IsTerminal for Output {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Output {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASI p2 streams are linked; p3 is not enabled in this host.
        Box::new(tokio::io::sink())
    }
}

#[async_trait::async_trait]
impl OutputStream for Output {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        let mut state = self.state();
        state.written = state.written.saturating_add(bytes.len());
        if state.written > self.limit {
            state.exceeded = true;
            return Err(StreamError::Trap(Stop::Output { stream: self.stream, limit: self.limit }.into()));
        }
        let mut rest = &bytes[..];
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            state.partial.extend_from_slice(&rest[..end]);
            let line = String::from_utf8_lossy(&std::mem::take(&mut state.partial)).into_owned();
            self.emit(&mut state, line);
            rest = &rest[end + 1..];
        }
        state.partial.extend_from_slice(rest);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for Output {
    async fn ready(&mut self) {}
}
