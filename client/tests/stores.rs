//! The `ImageStore` conformance suite, run against both implementations (an OCI layout and a
//! repository of a real pier registry served on loopback), then copies, merges and their bad
//! inputs across them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use futures_util::{TryStreamExt as _, stream};
use pier_client::copy::{BlobOutcome, CopyEvent, Select, copy};
use pier_client::index::{IndexOptions, Source, create_index, inspect};
use pier_client::layout::LayoutStore;
use pier_client::store::BlobStream;
use pier_client::{ClientError, ImageStore, Login, Manifest, Registries, RegistryOptions};
use pier_oci::layout::OciLayout;
use pier_oci::{Digest, Platform, Reference, media};
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "client-test-password";

/// A pier registry on a loopback port, with private projects `t` and `u`.
struct Server {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = pier_registry::AuthConfig {
            admin_password: Some(ADMIN_PASSWORD.into()),
            ..Default::default()
        };
        let registry = pier_registry::Registry::open(dir.path(), config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(pier_registry::serve(listener, registry, async {
            let _ = rx.await;
        }));
        let http = reqwest::Client::new();
        for project in ["t", "u"] {
            let r = http
                .post(format!("http://{addr}/api/v1/projects"))
                .basic_auth("admin", Some(ADMIN_PASSWORD))
                .json(&json!({ "name": project }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 201, "{:?}", r.text().await);
        }
        Server {
            addr,
            _dir: dir,
            stop: Some(tx),
        }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn registries(&self, login: bool) -> Registries {
        let mut logins = std::collections::HashMap::new();
        if login {
            logins.insert(
                self.host(),
                Login {
                    username: "admin".into(),
                    secret: ADMIN_PASSWORD.into(),
                },
            );
        }
        Registries::new(RegistryOptions {
            plain_http: vec![self.host()],
            logins,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn tag(t: &str) -> Reference {
    Reference::Tag(t.parse().unwrap())
}

fn by_digest(d: &Digest) -> Reference {
    Reference::Digest(d.clone())
}

fn body(data: &[u8]) -> BlobStream {
    // Several chunks, so that stores see a real stream.
    let chunks: Vec<Result<Bytes, std::io::Error>> = data.chunks(1000).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    Box::pin(stream::iter(chunks))
}

async fn read_all(s: BlobStream) -> Vec<u8> {
    let parts: Vec<Bytes> = s.try_collect().await.unwrap();
    parts.concat()
}

fn no_progress(_: CopyEvent) {}

/// An image for `arch` (config + one layer of `layer_size` bytes, derived from `seed`) in an
/// OCI layout, written with the builder's layout code (not with the store under test).
fn fixture_image(
    layout: &OciLayout,
    arch: &str,
    seed: &str,
    layer_size: usize,
) -> (oci_spec::image::Descriptor, Vec<u8>) {
    let mut layer = Vec::with_capacity(layer_size);
    let mut x: u64 = seed
        .bytes()
        .fold(1469598103934665603, |h, b| (h ^ b as u64).wrapping_mul(1099511628211));
    while layer.len() < layer_size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        layer.extend_from_slice(&x.to_le_bytes());
    }
    layer.truncate(layer_size);
    let (arch_name, variant) = match arch {
        "arm64" => ("arm64", Some("v8")),
        a => (a, None),
    };
    let mut config = json!({
        "architecture": arch_name, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::sha256_of(&layer).to_string()]},
        "config": {"Labels": {"seed": seed}, "Env": ["PATH=/bin", "FROM=base"], "Cmd": ["/bin/sh"]},
        "history": [
            {"created_by": "base: FROM scratch", "empty_layer": true},
            {"created_by": format!("base: layer {seed}")},
        ],
    });
    if let Some(v) = variant {
        config["variant"] = json!(v);
    }
    let config_desc = layout.put_json(media::OCI_CONFIG, &config).unwrap();
    let layer_desc = layout.put_blob(media::OCI_LAYER_GZIP, &layer).unwrap();
    let manifest = json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": config_desc, "layers": [layer_desc],
    });
    let mut desc = layout.put_json(media::OCI_MANIFEST, &manifest).unwrap();
    let mut platform = json!({"architecture": arch_name, "os": "linux"});
    if let Some(v) = variant {
        platform["variant"] = json!(v);
    }
    desc.set_platform(Some(serde_json::from_value(platform).unwrap()));
    (desc, layer)
}

/// A layout holding `index` = amd64 + arm64 and single-image tags `amd64` and `arm64`.
fn fixture_layout(dir: &Path) -> OciLayout {
    let layout = OciLayout::create(dir).unwrap();
    let (amd, _) = fixture_image(&layout, "amd64", "amd", 300_000);
    let (arm, _) = fixture_image(&layout, "arm64", "arm", 200_000);
    layout
        .write_index(&[amd.clone(), arm.clone()], "index", &BTreeMap::new())
        .unwrap();
    layout.tag(&amd, "amd64").unwrap();
    layout.tag(&arm, "arm64").unwrap();
    layout
}

/// The suite every `ImageStore` passes.
async fn conformance(store: &dyn ImageStore) {
    let name = store.name();
    // Nothing there yet.
    let missing = store.get_manifest(&tag("nope")).await.unwrap_err();
    assert!(missing.is_not_found(), "{name}: {missing}");
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let d = Digest::sha256_of(&data);
    assert!(!store.has_blob(&d).await.unwrap(), "{name}");
    // A blob whose bytes are not its digest is refused and not kept.
    let wrong = store.put_blob(&d, data.len() as u64, body(b"something else")).await;
    assert!(wrong.is_err(), "{name}: a wrong blob was accepted");
    assert!(
        !store.has_blob(&d).await.unwrap(),
        "{name}: a wrong blob became visible"
    );
    // A good blob goes in as a stream and comes out the same.
    store.put_blob(&d, data.len() as u64, body(&data)).await.unwrap();
    assert!(store.has_blob(&d).await.unwrap(), "{name}");
    assert_eq!(
        read_all(store.get_blob(&d, data.len() as u64).await.unwrap()).await,
        data,
        "{name}"
    );
    // Putting it again is harmless.
    store.put_blob(&d, data.len() as u64, body(&data)).await.unwrap();

    // A manifest over it, by digest and by tag.
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = Digest::sha256_of(config);
    store.put_blob(&cd, config.len() as u64, body(config)).await.unwrap();
    let m = json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
        "layers": [{"mediaType": media::OCI_LAYER_GZIP, "digest": d.to_string(), "size": data.len()}],
    });
    let manifest = Manifest::from_bytes(Bytes::from(serde_json::to_vec_pretty(&m).unwrap()), None);
    assert_eq!(manifest.media_type, media::OCI_MANIFEST);
    store
        .put_manifest(&by_digest(&manifest.digest), &manifest)
        .await
        .unwrap();
    store.put_manifest(&tag("v1"), &manifest).await.unwrap();
    for r in [tag("v1"), by_digest(&manifest.digest)] {
        let got = store.get_manifest(&r).await.unwrap();
        // The bytes are kept exactly (pretty-printed here): the digest covers them.
        assert_eq!(got, manifest, "{name} {r}");
    }
    // Re-tagging moves the tag and keeps the old manifest by digest.
    let m2 = Manifest::from_bytes(Bytes::from(serde_json::to_vec(&m).unwrap()), None);
    assert_ne!(m2.digest, manifest.digest);
    store.put_manifest(&tag("v1"), &m2).await.unwrap();
    assert_eq!(
        store.get_manifest(&tag("v1")).await.unwrap().digest,
        m2.digest,
        "{name}"
    );
    assert_eq!(
        store.get_manifest(&by_digest(&manifest.digest)).await.unwrap(),
        manifest,
        "{name}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_store_conformance() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&LayoutStore::new(dir.path().join("layout"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_store_conformance() {
    let server = Server::start().await;
    let regs = server.registries(true);
    conformance(&regs.repository(&server.host(), "t/conformance")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_between_layouts_and_registries() {
    let server = Server::start().await;
    let regs = server.registries(true);
    let dir = tempfile::tempdir().unwrap();
    let layout = fixture_layout(&dir.path().join("src"));
    let src = LayoutStore::new(layout.root());
    let repo = regs.repository(&server.host(), "t/app");

    // The whole index into the registry: every blob sent once, the index kept byte for byte.
    let events = std::sync::Mutex::new(Vec::new());
    let record = |e: CopyEvent| events.lock().unwrap().push(e);
    let report = copy(&src, &tag("index"), &repo, &tag("1.0"), &Select::All, &record)
        .await
        .unwrap();
    let original = src.get_manifest(&tag("index")).await.unwrap();
    assert_eq!(report.digest, original.digest.to_string());
    assert_eq!(report.platforms, ["linux/amd64", "linux/arm64/v8"]);
    assert_eq!((report.blobs_copied, report.blobs_present), (4, 0), "{report:?}");
    assert_eq!(report.bytes_copied, 500_000 + report_config_bytes(&layout));
    let events = events.into_inner().unwrap();
    assert!(events.iter().any(|e| matches!(e, CopyEvent::BlobProgress { .. })));
    // The tag is the last thing written.
    assert!(matches!(events.last(), Some(CopyEvent::ManifestPut { target }) if target.ends_with("t/app:1.0")));
    assert_eq!(repo.get_manifest(&tag("1.0")).await.unwrap(), original);

    // Again: everything is there, nothing is sent.
    let again = copy(&src, &tag("index"), &repo, &tag("1.0"), &Select::All, &no_progress)
        .await
        .unwrap();
    assert_eq!((again.blobs_copied, again.blobs_present), (0, 4), "{again:?}");

    // Another repository of the same registry: mounted, not sent.
    let other = regs.repository(&server.host(), "u/mirror");
    let mounted = copy(&repo, &tag("1.0"), &other, &tag("1.0"), &Select::All, &no_progress)
        .await
        .unwrap();
    assert_eq!((mounted.blobs_mounted, mounted.blobs_copied), (4, 0), "{mounted:?}");

    // One platform out of the index: the image alone, not an index of one.
    let out = LayoutStore::new(dir.path().join("arm"));
    let arm: pier_oci::Platform = "aarch64".parse().unwrap();
    let one = copy(
        &other,
        &tag("1.0"),
        &out,
        &tag("arm"),
        &Select::Platforms(vec![arm]),
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(one.media_type, media::OCI_MANIFEST);
    assert_eq!(one.platforms, ["linux/arm64/v8"]);
    let got = out.get_manifest(&tag("arm")).await.unwrap();
    assert_eq!(got, src.get_manifest(&tag("arm64")).await.unwrap());
    assert_eq!(one.bytes_copied, 200_000 + got.image("x").unwrap().config.size);

    // Inspect shows both platforms with sizes.
    let seen = inspect(&repo, &tag("1.0")).await.unwrap();
    assert!(seen.index);
    let platforms: Vec<&str> = seen.images.iter().map(|i| i.platform.as_str()).collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);
    assert!(
        seen.images[0].size > 300_000 && seen.images[1].size > 200_000,
        "{seen:?}"
    );
    let single = inspect(&out, &tag("arm")).await.unwrap();
    assert!(!single.index);
    assert_eq!(single.images[0].platform, "linux/arm64/v8");
}

fn report_config_bytes(layout: &OciLayout) -> u64 {
    let index = layout.read_top_index().unwrap();
    let mut total = 0;
    for t in ["amd64", "arm64"] {
        let d = index
            .manifests()
            .iter()
            .find(|d| {
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                    .map(String::as_str)
                    == Some(t)
            })
            .unwrap();
        let bytes = std::fs::read(layout.blob_path(&d.digest().to_string().parse().unwrap())).unwrap();
        let m: Value = serde_json::from_slice(&bytes).unwrap();
        total += m["config"]["size"].as_u64().unwrap();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_copies_leave_nothing_behind() {
    let server = Server::start().await;
    let regs = server.registries(true);
    let dir = tempfile::tempdir().unwrap();
    let layout = fixture_layout(&dir.path().join("src"));
    let src = LayoutStore::new(layout.root());
    let repo = regs.repository(&server.host(), "t/bad");

    // A platform the index does not have: named, with what it has.
    let loong: pier_oci::Platform = "loongarch64".parse().unwrap();
    let e = copy(
        &src,
        &tag("index"),
        &repo,
        &tag("x"),
        &Select::Platforms(vec![loong]),
        &no_progress,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("no image for linux/loong64") && e.contains("linux/amd64, linux/arm64/v8"),
        "{e}"
    );

    // A corrupted layer in the source: the copy fails naming it, and no tag appears.
    let amd = src.get_manifest(&tag("amd64")).await.unwrap();
    let layer = amd.image("x").unwrap().layers[0].clone();
    let path = layout.blob_path(&layer.digest);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let e = copy(&src, &tag("index"), &repo, &tag("x"), &Select::All, &no_progress)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&layer.digest.to_string()), "{text}");
    assert!(repo.get_manifest(&tag("x")).await.unwrap_err().is_not_found());
    assert!(!repo.has_blob(&layer.digest).await.unwrap());
    // Same into a layout.
    let out = LayoutStore::new(dir.path().join("out"));
    let e = copy(&src, &tag("index"), &out, &tag("x"), &Select::All, &no_progress)
        .await
        .unwrap_err();
    assert!(e.to_string().contains(&layer.digest.to_string()), "{e}");
    assert!(out.get_manifest(&tag("x")).await.unwrap_err().is_not_found());
    assert!(!out.has_blob(&layer.digest).await.unwrap());

    // Push without credentials into a private project: denied, nothing tagged.
    let fresh = fixture_layout(&dir.path().join("fresh"));
    let fresh = LayoutStore::new(fresh.root());
    let anonymous = server.registries(false).repository(&server.host(), "t/anon");
    let e = copy(&fresh, &tag("index"), &anonymous, &tag("x"), &Select::All, &no_progress)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Denied { .. }), "{e:?}");
    assert!(e.to_string().contains("denied"), "{e}");
    assert!(repo_is_empty(&regs, &server, "t/anon").await);

    // A registry that is not there: unreachable, named.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gone_host = format!("127.0.0.1:{port}");
    let gone = Registries::new(RegistryOptions {
        plain_http: vec![gone_host.clone()],
        ..Default::default()
    })
    .repository(&gone_host, "t/x");
    let e = copy(&fresh, &tag("index"), &gone, &tag("x"), &Select::All, &no_progress)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains(&gone_host), "{e}");
}

