//! `kill -9` at random moments during concurrent pushes, then restart on the same data and
//! check: (a) every acknowledged (201) manifest push is still there, byte for byte, by tag
//! and by digest; (b) every tag of every repository resolves to a manifest that hashes to
//! its digest, and everything it references is whole; (c) every file under
//! `DATA/blobs/<alg>/xx/<hex>` hashes to its own name; (d) interrupted upload sessions are
//! not visible as blobs, still hold at least what was acknowledged, and can be resumed.
//!
//! Random choices come from one seed, printed first; `PIER_CRASH_SEED=<seed>` replays the
//! same choices (the kill lands at a different point of the traffic each time regardless).

use pier_e2e::sha256;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pier_e2e::Pier;
use pier_oci::media;
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{Value, json};
use sha2::Digest as _;

/// Crash rounds: each is traffic, `kill -9`, restart, full verification.
const ROUNDS: u64 = 6;
/// Concurrent pushing threads.
const PUSHERS: u64 = 4;
/// Bound on images one pusher pushes in a round; the kill normally comes long before.
const MAX_PUSHES: u64 = 2_000;
/// The kill comes this long after the pushers start, chosen at random in the range.
const KILL_AFTER_MS: Range<u64> = 100..1500;
/// Blob sizes: tiny config-like blobs, small layers, and layers of a few MiB that take
/// several write batches and are likely to be cut by the kill.
const TINY: Range<u64> = 1..1025;
const SMALL: Range<u64> = 1025..256 * 1024;
const LARGE: Range<u64> = 256 * 1024..4 * 1024 * 1024;
/// A chunked upload sends its blob in 1..=MAX_CHUNKS requests.
const MAX_CHUNKS: u64 = 4;
/// Loopback, blobs of a few MiB: generous, but a hung pier still fails the test.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Listing page size, and a bound on pages followed (far above what a run produces).
const PAGE: usize = 1000;
const MAX_PAGES: usize = 100;
/// Repositories pushed to, several with multi-segment names, in two projects (a name needs
/// a project: one-segment names are denied).
const REPOS: [&str; 4] = ["crash/a", "crash/a/b", "crash/deep/x/y-z", "solo/one"];
/// The projects of [`REPOS`], created (private) once: they must survive the crashes.
const PROJECTS: [&str; 2] = ["crash", "solo"];

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// splitmix64: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(mix(seed))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn within(&mut self, r: Range<u64>) -> u64 {
        r.start + self.below(r.end - r.start)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n.next_multiple_of(8)];
        for w in v.chunks_exact_mut(8) {
            w.copy_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// Every request authenticates as the system admin.
fn client() -> Client {
    pier_e2e::admin_client(REQUEST_TIMEOUT)
}

/// The `Range` pier answers for a session holding `size` bytes (`0-0` when empty).
fn upload_range(size: usize) -> String {
    format!("0-{}", size.saturating_sub(1))
}

/// A blob as a descriptor names it.
#[derive(Clone, Debug)]
struct BlobRef {
    digest: String,
    size: usize,
}

/// A manifest push that pier answered 201.
#[derive(Clone, Debug)]
struct Acked {
    repo: &'static str,
    tag: String,
    digest: String,
    bytes: Vec<u8>,
    /// The image's layers (empty for an index): candidates for cross-repository mounts.
    layers: Vec<BlobRef>,
}

/// An upload session whose POST was answered (so it must survive the crash) and which was
/// still open when pier died.
#[derive(Debug)]
struct OpenSession {
    repo: &'static str,
    location: String,
    digest: String,
    data: Vec<u8>,
    /// Bytes pier acknowledged with a 202: they must survive `kill -9`.
    acked: usize,
    /// Bytes sent, acknowledged or not: the session cannot hold more.
    sent: usize,
    /// Whether the committing PUT went out: then the blob may or may not exist.
    commit_sent: bool,
    /// Whether no other push uses these bytes: only then must the blob be absent.
    unique: bool,
}

/// What the test and its pushers share.
struct Shared {
    base: String,
    acked: Mutex<Vec<Acked>>,
    /// Set just before the kill: from then on, transport errors are expected.
    killed: AtomicBool,
}

/// Why a pusher stopped early.
enum Stop {
    /// pier was killed: expected.
    Gone,
    /// pier answered something it should not have, or failed while alive: a bug.
    Unexpected(String),
}

struct Pusher {
    shared: Arc<Shared>,
    c: Client,
    rng: Rng,
    round: u64,
    id: u64,
    open: Option<OpenSession>,
}

impl Pusher {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.shared.base)
    }

    /// Send; a transport failure is expected only once the kill has started.
    fn send(&self, req: RequestBuilder, what: &str) -> Result<Response, Stop> {
        req.send().map_err(|e| {
            if self.shared.killed.load(Ordering::SeqCst) {
                Stop::Gone
            } else {
                Stop::Unexpected(format!("{what}: request failed while pier was up: {e}"))
            }
        })
    }

    /// Any answer pier gives must be the right one, kill or no kill.
    fn expect(&self, r: Response, want: StatusCode, what: &str) -> Result<Response, Stop> {
        if r.status() == want {
            return Ok(r);
        }
        let status = r.status();
        Err(Stop::Unexpected(format!(
            "{what}: expected {want}, got {status}: {}",
            r.text().unwrap_or_default()
        )))
    }

    fn push_blob(&mut self, repo: &'static str, data: Vec<u8>, unique: bool) -> Result<BlobRef, Stop> {
        let digest = sha256(&data);
        let blob = BlobRef {
            digest: digest.clone(),
            size: data.len(),
        };
        let mode = self.rng.below(4);
        if mode == 0 {
            // Monolithic. Not tracked when cut: whether pier committed it cannot be known.
            let req = self
                .c
                .post(self.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
                .header("content-type", "application/octet-stream")
                .body(data);
            let r = self.send(req, "monolithic upload")?;
            self.expect(r, StatusCode::CREATED, "monolithic upload")?;
            return Ok(blob);
        }
        let r = self.send(
            self.c.post(self.url(&format!("/v2/{repo}/blobs/uploads/"))),
            "open session",
        )?;
        let r = self.expect(r, StatusCode::ACCEPTED, "open session")?;
        let Some(location) = header(&r, "location") else {
            return Err(Stop::Unexpected("open session: no Location".into()));
        };
        let location = self.url(&location);
        // Cut points for the chunks: distinct, so no chunk is empty.
        let chunks = (1 + self.rng.below(MAX_CHUNKS)).min(data.len() as u64) as usize;
        let mut cuts: Vec<usize> = (1..chunks)
            .map(|_| 1 + self.rng.below(data.len() as u64 - 1) as usize)
            .collect();
        cuts.push(data.len());
        cuts.sort_unstable();
        cuts.dedup();
        // Mode 1: every chunk PATCHed with Content-Range, empty PUT. Mode 2: the last chunk
        // rides on the PUT. Mode 3: PATCHes without Content-Range (streamed, as docker does).
        let last_on_put = mode == 2;
        let patched = if last_on_put { cuts.len() - 1 } else { cuts.len() };
        self.open = Some(OpenSession {
            repo,
            location: location.clone(),
            digest: digest.clone(),
            data,
            acked: 0,
            sent: 0,
            commit_sent: false,
            unique,
        });
        let mut start = 0;
        for &end in &cuts[..patched] {
            let chunk = self.session().data[start..end].to_vec();
            self.session().sent = end;
            let mut req = self
                .c
                .patch(&location)
                .header("content-type", "application/octet-stream")
                .body(chunk);
            if mode != 3 {
                req = req.header("content-range", format!("{start}-{}", end - 1));
            }
            let r = self.send(req, "PATCH chunk")?;
            let r = self.expect(r, StatusCode::ACCEPTED, "PATCH chunk")?;
            if header(&r, "range") != Some(upload_range(end)) {
                return Err(Stop::Unexpected(format!(
                    "PATCH chunk {start}-{}: answered Range {:?}",
                    end - 1,
                    header(&r, "range")
                )));
            }
            self.session().acked = end;
            start = end;
        }
        let rest = self.session().data[start..].to_vec();
        let total = self.session().data.len();
        self.session().sent = total;
        self.session().commit_sent = true;
        let mut req = self.c.put(format!("{location}?digest={digest}"));
        if !rest.is_empty() {
            req = req
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{start}-{}", total - 1))
                .body(rest);
        }
        let r = self.send(req, "commit upload")?;
        let r = self.expect(r, StatusCode::CREATED, "commit upload")?;
        if header(&r, "docker-content-digest") != Some(digest.clone()) {
            return Err(Stop::Unexpected(format!(
                "commit answered another digest than {digest}"
            )));
        }
        self.open = None;
        Ok(blob)
    }

    fn session(&mut self) -> &mut OpenSession {
        self.open.as_mut().expect("a session is open")
    }

    /// Mount a layer of an acknowledged image from another repository, if there is one.
    fn mount_layer(&mut self, repo: &'static str) -> Result<Option<BlobRef>, Stop> {
        let candidate = {
            let acked = self.shared.acked.lock().expect("acked");
            (!acked.is_empty())
                .then(|| &acked[self.rng.below(acked.len() as u64) as usize])
                .filter(|a| a.repo != repo && !a.layers.is_empty())
                .map(|a| (a.repo, a.layers[0].clone()))
        };
        let Some((from, blob)) = candidate else {
            return Ok(None);
        };
        let path = format!("/v2/{repo}/blobs/uploads/?mount={}&from={from}", blob.digest);
        let r = self.send(self.c.post(self.url(&path)), "cross-repository mount")?;
        // An acknowledged image's layer is in its repository: the mount must happen.
        self.expect(r, StatusCode::CREATED, "cross-repository mount")?;
        Ok(Some(blob))
    }

    fn put_manifest(&mut self, repo: &'static str, tag: String, media_type: &str, bytes: Vec<u8>) -> Result<(), Stop> {
        let req = self
            .c
            .put(self.url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("content-type", media_type)
            .body(bytes.clone());
        let r = self.send(req, "manifest push")?;
        let r = self.expect(r, StatusCode::CREATED, "manifest push")?;
        let digest = sha256(&bytes);
        if header(&r, "docker-content-digest") != Some(digest.clone()) {
            return Err(Stop::Unexpected(format!(
                "manifest push answered digest {:?}, content is {digest}",
                header(&r, "docker-content-digest")
            )));
        }
        let layers = match serde_json::from_slice::<Value>(&bytes).expect("own manifest")["layers"].as_array() {
            Some(ls) => ls
                .iter()
                .map(|l| BlobRef {
                    digest: l["digest"].as_str().expect("digest").to_owned(),
                    size: l["size"].as_u64().expect("size") as usize,
                })
                .collect(),
            None => Vec::new(),
        };
        self.shared.acked.lock().expect("acked").push(Acked {
            repo,
            tag,
            digest,
            bytes,
            layers,
        });
        Ok(())
    }

    /// An index over one or two acknowledged images of `repo`, or `None` if it has none.
    fn index_of(&mut self, repo: &str) -> Option<Vec<u8>> {
        let children: Vec<Value> = {
            let acked = self.shared.acked.lock().expect("acked");
            let images: Vec<&Acked> = acked
                .iter()
                .filter(|a| a.repo == repo && !a.layers.is_empty())
                .collect();
            if images.is_empty() {
                return None;
            }
            (0..1 + self.rng.below(2))
                .map(|i| {
                    let a = images[self.rng.below(images.len() as u64) as usize];
                    json!({
                        "mediaType": media::OCI_MANIFEST,
                        "digest": a.digest,
                        "size": a.bytes.len(),
                        "platform": {"architecture": if i == 0 { "amd64" } else { "arm64" }, "os": "linux"},
                    })
                })
                .collect()
        };
        Some(
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": media::OCI_INDEX,
                "manifests": children,
            }))
            .expect("index json"),
        )
    }

    fn push_one(&mut self, n: u64) -> Result<(), Stop> {
        let repo = REPOS[self.rng.below(REPOS.len() as u64) as usize];
        let tag = format!("r{}-p{}-n{n}", self.round, self.id);
        if self.rng.percent(15)
            && let Some(index) = self.index_of(repo)
        {
            return self.put_manifest(repo, tag, media::OCI_INDEX, index);
        }
        // A quarter of the configs are the same bytes across pushers and repositories:
        // concurrent commits of one digest.
        let shared = self.rng.percent(25);
        let config = if shared {
            serde_json::to_vec(&json!({"shared": true, "round": self.round})).expect("json")
        } else {
            serde_json::to_vec(&json!({"round": self.round, "pusher": self.id, "n": n, "r": self.rng.next()}))
                .expect("json")
        };
        let config_size = config.len();
        let config = self.push_blob(repo, config, !shared)?;
        let mut layers = Vec::new();
        for _ in 0..1 + self.rng.below(2) {
            if self.rng.percent(10)
                && let Some(mounted) = self.mount_layer(repo)?
            {
                layers.push(mounted);
                continue;
            }
            let size = match self.rng.below(10) {
                0..4 => self.rng.within(TINY),
                4..8 => self.rng.within(SMALL),
                _ => self.rng.within(LARGE),
            } as usize;
            let data = self.rng.bytes(size);
            layers.push(self.push_blob(repo, data, true)?);
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": config.digest, "size": config_size},
            "layers": layers
                .iter()
                .map(|l| json!({"mediaType": media::OCI_LAYER_GZIP, "digest": l.digest, "size": l.size}))
                .collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec(&manifest).expect("manifest json");
        self.put_manifest(repo, tag, media::OCI_MANIFEST, bytes)
    }

    /// Push until pier dies (or the bound); returns the session cut by the kill, if any.
    fn run(mut self) -> Result<Option<OpenSession>, String> {
        for n in 0..MAX_PUSHES {
            match self.push_one(n) {
                Ok(()) => {}
                Err(Stop::Gone) => return Ok(self.open),
                Err(Stop::Unexpected(e)) => return Err(format!("pusher {} (round {}): {e}", self.id, self.round)),
            }
        }
        Ok(self.open)
    }
}

