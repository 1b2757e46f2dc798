//! Real headless Chromium (Debian `chromium`) driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: commands on fd 3, answers on fd 4, each JSON message ended by
//! a NUL byte).
//!
//! A page with a live feed (server-sent events) never goes idle, so `--dump-dom` with a
//! virtual-time budget never returns and without one dumps before the page's fetches land.
//! Over the protocol a test waits for what it expects (a JavaScript condition, polled with a
//! deadline) and then reads the DOM or takes a screenshot.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use serde_json::{json, Value};

/// How long one protocol call may take.
const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// A running headless Chromium.
pub struct Browser {
    child: Child,
    commands: std::io::PipeWriter,
    answers: mpsc::Receiver<Value>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

/// A tab, by its DevTools session.
pub struct Page {
    session: String,
}

/// The Chromium binary: Debian's `chromium` (scripts/bootstrap installs it).
pub fn chromium() -> anyhow::Result<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context("chromium is not installed (scripts/bootstrap installs Debian's chromium)")
}

/// Places `fd` at `target` in the child (clearing close-on-exec, which `dup2` does unless
/// the two are the same descriptor).
fn place(fd: i32, target: i32) -> std::io::Result<()> {
    if fd == target {
        let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD)?;
        let flags = nix::fcntl::FdFlag::from_bits_truncate(flags) - nix::fcntl::FdFlag::FD_CLOEXEC;
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(flags))?;
    } else {
        nix::unistd::dup2(fd, target)?;
    }
    Ok(())
}

impl Browser {
    /// Starts headless Chromium with a fresh profile and a `width`×`height` window.
    pub fn launch(width: u32, height: u32) -> anyhow::Result<Self> {
        let profile = tempfile::Builder::new().prefix("cim-chromium-").tempdir()?;
        let (cmd_read, cmd_write) = std::io::pipe()?;
        let (answer_read, answer_write) = std::io::pipe()?;
        let (cmd_fd, answer_fd) = (cmd_read.as_raw_fd(), answer_write.as_raw_fd());
        let mut command = Command::new(chromium()?);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl) are made.
        unsafe {
            command.pre_exec(move || {
                // Answers first: if the command pipe's descriptor happens to be 4, moving it to
                // 3 first would let the answer pipe's dup2 overwrite it.
                if cmd_fd == 4 {
                    let moved = nix::fcntl::fcntl(cmd_fd, nix::fcntl::FcntlArg::F_DUPFD(10))?;
                    place(answer_fd, 4)?;
                    place(moved, 3)
                } else {
                    place(cmd_fd, 3)?;
                    place(answer_fd, 4)
                }
            });
        }
        let child = command.spawn().context("cannot start chromium")?;
        drop(cmd_read);
        drop(answer_write);
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(answer_read);
            let mut buf = Vec::new();
            while reader.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                buf.pop_if(|b| *b == 0);
                if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        Ok(Self {
            child,
            commands: cmd_write,
            answers,
            next_id: 0,
            _profile: profile,
        })
    }

    /// Sends a protocol command (to the browser, or to a page's session) and awaits its result.
    pub fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg)?;
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .with_context(|| format!("chromium stopped reading ({method})"))?;
        let deadline = Instant::now() + CALL_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = self
                .answers
                .recv_timeout(left)
                .map_err(|_| anyhow!("no answer from chromium to {method} in {CALL_DEADLINE:?}"))?;
            if answer["id"] != json!(id) {
                continue; // an event, or the answer to an abandoned call
            }
            if let Some(err) = answer.get("error") {
                bail!("{method}: {err}");
            }
            return Ok(answer["result"].clone());
        }
    }

    /// Opens `url` in a new tab of `width`×`height` CSS pixels.
    pub fn open(&mut self, url: &str, width: u32, height: u32) -> anyhow::Result<Page> {
        let target = self.call(None, "Target.createTarget", json!({ "url": "about:blank" }))?;
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        )?;
        let session = attached["sessionId"]
            .as_str()
            .context("no session id from Target.attachToTarget")?
            .to_string();
        self.call(
            Some(&session),
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )?;
        let nav = self.call(Some(&session), "Page.navigate", json!({ "url": url }))?;
        if let Some(err) = nav.get("errorText") {
            bail!("cannot open {url}: {err}");
        }
        Ok(Page { session })
    }

    /// Evaluates `expression` in the page; its value (awaited if it is a promise).
    pub fn eval(&mut self, page: &Page, expression: &str) -> anyhow::Result<Value> {
        let out = self.call(
            Some(&page.session),
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        )?;
        if let Some(ex) = out.get("exceptionDetails") {
            bail!("{expression}: {ex}");
        }
        Ok(out["result"]["value"].clone())
    }

    /// Polls `condition` until it is true; fails with the page's text when `within` passes.
    pub fn wait_for(
        &mut self,
        page: &Page,
        condition: &str,
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            // While the page is still loading the condition may throw: that is "not yet".
            let last = match self.eval(page, &format!("Boolean({condition})")) {
                Ok(Value::Bool(true)) => return Ok(()),
                Ok(v) => v.to_string(),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                let text = self.eval(page, "document.body ? document.body.innerText : ''")?;
                bail!(
                    "{condition} not true within {within:?} (last: {last}); the page shows:\n{}",
                    text.as_str().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The HTML of the elements matching the CSS `selector` (rendered DOM, not the source).
    pub fn html(&mut self, page: &Page, selector: &str) -> anyhow::Result<String> {
        let selector = serde_json::to_string(selector)?;
        Ok(self
            .eval(
                page,
                &format!(
                    "[...document.querySelectorAll({selector})].map(e => e.outerHTML).join('\\n')"
                ),
            )?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// A PNG screenshot of the viewport.
    pub fn screenshot(&mut self, page: &Page) -> anyhow::Result<Vec<u8>> {
        let shot = self.call(
            Some(&page.session),
            "Page.captureScreenshot",
            json!({ "format": "png" }),
        )?;
        let data = shot["data"].as_str().context("no screenshot data")?;
        Ok(base64::engine::general_purpose::STANDARD.decode(data)?)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
