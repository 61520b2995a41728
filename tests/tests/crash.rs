//! `kill -9` at random moments during concurrent pushes, then restart and check: every
//! answered push is still there, every tag resolves, every referenced blob hashes to its
//! name, and no partial blob sits under a digest name.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pier_e2e::images::sha256;
use pier_e2e::{Pier, sha256_file};
use reqwest::blocking::Client;
use serde_json::{Value, json};

const ROUNDS: u64 = 5;
const PUSHERS: u64 = 4;
/// Upper bound on pushes per pusher per round (the kill normally comes first).
const MAX_PUSHES: u64 = 500;
/// The kill comes this long after the pushers start, chosen at random in the range.
const KILL_AFTER_MS: (u64, u64) = (100, 1500);
const MAX_BLOB: u64 = 2 * 1024 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const REPOS: [&str; 3] = ["crash/a", "crash/a/b", "crash/deep/x/y"];

/// xorshift64*: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[derive(Clone, Debug)]
struct Acked {
    repo: &'static str,
    tag: String,
    digest: String,
    bytes: Vec<u8>,
}

fn client() -> Client {
    Client::builder().timeout(REQUEST_TIMEOUT).build().unwrap()
}

/// Push one blob, monolithic or as a two-chunk session; `None` when the server went away.
fn push_blob(c: &Client, base: &str, repo: &str, data: &[u8], chunked: bool) -> Option<String> {
    let d = sha256(data);
    if !chunked {
        let r = c
            .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
            .body(data.to_vec())
            .send()
            .ok()?;
        return (r.status() == 201).then_some(d);
    }
    let r = c.post(format!("{base}/v2/{repo}/blobs/uploads/")).send().ok()?;
    let loc = format!("{base}{}", r.headers().get("location")?.to_str().ok()?);
    let half = data.len() / 2;
    if half > 0 {
        let r = c
            .patch(&loc)
            .header("content-range", format!("0-{}", half - 1))
            .body(data[..half].to_vec())
            .send()
            .ok()?;
        if r.status() != 202 {
            return None;
        }
    }
    let r = c
        .put(format!("{loc}?digest={d}"))
        .body(data[half..].to_vec())
        .send()
        .ok()?;
    (r.status() == 201).then_some(d)
}

fn pusher(base: String, seed: u64, round: u64, id: u64, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<Acked>>>) {
    let c = client();
    let mut rng = Rng(seed ^ (round << 32) ^ (id + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    for n in 0..MAX_PUSHES {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let repo = REPOS[rng.below(REPOS.len() as u64) as usize];
        let config = serde_json::to_vec(&json!({ "round": round, "pusher": id, "n": n, "r": rng.next() })).unwrap();
        let size = rng.below(MAX_BLOB) as usize;
        let layer = rng.bytes(size);
        let Some(cd) = push_blob(&c, &base, repo, &config, false) else {
            return;
        };
        let Some(ld) = push_blob(&c, &base, repo, &layer, rng.below(2) == 0) else {
            return;
        };
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": pier_oci::media::OCI_MANIFEST,
            "config": { "mediaType": pier_oci::media::OCI_CONFIG, "digest": cd, "size": config.len() },
            "layers": [{ "mediaType": pier_oci::media::OCI_LAYER_GZIP, "digest": ld, "size": layer.len() }],
        }))
        .unwrap();
        let tag = format!("r{round}-p{id}-n{n}");
        let Ok(r) = c
            .put(format!("{base}/v2/{repo}/manifests/{tag}"))
            .header("content-type", pier_oci::media::OCI_MANIFEST)
            .body(manifest.clone())
            .send()
        else {
            return;
        };
        if r.status() != 201 {
            return;
        }
        acked.lock().unwrap().push(Acked {
            repo,
            tag,
            digest: sha256(&manifest),
            bytes: manifest,
        });
    }
}

fn get(c: &Client, url: &str) -> (u16, Vec<u8>, String) {
    let r = c.get(url).header("accept", "*/*").send().unwrap();
    let status = r.status().as_u16();
    let digest = r
        .headers()
        .get("docker-content-digest")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, r.bytes().unwrap().to_vec(), digest)
}

