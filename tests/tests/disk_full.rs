//! A real full disk (a small tmpfs as the data dir): a clear 507, the temp file removed,
//! and everything stored before still served; the store keeps working.

use std::path::{Path, PathBuf};
use std::process::Command;

use pier_e2e::images::sha256;
use pier_e2e::{Pier, in_ci};
use reqwest::blocking::Client;
use serde_json::{Value, json};

const TMPFS_SIZE: &str = "24m";
const TOO_BIG: usize = 48 * 1024 * 1024;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(!in_ci(), "cannot mount a tmpfs for the full-disk test");
            eprintln!("SKIPPED disk_full: cannot mount a tmpfs here");
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn error_code(r: reqwest::blocking::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().unwrap_or(Value::Null);
    (status, v["errors"][0]["code"].as_str().unwrap_or_default().to_owned())
}

fn push_small_image(c: &Client, base: &str, tag: &str) -> Vec<u8> {
    let config = format!("{{\"tag\":\"{tag}\"}}").into_bytes();
    let layer = format!("layer for {tag}").into_bytes();
    for blob in [&config, &layer] {
        let r = c
            .post(format!("{base}/v2/full/app/blobs/uploads/?digest={}", sha256(blob)))
            .body(blob.to_vec())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": pier_oci::media::OCI_MANIFEST,
        "config": { "mediaType": pier_oci::media::OCI_CONFIG, "digest": sha256(&config), "size": config.len() },
        "layers": [{ "mediaType": pier_oci::media::OCI_LAYER_GZIP, "digest": sha256(&layer), "size": layer.len() }],
    }))
    .unwrap();
    let r = c
        .put(format!("{base}/v2/full/app/manifests/{tag}"))
        .header("content-type", pier_oci::media::OCI_MANIFEST)
        .body(m.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    m
}

fn uploads_left(data: &Path) -> usize {
    std::fs::read_dir(data.join("uploads")).unwrap().count()
}

#[test]
fn full_disk_answers_507_and_keeps_the_store_intact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Some(_mount) = Tmpfs::mount(&data) else { return };
    let pier = Pier::start(&data);
    let (c, base) = (Client::new(), pier.url());
    let before = push_small_image(&c, &base, "before");

    let big: Vec<u8> = (0..TOO_BIG).map(|i| (i * 7 % 251) as u8).collect();
    let d = sha256(&big);

    // Monolithic upload onto a full disk.
    let r = c
        .post(format!("{base}/v2/full/app/blobs/uploads/?digest={d}"))
        .body(big.clone())
        .send()
        .unwrap();
    assert_eq!(error_code(r), (507, "INSUFFICIENT_STORAGE".to_owned()));
    assert_eq!(
        uploads_left(&data),
        0,
        "the temp file of the failed upload was left behind"
    );

    // Chunked upload onto a full disk: the session is gone with its bytes.
    let r = c.post(format!("{base}/v2/full/app/blobs/uploads/")).send().unwrap();
    let loc = format!("{base}{}", r.headers()["location"].to_str().unwrap());
    let r = c.patch(&loc).body(big.clone()).send().unwrap();
    assert_eq!(error_code(r), (507, "INSUFFICIENT_STORAGE".to_owned()));
    assert_eq!(c.get(&loc).send().unwrap().status(), 404);
    assert_eq!(uploads_left(&data), 0);
    assert_eq!(
        c.head(format!("{base}/v2/full/app/blobs/{d}")).send().unwrap().status(),
        404
    );

    // What was stored before is served unchanged, and the store still takes pushes.
    let r = c.get(format!("{base}/v2/full/app/manifests/before")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().to_vec(), before);
    let m: Value = serde_json::from_slice(&before).unwrap();
    for blob in [&m["config"], &m["layers"][0]] {
        let want = blob["digest"].as_str().unwrap();
        let got = c
            .get(format!("{base}/v2/full/app/blobs/{want}"))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert_eq!(sha256(&got), want);
    }
    push_small_image(&c, &base, "after");
    assert!(pier.log_text().contains("INSUFFICIENT_STORAGE") || pier.log_text().contains("no space"));
}
