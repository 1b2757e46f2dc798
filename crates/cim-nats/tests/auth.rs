//! Operator-mode authentication on a real nats-server: anonymous clients are refused, each
//! role's user can do what its role needs, and NATS itself refuses what the role may not do —
//! forged events, and changing, purging or deleting the append-only events stream.

use std::time::Duration;

use cim_domain::{EntityRef, Envelope, NewEvent, Token};
use cim_nats::auth::{LocalAuth, Role};
use cim_nats::{EventStore, NatsConfig};
use cim_testkit::NatsServer;
use tokio::sync::mpsc;

/// A server in operator mode with every role's `.creds` file written beside it.
struct Secured {
    nats: NatsServer,
}

impl Secured {
    fn start() -> Self {
        let auth = LocalAuth::generate().unwrap();
        let nats = NatsServer::start_with_config(&auth.server_config())
            .expect("operator-mode server starts");
        for role in Role::ALL {
            auth.write_creds(role, &Self::creds_in(&nats, role))
                .unwrap();
        }
        Self { nats }
    }

    fn creds_in(nats: &NatsServer, role: Role) -> std::path::PathBuf {
        nats.scratch().join(format!("{}.creds", role.name()))
    }

    /// A connection as `role`, and the server's error messages to it.
    async fn connect(&self, role: Role) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let config = NatsConfig::for_role(self.nats.url(), &Self::creds_in(&self.nats, role), role);
        let mut opts = async_nats::ConnectOptions::new()
            .credentials_file(config.creds.as_ref().unwrap())
            .await
            .unwrap()
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        let _ = tx.send(format!("{e:?}").to_lowercase());
                    }
                }
            });
        if let Some(prefix) = &config.inbox_prefix {
            opts = opts.custom_inbox_prefix(prefix);
        }
        let client = tokio::time::timeout(Duration::from_secs(10), opts.connect(self.nats.url()))
            .await
            .expect("connects in time")
            .unwrap_or_else(|e| panic!("the {} user connects: {e}", role.name()));
        (client, rx)
    }
}

fn event(name: &str) -> NewEvent {
    NewEvent {
        name: Token::parse("event name", name).unwrap(),
        schema_version: 1,
        payload: b"{}".to_vec(),
        meta: Envelope::originating("c", 1),
    }
}

