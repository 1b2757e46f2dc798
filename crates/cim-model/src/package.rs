//! The package entity (seed 002, commit to deployment).
//!
//! A package follows one commit through review, a Nix build, publication, configuration and
//! deployment:
//!
//! ```text
//! CommitSubmitted → PullRequestOpened → PullRequestApproved → BuildRequested
//!   → BuildSucceeded | BuildFailed (→ BuildRequested again)
//!   → PackagePublished → PackageConfigured → ContextCreated → ConfigurationAdded…
//!   → ContainerDeployed…
//! ```
//!
//! Invariants a real pipeline has: the author cannot approve their own pull request; a build
//! needs an approved pull request; only a store path produced by the successful build can be
//! published; nothing is deployed without a context and at least one configuration entry.

use std::collections::BTreeSet;

use cim_domain::Aggregate;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::rules::{cid, ensure, label, text};

/// The types of `cim:package/types`, generated from `wit/entities/package/package.wit`:
/// [`PackageCommand`], [`PackageEvent`] and [`Phase`] (ADR 0012).
mod language {
    include!(concat!(env!("OUT_DIR"), "/package.rs"));
}
pub use language::*;

impl Default for Phase {
    /// A package starts with nothing submitted.
    fn default() -> Self {
        Phase::New
    }
}

/// Why a package refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PackageError {
    /// The command does not fit the pipeline phase.
    #[error("{command} is not allowed while the package is {phase:?}")]
    WrongPhase {
        /// The command refused.
        command: &'static str,
        /// The current phase.
        phase: Phase,
    },
    /// A rule about the command's content.
    #[error("{0}")]
    Rule(String),
}

impl From<String> for PackageError {
    fn from(s: String) -> Self {
        PackageError::Rule(s)
    }
}

/// The state of a package, folded from its events.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    phase: Phase,
    author: String,
    attempts: u32,
    out_paths: Vec<String>,
    configuration: usize,
    deployed_on: BTreeSet<String>,
}

impl Package {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    fn require(&self, command: &'static str, allowed: &[Phase]) -> Result<(), PackageError> {
        if allowed.contains(&self.phase) {
            Ok(())
        } else {
            Err(PackageError::WrongPhase {
                command,
                phase: self.phase,
            })
        }
    }
}

fn is_hex_commit(c: &str) -> bool {
    (c.len() == 40 || c.len() == 64)
        && c.chars()
            .all(|ch| ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase())
}