/// Counts for the summary.
#[derive(Default)]
struct Tally {
    acked_verified: usize,
    tags_verified: usize,
    blobs_verified: usize,
    blobs_present: usize,
    files_hashed: usize,
    sessions_resumed: usize,
    commits_cut: usize,
}

/// What earlier rounds already read back whole. A named blob file is immutable, so the
/// rounds in between only check that such blobs are still there with their size; the final
/// round reads everything again, so damage done by any later crash still fails the test.
#[derive(Default)]
struct Memory {
    tally: Tally,
    /// (repo, digest) of blobs read back and hashed through the API.
    blobs: HashSet<(String, String)>,
    /// Blob files hashed, with their length.
    files: HashMap<PathBuf, u64>,
}

/// A verifier over a freshly restarted pier.
struct Check<'a> {
    c: Client,
    base: String,
    seed: u64,
    mem: &'a mut Memory,
    /// Re-read every blob, even those verified in an earlier round.
    full: bool,
    /// (repo, digest) of blobs and manifests already verified in this pass.
    seen: HashSet<(String, String)>,
}

impl Check<'_> {
    fn get(&self, path: &str) -> Response {
        self.c
            .get(format!("{}{path}", self.base))
            .header("accept", format!("{}, {}", media::OCI_MANIFEST, media::OCI_INDEX))
            .send()
            .unwrap_or_else(|e| panic!("GET {path} after restart: {e} (seed {})", self.seed))
    }

    fn get_ok(&self, path: &str) -> (Vec<u8>, Option<String>) {
        let r = self.get(path);
        let status = r.status();
        let digest = header(&r, "docker-content-digest");
        let body = r.bytes().expect("body").to_vec();
        assert_eq!(
            status,
            StatusCode::OK,
            "GET {path} after restart: {} (seed {})",
            String::from_utf8_lossy(&body),
            self.seed
        );
        (body, digest)
    }

    /// Every page of a listing: `key` of each page's JSON, following `last`.
    fn list(&self, path: &str, key: &str) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for _ in 0..MAX_PAGES {
            let mut url = format!("{path}?n={PAGE}");
            if let Some(last) = all.last() {
                url.push_str(&format!("&last={last}"));
            }
            let (body, _) = self.get_ok(&url);
            let v: Value = serde_json::from_slice(&body).expect("listing json");
            let page: Vec<String> = v[key]
                .as_array()
                .unwrap_or_else(|| panic!("{path}: no {key} in {v}"))
                .iter()
                .map(|s| s.as_str().expect("name").to_owned())
                .collect();
            let full = page.len() == PAGE;
            all.extend(page);
            if !full {
                return all;
            }
        }
        panic!("{path}: more than {MAX_PAGES} pages");
    }

    fn blob(&mut self, repo: &str, digest: &str, size: u64) {
        let key = (repo.to_owned(), digest.to_owned());
        if !self.seen.insert(key.clone()) {
            return;
        }
        let path = format!("/v2/{repo}/blobs/{digest}");
        if !self.full && self.mem.blobs.contains(&key) {
            let r = self
                .c
                .head(format!("{}{path}", self.base))
                .send()
                .unwrap_or_else(|e| panic!("HEAD {path}: {e}"));
            assert_eq!(
                r.status(),
                StatusCode::OK,
                "HEAD {path} after restart (seed {})",
                self.seed
            );
            assert_eq!(
                header(&r, "content-length"),
                Some(size.to_string()),
                "HEAD {path}: wrong size (seed {})",
                self.seed
            );
            self.mem.tally.blobs_present += 1;
            return;
        }
        let (body, _) = self.get_ok(&path);
        assert_eq!(
            body.len() as u64,
            size,
            "{repo}@{digest}: wrong size (seed {})",
            self.seed
        );
        assert_eq!(
            sha256(&body),
            digest,
            "{repo}@{digest}: corrupt blob (seed {})",
            self.seed
        );
        self.mem.blobs.insert(key);
        self.mem.tally.blobs_verified += 1;
    }

    /// A manifest hashes to its digest, and everything it references is whole.
    fn manifest(&mut self, repo: &str, reference: &str, depth: usize) {
        let (bytes, digest) = self.get_ok(&format!("/v2/{repo}/manifests/{reference}"));
        let digest = digest.unwrap_or_else(|| panic!("{repo}:{reference}: no Docker-Content-Digest"));
        assert_eq!(
            sha256(&bytes),
            digest,
            "{repo}:{reference}: manifest bytes do not hash to their digest (seed {})",
            self.seed
        );
        if reference.starts_with("sha256:") {
            assert_eq!(digest, reference, "{repo}: asked for {reference}, got {digest}");
        }
        if !self.seen.insert((repo.to_owned(), digest.clone())) {
            return;
        }
        let m: Value = serde_json::from_slice(&bytes).expect("manifest json");
        let blobs = std::iter::once(&m["config"]).chain(m["layers"].as_array().into_iter().flatten());
        for d in blobs.filter(|d| !d.is_null()) {
            self.blob(
                repo,
                d["digest"].as_str().expect("digest"),
                d["size"].as_u64().expect("size"),
            );
        }
        for child in m["manifests"].as_array().into_iter().flatten() {
            assert!(depth < 2, "{repo}: index nested deeper than the test pushes");
            let d = child["digest"].as_str().expect("digest");
            self.manifest(repo, d, depth + 1);
        }
    }
}

