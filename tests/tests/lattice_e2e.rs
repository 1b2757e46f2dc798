//! End to end on a real lattice: `cim up` (nats-server 2.15.1 with operator auth, wadm 0.21.1,
//! the wasmcloud-host 0.27.1 host, the JetStream event-store provider), then commands to the
//! deployed entity components over wRPC, checked against what lands in JetStream.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cim::{call, command_for, read_events};
use cim_domain::{EcsError, EntityRef};
use cim_model::audit::EventAudited;
use cim_tests::lattice::{call_idempotent, TestLattice};
use tokio::io::{AsyncBufReadExt, BufReader};

#[path = "e2e/agent.rs"]
mod agent;
#[path = "e2e/pipeline.rs"]
mod pipeline;
#[path = "e2e/readme.rs"]
mod readme;
#[path = "e2e/ui.rs"]
mod ui;

const CONTENT: &str = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";

fn create_doc() -> String {
    format!(
        r#"{{"title":"Invoice 42","content_cid":"{CONTENT}","media_type":"application/pdf","categories":["invoice","contract"]}}"#
    )
}

async fn send(
    nats: &async_nats::Client,
    lattice: &str,
    kind: &str,
    id: &str,
    name: &str,
    json: &str,
    expected: Option<u64>,
) -> Result<Vec<String>, EcsError> {
    Box::pin(cim::call_answered(
        nats,
        lattice,
        &command_for(kind, id, name, json, expected),
        Duration::from_secs(5),
        Duration::from_secs(90),
    ))
    .await
    .unwrap_or_else(|e| panic!("{kind}/{id} {name}: transport failure: {e:#}"))
    .map(|evs| evs.into_iter().map(|e| e.name.to_string()).collect())
}

async fn stored(nats: &async_nats::Client, kind: &str, id: &str) -> Vec<cim_domain::RecordedEvent> {
    read_events(nats.clone(), &EntityRef::new(kind, id).unwrap())
        .await
        .expect("events read and chain verified")
}

/// The subjects of the events stream matching `filter`, with their message counts.
async fn js_stream_subjects(nats: &async_nats::Client, filter: &str) -> Vec<(String, usize)> {
    let stream = async_nats::jetstream::new(nats.clone())
        .get_stream("CIM_EVENTS")
        .await
        .unwrap();
    let mut subjects = stream.info_with_subjects(filter).await.unwrap();
    let mut out = Vec::new();
    while let Some(entry) = futures::StreamExt::next(&mut subjects).await {
        out.push(entry.unwrap());
    }
    out
}

/// The next line a child printed, within 30 s.
async fn next_line(out: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(30), out.next_line())
        .await
        .expect("cim events --follow printed nothing for 30 s")
        .unwrap()
        .expect("cim events --follow exited")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cim_runs_on_a_real_lattice() {
    // A hang (an await without a deadline meeting a lost wRPC reply) fails the run with a
    // message instead of holding CI until it is killed; a normal run takes 2–4 minutes.
    // Boxed: the scenario's future is large, and the test thread's stack is not.
    tokio::time::timeout(Duration::from_secs(20 * 60), Box::pin(scenario()))
        .await
        .expect("the end-to-end scenario finished within 20 minutes");
}