/// Waits (bounded) for the server to report a permissions violation naming `subject`.
async fn refused(errors: &mut mpsc::UnboundedReceiver<String>, subject: &str) {
    let wanted = subject.to_lowercase();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = errors.recv().await {
            if e.contains("permissions violation") && e.contains(&wanted) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(found, "NATS reports a permissions violation for {subject}");
}

/// The events stream's message count, read by the admin.
async fn messages(admin: &async_nats::Client) -> u64 {
    let mut stream = async_nats::jetstream::new(admin.clone())
        .get_stream("CIM_EVENTS")
        .await
        .expect("the events stream exists");
    stream.info().await.unwrap().state.messages
}

/// Sends a JetStream API request the role may not send; it must go unanswered.
async fn denied_api(client: &async_nats::Client, subject: String, body: &str) {
    let reply = tokio::time::timeout(
        Duration::from_secs(2),
        client.request(subject, body.to_string().into()),
    )
    .await;
    assert!(
        !matches!(reply, Ok(Ok(_))),
        "a refused request gets no JetStream answer"
    );
}

#[tokio::test]
async fn anonymous_is_refused_and_the_generated_user_can_use_jetstream() {
    let lattice = Secured::start();
    let anonymous = NatsConfig::new(lattice.nats.url(), None)
        .connect("anon")
        .await;
    assert!(anonymous.is_err(), "anonymous connections are refused");

    let (admin, _) = lattice.connect(Role::Admin).await;
    EventStore::open(admin)
        .await
        .expect("the admin creates the store");
    let (events, _) = lattice.connect(Role::Events).await;
    let store = EventStore::open(events)
        .await
        .expect("the events role opens the existing store without changing it");
    let entity = EntityRef::new("document", "auth-1").unwrap();
    let stored = store
        .append(&entity, 0, vec![event("Created")])
        .await
        .unwrap();
    assert_eq!(stored[0].version, 1);
}

#[tokio::test]
async fn a_reader_reads_events_but_its_forged_event_is_refused_by_nats() {
    let lattice = Secured::start();
    let (admin, _) = lattice.connect(Role::Admin).await;
    let entity = EntityRef::new("document", "auth-2").unwrap();
    EventStore::open(admin.clone())
        .await
        .unwrap()
        .append(&entity, 0, vec![event("Created")])
        .await
        .unwrap();

    let (reader, mut errors) = lattice.connect(Role::Reader).await;
    let store = EventStore::attach(reader.clone())
        .await
        .expect("a reader attaches");
    let read = store.read(&entity, 1, 10).await.expect("a reader reads");
    assert_eq!(read.len(), 1);

    let subject = "cim.evt.document.auth-2";
    reader.publish(subject, "forged".into()).await.unwrap();
    reader.flush().await.unwrap();
    refused(&mut errors, subject).await;
    assert_eq!(messages(&admin).await, 1, "nothing forged was stored");
}

#[tokio::test]
async fn only_the_events_role_publishes_events() {
    let lattice = Secured::start();
    let (admin, _) = lattice.connect(Role::Admin).await;
    EventStore::open(admin.clone()).await.unwrap();
    for role in [Role::Host, Role::Client] {
        let (client, mut errors) = lattice.connect(role).await;
        let subject = format!("cim.evt.document.forged-by-{}", role.name());
        client.publish(subject.clone(), "x".into()).await.unwrap();
        client.flush().await.unwrap();
        refused(&mut errors, &subject).await;
    }
    assert_eq!(messages(&admin).await, 0, "no forged event was stored");
}

#[tokio::test]
async fn no_role_but_the_admin_may_update_purge_or_delete_the_events_stream() {
    let lattice = Secured::start();
    let (admin, _) = lattice.connect(Role::Admin).await;
    let entity = EntityRef::new("document", "auth-3").unwrap();
    EventStore::open(admin.clone())
        .await
        .unwrap()
        .append(&entity, 0, vec![event("Created")])
        .await
        .unwrap();
    let shorter = r#"{"name":"CIM_EVENTS","subjects":["cim.evt.>"],"max_age":1000000000,"deny_delete":true,"deny_purge":true}"#;
    for role in [Role::Host, Role::Events, Role::Client, Role::Reader] {
        let (client, mut errors) = lattice.connect(role).await;
        for (subject, body) in [
            ("$JS.API.STREAM.UPDATE.CIM_EVENTS", shorter),
            ("$JS.API.STREAM.PURGE.CIM_EVENTS", ""),
            ("$JS.API.STREAM.MSG.DELETE.CIM_EVENTS", r#"{"seq":1}"#),
            ("$JS.API.STREAM.DELETE.CIM_EVENTS", ""),
        ] {
            denied_api(&client, subject.to_string(), body).await;
            refused(&mut errors, subject).await;
        }
    }
    assert_eq!(
        messages(&admin).await,
        1,
        "the stream and its event are intact"
    );
}

#[tokio::test]
async fn the_events_stream_itself_refuses_deletes_and_purges_even_to_the_admin() {
    let lattice = Secured::start();
    let (admin, _) = lattice.connect(Role::Admin).await;
    let entity = EntityRef::new("document", "auth-4").unwrap();
    EventStore::open(admin.clone())
        .await
        .unwrap()
        .append(&entity, 0, vec![event("Created")])
        .await
        .unwrap();
    let api = |subject: &str, body: &str| {
        let admin = admin.clone();
        let (subject, body) = (subject.to_string(), body.to_string());
        async move {
            let reply =
                tokio::time::timeout(Duration::from_secs(5), admin.request(subject, body.into()))
                    .await
                    .expect("JetStream answers the admin")
                    .unwrap();
            serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap()
        }
    };
    let delete = api("$JS.API.STREAM.MSG.DELETE.CIM_EVENTS", r#"{"seq":1}"#).await;
    assert!(
        delete.get("error").is_some(),
        "message delete refused: {delete}"
    );
    let purge = api("$JS.API.STREAM.PURGE.CIM_EVENTS", "").await;
    assert!(purge.get("error").is_some(), "purge refused: {purge}");
    let reopen = r#"{"name":"CIM_EVENTS","subjects":["cim.evt.>"],"storage":"file","deny_delete":false,"deny_purge":false,"allow_direct":true,"allow_atomic":true}"#;
    let update = api("$JS.API.STREAM.UPDATE.CIM_EVENTS", reopen).await;
    assert!(
        update.get("error").is_some(),
        "an update that would allow deletes again is refused: {update}"
    );
    assert_eq!(messages(&admin).await, 1);
}

#[tokio::test]
async fn an_events_stream_that_allows_deletes_becomes_append_only_when_the_admin_opens_it() {
    let lattice = Secured::start();
    let (admin, _) = lattice.connect(Role::Admin).await;
    let old = r#"{"name":"CIM_EVENTS","subjects":["cim.evt.>"],"storage":"file","allow_direct":true,"allow_atomic":true}"#;
    tokio::time::timeout(
        Duration::from_secs(5),
        admin.request("$JS.API.STREAM.CREATE.CIM_EVENTS", old.into()),
    )
    .await
    .unwrap()
    .unwrap();
    let (events, _) = lattice.connect(Role::Events).await;
    assert!(
        EventStore::open(events).await.is_err(),
        "the events role may not change the stream, so it cannot open one that needs changing"
    );
    EventStore::open(admin.clone()).await.unwrap();
    let mut stream = async_nats::jetstream::new(admin)
        .get_stream("CIM_EVENTS")
        .await
        .unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert!(config.deny_delete && config.deny_purge);
}