/// (c) Every file under `DATA/blobs/<alg>/<xx>/<hex>` hashes to its own name, and nothing
/// else (no temp file, no directory) sits in that tree. Unless `full`, a file hashed in an
/// earlier round is only checked for its length.
fn check_blob_files(data: &Path, seed: u64, mem: &mut Memory, full: bool) {
    let entries = |dir: &Path| -> Vec<std::fs::DirEntry> {
        std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("dir entry"))
            .collect()
    };
    for alg in entries(&data.join("blobs")) {
        let alg_name = alg.file_name().to_string_lossy().into_owned();
        let hex_len = match alg_name.as_str() {
            "sha256" => 64,
            "sha512" => 128,
            other => panic!("unknown algorithm directory blobs/{other}"),
        };
        for shard in entries(&alg.path()) {
            let shard_name = shard.file_name().to_string_lossy().into_owned();
            assert!(shard.path().is_dir(), "stray file blobs/{alg_name}/{shard_name}");
            for f in entries(&shard.path()) {
                let name = f.file_name().to_string_lossy().into_owned();
                let at = format!("blobs/{alg_name}/{shard_name}/{name}");
                assert!(
                    name.len() == hex_len
                        && name.bytes().all(|b| b.is_ascii_hexdigit())
                        && name.starts_with(&shard_name),
                    "stray file {at} (seed {seed})"
                );
                let len = f.metadata().expect("blob file metadata").len();
                if let Some(&before) = mem.files.get(&f.path()) {
                    assert_eq!(before, len, "{at} changed length since an earlier round (seed {seed})");
                    if !full {
                        continue;
                    }
                }
                let bytes = std::fs::read(f.path()).expect("read blob file");
                let actual = if hex_len == 64 {
                    hex::encode(sha2::Sha256::digest(&bytes))
                } else {
                    hex::encode(sha2::Sha512::digest(&bytes))
                };
                assert_eq!(
                    actual, name,
                    "{at} does not hash to its name: partial or corrupt (seed {seed})"
                );
                mem.files.insert(f.path(), len);
                mem.tally.files_hashed += 1;
            }
        }
    }
}