/// Every file under DATA/blobs hashes to its own name.
fn check_blob_files(data: &std::path::Path) -> usize {
    let mut n = 0;
    for shard in std::fs::read_dir(data.join("blobs/sha256"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            assert_eq!(
                sha256_file(&f.path()),
                format!("sha256:{name}"),
                "partial or corrupt blob file {name}"
            );
            n += 1;
        }
    }
    n
}

#[test]
fn kill_9_during_concurrent_pushes_loses_nothing_answered() {
    let seed = std::env::var("PIER_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash test seed {seed} (rerun with PIER_CRASH_SEED={seed})");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut pier = Pier::start(&data);
    let addr = pier.addr;
    let acked = Arc::new(Mutex::new(Vec::<Acked>::new()));
    let mut rng = Rng(seed);
    let c = client();
    let (mut tags_checked, mut blobs_checked) = (0usize, 0usize);

    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..PUSHERS)
            .map(|id| {
                let (base, stop, acked) = (pier.url(), stop.clone(), acked.clone());
                std::thread::spawn(move || pusher(base, seed, round, id, stop, acked))
            })
            .collect();
        let delay = KILL_AFTER_MS.0 + rng.below(KILL_AFTER_MS.1 - KILL_AFTER_MS.0);
        std::thread::sleep(Duration::from_millis(delay));
        pier.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }
        drop(pier);
        pier = Pier::start_on(&data, addr);
        let base = pier.url();

        // (a) every answered push survived, byte for byte, by tag and by digest.
        for a in acked.lock().unwrap().iter() {
            for reference in [&a.tag, &a.digest] {
                let (status, bytes, digest) = get(&c, &format!("{base}/v2/{}/manifests/{reference}", a.repo));
                assert_eq!(
                    status, 200,
                    "acknowledged {}:{reference} lost after kill -9 (seed {seed})",
                    a.repo
                );
                assert_eq!(bytes, a.bytes);
                assert_eq!(digest, a.digest);
            }
        }
        // (b) every tag that exists resolves, and everything it references is whole.
        let catalog: Value = serde_json::from_slice(&get(&c, &format!("{base}/v2/_catalog")).1).unwrap();
        for repo in catalog["repositories"].as_array().unwrap() {
            let repo = repo.as_str().unwrap();
            let tags: Value = serde_json::from_slice(&get(&c, &format!("{base}/v2/{repo}/tags/list")).1).unwrap();
            for tag in tags["tags"].as_array().unwrap() {
                let (status, bytes, digest) = get(&c, &format!("{base}/v2/{repo}/manifests/{}", tag.as_str().unwrap()));
                assert_eq!(status, 200, "{repo}:{tag} is listed but does not resolve (seed {seed})");
                assert_eq!(sha256(&bytes), digest);
                let m: Value = serde_json::from_slice(&bytes).unwrap();
                let refs = std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap());
                for d in refs {
                    let want = d["digest"].as_str().unwrap();
                    let (status, blob, _) = get(&c, &format!("{base}/v2/{repo}/blobs/{want}"));
                    assert_eq!(status, 200, "{repo}:{tag} references missing blob {want} (seed {seed})");
                    assert_eq!(sha256(&blob), want, "blob {want} is corrupt (seed {seed})");
                    blobs_checked += 1;
                }
                tags_checked += 1;
            }
        }
        // (c) no partial blob under a digest name.
        check_blob_files(&data);
    }
    let acked = acked.lock().unwrap().len();
    assert!(acked > 0, "no push was ever acknowledged: the test exercised nothing");
    let files = check_blob_files(&data);
    println!(
        "crash: {ROUNDS} rounds, {acked} pushes acknowledged and verified, {tags_checked} tag checks, \
         {blobs_checked} blob checks, {files} blob files verified"
    );
    assert!(pier.stop().success(), "{}", pier.log_text());
}
