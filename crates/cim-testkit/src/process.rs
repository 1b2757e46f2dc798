//! Child processes that die with their guard, free ports, and deadline polling.

use std::fs::File;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TestkitError;

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_port() -> Result<u16, TestkitError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|source| TestkitError::Io {
        context: "binding a free loopback port".into(),
        source,
    })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| TestkitError::Io {
            context: "reading the bound port".into(),
            source,
        })
}

/// Calls `probe` every `interval` until it returns `Some` or `timeout` passes.
pub fn poll_until<T>(
    timeout: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(interval.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// A child process whose output goes to a log file; dropping the guard kills it.
#[derive(Debug)]
pub struct ChildGuard {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl ChildGuard {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> Result<Self, TestkitError> {
        let io = |context: String| move |source| TestkitError::Io { context, source };
        let out = File::create(log).map_err(io(format!("creating {}", log.display())))?;
        let err = out.try_clone().map_err(io("cloning log handle".into()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io(format!("spawning {name}")))?;
        Ok(Self {
            name,
            child,
            log: log.to_owned(),
        })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process has written so far.
    pub fn output(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// An error if the process has already exited.
    pub fn check_alive(&mut self) -> Result<(), TestkitError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(TestkitError::Exited {
                name: self.name,
                status: status.to_string(),
                output: self.output(),
            }),
            Ok(None) => Ok(()),
            Err(source) => Err(TestkitError::Io {
                context: format!("checking on {}", self.name),
                source,
            }),
        }
    }

    /// Polls `ready` until it succeeds, failing early if the process exits.
    pub fn wait_ready(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), TestkitError> {
        let mut exited = None;
        let ok = poll_until(timeout, Duration::from_millis(50), || {
            if let Err(e) = self.check_alive() {
                exited = Some(e);
                return Some(false);
            }
            ready().then_some(true)
        });
        match (ok, exited) {
            (_, Some(e)) => Err(e),
            (Some(true), None) => Ok(()),
            _ => Err(TestkitError::Timeout {
                name: self.name,
                secs: timeout.as_secs(),
                output: self.output(),
            }),
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Threads that keep `n` cores busy (as a build does) until dropped: the load under which the
/// wRPC experiments and tests measure lost replies.
pub struct BusyThreads {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl BusyThreads {
    /// Starts `n` threads that spin until [`BusyThreads`] is dropped.
    pub fn start(n: usize) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                    }
                })
            })
            .collect();
        Self { stop, threads }
    }
}

impl Drop for BusyThreads {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
