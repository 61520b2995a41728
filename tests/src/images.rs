//! Multi-arch OCI image layouts built from static binaries, for tests.
//!
//! A tiny C program that prints `uname -m` is cross-compiled with zig for the four families
//! that have a compiler here; SW64 has none, so its image carries an honest stand-in: a
//! minimal ELF header with the SW64 machine number, labelled as such. Layers are
//! deterministic (fixed owner, mode, mtime; pinned gzip backend and level).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use pier_oci::media;
use serde_json::{Value, json};

/// The program in every image.
pub const HELLO_C: &str = "#include <stdio.h>\n#include <sys/utsname.h>\n\
int main(void) { struct utsname u; if (uname(&u) != 0) return 1; printf(\"%s\\n\", u.machine); return 0; }\n";
/// ELF machine number of SW64 (Sunway).
pub const EM_SW64: u16 = 0x9916;
/// gzip level for layers: pinned, since it changes layer digests.
pub const GZIP_LEVEL: u32 = 6;
/// Label on the SW64 image saying its binary is a stand-in.
pub const SW64_STANDIN_LABEL: &str = "org.pier.test.sw64-standin";
/// Its value (also a manifest annotation under the same key).
pub const SW64_STANDIN_NOTE: &str = "minimal ELF header with EM_SW64; not a program: no SW64 compiler exists here";

