//! A wRPC caller over NATS that cannot lose its reply to the race in wrpc-transport-nats 0.29
//! (docs/operations.md, "Lost invocations").
//!
//! That transport routes every reply through one demultiplexing task per client and registers a
//! call's reply subjects with it over a channel, then publishes the call: on a busy machine the
//! reply can be routed before the registration, and is dropped. This client speaks the same
//! wire protocol (wRPC 0.0.1 over core NATS) but gives each call its own NATS subscription and
//! awaits it before publishing. async-nats hands the subscription and the publication to its
//! connection task in that order through one channel, so the server has the `SUB` before the
//! call goes out, and every reply has a subscriber.
//!
//! One call, as this client makes it:
//! 1. subscribe to `<inbox>.>`; the call's reply subject is `<inbox>.h`;
//! 2. publish the encoded parameters to `<prefix>.wrpc.0.0.1.<instance>.<function>` with reply
//!    subject `<inbox>.h` (parameters larger than the server's payload limit: the first part);
//! 3. the callee answers on `<inbox>.h` with an empty handshake whose reply subject names its
//!    channel `S`; the rest of the parameters, then an empty message, go to `S.params`;
//! 4. the results arrive on `<inbox>.h.results`, ending with an empty message.
//!
//! Only functions without asynchronous parameters or results (streams, futures) are supported,
//! which is every function of `cim:ecs`; [`Client::invoke`] refuses the others.

use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::{bail, Context as _};
use async_nats::{HeaderMap, StatusCode, Subject};
use bytes::{Buf as _, Bytes};
use futures::StreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The wRPC protocol version in invocation subjects.
const PROTOCOL: &str = "wrpc.0.0.1";

/// A wRPC client for the functions served under `prefix` (a lattice and a component or
/// provider id: `<lattice>.<id>`, as wasmCloud serves them).
#[derive(Clone, Debug)]
pub struct Client {
    nats: async_nats::Client,
    prefix: String,
    handshake: std::time::Duration,
}

/// How long a call waits for the callee's handshake by default.
pub const HANDSHAKE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

impl Client {
    /// A client calling functions served under `prefix` over `nats`.
    pub fn new(nats: async_nats::Client, prefix: impl Into<String>) -> Self {
        Self {
            nats,
            prefix: prefix.into(),
            handshake: HANDSHAKE_DEADLINE,
        }
    }

    /// The same client, waiting at most `deadline` for a callee's handshake (the results have
    /// no deadline here: bound the whole call where it is made).
    pub fn with_handshake_deadline(mut self, deadline: std::time::Duration) -> Self {
        self.handshake = deadline;
        self
    }

    /// The subject a call of `func` of `instance` is published to.
    fn invocation_subject(&self, instance: &str, func: &str) -> String {
        let mut s = String::with_capacity(self.prefix.len() + instance.len() + func.len() + 16);
        if !self.prefix.is_empty() {
            s.push_str(&self.prefix);
            s.push('.');
        }
        s.push_str(PROTOCOL);
        s.push('.');
        if !instance.is_empty() {
            s.push_str(instance);
            s.push('.');
        }
        s.push_str(func);
        s
    }

    /// How many parameter bytes fit in one message to `reply` with `headers`.
    fn payload_room(&self, reply: &str, headers: Option<&HeaderMap>) -> usize {
        let mut room = self
            .nats
            .server_info()
            .max_payload
            .saturating_sub(reply.len());
        if let Some(headers) = headers {
            room = room.saturating_sub(b"NATS/1.0\r\n\r\n".len());
            for (name, values) in headers.iter() {
                let name: &[u8] = name.as_ref();
                for value in values {
                    room = room.saturating_sub(name.len() + value.as_str().len() + 4);
                }
            }
        }
        room.max(1)
    }
}

impl wrpc_transport::Invoke for Client {
    type Context = Option<HeaderMap>;
    type Outgoing = Outgoing;
    type Incoming = Incoming;

