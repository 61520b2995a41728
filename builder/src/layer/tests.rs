use super::*;

#[test]
fn dests_normalize() {
    assert_eq!(normalize_dest("/usr//bin/./x").unwrap(), "usr/bin/x");
    assert_eq!(normalize_dest("/").unwrap(), "");
    assert!(normalize_dest("usr/bin").is_err());
    assert!(normalize_dest("/usr/../etc").is_err());
}

#[test]
fn plan_is_sorted_with_parents_and_order_free() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    fs::write(&a, b"a").unwrap();
    fs::write(&b, b"b").unwrap();
    let e1 = vec![
        LayerEntry::new(&b, "/usr/bin/b").with_mode(0o755),
        LayerEntry::new(&a, "/etc/a").with_mode(0o644),
    ];
    let e2: Vec<_> = e1.iter().rev().cloned().collect();
    let p1 = plan(&e1).unwrap();
    let p2 = plan(&e2).unwrap();
    let paths: Vec<_> = p1.items.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, ["etc", "etc/a", "usr", "usr/bin", "usr/bin/b"]);
    assert_eq!(
        p1.items.iter().map(|i| (&i.path, &i.kind, i.mode)).collect::<Vec<_>>(),
        p2.items.iter().map(|i| (&i.path, &i.kind, i.mode)).collect::<Vec<_>>()
    );
    assert_eq!(p1.created_by, "pier: add /etc/a /usr/bin/b");
    assert!(
        p1.items
            .iter()
            .filter(|i| matches!(i.kind, Kind::Dir { .. }))
            .all(|i| i.mode == DIR_MODE)
    );
}

#[test]
fn conflicts_and_bad_input_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    fs::write(&a, b"a").unwrap();
    fs::write(&b, b"b").unwrap();
    let err = plan(&[LayerEntry::new(&a, "/x"), LayerEntry::new(&b, "/x")]).unwrap_err();
    assert!(
        matches!(err, LayerError::Conflict { ref path, .. } if path == "x"),
        "{err}"
    );
    // The same file twice is fine.
    plan(&[LayerEntry::new(&a, "/x"), LayerEntry::new(&a, "/x")]).unwrap();
    let err = plan(&[LayerEntry::new(&a, "x")]).unwrap_err();
    assert!(err.to_string().contains("is not absolute"), "{err}");
    let err = plan(&[LayerEntry::new(&a, "/x").with_mode(0o10000)]).unwrap_err();
    assert!(matches!(err, LayerError::BadMode { .. }), "{err}");
    let err = plan(&[LayerEntry::new(&a, "/")]).unwrap_err();
    assert!(matches!(err, LayerError::BadDest { .. }), "{err}");
}

#[test]
fn hash_writer_hashes_what_passes() {
    let mut w = HashWriter::new(Vec::new());
    w.write_all(b"hello").unwrap();
    let (inner, digest, n) = w.finish();
    assert_eq!(inner, b"hello");
    assert_eq!(n, 5);
    assert_eq!(digest, Digest::sha256_of(b"hello"));
}

#[test]
fn elf_checker_names_path_and_both_sides() {
    let profiles = pier_arch_profiles::Profiles::builtin();
    let arm = profiles.lookup("arm64").unwrap();
    let mut x86 = [0u8; 64];
    x86[..6].copy_from_slice(b"\x7fELF\x02\x01");
    x86[18] = 62;
    let check = elf_checker(arm, &["/opt/ok".to_owned()]);
    let msg = check(Path::new("/usr/bin/app"), &x86).unwrap_err();
    assert!(msg.starts_with("/usr/bin/app: "), "{msg}");
    assert!(
        msg.contains("x86-64") && msg.contains("aarch64") && msg.contains("linux/arm64/v8"),
        "{msg}"
    );
    check(Path::new("/opt/ok"), &x86).unwrap();
    check(Path::new("/etc/conf"), b"not elf").unwrap();
    let msg = check(Path::new("/bad"), b"\x7fELF\x02").unwrap_err();
    assert!(msg.starts_with("/bad: truncated"), "{msg}");
}

