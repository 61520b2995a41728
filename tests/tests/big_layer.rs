//! A 2 GiB layer streams through pier without pier holding it in memory.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pier_e2e::Pier;
use reqwest::blocking::{Body, Client};
use sha2::Digest as _;

const LAYER_BYTES: u64 = 2 * 1024 * 1024 * 1024;
const BLOCK: usize = 1024 * 1024;
/// pier's resident memory must stay under this while the layer streams through.
const MAX_RSS_KIB: u64 = 100 * 1024;
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// A deterministic, incompressible stream: one random block, with each copy made distinct
/// by its index in the first bytes. Hashes what it hands out.
struct Generated {
    block: Vec<u8>,
    current: (u64, Vec<u8>),
    sent: u64,
    hasher: Arc<Mutex<sha2::Sha256>>,
}

fn block_at(base: &[u8], index: u64) -> Vec<u8> {
    let mut b = base.to_vec();
    b[..8].copy_from_slice(&index.to_le_bytes());
    b
}

impl Read for Generated {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.sent >= LAYER_BYTES {
            return Ok(0);
        }
        let index = self.sent / BLOCK as u64;
        let offset = (self.sent % BLOCK as u64) as usize;
        if self.current.0 != index || self.current.1.is_empty() {
            self.current = (index, block_at(&self.block, index));
        }
        let n = out.len().min(BLOCK - offset);
        out[..n].copy_from_slice(&self.current.1[offset..offset + n]);
        self.hasher.lock().unwrap().update(&out[..n]);
        self.sent += n as u64;
        Ok(n)
    }
}

#[test]
fn two_gib_layer_streams_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let pier = Pier::start(&dir.path().join("data"));
    let c = Client::builder().timeout(REQUEST_TIMEOUT).build().unwrap();
    let base = pier.url();

    let mut seed = 0x1234_5678_9abc_def1u64;
    let block: Vec<u8> = (0..BLOCK)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();

    let done = Arc::new(AtomicBool::new(false));
    let max_rss = Arc::new(AtomicU64::new(0));
    let pid = pier.pid();
    let sampler = {
        let (done, max_rss) = (done.clone(), max_rss.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kib) = s
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.split_whitespace().next())
                        .and_then(|v| v.parse::<u64>().ok())
                {
                    max_rss.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
        })
    };

    let r = c.post(format!("{base}/v2/big/layer/blobs/uploads/")).send().unwrap();
    assert_eq!(r.status(), 202);
    let loc = format!("{base}{}", r.headers()["location"].to_str().unwrap());
    let hasher = Arc::new(Mutex::new(sha2::Sha256::new()));
    let body = Generated {
        block: block.clone(),
        current: (0, Vec::new()),
        sent: 0,
        hasher: hasher.clone(),
    };
    let started = Instant::now();
    let r = c
        .patch(&loc)
        .header("content-type", "application/octet-stream")
        .body(Body::sized(body, LAYER_BYTES))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["range"], format!("0-{}", LAYER_BYTES - 1).as_str());
    let digest = format!("sha256:{}", hex::encode(hasher.lock().unwrap().clone().finalize()));
    let r = c.put(format!("{loc}?digest={digest}")).send().unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text());
    let secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let max = max_rss.load(Ordering::Relaxed);
    println!(
        "2 GiB layer: max pier RSS {:.1} MiB, {:.2} GB/s through a debug build (informational)",
        max as f64 / 1024.0,
        LAYER_BYTES as f64 / secs / 1e9
    );
    assert!(max > 0, "RSS was never sampled");
    assert!(max < MAX_RSS_KIB, "pier RSS reached {max} KiB pushing a 2 GiB layer");

    let head = c.head(format!("{base}/v2/big/layer/blobs/{digest}")).send().unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], LAYER_BYTES.to_string().as_str());
    assert_eq!(head.headers()["docker-content-digest"], digest.as_str());
    let last = LAYER_BYTES / BLOCK as u64 - 1;
    let tail = c
        .get(format!("{base}/v2/big/layer/blobs/{digest}"))
        .header("range", format!("bytes={}-", last * BLOCK as u64))
        .send()
        .unwrap();
    assert_eq!(tail.status(), 206);
    assert!(
        tail.bytes().unwrap()[..] == block_at(&block, last)[..],
        "last MiB differs"
    );
}
