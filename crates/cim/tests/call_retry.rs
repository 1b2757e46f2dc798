//! `cim::call_answered` against a real nats-server and an entity served over real wRPC that
//! never answers the first invocation it gets (a lost reply, as wrpc-transport-nats 0.29
//! loses one under load): the command is sent again with the same id after the first
//! deadline, and the second send's answer is the answer — instead of waiting out the call.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cim_testkit::NatsServer;
use futures::StreamExt;

mod bindings {
    wit_bindgen_wrpc::generate!({
        world: "entity-component",
        path: "../../wit",
    });
}

use bindings::cim::ecs::types::{Command, EcsError, Event};

/// The command ids the entity saw, in order; it leaves the first invocation unanswered.
#[derive(Clone, Default)]
struct Forgetful(Arc<Mutex<Vec<String>>>);

impl<Ctx: Send> bindings::exports::cim::ecs::entity::Handler<Ctx> for Forgetful {
    async fn handle(&self, _cx: Ctx, cmd: Command) -> anyhow::Result<Result<Vec<Event>, EcsError>> {
        let first = {
            let mut seen = self.0.lock().unwrap();
            seen.push(cmd.meta.id.clone());
            seen.len() == 1
        };
        if first {
            std::future::pending::<()>().await;
        }
        Ok(Ok(Vec::new()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_command_is_sent_again_with_its_id_and_the_next_answer_counts() {
    let server = NatsServer::start().unwrap();
    let nats = cim_nats::NatsConfig::new(server.url(), None)
        .connect("call-retry")
        .await
        .unwrap();
    let entity = Forgetful::default();
    let srv = wrpc_transport_nats::Client::new(nats.clone(), "test.cim-thing", None)
        .await
        .unwrap();
    for (_, _, mut calls) in bindings::serve(&srv, entity.clone()).await.unwrap() {
        tokio::spawn(async move {
            while let Some(Ok(call)) = calls.next().await {
                tokio::spawn(call);
            }
        });
    }
    let cmd = cim::command_for("thing", "t-1", "Do", "{}", None);
    let answer = cim::call_answered(
        &nats,
        "test",
        &cmd,
        Duration::from_millis(500),
        Duration::from_secs(60),
    )
    .await
    .expect("answered by a later send");
    assert_eq!(answer.map(|events| events.len()), Ok(0));
    let seen = entity.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one resend: {seen:?}");
    assert!(
        seen.iter().all(|id| *id == cmd.meta.id),
        "the same command id"
    );
}

#[tokio::test]
async fn a_kind_nothing_serves_fails_at_once_instead_of_being_sent_again() {
    let server = NatsServer::start().unwrap();
    let nats = cim_nats::NatsConfig::new(server.url(), None)
        .connect("call-retry")
        .await
        .unwrap();
    let cmd = cim::command_for("nothing", "n-1", "Do", "{}", None);
    let answer = cim::call_answered(
        &nats,
        "test",
        &cmd,
        Duration::from_millis(500),
        Duration::from_secs(600),
    )
    .await;
    assert!(answer.is_err(), "no responders is a transport failure");
}
