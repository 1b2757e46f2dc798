//! `cim object`: the content-addressed object store, over wRPC (`cim:ecs/objectstore` on the
//! deployed `cim-objectstore` provider).

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use cim_domain::EcsError;
use cim_wrpc::bindings::cim::ecs::objectstore;

use crate::Cli;

/// The provider id the CIM manifests give the object store.
pub const OBJECTSTORE_ID: &str = "cim-objectstore";
/// How long one object call may take.
const OBJECT_TIMEOUT: Duration = Duration::from_secs(60);

/// A wRPC client of the lattice's object store.
pub async fn objectstore_client(
    nats: &async_nats::Client,
    lattice: &str,
) -> anyhow::Result<wrpc_transport_nats::Client> {
    wrpc_transport_nats::Client::new(nats.clone(), format!("{lattice}.{OBJECTSTORE_ID}"), None)
        .await
        .context("cannot create a wRPC client")
}

async fn within<T>(
    what: &str,
    fut: impl std::future::Future<Output = anyhow::Result<Result<T, cim_wrpc::EcsError>>>,
) -> anyhow::Result<Result<T, EcsError>> {
    let answer = tokio::time::timeout(OBJECT_TIMEOUT, fut)
        .await
        .with_context(|| format!("{what}: no answer from {OBJECTSTORE_ID} in time"))?
        .with_context(|| format!("{what}: wRPC call to {OBJECTSTORE_ID} failed"))?;
    Ok(answer.map_err(cim_wrpc::error_in))
}

/// Stores `data`; returns its CID.
pub async fn put_object(
    nats: &async_nats::Client,
    lattice: &str,
    data: Vec<u8>,
    media_type: &str,
) -> anyhow::Result<Result<String, EcsError>> {
    let client = objectstore_client(nats, lattice).await?;
    let data: bytes::Bytes = data.into();
    // A put is idempotent (the object is named by its bytes), so a small put whose answer was
    // lost (docs/operations.md, "Lost invocations") is sent again after 2 s; a large one, which
    // may simply take longer and would be uploaded again in full, is sent once.
    if data.len() > RESEND_PUTS_UP_TO {
        return within("put", objectstore::put(&client, None, &data, media_type)).await;
    }
    resent("put", crate::FIRST_DEADLINE, || {
        within("put", objectstore::put(&client, None, &data, media_type))
    })
    .await
}

/// Puts up to this size are sent again when unanswered.
const RESEND_PUTS_UP_TO: usize = 1024 * 1024;

/// `call`, sent again without an answer after `first` (doubling, at most 8 s apart),
/// [`OBJECT_TIMEOUT`] in all.
async fn resent<T, Fut>(what: &str, first: Duration, call: impl FnMut() -> Fut) -> anyhow::Result<T>
where
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    crate::call::resend_until_answered(
        &format!("{OBJECTSTORE_ID} ({what})"),
        first,
        Duration::from_secs(8),
        OBJECT_TIMEOUT,
        call,
    )
    .await
}

/// Reads the object `cid`, verified by the provider against its CID.
pub async fn get_object(
    nats: &async_nats::Client,
    lattice: &str,
    cid: &str,
) -> anyhow::Result<Result<Vec<u8>, EcsError>> {
    let client = objectstore_client(nats, lattice).await?;
    // A get may move up to the largest object: it is sent again after 5 s.
    Ok(resent("get", Duration::from_secs(5), || {
        within("get", objectstore::get(&client, None, cid))
    })
    .await?
    .map(Vec::from))
}

/// `cim object put FILE`: prints the CID.
pub async fn put_file(ctx: &Cli, file: &Path, media_type: &str) -> anyhow::Result<()> {
    cim_domain::check_media_type(media_type)?;
    let data = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let nats = ctx.connect(crate::Role::Client).await?;
    let cid = put_object(&nats, ctx.lattice(), data, media_type)
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{cid}");
    Ok(())
}

/// `cim object get CID [--output FILE]`: writes the verified bytes to FILE or stdout.
pub async fn get_to(ctx: &Cli, cid: &str, output: Option<&Path>) -> anyhow::Result<()> {
    let nats = ctx.connect(crate::Role::Client).await?;
    let data = get_object(&nats, ctx.lattice(), cid)
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match output {
        Some(path) => std::fs::write(path, &data)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            use std::io::Write as _;
            std::io::stdout().write_all(&data)?;
        }
    }
    Ok(())
}

/// `cim object stat CID`.
pub async fn stat(ctx: &Cli, cid: &str) -> anyhow::Result<()> {
    let nats = ctx.connect(crate::Role::Client).await?;
    let client = objectstore_client(&nats, ctx.lattice()).await?;
    let info = within("stat", objectstore::stat(&client, None, cid))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}  {} bytes  {}", info.cid, info.size, info.media_type);
    Ok(())
}
