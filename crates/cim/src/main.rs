//! `cim`: run a local CIM lattice and talk to its entities.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cim::{Cli as Ctx, UpOptions};

/// The Composable Information Machine on a wasmCloud 1.x lattice.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Directory holding the lattice's state (credentials, JetStream data, logs, artifacts).
    #[arg(long, global = true, env = "CIM_STATE_DIR", default_value = ".cim")]
    state_dir: PathBuf,
    /// The lattice name.
    #[arg(long, global = true, env = "CIM_LATTICE", default_value = "cim")]
    lattice: String,
    #[command(subcommand)]
    command: Command,
}

/// How `cim up` (and `cim demo`) bring the lattice up.
#[derive(Debug, clap::Args)]
struct UpArgs {
    /// NATS client port.
    #[arg(long, env = "CIM_NATS_PORT", default_value_t = 4222)]
    nats_port: u16,
    /// The wadm manifest to deploy (file:///CIM_ARTIFACTS/… refs are resolved locally).
    #[arg(long, default_value = "wadm/local/cim.wadm.yaml")]
    manifest: PathBuf,
    /// Flake locations the pipeline may build, comma-separated (e.g.
    /// `git+file:///home/me/src`); default: git repositories under `<state dir>/repos`.
    #[arg(long)]
    allow_flakes: Option<String>,
    /// The Ollama server the inference provider uses (default http://127.0.0.1:11434).
    #[arg(long)]
    ollama_url: Option<String>,
    /// The chat model the document agent classifies with (default llama3.2).
    #[arg(long)]
    chat_model: Option<String>,
    /// Without an Ollama: run the test server of the testkit (real all-MiniLM-L6-v2
    /// embeddings, chat answers scripted by the model `cim-scripted-chat`).
    #[arg(long)]
    ollama_test_server: bool,
}

