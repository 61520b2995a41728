//! Regression tests for the findings of the security review that concern `pier serve` as a
//! process: the data directory's permissions and the warning about the token
//! realm. The request-level findings are tested in-process in `registry/tests/`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pier_e2e::{
    ADMIN_PASSWORD, Pier, START_TIMEOUT, admin_client, basic, free_port, http_client, pier_bin, sha256, spawn_logged,
    terminate, wait_until,
};

/// `pier serve` on `listen` over `data_dir` with `extra` flags; returns the child once
/// `/healthz` answers on loopback, and the path of its log.
fn serve(dir: &Path, data_dir: &Path, listen: &str, extra: &[&str]) -> (std::process::Child, String) {
    let port = listen.rsplit_once(':').unwrap().1.to_owned();
    let log = dir.join(format!("pier-{port}.log"));
    let mut child = spawn_logged(
        Command::new(pier_bin())
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("PIER_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env_remove("PIER_PUBLIC_URL"),
        &log,
    );
    let url = format!("http://127.0.0.1:{port}");
    let client = http_client(Duration::from_secs(2));
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until(
        "pier serve",
        START_TIMEOUT,
        || {
            assert!(child.try_wait().unwrap().is_none(), "pier exited early:\n{}", text());
            client
                .get(format!("{url}/healthz"))
                .send()
                .is_ok_and(|r| r.status().is_success())
        },
        text,
    );
    (child, url)
}

fn log_of(dir: &Path, port: u16) -> String {
    std::fs::read_to_string(dir.join(format!("pier-{port}.log"))).unwrap()
}

/// Every path under `root` whose mode lets anyone but the owner in.
fn too_open(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.permissions().mode() & 0o077 != 0 {
            out.push(format!("{} {:o}", p.display(), meta.permissions().mode() & 0o777));
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        }
    }
    out
}

#[test]
fn finding_11_data_directory_and_its_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let (mut child, url) = serve(dir.path(), &data, &format!("127.0.0.1:{port}"), &[]);
    // Something in every store: a blob and a manifest, an open upload session, an audit
    // record (every admin request is one).
    let admin = admin_client(Duration::from_secs(30));
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let d = sha256(&config);
    let r = admin
        .post(format!("{url}/v2/library/secret/blobs/uploads/?digest={d}"))
        .body(config.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": config.len() },
        "layers": [],
    });
    let r = admin
        .put(format!("{url}/v2/library/secret/manifests/1.0"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = admin
        .post(format!("{url}/v2/library/secret/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    terminate(&mut child, Duration::from_secs(30));
    let open = too_open(&data);
    assert!(open.is_empty(), "readable by other users:\n{}", open.join("\n"));
    for sub in ["meta", "blobs", "uploads", "audit", "token-signing-key"] {
        assert!(data.join(sub).exists(), "{sub} missing: the check above saw too little");
    }

    // An existing data directory open to others is used, with a warning.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();
    let (mut child, _) = serve(dir.path(), &data, &format!("127.0.0.1:{port}"), &[]);
    terminate(&mut child, Duration::from_secs(30));
    let log = log_of(dir.path(), port);
    assert!(log.contains("accessible to other local users"), "{log}");
}

#[test]
fn finding_16_non_loopback_listen_without_public_url_warns() {
    let dir = tempfile::tempdir().unwrap();
    let warning = "without --public-url";
    let port = free_port();
    let (mut child, _) = serve(dir.path(), &dir.path().join("a"), &format!("0.0.0.0:{port}"), &[]);
    terminate(&mut child, Duration::from_secs(30));
    let log = log_of(dir.path(), port);
    assert!(log.contains(warning), "no warning:\n{log}");

    let port = free_port();
    let (mut child, _) = serve(
        dir.path(),
        &dir.path().join("b"),
        &format!("0.0.0.0:{port}"),
        &["--public-url", "https://registry.example.com"],
    );
    terminate(&mut child, Duration::from_secs(30));
    assert!(!log_of(dir.path(), port).contains(warning));

    let port = free_port();
    let (mut child, _) = serve(dir.path(), &dir.path().join("c"), &format!("127.0.0.1:{port}"), &[]);
    terminate(&mut child, Duration::from_secs(30));
    assert!(!log_of(dir.path(), port).contains(warning));
}

/// Most memory pier may hold after a flood of wrong passwords (the review's target). Before
/// the fix, ten wrong passwords in a row took it from 10 MB to 166 MB: glibc kept every
/// freed 19 MiB argon2 buffer.
const MAX_RSS_AFTER_PASSWORD_FLOOD_KIB: u64 = 150 * 1024;
/// The working memory of one argon2 check with the default parameters.
const ARGON2_BUFFER_KIB: u64 = 19 * 1024;

#[test]
fn finding_5_wrong_passwords_do_not_grow_memory() {
    let dir = tempfile::tempdir().unwrap();
    let pier = Pier::start(&dir.path().join("data"));
    let url = pier.url();
    let before = pier.rss_kib();
    // 48 wrong passwords, 6 connections at once, each from its own loopback address (so the
    // per-address budget does not stop them: this is about memory, not rate), admin and
    // unknown users alike.
    let threads: Vec<_> = (0..6u8)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .no_proxy()
                    .timeout(Duration::from_secs(60))
                    .local_address(std::net::IpAddr::from([127, 0, 1, t + 1]))
                    .build()
                    .unwrap();
                let mut statuses = Vec::new();
                for i in 0..8 {
                    let user = if i % 2 == 0 {
                        "admin".to_owned()
                    } else {
                        format!("nobody{t}x{i}")
                    };
                    let r = client
                        .get(format!("{url}/v2/"))
                        .header("authorization", basic(&user, "wrong-password"))
                        .send()
                        .unwrap();
                    statuses.push(r.status().as_u16());
                }
                statuses
            })
        })
        .collect();
    let mut checked = 0;
    for t in threads {
        let statuses = t.join().unwrap();
        assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
        checked += statuses.iter().filter(|s| **s == 401).count();
    }
    assert!(
        checked >= 30,
        "only {checked} passwords were checked: the flood did not happen"
    );
    let rss = pier.rss_kib();
    eprintln!(
        "pier RSS {} MiB before, {} MiB after {checked} wrong passwords",
        before / 1024,
        rss / 1024
    );
    assert!(
        rss < MAX_RSS_AFTER_PASSWORD_FLOOD_KIB,
        "pier holds {} MiB after {checked} wrong passwords",
        rss / 1024
    );
    // The argon2 buffers are given back once no check needs them (10 s), not kept.
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let mut now = rss;
    while now >= before + ARGON2_BUFFER_KIB && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        now = pier.rss_kib();
    }
    assert!(
        now < before + ARGON2_BUFFER_KIB,
        "pier grew from {} to {} MiB and kept it",
        before / 1024,
        now / 1024
    );
}
