//! Builds the entity components (wasm32-wasip2) so tests always run the current code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::TestkitError;

/// The workspace root (the directory holding the top-level `Cargo.toml` and `wit/`).
///
/// Found at run time: `$CIM_WORKSPACE` if set, else the nearest ancestor of the running
/// crate's `$CARGO_MANIFEST_DIR` (set by `cargo test`/`cargo run`) or of the current directory
/// that is the CIM workspace. The compile-time path is only the last resort: a shared cargo
/// target dir reuses builds made from other clones, whose baked-in paths may be gone.
pub fn workspace_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("CIM_WORKSPACE") {
        return PathBuf::from(dir);
    }
    let is_root = |d: &Path| {
        d.join("wit").is_dir()
            && std::fs::read_to_string(d.join("Cargo.toml"))
                .is_ok_and(|t| t.contains("[workspace]"))
    };
    let starts = [
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        std::env::current_dir().ok(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    starts
        .into_iter()
        .flatten()
        .find_map(|start| {
            start
                .ancestors()
                .find(|d| is_root(d))
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The cargo target directory the components are built into: `$CIM_GUEST_TARGET_DIR`, else
/// `$CARGO_TARGET_DIR/guests` or `<workspace>/target/guests`. A separate directory from the
/// native build, so building guests from inside a running `cargo test` never waits on the
/// outer build's lock.
fn guest_target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CIM_GUEST_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("guests")
}

static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Builds every crate under `components/` with `cargo build --target wasm32-wasip2 --profile
/// component` (once per process; a no-op when nothing changed) and returns the directory
/// holding the `.wasm` files.
pub fn build_components() -> Result<PathBuf, TestkitError> {
    BUILT
        .get_or_init(|| build_all().map_err(|e| e.to_string()))
        .clone()
        .map_err(|reason| TestkitError::Io {
            context: "building the entity components".into(),
            source: std::io::Error::other(reason),
        })
}

fn build_all() -> Result<PathBuf, TestkitError> {
    let root = workspace_root();
    let io = |context: String| move |source| TestkitError::Io { context, source };
    let mut packages = Vec::new();
    for entry in
        std::fs::read_dir(root.join("components")).map_err(io("listing components/".into()))?
    {
        let path = entry.map_err(io("listing components/".into()))?.path();
        if path.join("Cargo.toml").is_file() {
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                packages.push(name.to_string());
            }
        }
    }
    packages.sort();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "component",
        ])
        .arg("--target-dir")
        .arg(guest_target_dir());
    for p in &packages {
        cmd.args(["-p", p]);
    }
    let out = cmd
        .output()
        .map_err(io("running cargo build for components".into()))?;
    if !out.status.success() {
        return Err(TestkitError::Io {
            context: format!("cargo build of components {packages:?}"),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
        });
    }
    Ok(guest_target_dir().join("wasm32-wasip2/component"))
}
