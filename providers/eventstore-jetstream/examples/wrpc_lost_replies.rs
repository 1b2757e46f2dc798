//! Measures how many wRPC calls over NATS go unanswered under CPU load (docs/operations.md,
//! "Lost invocations"): a reactor served over wRPC in this process, called by many concurrent
//! tasks while busy threads compete for the cores.
//!
//! `cargo run -p eventstore-jetstream --example wrpc_lost_replies -- [CALLERS] [CALLS] [BUSY] [TIMEOUT_SECS]`
//!
//! Runs the calls twice under the same load, through wrpc-transport-nats 0.29's client and
//! through the CLI's `cim_wrpc::nats::Client` (which subscribes before it publishes), and
//! prints `unanswered <n> of <total>` for each; with `RUST_LOG=wrpc_transport_nats=debug` the transport
//! also logs every reply it drops because the call's subscription was not registered yet.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cim_domain::{EntityRef, Envelope, NewEvent, RecordedEvent, Token};
use cim_testkit::NatsServer;
use futures::StreamExt;

mod bindings {
    wit_bindgen_wrpc::generate!({
        world: "projection-component",
        path: "../../wit",
    });
}

const PREFIX: &str = "race.reactor";

#[derive(Clone)]
struct Reactor;

impl<Ctx: Send> bindings::exports::cim::ecs::reactor::Handler<Ctx> for Reactor {
    async fn on_event(
        &self,
        _cx: Ctx,
        _ev: bindings::cim::ecs::types::Event,
    ) -> anyhow::Result<Result<(), bindings::cim::ecs::types::EcsError>> {
        Ok(Ok(()))
    }
}

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber_init();
    let (callers, calls, busy) = (arg(1, 16), arg(2, 200), arg(3, 2));
    let timeout = Duration::from_secs(arg(4, 30) as u64);
    let server = NatsServer::start()?;
    let nats = cim_nats::NatsConfig::new(server.url(), None)
        .connect("wrpc-lost-replies")
        .await?;
    let srv = wrpc_transport_nats::Client::new(nats.clone(), PREFIX, None).await?;
    for (_, _, mut stream) in bindings::serve(&srv, Reactor).await? {
        tokio::spawn(async move {
            while let Some(Ok(call)) = stream.next().await {
                tokio::spawn(call);
            }
        });
    }
    let busy_threads = cim_testkit::BusyThreads::start(busy);
    let entity = EntityRef::new("race", "r")?;
    let event = RecordedEvent::seal(
        &entity,
        1,
        None,
        NewEvent {
            name: Token::parse("event name", "Raced")?,
            schema_version: 1,
            payload: b"{}".to_vec(),
            meta: Envelope::originating("race", 0),
        },
    )?;
    let wit_event = cim_wrpc::event_out(event);
    // Both callers under the same load, one after the other: the transport's client (what the
    // host and the provider SDK call with) and the CLI's `cim_wrpc::nats::Client`.
    let transport = wrpc_transport_nats::Client::new(nats.clone(), PREFIX, None).await?;
    let (lost, took) = run_calls(transport, &wit_event, callers, calls, timeout).await?;
    println!(
        "unanswered {lost} of {} with wrpc-transport-nats 0.29's client ({callers} callers, {busy} busy threads, {took:.1}s)",
        callers * calls
    );
    let ours = cim_wrpc::nats::Client::new(nats.clone(), PREFIX);
    let (lost, took) = run_calls(ours, &wit_event, callers, calls, timeout).await?;
    println!(
        "unanswered {lost} of {} with cim_wrpc::nats::Client ({callers} callers, {busy} busy threads, {took:.1}s)",
        callers * calls
    );
    drop(busy_threads);
    Ok(())
}

fn tracing_subscriber_init() {
    use tracing_subscriber::EnvFilter;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
}

/// `callers` concurrent tasks making `calls` calls each through `client`; how many got no
/// answer within `timeout`, and the seconds it all took.
async fn run_calls<C>(
    client: C,
    event: &cim_wrpc::Event,
    callers: usize,
    calls: usize,
    timeout: Duration,
) -> anyhow::Result<(usize, f64)>
where
    C: wrpc_transport::Invoke<Context = Option<async_nats::HeaderMap>> + Clone + 'static,
{
    let unanswered = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (client, ev, unanswered) = (client.clone(), event.clone(), Arc::clone(&unanswered));
            tokio::spawn(async move {
                for _ in 0..calls {
                    let call = cim_wrpc::bindings::cim::ecs::reactor::on_event(&client, None, &ev);
                    match tokio::time::timeout(timeout, call).await {
                        Ok(Ok(Ok(()))) => {}
                        Ok(other) => panic!("unexpected answer: {other:?}"),
                        Err(_) => {
                            unanswered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    Ok((
        unanswered.load(Ordering::Relaxed),
        t.elapsed().as_secs_f64(),
    ))
}