fn is_attribute(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= 200
        && a.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

impl Aggregate for Package {
    const KIND: &'static str = "package";
    type Command = PackageCommand;
    type Event = PackageEvent;
    type Error = PackageError;

    /// `BuildSucceeded` and `BuildFailed` stored before builds were counted have no
    /// `attempt`: they conclude attempt 0.
    fn upcast(name: &str, _schema_version: u32, payload: &[u8]) -> Option<Vec<u8>> {
        if !matches!(name, "BuildSucceeded" | "BuildFailed") {
            return None;
        }
        // Read as strictly as any payload (a key given twice is refused, not upcast):
        // decoding as a `Value` yields the tagged form, `{name: fields}`.
        let tagged = cim_domain::EventCodec::decode::<serde_json::Value>(name, payload).ok()?;
        let Some(serde_json::Value::Object(mut fields)) = tagged.get(name).cloned() else {
            return None;
        };
        if fields.contains_key("attempt") {
            return None;
        }
        fields.insert("attempt".into(), 0.into());
        serde_json::to_vec(&fields).ok()
    }

    fn decide(&self, cmd: &PackageCommand) -> Result<Vec<PackageEvent>, PackageError> {
        use PackageCommand as C;
        use PackageEvent as E;
        use Phase as P;
        let event = match cmd {
            C::SubmitCommit {
                repository,
                commit,
                branch,
                author,
            } => {
                self.require("SubmitCommit", &[P::New])?;
                text("repository", repository, 500)?;
                ensure(
                    is_hex_commit(commit),
                    format!("commit {commit:?} is not a full lower-case hex hash"),
                )?;
                text("branch", branch, 200)?;
                text("author", author, 200)?;
                E::CommitSubmitted {
                    repository: repository.clone(),
                    commit: commit.clone(),
                    branch: branch.clone(),
                    author: author.clone(),
                }
            }
            C::OpenPullRequest { number, title } => {
                self.require("OpenPullRequest", &[P::Submitted])?;
                ensure(*number > 0, "pull request number must be positive")?;
                text("title", title, 200)?;
                E::PullRequestOpened {
                    number: *number,
                    title: title.clone(),
                }
            }
            C::ApprovePullRequest { reviewer } => {
                self.require("ApprovePullRequest", &[P::InReview])?;
                text("reviewer", reviewer, 200)?;
                ensure(
                    *reviewer != self.author,
                    "the author cannot approve their own pull request",
                )?;
                E::PullRequestApproved {
                    reviewer: reviewer.clone(),
                }
            }
            C::RequestBuild {
                flake_ref,
                attribute,
            } => {
                self.require("RequestBuild", &[P::Approved, P::BuildFailed])?;
                text("flake_ref", flake_ref, 500)?;
                ensure(
                    !flake_ref.chars().any(char::is_whitespace) && !flake_ref.starts_with('-'),
                    "flake_ref must not contain whitespace or start with '-'",
                )?;
                ensure(
                    is_attribute(attribute),
                    format!("attribute {attribute:?} is not a dotted attribute path"),
                )?;
                E::BuildRequested {
                    flake_ref: flake_ref.clone(),
                    attribute: attribute.clone(),
                    attempt: self.attempts + 1,
                }
            }
            C::RecordBuildSuccess {
                out_paths,
                nar_hash,
                log_cid,
            } => {
                self.require("RecordBuildSuccess", &[P::Building])?;
                ensure(!out_paths.is_empty(), "a successful build has out_paths")?;
                for p in out_paths {
                    ensure(
                        p.starts_with("/nix/store/") && p.len() > "/nix/store/".len(),
                        format!("{p:?} is not a Nix store path"),
                    )?;
                }
                ensure(
                    nar_hash.starts_with("sha256"),
                    "nar_hash must be a sha256 hash",
                )?;
                if let Some(c) = log_cid {
                    cid("log_cid", c)?;
                }
                E::BuildSucceeded {
                    attempt: self.attempts,
                    out_paths: out_paths.clone(),
                    nar_hash: nar_hash.clone(),
                    log_cid: log_cid.clone(),
                }
            }
            C::RecordBuildFailure { error, log_cid } => {
                self.require("RecordBuildFailure", &[P::Building])?;
                text("error", error, 4000)?;
                if let Some(c) = log_cid {
                    cid("log_cid", c)?;
                }
                E::BuildFailed {
                    attempt: self.attempts,
                    error: error.clone(),
                    log_cid: log_cid.clone(),
                }
            }
            C::PublishPackage {
                store_path,
                package_cid,
            } => {
                self.require("PublishPackage", &[P::Built])?;
                ensure(
                    self.out_paths.contains(store_path),
                    format!("{store_path:?} was not produced by the successful build"),
                )?;
                cid("package_cid", package_cid)?;
                E::PackagePublished {
                    store_path: store_path.clone(),
                    package_cid: package_cid.clone(),
                }
            }
            C::ConfigurePackage { name, version } => {
                self.require("ConfigurePackage", &[P::Published])?;
                label("name", name)?;
                text("version", version, 64)?;
                E::PackageConfigured {
                    name: name.clone(),
                    version: version.clone(),
                }
            }
            C::CreateContext { context } => {
                self.require("CreateContext", &[P::Configured])?;
                label("context", context)?;
                E::ContextCreated {
                    context: context.clone(),
                }
            }
            C::AddConfiguration { key, value } => {
                self.require("AddConfiguration", &[P::InContext])?;
                label("key", key)?;
                text("value", value, 4000)?;
                E::ConfigurationAdded {
                    key: key.clone(),
                    value: value.clone(),
                }
            }
            C::DeployContainer { host, container } => {
                self.require("DeployContainer", &[P::InContext])?;
                ensure(
                    self.configuration > 0,
                    "no deployment without configuration; send AddConfiguration first",
                )?;
                label("host", host)?;
                label("container", container)?;
                ensure(
                    !self.deployed_on.contains(host),
                    format!("already deployed on {host}"),
                )?;
                E::ContainerDeployed {
                    host: host.clone(),
                    container: container.clone(),
                }
            }
        };
        Ok(vec![event])
    }

    fn apply(&mut self, ev: &PackageEvent) {
        use PackageEvent as E;
        match ev {
            E::CommitSubmitted { author, .. } => {
                self.phase = Phase::Submitted;
                self.author = author.clone();
            }
            E::PullRequestOpened { .. } => self.phase = Phase::InReview,
            E::PullRequestApproved { .. } => self.phase = Phase::Approved,
            E::BuildRequested { attempt, .. } => {
                self.phase = Phase::Building;
                self.attempts = *attempt;
            }
            E::BuildSucceeded { out_paths, .. } => {
                self.phase = Phase::Built;
                self.out_paths = out_paths.clone();
            }
            E::BuildFailed { .. } => self.phase = Phase::BuildFailed,
            E::PackagePublished { .. } => self.phase = Phase::Published,
            E::PackageConfigured { .. } => self.phase = Phase::Configured,
            E::ContextCreated { .. } => self.phase = Phase::InContext,
            E::ConfigurationAdded { .. } => self.configuration += 1,
            E::ContainerDeployed { host, .. } => {
                self.deployed_on.insert(host.clone());
            }
        }
    }
}

/// A complete commit → deployment command sequence for the example package `hello` (the
/// seed 002 story), for demos, examples and tests: `out` is the built store path, `package_cid`
/// the published package's CID, `host` where it is deployed. With `failed_build_first`, the
/// first build fails and is retried (attempt 2 succeeds).
pub fn example_pipeline(
    out: &str,
    package_cid: &str,
    host: &str,
    failed_build_first: bool,
) -> Vec<(&'static str, String)> {
    let build = (
        "RequestBuild",
        r#"{"flake_ref":"path:/src/hello","attribute":"default"}"#.to_string(),
    );
    let mut steps = vec![
        (
            "SubmitCommit",
            r#"{"repository":"file:///src/hello","commit":"0123456789abcdef0123456789abcdef01234567","branch":"main","author":"ada"}"#.to_string(),
        ),
        ("OpenPullRequest", r#"{"number":1,"title":"hello"}"#.to_string()),
        ("ApprovePullRequest", r#"{"reviewer":"grace"}"#.to_string()),
        build.clone(),
    ];
    if failed_build_first {
        steps.push((
            "RecordBuildFailure",
            r#"{"error":"boom","log_cid":null}"#.to_string(),
        ));
        steps.push(build);
    }
    steps.extend([
        (
            "RecordBuildSuccess",
            format!(r#"{{"out_paths":["{out}"],"nar_hash":"sha256-x","log_cid":null}}"#),
        ),
        (
            "PublishPackage",
            format!(r#"{{"store_path":"{out}","package_cid":"{package_cid}"}}"#),
        ),
        (
            "ConfigurePackage",
            r#"{"name":"hello","version":"1.0.0"}"#.to_string(),
        ),
        ("CreateContext", r#"{"context":"production"}"#.to_string()),
        (
            "AddConfiguration",
            r#"{"key":"port","value":"8080"}"#.to_string(),
        ),
        (
            "DeployContainer",
            format!(r#"{{"host":"{host}","container":"hello"}}"#),
        ),
    ]);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use cim_domain::event::object_cid;
    use cim_domain::testing::given;
    use PackageCommand as C;
    use PackageEvent as E;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
    const OUT: &str = "/nix/store/0c3l1r9ga2xj3y8ds7h7bbx5mv0mr8ls-hello-1.0";

    fn history_until(phase: Phase) -> Vec<E> {
        let all = vec![
            (
                Phase::Submitted,
                E::CommitSubmitted {
                    repository: "file:///src/hello".into(),
                    commit: COMMIT.into(),
                    branch: "main".into(),
                    author: "ada".into(),
                },
            ),
            (
                Phase::InReview,
                E::PullRequestOpened {
                    number: 7,
                    title: "hello".into(),
                },
            ),
            (
                Phase::Approved,
                E::PullRequestApproved {
                    reviewer: "grace".into(),
                },
            ),
            (
                Phase::Building,
                E::BuildRequested {
                    flake_ref: "path:/src/hello".into(),
                    attribute: "packages.x86_64-linux.default".into(),
                    attempt: 1,
                },
            ),
            (
                Phase::Built,
                E::BuildSucceeded {
                    attempt: 1,
                    out_paths: vec![OUT.into()],
                    nar_hash: "sha256-abc".into(),
                    log_cid: None,
                },
            ),
            (
                Phase::Published,
                E::PackagePublished {
                    store_path: OUT.into(),
                    package_cid: object_cid(b"nar").to_string(),
                },
            ),
            (
                Phase::Configured,
                E::PackageConfigured {
                    name: "hello".into(),
                    version: "1.0".into(),
                },
            ),
            (
                Phase::InContext,
                E::ContextCreated {
                    context: "production".into(),
                },
            ),
        ];
        let mut out = Vec::new();
        for (p, e) in all {
            out.push(e);
            if p == phase {
                return out;
            }
        }
        out
    }

    #[test]
    fn happy_path_to_deployment() {
        let mut history: Vec<E> = Vec::new();
        let steps: Vec<(C, E)> = vec![
            (
                C::SubmitCommit {
                    repository: "file:///src/hello".into(),
                    commit: COMMIT.into(),
                    branch: "main".into(),
                    author: "ada".into(),
                },
                history_until(Phase::Submitted)[0].clone(),
            ),
            (
                C::OpenPullRequest {
                    number: 7,
                    title: "hello".into(),
                },
                history_until(Phase::InReview)[1].clone(),
            ),
            (
                C::ApprovePullRequest {
                    reviewer: "grace".into(),
                },
                history_until(Phase::Approved)[2].clone(),
            ),
            (
                C::RequestBuild {
                    flake_ref: "path:/src/hello".into(),
                    attribute: "packages.x86_64-linux.default".into(),
                },
                history_until(Phase::Building)[3].clone(),
            ),
            (
                C::RecordBuildSuccess {
                    out_paths: vec![OUT.into()],
                    nar_hash: "sha256-abc".into(),
                    log_cid: None,
                },
                history_until(Phase::Built)[4].clone(),
            ),
            (
                C::PublishPackage {
                    store_path: OUT.into(),
                    package_cid: object_cid(b"nar").to_string(),
                },
                history_until(Phase::Published)[5].clone(),
            ),
            (
                C::ConfigurePackage {
                    name: "hello".into(),
                    version: "1.0".into(),
                },
                history_until(Phase::Configured)[6].clone(),
            ),
            (
                C::CreateContext {
                    context: "production".into(),
                },
                history_until(Phase::InContext)[7].clone(),
            ),
            (
                C::AddConfiguration {
                    key: "port".into(),
                    value: "8080".into(),
                },
                E::ConfigurationAdded {
                    key: "port".into(),
                    value: "8080".into(),
                },
            ),
            (
                C::DeployContainer {
                    host: "host-x".into(),
                    container: "hello".into(),
                },
                E::ContainerDeployed {
                    host: "host-x".into(),
                    container: "hello".into(),
                },
            ),
        ];
        for (cmd, expected) in steps {
            given::<Package>(history.clone())
                .when(cmd)
                .then([expected.clone()]);
            history.push(expected);
        }
        assert_eq!(Package::fold(&history).phase(), Phase::InContext);
    }

    #[test]
    fn no_publish_without_a_successful_build() {
        let publish = || C::PublishPackage {
            store_path: OUT.into(),
            package_cid: object_cid(b"nar").to_string(),
        };
        given::<Package>(history_until(Phase::Building))
            .when(publish())
            .then_err("not allowed");
        let mut failed = history_until(Phase::Building);
        failed.push(E::BuildFailed {
            attempt: 1,
            error: "boom".into(),
            log_cid: None,
        });
        given::<Package>(failed.clone())
            .when(publish())
            .then_err("not allowed");
        given::<Package>(history_until(Phase::Built))
            .when(C::PublishPackage {
                store_path: "/nix/store/other".into(),
                package_cid: object_cid(b"n").to_string(),
            })
            .then_err("not produced by the successful build");
        // A failed build may be retried: attempt 2.
        given::<Package>(failed)
            .when(C::RequestBuild {
                flake_ref: "path:/src/hello".into(),
                attribute: "packages.x86_64-linux.default".into(),
            })
            .then([E::BuildRequested {
                flake_ref: "path:/src/hello".into(),
                attribute: "packages.x86_64-linux.default".into(),
                attempt: 2,
            }]);
    }

    #[test]
    fn no_deploy_without_configuration() {
        let deploy = || C::DeployContainer {
            host: "host-x".into(),
            container: "hello".into(),
        };
        given::<Package>(history_until(Phase::Configured))
            .when(deploy())
            .then_err("not allowed");
        given::<Package>(history_until(Phase::InContext))
            .when(deploy())
            .then_err("without configuration");
        let mut h = history_until(Phase::InContext);
        h.push(E::ConfigurationAdded {
            key: "port".into(),
            value: "80".into(),
        });
        h.push(E::ContainerDeployed {
            host: "host-x".into(),
            container: "hello".into(),
        });
        given::<Package>(h)
            .when(deploy())
            .then_err("already deployed");
    }

    #[test]
    fn review_and_input_rules() {
        given::<Package>(history_until(Phase::InReview))
            .when(C::ApprovePullRequest {
                reviewer: "ada".into(),
            })
            .then_err("own pull request");
        given::<Package>(history_until(Phase::Submitted))
            .when(C::RequestBuild {
                flake_ref: "path:/x".into(),
                attribute: "default".into(),
            })
            .then_err("not allowed");
        given::<Package>(history_until(Phase::Approved))
            .when(C::RequestBuild {
                flake_ref: "path:/x --option sandbox false".into(),
                attribute: "default".into(),
            })
            .then_err("whitespace");
        given::<Package>(history_until(Phase::Approved))
            .when(C::RequestBuild {
                flake_ref: "path:/x".into(),
                attribute: "a..b".into(),
            })
            .then_err("attribute");
        given::<Package>([])
            .when(C::SubmitCommit {
                repository: "r".into(),
                commit: "HEAD".into(),
                branch: "main".into(),
                author: "ada".into(),
            })
            .then_err("hex");
        given::<Package>(history_until(Phase::Building))
            .when(C::RecordBuildSuccess {
                out_paths: vec!["/tmp/x".into()],
                nar_hash: "sha256-x".into(),
                log_cid: None,
            })
            .then_err("not a Nix store path");
    }
}