/// (d) A session cut by the kill: invisible as a blob unless its commit went out, holds
/// what was acknowledged and no more than was sent, and resumes to the right blob.
fn check_session(chk: &mut Check, data: &Path, s: &OpenSession) {
    let seed = chk.seed;
    let hex = s.digest.strip_prefix("sha256:").expect("sha256");
    let file = data.join("blobs/sha256").join(&hex[..2]).join(hex);
    let head = chk
        .c
        .head(format!("{}/v2/{}/blobs/{}", chk.base, s.repo, s.digest))
        .send()
        .expect("HEAD blob");
    if s.commit_sent {
        // Cut during the commit: either outcome is fine; a blob that exists was checked by
        // (c) and must read back whole.
        if head.status() == StatusCode::OK {
            chk.blob(s.repo, &s.digest, s.data.len() as u64);
        }
        chk.mem.tally.commits_cut += 1;
        return;
    }
    if s.unique {
        assert_eq!(
            head.status(),
            StatusCode::NOT_FOUND,
            "{}: blob of an uncommitted session is visible after the crash (seed {seed})",
            s.repo
        );
        assert!(
            !file.exists(),
            "{}: an uncommitted session's bytes are under their digest name (seed {seed})",
            file.display()
        );
    }
    let r = chk.c.get(&s.location).send().expect("GET session");
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "{}: a session whose POST was answered is gone after the crash (seed {seed})",
        s.location
    );
    let range = header(&r, "range").expect("Range");
    let last: usize = range
        .strip_prefix("0-")
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("malformed Range {range:?}"));
    // `0-0` is either 0 or 1 byte; try both (a wrong offset is refused with 416).
    let candidates = if last == 0 { vec![0, 1] } else { vec![last + 1] };
    candidates
        .into_iter()
        .filter(|&h| h >= s.acked && h <= s.sent)
        .find(|&held| {
            if held == s.data.len() {
                return true;
            }
            let r = chk
                .c
                .patch(&s.location)
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{held}-{}", s.data.len() - 1))
                .body(s.data[held..].to_vec())
                .send()
                .expect("PATCH resume");
            r.status() == StatusCode::ACCEPTED
        })
        .unwrap_or_else(|| {
            panic!(
                "{}: session reports Range {range} after the crash, but {} bytes were acknowledged and {} sent \
                 (seed {seed})",
                s.location, s.acked, s.sent
            )
        });
    let r = chk
        .c
        .put(format!("{}?digest={}", s.location, s.digest))
        .send()
        .expect("PUT resume");
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}: resuming the cut session did not produce its blob: {} (seed {seed})",
        s.location,
        r.text().unwrap_or_default()
    );
    chk.blob(s.repo, &s.digest, s.data.len() as u64);
    chk.mem.tally.sessions_resumed += 1;
}

