//! The testkit's Ollama-API server as a daemon of the local lattice (`cim up
//! --ollama-test-server`), for machines without Ollama: real all-MiniLM-L6-v2 embeddings,
//! chat answers scripted by the model `cim-scripted-chat` (so named in every event it causes).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::daemon::Daemon;

/// The daemon (its pid file and log in the state directory).
pub fn daemon(state_dir: &Path) -> anyhow::Result<Daemon> {
    let (python, _) = cim_testkit::ollama_invocation(0)?;
    Ok(Daemon::new("models", python, state_dir))
}

fn port_file(state_dir: &Path) -> PathBuf {
    state_dir.join("models.port")
}

/// Starts the server unless it runs; returns its port, pid and whether it was started.
pub fn ensure(state_dir: &Path, daemon: &Daemon) -> anyhow::Result<(u16, u32, bool)> {
    let known = std::fs::read_to_string(port_file(state_dir))
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok());
    let port = match (daemon.running(), known) {
        (Some(_), Some(port)) => port,
        _ => {
            // A daemon whose port was lost cannot be pointed at: start a fresh one.
            daemon.stop(std::time::Duration::from_secs(5))?;
            cim_testkit::free_port()?
        }
    };
    let (_, args) = cim_testkit::ollama_invocation(port)?;
    let (pid, started) = daemon.ensure(&args, &[])?;
    std::fs::write(port_file(state_dir), port.to_string())
        .context("cannot record the models server's port")?;
    Ok((port, pid, started))
}
