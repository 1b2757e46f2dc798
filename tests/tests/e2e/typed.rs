//! The entities' typed interfaces (`cim:document/commands`, `cim:package/commands`) called on
//! the lattice by wRPC clients generated from the WIT files alone, as a caller in any language
//! would generate them: no CIM crate builds the commands.

use std::time::{Duration, Instant};

use cim_domain::EntityRef;

use crate::Shared;

mod document_client {
    wit_bindgen_wrpc::generate!({
        world: "cim:document/document-client",
        path: ["../wit", "../wit/entities/document"],
        generate_all,
    });
}

mod package_client {
    wit_bindgen_wrpc::generate!({
        world: "cim:%package/package-client",
        path: ["../wit", "../wit/entities/package"],
        generate_all,
    });
}

use document_client::cim::document::commands as document;
use document_client::cim::document::types as doc;
use document_client::cim::ecs::types::{EcsError, Envelope, Event};

fn meta(id: &str) -> Envelope {
    Envelope {
        id: id.into(),
        correlation_id: id.into(),
        causation_id: None,
        occurred_at_ms: 1_000,
    }
}

/// Sends a typed call (safe to repeat: the same `meta.id`) again after 2 s without an answer,
/// as `cim call` does, for at most 90 s.
async fn answered<T, E, F, Fut>(what: &str, send: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Result<T, E>>>,
{
    cim::resend_until_answered(
        what,
        Duration::from_secs(2),
        Duration::from_secs(8),
        Duration::from_secs(90),
        send,
    )
    .await
    .unwrap_or_else(|e| panic!("{what}: {e:#}"))
}

fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

pub fn a_document_and_a_package_answer_typed_calls_from_a_client_generated_from_their_wit(
    s: &Shared,
) -> futures::future::LocalBoxFuture<'_, ()> {
    Box::pin(async move {
        let (nats, l) = (&s.nats, &s.l);
        let docs = cim_wrpc::nats::Client::new(nats.clone(), format!("{l}.cim-document"));
        let id = "typed-doc-1";
        let create = doc::Create {
            title: "Typed invoice".into(),
            content_cid: crate::CONTENT.into(),
            media_type: "application/pdf".into(),
            categories: vec!["invoice".into(), "contract".into()],
        };
        let (m1, m2, m3, m4) = (
            meta("typed-1"),
            meta("typed-2"),
            meta("typed-3"),
            meta("typed-4"),
        );
        let tag = doc::Tag {
            tag: "typed".into(),
        };
        let bad_tag = doc::Tag {
            tag: "Not A Label".into(),
        };
        let archive = doc::Archive {
            reason: "paid".into(),
        };
        let created = answered("typed create", || {
            document::create(&docs, None, id, &create, &m1, None)
        })
        .await;
        let created = created.expect("create accepted");
        assert_eq!(names(&created), ["DocumentCreated"]);

        let tagged = answered("typed tag", || {
            document::tag(&docs, None, id, &tag, &m2, Some(1))
        })
        .await
        .expect("tag accepted");
        assert_eq!(names(&tagged), ["DocumentTagged"]);
        assert_eq!(tagged[0].version, 2);
        assert_eq!(tagged[0].previous.as_deref(), Some(created[0].cid.as_str()));

        // The same command id again: answered with the same event, nothing appended.
        let again = answered("typed tag again", || {
            document::tag(&docs, None, id, &tag, &m2, Some(1))
        })
        .await
        .expect("a resend is answered");
        assert_eq!(again[0].cid, tagged[0].cid);

        // The rules refuse a bad tag through the typed call as through `handle`.
        let refused = answered("typed bad tag", || {
            document::tag(&docs, None, id, &bad_tag, &m3, None)
        })
        .await;
        assert!(
            matches!(&refused, Err(EcsError::Invalid(m) | EcsError::Rejected(m)) if m.contains("tag")),
            "{refused:?}"
        );

        // A stale expected version is a conflict.
        let stale = answered("typed stale archive", || {
            document::archive(&docs, None, id, &archive, &m4, Some(1))
        })
        .await;
        assert!(matches!(stale, Err(EcsError::Conflict(_))), "{stale:?}");

        let stored = cim::read_events(nats.clone(), &EntityRef::new("document", id).unwrap())
            .await
            .expect("events read and chain verified");
        let stored: Vec<&str> = stored.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            stored,
            ["DocumentCreated", "DocumentTagged"],
            "nothing else stored"
        );

        // The package's typed interface, generated from its own WIT.
        let packages = cim_wrpc::nats::Client::new(nats.clone(), format!("{l}.cim-package"));
        let submit = package_client::cim::package::types::SubmitCommit {
            repository: "https://example.org/typed.git".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            branch: "main".into(),
            author: "ada".into(),
        };
        let pmeta = package_client::cim::ecs::types::Envelope {
            id: "typed-pkg-1".into(),
            correlation_id: "typed-pkg-1".into(),
            causation_id: None,
            occurred_at_ms: 1_000,
        };
        let submitted = answered("typed submit-commit", || {
            package_client::cim::package::commands::submit_commit(
                &packages,
                None,
                "typed-pkg-1",
                &submit,
                &pmeta,
                None,
            )
        })
        .await
        .expect("submit accepted");
        assert_eq!(submitted.len(), 1);
        assert_eq!(submitted[0].name, "CommitSubmitted");
        let payload: serde_json::Value = serde_json::from_slice(&submitted[0].payload).unwrap();
        assert_eq!(payload["author"], "ada");
    })
}