/// One platform of the test image.
#[derive(Debug, Clone, Copy)]
pub struct Arch {
    /// OCI architecture, canonical.
    pub architecture: &'static str,
    /// OCI variant.
    pub variant: Option<&'static str>,
    /// zig target and extra flags; `None` for SW64 (no compiler exists).
    pub zig: Option<(&'static str, &'static [&'static str])>,
    /// What `uname -m` prints on it.
    pub uname: &'static str,
}

impl Arch {
    /// `linux/arch[/variant]`.
    pub fn platform(&self) -> String {
        match self.variant {
            Some(v) => format!("linux/{}/{v}", self.architecture),
            None => format!("linux/{}", self.architecture),
        }
    }

    /// Whether a binary of this platform can run here (qemu-user or native).
    pub fn runnable(&self) -> bool {
        self.zig.is_some()
    }
}

/// The five families, in pier's canonical spelling.
pub const ARCHES: [Arch; 5] = [
    Arch {
        architecture: "amd64",
        variant: None,
        zig: Some(("x86_64-linux-musl", &[])),
        uname: "x86_64",
    },
    Arch {
        architecture: "arm64",
        variant: Some("v8"),
        zig: Some(("aarch64-linux-musl", &[])),
        uname: "aarch64",
    },
    // qemu 7.2 traps on the default LoongArch CPU's instructions; generic_la64+d runs.
    Arch {
        architecture: "loong64",
        variant: None,
        zig: Some(("loongarch64-linux-musl", &["-mcpu=generic_la64+d"])),
        uname: "loongarch64",
    },
    Arch {
        architecture: "sw64",
        variant: None,
        zig: None,
        uname: "sw_64",
    },
    Arch {
        architecture: "mips64le",
        variant: None,
        zig: Some(("mips64el-linux-muslabi64", &[])),
        uname: "mips64",
    },
];

pub use crate::sha256;

/// Flags every target is compiled with; part of the cache key, like the source and target.
const ZIG_FLAGS: [&str; 3] = ["-static", "-O2", "-s"];
/// How long one zig compile may take: the first per target also builds musl (about a
/// minute each, several at once on two cores); later ones take under a second.
pub const ZIG_TIMEOUT: Duration = Duration::from_secs(600);

fn cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"));
    let d = target.join("e2e-cache");
    std::fs::create_dir_all(&d).expect("cache dir");
    d
}

/// Whether zig (`python3 -m ziglang`, from PyPI) works. When it does not: under `CI` this
/// panics (a test that cannot run must not pass), elsewhere it says why the test is skipped.
pub fn require_zig(test: &str) -> bool {
    if !crate::require_tools(test, &["python3"]) {
        return false;
    }
    let ok = crate::run_with_timeout(
        Command::new("python3").args(["-m", "ziglang", "version"]),
        Duration::from_secs(60),
    )
    .status
    .success();
    if !ok {
        let msg = format!("{test}: `python3 -m ziglang` does not run (scripts/test.sh installs ziglang)");
        assert!(!crate::in_ci(), "{msg}");
        eprintln!("SKIPPED {msg}");
    }
    ok
}

fn cached_path(target: &str, flags: &[&str]) -> PathBuf {
    let key = sha256(format!("{HELLO_C}\0{target}\0{ZIG_FLAGS:?}\0{flags:?}").as_bytes());
    cache_dir().join(format!("hello-{target}-{}", &key[7..19]))
}

fn compile(target: &str, flags: &[&str], out: &Path) {
    // Parallel tests and other test binaries may compile the same thing: each compiles into
    // its own temporary name and renames into place (atomic; identical bytes either way).
    let work = tempfile::tempdir_in(cache_dir()).expect("work dir");
    let src = work.path().join("hello.c");
    std::fs::write(&src, HELLO_C).expect("write hello.c");
    let tmp = work.path().join("hello");
    crate::run_ok(
        Command::new("python3")
            .args(["-m", "ziglang", "cc", "-target", target])
            .args(ZIG_FLAGS)
            .args(flags)
            .arg("-o")
            .arg(&tmp)
            .arg(&src),
        ZIG_TIMEOUT,
    );
    std::fs::rename(&tmp, out).expect("cache binary");
}

/// Compile (or find cached) the hello binaries of all `arches` at once: a cold zig cache
/// costs about a minute per target, so they build in parallel. Tests in one binary that
/// both need them wait for each other here instead of compiling the same thing twice.
pub fn prepare_binaries(arches: &[Arch]) {
    static BUILD: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    std::thread::scope(|s| {
        for arch in arches {
            if let Some((target, flags)) = arch.zig {
                let out = cached_path(target, flags);
                if !out.exists() {
                    s.spawn(move || compile(target, flags, &out));
                }
            }
        }
    });
}

/// The static hello binary for `arch` (cached by source, target and flags); for SW64 the
/// stand-in.
pub fn hello_binary(arch: &Arch) -> Vec<u8> {
    let Some((target, flags)) = arch.zig else {
        return sw64_standin_elf();
    };
    let out = cached_path(target, flags);
    if !out.exists() {
        prepare_binaries(std::slice::from_ref(arch));
    }
    std::fs::read(&out).expect("read binary")
}

/// A minimal ELF64 little-endian executable header with `e_machine = EM_SW64`. It is not a
/// program (no compiler for SW64 exists here); it lets tests check that the SW64 image
/// carries a file of the right machine.
pub fn sw64_standin_elf() -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2; // ELFCLASS64
    h[5] = 1; // little endian
    h[6] = 1; // EV_CURRENT
    h[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    h[18..20].copy_from_slice(&EM_SW64.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    h
}

/// The ELF machine field of a file's bytes.
pub fn elf_machine(bytes: &[u8]) -> Option<u16> {
    (bytes.get(..4)? == b"\x7fELF").then(|| u16::from_le_bytes([bytes[18], bytes[19]]))
}

/// A deterministic tar holding one executable file.
pub fn tar_with(path: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data).expect("tar entry");
    b.into_inner().expect("tar")
}

/// gzip with the pinned backend and level, no name or mtime in the header.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// The file at `path` inside a gzip tar layer.
pub fn file_from_layer(layer_gz: &[u8], path: &str) -> Option<Vec<u8>> {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(layer_gz));
    for e in a.entries().ok()? {
        let mut e = e.ok()?;
        if e.path()
            .ok()?
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_start_matches('/')
            == path
        {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).ok()?;
            return Some(v);
        }
    }
    None
}

/// An OCI image layout on disk.
pub struct Layout {
    /// Its directory.
    pub dir: PathBuf,
    /// The tag (`org.opencontainers.image.ref.name`).
    pub tag: String,
    /// Digest of the image index.
    pub index_digest: String,
}

fn put_blob(dir: &Path, data: &[u8]) -> Value {
    let d = sha256(data);
    std::fs::write(dir.join("blobs/sha256").join(&d[7..]), data).expect("write blob");
    json!({ "digest": d, "size": data.len() })
}

fn descriptor(media_type: &str, blob: &Value) -> Value {
    json!({ "mediaType": media_type, "digest": blob["digest"], "size": blob["size"] })
}