async fn repo_is_empty(regs: &Registries, server: &Server, repo: &str) -> bool {
    regs.repository(&server.host(), repo)
        .get_manifest(&tag("x"))
        .await
        .is_err_and(|e| e.is_not_found())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_create_merges_and_refuses_duplicates() {
    let server = Server::start().await;
    let regs = server.registries(true);
    let dir = tempfile::tempdir().unwrap();
    let layout = fixture_layout(&dir.path().join("src"));
    let src = LayoutStore::new(layout.root());
    // Two single-arch images pushed by "separate builds" into separate repositories.
    let amd_repo = regs.repository(&server.host(), "t/app-amd64");
    let arm_repo = regs.repository(&server.host(), "u/app-arm64");
    copy(&src, &tag("amd64"), &amd_repo, &tag("1.0"), &Select::All, &no_progress)
        .await
        .unwrap();
    copy(&src, &tag("arm64"), &arm_repo, &tag("1.0"), &Select::All, &no_progress)
        .await
        .unwrap();

    let target = regs.repository(&server.host(), "t/app");
    let sources = [
        Source {
            store: &amd_repo,
            reference: tag("1.0"),
        },
        Source {
            store: &arm_repo,
            reference: tag("1.0"),
        },
    ];
    let report = create_index(&target, &tag("1.0"), &sources, IndexOptions::default(), &no_progress)
        .await
        .unwrap();
    let platforms: Vec<&str> = report.entries.iter().map(|e| e.platform.as_str()).collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);
    // Same registry: the blobs are mounted.
    assert_eq!((report.blobs_mounted, report.blobs_copied), (4, 0), "{report:?}");
    let index = target.get_manifest(&tag("1.0")).await.unwrap();
    assert!(index.is_index());
    assert_eq!(index.digest.to_string(), report.digest);
    // Both children resolve in the target repository.
    for e in &report.entries {
        target
            .get_manifest(&Reference::Digest(e.digest.parse().unwrap()))
            .await
            .unwrap();
    }

    // Adding amd64 again: refused, naming both sources; the tag is unchanged.
    let amd_again = [Source {
        store: &src,
        reference: tag("amd64"),
    }];
    let append = IndexOptions {
        append: true,
        replace: false,
    };
    let e = create_index(&target, &tag("1.0"), &amd_again, append, &no_progress)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("linux/amd64") && text.contains("t/app:1.0") && text.contains("--replace"),
        "{text}"
    );
    assert_eq!(target.get_manifest(&tag("1.0")).await.unwrap(), index);
    // Two sources with the same platform, no append: refused too.
    let twice = [
        Source {
            store: &amd_repo,
            reference: tag("1.0"),
        },
        Source {
            store: &src,
            reference: tag("amd64"),
        },
    ];
    let e = create_index(&target, &tag("2.0"), &twice, IndexOptions::default(), &no_progress)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::DuplicatePlatform { .. }), "{e:?}");
    assert!(target.get_manifest(&tag("2.0")).await.unwrap_err().is_not_found());

    // With --replace the later one wins; from a layout, so its blobs are copied (present).
    let replace = IndexOptions {
        append: true,
        replace: true,
    };
    let r = create_index(&target, &tag("1.0"), &amd_again, replace, &no_progress)
        .await
        .unwrap();
    assert_eq!(r.entries.len(), 2);
    assert!(r.entries[0].from.starts_with("oci:"), "{r:?}");
    assert_eq!(r.blobs_present, 2, "{r:?}");
    let outcome = BlobOutcome::Present;
    assert_eq!(serde_json::to_string(&outcome).unwrap(), "\"present\"");
    // An index as a source contributes its entries.
    let merged = create_index(
        &LayoutStore::new(dir.path().join("merged")),
        &tag("m"),
        &[Source {
            store: &target,
            reference: tag("1.0"),
        }],
        IndexOptions::default(),
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(merged.entries.len(), 2);
}

