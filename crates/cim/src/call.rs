//! `cim call`: a typed wRPC call of `cim:ecs/entity.handle` on a deployed entity component.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use cim_domain::{EcsError, RecordedEvent};
use cim_wrpc::{Command, EntityRef, Envelope};

use crate::Cli;

/// How long a call may take (the component rehydrates, decides and appends).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The component id wadm gives the entity component of `kind` in the CIM manifests.
pub fn component_id(kind: &str) -> String {
    format!("cim-{kind}")
}

/// Builds a command with a fresh id that starts its own conversation.
pub fn command_for(
    kind: &str,
    id: &str,
    name: &str,
    json: &str,
    expected_version: Option<u64>,
) -> Command {
    let command_id = ulid::Ulid::new().to_string();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    Command {
        entity: EntityRef {
            kind: kind.to_owned(),
            id: id.to_owned(),
        },
        name: name.to_owned(),
        payload: json.as_bytes().to_vec().into(),
        expected_version,
        meta: Envelope {
            id: command_id.clone(),
            correlation_id: command_id,
            causation_id: None,
            occurred_at_ms: u64::try_from(now).unwrap_or(u64::MAX),
        },
    }
}

/// Calls the entity component of `cmd.entity.kind` over wRPC.
///
/// The outer error is a transport failure (no such component, timeout); the inner result is
/// the entity's answer.
pub async fn call(
    nats: &async_nats::Client,
    lattice: &str,
    cmd: &Command,
) -> anyhow::Result<Result<Vec<RecordedEvent>, EcsError>> {
    let prefix = format!("{lattice}.{}", component_id(&cmd.entity.kind));
    let client = wrpc_transport_nats::Client::new(nats.clone(), prefix.clone(), None)
        .await
        .context("cannot create a wRPC client")?;
    // The deadline covers the whole exchange, results included: a host that fails an
    // invocation (a trapped component) may never send a result.
    let answer = tokio::time::timeout(
        CALL_TIMEOUT,
        cim_wrpc::bindings::cim::ecs::entity::handle(&client, None, cmd),
    )
    .await
    .with_context(|| format!("no answer from {prefix} within {}s", CALL_TIMEOUT.as_secs()))?
    .with_context(|| {
        format!(
            "wRPC call to {prefix} failed (is the `{}` component deployed?)",
            cmd.entity.kind
        )
    })?;
    Ok(match answer {
        Ok(events) => Ok(events
            .into_iter()
            .map(cim_wrpc::event_in)
            .collect::<Result<Vec<_>, String>>()
            .map_err(anyhow::Error::msg)
            .context("the component returned a malformed event")?),
        Err(e) => Err(cim_wrpc::error_in(e)),
    })
}

/// How long [`call_answered`] waits for an answer before it sends the command again, by
/// default (`cim call --deadline-ms`).
pub const FIRST_DEADLINE: Duration = Duration::from_secs(2);

/// Calls the entity like [`call`], and gets its answer once even when wrpc-transport-nats
/// 0.29 drops the reply (docs/operations.md, "Lost invocations"): without an answer after
/// `first`, the same command (same id) is sent again, then after twice as long, and so on
/// until `total` has passed; the first answer to any send is the answer. Safe because a
/// command is answered once by its id: a send that finds the command's events in the history
/// answers with them and appends nothing. Earlier sends stay in flight (their answer may
/// still come). A lost invocation thus costs about `first`, not the call's whole deadline.
/// The outer error: the transport failed (nothing serves the kind), or no answer in `total`.
pub async fn call_answered(
    nats: &async_nats::Client,
    lattice: &str,
    cmd: &Command,
    first: Duration,
    total: Duration,
) -> anyhow::Result<Result<Vec<RecordedEvent>, EcsError>> {
    let what = format!(
        "the `{}` component ({}/{} {})",
        cmd.entity.kind, cmd.entity.kind, cmd.entity.id, cmd.name
    );
    resend_until_answered(&what, first, Duration::from_secs(8), total, || {
        call(nats, lattice, cmd)
    })
    .await
}