async fn scenario() {
    // The inference provider talks to the testkit's Ollama-API server: real embeddings,
    // scripted chat answers (model cim-scripted-chat).
    let ollama = cim_testkit::OllamaServer::start().expect("the Ollama-API test server");
    let lattice = TestLattice::start_with(
        Some(ollama.url()),
        Some(cim_testkit::SCRIPTED_CHAT_MODEL.into()),
    )
    .await
    .expect("cim up");
    let nats = lattice.nats().await.unwrap();
    let l = lattice.cli.lattice().to_owned();

    // --- A document through its whole lifecycle, over wRPC; the agent classifies its text.
    eprintln!("e2e: A document through its whole lifecycle, over wRPC");
    for (name, json, event) in [
        ("Create", create_doc(), "DocumentCreated"),
        (
            "AttachText",
            r#"{"text":"Invoice 42: please pay 42 EUR"}"#.to_string(),
            "TextAttached",
        ),
    ] {
        assert_eq!(
            send(&nats, &l, "document", "doc-1", name, &json, None).await,
            Ok(vec![event.to_string()]),
            "{name}"
        );
    }
    let (_, classified) = agent::outcome(&lattice, "doc-1").await;
    assert_eq!(classified.name.as_str(), "DocumentClassified");
    for (name, json, event) in [
        ("Tag", r#"{"tag":"finance"}"#.to_string(), "DocumentTagged"),
        (
            "Archive",
            r#"{"reason":"paid"}"#.to_string(),
            "DocumentArchived",
        ),
    ] {
        assert_eq!(
            send(&nats, &l, "document", "doc-1", name, &json, None).await,
            Ok(vec![event.to_string()]),
            "{name}"
        );
    }
    let doc = stored(&nats, "document", "doc-1").await;
    assert_eq!(doc.len(), 5);
    assert_eq!(doc[4].name.as_str(), "DocumentArchived");

    // --- Roles: the event store appended all of that as its own user; a forged event from the
    // client's or the reader's user is refused by NATS and stores nothing.
    eprintln!("e2e: Forged events from the client and reader users are refused by NATS");
    for role in [cim::Role::Client, cim::Role::Reader] {
        let forger = lattice.nats_as(role).await.unwrap();
        forger
            .publish("cim.evt.document.doc-1", "forged".into())
            .await
            .unwrap();
        forger.flush().await.unwrap();
    }
    assert_eq!(
        js_stream_subjects(&nats, "cim.evt.document.doc-1").await,
        vec![("cim.evt.document.doc-1".to_string(), 5)],
        "no forged message was stored"
    );

    // --- Commits through the package pipeline: `cim pipeline submit` drives the human steps,
    // the pipeline system builds with real Nix through the nix-build provider.
    eprintln!("e2e: A forged build success is dead-lettered; the pipeline moves on");
    pipeline::a_forged_build_success_is_dead_lettered_and_the_pipeline_moves_on(&lattice).await;
    eprintln!("e2e: A commit through the pipeline to a deployed container, built by Nix");
    pipeline::a_commit_is_built_published_and_deployed(&lattice).await;
    eprintln!("e2e: A failing build and a repository outside the allow-list");
    pipeline::failures_are_recorded_and_nothing_else(&lattice).await;

    // --- The document agent: embeddings, similarity, classification, failures, an outage.
    eprintln!("e2e: The agent classifies documents and links the similar ones");
    agent::documents_are_classified_and_related_ones_linked(&lattice).await;
    eprintln!("e2e: An unusable model answer is a recorded failure");
    agent::an_unusable_answer_is_a_recorded_failure(&lattice).await;
    eprintln!("e2e: An inference outage is retried; nothing is lost");
    let ollama = agent::an_outage_is_retried_and_nothing_lost(&lattice, ollama).await;

    // --- A stale expected version is a conflict and stores nothing.
    eprintln!("e2e: A stale expected version is a conflict and stores nothing");
    send(
        &nats,
        &l,
        "document",
        "doc-2",
        "Create",
        &create_doc(),
        Some(0),
    )
    .await
    .unwrap();
    let err = send(
        &nats,
        &l,
        "document",
        "doc-2",
        "Tag",
        r#"{"tag":"a"}"#,
        Some(0),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        EcsError::Conflict {
            expected: 0,
            actual: 1
        }
    );
    assert_eq!(stored(&nats, "document", "doc-2").await.len(), 1);

    // --- Bad input: a typed error each, and nothing stored.
    eprintln!("e2e: Bad input: a typed error each, and nothing stored");
    let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(300 * 1024));
    let bad: Vec<(&str, &str, String)> = vec![
        ("doc-3", "Create", "{not json".into()),
        ("doc-3", "Launch", "{}".into()),
        ("doc*", "Create", create_doc()),
        ("doc>", "Create", create_doc()),
        ("doc.3", "Create", create_doc()),
        ("doc-2", "AttachText", big),
    ];
    for (id, name, json) in &bad {
        let err = send(&nats, &l, "document", id, name, json, None)
            .await
            .unwrap_err();
        assert!(matches!(err, EcsError::Invalid(_)), "{id} {name}: {err:?}");
    }
    assert!(stored(&nats, "document", "doc-3").await.is_empty());
    assert_eq!(stored(&nats, "document", "doc-2").await.len(), 1);

    // `cim call` as users run it: a duplicate key, a kind that is no subject token, a kind
    // no component serves (answered from the hosts' inventories, not after the call's 30 s),
    // each refused with its reason; a payload read from a file (`--json @file`).
    let cim_call = |args: Vec<String>| {
        let lattice = &lattice;
        async move {
            let out = lattice
                .cim_command()
                .unwrap()
                .arg("call")
                .args(&args)
                .output()
                .await
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (call_args, reason) in [
        (
            args(&[
                "document",
                "Tag",
                "--id",
                "doc-2",
                "--json",
                r#"{"tag":"a","tag":"b"}"#,
            ]),
            "duplicate key",
        ),
        (args(&["docu ment", "Tag", "--id", "x"]), "kind"),
        (
            args(&[
                "document",
                "Tag",
                "--id",
                "doc-2",
                "--command-id",
                "not a token",
            ]),
            "command id",
        ),
        (args(&[">", "Tag", "--id", "x"]), "kind"),
        (
            args(&["nosuch", "Tag", "--id", "x"]),
            "no entity component `nosuch` is deployed",
        ),
    ] {
        let (ok, _, stderr) = cim_call(call_args.clone()).await;
        assert!(!ok, "{call_args:?} succeeded");
        assert!(stderr.contains(reason), "{call_args:?}: {stderr}");
    }
    assert_eq!(stored(&nats, "document", "doc-2").await.len(), 1);
    send(
        &nats,
        &l,
        "document",
        "from-file",
        "Create",
        &create_doc(),
        None,
    )
    .await
    .unwrap();
    let payload = lattice.cli.state_dir().join("big-text.json");
    std::fs::write(
        &payload,
        format!(r#"{{"text":"{}"}}"#, "from a file ".repeat(5000)),
    )
    .unwrap();
    let (ok, stdout, stderr) = cim_call(vec![
        "document".into(),
        "AttachText".into(),
        "--id".into(),
        "from-file".into(),
        "--json".into(),
        format!("@{}", payload.display()),
    ])
    .await;
    assert!(ok && stdout.contains("TextAttached"), "{stdout}{stderr}");

    // Issue 14, item 1: a command is answered once. Sent with one `--command-id` twice at the
    // same time and once more afterwards (a script retrying after a lost answer), it is
    // answered three times with the same events, stored once.
    send(
        &nats,
        &l,
        "document",
        "retried",
        "Create",
        &create_doc(),
        None,
    )
    .await
    .unwrap();
    let attach = || {
        cim_call(args(&[
            "document",
            "AttachText",
            "--id",
            "retried",
            "--json",
            r#"{"text":"sent more than once"}"#,
            "--command-id",
            "attach-retried-1",
        ]))
    };
    let (first, second) = tokio::join!(attach(), attach());
    let third = attach().await;
    for (ok, stdout, stderr) in [&first, &second, &third] {
        assert!(ok, "{stdout}{stderr}");
        assert!(stdout.starts_with("v2 TextAttached "), "{stdout}{stderr}");
        assert_eq!(stdout, &first.1, "the same events every time");
    }
    let texts = stored(&nats, "document", "retried")
        .await
        .iter()
        .filter(|e| e.name.as_str() == "TextAttached")
        .count();
    assert_eq!(texts, 1, "stored once");

    // --- Issue 13, items 6 and 7: one message that is not an event (published here by the
    // admin, the only other role that may) hides nothing: the entity still takes commands,
    // and `cim events` shows every event with its own verdict and the bad message in place.
    eprintln!("e2e: A message that is not an event is skipped and reported, nothing hidden");
    for (name, json) in [
        ("Create", create_doc()),
        ("Tag", r#"{"tag":"before"}"#.into()),
    ] {
        send(&nats, &l, "document", "quarantine", name, &json, None)
            .await
            .unwrap();
    }
    let admin = lattice.nats_as(cim::Role::Admin).await.unwrap();
    admin
        .publish("cim.evt.document.quarantine", "not an event".into())
        .await
        .unwrap();
    admin.flush().await.unwrap();
    assert_eq!(
        send(
            &nats,
            &l,
            "document",
            "quarantine",
            "Tag",
            r#"{"tag":"after"}"#,
            None
        )
        .await,
        Ok(vec!["DocumentTagged".to_string()]),
        "the entity still takes commands after the bad message"
    );
    assert_eq!(stored(&nats, "document", "quarantine").await.len(), 3);
    let shown = lattice
        .cim_command()
        .unwrap()
        .args(["events", "document/quarantine"])
        .output()
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&shown.stdout);
    assert!(
        !shown.status.success(),
        "a stream with a bad message is reported as broken"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].starts_with("v1 ") && lines[0].ends_with('✓'),
        "{out}"
    );
    assert!(
        lines[1].starts_with("v2 ") && lines[1].ends_with('✓'),
        "{out}"
    );
    assert!(
        lines[2].contains("is not an event") && lines[2].contains('✗'),
        "{out}"
    );
    assert!(
        lines[3].starts_with("v3 ") && lines[3].ends_with('✓'),
        "{out}"
    );
    assert!(
        String::from_utf8_lossy(&shown.stderr).contains("chain broken: 1 of 4"),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );

    // --- Content round-trips by CID through the object-store provider, verified; a large
    // event payload is offloaded there and read back transparently; corruption is detected.
    eprintln!("e2e: Content by CID through the object store; offloaded payloads; corruption");
    let content: Vec<u8> = (0..300 * 1024u32).map(|i| (i * 7919 % 251) as u8).collect();
    let cid = cim::put_object(&nats, &l, content.clone(), "application/pdf")
        .await
        .unwrap()
        .expect("put");
    assert_eq!(cid, cim_domain::object_cid(&content).to_string());
    assert_eq!(
        cim::put_object(&nats, &l, content.clone(), "application/pdf")
            .await
            .unwrap(),
        Ok(cid.clone()),
        "the same bytes get the same CID"
    );
    assert_eq!(
        cim::get_object(&nats, &l, &cid).await.unwrap(),
        Ok(content.clone())
    );
    let doc = format!(
        r#"{{"title":"Scan","content_cid":"{cid}","media_type":"application/pdf","categories":["invoice"]}}"#
    );
    send(&nats, &l, "document", "scan", "Create", &doc, None)
        .await
        .unwrap();
    let long_text = "lorem ipsum ".repeat(3 * 1024);
    send(
        &nats,
        &l,
        "document",
        "scan",
        "AttachText",
        &format!(r#"{{"text":"{long_text}"}}"#),
        None,
    )
    .await
    .unwrap();
    let scan = stored(&nats, "document", "scan").await;
    assert!(String::from_utf8_lossy(&scan[1].payload).contains(&long_text));
    let js = async_nats::jetstream::new(nats.clone());
    // The text's message (the agent may already have appended its classification after it).
    let events_stream = js.get_stream("CIM_EVENTS").await.unwrap();
    let created = events_stream
        .get_first_raw_message_by_subject("cim.evt.document.scan", 0)
        .await
        .unwrap();
    let raw = events_stream
        .get_first_raw_message_by_subject("cim.evt.document.scan", created.sequence + 1)
        .await
        .unwrap();
    assert!(raw.payload.is_empty(), "the large payload was offloaded");
    assert!(raw.headers.get("Cim-Payload-Cid").is_some());
    let objects = cim::objects::objectstore_client(&nats, &l).await.unwrap();
    let refused = call_idempotent("objectstore delete", Duration::from_secs(30), || {
        cim_wrpc::bindings::cim::ecs::objectstore::delete(&objects, None, &cid)
    })
    .await
    .unwrap();
    assert!(matches!(refused, Err(cim_wrpc::EcsError::Rejected(_))));
    // Someone overwrites the object behind the CID name: the provider refuses to serve it.
    let bucket = js.get_object_store("CIM_OBJECTS").await.unwrap();
    let mut forged: &[u8] = b"forged content";
    bucket.put(cid.as_str(), &mut forged).await.unwrap();
    let err = cim::get_object(&nats, &l, &cid).await.unwrap().unwrap_err();
    assert!(
        matches!(&err, EcsError::Unavailable(m) if m.contains("corrupt")),
        "{err:?}"
    );

    // --- Garbage on the provider's and the entities' wRPC subjects stalls nothing: parameters are decoded per
    // invocation under a deadline, so well-formed appends behind them are answered.
    eprintln!("e2e: Garbage on the provider's wRPC subjects stalls nothing");
    let append_subject = format!("{l}.cim-eventstore.wrpc.0.0.1.cim:ecs/eventstore@0.1.0.append");
    let inbox = nats.new_inbox();
    let _replies = nats.subscribe(inbox.clone()).await.unwrap();
    // The host serves components the same way: garbage to an entity must not stall it either.
    let handle_subject = format!("{l}.cim-document.wrpc.0.0.1.cim:ecs/entity@0.1.0.handle");
    for garbage in [&b""[..], &[0x05, b'd', b'o'][..], &[0xff; 64][..]] {
        nats.publish_with_reply(
            handle_subject.clone(),
            inbox.clone(),
            garbage.to_vec().into(),
        )
        .await
        .unwrap();
        nats.publish(append_subject.clone(), garbage.to_vec().into())
            .await
            .unwrap();
        nats.publish_with_reply(
            append_subject.clone(),
            inbox.clone(),
            garbage.to_vec().into(),
        )
        .await
        .unwrap();
    }
    nats.flush().await.unwrap();
    for i in 0..3 {
        send(
            &nats,
            &l,
            "document",
            &format!("after-garbage-{i}"),
            "Create",
            &create_doc(),
            None,
        )
        .await
        .expect("appends behind garbage are answered");
    }

    // --- `cim events --follow` prints the stream so far, then each new event, chain-checked.
    eprintln!("e2e: cim events --follow");
    send(
        &nats,
        &l,
        "document",
        "followed",
        "Create",
        &create_doc(),
        None,
    )
    .await
    .unwrap();
    let mut follower = lattice
        .cim_command()
        .unwrap()
        .args(["events", "document/followed", "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cim events --follow starts");
    let mut out = BufReader::new(follower.stdout.take().unwrap()).lines();
    let mut before = Vec::new();
    loop {
        let line = next_line(&mut out).await;
        if line.starts_with("following ") {
            break;
        }
        before.push(line);
    }
    assert!(
        before[0].starts_with("v1 ") && before[0].contains("DocumentCreated"),
        "{before:?}"
    );
    assert_eq!(before[1], "chain verified: 1 event(s) of document/followed");
    for tag in ["seen-live-1", "seen-live-2"] {
        send(
            &nats,
            &l,
            "document",
            "followed",
            "Tag",
            &format!(r#"{{"tag":"{tag}"}}"#),
            None,
        )
        .await
        .unwrap();
    }
    let followed = stored(&nats, "document", "followed").await;
    for ev in &followed[1..] {
        let line = next_line(&mut out).await;
        assert!(
            line.starts_with(&format!("v{} ", ev.version)) && line.contains(&ev.cid.to_string()),
            "expected v{} {} live, got {line:?}",
            ev.version,
            ev.cid
        );
    }
    follower.kill().await.unwrap();

    // --- 8 concurrent writers on one entity lose and duplicate nothing.
    eprintln!("e2e: 8 concurrent writers on one entity lose and duplicate nothing");
    send(&nats, &l, "document", "hot", "Create", &create_doc(), None)
        .await
        .unwrap();
    const WRITERS: usize = 8;
    const EACH: usize = 5;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (nats, l) = (nats.clone(), l.clone());
        tasks.push(tokio::spawn(async move {
            let (mut conflicts, mut unanswered) = (0, 0);
            for i in 0..EACH {
                let tag = format!(r#"{{"tag":"w{w}-{i}"}}"#);
                loop {
                    // An at-least-once client: a call without an answer is sent again. Tagging
                    // is idempotent, so a retry of a write that did land adds nothing.
                    match call(
                        &nats,
                        &l,
                        &command_for("document", "hot", "Tag", &tag, None),
                    )
                    .await
                    {
                        Ok(Ok(_)) => break,
                        Ok(Err(EcsError::Conflict { .. })) => conflicts += 1,
                        Ok(Err(e)) => panic!("writer {w}: {e:?}"),
                        Err(_) => unanswered += 1,
                    }
                }
            }
            (conflicts, unanswered)
        }));
    }
    let (mut conflicts, mut unanswered) = (0, 0);
    for t in tasks {
        let (c, u) = t.await.unwrap();
        conflicts += c;
        unanswered += u;
    }
    let hot = stored(&nats, "document", "hot").await;
    assert_eq!(hot.len(), 1 + WRITERS * EACH, "no write lost");
    let tags: BTreeSet<Vec<u8>> = hot[1..].iter().map(|e| e.payload.clone()).collect();
    assert_eq!(tags.len(), WRITERS * EACH, "no write duplicated");
    eprintln!(
        "concurrent writers: {conflicts} conflicts and {unanswered} unanswered calls retried"
    );
    assert_eq!(
        conflicts, 0,
        "without an expected version the entity decides again instead of answering conflict"
    );

    // --- Killing the event-store provider mid-load loses no acknowledged event; the lattice recovers.
    eprintln!("e2e: Killing the event-store provider mid-load loses no acknowledged event; the lattice recovers");
    send(&nats, &l, "document", "load", "Create", &create_doc(), None)
        .await
        .unwrap();
    let acked = Arc::new(tokio::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (nats, l, acked, stop) = (nats.clone(), l.clone(), acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            let mut failures = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let cmd = command_for(
                    "document",
                    "load",
                    "Tag",
                    &format!(r#"{{"tag":"k{w}-{i}"}}"#),
                    None,
                );
                match call(&nats, &l, &cmd).await {
                    Ok(Ok(evs)) => {
                        acked
                            .lock()
                            .await
                            .extend(evs.iter().map(|e| e.cid.to_string()));
                        i += 1;
                    }
                    Ok(Err(EcsError::Conflict { .. })) => {}
                    // While the provider is down: unavailable errors or timeouts, retried.
                    Ok(Err(_)) | Err(_) => failures += 1,
                }
            }
            failures
        }));
    }
    // Let some load through, then kill the provider process the host started.
    let t0 = Instant::now();
    while acked.lock().await.len() < 10 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no load got through"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The host unpacks providers under a directory named after its own id: kill only our
    // event-store provider (the object store and graph providers keep running).
    let host_id = lattice.host_id().await.unwrap();
    let pids: Vec<i32> = TestLattice::pids_of(&host_id)
        .into_iter()
        .filter(|pid| TestLattice::cmdline(*pid).contains("eventstore"))
        .collect();
    assert_eq!(pids.len(), 1, "the event-store provider process is running");
    for pid in &pids {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    let before_kill = acked.lock().await.len();
    // Recovery: the host restarts the provider; writes are acknowledged again.
    let t1 = Instant::now();
    while acked.lock().await.len() < before_kill + 10 {
        assert!(
            t1.elapsed() < Duration::from_secs(120),
            "the lattice did not recover after the provider was killed ({} acked before, {} now); host log:\n{}",
            before_kill,
            acked.lock().await.len(),
            lattice.log_tail("host", 40)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut failures = 0;
    for w in writers {
        failures += w.await.unwrap();
    }
    let load = stored(&nats, "document", "load").await;
    let stored_cids: BTreeSet<String> = load.iter().map(|e| e.cid.to_string()).collect();
    let acked = acked.lock().await;
    let lost: Vec<&String> = acked.iter().filter(|c| !stored_cids.contains(*c)).collect();
    assert!(lost.is_empty(), "acknowledged events lost: {lost:?}");
    let payloads: BTreeSet<&[u8]> = load.iter().map(|e| e.payload.as_slice()).collect();
    assert_eq!(payloads.len(), load.len(), "no duplicates after the crash");
    eprintln!(
        "provider kill: {} acknowledged, {} stored, {failures} calls failed while it restarted (recovered in {:.1}s)",
        acked.len(),
        load.len(),
        t1.elapsed().as_secs_f64()
    );

    // --- The audit projection (a reactor component fed by the provider's durable consumer)
    // mirrored every event exactly once, in order, across the provider kill.
    // --- A multi-event append through the provider is one commit message; the entity
    // component, the reactors and the projection all see its events (ADR 0009).
    eprintln!("e2e: A multi-event append is one commit message that every consumer reads");
    let store_client =
        wrpc_transport_nats::Client::new(nats.clone(), format!("{l}.cim-eventstore"), None)
            .await
            .unwrap();
    let commit_entity = cim_wrpc::EntityRef {
        kind: "document".into(),
        id: "commit".into(),
    };
    let payloads = [
        ("DocumentCreated", create_doc()),
        ("DocumentTagged", r#"{"tag":"first"}"#.to_string()),
        ("DocumentTagged", r#"{"tag":"second"}"#.to_string()),
    ];
    let events: Vec<cim_wrpc::NewEvent> = payloads
        .iter()
        .map(|(name, payload)| cim_wrpc::NewEvent {
            name: (*name).into(),
            schema_version: 1,
            payload: payload.clone().into_bytes().into(),
            meta: cim_wrpc::envelope_out(cim_domain::Envelope::originating("e2e-commit", 1)),
        })
        .collect();
    // An append retried with the same events at the same version is answered with the stored
    // events, so a call lost on the way (docs/operations.md) is simply made again.
    let appended = call_idempotent("eventstore append", Duration::from_secs(30), || {
        cim_wrpc::bindings::cim::ecs::eventstore::append(
            &store_client,
            None,
            &commit_entity,
            0,
            &events,
        )
    })
    .await
    .unwrap()
    .expect("the commit is appended");
    assert_eq!(appended.len(), 3);
    let mut subjects = js_stream_subjects(&nats, "cim.evt.document.commit").await;
    assert_eq!(subjects.pop(), Some(("cim.evt.document.commit".into(), 1)));
    send(
        &nats,
        &l,
        "document",
        "commit",
        "Tag",
        r#"{"tag":"third"}"#,
        Some(3),
    )
    .await
    .expect("the component rehydrates from the commit");
    let commit_events = stored(&nats, "document", "commit").await;
    assert_eq!(
        commit_events
            .iter()
            .map(|e| (e.version, e.name.to_string()))
            .collect::<Vec<_>>(),
        [
            (1, "DocumentCreated".to_string()),
            (2, "DocumentTagged".to_string()),
            (3, "DocumentTagged".to_string()),
            (4, "DocumentTagged".to_string()),
        ]
    );

    eprintln!("e2e: The audit projection mirrored every event exactly once, across the kill");
    let t2 = Instant::now();
    for (kind, id) in [
        ("document", "doc-1"),
        ("document", "doc-2"),
        ("document", "followed"),
        ("document", "hot"),
        ("document", "load"),
        ("document", "commit"),
        ("package", "hello"),
    ] {
        let source = stored(&nats, kind, id).await;
        let audit_kind = format!("audit-{kind}");
        let trail = loop {
            let trail = stored(&nats, &audit_kind, id).await;
            if trail.len() >= source.len() {
                break trail;
            }
            assert!(
                t2.elapsed() < Duration::from_secs(180),
                "{audit_kind}/{id} has {} of {} events; host log:\n{}",
                trail.len(),
                source.len(),
                lattice.log_tail("host", 40)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(
            trail.len(),
            source.len(),
            "{kind}/{id}: nothing audited twice"
        );
        for (a, s) in trail.iter().zip(&source) {
            let record: EventAudited = serde_json::from_slice(&a.payload).unwrap();
            assert_eq!(record.cid, s.cid.to_string(), "{kind}/{id} v{}", s.version);
            assert_eq!(record.version, s.version);
            assert_eq!(a.meta.causation_id, Some(s.cid.to_string()));
        }
        assert!(
            stored(&nats, &format!("audit-{audit_kind}"), id)
                .await
                .is_empty(),
            "audit trails are not audited"
        );
    }
    eprintln!(
        "audit: every trail complete {:.1}s after the load stopped",
        t2.elapsed().as_secs_f64()
    );

    // --- The knowledge graph: the projection (inside the graph provider) wrote every document
    // and package event; the seed questions have answers; a full replay changes nothing.
    eprintln!("e2e: The knowledge graph answers the seed questions; a replay changes nothing");
    let tag = command_for("document", "doc-2", "Tag", r#"{"tag":"graph-check"}"#, None);
    call(&nats, &l, &tag).await.unwrap().unwrap();
    let js = async_nats::jetstream::new(nats.clone());
    let events_stream = js.get_stream("CIM_EVENTS").await.unwrap();
    // Events, not messages: a multi-event append is one commit message (ADR 0009), so each
    // entity counts as many events as its head's version.
    let store = cim_nats::EventStore::open(nats.clone()).await.unwrap();
    let (mut projected, mut projected_messages) = (0, 0);
    for filter in ["cim.evt.document.*", "cim.evt.package.*"] {
        let mut subjects = events_stream.info_with_subjects(filter).await.unwrap();
        while let Some(entry) = futures::StreamExt::next(&mut subjects).await {
            let (subject, messages) = entry.unwrap();
            projected_messages += messages as u64;
            let Ok(cim_domain::Subject::Event(entity)) = subject.parse() else {
                panic!("{subject} is not an entity's subject");
            };
            projected += store.head(&entity).await.unwrap().unwrap().event.version;
        }
    }
    let graph_rows = |cypher: &'static str, params: Vec<(&'static str, String)>| {
        let lattice = &lattice;
        async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            lattice.graph_rows(cypher, &params).await
        }
    };
    let t3 = Instant::now();
    loop {
        // Events with a name were projected themselves (not just named by a FOLLOWS edge).
        let n = graph_rows(
            "MATCH (e:Event) WHERE e.name IS NOT NULL RETURN count(e) AS n",
            vec![],
        )
        .await;
        if n == [projected.to_string()] {
            break;
        }
        assert!(
            t3.elapsed() < Duration::from_secs(120),
            "graph has {n:?} events of {projected}; host log:\n{}",
            lattice.log_tail("host", 30)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "graph: {projected} events projected in {:.1}s",
        t3.elapsed().as_secs_f64()
    );
    assert_eq!(
        graph_rows(
            "MATCH (:Host {key: $host})<-[:ON_HOST]-(:Deployment)<-[:DEPLOYED_AS]-(p:Entity)-[:HAS_BUILD]->(b:Build)-[:PRODUCED]->(:StorePath)<-[:PUBLISHED_AS]-(p) RETURN b.key AS build",
            vec![("host", "host-x".into())]
        )
        .await,
        ["package/hello#1"],
        "which builds produced the package deployed to host X"
    );
    assert_eq!(
        graph_rows(
            "MATCH (e:Event)-[:CAUSED_BY]->(:Command {key: $cmd}) RETURN e.name AS name",
            vec![("cmd", tag.meta.id.clone())]
        )
        .await,
        ["DocumentTagged"],
        "which events were caused by command Y"
    );
    let snapshot = || async {
        let mut nodes = graph_rows("MATCH (n) RETURN n AS node", vec![]).await;
        nodes.sort();
        let mut edges = graph_rows(
            "MATCH (a)-[r]->(b) RETURN a.key AS a, type(r) AS r, b.key AS b",
            vec![],
        )
        .await;
        edges.sort();
        (nodes, edges)
    };
    let before = snapshot().await;
    // Replay everything: drop the projection's durable consumer; the provider recreates it
    // from the first event and writes the whole history again.
    events_stream
        .delete_consumer("graph-projection")
        .await
        .unwrap();
    let t4 = Instant::now();
    loop {
        if let Ok(mut c) = events_stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>("graph-projection")
            .await
        {
            let info = c.info().await.unwrap();
            if info.num_pending == 0
                && info.num_ack_pending == 0
                && info.ack_floor.stream_sequence >= info.delivered.stream_sequence
                && info.delivered.consumer_sequence >= projected_messages
            {
                break;
            }
        }
        assert!(
            t4.elapsed() < Duration::from_secs(120),
            "the replay did not finish"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let after = snapshot().await;
    let diff = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter()
            .filter(|x| !b.contains(x))
            .take(5)
            .cloned()
            .collect()
    };
    assert!(
        after == before,
        "a replay changed the graph: {} → {} nodes, {} → {} edges; only before: {:?} {:?}; only after: {:?} {:?}",
        before.0.len(),
        after.0.len(),
        before.1.len(),
        after.1.len(),
        diff(&before.0, &after.0),
        diff(&before.1, &after.1),
        diff(&after.0, &before.0),
        diff(&after.1, &before.1),
    );
    let export = lattice
        .cim_ok(
            &["graph", "export", "--format", "json"],
            &cim_testkit::workspace_root(),
        )
        .await;
    let json: serde_json::Value = serde_json::from_str(&export).unwrap();
    assert!(json["edges"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "ON_HOST" && e["to"] == "host-x"));
    eprintln!(
        "graph: {} nodes, {} edges; replay verified in {:.1}s",
        before.0.len(),
        before.1.len(),
        t4.elapsed().as_secs_f64()
    );

    // --- The README's main job: `cim demo` (both seed scenarios) on the running lattice.
    eprintln!("e2e: cim demo on the running lattice");
    let root = cim_testkit::workspace_root();
    let manifest = root.join("wadm/local/cim.wadm.yaml");
    let ollama_url = ollama.url();
    let stdout = lattice
        .cim_ok(
            &[
                "demo",
                "--manifest",
                &manifest.display().to_string(),
                "--ollama-url",
                &ollama_url,
                "--chat-model",
                cim_testkit::SCRIPTED_CHAT_MODEL,
            ],
            &root,
        )
        .await;
    for expected in [
        "every CID chain verified",
        "-> invoice",
        "-> recipe",
        "published /nix/store/",
        "deployed to host-1",
    ] {
        let expected = expected.replace("->", "\u{2192}");
        assert!(
            stdout.contains(&expected),
            "{expected:?} missing:\n{stdout}"
        );
    }

    // --- The browser view of what happened, in real headless Chromium.
    eprintln!("e2e: cim ui in headless Chromium");
    ui::the_browser_view_shows_the_machine(&lattice).await;

    // --- The README's commands, as a user runs them after `scripts/run`; the last stops
    // the lattice.
    eprintln!("e2e: every README command works as printed");
    readme::every_readme_command_works_as_printed(&lattice).await;
}
