//! A 2 GiB layer streams through pier without pier holding it in memory: one streaming
//! `PATCH` of generated, incompressible bytes (hashed as they are generated), then
//! `PUT ?digest=`, while pier's RSS is sampled. Then the blob reads back: its size and
//! digest on `HEAD`, and byte ranges on `GET`.

use pier_e2e::{expect_status, header};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pier_e2e::Pier;
use reqwest::StatusCode;
use reqwest::blocking::{Body, Client};
use sha2::Digest as _;

const LAYER_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// pier's resident memory must stay under this (100 MB) while the layer streams through.
const MAX_RSS_BYTES: u64 = 100_000_000;
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// The layer is produced in blocks of this size (a multiple of 8: one splitmix64 word).
const GEN_BLOCK: usize = 1024 * 1024;
/// The ranged read at the end: the last MiB.
const TAIL: u64 = 1024 * 1024;
/// A generous bound for one request of the 2 GiB (a debug build on 2 cores).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(900);
/// The sampler stops by itself after this many samples, whatever happens.
const MAX_SAMPLES: u32 = 2 * 900 * 10;
const SEED: u64 = 0x5EED_2614_B161_A7E0;
/// The (private) project of [`REPO`].
const PROJECT: &str = "big";
const REPO: &str = "big/layer";

/// The layer's bytes at word `index`: splitmix64 of a counter, so any range can be
/// regenerated without the bytes before it, and nothing in it repeats or compresses.
fn word(index: u64) -> u64 {
    let mut z = SEED.wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `len` bytes of the layer starting at `offset`.
fn layer_bytes(offset: u64, len: usize) -> Vec<u8> {
    let skip = (offset % 8) as usize;
    let mut out = vec![0u8; (skip + len).next_multiple_of(8)];
    for (i, w) in out.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&word(offset / 8 + i as u64).to_le_bytes());
    }
    out.drain(..skip);
    out.truncate(len);
    out
}

/// The layer as a `Read`, hashing each block as it is generated.
struct Layer {
    next: u64,
    block: Vec<u8>,
    pos: usize,
    /// Running hash and the number of bytes it covers.
    hashed: Arc<Mutex<(sha2::Sha256, u64)>>,
}

impl Read for Layer {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.block.len() {
            if self.next >= LAYER_BYTES {
                return Ok(0);
            }
            let n = GEN_BLOCK.min((LAYER_BYTES - self.next) as usize);
            self.block = layer_bytes(self.next, n);
            let mut h = self.hashed.lock().expect("hasher");
            h.0.update(&self.block);
            h.1 += n as u64;
            self.next += n as u64;
            self.pos = 0;
        }
        let n = out.len().min(self.block.len() - self.pos);
        out[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Sets the flag when dropped, so the sampler stops even when the test panics.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Push the layer; returns its digest and the seconds the PATCH and the PUT took.
fn push_layer(c: &Client, base: &str) -> (String, f64, f64) {
    let r = c.post(format!("{base}/v2/{REPO}/blobs/uploads/")).send().expect("POST");
    let r = expect_status(r, StatusCode::ACCEPTED, "open session");
    let session = format!("{base}{}", header(&r, "location"));
    let hashed = Arc::new(Mutex::new((sha2::Sha256::new(), 0u64)));
    let layer = Layer {
        next: 0,
        block: Vec::new(),
        pos: 0,
        hashed: hashed.clone(),
    };
    let started = Instant::now();
    let r = c
        .patch(&session)
        .header("content-type", "application/octet-stream")
        .body(Body::sized(layer, LAYER_BYTES))
        .send()
        .expect("PATCH 2 GiB");
    let r = expect_status(r, StatusCode::ACCEPTED, "PATCH 2 GiB");
    assert_eq!(header(&r, "range"), format!("0-{}", LAYER_BYTES - 1));
    let patch_secs = started.elapsed().as_secs_f64();
    let (h, n) = std::mem::take(&mut *hashed.lock().expect("hasher"));
    assert_eq!(n, LAYER_BYTES, "the body sent is not the whole layer");
    let digest = format!("sha256:{}", hex::encode(h.finalize()));

    let started = Instant::now();
    let r = c.put(format!("{session}?digest={digest}")).send().expect("PUT");
    let r = expect_status(r, StatusCode::CREATED, "commit 2 GiB");
    assert_eq!(header(&r, "docker-content-digest"), digest);
    (digest, patch_secs, started.elapsed().as_secs_f64())
}

/// `GET` with `Range: bytes=<start>-<start+len-1>` answers exactly those bytes.
fn assert_range(c: &Client, blob: &str, start: u64, len: u64) {
    let end = start + len - 1;
    let r = c
        .get(blob)
        .header("range", format!("bytes={start}-{end}"))
        .send()
        .expect("ranged GET");
    let r = expect_status(r, StatusCode::PARTIAL_CONTENT, "ranged GET");
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes {start}-{end}/{LAYER_BYTES}")
    );
    let body = r.bytes().expect("range body");
    assert_eq!(body.len() as u64, len, "range {start}-{end}: wrong length");
    assert!(
        body[..] == layer_bytes(start, len as usize)[..],
        "range {start}-{end}: wrong bytes"
    );
}

#[test]
fn two_gib_layer_streams_with_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut pier = Pier::start(&data);
    pier.create_project(PROJECT, false);
    // No proxy (the environment may set one, and all traffic here is loopback); every
    // request authenticates as the system admin.
    let c = pier_e2e::admin_client(REQUEST_TIMEOUT);
    let base = pier.url();

