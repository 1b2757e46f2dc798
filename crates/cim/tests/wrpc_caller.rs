//! `cim_wrpc::nats::Client`, the CLI's wRPC caller, against a real nats-server and an entity
//! served by wrpc-transport-nats 0.29 (what the wasmCloud host serves components with): the
//! same wire protocol both ways, parameters and results larger than one NATS message, a
//! function nothing serves, and many concurrent calls on a busy machine, each answered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cim_testkit::NatsServer;
use futures::StreamExt;

mod bindings {
    wit_bindgen_wrpc::generate!({
        world: "entity-component",
        path: "../../wit",
    });
}

use bindings::cim::ecs::types::{Command, EcsError, Envelope, Event};

/// Answers every command with one event whose payload is the command's payload.
#[derive(Clone, Default)]
struct Echo;

impl<Ctx: Send> bindings::exports::cim::ecs::entity::Handler<Ctx> for Echo {
    async fn handle(&self, _cx: Ctx, cmd: Command) -> anyhow::Result<Result<Vec<Event>, EcsError>> {
        Ok(Ok(vec![Event {
            cid: "echo".into(),
            previous: None,
            entity: cmd.entity,
            version: 1,
            name: "Echoed".into(),
            schema_version: 1,
            payload: cmd.payload,
            meta: Envelope {
                id: cmd.meta.id,
                correlation_id: cmd.meta.correlation_id,
                causation_id: None,
                occurred_at_ms: 0,
            },
        }]))
    }
}

async fn serve_echo(nats: &async_nats::Client, prefix: &str) {
    let srv = wrpc_transport_nats::Client::new(nats.clone(), prefix.to_owned(), None)
        .await
        .unwrap();
    for (_, _, mut calls) in bindings::serve(&srv, Echo).await.unwrap() {
        tokio::spawn(async move {
            while let Some(Ok(call)) = calls.next().await {
                tokio::spawn(call);
            }
        });
    }
}

async fn connect(server: &NatsServer) -> async_nats::Client {
    cim_nats::NatsConfig::new(server.url(), None)
        .connect("wrpc-caller")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_and_results_larger_than_one_message_arrive_whole() {
    let server = NatsServer::start().unwrap();
    let nats = connect(&server).await;
    serve_echo(&nats, "test.cim-echo").await;
    let max = nats.server_info().max_payload;
    // Three messages' worth each way.
    let payload: Vec<u8> = (0..3 * max).map(|i| (i % 251) as u8).collect();
    let mut cmd = cim::command_for("echo", "e-1", "Do", "{}", None);
    cmd.payload = payload.clone().into();
    let client = cim_wrpc::nats::Client::new(nats.clone(), "test.cim-echo");
    let events = tokio::time::timeout(
        Duration::from_secs(30),
        cim_wrpc::bindings::cim::ecs::entity::handle(&client, None, &cmd),
    )
    .await
    .expect("answered")
    .expect("the call succeeds")
    .expect("the entity's answer");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].payload.len(), payload.len());
    assert!(events[0].payload == payload, "the same bytes back");
}

#[tokio::test]
async fn a_function_nothing_serves_is_an_error_at_once() {
    let server = NatsServer::start().unwrap();
    let nats = connect(&server).await;
    let client = cim_wrpc::nats::Client::new(nats, "test.cim-nothing");
    let cmd = cim::command_for("nothing", "n-1", "Do", "{}", None);
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        cim_wrpc::bindings::cim::ecs::entity::handle(&client, None, &cmd),
    )
    .await
    .expect("no wait for a deadline")
    .expect_err("nothing serves it");
    assert!(format!("{err:#}").contains("no responders"), "{err:#}");
}

#[tokio::test]
async fn a_callee_that_never_answers_the_handshake_is_an_error_after_the_deadline() {
    let server = NatsServer::start().unwrap();
    let nats = connect(&server).await;
    // Something subscribed to the function's subject that never answers.
    let _silent = nats
        .subscribe("test.cim-silent.wrpc.0.0.1.cim:ecs/entity@0.1.0.handle")
        .await
        .unwrap();
    nats.flush().await.unwrap();
    let client = cim_wrpc::nats::Client::new(nats, "test.cim-silent")
        .with_handshake_deadline(Duration::from_millis(300));
    let cmd = cim::command_for("silent", "s-1", "Do", "{}", None);
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        cim_wrpc::bindings::cim::ecs::entity::handle(&client, None, &cmd),
    )
    .await
    .expect("the client's own deadline ends the wait")
    .expect_err("no handshake");
    assert!(format!("{err:#}").contains("no handshake"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_one_of_many_concurrent_calls_on_a_busy_machine_is_answered() {
    let server = NatsServer::start().unwrap();
    let nats = connect(&server).await;
    serve_echo(&nats, "test.cim-echo").await;
    let busy_threads = cim_testkit::BusyThreads::start(2);
    let client = cim_wrpc::nats::Client::new(nats.clone(), "test.cim-echo");
    let unanswered = Arc::new(AtomicUsize::new(0));
    let mut callers = Vec::new();
    for c in 0..32 {
        let (client, unanswered) = (client.clone(), unanswered.clone());
        callers.push(tokio::spawn(async move {
            for i in 0..50 {
                let cmd = cim::command_for("echo", &format!("e-{c}"), "Do", "{}", None);
                match tokio::time::timeout(
                    Duration::from_secs(20),
                    cim_wrpc::bindings::cim::ecs::entity::handle(&client, None, &cmd),
                )
                .await
                {
                    Ok(answer) => {
                        let events = answer.expect("the call succeeds").expect("an answer");
                        assert_eq!(
                            events[0].meta.id, cmd.meta.id,
                            "call {c}/{i}: its own answer"
                        );
                    }
                    Err(_) => {
                        unanswered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for c in callers {
        c.await.unwrap();
    }
    drop(busy_threads);
    assert_eq!(
        unanswered.load(Ordering::Relaxed),
        0,
        "calls left unanswered"
    );
}
