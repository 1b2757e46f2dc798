//! The browser view (`cim ui`) on the running lattice: its live feed over raw HTTP, and the
//! page itself in real headless Chromium (Debian `chromium`, driven over the DevTools
//! protocol): the DOM it renders from the lattice, an event appearing live, and a screenshot
//! in which the knowledge graph is drawn.

use std::net::SocketAddr;
use std::time::Duration;

use cim_domain::EntityRef;
use cim_tests::browser::Browser;
use cim_tests::lattice::TestLattice;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The node colours of the page's palette (`crates/cim/src/ui/index.html`).
const PALETTE: [[u8; 3]; 12] = [
    [0x2f, 0x5f, 0xb3],
    [0xd1, 0x7a, 0x00],
    [0x13, 0x83, 0x3a],
    [0x8e, 0x44, 0xad],
    [0xc6, 0x28, 0x28],
    [0x00, 0x83, 0x8f],
    [0x6d, 0x4c, 0x41],
    [0x54, 0x6e, 0x7a],
    [0xc2, 0x18, 0x5b],
    [0x7c, 0xb3, 0x42],
    [0x5e, 0x35, 0xb1],
    [0xf9, 0xa8, 0x25],
];

/// Reads from `conn` until `needle` has arrived (or the deadline passes); returns all read.
async fn read_until(conn: &mut tokio::net::TcpStream, seen: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        let n = tokio::time::timeout_at(deadline, conn.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{needle:?} did not arrive on /api/live in 30 s:\n{seen}"))
            .expect("read /api/live");
        assert!(n > 0, "/api/live closed before {needle:?}:\n{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// One `GET path` naming `host`, read to the end of the response within 30 s.
async fn get(addr: SocketAddr, host: &str, path: &str) -> String {
    let exchange = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await?;
        conn.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut response = String::new();
        conn.read_to_string(&mut response).await?;
        std::io::Result::Ok(response)
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {path} (Host {host}) not answered in 30 s"))
        .unwrap_or_else(|e| panic!("GET {path} (Host {host}): {e}"))
}

/// The live feed pushes an appended event as it happens.
async fn live_feed_pushes_events(lattice: &TestLattice, addr: SocketAddr) {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        format!("GET /api/live HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut seen = String::new();
    read_until(&mut conn, &mut seen, "event: hello").await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(seen.contains("text/event-stream"), "{seen}");
    let nats = lattice.nats().await.unwrap();
    let cmd = cim::command_for(
        "document",
        "ui-live",
        "Create",
        r#"{"title":"Live","content_cid":"bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e","media_type":"text/plain","categories":["invoice"]}"#,
        None,
    );
    let created = cim::call(&nats, lattice.cli.lattice(), &cmd)
        .await
        .expect("transport")
        .expect("Create");
    let cid = created[0].cid.to_string();
    read_until(&mut conn, &mut seen, &cid).await;
    let line = seen
        .lines()
        .find(|l| l.contains(&cid))
        .expect("the event's line");
    let data: serde_json::Value =
        serde_json::from_str(line.trim_start_matches("data:").trim()).expect("JSON data");
    assert_eq!(data["kind"], "document");
    assert_eq!(data["id"], "ui-live");
    assert_eq!(data["name"], "DocumentCreated");
    assert_eq!(data["version"], 1);

    // A multi-event append is one commit message: the feed shows each of its events, and the
    // entity list counts events, not messages. Appended directly, as the event store does (so
    // as its role: the client's user may not publish events).
    let appender = lattice.nats_as(cim::Role::Events).await.unwrap();
    let store = cim_nats::EventStore::open(appender).await.unwrap();
    let commit = EntityRef::new("note", "ui-commit").unwrap();
    let stored = store
        .append(
            &commit,
            0,
            (1..=3)
                .map(|i| cim_domain::NewEvent {
                    name: cim_domain::Token::parse("event name", "Noted").unwrap(),
                    schema_version: 1,
                    payload: format!(r#"{{"n":{i}}}"#).into_bytes(),
                    meta: cim_domain::Envelope::originating("ui-commit", 0),
                })
                .collect(),
        )
        .await
        .unwrap();
    for ev in &stored {
        read_until(&mut conn, &mut seen, &ev.cid.to_string()).await;
    }
    let response = get(addr, &addr.to_string(), "/api/entities").await;
    let body = response.split("\r\n\r\n").nth(1).expect("a body");
    let entities: Vec<serde_json::Value> = serde_json::from_str(body).expect("JSON entities");
    let listed = entities
        .iter()
        .find(|e| e["kind"] == "note" && e["id"] == "ui-commit")
        .expect("the entity is listed");
    assert_eq!(listed["events"], 3, "{listed}");
}

/// The page in real Chromium renders the lattice's inventory, an entity's verified chain and
/// the knowledge graph, and shows a new event live.
async fn the_page_renders_the_lattice(lattice: &TestLattice, addr: SocketAddr) {
    let nats = lattice.nats().await.unwrap();
    let entity = EntityRef::new("document", "inv-a").unwrap();
    let events = cim::read_events(nats.clone(), &entity)
        .await
        .expect("inv-a's events, chain verified");
    let status = cim::status::lattice_status(&lattice.cli, &nats)
        .await
        .unwrap();
    // The graph projection runs behind the events (the demo's last reactions may still be
    // landing): compare the page with the graph once it stands still.
    let (nodes, edges) = {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let mut last = cim::graph::structure(&lattice.cli).await.unwrap();
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let now = cim::graph::structure(&lattice.cli).await.unwrap();
            if now == last {
                break now;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the graph kept changing for 120 s"
            );
            last = now;
        }
    };
    let url = format!("http://{addr}/#document/inv-a");
    let runtime = tokio::runtime::Handle::current();
    let lattice_name = lattice.cli.lattice().to_owned();
    let (dom, shot, live) = tokio::task::spawn_blocking(move || {
        let mut browser = Browser::launch(1400, 900)?;
        let page = browser.open(&url, 1400, 900)?;
        let settled = "document.getElementById('live').classList.contains('on') \
             && document.querySelector('#chain-status') \
             && document.querySelectorAll('#graph-svg .node').length > 0 \
             && document.querySelectorAll('tr.link').length > 0";
        browser.wait_for(&page, settled, Duration::from_secs(60))?;
        // What is rendered (header and main), not the page's script source.
        let dom = browser.html(&page, "header, main")?;
        let shot = browser.screenshot(&page)?;
        // Kept for a look: `<target dir>/cim-ui.png`.
        let _ = std::fs::write(
            std::env::var("CARGO_TARGET_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|_| cim_testkit::workspace_root().join("target"))
                .join("cim-ui.png"),
            &shot,
        );
        // Live: a tag added now appears in the feed and in inv-a's stream without a reload.
        let tagged = runtime.block_on(cim::call(
            &nats,
            &lattice_name,
            &cim::command_for("document", "inv-a", "Tag", r#"{"tag":"seen-live"}"#, None),
        ))??;
        let cid = tagged[0].cid.to_string();
        let short = format!("{}…{}", &cid[..10], &cid[cid.len() - 6..]);
        browser.wait_for(
            &page,
            &format!(
                "document.getElementById('feed').innerText.includes('{short}') \
                 && document.getElementById('events').innerText.includes('{short}')"
            ),
            Duration::from_secs(30),
        )?;
        let live = browser.html(&page, "main")?;
        anyhow::Ok((dom, shot, live))
    })
    .await
    .unwrap()
    .expect("the page renders in headless chromium");

    for host in &status.hosts {
        for c in &host.components {
            assert!(
                dom.contains(&format!("<td>{}</td>", c.id)),
                "component {} not shown",
                c.id
            );
        }
        for p in &host.providers {
            assert!(
                dom.contains(&format!("<td>{}</td>", p.id)),
                "provider {} not shown",
                p.id
            );
        }
    }
    assert_eq!(
        dom.matches("<tr class=\"link\">").count(),
        status.links.len(),
        "one row per link"
    );
    assert!(
        dom.contains(&format!("chain verified ({} events)", events.len())),
        "the chain status of document/inv-a"
    );
    assert_eq!(dom.matches("<tr class=\"event\"").count(), events.len());
    for ev in &events {
        assert!(
            dom.contains(&format!("<td>{}</td>", ev.name)),
            "{}",
            ev.name
        );
    }
    assert!(!dom.contains('\u{2717}'), "no event fails verification");
    // Event-sourcing plumbing is hidden until asked for (the page's `hidden` set).
    let plumbing = ["Event", "Command", "Correlation"];
    let visible: Vec<&(String, String)> = nodes
        .iter()
        .filter(|(_, l)| !plumbing.contains(&l.split(':').next().unwrap_or_default()))
        .collect();
    assert_eq!(
        dom.matches("<g class=\"node\"").count(),
        visible.len(),
        "every domain node drawn"
    );
    assert!(
        dom.contains(&format!("{} nodes, {} edges", nodes.len(), edges.len())),
        "graph size shown"
    );
    assert!(
        live.contains(&format!("chain verified ({} events)", events.len() + 1)),
        "the stream re-read and verified after the live event"
    );

    // The screenshot: the graph is drawn (node colours in the right half of the page).
    let decoder = png::Decoder::new(std::io::Cursor::new(shot));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("PNG pixels");
    let channels = info.color_type.samples();
    let (width, height) = (info.width as usize, info.height as usize);
    assert_eq!((width, height), (1400, 900));
    let mut per_colour = [0usize; PALETTE.len()];
    for y in 0..height {
        for x in width / 2..width {
            let at = (y * width + x) * channels;
            let rgb = [pixels[at], pixels[at + 1], pixels[at + 2]];
            if let Some(i) = PALETTE.iter().position(|c| *c == rgb) {
                per_colour[i] += 1;
            }
        }
    }
    let labels: std::collections::BTreeSet<&str> = visible
        .iter()
        .map(|(_, l)| l.split(':').next().unwrap_or_default())
        .collect();
    // One colour per label; a label with one or two nodes may be drawn over by others.
    let drawn = per_colour.iter().filter(|n| **n > 0).count();
    assert!(
        drawn >= 4 && drawn + 2 >= labels.len().min(PALETTE.len()),
        "node colours in the screenshot {per_colour:?} for labels {labels:?}"
    );
    // A node is a filled circle of radius 7 in a view box drawn at about 0.8 scale (some
    // 100 px); allow for overlaps and edges drawn across.
    let total: usize = per_colour.iter().sum();
    assert!(
        total >= visible.len() * 20,
        "{total} node pixels for {} nodes drawn",
        visible.len()
    );
    eprintln!(
        "ui: {} components, {} links, {} events of document/inv-a, {} graph nodes; screenshot: {total} node pixels in {drawn} colours",
        status.hosts.iter().map(|h| h.components.len()).sum::<usize>(),
        status.links.len(),
        events.len(),
        nodes.len()
    );
}

/// A request naming another host (a DNS-rebinding page) is refused before any handler runs.
async fn a_foreign_host_header_is_refused(addr: SocketAddr) {
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{}", addr.port()),
    ] {
        let seen = get(addr, &host, "/api/entities").await;
        assert!(
            seen.starts_with("HTTP/1.1 421"),
            "Host {host} was not refused: {seen}"
        );
    }
}

/// The entity with a message that is not an event (written by the scenario before): the list
/// still answers and counts its events; its stream shows the bad message where it is.
async fn a_bad_message_is_shown_in_place(addr: SocketAddr) {
    let host = addr.to_string();
    let list = get(addr, &host, "/api/entities").await;
    assert!(list.starts_with("HTTP/1.1 200"), "{list}");
    let body = list.split("\r\n\r\n").nth(1).expect("a body");
    let entities: Vec<serde_json::Value> = serde_json::from_str(body).expect("JSON entities");
    let quarantined = entities
        .iter()
        .find(|e| e["id"] == "quarantine")
        .expect("the entity with the bad message is listed");
    assert_eq!(quarantined["events"], 3);
    let stream = get(addr, &host, "/api/events/document/quarantine").await;
    let body = stream.split("\r\n\r\n").nth(1).expect("a body");
    let view: serde_json::Value = serde_json::from_str(body).expect("JSON events");
    assert_eq!(view["chain"], "broken");
    let entries = view["events"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert!(entries[2]["not_an_event"].is_u64(), "{view}");
    for i in [0, 1, 3] {
        assert!(entries[i]["chain_error"].is_null(), "{view}");
    }
}

/// `cim ui` against the running lattice.
pub async fn the_browser_view_shows_the_machine(lattice: &TestLattice) {
    let (addr, server) = cim::ui::bind(&lattice.cli, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("cim ui binds");
    let server = tokio::spawn(server);
    a_foreign_host_header_is_refused(addr).await;
    a_bad_message_is_shown_in_place(addr).await;
    live_feed_pushes_events(lattice, addr).await;
    the_page_renders_the_lattice(lattice, addr).await;
    server.abort();
}
