//! Background processes of the local lattice: started detached with a pid file and a log,
//! recognised on the next run (so `cim up` twice reuses them), stopped by `cim down`.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A named background process of the lattice.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// Short name (`nats`, `wadm`, `host`).
    pub name: &'static str,
    /// The executable, used to recognise the process.
    pub program: PathBuf,
    pid_file: PathBuf,
    log_file: PathBuf,
    cwd: Option<PathBuf>,
}

fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn runs(pid: u32, program: &Path) -> bool {
    if matches!(proc_state(pid), None | Some('Z') | Some('X')) {
        return false;
    }
    let Some(name) = program.file_name() else {
        return false;
    };
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let argv0 = c.split(|b| *b == 0).next().unwrap_or_default();
            Path::new(std::ffi::OsStr::new(
                std::str::from_utf8(argv0).unwrap_or_default(),
            ))
            .file_name()
            .is_some_and(|n| n == name)
        })
        .unwrap_or(false)
}

impl Daemon {
    /// A daemon whose pid file and log live in `state_dir`.
    pub fn new(name: &'static str, program: PathBuf, state_dir: &Path) -> Self {
        Self {
            name,
            program,
            cwd: None,
            pid_file: state_dir.join(format!("{name}.pid")),
            log_file: state_dir.join(format!("{name}.log")),
        }
    }

    /// Runs the daemon in `dir` (for programs that write next to their working directory).
    pub fn with_cwd(mut self, dir: PathBuf) -> Self {
        self.cwd = Some(dir);
        self
    }

    /// The pid of the running daemon, if its pid file names a live process of this program.
    pub fn running(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        runs(pid, &self.program).then_some(pid)
    }

    /// Starts the daemon unless it is already running; returns its pid and whether it started.
    pub fn ensure(&self, args: &[String], env: &[(&str, String)]) -> anyhow::Result<(u32, bool)> {
        if let Some(pid) = self.running() {
            return Ok((pid, false));
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .with_context(|| format!("cannot open {}", self.log_file.display()))?;
        let mut cmd = Command::new(&self.program);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C in the terminal that ran `cim up` leaves it alone.
            .process_group(0);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {} ({})", self.name, self.program.display()))?;
        let pid = child.id();
        std::fs::write(&self.pid_file, pid.to_string())?;
        // Reap the child if it exits while this process still lives (tests, long `cim` runs).
        std::thread::spawn(move || child.wait());
        Ok((pid, true))
    }

    /// The last `n` lines of the daemon's log, for error messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Fails with the log's tail if the daemon is not running. (Process state, not the command
    /// line: right after the fork the child still shows this program's command line.)
    pub fn check_alive(&self) -> anyhow::Result<()> {
        let pid: Option<u32> = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|p| p.trim().parse().ok());
        if matches!(pid.and_then(proc_state), None | Some('Z') | Some('X')) {
            bail!(
                "{} exited; last lines of {}:\n{}",
                self.name,
                self.log_file.display(),
                self.log_tail(30)
            );
        }
        Ok(())
    }

    /// Stops the daemon: SIGTERM, then SIGKILL if it is still there after `grace`.
    pub fn stop(&self, grace: Duration) -> anyhow::Result<bool> {
        let Some(pid) = self.running() else {
            let _ = std::fs::remove_file(&self.pid_file);
            return Ok(false);
        };
        let target = Pid::from_raw(i32::try_from(pid)?);
        let _ = kill(target, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while runs(pid, &self.program) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if runs(pid, &self.program) {
            let _ = kill(target, Signal::SIGKILL);
        }
        let _ = std::fs::remove_file(&self.pid_file);
        Ok(true)
    }
}
