//! sha256 on a thread of its own, beside the stream it checks: on a large
//! file the hash costs about as much CPU as moving the bytes, and running
//! it inline would serialize the two.

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use crate::manifest::Sha256Digest;

/// Chunks queued to the hashing thread before `update` waits (bounds the
/// memory one transfer holds on top of its own buffers).
const QUEUED_CHUNKS: usize = 64;

/// Hashes the chunks given to [`update`](Self::update) in order, on a
/// blocking thread; [`finish`](Self::finish) returns the digest.
pub(crate) struct PipelinedSha256 {
    tx: mpsc::Sender<Bytes>,
    done: tokio::task::JoinHandle<[u8; 32]>,
}

impl PipelinedSha256 {
    pub(crate) fn new() -> Self {
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUED_CHUNKS);
        let done = tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            while let Some(chunk) = rx.blocking_recv() {
                hasher.update(&chunk);
            }
            hasher.finalize().into()
        });
        Self { tx, done }
    }

    /// Queues a chunk (a cheap clone of the caller's `Bytes`).
    pub(crate) async fn update(&self, chunk: Bytes) {
        // The thread only stops when the sender is dropped.
        let _ = self.tx.send(chunk).await;
    }

    pub(crate) async fn finish(self) -> std::io::Result<Sha256Digest> {
        drop(self.tx);
        let digest = self.done.await.map_err(std::io::Error::other)?;
        Ok(Sha256Digest(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_digest_is_that_of_the_chunks_in_order() {
        let h = PipelinedSha256::new();
        for part in [&b"ab"[..], b"", b"cdef", b"g"] {
            h.update(Bytes::copy_from_slice(part)).await;
        }
        assert_eq!(h.finish().await.unwrap(), Sha256Digest::of(b"abcdefg"));
        assert_eq!(
            PipelinedSha256::new().finish().await.unwrap(),
            Sha256Digest::of(b"")
        );
    }
}