    let done = AtomicBool::new(false);
    let (max_rss_kib, samples, (digest, patch_secs, put_secs)) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let (mut max, mut n) = (0u64, 0u32);
            while !done.load(Ordering::Relaxed) && n < MAX_SAMPLES {
                max = max.max(pier.rss_kib());
                n += 1;
                std::thread::sleep(SAMPLE_EVERY);
            }
            (max, n)
        });
        let _stop = StopOnDrop(&done);
        let pushed = push_layer(&c, &base);
        done.store(true, Ordering::Relaxed);
        let (max, n) = sampler.join().expect("sampler");
        (max, n, pushed)
    });
    let mb_s = |secs: f64| LAYER_BYTES as f64 / secs / 1e6;
    println!(
        "big_layer: 2 GiB layer, max pier RSS {:.1} MB over {samples} samples (limit {} MB); PATCH {patch_secs:.1} s \
         ({:.0} MB/s), commit {put_secs:.1} s, overall {:.0} MB/s (debug pier; informational)",
        (max_rss_kib * 1024) as f64 / 1e6,
        MAX_RSS_BYTES / 1_000_000,
        mb_s(patch_secs),
        mb_s(patch_secs + put_secs)
    );
    assert!(samples > 0 && max_rss_kib > 0, "pier's RSS was never sampled");
    assert!(
        max_rss_kib * 1024 < MAX_RSS_BYTES,
        "pier's RSS reached {max_rss_kib} KiB while a 2 GiB layer streamed through"
    );

    let blob = format!("{base}/v2/{REPO}/blobs/{digest}");
    let r = c.head(&blob).send().expect("HEAD");
    let r = expect_status(r, StatusCode::OK, "HEAD 2 GiB blob");
    assert_eq!(header(&r, "content-length"), LAYER_BYTES.to_string());
    assert_eq!(header(&r, "docker-content-digest"), digest);
    assert_range(&c, &blob, LAYER_BYTES - TAIL, TAIL);
    // And one deep inside, not aligned to anything pier or the generator uses.
    assert_range(&c, &blob, LAYER_BYTES / 2 + 12_345, 65_537);

    let exit = pier.stop();
    assert!(exit.success(), "pier exited with {exit}; log:\n{}", pier.log_text());
    // 2 GiB must not outlive the test.
    dir.close().expect("remove the 2 GiB data dir");
    assert!(!data.exists(), "the data dir is still there");
}
