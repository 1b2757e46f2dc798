//! A real local lattice for end-to-end tests: exactly what `cim up` starts (nats-server with
//! operator auth, wadm, the wasmCloud host, the CIM manifest), in a temporary state directory
//! on a free port, torn down with `cim down` when dropped.

use std::path::PathBuf;

use anyhow::Context as _;
use cim::{Cli, UpOptions};

/// A running lattice; dropping it stops every process it started.
pub struct TestLattice {
    /// The CLI context (state dir and lattice name).
    pub cli: Cli,
    _dir: tempfile::TempDir,
    keep: std::sync::atomic::AtomicBool,
}

impl TestLattice {
    /// Runs `cim up` in a fresh state directory on a free port with a unique lattice name.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(None, None).await
    }

    /// [`TestLattice::start`] with the inference provider pointed at `ollama_url` and the
    /// agent classifying with `chat_model`.
    pub async fn start_with(
        ollama_url: Option<String>,
        chat_model: Option<String>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("cim-lattice-").tempdir()?;
        let lattice = format!("e2e{}", std::process::id());
        let cli = Cli::new(dir.path().to_path_buf(), lattice);
        let manifest = cim_testkit::workspace_root().join("wadm/local/cim.wadm.yaml");
        let port = cim_testkit::free_port()?;
        let guard = Self {
            cli,
            _dir: dir,
            keep: Default::default(),
        };
        cim::up(
            &guard.cli,
            &UpOptions {
                nats_port: port,
                manifest,
                allow_flakes: None,
                ollama_url,
                chat_model,
                ollama_test_server: false,
            },
        )
        .await
        .context("cim up")?;
        Ok(guard)
    }

    /// Keeps the state directory (logs of host, wadm, NATS) when dropped, as after a panic: for
    /// a harness that catches its tests' failures.
    pub fn keep_state(&self) {
        self.keep.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The last lines of a daemon's log (`host`, `wadm`, `nats`), for failure messages.
    pub fn log_tail(&self, daemon: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.cli.state_dir().join(format!("{daemon}.log")))
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The id of the lattice's (single) host.
    pub async fn host_id(&self) -> anyhow::Result<String> {
        let ctl = wasmcloud_control_interface::ClientBuilder::new(self.nats().await?)
            .lattice(self.cli.lattice())
            .timeout(std::time::Duration::from_secs(2))
            .build();
        let hosts = ctl.get_hosts().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        hosts
            .iter()
            .find_map(|h| h.data().map(|h| h.id().to_owned()))
            .context("no host answered")
    }

    /// A NATS client of the lattice's client role (what `cim call` connects as).
    pub async fn nats(&self) -> anyhow::Result<async_nats::Client> {
        self.cli.connect(cim::Role::Client).await
    }

    /// A NATS client of the lattice's user of `role`.
    pub async fn nats_as(&self, role: cim::Role) -> anyhow::Result<async_nats::Client> {
        self.cli.connect(role).await
    }

    /// A direct Bolt connection to the lattice's graph database (as the graph provider has).
    pub async fn graph(&self) -> anyhow::Result<cim_graph::Graph> {
        let dir = self.cli.state_dir();
        let ports: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("graph.json"))?)?;
        let bolt = ports["bolt"]
            .as_u64()
            .context("graph.json has no bolt port")?;
        let password = std::fs::read_to_string(dir.join("graph.password"))?;
        Ok(cim_graph::Graph::connect(&cim_graph::GraphConfig {
            uri: format!("bolt://127.0.0.1:{bolt}"),
            user: cim_testkit::GRAPH_USER.into(),
            password: password.trim().to_owned(),
            database: cim_testkit::GRAPH_DATABASE.into(),
            timeout: std::time::Duration::from_secs(60),
        })
        .await?)
    }

    /// Runs a read-only Cypher query through the graph provider (`name=value` parameters, as
    /// `cim graph --param`); each row as its values joined by ` | `. Panics on a failure.
    pub async fn graph_rows(&self, cypher: &str, params: &[(&str, &str)]) -> Vec<String> {
        let nats = self.nats().await.expect("a NATS connection");
        let params: Vec<_> = params
            .iter()
            .map(|(k, v)| cim::graph::parse_param(&format!("{k}={v}")).expect("a parameter"))
            .collect();
        // A read-only query is asked again when its answer is lost (docs/operations.md, "Lost
        // invocations"), at most three times.
        let mut answer = cim::graph_query(&nats, self.cli.lattice(), cypher, &params).await;
        for _ in 1..3 {
            if answer.is_ok() {
                break;
            }
            answer = cim::graph_query(&nats, self.cli.lattice(), cypher, &params).await;
        }
        answer
            .expect("the graph provider answers")
            .unwrap_or_else(|e| panic!("{cypher}: {e:?}"))
            .into_iter()
            .map(|r| {
                r.values
                    .iter()
                    .map(cim::graph::show)
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .collect()
    }

    /// The `cim` executable, pointed at this lattice (`--state-dir`, `--lattice`), killed when
    /// dropped.
    pub fn cim_command(&self) -> anyhow::Result<tokio::process::Command> {
        let mut cmd = tokio::process::Command::new(cim::sibling("cim", "CIM_BIN")?);
        cmd.arg("--state-dir")
            .arg(self.cli.state_dir())
            .arg("--lattice")
            .arg(self.cli.lattice())
            .kill_on_drop(true);
        Ok(cmd)
    }

    /// Runs `cim <args>` against this lattice from `cwd`; fails the test with both output
    /// streams unless it succeeds; returns its standard output.
    pub async fn cim_ok(&self, args: &[&str], cwd: &std::path::Path) -> String {
        let out = self
            .cim_command()
            .expect("the cim binary")
            .args(args)
            .current_dir(cwd)
            .output()
            .await
            .expect("cim runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "cim {} failed:\n{stdout}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// The pid of the lattice's daemon `name` (`nats`, `host`, `graph`, …), from its pid file.
    pub fn daemon_pid(&self, name: &str) -> anyhow::Result<i32> {
        let file = self.cli.state_dir().join(format!("{name}.pid"));
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        text.trim()
            .parse()
            .with_context(|| format!("{} holds no pid", file.display()))
    }

    /// Kills process `pid` with SIGKILL: a crash, not a stop.
    pub fn kill9(pid: i32) -> anyhow::Result<()> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .with_context(|| format!("cannot kill {pid}"))
    }

    /// The command line of process `pid` (arguments joined by spaces; empty if it is gone).
    pub fn cmdline(pid: i32) -> String {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default()
    }

    /// Pids of running processes whose command line mentions `needle` (e.g. a provider the
    /// host started from its archive).
    pub fn pids_of(needle: &str) -> Vec<i32> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            let cmdline: PathBuf = entry.path().join("cmdline");
            if std::fs::read(&cmdline)
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
            {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for TestLattice {
    fn drop(&mut self) {
        if let Err(e) = cim::down(&self.cli) {
            eprintln!("cim down failed: {e:#}");
        }
        // A failed test keeps the state directory (logs of host, wadm, NATS) for diagnosis.
        if std::thread::panicking() || self.keep.load(std::sync::atomic::Ordering::Relaxed) {
            let kept = std::mem::replace(
                &mut self._dir,
                tempfile::Builder::new()
                    .prefix("cim-lattice-")
                    .tempdir()
                    .expect("a temp dir"),
            )
            .keep();
            eprintln!(
                "the lattice's state and logs are kept in {}",
                kept.display()
            );
        }
    }
}

/// Makes `dir` a git repository whose one commit (author `ada`) holds the test flake
/// `tests/flakes/<flake>`; returns the commit hash.
pub fn git_flake_repo(dir: &std::path::Path, flake: &str) -> anyhow::Result<String> {
    let source = cim_testkit::workspace_root()
        .join("tests/flakes")
        .join(flake)
        .join("flake.nix");
    std::fs::create_dir_all(dir)?;
    std::fs::copy(&source, dir.join("flake.nix"))
        .with_context(|| format!("copying {}", source.display()))?;
    let git = |args: &[&str]| -> anyhow::Result<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=ada", "-c", "user.email=ada@example.com"])
            .args(args)
            .output()
            .context("running git")?;
        anyhow::ensure!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    git(&["init", "-q", "-b", "main"])?;
    git(&["add", "flake.nix"])?;
    git(&["commit", "-q", "-m", &format!("{flake}: first version")])?;
    git(&["rev-parse", "HEAD"])
}

/// Makes an **idempotent** wRPC call, again if its answer does not come within `deadline`
/// (at most 3 times): wrpc-transport-nats 0.29 can drop a reply under load, leaving the call
/// waiting forever (docs/operations.md, "Lost invocations"). Panics when no attempt is
/// answered.
pub async fn call_idempotent<T, F, Fut>(what: &str, deadline: std::time::Duration, call: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    for attempt in 1..=3 {
        match tokio::time::timeout(deadline, call()).await {
            Ok(answer) => return answer,
            Err(_) => eprintln!(
                "{what}: attempt {attempt} got no answer in {}s",
                deadline.as_secs()
            ),
        }
    }
    panic!("{what}: no answer in 3 attempts");
}
