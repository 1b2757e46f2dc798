//! The content-addressed object store: a NATS Object Store bucket whose object names are the
//! CIDs of their bytes (CIDv1, raw codec, sha2-256: [`cim_domain::object_cid`]).
//!
//! - `put` computes the CID first and stores the bytes only if no object has that name, so
//!   storing the same bytes twice stores them once.
//! - `get` recomputes the CID of what it read and fails loudly (`unavailable`, naming both
//!   CIDs) if the bytes are not what the name promises; corrupt content never reaches a caller.
//! - `delete` is a separate decision of the caller (the provider's policy).

use async_nats::jetstream::object_store::{GetErrorKind, InfoErrorKind};
use async_nats::jetstream::{self, object_store, stream::StorageType};
use cid::Cid;
use cim_domain::{object_cid, EcsError};
use tokio::io::AsyncReadExt as _;

use crate::names::OBJECTS_BUCKET;

/// Metadata key holding an object's media type.
pub const MEDIA_TYPE: &str = "cim-media-type";

/// What is known about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStat {
    /// The object's CID.
    pub cid: Cid,
    /// Size in bytes.
    pub size: u64,
    /// Media type given when it was first stored.
    pub media_type: String,
}

/// The CIM object store.
#[derive(Clone)]
pub struct ObjectStore {
    bucket: object_store::ObjectStore,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> EcsError {
    EcsError::Unavailable(format!("{what}: {e}"))
}

impl ObjectStore {
    /// Opens the bucket, creating it (file storage, no max age) if it does not exist.
    pub async fn open(client: async_nats::Client) -> Result<Self, EcsError> {
        Self::open_bucket(client, OBJECTS_BUCKET).await
    }

    /// Opens the existing bucket and never creates it (for users that may not).
    pub async fn attach(client: async_nats::Client) -> Result<Self, EcsError> {
        let bucket = jetstream::new(client)
            .get_object_store(OBJECTS_BUCKET)
            .await
            .map_err(|e| unavailable("opening the object bucket", e))?;
        Ok(Self { bucket })
    }

    /// Opens (or creates) a bucket with another name, e.g. for benchmarks and tests.
    pub async fn open_bucket(client: async_nats::Client, name: &str) -> Result<Self, EcsError> {
        let js = jetstream::new(client);
        let bucket = match js.get_object_store(name).await {
            Ok(b) => b,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: name.into(),
                    description: Some("CIM objects, named by the CID of their bytes".into()),
                    storage: StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| unavailable("creating the object bucket", e))?,
        };
        Ok(Self { bucket })
    }

    /// Stores `data` unless an object with its CID exists; returns the CID. A media type
    /// that is not `type/subtype[; name=value]…` is refused (`invalid`), and nothing stored.
    pub async fn put(&self, data: &[u8], media_type: &str) -> Result<Cid, EcsError> {
        cim_domain::check_media_type(media_type).map_err(|e| EcsError::Invalid(e.to_string()))?;
        let cid = object_cid(data);
        let name = cid.to_string();
        match self.bucket.info(&name).await {
            Ok(_) => return Ok(cid),
            Err(e) if e.kind() == InfoErrorKind::NotFound => {}
            Err(e) => return Err(unavailable("looking up an object", e)),
        }
        let meta = object_store::ObjectMetadata {
            name,
            metadata: [(MEDIA_TYPE.to_string(), media_type.to_string())].into(),
            ..Default::default()
        };
        let mut reader = data;
        self.bucket
            .put(meta, &mut reader)
            .await
            .map_err(|e| unavailable("storing an object", e))?;
        Ok(cid)
    }

    /// Reads the object named `cid` and verifies its bytes against the CID.
    pub async fn get(&self, cid: &Cid) -> Result<Vec<u8>, EcsError> {
        let mut object = match self.bucket.get(cid.to_string()).await {
            Ok(o) => o,
            Err(e) if e.kind() == GetErrorKind::NotFound => {
                return Err(EcsError::NotFound(format!("object {cid}")))
            }
            Err(e) => return Err(unavailable("reading an object", e)),
        };
        let mut data = Vec::with_capacity(object.info().size);
        // An empty object has no chunks, and async-nats 0.39 waits for one forever: read only
        // what has bytes (found with an empty build log, a cached Nix build's).
        if object.info().size > 0 {
            object
                .read_to_end(&mut data)
                .await
                .map_err(|e| unavailable(&format!("reading object {cid}"), e))?;
        }
        let actual = object_cid(&data);
        if actual != *cid {
            return Err(EcsError::Unavailable(format!(
                "object {cid} is corrupt: its bytes hash to {actual}"
            )));
        }
        Ok(data)
    }

    /// Describes the object named `cid`.
    pub async fn stat(&self, cid: &Cid) -> Result<ObjectStat, EcsError> {
        match self.bucket.info(cid.to_string()).await {
            Ok(info) if !info.deleted => Ok(ObjectStat {
                cid: *cid,
                size: info.size as u64,
                media_type: info.metadata.get(MEDIA_TYPE).cloned().unwrap_or_default(),
            }),
            Ok(_) => Err(EcsError::NotFound(format!("object {cid}"))),
            Err(e) if e.kind() == InfoErrorKind::NotFound => {
                Err(EcsError::NotFound(format!("object {cid}")))
            }
            Err(e) => Err(unavailable("looking up an object", e)),
        }
    }

    /// Deletes the object named `cid`.
    pub async fn delete(&self, cid: &Cid) -> Result<(), EcsError> {
        self.stat(cid).await?;
        self.bucket
            .delete(cid.to_string())
            .await
            .map_err(|e| unavailable("deleting an object", e))
    }

    /// The underlying bucket (for tests and benchmarks that need raw access).
    pub fn bucket(&self) -> &object_store::ObjectStore {
        &self.bucket
    }
}