/// Sends a call that is safe to repeat (`send`) and, without an answer after `first`, sends it
/// again, then after twice as long (at most `max_gap`), until `total` has passed; the first
/// answer to any send is the answer, and earlier sends stay in flight (their answer may still
/// come). A send that fails outright is the error unless another is still in flight; when no
/// answer comes, the error names the last such failure. `what` names the callee in the
/// warning logged for each resend and in the error.
pub async fn resend_until_answered<T, F, Fut>(
    what: &str,
    first: Duration,
    max_gap: Duration,
    total: Duration,
    mut send: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    use futures::StreamExt as _;
    let started = tokio::time::Instant::now();
    let mut sends = futures::stream::FuturesUnordered::new();
    let floor = Duration::from_millis(100);
    let mut wait = first.max(floor);
    let (mut sent, mut failed) = (0u32, None);
    loop {
        sends.push(send());
        sent += 1;
        let resend_at = (tokio::time::Instant::now() + wait).min(started + total);
        loop {
            match tokio::time::timeout_at(resend_at, sends.next()).await {
                Ok(Some(Ok(answer))) => return Ok(answer),
                Ok(Some(Err(e))) if sends.is_empty() => return Err(e),
                Ok(Some(Err(e))) => failed = Some(e),
                Ok(None) | Err(_) => break,
            }
        }
        if started.elapsed() >= total {
            let why = failed.map_or(String::new(), |e| format!("; a send failed: {e:#}"));
            anyhow::bail!("no answer from {what} within {total:?} ({sent} sends){why}");
        }
        tracing::warn!("no answer from {what} in {wait:?}; sending it again");
        wait = (wait * 2).min(max_gap.max(floor));
    }
}

/// The largest payload `--json @file` or `--json -` reads.
pub const MAX_PAYLOAD_ARG: u64 = 8 * 1024 * 1024;

/// Why a `--json` argument could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadArgError {
    /// The file or stdin could not be read.
    #[error("cannot read the payload from {from}: {source}")]
    Read {
        /// The file, or `stdin`.
        from: String,
        /// Why.
        source: std::io::Error,
    },
    /// More than [`MAX_PAYLOAD_ARG`] bytes.
    #[error("the payload from {from} is larger than {MAX_PAYLOAD_ARG} bytes")]
    TooLarge {
        /// The file, or `stdin`.
        from: String,
    },
    /// Not UTF-8 text.
    #[error("the payload from {from} is not UTF-8 text")]
    NotText {
        /// The file, or `stdin`.
        from: String,
    },
}

/// The payload a `--json` argument names: `-` reads standard input, `@<file>` reads the file
/// (a JSON text never starts with `@`), anything else is the JSON itself. Reads at most
/// [`MAX_PAYLOAD_ARG`] bytes, so payloads beyond one argument's 128 KiB limit can be sent.
pub fn payload_arg(arg: &str, stdin: impl std::io::Read) -> Result<String, PayloadArgError> {
    use std::io::Read as _;
    let (from, reader): (String, Box<dyn std::io::Read + '_>) = match arg {
        "-" => ("stdin".into(), Box::new(stdin)),
        _ => match arg.strip_prefix('@') {
            Some(path) => (
                path.to_string(),
                Box::new(
                    std::fs::File::open(path).map_err(|source| PayloadArgError::Read {
                        from: path.to_string(),
                        source,
                    })?,
                ),
            ),
            None => return Ok(arg.to_string()),
        },
    };
    let mut bytes = Vec::new();
    reader
        .take(MAX_PAYLOAD_ARG + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| PayloadArgError::Read {
            from: from.clone(),
            source,
        })?;
    if bytes.len() as u64 > MAX_PAYLOAD_ARG {
        return Err(PayloadArgError::TooLarge { from });
    }
    String::from_utf8(bytes).map_err(|_| PayloadArgError::NotText { from })
}

/// What `cim call` was asked to send.
#[derive(Debug, Clone)]
pub struct CallArgs<'a> {
    /// Entity kind.
    pub kind: &'a str,
    /// Command name.
    pub name: &'a str,
    /// Entity id.
    pub id: &'a str,
    /// The payload argument (JSON, `@file` or `-`, see [`payload_arg`]).
    pub json: &'a str,
    /// Only apply at this version.
    pub expected_version: Option<u64>,
    /// The command's id (default: a fresh ULID).
    pub command_id: Option<&'a str>,
    /// How long to wait before sending again (see [`call_answered`]).
    pub first_deadline: Duration,
}