#[test]
fn cache_hits_on_same_inputs_and_misses_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("f");
    fs::write(&src, b"one").unwrap();
    let cache = LayerCache::open(dir.path().join("cache")).unwrap();
    let entries = [LayerEntry::new(&src, "/f").with_mode(0o644)];
    let (first, hit) = cache.get_or_build(&entries, 7, Compression::Gzip, &no_check).unwrap();
    assert!(!hit);
    let (again, hit) = cache.get_or_build(&entries, 7, Compression::Gzip, &no_check).unwrap();
    assert!(hit);
    assert_eq!(first, again);
    let (other_time, hit) = cache.get_or_build(&entries, 8, Compression::Gzip, &no_check).unwrap();
    assert!(!hit);
    assert_ne!(other_time.digest, first.digest);
    fs::write(&src, b"two").unwrap();
    let (changed, hit) = cache.get_or_build(&entries, 7, Compression::Gzip, &no_check).unwrap();
    assert!(!hit);
    assert_ne!(changed.digest, first.digest);
    // A missing blob is a miss, rebuilt to the same digest.
    fs::write(&src, b"one").unwrap();
    fs::remove_file(&first.path).unwrap();
    let (rebuilt, hit) = cache.get_or_build(&entries, 7, Compression::Gzip, &no_check).unwrap();
    assert!(!hit);
    assert_eq!(rebuilt.digest, first.digest);
    // The check runs on hits too.
    let refuse = |d: &Path, _: &[u8]| Err(format!("{}: no", d.display()));
    let err = cache.get_or_build(&entries, 7, Compression::Gzip, &refuse).unwrap_err();
    assert_eq!(err.to_string(), "/f: no");
}

/// A small tree: a file, a directory with a file, a symlink, and a file large enough to
/// span several zstd blocks.
fn sample(dir: &Path) -> Vec<LayerEntry> {
    let src = dir.join("src");
    fs::create_dir_all(src.join("d/sub")).unwrap();
    fs::write(src.join("d/a.txt"), b"alpha\n").unwrap();
    fs::write(src.join("d/sub/b.txt"), b"beta\n").unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("d/link")).unwrap();
    let big: Vec<u8> = (0..400_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
    fs::write(src.join("big"), &big).unwrap();
    vec![
        LayerEntry::new(src.join("d"), "/etc/app")
            .with_mode(0o640)
            .with_owner(1, 2),
        LayerEntry::new(src.join("big"), "/usr/share/big.bin").with_mode(0o644),
    ]
}

fn opts(out_dir: PathBuf, compression: Compression) -> LayerOptions {
    LayerOptions {
        mtime: 1_700_000_000,
        compression,
        out_dir,
    }
}

/// (path, type, mode, uid, gid, mtime, link target, content) of every entry.
type TarEntry = (String, tar::EntryType, u32, u64, u64, u64, Option<PathBuf>, Vec<u8>);

fn tar_entries(tar_bytes: &[u8]) -> Vec<TarEntry> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            (
                e.path().unwrap().display().to_string(),
                h.entry_type(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
                e.link_name().unwrap().map(|l| l.into_owned()),
                content,
            )
        })
        .collect()
}