/// Everything (a)–(d) over a freshly restarted pier; `full` re-reads every blob.
fn verify(pier: &Pier, seed: u64, acked: &[Acked], cut: &[OpenSession], mem: &mut Memory, full: bool) {
    let mut chk = Check {
        c: client(),
        base: pier.url(),
        seed,
        mem,
        full,
        seen: HashSet::new(),
    };
    // (a) every acknowledged push, byte for byte, by tag and by digest.
    for a in acked {
        for reference in [&a.tag, &a.digest] {
            let (bytes, digest) = chk.get_ok(&format!("/v2/{}/manifests/{reference}", a.repo));
            assert_eq!(
                digest.as_deref(),
                Some(a.digest.as_str()),
                "{}:{reference} digest changed (seed {seed})",
                a.repo
            );
            assert!(bytes == a.bytes, "{}:{reference} bytes changed (seed {seed})", a.repo);
        }
        chk.mem.tally.acked_verified += 1;
    }
    // (b) every listed tag of every listed repository resolves and is whole; and the
    // listings include every acknowledged push.
    let repos = chk.list("/v2/_catalog", "repositories");
    for repo in &repos {
        let tags = chk.list(&format!("/v2/{repo}/tags/list"), "tags");
        let listed: HashSet<&str> = tags.iter().map(String::as_str).collect();
        for a in acked.iter().filter(|a| a.repo == repo) {
            assert!(
                listed.contains(a.tag.as_str()),
                "{repo}:{} resolves but is not listed (seed {seed})",
                a.tag
            );
        }
        for tag in &tags {
            chk.manifest(repo, tag, 0);
            chk.mem.tally.tags_verified += 1;
        }
    }
    for a in acked {
        assert!(
            repos.iter().any(|r| r == a.repo),
            "{} missing from the catalog (seed {seed})",
            a.repo
        );
    }
    // (c) no partial blob under a digest name.
    check_blob_files(&pier.data_dir, seed, chk.mem, full);
    // (d) sessions cut by the kill.
    for s in cut {
        check_session(&mut chk, &pier.data_dir, s);
    }
}

