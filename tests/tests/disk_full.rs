//! A real full disk: pier's data directory on a small tmpfs. A push that does not fit must
//! answer `INSUFFICIENT_STORAGE`, leave no temp file behind and leave the store intact, so
//! that what was stored before is still served and small pushes still work.

use pier_e2e::{expect_status, header, sha256, test_bytes};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pier_e2e::{Pier, in_ci};
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};

/// Size of the tmpfs under pier's data directory. Small, so that filling it is quick, but
/// roomy enough for sled's files and a few small pushes.
const TMPFS_SIZE: &str = "16m";
/// The blob that cannot fit: larger than the whole tmpfs, and than loopback socket buffers,
/// so the client is still sending when pier answers (the answer must still reach it).
const TOO_BIG: usize = 64 * 1024 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// A tmpfs mounted for the test's lifetime; unmounted on drop, even when the test fails.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mount, or `None` (after printing why) when mounting is not permitted here. Under CI
    /// this panics instead: a test that cannot run must not pass.
    fn mount(test: &str, dir: &Path) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE}"), "tmpfs"])
            .arg(dir)
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Some(Tmpfs { dir: dir.to_path_buf() }),
            Ok(o) => format!(
                "mount failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => format!("cannot run mount: {e}"),
        };
        let msg = format!("{test}: cannot mount a tmpfs at {}: {why}", dir.display());
        assert!(!in_ci(), "{msg}");
        eprintln!("SKIPPED {msg}");
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds it open (a pier that outlived its guard): detach it
            // rather than leak a mount on the machine.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Every request authenticates as the system admin.
fn client() -> Client {
    pier_e2e::admin_client(REQUEST_TIMEOUT)
}

/// Assert an OCI error answer: a 5xx whose body carries `code`.
fn assert_oci_error(r: Response, code: &str, what: &str) {
    let status = r.status();
    let body = r.text().unwrap_or_default();
    assert!(status.is_server_error(), "{what}: expected a 5xx, got {status}: {body}");
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e}): {body}"));
    let codes: Vec<&str> = v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no errors array: {body}"))
        .iter()
        .filter_map(|e| e["code"].as_str())
        .collect();
    assert!(codes.contains(&code), "{what}: expected code {code}, got {body}");
}

/// Push a blob monolithically (`POST ?digest=`); returns its digest.
fn push_blob(c: &Client, base: &str, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .expect("POST blob");
    expect_status(r, StatusCode::CREATED, "push small blob");
    digest
}

/// Push a small image (config + one layer) tagged `tag`; returns the manifest and its
/// digest, and the blobs.
fn push_image(c: &Client, base: &str, repo: &str, tag: &str, seed: u64) -> (Vec<u8>, String, Vec<Vec<u8>>) {
    let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":{seed}}}").into_bytes();
    let layer = test_bytes(seed, 64 * 1024);
    let config_digest = push_blob(c, base, repo, &config);
    let layer_digest = push_blob(c, base, repo, &layer);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer.len()}],
    })
    .to_string()
    .into_bytes();
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", MANIFEST_TYPE)
        .body(manifest.clone())
        .send()
        .expect("PUT manifest");
    let r = expect_status(r, StatusCode::CREATED, "push manifest");
    let digest = header(&r, "docker-content-digest");
    assert_eq!(digest, sha256(&manifest));
    (manifest, digest, vec![config, layer])
}

/// The image is served intact: by tag and by digest, and every blob with its bytes.
fn assert_image(c: &Client, base: &str, repo: &str, tag: &str, image: &(Vec<u8>, String, Vec<Vec<u8>>)) {
    let (manifest, digest, blobs) = image;
    for reference in [tag, digest.as_str()] {
        let r = c
            .get(format!("{base}/v2/{repo}/manifests/{reference}"))
            .header("accept", MANIFEST_TYPE)
            .send()
            .expect("GET manifest");
        let r = expect_status(r, StatusCode::OK, "GET manifest after the full disk");
        assert_eq!(header(&r, "docker-content-digest"), *digest);
        assert_eq!(r.bytes().expect("manifest body").as_ref(), manifest.as_slice());
    }
    for blob in blobs {
        let r = c
            .get(format!("{base}/v2/{repo}/blobs/{}", sha256(blob)))
            .send()
            .expect("GET blob");
        let body = expect_status(r, StatusCode::OK, "GET blob after the full disk")
            .bytes()
            .expect("blob body");
        assert_eq!(sha256(&body), sha256(blob), "blob bytes changed");
    }
}