#[test]
fn zstd_layer_round_trips_with_the_tar_as_diff_id() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sample(dir.path());
    let layer = build_layer(&entries, &opts(dir.path().join("out"), Compression::Zstd), &no_check).unwrap();
    assert_eq!(layer.media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
    assert_eq!(layer.path, dir.path().join("out").join(layer.digest.hex()));
    let blob = fs::read(&layer.path).unwrap();
    assert_eq!(Digest::sha256_of(&blob), layer.digest);
    assert_eq!(blob.len() as u64, layer.size);
    // One standard frame: magic, then a descriptor without content size, checksum or
    // dictionary id (bits 7-6, 2 and 1-0 clear; bit 5, single segment, needs a size).
    assert_eq!(&blob[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    assert_eq!(blob[4] & 0b1110_0111, 0, "frame header descriptor {:#010b}", blob[4]);
    let tar_bytes = zstd::decode_all(blob.as_slice()).unwrap();
    assert_eq!(Digest::sha256_of(&tar_bytes), layer.diff_id);
    let entries = tar_entries(&tar_bytes);
    let paths: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        paths,
        [
            "etc/",
            "etc/app/",
            "etc/app/a.txt",
            "etc/app/link",
            "etc/app/sub/",
            "etc/app/sub/b.txt",
            "usr/",
            "usr/share/",
            "usr/share/big.bin"
        ]
    );
    let find = |p: &str| entries.iter().find(|e| e.0 == p).unwrap();
    let a = find("etc/app/a.txt");
    assert_eq!(
        (a.1, a.2, a.3, a.4, a.5),
        (tar::EntryType::Regular, 0o640, 1, 2, 1_700_000_000)
    );
    assert_eq!(a.7, b"alpha\n");
    let link = find("etc/app/link");
    assert_eq!(link.1, tar::EntryType::Symlink);
    assert_eq!(link.6.as_deref(), Some(Path::new("a.txt")));
    assert_eq!(find("etc/app/sub/").2, DIR_MODE);
    assert_eq!(
        find("usr/share/big.bin").7,
        fs::read(dir.path().join("src/big")).unwrap()
    );
}

#[test]
fn zstd_layers_are_deterministic_and_differ_from_gzip_only_in_compression() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sample(dir.path());
    let z1 = build_layer(&entries, &opts(dir.path().join("z1"), Compression::Zstd), &no_check).unwrap();
    let z2 = build_layer(&entries, &opts(dir.path().join("z2"), Compression::Zstd), &no_check).unwrap();
    assert_eq!((&z1.digest, &z1.diff_id, z1.size), (&z2.digest, &z2.diff_id, z2.size));
    assert_eq!(fs::read(&z1.path).unwrap(), fs::read(&z2.path).unwrap());

    let gz = build_layer(&entries, &opts(dir.path().join("gz"), Compression::Gzip), &no_check).unwrap();
    assert_eq!(gz.diff_id, z1.diff_id, "the same tar under both compressors");
    assert_ne!(gz.digest, z1.digest);
    assert_ne!(gz.media_type, z1.media_type);
    let mut gz_tar = Vec::new();
    flate2::read::GzDecoder::new(File::open(&gz.path).unwrap())
        .read_to_end(&mut gz_tar)
        .unwrap();
    assert_eq!(gz_tar, zstd::decode_all(File::open(&z1.path).unwrap()).unwrap());

    let gz_key = LayerCache::key(&entries, 1_700_000_000, Compression::Gzip).unwrap();
    let zstd_key = LayerCache::key(&entries, 1_700_000_000, Compression::Zstd).unwrap();
    assert_ne!(gz_key, zstd_key);
    assert_eq!(
        zstd_key,
        LayerCache::key(&entries, 1_700_000_000, Compression::Zstd).unwrap()
    );
    // The key names the level, the frame settings and the library version.
    let id = Compression::Zstd.cache_id();
    assert!(
        id.contains(&format!("zstd-{ZSTD_LEVEL} ")) && id.contains(ZSTD_FRAME) && id.contains("libzstd-1."),
        "{id}"
    );
    assert_eq!(Compression::Gzip.cache_id(), format!("gzip-{GZIP_LEVEL}"));
}

#[test]
fn zstd_output_does_not_depend_on_write_sizes() {
    // The tar writer's write sizes are an implementation detail of the tar crate; the
    // compressed bytes must not follow them.
    let data: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 253) as u8 ^ (i >> 11) as u8).collect();
    let compress = |chunk: usize| {
        let mut enc = zstd_encoder(Vec::new()).unwrap();
        for c in data.chunks(chunk) {
            enc.write_all(c).unwrap();
        }
        enc.finish().unwrap()
    };
    let whole = compress(data.len());
    for chunk in [1, 7, 512, 4096, 100_003] {
        assert!(compress(chunk) == whole, "chunks of {chunk} bytes changed the output");
    }
    assert_eq!(zstd::decode_all(whole.as_slice()).unwrap(), data);
}

#[test]
fn zstd_layers_are_cached_apart_from_gzip_ones() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sample(dir.path());
    let cache = LayerCache::open(dir.path().join("cache")).unwrap();
    let (first, hit) = cache.get_or_build(&entries, 7, Compression::Zstd, &no_check).unwrap();
    assert!(!hit);
    assert_eq!(first.media_type, media::OCI_LAYER_ZSTD);
    assert_eq!(first.path, cache.blobs_dir().join(first.digest.hex()));
    let (again, hit) = cache.get_or_build(&entries, 7, Compression::Zstd, &no_check).unwrap();
    assert!(hit, "the same inputs hit the cache the second time");
    assert_eq!(again, first);
    // gzip of the same inputs is another entry, not the zstd blob under a gzip name.
    let (gz, hit) = cache.get_or_build(&entries, 7, Compression::Gzip, &no_check).unwrap();
    assert!(!hit);
    assert_eq!(gz.media_type, media::OCI_LAYER_GZIP);
    assert_eq!(gz.diff_id, first.diff_id);
    assert_ne!(gz.digest, first.digest);
    let (z, hit) = cache.get_or_build(&entries, 7, Compression::Zstd, &no_check).unwrap();
    assert!(hit);
    assert_eq!(z, first);
}
