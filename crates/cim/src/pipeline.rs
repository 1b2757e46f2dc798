//! `cim pipeline submit`: a commit of a local git repository through the package pipeline.
//!
//! The human steps are commands to the package entity over wRPC (submit the commit, open and
//! approve its pull request, request the build); the build itself is the lattice's: the
//! pipeline system reacts to `BuildRequested`, builds with Nix and records the outcome. This
//! command follows the package's stream until the outcome is recorded, then, for a published
//! package, configures it and records its deployment. Every command after the first is
//! caused by the event before it, in one conversation.

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use cim_domain::{EntityRef, EventCodec, RecordedEvent, Token};
use cim_model::package::{PackageCommand, PackageEvent};
use cim_nats::EventStore;

use crate::call::{call_answered, command_for};
use crate::Cli;

/// What to submit and how far to drive it.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The git working tree whose `HEAD` is submitted.
    pub repo: PathBuf,
    /// Package id (default: `<directory name>-<first 12 hex digits of the commit>`).
    pub id: Option<String>,
    /// Flake output attribute to build.
    pub attribute: String,
    /// Who approves the pull request (must differ from the commit's author).
    pub reviewer: String,
    /// Deployment context created for the package.
    pub context: String,
    /// Host the container is deployed to.
    pub host: String,
    /// How long to wait for the build's outcome.
    pub build_timeout: Duration,
}

/// What `HEAD` of a repository is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The repository's absolute path.
    pub repo: PathBuf,
    /// Full commit hash.
    pub hash: String,
    /// Branch name (`HEAD` when detached).
    pub branch: String,
    /// Author name.
    pub author: String,
    /// Subject line.
    pub subject: String,
}

fn git(repo: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Process::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .context("cannot run git (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "git {} in {}: {}",
            args.join(" "),
            repo.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Reads `HEAD` of the git repository at `repo`.
pub fn read_commit(repo: &Path) -> anyhow::Result<Commit> {
    let repo = repo
        .canonicalize()
        .with_context(|| format!("{} does not exist", repo.display()))?;
    let top = PathBuf::from(git(&repo, &["rev-parse", "--show-toplevel"])?);
    if top != repo {
        bail!(
            "{} is inside the repository {}; submit the repository's top directory",
            repo.display(),
            top.display()
        );
    }
    Ok(Commit {
        hash: git(&repo, &["rev-parse", "HEAD"])?,
        branch: git(&repo, &["rev-parse", "--abbrev-ref", "HEAD"])?,
        author: git(&repo, &["log", "-1", "--format=%an"])?,
        subject: git(&repo, &["log", "-1", "--format=%s"])?,
        repo,
    })
}

/// The flake reference of a commit: `git+file://<repo>?rev=<hash>` (immutable).
pub fn flake_ref(commit: &Commit) -> String {
    format!("git+file://{}?rev={}", commit.repo.display(), commit.hash)
}

/// The default package id of a commit: its directory name and the commit's first 12 digits,
/// reduced to the characters an entity id may hold.
pub fn default_id(commit: &Commit) -> String {
    let name: String = commit
        .repo
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repo".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(100)
        .collect();
    format!("{name}-{}", &commit.hash[..12.min(commit.hash.len())])
}

/// How long the driver waits for one command's answer before it sends it again (its id
/// makes that safe).
const ANSWER_DEADLINE: Duration = crate::call::FIRST_DEADLINE;
/// How long the driver tries one send in all before giving up.
const CALL_TOTAL: Duration = Duration::from_secs(60);
/// How many times the driver sends one command at a newer version after a conflict.
const SENDS: u32 = 4;

/// Sends commands to one package, each caused by the previous event, in one conversation.
struct Driver<'a> {
    nats: &'a async_nats::Client,
    store: &'a EventStore,
    lattice: &'a str,
    package: EntityRef,
    conversation: Option<String>,
    last: Option<String>,
}

impl Driver<'_> {
    /// Sends `command` at the package's current version, and survives a lost answer: the
    /// command is sent again with its id after [`ANSWER_DEADLINE`] ([`call_answered`]), and
    /// the package answers a command id it has seen with the events it caused, so nothing
    /// applies twice. A conflict means the pipeline system appended meanwhile (our command
    /// did not land, or its id would have been answered): send at the new version.
    async fn send(&mut self, command: &PackageCommand) -> anyhow::Result<Vec<RecordedEvent>> {
        let (name, payload) = EventCodec::encode(command)?;
        let json = String::from_utf8(payload)?;
        let mut cmd = command_for(
            "package",
            self.package.id.as_str(),
            name.as_str(),
            &json,
            None,
        );
        if let Some(conversation) = &self.conversation {
            cmd.meta.correlation_id = conversation.clone();
            cmd.meta.causation_id = self.last.clone();
        } else {
            self.conversation = Some(cmd.meta.correlation_id.clone());
        }
        let mut sends = 0;
        let events = loop {
            sends += 1;
            // The pipeline system appends too: send at the version the package is at now.
            let version = self
                .store
                .head(&self.package)
                .await?
                .map_or(0, |h| h.event.version);
            cmd.expected_version = Some(version);
            match call_answered(self.nats, self.lattice, &cmd, ANSWER_DEADLINE, CALL_TOTAL).await? {
                Ok(events) => break events,
                Err(cim_domain::EcsError::Conflict { .. }) if sends < SENDS => continue,
                Err(e) => bail!("{} {name}: {e}", self.package),
            }
        };
        for e in &events {
            print_event(e);
        }
        if let Some(last) = events.last() {
            self.last = Some(last.cid.to_string());
        }
        Ok(events)
    }
}

