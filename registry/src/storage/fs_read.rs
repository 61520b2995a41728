//! Streaming a blob file out to a download.
//!
//! One blocking reader per download reads the file chunk by chunk into buffers it hands
//! out as [`Bytes`]; a buffer comes back to the reader once the socket has written it
//! (once its `Bytes` is dropped) and is filled again. A new buffer per chunk left freed
//! chunks behind in the allocator's per-thread arenas, so the footprint grew with the
//! number of concurrent downloads (67 MiB peak for 16, against 28 MiB reusing them;
//! `bench/download.sh`); reuse also spares each chunk an allocation, its page faults and
//! its zeroing. A consumer that keeps chunks just gets new buffers: the reader never
//! waits for one to come back.

use std::fs::File;
use std::io::{self, Read};
use std::sync::mpsc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::sync::mpsc as chan;

use super::blob::ByteStream;
use crate::limits::{READ_AHEAD, READ_CHUNK};

/// The next `len` bytes of `file`, from its current position, as a stream of chunks of at
/// most [`READ_CHUNK`] bytes. A read error ends the stream with that error; a stream
/// dropped early (the client went away) stops the reader at its next chunk.
pub(super) fn stream(file: File, len: u64) -> ByteStream {
    let (tx, rx) = chan::channel::<io::Result<Bytes>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || read_out(file, len, &tx));
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
}

fn read_out(mut file: File, len: u64, tx: &chan::Sender<io::Result<Bytes>>) {
    let size = len.min(READ_CHUNK as u64) as usize;
    let (home, returned) = mpsc::channel::<Vec<u8>>();
    let mut remaining = len;
    while remaining > 0 {
        let mut buf = returned.try_recv().unwrap_or_else(|_| vec![0; size]);
        let n = remaining.min(size as u64) as usize;
        let item = file.read_exact(&mut buf[..n]).map(|()| {
            Bytes::from_owner(Chunk {
                buf,
                len: n,
                home: home.clone(),
            })
        });
        let failed = item.is_err();
        // Waits while READ_AHEAD chunks are queued: the socket sets the pace.
        if tx.blocking_send(item).is_err() || failed {
            return;
        }
        remaining -= n as u64;
    }
}

/// The filled part of a buffer of the reader, sent back to it when dropped.
struct Chunk {
    buf: Vec<u8>,
    len: usize,
    home: mpsc::Sender<Vec<u8>>,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        // The reader may be done already; then the buffer is simply freed.
        let _ = self.home.send(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom, Write};

    use futures_util::TryStreamExt as _;

    use super::*;

    fn file_of(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test]
    async fn many_chunks_arrive_whole_and_in_order() {
        // Full chunks, then a short last one.
        let data = pattern(READ_CHUNK * (READ_AHEAD + 3) + 123);
        let chunks: Vec<Bytes> = stream(file_of(&data), data.len() as u64).try_collect().await.unwrap();
        assert_eq!(chunks.len(), READ_AHEAD + 4);
        assert!(chunks[..chunks.len() - 1].iter().all(|c| c.len() == READ_CHUNK));
        assert_eq!(chunks.concat(), data);
    }

    #[tokio::test]
    async fn reads_from_the_current_position_for_len_bytes() {
        let data = pattern(10_000);
        let mut f = file_of(&data);
        f.seek(SeekFrom::Start(100)).unwrap();
        let chunks: Vec<Bytes> = stream(f, 900).try_collect().await.unwrap();
        assert_eq!(chunks.concat(), &data[100..1000]);
        let empty: Vec<Bytes> = stream(file_of(&data), 0).try_collect().await.unwrap();
        assert!(empty.is_empty());
    }

    #[tokio::test]
    async fn a_file_shorter_than_asked_ends_with_an_error() {
        let data = pattern(1000);
        let err = stream(file_of(&data), 2000)
            .try_collect::<Vec<Bytes>>()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn written_chunks_buffers_are_filled_again() {
        // Each chunk dropped once copied out, as the socket does: the reader cycles through
        // a few buffers (the queue, the one it fills, the one being sent), and the short
        // last chunk shows none of a reused buffer's old bytes.
        let data = pattern(READ_CHUNK * 40 + 123);
        let mut s = stream(file_of(&data), data.len() as u64);
        let (mut got, mut buffers) = (Vec::new(), std::collections::HashSet::new());
        while let Some(chunk) = s.try_next().await.unwrap() {
            buffers.insert(chunk.as_ptr() as usize);
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, data);
        assert!(
            buffers.len() <= READ_AHEAD + 3,
            "{} buffers for 41 chunks",
            buffers.len()
        );
    }

    #[tokio::test]
    async fn a_consumer_keeping_every_chunk_gets_them_all() {
        // Nothing comes back while all are kept: the reader must not wait for a buffer.
        let data = pattern(READ_CHUNK * 20 + 1);
        let chunks: Vec<Bytes> = stream(file_of(&data), data.len() as u64).try_collect().await.unwrap();
        assert_eq!(chunks.concat(), data);
    }
}