impl From<UpArgs> for UpOptions {
    fn from(a: UpArgs) -> Self {
        UpOptions {
            nats_port: a.nats_port,
            manifest: a.manifest,
            allow_flakes: a.allow_flakes,
            ollama_url: a.ollama_url,
            chat_model: a.chat_model,
            ollama_test_server: a.ollama_test_server,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start NATS, wadm and a wasmCloud host on 127.0.0.1, build and deploy the CIM (idempotent).
    Up(UpArgs),
    /// Bring the lattice up (as `cim up`) and run both seed scenarios: documents classified by
    /// the agent, and a commit built by Nix through to deployment; ends with a summary.
    Demo(UpArgs),
    /// Stop the host, wadm and NATS started by `cim up` (state is kept).
    Down,
    /// Show hosts, components, providers, links and the application's wadm status.
    Status,
    /// Send a command to an entity over wRPC and print the events it appended:
    /// `cim call <kind> <command> --id <id> --<field> <value>…`, the command and its fields read
    /// from the deployed component's WIT (`cim call <kind> --help` lists the commands,
    /// `cim call <kind> <command> --help` the fields), or `--json <payload>` for scripts.
    #[command(disable_help_flag = true)]
    Call {
        /// Entity type, e.g. `document`.
        #[arg(allow_hyphen_values = true)]
        kind: String,
        /// The command (`tag`), `--id <id>`, its fields (`--tag finance`) or `--json`, and
        /// `--expected-version <n>`, `--command-id <id>`, `--deadline-ms <ms>`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Create something new in this repository from a template.
    New {
        #[command(subcommand)]
        what: NewCommand,
    },
    /// Print an entity's language: its commands and events with their fields, types and docs,
    /// read from the WIT of the component `cim up` deployed.
    Describe {
        /// Entity type, e.g. `document`.
        kind: String,
        /// Read this component file instead of the deployed one.
        #[arg(long)]
        wasm: Option<PathBuf>,
    },
    /// Run a read-only Cypher query on the knowledge graph, or export its structure.
    #[command(args_conflicts_with_subcommands = true)]
    Graph {
        #[command(subcommand)]
        command: Option<GraphCommand>,
        /// The Cypher query (read-only: write clauses are refused).
        cypher: Option<String>,
        /// A query parameter `name=value` (integers, floats, true/false, null, else text).
        #[arg(long = "param")]
        params: Vec<String>,
    },
    /// Store, read or describe content-addressed objects (`cim:ecs/objectstore`).
    Object {
        #[command(subcommand)]
        command: ObjectCommand,
    },
    /// Find the documents nearest to a question (the agent's embeddings, cosine similarity).
    Ask {
        /// The question.
        question: String,
        /// Embedding model (the one the agent uses).
        #[arg(long, default_value = "all-minilm")]
        model: String,
        /// How many documents to show.
        #[arg(long, default_value_t = 5)]
        top: usize,
    },
    /// Drive commits through the package pipeline (build with Nix, publish, deploy).
    Pipeline {
        #[command(subcommand)]
        command: PipelineCommand,
    },
    /// Serve a browser view of the lattice on localhost: hosts, components, providers and
    /// links, each entity's event stream with its chain verified, the knowledge graph; live.
    Ui {
        /// The port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 8480)]
        port: u16,
    },
    /// Pack a provider binary into a provider archive (`<out-dir>/<name>.par.gz`), as `cim up`
    /// does; for packaging (the flake's `<provider>-archive` packages).
    Pack {
        /// Provider name (the archive's name and the binary's name in it).
        #[arg(long)]
        name: String,
        /// The provider executable.
        #[arg(long)]
        binary: PathBuf,
        /// Directory the archive is written to.
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// List the events reactors gave up on (after bounded redeliveries, refused as invalid,
    /// or not CIM events), or hand one to its reactor again.
    #[command(name = "dead-letters", args_conflicts_with_subcommands = true)]
    DeadLetters {
        #[command(subcommand)]
        command: Option<DeadLetterCommand>,
        /// Also list the resolved ones.
        #[arg(long)]
        all: bool,
    },
    /// Print an entity's events and verify its CID chain.
    Events {
        /// The entity as `<kind>/<id>`.
        entity: String,
        /// Keep printing new events as they are appended.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DeadLetterCommand {
    /// Deliver a dead-lettered event (and the rest of its message) to its reactor again; the
    /// record is resolved when the reactor accepts them.
    Retry {
        /// The reactor subscription's durable consumer (the `durable` column).
        durable: String,
        /// The event message's stream sequence (the `sequence` column).
        sequence: u64,
    },
}

#[derive(Debug, Subcommand)]
enum GraphCommand {
    /// Print every node and edge, as Graphviz dot or JSON.
    Export {
        /// Output format.
        #[arg(long, default_value = "dot", value_parser = ["dot", "json"])]
        format: String,
    },
}

#[derive(Debug, Subcommand)]
enum PipelineCommand {
    /// Submit HEAD of a local git repository: review, Nix build by the lattice's pipeline,
    /// publication, configuration and deployment, each step an event of the package.
    Submit {
        /// The repository's top directory (it must be within the pipeline's allowed flakes).
        repo: PathBuf,
        /// Package id (default: `<directory>-<12 hex digits of the commit>`).
        #[arg(long)]
        id: Option<String>,
        /// Flake output attribute to build.
        #[arg(long, default_value = "packages.x86_64-linux.default")]
        attribute: String,
        /// Who approves the pull request (not the commit's author).
        #[arg(long, default_value = "cim-reviewer")]
        reviewer: String,
        /// Deployment context.
        #[arg(long, default_value = "production")]
        context: String,
        /// Host to deploy to.
        #[arg(long, default_value = "local")]
        host: String,
        /// Seconds to wait for the build's outcome.
        #[arg(long, default_value_t = 900)]
        build_timeout_secs: u64,
    },
}

/// What `cim new` creates.
#[derive(Debug, Subcommand)]
enum NewCommand {
    /// A new entity type that builds, deploys with `cim up` and answers `cim call <name> open
    /// --id <id> --title <title>` before any rule is written: its WIT package
    /// (`wit/entities/<name>/`), its rules with a test (`crates/cim-model/src/<name>.rs`), its
    /// component crate (`components/<name>/`) and its entries in both wadm manifests.
    Entity {
        /// The entity type's name: lower-case letters, digits and single `-` (`ticket`).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum ObjectCommand {
    /// Store a file; prints its CID (storing the same bytes twice stores them once).
    Put {
        /// The file to store.
        file: PathBuf,
        /// Its media type.
        #[arg(long, default_value = "application/octet-stream")]
        media_type: String,
    },
    /// Read an object, verified against its CID, to a file or stdout.
    Get {
        /// The object's CID.
        cid: String,
        /// Where to write it (default: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Show an object's size and media type.
    Stat {
        /// The object's CID.
        cid: String,
    },
}

async fn run(args: Args) -> anyhow::Result<()> {
    let ctx = Ctx::new(args.state_dir, args.lattice);
    match args.command {
        Command::Up(args) => {
            let lattice = cim::up(&ctx, &args.into()).await?;
            println!("{}", lattice.connection_help());
        }
        Command::Demo(args) => cim::demo::demo(&ctx, &args.into()).await?,
        Command::Down => cim::down(&ctx)?,
        Command::Status => cim::status(&ctx).await?,
        Command::Call { kind, args } => cim::typed_call::run(&ctx, &kind, &args).await?,
        Command::New {
            what: NewCommand::Entity { name },
        } => print!("{}", cim::scaffold::new_entity(&name)?),
        Command::Describe { kind, wasm } => {
            cim_domain::Token::parse("entity kind", &kind)?;
            let wasm = wasm.unwrap_or_else(|| cim::typed_call::deployed_component(&ctx, &kind));
            print!(
                "{}",
                cim::describe::render(&cim::describe::language_of_file(&wasm, &kind)?)
            );
        }
        Command::DeadLetters { command, all } => match command {
            None => cim::deadletters::print(&ctx, all).await?,
            Some(DeadLetterCommand::Retry { durable, sequence }) => {
                cim::deadletters::retry(&ctx, &durable, sequence).await?
            }
        },
        Command::Events { entity, follow } => cim::print_events(&ctx, &entity, follow).await?,
        Command::Graph {
            command,
            cypher,
            params,
        } => match (command, cypher) {
            (Some(GraphCommand::Export { format }), _) => cim::graph::export(&ctx, &format).await?,
            (None, Some(cypher)) => cim::graph::print_query(&ctx, &cypher, &params).await?,
            (None, None) => anyhow::bail!("give a Cypher query, or `cim graph export`"),
        },
        Command::Pipeline {
            command:
                PipelineCommand::Submit {
                    repo,
                    id,
                    attribute,
                    reviewer,
                    context,
                    host,
                    build_timeout_secs,
                },
        } => {
            cim::pipeline::submit(
                &ctx,
                &cim::pipeline::Submission {
                    repo,
                    id,
                    attribute,
                    reviewer,
                    context,
                    host,
                    build_timeout: std::time::Duration::from_secs(build_timeout_secs),
                },
            )
            .await?
        }
        Command::Ask {
            question,
            model,
            top,
        } => cim::ask::print_nearest(&ctx, &question, &model, top).await?,
        Command::Ui { port } => cim::ui::serve(&ctx, port).await?,
        Command::Pack {
            name,
            binary,
            out_dir,
        } => {
            std::fs::create_dir_all(&out_dir)?;
            let par = cim::pack_provider(&binary, &name, &out_dir).await?;
            println!("{}", par.display());
        }
        Command::Object { command } => match command {
            ObjectCommand::Put { file, media_type } => {
                cim::objects::put_file(&ctx, &file, &media_type).await?
            }
            ObjectCommand::Get { cid, output } => {
                cim::objects::get_to(&ctx, &cid, output.as_deref()).await?
            }
            ObjectCommand::Stat { cid } => cim::objects::stat(&ctx, &cid).await?,
        },
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
