//! The package component (seed 002), loaded into wasmtime, from commit to deployment.

use cim_domain::{verify_chain, EntityRef as DomainRef};
use cim_tests::{command, EcsError, EntityHost};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const OUT: &str = "/nix/store/0c3l1r9ga2xj3y8ds7h7bbx5mv0mr8ls-hello-1.0";
const CID: &str = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";

fn host() -> EntityHost {
    EntityHost::load("package").expect("package component loads")
}

fn run(h: &mut EntityHost, id: &str, name: &str, payload: &str) -> Result<Vec<String>, EcsError> {
    h.handle(&command("package", id, name, payload, None))
        .unwrap()
        .map(|evs| evs.into_iter().map(|e| e.name).collect())
}

fn to_phase(h: &mut EntityHost, id: &str, steps: usize) {
    let all = pipeline();
    for (name, payload, _) in all.iter().take(steps) {
        run(h, id, name, payload).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
}

fn pipeline() -> Vec<(&'static str, String, &'static str)> {
    vec![
        (
            "SubmitCommit",
            format!(
                r#"{{"repository":"file:///src/hello","commit":"{COMMIT}","branch":"main","author":"ada"}}"#
            ),
            "CommitSubmitted",
        ),
        (
            "OpenPullRequest",
            r#"{"number":7,"title":"Add hello"}"#.into(),
            "PullRequestOpened",
        ),
        (
            "ApprovePullRequest",
            r#"{"reviewer":"grace"}"#.into(),
            "PullRequestApproved",
        ),
        (
            "RequestBuild",
            r#"{"flake_ref":"path:/src/hello","attribute":"packages.x86_64-linux.default"}"#.into(),
            "BuildRequested",
        ),
        (
            "RecordBuildSuccess",
            format!(r#"{{"out_paths":["{OUT}"],"nar_hash":"sha256-1b3a","log_cid":"{CID}"}}"#),
            "BuildSucceeded",
        ),
        (
            "PublishPackage",
            format!(r#"{{"store_path":"{OUT}","package_cid":"{CID}"}}"#),
            "PackagePublished",
        ),
        (
            "ConfigurePackage",
            r#"{"name":"hello","version":"1.0.0"}"#.into(),
            "PackageConfigured",
        ),
        (
            "CreateContext",
            r#"{"context":"production"}"#.into(),
            "ContextCreated",
        ),
        (
            "AddConfiguration",
            r#"{"key":"port","value":"8080"}"#.into(),
            "ConfigurationAdded",
        ),
        (
            "DeployContainer",
            r#"{"host":"host-x","container":"hello"}"#.into(),
            "ContainerDeployed",
        ),
    ]
}

#[test]
fn a_commit_travels_to_a_deployed_container() {
    let mut h = host();
    for (name, payload, event) in pipeline() {
        assert_eq!(
            run(&mut h, "p1", name, &payload),
            Ok(vec![event.to_string()]),
            "{name}"
        );
    }
    let stored = h
        .backend
        .log
        .events(&DomainRef::new("package", "p1").unwrap());
    assert_eq!(stored.len(), 10);
    verify_chain(stored).expect("chain verifies");
    assert_eq!(stored.last().unwrap().name.as_str(), "ContainerDeployed");
}

#[test]
fn no_publish_without_a_successful_build() {
    let mut h = host();
    to_phase(&mut h, "p2", 4); // BuildRequested
    let publish = format!(r#"{{"store_path":"{OUT}","package_cid":"{CID}"}}"#);
    let err = run(&mut h, "p2", "PublishPackage", &publish).unwrap_err();
    assert!(
        matches!(&err, EcsError::Rejected(m) if m.contains("not allowed")),
        "{err:?}"
    );
    assert_eq!(
        run(
            &mut h,
            "p2",
            "RecordBuildFailure",
            r#"{"error":"builder failed"}"#
        ),
        Ok(vec!["BuildFailed".into()])
    );
    assert!(run(&mut h, "p2", "PublishPackage", &publish).is_err());
    // The failed build is retried as attempt 2.
    let retried = h
        .handle(&command(
            "package",
            "p2",
            "RequestBuild",
            r#"{"flake_ref":"path:/src/hello","attribute":"default"}"#,
            None,
        ))
        .unwrap()
        .unwrap();
    let payload: serde_json::Value = serde_json::from_slice(&retried[0].payload).unwrap();
    assert_eq!(payload["attempt"], 2);
    assert_eq!(
        h.backend
            .log
            .events(&DomainRef::new("package", "p2").unwrap())
            .len(),
        6
    );
}

#[test]
fn no_deploy_without_configuration() {
    let mut h = host();
    to_phase(&mut h, "p3", 8); // ContextCreated
    let err = run(
        &mut h,
        "p3",
        "DeployContainer",
        r#"{"host":"host-x","container":"hello"}"#,
    )
    .unwrap_err();
    assert!(
        matches!(&err, EcsError::Rejected(m) if m.contains("without configuration")),
        "{err:?}"
    );
    assert_eq!(
        h.backend
            .log
            .events(&DomainRef::new("package", "p3").unwrap())
            .len(),
        8
    );
}

#[test]
fn the_author_cannot_approve_and_build_inputs_are_checked() {
    let mut h = host();
    to_phase(&mut h, "p4", 2);
    let err = run(&mut h, "p4", "ApprovePullRequest", r#"{"reviewer":"ada"}"#).unwrap_err();
    assert!(
        matches!(&err, EcsError::Rejected(m) if m.contains("own pull request")),
        "{err:?}"
    );
    run(
        &mut h,
        "p4",
        "ApprovePullRequest",
        r#"{"reviewer":"grace"}"#,
    )
    .unwrap();
    let err = run(
        &mut h,
        "p4",
        "RequestBuild",
        r#"{"flake_ref":"path:/x --impure","attribute":"default"}"#,
    )
    .unwrap_err();
    assert!(matches!(err, EcsError::Rejected(_)), "{err:?}");
    let err = run(
        &mut h,
        "p4",
        "RequestBuild",
        r#"{"flake_ref":"path:/x","attribute":"default","extra":1}"#,
    )
    .unwrap_err();
    assert!(
        matches!(err, EcsError::Invalid(_)),
        "unknown fields are invalid: {err:?}"
    );
}
