//! Chunks in an S3-compatible object store (`[storage] backend = "s3"`).
//!
//! A PUT is atomic and durable once acknowledged, so a chunk is never seen
//! half written under its id. The metadata stays in redb on local disk.

use std::sync::Arc;

use exhibit_proto::ChunkId;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::ChunkStore;
use crate::config::StorageConfig;
use crate::error::ServerError;

/// Chunks as objects `<prefix>/<id>` in one bucket.
pub struct S3Chunks {
    store: Arc<AmazonS3>,
    prefix: String,
    // The trait is blocking; object_store is async. A small runtime of our
    // own serves the calls, which must come from a plain or blocking thread
    // (as the trait requires), never from inside an async task.
    rt: Option<tokio::runtime::Runtime>,
    bucket: String,
}

impl std::fmt::Debug for S3Chunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Chunks").field("bucket", &self.bucket).field("prefix", &self.prefix).finish()
    }
}

impl Drop for S3Chunks {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids inside async code.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn s3_err(context: String) -> impl FnOnce(object_store::Error) -> ServerError {
    move |e| {
        // An absent object reads as an absent file does, so a missing
        // chunk is told from a failing store the same way on both.
        let kind = match e {
            object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
            _ => std::io::ErrorKind::Other,
        };
        ServerError::Io { context, source: std::io::Error::new(kind, e.to_string()) }
    }
}

impl S3Chunks {
    /// Connect to the bucket in `cfg`. Credentials not in the config come
    /// from the usual `AWS_*` environment variables.
    pub fn open(cfg: &StorageConfig) -> Result<S3Chunks, ServerError> {
        let bucket =
            cfg.bucket.clone().ok_or_else(|| ServerError::Setup("storage.bucket is required for s3".into()))?;
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_region(cfg.region.as_deref().unwrap_or("us-east-1"))
            .with_allow_http(cfg.allow_http);
        if let Some(e) = &cfg.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(k) = &cfg.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &cfg.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        let store = b.build().map_err(|e| ServerError::Setup(format!("storage: {e}")))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("exhibit-s3")
            .enable_all()
            .build()
            .map_err(ServerError::io("starting the object store runtime"))?;
        let prefix = cfg.prefix.clone().unwrap_or_else(|| "chunks".into()).trim_matches('/').to_owned();
        Ok(S3Chunks { store: Arc::new(store), prefix, rt: Some(rt), bucket })
    }

    fn path(&self, id: &ChunkId) -> ObjectPath {
        ObjectPath::from(format!("{}/{id}", self.prefix))
    }

    fn run<T>(&self, f: impl std::future::Future<Output = T>) -> Result<T, ServerError> {
        let rt = self.rt.as_ref().ok_or_else(|| ServerError::Setup("object store closed".into()))?;
        Ok(rt.block_on(f))
    }
}

impl ChunkStore for S3Chunks {
    fn put(&self, id: &ChunkId, bytes: &[u8]) -> Result<(), ServerError> {
        let payload = PutPayload::from(bytes.to_vec());
        self.run(self.store.put(&self.path(id), payload))?.map_err(s3_err(format!("storing chunk {id}")))?;
        Ok(())
    }

    fn get(&self, id: &ChunkId) -> Result<Vec<u8>, ServerError> {
        let got = self.run(async { self.store.get(&self.path(id)).await?.bytes().await })?;
        Ok(got.map_err(s3_err(format!("reading chunk {id}")))?.to_vec())
    }

    fn has(&self, id: &ChunkId) -> Result<bool, ServerError> {
        match self.run(self.store.head(&self.path(id)))? {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(s3_err(format!("looking up chunk {id}"))(e)),
        }
    }

    fn delete(&self, id: &ChunkId) -> Result<(), ServerError> {
        match self.run(self.store.delete(&self.path(id)))? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(s3_err(format!("deleting chunk {id}"))(e)),
        }
    }

    fn list(&self) -> Result<Vec<ChunkId>, ServerError> {
        let prefix = ObjectPath::from(self.prefix.as_str());
        let metas: Vec<_> = self
            .run(self.store.list(Some(&prefix)).try_collect::<Vec<_>>())?
            .map_err(s3_err("listing chunks".into()))?;
        Ok(metas.iter().filter_map(|m| m.location.filename().and_then(|n| n.parse::<ChunkId>().ok())).collect())
    }
}