/// Write a layout at `dir` holding one image per entry of `arches` under one index, tagged `tag`.
pub fn build_layout(dir: &Path, tag: &str, arches: &[Arch]) -> Layout {
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    prepare_binaries(arches);
    let mut entries = Vec::new();
    for arch in arches {
        let tar = tar_with("hello", &hello_binary(arch));
        let layer = put_blob(dir, &gzip(&tar));
        let mut labels = json!({ "org.opencontainers.image.title": "pier e2e hello" });
        if !arch.runnable() {
            labels[SW64_STANDIN_LABEL] = json!(SW64_STANDIN_NOTE);
        }
        let mut config = json!({
            "architecture": arch.architecture,
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": { "Entrypoint": ["/hello"], "Labels": labels },
            "rootfs": { "type": "layers", "diff_ids": [sha256(&tar)] },
            "history": [{ "created": "1970-01-01T00:00:00Z", "created_by": "pier e2e images.rs" }],
        });
        if let Some(v) = arch.variant {
            config["variant"] = json!(v);
        }
        let config = put_blob(dir, &serde_json::to_vec(&config).expect("config"));
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": descriptor(media::OCI_CONFIG, &config),
            "layers": [descriptor(media::OCI_LAYER_GZIP, &layer)],
        });
        if !arch.runnable() {
            // Also on the manifest, so registry-side tools see it without the config.
            manifest["annotations"] = json!({ SW64_STANDIN_LABEL: SW64_STANDIN_NOTE });
        }
        let manifest = put_blob(dir, &serde_json::to_vec(&manifest).expect("manifest"));
        let mut platform = json!({ "architecture": arch.architecture, "os": "linux" });
        if let Some(v) = arch.variant {
            platform["variant"] = json!(v);
        }
        let mut entry = descriptor(media::OCI_MANIFEST, &manifest);
        entry["platform"] = platform;
        entries.push(entry);
    }
    let index = json!({ "schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": entries });
    let index = put_blob(dir, &serde_json::to_vec(&index).expect("index"));
    let mut top = descriptor(media::OCI_INDEX, &index);
    top["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
    let top = json!({ "schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [top] });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).expect("index.json")).expect("index.json");
    Layout {
        dir: dir.to_path_buf(),
        tag: tag.to_owned(),
        index_digest: index["digest"].as_str().expect("digest").to_owned(),
    }
}

/// `skopeo copy --all --preserve-digests` of the layout's tag to `docker://{dest}` over
/// plain HTTP, with `--dest-creds creds` when given (`user:secret`), else anonymously.
/// `--preserve-digests`: skopeo must fail rather than quietly rewrite a manifest. `work` is
/// where skopeo keeps its policy and (empty) auth file. Returns how it went.
pub fn copy_layout(work: &Path, layout: &Layout, dest: &str, creds: Option<&str>) -> crate::Finished {
    let mut cmd = crate::skopeo(work);
    cmd.args(["copy", "--all", "--preserve-digests", "--dest-tls-verify=false"]);
    if let Some(creds) = creds {
        cmd.args(["--dest-creds", creds]);
    }
    cmd.arg(format!("oci:{}:{}", layout.dir.display(), layout.tag))
        .arg(format!("docker://{dest}"));
    crate::run_with_timeout(&mut cmd, crate::SKOPEO_TIMEOUT)
}

/// [`copy_layout`] that must succeed.
pub fn push_layout(work: &Path, layout: &Layout, dest: &str, creds: Option<&str>) {
    let f = copy_layout(work, layout, dest, creds);
    assert!(
        f.status.success(),
        "skopeo copy of {} to {dest} failed with {}\nstdout:\n{}\nstderr:\n{}",
        layout.dir.display(),
        f.status,
        f.stdout,
        f.stderr
    );
}

/// `os/architecture[/variant]` of every entry of an image index, in order.
pub fn index_platforms(index: &Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let (os, arch) = (
                p["os"].as_str().expect("os"),
                p["architecture"].as_str().expect("architecture"),
            );
            match p["variant"].as_str() {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            }
        })
        .collect()
}

/// The blob digests (`sha256:…`) a layout directory holds.
pub fn layout_blobs(dir: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(dir.join("blobs/sha256"))
        .expect("blobs dir")
        .map(|e| format!("sha256:{}", e.expect("entry").file_name().to_string_lossy()))
        .collect()
}

/// The digest the layout's `index.json` names for `tag`.
pub fn layout_tag_digest(dir: &Path, tag: &str) -> String {
    let v: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json")).expect("json");
    v["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("tag {tag} not in {v}"))["digest"]
        .as_str()
        .expect("digest")
        .to_owned()
}
