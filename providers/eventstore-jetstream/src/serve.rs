//! Serving `cim:ecs/eventstore` over wRPC with each invocation's parameters decoded in the
//! invocation's own task, under a deadline.
//!
//! The bindings' generated `serve` decodes parameters inside the stream of accepted
//! invocations, one after the other: a single caller whose parameters never complete (a
//! truncated or garbage message on the function's subject) stalls every invocation behind it.
//! Here the stream only accepts; decoding, handling and answering happen in the future the SDK
//! spawns per invocation, and parameters that are not complete within [`PARAMS_DEADLINE`] drop
//! that invocation alone (logged by the SDK as a failed invocation).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use futures::{SinkExt as _, Stream, StreamExt as _, TryStreamExt as _};
use tokio::io::AsyncWriteExt as _;
use tokio_util::codec::{FramedRead, FramedWrite};
use wasmcloud_provider_sdk::provider::{InvocationStreams, WrpcClient};
use wrpc_transport::{Deferred as _, Serve, TupleDecode, TupleEncode};

use crate::bindings::exports::cim::ecs::eventstore::Handler as _;
use crate::provider::EventStoreProvider;

/// The served instance.
pub const INSTANCE: &str = "cim:ecs/eventstore@0.1.0";
/// How long a caller has to deliver an invocation's parameters.
pub const PARAMS_DEADLINE: Duration = Duration::from_secs(10);

type Invocation = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'static>>;
type Invocations = Pin<Box<dyn Stream<Item = anyhow::Result<Invocation>> + Send + 'static>>;

/// Serves one function with parameters `P` and results `R` through `handle`.
async fn function<S, P, R, H, Fut>(
    wrpc: &S,
    func: &'static str,
    handle: H,
) -> anyhow::Result<(&'static str, &'static str, Invocations)>
where
    S: Serve,
    P: TupleDecode<S::Incoming> + Send + 'static,
    R: TupleEncode<S::Outgoing> + Send + 'static,
    <P::Decoder as tokio_util::codec::Decoder>::Error: std::error::Error + Send + Sync + 'static,
    <R::Encoder as tokio_util::codec::Encoder<R>>::Error: std::error::Error + Send + Sync + 'static,
    H: Fn(S::Context, P) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<R>> + Send + 'static,
{
    let accepted = wrpc
        .serve(INSTANCE, func, Vec::<Box<[Option<usize>]>>::new())
        .await
        .with_context(|| format!("failed to serve {INSTANCE}.{func}"))?;
    let invocations = accepted.map_ok(move |(cx, outgoing, incoming)| {
        let handle = handle.clone();
        Box::pin(async move {
            let mut params = FramedRead::new(incoming, P::Decoder::default());
            let decoded = tokio::time::timeout(PARAMS_DEADLINE, params.try_next())
                .await
                .map_err(|_| {
                    anyhow!("{func}: parameters incomplete after {PARAMS_DEADLINE:?}; dropped")
                })?
                .with_context(|| format!("{func}: malformed parameters"))?
                .ok_or_else(|| anyhow!("{func}: no parameters"))?;
            if params.decoder_mut().take_deferred().is_some() {
                bail!("{func}: asynchronous parameters are not part of this interface");
            }
            let results = handle(cx, decoded).await?;
            let mut out = FramedWrite::new(outgoing, R::Encoder::default());
            out.send(results)
                .await
                .with_context(|| format!("{func}: failed to send the results"))?;
            if out.encoder_mut().take_deferred().is_some() {
                bail!("{func}: asynchronous results are not part of this interface");
            }
            out.into_inner()
                .shutdown()
                .await
                .with_context(|| format!("{func}: failed to close the result stream"))
        }) as Invocation
    });
    Ok((INSTANCE, func, invocations.boxed()))
}

/// The invocation streams of every `cim:ecs/eventstore` function, for
/// [`wasmcloud_provider_sdk::serve_provider_exports`].
pub async fn exports(
    wrpc: &WrpcClient,
    provider: EventStoreProvider,
) -> anyhow::Result<InvocationStreams> {
    let p = provider.clone();
    let append = function(wrpc, "append", move |cx, (entity, expected, events)| {
        let p = p.clone();
        async move { Ok((p.append(cx, entity, expected, events).await?,)) }
    })
    .await?;
    let p = provider.clone();
    let read = function(wrpc, "read", move |cx, (entity, from, max)| {
        let p = p.clone();
        async move { Ok((p.read(cx, entity, from, max).await?,)) }
    })
    .await?;
    let p = provider.clone();
    let load = function(wrpc, "load-snapshot", move |cx, (entity,)| {
        let p = p.clone();
        async move { Ok((p.load_snapshot(cx, entity).await?,)) }
    })
    .await?;
    let save = function(wrpc, "save-snapshot", move |cx, (snap,)| {
        let p = provider.clone();
        async move { Ok((p.save_snapshot(cx, snap).await?,)) }
    })
    .await?;
    Ok(vec![append, read, load, save])
}