/// A spec building on `base` for `platforms`: one step, one layer, an env var and a label.
fn base_project(base: &str, platforms: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!(
        r#"
image: example.invalid/t/app
tags: ["1"]
platforms: [{platforms}]
base: "{base}"
steps:
  - run: mkdir -p out && echo "app for {{platform}}" > out/app-{{uname}}.txt
layers:
  - name: app
    files:
      - {{ src: "out/app-{{uname}}.txt", dest: /app.txt, mode: "0644" }}
env: {{ FROM: app, MORE: "1" }}
labels: {{ seed: app }}
"#
    );
    std::fs::write(dir.path().join("pier.yaml"), spec).unwrap();
    dir
}

fn build_on_base(
    project: &Path,
    cache: &Path,
    out: &Path,
    regs: Registries,
) -> Result<pier_builder::build::BuildReport, String> {
    use pier_builder::build::{BuildOptions, Output, build_with};
    let opts = BuildOptions {
        spec: project.join("pier.yaml"),
        platforms: None,
        profiles: None,
        cache_dir: cache.to_path_buf(),
        output: Output::OciDir(out.to_path_buf()),
        epoch: Some(1_700_000_000),
    };
    let bases = pier_client::base::Bases::new(None, move |_: &pier_client::Location| Ok(regs.clone())).unwrap();
    let fetch = |reference: &str, platform: &Platform, blobs: &Path| bases.fetch(reference, platform, blobs);
    build_with(&opts, &|_| {}, &fetch).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_on_a_base_from_a_registry_or_a_layout() {
    let server = Server::start().await;
    let regs = server.registries(true);
    let dir = tempfile::tempdir().unwrap();
    let layout = fixture_layout(&dir.path().join("src"));
    let src = LayoutStore::new(layout.root());
    let base_repo = regs.repository(&server.host(), "t/base");
    copy(&src, &tag("index"), &base_repo, &tag("1"), &Select::All, &no_progress)
        .await
        .unwrap();
    let base_ref = format!("{}/t/base:1", server.host());
    let amd_base = src.get_manifest(&tag("amd64")).await.unwrap();
    let amd_base_layer = amd_base.image("x").unwrap().layers[0].clone();

    let cache = tempfile::tempdir().unwrap();
    let (out, out2) = (dir.path().join("out"), dir.path().join("out2"));
    // A platform the base does not have: the build fails naming the base and what it has.
    let p = base_project(&base_ref, "amd64, loongarch64");
    let (pp, cp, o, r) = (
        p.path().to_path_buf(),
        cache.path().to_path_buf(),
        out.clone(),
        regs.clone(),
    );
    let err = tokio::task::spawn_blocking(move || build_on_base(&pp, &cp, &o, r))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        err.contains("linux/loong64") && err.contains("t/base:1") && err.contains("linux/amd64, linux/arm64/v8"),
        "{err}"
    );
    assert!(!out.join("index.json").exists(), "an image was written: {err}");

    // amd64 + arm64: base layers first, the spec's fields over the base's config.
    let p = base_project(&base_ref, "amd64, arm64");
    let (pp, cp, o, r) = (
        p.path().to_path_buf(),
        cache.path().to_path_buf(),
        out.clone(),
        regs.clone(),
    );
    let report = tokio::task::spawn_blocking(move || build_on_base(&pp, &cp, &o, r))
        .await
        .unwrap()
        .unwrap();
    let built = LayoutStore::new(&out);
    let amd = built
        .get_manifest(&Reference::Digest(report.platforms[0].manifest.parse().unwrap()))
        .await
        .unwrap();
    let image = amd.image("built").unwrap();
    assert_eq!(image.layers.len(), 2);
    assert_eq!(image.layers[0].digest, amd_base_layer.digest);
    assert_eq!(image.layers[0].media_type, media::OCI_LAYER_GZIP);
    // The layout is complete: the base's layer is in it.
    assert!(built.has_blob(&amd_base_layer.digest).await.unwrap());
    let config: Value =
        serde_json::from_slice(&read_all(built.get_blob(&image.config.digest, image.config.size).await.unwrap()).await)
            .unwrap();
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["config"]["Labels"]["seed"], "app");
    let env: Vec<&str> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(env, ["PATH=/bin", "FROM=app", "MORE=1"]);
    assert_eq!(config["config"]["Cmd"], json!(["/bin/sh"]));
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), 2);
    assert_eq!(
        diff_ids[0],
        Digest::sha256_of(&std::fs::read(layout.blob_path(&amd_base_layer.digest)).unwrap()).to_string()
    );
    let history = config["history"].as_array().unwrap();
    assert_eq!(history.len(), 3, "base history (2 entries) + ours: {history:?}");
    assert_eq!(history[0]["created_by"], "base: FROM scratch");
    // The arm64 image got the arm64 base.
    let arm = built
        .get_manifest(&Reference::Digest(report.platforms[1].manifest.parse().unwrap()))
        .await
        .unwrap();
    let arm_base = src.get_manifest(&tag("arm64")).await.unwrap();
    assert_eq!(
        arm.image("x").unwrap().layers[0].digest,
        arm_base.image("x").unwrap().layers[0].digest
    );

    // The same build on the same base from an OCI layout gives the same index.
    let layout_base = format!("oci:{}:index", layout.root().display());
    let q = base_project(&layout_base, "amd64, arm64");
    let (pp, cp, o, r) = (
        q.path().to_path_buf(),
        cache.path().to_path_buf(),
        out2.clone(),
        regs.clone(),
    );
    let again = tokio::task::spawn_blocking(move || build_on_base(&pp, &cp, &o, r))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.index, report.index);

    // A base whose blob is corrupted in the registry's source is refused (checked on arrival).
    let fresh_cache = tempfile::tempdir().unwrap();
    let path = layout.blob_path(&amd_base_layer.digest);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (pp, cp, o, r) = (
        q.path().to_path_buf(),
        fresh_cache.path().to_path_buf(),
        dir.path().join("out3"),
        regs.clone(),
    );
    let err = tokio::task::spawn_blocking(move || build_on_base(&pp, &cp, &o, r))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.contains(&amd_base_layer.digest.to_string()), "{err}");
}
