//! Serving wRPC functions with each invocation's parameters decoded in the invocation's own
//! task, under a deadline.
//!
//! The bindings' generated `serve` (wrpc-transport 0.28 `serve_values`) decodes parameters
//! inside the stream of accepted invocations, one after the other: a single caller whose
//! parameters never complete (a truncated or garbage message on the function's subject)
//! stalls every invocation behind it. With [`function`] the stream only accepts; decoding,
//! handling and answering happen in the future the provider SDK spawns per invocation, and
//! parameters that are not complete within [`PARAMS_DEADLINE`] drop that invocation alone.
//! Only synchronous parameters and results are supported (all of `cim:ecs` is synchronous).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use futures::{SinkExt as _, Stream, StreamExt as _, TryStreamExt as _};
use tokio::io::AsyncWriteExt as _;
use tokio_util::codec::{FramedRead, FramedWrite};
use wrpc_transport::{Deferred as _, Serve, TupleDecode, TupleEncode};

/// How long a caller has to deliver an invocation's parameters.
pub const PARAMS_DEADLINE: Duration = Duration::from_secs(10);

/// One accepted invocation: decode, handle, answer.
pub type Invocation = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'static>>;
/// The invocations of one function (the shape `wasmcloud_provider_sdk::serve_provider_exports`
/// drives).
pub type Invocations = Pin<Box<dyn Stream<Item = anyhow::Result<Invocation>> + Send + 'static>>;

/// Serves `func` of `instance` with parameters `P` and results `R` through `handle`.
pub async fn function<S, P, R, H, Fut>(
    wrpc: &S,
    instance: &'static str,
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
        .serve(instance, func, Vec::<Box<[Option<usize>]>>::new())
        .await
        .with_context(|| format!("failed to serve {instance}.{func}"))?;
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
    Ok((instance, func, invocations.boxed()))
}
