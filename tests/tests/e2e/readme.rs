//! Issue 13, item 14: every command of the README's "after `scripts/run`" block works as
//! printed, run through `bash` from the repository's top directory like a user would (with
//! `scripts/cim` the built `cim` pointed at this lattice, and `.cim/` its state directory).

use std::time::{Duration, Instant};

use cim_tests::lattice::TestLattice;

/// The README's block of commands that follow `scripts/run`.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(cim_testkit::workspace_root().join("README.md")).unwrap();
    let start = readme
        .find("```sh\nscripts/cim demo")
        .expect("the README's block of commands");
    let block = &readme[start + "```sh\n".len()..];
    let block = &block[..block.find("```").unwrap()];
    // A line ending in `\` continues on the next, as in a shell.
    let mut commands = Vec::new();
    let mut pending = String::new();
    for line in block.lines() {
        if let Some(head) = line.trim_end().strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        let command = pending.split(" #").next().unwrap().trim().to_string();
        pending.clear();
        if !command.is_empty() {
            commands.push(command);
        }
    }
    commands
}

/// `cim ui` as printed: it serves the page on 127.0.0.1:8480.
async fn ui_serves(mut child: tokio::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut conn = tokio::net::TcpStream::connect("127.0.0.1:8480").await?;
            conn.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8480\r\nConnection: close\r\n\r\n")
                .await?;
            let mut text = String::new();
            conn.read_to_string(&mut text).await?;
            std::io::Result::Ok(text)
        };
        if let Ok(Ok(text)) = tokio::time::timeout(Duration::from_secs(5), answer).await {
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cim ui did not serve 127.0.0.1:8480"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child.kill().await.unwrap();
}

pub async fn every_readme_command_works_as_printed(lattice: &TestLattice) {
    let root = cim_testkit::workspace_root();
    let cim = cim::sibling("cim", "CIM_BIN").unwrap();
    let state = lattice.cli.state_dir().display().to_string();
    let commands = readme_commands();
    assert!(commands.len() >= 10, "{commands:?}");
    for command in commands {
        let rest = command
            .strip_prefix("scripts/cim ")
            .unwrap_or_else(|| panic!("{command:?} does not run scripts/cim"))
            .replace(".cim/", &format!("{state}/"));
        // Both scenarios ran above as the scenario's `cim demo` step, with this test's own
        // Ollama-API server instead of a second one started by `--ollama-test-server`.
        if rest.starts_with("demo ") {
            continue;
        }
        let line = format!(
            "{} --state-dir {state} --lattice {} {rest}",
            cim.display(),
            lattice.cli.lattice()
        );
        let mut bash = tokio::process::Command::new("bash");
        bash.arg("-c")
            .arg(&line)
            .current_dir(&root)
            .kill_on_drop(true);
        if rest == "ui" {
            ui_serves(bash.spawn().unwrap()).await;
            continue;
        }
        let started = Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(600), bash.output())
            .await
            .unwrap_or_else(|_| panic!("{command} did not finish in 10 minutes"))
            .unwrap();
        assert!(
            out.status.success(),
            "README command failed: {command}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "README: {command}: ok in {:.2}s",
            started.elapsed().as_secs_f64()
        );
    }
}