/// Runs `cim <args>` as a user does: success, stdout, stderr.
async fn cim(lattice: &cim_tests::lattice::TestLattice, args: &[&str]) -> (bool, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        lattice.cim_command().unwrap().args(args).output(),
    )
    .await
    .expect("cim answered within 120 s")
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn cim_describe_and_typed_flags_drive_the_entities_and_wrong_flags_store_nothing(
    s: &Shared,
) -> futures::future::LocalBoxFuture<'_, ()> {
    Box::pin(async move {
        let (lattice, nats) = (&s.lattice, &s.nats);
        let (ok, described, err) = cim(lattice, &["describe", "document"]).await;
        assert!(ok, "{err}");
        for name in [
            "create",
            "attach-text",
            "classify",
            "record-classification-failure",
            "tag",
            "archive",
            "document-created",
            "text-attached",
            "document-classified",
            "classification-failed",
            "document-tagged",
            "document-archived",
        ] {
            assert!(
                described.contains(&format!("\n  {name} (")),
                "{name} in:\n{described}"
            );
        }
        assert!(described.contains("--confidence: f64"), "{described}");
        assert!(described.contains("Confidence in `[0, 1]`."), "{described}");
        let (ok, described, err) = cim(lattice, &["describe", "package"]).await;
        assert!(
            ok && described.contains("open-pull-request (OpenPullRequest)"),
            "{described}{err}"
        );
        assert!(described.contains("--number: u64"), "{described}");

        let (ok, help, err) = cim(lattice, &["call", "document", "--help"]).await;
        assert!(
            ok && help.contains("attach-text") && help.contains("Archives the document"),
            "{help}{err}"
        );
        let (ok, help, err) = cim(lattice, &["call", "document", "classify", "--help"]).await;
        assert!(
            ok && help.contains("--confidence <f64>") && help.contains("Confidence in"),
            "{help}{err}"
        );

        // Wrong flags: each refused naming the field and its type, before anything is sent.
        let id = "typed-cli-bad";
        for (args, reason) in [
            (
                vec!["tag", "--id", id, "--tga", "x"],
                "has no field `--tga`",
            ),
            (vec!["tag", "--id", id], "needs `--tag` (string)"),
            (
                vec![
                    "classify",
                    "--id",
                    id,
                    "--category",
                    "invoice",
                    "--confidence",
                    "high",
                    "--classified-by",
                    "me",
                ],
                "`--confidence high`: expected f64",
            ),
            (vec!["launch", "--id", id], "has no command `launch`"),
            (
                vec!["tag", "--id", id, "--tag", "a", "--json", "{}"],
                "not both",
            ),
        ] {
            let mut full = vec!["call", "document"];
            full.extend(args.iter().copied());
            let (ok, out, err) = cim(lattice, &full).await;
            assert!(!ok, "{full:?} succeeded: {out}");
            assert!(err.contains(reason), "{full:?}: {err}");
        }
        let (ok, _, err) = cim(
            lattice,
            &[
                "call",
                "package",
                "open-pull-request",
                "--id",
                id,
                "--number",
                "-3",
                "--title",
                "t",
            ],
        )
        .await;
        assert!(!ok && err.contains("`--number -3`: expected u64"), "{err}");
        for kind in ["document", "package"] {
            let stored = cim::read_events(nats.clone(), &EntityRef::new(kind, id).unwrap())
                .await
                .expect("read");
            assert!(stored.is_empty(), "{kind}/{id}: {stored:?}");
        }

        // The document's lifecycle, each command built from its flags.
        let id = "typed-cli-1";
        for (args, event) in [
            (
                vec![
                    "create",
                    "--title",
                    "Typed from the shell",
                    "--content-cid",
                    crate::CONTENT,
                    "--media-type",
                    "application/pdf",
                    "--categories",
                    "invoice",
                    "--categories",
                    "contract",
                ],
                "DocumentCreated",
            ),
            (
                vec!["attach-text", "--text", "Invoice 7: please pay 7 EUR"],
                "TextAttached",
            ),
        ] {
            let mut full = vec!["call", "document"];
            full.push(args[0]);
            full.extend(["--id", id]);
            full.extend(args[1..].iter().copied());
            let (ok, out, err) = cim(lattice, &full).await;
            assert!(ok && out.contains(event), "{full:?}: {out}{err}");
        }
        // The agent classifies it (through the document's typed interface); then a person
        // records a failure and re-classifies by hand, tags and archives it.
        let (_, classified) = crate::agent::outcome(lattice, id).await;
        let by_hand = if classified.name.as_str() == "DocumentClassified"
            && serde_json::from_slice::<serde_json::Value>(&classified.payload).unwrap()["category"]
                == "contract"
        {
            "invoice"
        } else {
            "contract"
        };
        for (args, event) in [
            (
                vec![
                    "record-classification-failure",
                    "--reason",
                    "checked by hand",
                    "--model",
                    "cim-scripted-chat",
                ],
                "ClassificationFailed",
            ),
            (
                vec![
                    "classify",
                    "--category",
                    by_hand,
                    "--confidence",
                    "1",
                    "--classified-by",
                    "operator",
                ],
                "DocumentClassified",
            ),
            (vec!["tag", "--tag", "typed"], "DocumentTagged"),
            (vec!["archive", "--reason", "done"], "DocumentArchived"),
        ] {
            let mut full = vec!["call", "document", args[0], "--id", id];
            full.extend(args[1..].iter().copied());
            let (ok, out, err) = cim(lattice, &full).await;
            assert!(ok && out.contains(event), "{full:?}: {out}{err}");
        }
        let stored = cim::read_events(nats.clone(), &EntityRef::new("document", id).unwrap())
            .await
            .expect("read");
        let created: serde_json::Value = serde_json::from_slice(&stored[0].payload).unwrap();
        assert_eq!(
            created["categories"],
            serde_json::json!(["invoice", "contract"])
        );
        let by_person: serde_json::Value =
            serde_json::from_slice(&stored[stored.len() - 3].payload).unwrap();
        assert_eq!(by_person["classified_by"], "operator");
        assert!(
            by_person.get("model").is_none(),
            "an absent option is left out: {by_person}"
        );
        assert_eq!(stored.last().unwrap().name.as_str(), "DocumentArchived");

        // The package's whole lifecycle, likewise: the build in the middle is the pipeline's
        // (a real Nix build of a throwaway git repository it may build).
        let repo = lattice.cli.state_dir().join("repos/typed");
        let commit = cim_tests::lattice::git_flake_repo(&repo, "hello").unwrap();
        let repository = repo.display().to_string();
        let flake = format!("git+file://{}?rev={commit}", repo.display());
        let id = "typed-cli-pkg";
        for (args, event) in [
            (
                vec![
                    "submit-commit",
                    "--repository",
                    &repository,
                    "--commit",
                    &commit,
                    "--branch",
                    "main",
                    "--author",
                    "ada",
                ],
                "CommitSubmitted",
            ),
            (
                vec!["open-pull-request", "--number", "7", "--title", "Typed"],
                "PullRequestOpened",
            ),
            (
                vec!["approve-pull-request", "--reviewer", "ada"],
                "the author cannot approve",
            ),
            (
                vec!["approve-pull-request", "--reviewer", "grace"],
                "PullRequestApproved",
            ),
            (
                vec![
                    "request-build",
                    "--flake-ref",
                    &flake,
                    "--attribute",
                    "packages.x86_64-linux.default",
                ],
                "BuildRequested",
            ),
        ] {
            let mut full = vec!["call", "package", args[0], "--id", id];
            full.extend(args[1..].iter().copied());
            let (ok, out, err) = cim(lattice, &full).await;
            let text = format!("{out}{err}");
            assert!(text.contains(event), "{full:?}: {text}");
            assert_eq!(ok, !event.contains(' '), "{full:?}: {text}");
        }
        let published = Instant::now() + Duration::from_secs(300);
        loop {
            let stored = cim::read_events(nats.clone(), &EntityRef::new("package", id).unwrap())
                .await
                .expect("read");
            if stored.iter().any(|e| e.name.as_str() == "PackagePublished") {
                break;
            }
            assert!(
                Instant::now() < published,
                "the pipeline published nothing within 300 s: {:?}",
                stored.iter().map(|e| e.name.as_str()).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for (args, event) in [
            (
                vec!["configure-package", "--name", "typed", "--version", "0.1.0"],
                "PackageConfigured",
            ),
            (
                vec!["create-context", "--context", "production"],
                "ContextCreated",
            ),
            (
                vec![
                    "deploy-container",
                    "--host",
                    "host-y",
                    "--container",
                    "typed",
                ],
                "no deployment without configuration",
            ),
            (
                vec!["add-configuration", "--key", "replicas", "--value", "1"],
                "ConfigurationAdded",
            ),
            (
                vec![
                    "deploy-container",
                    "--host",
                    "host-y",
                    "--container",
                    "typed",
                ],
                "ContainerDeployed",
            ),
        ] {
            let mut full = vec!["call", "package", args[0], "--id", id];
            full.extend(args[1..].iter().copied());
            let (ok, out, err) = cim(lattice, &full).await;
            let text = format!("{out}{err}");
            assert!(text.contains(event), "{full:?}: {text}");
            assert_eq!(ok, !event.contains(' '), "{full:?}: {text}");
        }
        let stored = cim::read_events(nats.clone(), &EntityRef::new("package", id).unwrap())
            .await
            .expect("read");
        let names: Vec<&str> = stored.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "CommitSubmitted",
                "PullRequestOpened",
                "PullRequestApproved",
                "BuildRequested",
                "BuildSucceeded",
                "PackagePublished",
                "PackageConfigured",
                "ContextCreated",
                "ConfigurationAdded",
                "ContainerDeployed",
            ]
        );
    })
}