    async fn invoke<P>(
        &self,
        cx: Self::Context,
        instance: &str,
        func: &str,
        mut params: Bytes,
        paths: impl AsRef<[P]> + Send,
    ) -> anyhow::Result<(Self::Outgoing, Self::Incoming)>
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        if !paths.as_ref().is_empty() {
            bail!("{func}: asynchronous results are not supported by this client");
        }
        let inbox = self.nats.new_inbox();
        let reply = format!("{inbox}.h");
        let results = format!("{reply}.results");
        // Subscribed before anything is published: the reply cannot arrive unseen.
        let mut sub = self
            .nats
            .subscribe(format!("{inbox}.>"))
            .await
            .context("cannot subscribe to the call's replies")?;
        let subject = self.invocation_subject(instance, func);
        let first = params.split_to(self.payload_room(&reply, cx.as_ref()).min(params.len()));
        match cx {
            Some(headers) => {
                self.nats
                    .publish_with_reply_and_headers(subject, reply.clone(), headers, first)
                    .await
            }
            None => {
                self.nats
                    .publish_with_reply(subject, reply.clone(), first)
                    .await
            }
        }
        .context("cannot publish the call")?;
        self.nats.flush().await.context("cannot flush the call")?;

        // The handshake: the callee's channel for the rest of the parameters. (The callee
        // sends it before any result; results seen first are kept all the same.)
        let mut early = std::collections::VecDeque::new();
        let deadline = tokio::time::Instant::now() + self.handshake;
        let handshake = loop {
            let msg = tokio::time::timeout_at(deadline, sub.next())
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "no handshake from {} within {:?}",
                        self.prefix,
                        self.handshake
                    )
                })?
                .context("the reply subscription ended before the handshake")?;
            if msg.subject.as_str() == reply {
                break msg;
            }
            early.push_back(msg);
        };
        match handshake.status {
            Some(StatusCode::NO_RESPONDERS) => bail!("no responders on {}", self.prefix),
            Some(code) if !code.is_success() => bail!(
                "the call was answered with status {code}{}",
                handshake
                    .description
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
            _ => {}
        }
        let channel = handshake
            .reply
            .context("the callee's handshake names no channel")?;
        let params_subject = Subject::from(format!("{channel}.params"));
        let room = self.payload_room("", None);
        while !params.is_empty() {
            let chunk = params.split_to(room.min(params.len()));
            self.nats
                .publish(params_subject.clone(), chunk)
                .await
                .context("cannot send the call's parameters")?;
        }
        // End of the parameter stream.
        self.nats
            .publish(params_subject, Bytes::new())
            .await
            .context("cannot end the call's parameters")?;
        Ok((
            Outgoing,
            Incoming {
                early,
                sub: Some(sub),
                results,
                buffer: Bytes::new(),
            },
        ))
    }
}

/// The parameter stream after the call: everything was sent by [`Client::invoke`], so writing
/// more is refused and closing it does nothing.
#[derive(Debug)]
pub struct Outgoing;

impl AsyncWrite for Outgoing {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "asynchronous parameters are not supported by this client",
        )))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl wrpc_transport::Index<Outgoing> for Outgoing {
    fn index(&self, path: &[usize]) -> anyhow::Result<Outgoing> {
        bail!("asynchronous parameters are not supported by this client (path {path:?})")
    }
}

/// The result stream of one call: the payloads of the messages on `<reply>.results`, up to
/// the empty message that ends it.
#[derive(Debug)]
pub struct Incoming {
    /// Messages that arrived before the handshake.
    early: std::collections::VecDeque<async_nats::Message>,
    /// `None` once the stream ended.
    sub: Option<async_nats::Subscriber>,
    results: String,
    buffer: Bytes,
}

impl AsyncRead for Incoming {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            if !self.buffer.is_empty() {
                let n = self.buffer.len().min(buf.remaining());
                buf.put_slice(&self.buffer[..n]);
                self.buffer.advance(n);
                return Poll::Ready(Ok(()));
            }
            let next = match self.early.pop_front() {
                Some(msg) => Poll::Ready(Some(msg)),
                None => match self.sub.as_mut() {
                    Some(sub) => sub.poll_next_unpin(cx),
                    None => return Poll::Ready(Ok(())),
                },
            };
            match next {
                Poll::Pending => return Poll::Pending,
                // The subscription ended (the connection closed): end of stream.
                Poll::Ready(None) => {
                    self.sub = None;
                }
                Poll::Ready(Some(msg)) if msg.subject.as_str() != self.results => {}
                Poll::Ready(Some(msg)) if msg.payload.is_empty() => {
                    // Dropping the subscriber unsubscribes.
                    self.sub = None;
                }
                Poll::Ready(Some(msg)) => self.buffer = msg.payload,
            }
        }
    }
}

impl wrpc_transport::Index<Incoming> for Incoming {
    fn index(&self, path: &[usize]) -> anyhow::Result<Incoming> {
        bail!("asynchronous results are not supported by this client (path {path:?})")
    }
}
