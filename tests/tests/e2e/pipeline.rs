//! The package pipeline end to end: `cim pipeline submit` (the binary users run) on throwaway
//! git repositories, the pipeline component and the nix-build provider on the lattice, real
//! Nix builds in between; every step an event of a verified chain, visible in the graph.

use std::time::{Duration, Instant};

use cim_domain::{EntityRef, EventCodec, RecordedEvent};
use cim_model::package::PackageEvent;
use cim_tests::lattice::{git_flake_repo, TestLattice};

async fn events(lattice: &TestLattice, id: &str) -> Vec<RecordedEvent> {
    let nats = lattice.nats().await.unwrap();
    cim::read_events(nats, &EntityRef::new("package", id).unwrap())
        .await
        .expect("package events read and chain verified")
}

fn names(events: &[RecordedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

fn decode(e: &RecordedEvent) -> PackageEvent {
    EventCodec::decode(e.name.as_str(), &e.payload).unwrap()
}

/// Runs `cim pipeline submit <repo> --id <id> --host host-x`; returns success, stdout, stderr.
async fn submit(lattice: &TestLattice, repo: &std::path::Path, id: &str) -> (bool, String, String) {
    let out = lattice
        .cim_command()
        .unwrap()
        .args(["pipeline", "submit"])
        .arg(repo)
        .args([
            "--id",
            id,
            "--host",
            "host-x",
            "--build-timeout-secs",
            "300",
        ])
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn object(lattice: &TestLattice, cid: &str) -> Vec<u8> {
    let nats = lattice.nats().await.unwrap();
    cim::get_object(&nats, lattice.cli.lattice(), cid)
        .await
        .unwrap_or_else(|e| panic!("object {cid}: {e:#}"))
        .unwrap_or_else(|e| panic!("object {cid}: {e}"))
}

/// The whole pipeline on a real commit: submitted, reviewed, built by Nix (through the
/// pipeline system and the nix-build provider), published by NAR CID, configured, deployed.
pub async fn a_commit_is_built_published_and_deployed(lattice: &TestLattice) {
    let repo = lattice.cli.state_dir().join("repos/hello");
    let commit = git_flake_repo(&repo, "hello").unwrap();
    let (ok, stdout, stderr) = submit(lattice, &repo, "hello").await;
    assert!(
        ok,
        "cim pipeline submit failed:\n{stdout}\n{stderr}\nhost log:\n{}",
        lattice.log_tail("host", 40)
    );
    assert!(stdout.contains("deployed to host-x"), "{stdout}");

    let stored = events(lattice, "hello").await;
    assert_eq!(
        names(&stored),
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
            "ContainerDeployed"
        ]
    );
    let PackageEvent::CommitSubmitted {
        commit: submitted,
        author,
        ..
    } = decode(&stored[0])
    else {
        unreachable!()
    };
    assert_eq!(
        (submitted.as_str(), author.as_str()),
        (commit.as_str(), "ada")
    );
    let PackageEvent::BuildRequested { flake_ref, .. } = decode(&stored[3]) else {
        unreachable!()
    };
    assert_eq!(
        flake_ref,
        format!(
            "git+file://{}?rev={commit}",
            repo.canonicalize().unwrap().display()
        )
    );
    // Every step is caused by the one before it, in one conversation; the pipeline's events
    // are caused by the events they react to.
    for pair in stored.windows(2) {
        assert_eq!(
            pair[1].meta.causation_id.as_deref(),
            Some(pair[0].cid.to_string().as_str()),
            "{} is not caused by {}",
            pair[1].name,
            pair[0].name
        );
        assert_eq!(pair[1].meta.correlation_id, stored[0].meta.correlation_id);
    }

    let PackageEvent::BuildSucceeded {
        attempt,
        out_paths,
        nar_hash,
        log_cid,
    } = decode(&stored[4])
    else {
        unreachable!()
    };
    assert_eq!(attempt, 1);
    assert_eq!(out_paths.len(), 1);
    let out = &out_paths[0];
    assert!(
        out.starts_with("/nix/store/") && out.ends_with("-hello-cim"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(out).unwrap(),
        "hello from the CIM\n"
    );
    assert!(nar_hash.starts_with("sha256-"), "{nar_hash}");
    // The build log is stored by CID (empty when Nix had the output already).
    let log = object(lattice, log_cid.as_deref().expect("a log CID")).await;
    let log = String::from_utf8_lossy(&log);
    assert!(
        log.is_empty() || log.contains("building hello-cim"),
        "{log}"
    );

    let PackageEvent::PackagePublished {
        store_path,
        package_cid,
    } = decode(&stored[5])
    else {
        unreachable!()
    };
    assert_eq!(&store_path, out);
    // The published artifact is the output's NAR, byte for byte what Nix serialises.
    let nar = object(lattice, &package_cid).await;
    let dumped = std::process::Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command",
            "store",
            "dump-path",
            out,
        ])
        .output()
        .unwrap();
    assert!(dumped.status.success());
    assert_eq!(nar, dumped.stdout);

    // The graph knows which build produced what was deployed where (asynchronous projection).
    let question = "MATCH (:Host {key: $host})<-[:ON_HOST]-(:Deployment)<-[:DEPLOYED_AS]-(p:Entity {key: $pkg})-[:HAS_BUILD]->(b:Build)-[:PRODUCED]->(s:StorePath)<-[:PUBLISHED_AS]-(p) RETURN b.key AS build, s.key AS path";
    let started = Instant::now();
    loop {
        let rows = lattice
            .graph_rows(question, &[("host", "host-x"), ("pkg", "package/hello")])
            .await;
        if rows == [format!("package/hello#1 | {out}")] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the graph answers {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A build that fails and a repository outside the allow-list each end in `BuildFailed`, and
/// nothing is published or deployed.
pub async fn failures_are_recorded_and_nothing_else(lattice: &TestLattice) {
    let expected = [
        "CommitSubmitted",
        "PullRequestOpened",
        "PullRequestApproved",
        "BuildRequested",
        "BuildFailed",
    ];

    let repo = lattice.cli.state_dir().join("repos/broken");
    git_flake_repo(&repo, "broken").unwrap();
    let (ok, stdout, stderr) = submit(lattice, &repo, "broken").await;
    assert!(!ok, "a failing build was reported as success:\n{stdout}");
    assert!(stderr.contains("the build failed"), "{stderr}");
    let stored = events(lattice, "broken").await;
    assert_eq!(names(&stored), expected);
    let PackageEvent::BuildFailed { error, log_cid, .. } = decode(&stored[4]) else {
        unreachable!()
    };
    assert!(error.contains("failed with exit code 1"), "{error}");
    let log = object(lattice, log_cid.as_deref().expect("a log CID")).await;
    assert!(
        String::from_utf8_lossy(&log).contains("test greeting ... FAILED"),
        "{}",
        String::from_utf8_lossy(&log)
    );
    assert_eq!(
        stored[4].meta.causation_id.as_deref(),
        Some(stored[3].cid.to_string().as_str())
    );

    // The same flake, outside <state dir>/repos: the provider refuses to build it.
    let elsewhere = tempfile::tempdir().unwrap();
    let outsider = elsewhere.path().join("outsider");
    git_flake_repo(&outsider, "hello").unwrap();
    let (ok, _, stderr) = submit(lattice, &outsider, "outsider").await;
    assert!(!ok);
    assert!(stderr.contains("allow-list"), "{stderr}");
    let stored = events(lattice, "outsider").await;
    assert_eq!(names(&stored), expected);
    let PackageEvent::BuildFailed { error, log_cid, .. } = decode(&stored[4]) else {
        unreachable!()
    };
    assert!(
        error.contains("refused") && error.contains("allow-list"),
        "{error}"
    );
    assert_eq!(log_cid, None, "nothing was built, so there is no log");

    // Nothing followed the failures (checked again after the other package's submission ran).
    assert_eq!(names(&events(lattice, "broken").await), expected);
}

/// Issue 13, item 4: a build success recorded by someone other than the pipeline (a made-up
/// store path, sent right after the request) once wedged the pipeline for every package. Now
/// the pipeline refuses it for good (the build system does not confirm it), the event is in
/// the dead letters with the reason, `cim dead-letters retry` hands it over again and is
/// refused the same way, and the next package goes through as before.
pub async fn a_forged_build_success_is_dead_lettered_and_the_pipeline_moves_on(
    lattice: &TestLattice,
) {
    let repo = lattice.cli.state_dir().join("repos/forged");
    let rev = git_flake_repo(&repo, "broken").unwrap();
    let nats = lattice.nats().await.unwrap();
    let l = lattice.cli.lattice().to_owned();
    let mut steps = cim_model::package::example_pipeline("/nix/store/x", "x", "h", false);
    steps.truncate(3);
    steps.push((
        "RequestBuild",
        format!(
            r#"{{"flake_ref":"git+file://{}?rev={rev}","attribute":"default"}}"#,
            repo.display()
        ),
    ));
    steps.push((
        "RecordBuildSuccess",
        r#"{"out_paths":["/nix/store/00000000000000000000000000000000-made-up"],"nar_hash":"sha256-forged","log_cid":null}"#.into(),
    ));
    let send = |name: &'static str, json: String| {
        let (nats, l) = (nats.clone(), l.clone());
        async move {
            let command = cim::command_for("package", "forged", name, &json, None);
            Box::pin(cim::call_answered(
                &nats,
                &l,
                &command,
                Duration::from_secs(5),
                Duration::from_secs(90),
            ))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:#}"))
        }
    };
    let (request, forged) = (steps[3].clone(), steps[4].clone());
    for (name, json) in steps.into_iter().take(3) {
        send(name, json)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // The forgery must land before the pipeline records the real outcome (the build takes
    // seconds); should a lost reply delay it past that, the build is requested again.
    let mut forged_in = false;
    for _ in 0..3 {
        send(request.0, request.1.clone())
            .await
            .unwrap_or_else(|e| panic!("RequestBuild: {e}"));
        match send(forged.0, forged.1.clone()).await {
            Ok(_) => {
                forged_in = true;
                break;
            }
            Err(cim_domain::EcsError::Rejected(why)) => {
                eprintln!("the pipeline recorded the build first ({why}); requesting it again")
            }
            Err(e) => panic!("RecordBuildSuccess: {e}"),
        }
    }
    assert!(
        forged_in,
        "the forged success never landed before the pipeline's outcome"
    );

    // The pipeline gives up on the request at once (invalid, not retried) and records why.
    let deadline = Instant::now() + Duration::from_secs(120);
    let letter = loop {
        let (letters, _) = cim::deadletters::list(&lattice.cli).await.unwrap();
        if let Some(l) = letters
            .into_iter()
            .find(|l| l.subject == "cim.evt.package.forged" && l.reactor == "cim-pipeline")
        {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "the forged success was never dead-lettered; host log:\n{}",
            lattice.log_tail("host", 40)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(letter.error.contains("not confirmed"), "{}", letter.error);
    let stored = events(lattice, "forged").await;
    let names = names(&stored);
    assert_eq!(names.last(), Some(&"BuildSucceeded"), "{names:?}");
    assert!(
        !names.contains(&"PackagePublished"),
        "nothing was published: {names:?}"
    );
    let request = &stored[stored.len() - 2];
    assert_eq!(request.name.as_str(), "BuildRequested");
    assert_eq!(letter.event_cid, Some(request.cid.to_string()));

    // `cim dead-letters` shows it; a retry is refused the same way and says so.
    let listed = lattice
        .cim_ok(&["dead-letters"], lattice.cli.state_dir())
        .await;
    assert!(
        listed.contains("cim.evt.package.forged") && listed.contains("not confirmed"),
        "{listed}"
    );
    let retry = lattice
        .cim_command()
        .unwrap()
        .args([
            "dead-letters",
            "retry",
            &letter.durable,
            &letter.stream_sequence.to_string(),
        ])
        .output()
        .await
        .unwrap();
    assert!(!retry.status.success(), "the retry is refused again");
    let stderr = String::from_utf8_lossy(&retry.stderr);
    assert!(stderr.contains("refused the event again"), "{stderr}");
    // A dead letter that does not exist is refused with its reason.
    let none = lattice
        .cim_command()
        .unwrap()
        .args(["dead-letters", "retry", &letter.durable, "999999"])
        .output()
        .await
        .unwrap();
    assert!(!none.status.success());
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert!(stderr.contains("no dead letter"), "{stderr}");
}