fn print_event(e: &RecordedEvent) {
    println!(
        "  v{:<2} {:<20} {}  {}",
        e.version,
        e.name,
        e.cid,
        String::from_utf8_lossy(&e.payload)
    );
}

/// How a build request ended, as recorded on the package.
enum Outcome {
    Published {
        store_path: String,
        package_cid: String,
        log_cid: Option<String>,
    },
    Failed {
        error: String,
        log_cid: Option<String>,
    },
}

/// Follows the package's stream after `from` until the pipeline recorded the outcome of
/// `attempt` (a failure, or a success followed by its publication).
async fn await_outcome(
    store: &EventStore,
    driver: &mut Driver<'_>,
    from: u64,
    attempt: u32,
    timeout: Duration,
) -> anyhow::Result<Outcome> {
    let deadline = Instant::now() + timeout;
    let mut next = from;
    let mut log: Option<String> = None;
    loop {
        for e in store.read(&driver.package, next, 64).await? {
            next = e.version + 1;
            print_event(&e);
            driver.last = Some(e.cid.to_string());
            match <cim_model::package::Package as cim_domain::Aggregate>::decode_event(
                e.name.as_str(),
                e.schema_version,
                &e.payload,
            )? {
                PackageEvent::BuildFailed {
                    attempt: a,
                    error,
                    log_cid,
                } if a == attempt => return Ok(Outcome::Failed { error, log_cid }),
                PackageEvent::BuildSucceeded {
                    attempt: a,
                    log_cid,
                    ..
                } if a == attempt => log = log_cid,
                PackageEvent::PackagePublished {
                    store_path,
                    package_cid,
                } => {
                    return Ok(Outcome::Published {
                        store_path,
                        package_cid,
                        log_cid: log,
                    })
                }
                _ => {}
            }
        }
        if Instant::now() > deadline {
            bail!(
                "no build outcome for {} after {}s (is the pipeline component linked to the build provider? see `cim status`)",
                driver.package,
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `cim pipeline submit`: drives `HEAD` of a repository from `CommitSubmitted` to
/// `ContainerDeployed` (or to `BuildFailed`, which is an error).
pub async fn submit(ctx: &Cli, s: &Submission) -> anyhow::Result<()> {
    let commit = read_commit(&s.repo)?;
    let id = match &s.id {
        Some(id) => id.clone(),
        None => default_id(&commit),
    };
    Token::parse("package id", &id)?;
    let package = EntityRef::new("package", &id)?;
    let nats = ctx.connect(crate::Role::Client).await?;
    let store = EventStore::attach(nats.clone()).await?;
    let mut driver = Driver {
        nats: &nats,
        store: &store,
        lattice: ctx.lattice(),
        package: package.clone(),
        conversation: None,
        last: None,
    };
    let flake = flake_ref(&commit);
    println!(
        "{package}: commit {} of {} ({})",
        commit.hash,
        commit.repo.display(),
        commit.branch
    );
    driver
        .send(&PackageCommand::SubmitCommit {
            repository: format!("file://{}", commit.repo.display()),
            commit: commit.hash.clone(),
            branch: commit.branch.clone(),
            author: commit.author.clone(),
        })
        .await?;
    driver
        .send(&PackageCommand::OpenPullRequest {
            number: 1,
            title: commit.subject.clone(),
        })
        .await?;
    driver
        .send(&PackageCommand::ApprovePullRequest {
            reviewer: s.reviewer.clone(),
        })
        .await?;
    let requested = driver
        .send(&PackageCommand::RequestBuild {
            flake_ref: flake.clone(),
            attribute: s.attribute.clone(),
        })
        .await?;
    let request = requested
        .last()
        .context("the package recorded no BuildRequested")?;
    let attempt = match <cim_model::package::Package as cim_domain::Aggregate>::decode_event(
        request.name.as_str(),
        request.schema_version,
        &request.payload,
    )? {
        PackageEvent::BuildRequested { attempt, .. } => attempt,
        other => bail!("expected BuildRequested, the package recorded {other:?}"),
    };
    println!("  … the pipeline builds {flake}#{}", s.attribute);
    let outcome = await_outcome(
        &store,
        &mut driver,
        request.version + 1,
        attempt,
        s.build_timeout,
    )
    .await?;
    let (store_path, package_cid, log_cid) = match outcome {
        Outcome::Failed { error, log_cid } => bail!(
            "{package}: the build failed: {error}{}",
            log_cid
                .map(|c| format!(" (log: cim object get {c})"))
                .unwrap_or_default()
        ),
        Outcome::Published {
            store_path,
            package_cid,
            log_cid,
        } => (store_path, package_cid, log_cid),
    };
    let name = commit
        .repo
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| id.clone());
    driver
        .send(&PackageCommand::ConfigurePackage {
            name: name.clone(),
            version: format!("0.0.0+{}", commit.hash.get(..12).unwrap_or(&commit.hash)),
        })
        .await?;
    driver
        .send(&PackageCommand::CreateContext {
            context: s.context.clone(),
        })
        .await?;
    driver
        .send(&PackageCommand::AddConfiguration {
            key: "store-path".into(),
            value: store_path.clone(),
        })
        .await?;
    driver
        .send(&PackageCommand::DeployContainer {
            host: s.host.clone(),
            container: name,
        })
        .await?;
    println!(
        "{package}: deployed to {} ({})\n  store path {store_path}\n  NAR        {package_cid}{}",
        s.host,
        s.context,
        log_cid
            .map(|c| format!("\n  build log  {c}"))
            .unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_and_ids_come_from_the_commit() {
        let c = Commit {
            repo: PathBuf::from("/srv/repos/hello world"),
            hash: "0123456789abcdef0123456789abcdef01234567".into(),
            branch: "main".into(),
            author: "ada".into(),
            subject: "first".into(),
        };
        assert_eq!(
            flake_ref(&c),
            "git+file:///srv/repos/hello world?rev=0123456789abcdef0123456789abcdef01234567"
        );
        assert_eq!(default_id(&c), "hello-world-0123456789ab");
        Token::parse("id", &default_id(&c)).unwrap();
    }

    #[test]
    fn a_directory_that_is_not_a_repository_is_an_error() {
        let dir = std::env::temp_dir();
        let err = read_commit(&dir.join("cim-no-such-dir-for-sure")).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
