//! Running Nix: `nix build --json --no-link`, the NAR hash of an output and its NAR.
//!
//! Nix runs without a shell, with the installable as a single argument after `--`, stdin
//! closed and flake-provided settings refused (`accept-flake-config false`), in its own
//! process group; a build past its deadline is stopped so that its builders die with it.

use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::Command;

use crate::config::NixSettings;

/// Nix could not be run at all (as opposed to a build that ran and failed).
#[derive(Debug, thiserror::Error)]
pub enum NixError {
    /// The executable could not be started.
    #[error("could not start {bin}: {source}")]
    Spawn {
        /// The executable.
        bin: String,
        /// Why.
        source: std::io::Error,
    },
    /// Reading its output failed.
    #[error("reading the output of nix: {0}")]
    Io(#[from] std::io::Error),
    /// A query (`path-info`, `dump-path`) failed or answered something unexpected.
    #[error("nix {what}: {detail}")]
    Query {
        /// The query.
        what: &'static str,
        /// What went wrong.
        detail: String,
    },
}

/// A build that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildRun {
    /// Nix reported success.
    Succeeded {
        /// Output store paths: `out` first, then the others by name.
        out_paths: Vec<String>,
        /// The build log (stderr, the end kept).
        log: Vec<u8>,
    },
    /// The build failed or timed out.
    Failed {
        /// The error lines of the log, or the timeout.
        error: String,
        /// The build log (stderr, the end kept).
        log: Vec<u8>,
    },
}

/// Most bytes of error text reported (the package entity takes up to 4000).
const ERROR_MAX: usize = 2000;

fn nix(settings: &NixSettings) -> Command {
    let mut cmd = Command::new(&settings.nix_bin);
    // The wasmCloud host starts providers with an almost empty environment. Nix keeps its
    // fetcher and evaluation caches under $HOME/.cache; give it a private one if none is set.
    if std::env::var_os("HOME").is_none() && std::env::var_os("XDG_CACHE_HOME").is_none() {
        cmd.env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("cim-build-nix-cache"),
        );
    }
    cmd.args(["--extra-experimental-features", "nix-command flakes"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Reads all of `reader`, keeping at most the last `max` bytes (with a note of what was cut).
async fn read_tail(mut reader: impl AsyncRead + Unpin, max: usize) -> std::io::Result<Vec<u8>> {
    let mut kept: Vec<u8> = Vec::new();
    let mut dropped = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > max {
            let cut = kept.len() - max;
            kept.drain(..cut);
            dropped += cut;
        }
    }
    if dropped > 0 {
        let mut out = format!("[… {dropped} earlier bytes of the log omitted …]\n").into_bytes();
        out.extend(kept);
        return Ok(out);
    }
    Ok(kept)
}

/// Reads all of `reader` up to `max` bytes; `None` if there is more.
async fn read_capped(
    reader: impl AsyncRead + Unpin,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    let n = reader.take(max as u64 + 1).read_to_end(&mut out).await?;
    Ok((n <= max).then_some(out))
}

#[derive(Deserialize)]
struct BuiltJson {
    outputs: std::collections::BTreeMap<String, String>,
}

/// The error lines of a failed build's log: from the first line starting with `error:`.
fn error_text(log: &[u8]) -> String {
    let text = String::from_utf8_lossy(log);
    let from = text
        .find("\nerror:")
        .map(|i| i + 1)
        .or_else(|| text.starts_with("error:").then_some(0));
    let err = match from {
        Some(i) => text[i..].trim().to_string(),
        None => text
            .lines()
            .last()
            .unwrap_or("nix build failed")
            .trim()
            .to_string(),
    };
    if err.len() <= ERROR_MAX {
        return err;
    }
    let mut end = ERROR_MAX;
    while !err.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &err[..end])
}

/// How long Nix gets to stop its builders after SIGTERM before its group is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Stops a build: SIGTERM lets Nix kill its builders (they run in sessions of their own, out
/// of reach of a signal to Nix's process group), SIGKILL to the group follows if Nix is
/// still there after [`STOP_GRACE`]. Signals to a group that is already gone are ignored.
async fn stop(child: &mut tokio::process::Child, group: Option<rustix::process::Pid>) {
    use rustix::process::{kill_process_group, Signal};
    if let Some(group) = group {
        let _ = kill_process_group(group, Signal::TERM);
    }
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        if let Some(group) = group {
            let _ = kill_process_group(group, Signal::KILL);
        }
        let _ = child.wait().await;
    }
}

