//! The sequential-loop experiment of issue 14 (docs/operations.md, "Lost invocations"): `cim
//! call document Tag` run again and again on one document, one process after another as a
//! user's shell loop runs it, while busy threads compete for the cores. Prints the calls' wall
//! times, how many were sent again (no answer within the first deadline), how many took longer
//! than the first deadline plus one resend, and how many failed; then checks what was stored:
//! one event per answered call, none twice, on a chain that verifies.
//!
//! `cargo run -p cim-tests --example sequential_calls -- [CALLS=2000] [BUSY_THREADS=2]`

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cim_domain::EntityRef;
use cim_tests::lattice::TestLattice;

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .map(|a| a.parse().expect("a number"))
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (calls, busy) = (arg(1, 2000), arg(2, 2));
    let lattice = TestLattice::start().await?;
    let outcome = run(&lattice, calls, busy).await;
    if outcome.is_err() {
        eprintln!("host log (last lines):\n{}", lattice.log_tail("host", 60));
    }
    outcome
}

async fn run(lattice: &TestLattice, calls: usize, busy: usize) -> anyhow::Result<()> {
    let cwd = cim_testkit::workspace_root();
    lattice
        .cim_ok(
            &[
                "call",
                "document",
                "Create",
                "--id",
                "loop",
                "--json",
                r#"{"title":"Loop","content_cid":"bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e","media_type":"text/plain","categories":["loop"]}"#,
            ],
            &cwd,
        )
        .await;

    let busy_threads = cim_testkit::BusyThreads::start(busy);

    let first = cim::FIRST_DEADLINE;
    let started = Instant::now();
    let (mut times, mut resent, mut failed) = (Vec::with_capacity(calls), 0, Vec::new());
    for i in 0..calls {
        let t = Instant::now();
        let out = lattice
            .cim_command()?
            .args([
                "call",
                "document",
                "Tag",
                "--id",
                "loop",
                "--json",
                &format!(r#"{{"tag":"t{i}"}}"#),
            ])
            .output()
            .await?;
        times.push(t.elapsed());
        let stderr = String::from_utf8_lossy(&out.stderr);
        resent += stderr.matches("sending it again").count();
        if !out.status.success() {
            failed.push(format!("call {i}: {}", stderr.trim()));
        }
    }
    let elapsed = started.elapsed();
    drop(busy_threads);

    let nats = lattice.nats().await?;
    let events = cim::read_events(nats, &EntityRef::new("document", "loop")?).await?;
    let tags: Vec<&[u8]> = events[1..].iter().map(|e| e.payload.as_slice()).collect();
    let distinct: BTreeSet<&[u8]> = tags.iter().copied().collect();

    times.sort();
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    let slow = times.iter().filter(|t| **t > first * 2).count();
    println!(
        "sequential calls: {calls} in {:.0}s with {busy} busy threads; p50 {:.0} ms, p99 {:.0} ms, max {:.2} s",
        elapsed.as_secs_f64(),
        pct(0.5).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        times.last().map(Duration::as_secs_f64).unwrap_or_default()
    );
    println!(
        "sequential calls: {resent} sent again after {} s without an answer; {slow} slower than the first deadline plus one resend ({} s); {} failed",
        first.as_secs(),
        (first * 2).as_secs(),
        failed.len()
    );
    println!(
        "sequential calls: {} events stored for {} answered calls, {} distinct (chain verified)",
        tags.len(),
        calls - failed.len(),
        distinct.len()
    );
    for f in failed.iter().take(5) {
        println!("  {f}");
    }
    anyhow::ensure!(distinct.len() == tags.len(), "an event was stored twice");
    anyhow::ensure!(
        tags.len() >= calls - failed.len(),
        "an answered call's event is missing"
    );
    Ok(())
}
