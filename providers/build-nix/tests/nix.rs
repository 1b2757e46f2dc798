//! The Nix runner against real Nix (Debian `nix-bin`, installed by `scripts/bootstrap`): the
//! test flakes of `tests/flakes` build offline in the sandbox, a failing build reports its
//! error and log, and a build past its deadline is killed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use build_nix::config::{BuildConfig, EXTRA_SANDBOX_PATHS, TIMEOUT_SECS};
use build_nix::nix::{self, BuildRun};

fn flake(name: &str) -> (tempfile::TempDir, String) {
    let source: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "..",
        "tests",
        "flakes",
        name,
        "flake.nix",
    ]
    .iter()
    .collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&source, dir.path().join("flake.nix")).unwrap();
    let installable = format!(
        "path:{}#packages.x86_64-linux.default",
        dir.path().display()
    );
    (dir, installable)
}

fn settings(timeout_secs: &str) -> build_nix::config::NixSettings {
    // Debian's Nix has no /bin/sh of its own for the sandbox; bootstrap installs busybox.
    BuildConfig::from_config(&cim_provider::config_map(&[
        (EXTRA_SANDBOX_PATHS, "/bin/sh=/bin/busybox"),
        (TIMEOUT_SECS, timeout_secs),
    ]))
    .unwrap()
    .nix
}

#[tokio::test]
async fn a_flake_builds_in_the_sandbox_and_yields_its_nar() {
    let s = settings("300");
    let (_dir, target) = flake("hello");
    let run = nix::build(&s, &target).await.unwrap();
    let BuildRun::Succeeded { out_paths, log } = run else {
        panic!("hello did not build: {run:?}");
    };
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
    // A cached build prints no build log; a fresh one prints the builder's line.
    let log = String::from_utf8_lossy(&log);
    assert!(
        log.is_empty() || log.contains("building hello-cim"),
        "{log}"
    );

    let hash = nix::nar_hash(&s, out).await.unwrap();
    assert!(hash.starts_with("sha256-"), "{hash}");
    let nar = nix::nar(&s, out, 1 << 20).await.unwrap();
    assert_eq!(&nar[..8], &[13, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&nar[8..21], b"nix-archive-1");
    assert!(
        nix::nar(&s, out, 16).await.is_err(),
        "the NAR size limit holds"
    );

    // Deterministic: the same flake in another directory gives the same output and NAR.
    let (_again, target2) = flake("hello");
    let BuildRun::Succeeded {
        out_paths: again, ..
    } = nix::build(&s, &target2).await.unwrap()
    else {
        panic!("second build failed");
    };
    assert_eq!(&again, &out_paths);
    assert_eq!(nix::nar(&s, out, 1 << 20).await.unwrap(), nar);
}

#[tokio::test]
async fn a_failing_build_reports_its_error_and_log() {
    let (_dir, target) = flake("broken");
    let run = nix::build(&settings("300"), &target).await.unwrap();
    let BuildRun::Failed { error, log } = run else {
        panic!("broken built: {run:?}");
    };
    assert!(error.starts_with("error: builder for"), "{error}");
    assert!(error.contains("exit code 1"), "{error}");
    let log = String::from_utf8_lossy(&log);
    assert!(log.contains("test greeting ... FAILED"), "{log}");
}

#[tokio::test]
async fn a_build_past_its_deadline_is_killed_with_its_builder() {
    let (_dir, target) = flake("slow");
    let started = Instant::now();
    let run = nix::build(&settings("3"), &target).await.unwrap();
    let BuildRun::Failed { error, .. } = run else {
        panic!("slow finished: {run:?}");
    };
    assert!(error.contains("did not finish within 3s"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(60));
    // The builder (a busy shell loop) died with the process group.
    let deadline = Instant::now() + Duration::from_secs(10);
    while builder_running("slow-cim") {
        assert!(
            Instant::now() < deadline,
            "the slow builder survived its build"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn builder_running(name: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
        let environ = p.path().join("environ");
        std::fs::read(&environ).is_ok_and(|env| {
            env.split(|b| *b == 0)
                .any(|var| var == format!("name={name}").as_bytes())
        })
    })
}

#[tokio::test]
async fn a_missing_nix_is_an_error_not_a_failed_build() {
    let mut s = settings("10");
    s.nix_bin = "/nonexistent/nix".into();
    let (_dir, target) = flake("hello");
    let err = nix::build(&s, &target).await.unwrap_err();
    assert!(
        matches!(err, nix::NixError::Spawn { ref bin, .. } if bin == "/nonexistent/nix"),
        "{err}"
    );
}
