//! `cim dead-letters`: the events reactors gave up on (bounded redeliveries exhausted, refused
//! as `invalid`, or not CIM events at all), and `cim dead-letters retry` to hand one to its
//! reactor again once the cause is repaired.

use std::time::Duration;

use anyhow::{bail, Context as _};
use cim_nats::deadletter::{now_ms, DeadLetter, DeadLetters, Status};
use cim_nats::EventStore;
use cim_wrpc::bindings::cim::ecs::reactor;

use crate::{Cli, Role};

/// How long one reactor call of a retry may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a retried delivery waits for its answer before it is sent again (once: the next
/// gap would pass the call's whole deadline).
const RESEND_AFTER: Duration = Duration::from_secs(40);

/// Every dead letter, oldest first, and the records that did not decode.
pub async fn list(ctx: &Cli) -> anyhow::Result<(Vec<DeadLetter>, Vec<String>)> {
    let nats = ctx.connect(Role::Reader).await?;
    match DeadLetters::attach(nats).await? {
        None => Ok((Vec::new(), Vec::new())),
        Some(letters) => Ok(letters.list().await?),
    }
}

/// `cim dead-letters`: prints the records, open ones first.
pub async fn print(ctx: &Cli, all: bool) -> anyhow::Result<()> {
    let (mut letters, bad) = list(ctx).await?;
    letters.sort_by_key(|l| (l.status != Status::Open, l.at_ms));
    let shown: Vec<&DeadLetter> = letters
        .iter()
        .filter(|l| all || l.status == Status::Open)
        .collect();
    if shown.is_empty() {
        println!("no open dead letters");
    } else {
        println!("reactor\tdurable\tsequence\tsubject\tevent\tdeliveries\tstatus\terror");
    }
    for l in shown {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            l.reactor,
            l.durable,
            l.stream_sequence,
            l.subject,
            l.event_cid.as_deref().unwrap_or("(not an event)"),
            l.deliveries,
            match l.status {
                Status::Open => "open",
                Status::Resolved => "resolved",
            },
            l.error
        );
    }
    for b in &bad {
        eprintln!("unreadable dead-letter record {b}");
    }
    Ok(())
}

/// `cim dead-letters retry <durable> <sequence>`: delivers the dead-lettered events of that
/// message (from the first one the reactor did not process) to the reactor again, in order.
/// All accepted: the record is marked resolved. Refused again: the record keeps the new error
/// and the command fails. Reactors are at-least-once consumers, so a retry of an event they
/// did process does no harm; a retry may deliver an event after later ones of its entity.
pub async fn retry(ctx: &Cli, durable: &str, sequence: u64) -> anyhow::Result<()> {
    let nats = ctx.connect(Role::Client).await?;
    let letters = DeadLetters::attach(nats.clone())
        .await?
        .context("no reactor has given up on an event on this lattice")?;
    let (all, _) = letters.list().await?;
    let Some(mut letter) = all
        .into_iter()
        .find(|l| l.durable == durable && l.stream_sequence == sequence)
    else {
        bail!(
            "no dead letter of {durable} for stream sequence {sequence} (see `cim dead-letters`)"
        );
    };
    if letter.status == Status::Resolved {
        println!("already resolved: {durable} {sequence}");
        return Ok(());
    }
    if letter.event_cid.is_none() {
        bail!(
            "{} (sequence {sequence}) is not a CIM event; there is nothing to deliver",
            letter.subject
        );
    }
    let store = EventStore::attach(nats.clone()).await?;
    let msg = store
        .stream()
        .get_raw_message(sequence)
        .await
        .with_context(|| format!("cannot read message {sequence} of the events stream"))?;
    let events = store
        .decode_stored(msg.subject.as_str(), &msg.headers, &msg.payload)
        .await?;
    let wrpc = wrpc_transport_nats::Client::new(
        nats.clone(),
        format!("{}.{}", ctx.lattice(), letter.reactor),
        None,
    )
    .await
    .context("cannot create a wRPC client")?;
    let mut delivered = 0;
    for event in events.into_iter().skip(letter.event_index) {
        let cid = event.cid.to_string();
        let event = cim_wrpc::event_out(event);
        // Reactors are at-least-once consumers, so a delivery whose answer was lost
        // (docs/operations.md, "Lost invocations") is sent again, once, after 40 s: a
        // reaction may run a build, and every send holds an instance while it runs.
        let what = format!("{} (delivering {cid})", letter.reactor);
        let answer = crate::call::resend_until_answered(
            &what,
            RESEND_AFTER,
            CALL_TIMEOUT,
            CALL_TIMEOUT,
            || async {
                reactor::on_event(&wrpc, None, &event)
                    .await
                    .with_context(|| format!("wRPC call to {} failed", letter.reactor))
            },
        )
        .await?;
        if let Err(e) = answer {
            let e = cim_wrpc::error_in(e);
            letter.event_cid = Some(cid);
            letter.event_index += delivered;
            letter.deliveries += 1;
            letter.error = format!("retry: {e}");
            letter.at_ms = now_ms();
            letters.record(&letter).await?;
            bail!("{} refused the event again: {e}", letter.reactor);
        }
        delivered += 1;
    }
    letter.status = Status::Resolved;
    letter.at_ms = now_ms();
    letters.record(&letter).await?;
    println!(
        "delivered {delivered} event(s) of {} (sequence {sequence}) to {}; resolved",
        letter.subject, letter.reactor
    );
    Ok(())
}