/// Runs `nix build --json --no-link --print-build-logs -- <installable>`.
pub async fn build(settings: &NixSettings, installable: &str) -> Result<BuildRun, NixError> {
    let mut cmd = nix(settings);
    cmd.args([
        "build",
        "--json",
        "--no-link",
        "--print-build-logs",
        "--no-write-lock-file",
        "--option",
        "accept-flake-config",
        "false",
        "--option",
        "substituters",
        &settings.substituters,
        "--option",
        "sandbox",
        if settings.sandbox { "true" } else { "false" },
    ]);
    if !settings.extra_sandbox_paths.is_empty() {
        cmd.args([
            "--option",
            "extra-sandbox-paths",
            &settings.extra_sandbox_paths,
        ]);
    }
    cmd.arg("--").arg(installable).process_group(0);
    let mut child = cmd.spawn().map_err(|source| NixError::Spawn {
        bin: settings.nix_bin.clone(),
        source,
    })?;
    let group = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(id as i32));
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let out_task = tokio::spawn(read_capped(stdout, 1 << 20));
    let log_task = tokio::spawn(read_tail(stderr, settings.log_max_bytes));

    let status = match tokio::time::timeout(settings.timeout, child.wait()).await {
        Ok(status) => Some(status?),
        Err(_) => {
            stop(&mut child, group).await;
            None
        }
    };
    let log = log_task.await.map_err(|e| NixError::Query {
        what: "build",
        detail: format!("log reader failed: {e}"),
    })??;
    let stdout = out_task.await.map_err(|e| NixError::Query {
        what: "build",
        detail: format!("output reader failed: {e}"),
    })??;
    let Some(status) = status else {
        return Ok(BuildRun::Failed {
            error: format!(
                "the build did not finish within {}s and was killed",
                settings.timeout.as_secs()
            ),
            log,
        });
    };
    if !status.success() {
        return Ok(BuildRun::Failed {
            error: error_text(&log),
            log,
        });
    }
    let stdout = stdout.ok_or_else(|| NixError::Query {
        what: "build",
        detail: "more than 1 MiB of JSON on stdout".into(),
    })?;
    let built: Vec<BuiltJson> = serde_json::from_slice(&stdout).map_err(|e| NixError::Query {
        what: "build",
        detail: format!("unexpected --json output: {e}"),
    })?;
    let mut out_paths = Vec::new();
    for b in &built {
        if let Some(out) = b.outputs.get("out") {
            out_paths.push(out.clone());
        }
        out_paths.extend(
            b.outputs
                .iter()
                .filter(|(name, _)| name.as_str() != "out")
                .map(|(_, path)| path.clone()),
        );
    }
    if out_paths.is_empty() {
        return Err(NixError::Query {
            what: "build",
            detail: "succeeded without output paths".into(),
        });
    }
    Ok(BuildRun::Succeeded { out_paths, log })
}

/// The NAR hash of `path` (`sha256-…`, SRI form), from `nix path-info --json`.
pub async fn nar_hash(settings: &NixSettings, path: &str) -> Result<String, NixError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct PathInfo {
        nar_hash: String,
    }
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        nix(settings)
            .args(["path-info", "--json", "--", path])
            .output(),
    )
    .await
    .map_err(|_| NixError::Query {
        what: "path-info",
        detail: "no answer within 60s".into(),
    })?
    .map_err(|source| NixError::Spawn {
        bin: settings.nix_bin.clone(),
        source,
    })?;
    if !output.status.success() {
        return Err(NixError::Query {
            what: "path-info",
            detail: error_text(&output.stderr),
        });
    }
    let infos: Vec<PathInfo> =
        serde_json::from_slice(&output.stdout).map_err(|e| NixError::Query {
            what: "path-info",
            detail: format!("unexpected --json output: {e}"),
        })?;
    infos
        .into_iter()
        .next()
        .map(|i| i.nar_hash)
        .ok_or_else(|| NixError::Query {
            what: "path-info",
            detail: format!("nothing known about {path}"),
        })
}

/// The NAR serialisation of `path` (`nix store dump-path`), at most `max` bytes.
pub async fn nar(settings: &NixSettings, path: &str, max: usize) -> Result<Vec<u8>, NixError> {
    let mut child = nix(settings)
        .args(["store", "dump-path", "--", path])
        .spawn()
        .map_err(|source| NixError::Spawn {
            bin: settings.nix_bin.clone(),
            source,
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let err_task = tokio::spawn(read_tail(stderr, 64 * 1024));
    let nar = read_capped(stdout, max).await?;
    let Some(nar) = nar else {
        return Err(NixError::Query {
            what: "store dump-path",
            detail: format!("the NAR of {path} is larger than {max} bytes (nar_max_bytes)"),
        });
    };
    let status = child.wait().await?;
    let stderr = err_task.await.map_err(|e| NixError::Query {
        what: "store dump-path",
        detail: e.to_string(),
    })??;
    if !status.success() {
        return Err(NixError::Query {
            what: "store dump-path",
            detail: error_text(&stderr),
        });
    }
    Ok(nar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_log_keeps_its_end() {
        let data = (0..100u8).collect::<Vec<_>>();
        let kept = read_tail(&data[..], 10).await.unwrap();
        let text = String::from_utf8_lossy(&kept);
        assert!(text.starts_with("[… 90 earlier bytes"), "{text}");
        assert!(kept.ends_with(&data[90..]));
        assert_eq!(read_tail(&data[..], 1000).await.unwrap(), data);
        assert_eq!(
            read_capped(&data[..], 100).await.unwrap(),
            Some(data.clone())
        );
        assert_eq!(read_capped(&data[..], 99).await.unwrap(), None);
    }

    #[test]
    fn errors_are_the_error_lines() {
        let log = b"building x...\nhello> oops\nerror: builder for x.drv failed with exit code 1;\n       last 1 log lines:\n";
        assert!(error_text(log).starts_with("error: builder for x.drv failed"));
        assert_eq!(error_text(b"just one line"), "just one line");
        assert!(error_text(&b"error: x".repeat(1000)).len() <= ERROR_MAX + 3);
    }
}
