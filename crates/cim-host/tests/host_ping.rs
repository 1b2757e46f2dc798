//! The launcher starts a real wasmCloud 1.9.x host that joins a lattice on a real nats-server
//! and answers the control interface. This proves the toolchain pin in CI.

use std::process::Command;
use std::time::{Duration, Instant};

use cim_testkit::{ChildGuard, NatsServer};

#[tokio::test(flavor = "multi_thread")]
async fn host_joins_the_lattice_and_answers_ping() {
    let nats = NatsServer::start().expect("nats-server");
    let lattice = format!("ping{}", std::process::id());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cim-host"));
    cmd.args([
        "--nats-host",
        "127.0.0.1",
        "--nats-port",
        &nats.port().to_string(),
    ])
    .args(["--lattice", &lattice, "--label", "role=test"])
    .env("RUST_LOG", "info");
    let mut host =
        ChildGuard::spawn("cim-host", cmd, &nats.scratch().join("host.log")).expect("spawn host");

    let client = async_nats::connect(nats.url()).await.expect("connect");
    let subject = format!("wasmbus.ctl.v1.{lattice}.host.ping");
    let deadline = Instant::now() + Duration::from_secs(120);
    let reply = loop {
        host.check_alive().expect("host is running");
        let attempt = tokio::time::timeout(
            Duration::from_secs(2),
            client.request(subject.clone(), "".into()),
        )
        .await;
        if let Ok(Ok(msg)) = attempt {
            break msg;
        }
        assert!(
            Instant::now() < deadline,
            "no ping reply in time; host log:\n{}",
            host.output()
        );
    };
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).expect("JSON reply");
    assert_eq!(body["success"], true, "{body}");
    let info = &body["response"];
    let id = info["id"].as_str().expect("host id");
    assert!(id.starts_with('N') && id.len() == 56, "a server nkey: {id}");
    assert_eq!(info["version"], "1.9.2", "{info}");
    assert_eq!(
        info["labels"]["role"], "test",
        "labels pass through: {info}"
    );
    assert_eq!(info["lattice"], lattice.as_str(), "{info}");
}
