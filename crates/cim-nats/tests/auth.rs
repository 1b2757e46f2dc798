//! Operator-mode authentication on a real nats-server: anonymous clients are refused, the
//! generated user can use JetStream.

use cim_domain::{EntityRef, Envelope, NewEvent, Token};
use cim_nats::auth::LocalAuth;
use cim_nats::{EventStore, NatsConfig};
use cim_testkit::NatsServer;

#[tokio::test]
async fn anonymous_is_refused_and_the_generated_user_can_use_jetstream() {
    let auth = LocalAuth::generate().unwrap();
    let nats =
        NatsServer::start_with_config(&auth.server_config()).expect("operator-mode server starts");
    let creds = nats.scratch().join("cim.creds");
    auth.write_creds(&creds).unwrap();

    let anonymous = NatsConfig::new(nats.url(), None).connect("anon").await;
    assert!(anonymous.is_err(), "anonymous connections are refused");

    let client = NatsConfig::new(nats.url(), Some(&creds))
        .connect("cim")
        .await
        .expect("creds work");
    let store = EventStore::open(client)
        .await
        .expect("JetStream is enabled for the account");
    let entity = EntityRef::new("document", "auth-1").unwrap();
    let ev = NewEvent {
        name: Token::parse("event name", "Created").unwrap(),
        schema_version: 1,
        payload: b"{}".to_vec(),
        meta: Envelope::originating("c", 1),
    };
    let stored = store.append(&entity, 0, vec![ev]).await.unwrap();
    assert_eq!(stored[0].version, 1);
}