/// `cim call`: sends the command and prints the resulting events, or the typed error.
pub async fn call_and_print(ctx: &Cli, args: &CallArgs<'_>) -> anyhow::Result<()> {
    let CallArgs {
        kind,
        name,
        id,
        json,
        expected_version,
        command_id,
        first_deadline,
    } = *args;
    // Kind and id are subject tokens: refuse bad ones before anything is sent.
    cim_domain::EntityRef::new(kind, id)?;
    cim_domain::Token::parse("command name", name)?;
    if let Some(c) = command_id {
        cim_domain::Token::parse("command id", c)?;
    }
    let json = payload_arg(json, std::io::stdin().lock())?;
    let nats = ctx.connect(crate::Role::Client).await?;
    let mut cmd = command_for(kind, id, name, &json, expected_version);
    if let Some(c) = command_id {
        cmd.meta.id = c.to_string();
        cmd.meta.correlation_id = c.to_string();
    }
    // An absent component never answers: find that out from the hosts' inventories while
    // the call runs, instead of waiting for the call's deadline.
    let component = component_id(kind);
    let absent = || {
        anyhow::anyhow!(
            "no entity component `{kind}` is deployed (no host of lattice {} runs {component})",
            ctx.lattice()
        )
    };
    let answer = tokio::select! {
        answer = call_answered(&nats, ctx.lattice(), &cmd, first_deadline, CALL_TIMEOUT) => match answer {
            Ok(answer) => answer,
            // NATS reports no responders at once: say why, when that is the reason.
            Err(e) => match crate::status::runs(&nats, ctx.lattice(), &component).await {
                Ok(false) => return Err(absent()),
                _ => return Err(e),
            },
        },
        Ok(false) = crate::status::runs(&nats, ctx.lattice(), &component) => return Err(absent()),
    };
    match answer {
        Ok(events) => {
            if events.is_empty() {
                println!("accepted; no new events (already in that state)");
            }
            for e in events {
                println!(
                    "v{} {} {} {}",
                    e.version,
                    e.name,
                    e.cid,
                    String::from_utf8_lossy(&e.payload)
                );
            }
            Ok(())
        }
        Err(e) => anyhow::bail!("{kind}/{id} {name}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_argument_is_the_json_itself_unless_it_names_a_file_or_stdin() {
        assert_eq!(
            payload_arg(r#"{"tag":"x"}"#, &b""[..]).unwrap(),
            r#"{"tag":"x"}"#
        );
        assert_eq!(payload_arg("-", &br#"{"a":1}"#[..]).unwrap(), r#"{"a":1}"#);
        let file = std::env::temp_dir().join(format!("cim-payload-{}.json", std::process::id()));
        let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(200 * 1024));
        std::fs::write(&file, &big).unwrap();
        let read = payload_arg(&format!("@{}", file.display()), &b""[..]).unwrap();
        assert_eq!(read.len(), big.len(), "more than one argument's 128 KiB");
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn an_unreadable_oversized_or_binary_payload_is_refused() {
        assert!(matches!(
            payload_arg("@/nonexistent/cim.json", &b""[..]),
            Err(PayloadArgError::Read { .. })
        ));
        let huge = vec![b' '; MAX_PAYLOAD_ARG as usize + 1];
        assert!(matches!(
            payload_arg("-", &huge[..]),
            Err(PayloadArgError::TooLarge { .. })
        ));
        assert!(matches!(
            payload_arg("-", &[0xff, 0xfe][..]),
            Err(PayloadArgError::NotText { .. })
        ));
    }

    /// Sends whose futures answer in order: `None` never answers, `Some(r)` answers `r`.
    fn scripted(
        script: Vec<Option<Result<u32, &'static str>>>,
    ) -> impl FnMut() -> futures::future::BoxFuture<'static, anyhow::Result<u32>> {
        let mut script = script.into_iter();
        move || match script.next().flatten() {
            Some(r) => Box::pin(async move { r.map_err(anyhow::Error::msg) }),
            None => Box::pin(std::future::pending()),
        }
    }

    #[tokio::test]
    async fn a_call_whose_first_send_is_never_answered_is_answered_by_the_next() {
        let t = std::time::Instant::now();
        let answer = resend_until_answered(
            "test",
            Duration::from_millis(100),
            Duration::from_millis(100),
            Duration::from_secs(5),
            scripted(vec![None, Some(Ok(7))]),
        )
        .await
        .unwrap();
        assert_eq!(answer, 7);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "not the whole deadline"
        );
    }

    #[tokio::test]
    async fn without_an_answer_the_error_names_the_deadline_and_the_last_failed_send() {
        let err = resend_until_answered(
            "the test callee",
            Duration::from_millis(100),
            Duration::from_millis(100),
            Duration::from_millis(500),
            scripted(vec![None, Some(Err("no responders")), None]),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no answer from the test callee within")
                && err.contains("a send failed: no responders"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_lone_send_that_fails_outright_is_the_error_at_once() {
        let t = std::time::Instant::now();
        let err = resend_until_answered(
            "test",
            Duration::from_secs(2),
            Duration::from_secs(8),
            Duration::from_secs(30),
            scripted(vec![Some(Err("no component serves it"))]),
        )
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "no component serves it");
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