/// Names in `DATA/uploads`: the temp files of sessions.
fn upload_files(data: &Path) -> Vec<String> {
    std::fs::read_dir(data.join("uploads"))
        .expect("uploads dir")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// Push one image, then run `overflow` (which must hit the full disk), then check that
/// nothing was left behind and the store still works.
fn full_disk_scenario(test: &str, overflow: impl FnOnce(&Client, &str, &str, &[u8])) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("tmpfs");
    // Declared before pier so that it is dropped (unmounted) after pier is killed.
    let Some(_tmpfs) = Tmpfs::mount(test, &mnt) else {
        return;
    };
    let data = mnt.join("data");
    let pier = Pier::start(&data);
    pier.create_project("full", false);
    let (c, base, repo) = (client(), pier.url(), "full/disk");
    let first = push_image(&c, &base, repo, "v1", 1);
    assert!(upload_files(&data).is_empty(), "uploads left after successful pushes");

    let big = test_bytes(99, TOO_BIG);
    overflow(&c, &base, repo, &big);

    assert_eq!(
        upload_files(&data),
        Vec::<String>::new(),
        "the failed upload's temp file must be removed"
    );
    let r = c
        .head(format!("{base}/v2/{repo}/blobs/{}", sha256(&big)))
        .send()
        .expect("HEAD");
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "the blob that did not fit is visible"
    );
    assert_image(&c, &base, repo, "v1", &first);
    // The operator can tell why: the request log names the cause of the 5xx.
    assert!(
        pier.log_text().contains("no space left"),
        "pier's log does not say the disk was full:\n{}",
        pier.log_text()
    );

    // Space came back with the temp file: without deleting anything, new pushes work.
    let second = push_image(&c, &base, repo, "v2", 2);
    assert_image(&c, &base, repo, "v2", &second);
    assert_image(&c, &base, repo, "v1", &first);
    let r = c.get(format!("{base}/v2/{repo}/tags/list")).send().expect("tags");
    let tags: serde_json::Value = expect_status(r, StatusCode::OK, "tags").json().expect("tags json");
    assert_eq!(tags["tags"], serde_json::json!(["v1", "v2"]));
    drop(pier);
}

#[test]
fn full_disk_during_chunked_upload() {
    full_disk_scenario("full_disk_during_chunked_upload", |c, base, repo, big| {
        let r = c.post(format!("{base}/v2/{repo}/blobs/uploads/")).send().expect("POST");
        let r = expect_status(r, StatusCode::ACCEPTED, "open session");
        let session = format!("{base}{}", header(&r, "location"));
        // One streaming PATCH with the whole blob, as docker and containerd send it.
        let r = c
            .patch(&session)
            .header("content-type", "application/octet-stream")
            .body(big.to_vec())
            .send()
            .expect("PATCH: the client must get an answer, not a reset connection");
        assert_oci_error(r, "INSUFFICIENT_STORAGE", "PATCH past the end of the disk");
        // The session is dropped with its bytes: resuming it is refused.
        let r = c.get(&session).send().expect("GET session");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "the failed session must be gone");
    });
}

#[test]
fn full_disk_during_monolithic_upload() {
    full_disk_scenario("full_disk_during_monolithic_upload", |c, base, repo, big| {
        let r = c
            .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={}", sha256(big)))
            .header("content-type", "application/octet-stream")
            .body(big.to_vec())
            .send()
            .expect("POST ?digest=: the client must get an answer, not a reset connection");
        assert_oci_error(r, "INSUFFICIENT_STORAGE", "monolithic POST past the end of the disk");
    });
}