fn seed() -> u64 {
    std::env::var("PIER_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
        })
}

#[test]
fn kill_9_during_concurrent_pushes_loses_nothing_acknowledged() {
    let seed = seed();
    println!("crash: seed {seed} (replay with PIER_CRASH_SEED={seed})");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut pier = Pier::start(&data);
    for project in PROJECTS {
        pier.create_project(project, false);
    }
    let addr = pier.addr;
    let mut rng = Rng::new(seed);
    let mut mem = Memory::default();
    let shared = Arc::new(Shared {
        base: pier.url(),
        acked: Mutex::new(Vec::new()),
        killed: AtomicBool::new(false),
    });

    for round in 0..ROUNDS {
        shared.killed.store(false, Ordering::SeqCst);
        let pushers: Vec<_> = (0..PUSHERS)
            .map(|id| {
                let p = Pusher {
                    shared: shared.clone(),
                    c: client(),
                    rng: Rng::new(seed ^ mix(round * PUSHERS + id + 1)),
                    round,
                    id,
                    open: None,
                };
                std::thread::spawn(move || p.run())
            })
            .collect();
        let delay = rng.within(KILL_AFTER_MS);
        std::thread::sleep(Duration::from_millis(delay));
        shared.killed.store(true, Ordering::SeqCst);
        pier.kill9();
        let mut cut = Vec::new();
        for p in pushers {
            match p.join().expect("pusher thread") {
                Ok(open) => cut.extend(open),
                Err(e) => panic!("{e} (seed {seed}); pier log:\n{}", pier.log_text()),
            }
        }
        drop(pier);
        pier = Pier::start_on(&data, addr);
        let acked = shared.acked.lock().expect("acked").clone();
        println!(
            "crash: round {round}: killed after {delay} ms; {} pushes acknowledged so far, {} sessions cut",
            acked.len(),
            cut.len()
        );
        verify(&pier, seed, &acked, &cut, &mut mem, round + 1 == ROUNDS);
    }

    let acked = shared.acked.lock().expect("acked").len();
    assert!(acked > 0, "no push was ever acknowledged: the test exercised nothing");
    let exit = pier.stop();
    assert!(exit.success(), "pier exited with {exit}; log:\n{}", pier.log_text());
    let t = &mem.tally;
    println!(
        "crash: {ROUNDS} rounds, {acked} pushes acknowledged ({} re-checks by tag and digest), {} tags verified, \
         {} blobs read back and hashed (+{} presence checks), {} blob files hashed, {} cut sessions resumed, \
         {} cut commits",
        t.acked_verified,
        t.tags_verified,
        t.blobs_verified,
        t.blobs_present,
        t.files_hashed,
        t.sessions_resumed,
        t.commits_cut
    );
}

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}
