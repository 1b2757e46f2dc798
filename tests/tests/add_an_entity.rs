//! `docs/add-an-entity.md`, followed literally: in a copy of the repository (the tracked
//! files), every ```` ```<lang> file=PATH ```` block is written to PATH, every
//! ```` insert=PATH before="LINE" ```` block is inserted above that line, every ```` ```sh run ````
//! (or ```` ```sh fails ````) block is run line by line with bash in the copy and must succeed
//! (or fail), and every ```` ```text expect ```` block lists lines the commands before it
//! printed. The commands bring up a real lattice of their own (`scripts/cim up`: NATS, wadm, a
//! wasmCloud host, the graph database) on free ports, which `cim down` stops at the end.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

/// One fenced block of the guide: its info string and its text.
#[derive(Debug)]
struct Block {
    info: String,
    text: String,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for line in markdown.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_string(),
                    text: String::new(),
                })
            }
            (Some(_), Some("")) => out.extend(open.take()),
            (Some(b), _) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// The value of `key=value` or `key="quoted value"` in an info string.
fn attr(info: &str, key: &str) -> Option<String> {
    let rest = &info[info.find(&format!("{key}="))? + key.len() + 1..];
    Some(match rest.strip_prefix('"') {
        Some(quoted) => quoted[..quoted.find('"')?].to_string(),
        None => rest.split_whitespace().next()?.to_string(),
    })
}

/// Copies the tracked files of the repository at `root` into `to` (emptied first).
fn copy_repository(root: &Path, to: &Path) -> anyhow::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    let listed = Command::new("git")
        .args(["ls-files", "-z", "--cached"])
        .current_dir(root)
        .output()
        .context("git ls-files")?;
    if !listed.status.success() {
        bail!("git ls-files: {}", String::from_utf8_lossy(&listed.stderr));
    }
    for file in listed.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let rel = Path::new(std::str::from_utf8(file)?);
        let from = root.join(rel);
        if !from.is_file() {
            continue; // deleted in the working tree
        }
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap())?;
        std::fs::copy(&from, &dest).with_context(|| format!("copying {}", rel.display()))?;
    }
    Ok(())
}

/// Runs bash lines in the copy with the lattice's environment.
struct Shell {
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Shell {
    fn run(&self, line: &str) -> std::process::Output {
        Command::new("bash")
            .args(["-c", line])
            .current_dir(&self.dir)
            // The copy is the workspace now, not the crate these tests were built from.
            .env_remove("CARGO_MANIFEST_DIR")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap_or_else(|e| panic!("bash -c {line:?}: {e}"))
    }
}

/// Stops the guide's lattice even when an assertion failed.
struct Down<'a>(&'a Shell);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let out = self.0.run("scripts/cim down");
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn the_add_an_entity_guide_works_as_written() {
    let root = cim_testkit::workspace_root();
    let guide = std::fs::read_to_string(root.join("docs/add-an-entity.md")).unwrap();
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    // A fixed place under the target directory, so repeated runs build incrementally.
    let copy = target.join("guide/workspace");
    copy_repository(&root, &copy).expect("copy of the repository");
    let state = tempfile::Builder::new()
        .prefix("cim-guide-")
        .tempdir()
        .unwrap();
    let shell = Shell {
        dir: copy.clone(),
        env: vec![
            ("CARGO_TARGET_DIR".into(), target.display().to_string()),
            // scripts/cim runs this build of cim (and so of the host and providers), not
            // the release build scripts/run makes.
            (
                "CIM_BIN".into(),
                cim::sibling("cim", "CIM_BIN")
                    .unwrap()
                    .display()
                    .to_string(),
            ),
            (
                "CIM_GUEST_TARGET_DIR".into(),
                target.join("guide/guests").display().to_string(),
            ),
            (
                "CIM_STATE_DIR".into(),
                state.path().join("state").display().to_string(),
            ),
            ("CIM_LATTICE".into(), format!("guide{}", std::process::id())),
            (
                "CIM_NATS_PORT".into(),
                cim_testkit::free_port().unwrap().to_string(),
            ),
        ],
    };
    let _down = Down(&shell);

    let all = blocks(&guide);
    assert!(
        all.iter().any(|b| b.info.contains(" run")),
        "the guide has commands"
    );
    let mut printed = String::new();
    let (mut files, mut commands, mut expectations) = (0, 0, 0);
    for block in &all {
        let info = block.info.as_str();
        if let Some(path) = attr(info, "file") {
            let dest = copy.join(&path);
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::write(&dest, &block.text).unwrap();
            files += 1;
        } else if let Some(path) = attr(info, "insert") {
            let anchor = attr(info, "before").expect("insert blocks name the line they go before");
            let file = copy.join(&path);
            let text = std::fs::read_to_string(&file).unwrap();
            let at = text
                .find(&format!("{anchor}\n"))
                .unwrap_or_else(|| panic!("{path} has no line {anchor:?} (the guide is stale)"));
            std::fs::write(
                &file,
                format!("{}{}{}", &text[..at], block.text, &text[at..]),
            )
            .unwrap();
            files += 1;
        } else if info.starts_with("sh") && (info.ends_with(" run") || info.ends_with(" fails")) {
            let must_fail = info.ends_with(" fails");
            printed.clear();
            for line in block.text.lines().filter(|l| !l.trim().is_empty()) {
                let out = shell.run(line);
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                eprintln!("$ {line}\n{text}");
                assert_eq!(
                    out.status.success(),
                    !must_fail,
                    "{line} {}:\n{text}",
                    if must_fail { "succeeded" } else { "failed" }
                );
                printed.push_str(&text);
                commands += 1;
            }
        } else if info == "text expect" {
            for line in block.text.lines().filter(|l| !l.trim().is_empty()) {
                assert!(
                    printed.contains(line.trim()),
                    "the guide expects {line:?}; the commands printed:\n{printed}"
                );
                expectations += 1;
            }
        }
    }
    assert!(
        copy.join("components/ticket/src/lib.rs").is_file(),
        "the new component was written"
    );
    eprintln!(
        "guide: {files} files written, {commands} commands run, {expectations} expected lines seen"
    );
}
