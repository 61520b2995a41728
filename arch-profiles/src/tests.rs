use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::elf::{EM_AARCH64, EM_LOONGARCH, EM_MIPS, EM_SW64, EM_SW64_ALT, EM_X86_64, HEADER_LEN};

fn builtin(name: &str) -> &'static Profile {
    Profiles::builtin()
        .lookup(name)
        .unwrap_or_else(|| panic!("no profile for {name:?}"))
}

// ---- the built-in table -------------------------------------------------------------------

#[test]
fn five_families_in_order_with_canonical_platforms() {
    let all = Profiles::builtin().all();
    let got: Vec<(&str, String)> = all.iter().map(|p| (p.family(), p.platform().to_string())).collect();
    assert_eq!(
        got,
        [
            ("x86", "linux/amd64".to_owned()),
            ("arm", "linux/arm64/v8".to_owned()),
            ("loongarch", "linux/loong64".to_owned()),
            ("sw64", "linux/sw64".to_owned()),
            ("mips", "linux/mips64le".to_owned()),
        ]
    );
    let defaults: Vec<String> = Platform::defaults().iter().map(ToString::to_string).collect();
    let ours: Vec<String> = all.iter().map(|p| p.platform().to_string()).collect();
    assert_eq!(ours, defaults, "the table and pier_oci's default platforms agree");
}

#[test]
fn every_name_finds_its_profile() {
    let cases: &[(&str, &[&str])] = &[
        (
            "x86",
            &[
                "x86",
                "x86_64",
                "x86-64",
                "amd64",
                "c86",
                "X86_64",
                "C86",
                "linux/amd64",
                "x64",
                "linux/x86_64",
            ],
        ),
        (
            "arm",
            &[
                "arm",
                "aarch64",
                "arm64",
                "armv8",
                "AArch64",
                "linux/arm64/v8",
                "linux/arm64",
                "linux/aarch64",
            ],
        ),
        (
            "loongarch",
            &[
                "loongarch",
                "loongarch64",
                "la64",
                "loong64",
                "LA64",
                "linux/loong64",
                "linux/loongarch64",
            ],
        ),
        (
            "sw64",
            &["sw64", "sw_64", "sunway", "SW_64", "linux/sw64", "linux/sw_64"],
        ),
        (
            "mips",
            &[
                "mips",
                "mips64el",
                "mips64le",
                "mips64",
                "linux/mips64le",
                "linux/mips64el",
            ],
        ),
    ];
    for (family, names) in cases {
        for name in *names {
            assert_eq!(builtin(name).family(), *family, "{name}");
        }
    }
    for p in Profiles::builtin().all() {
        for name in p
            .aliases()
            .iter()
            .chain([&p.uname().to_owned(), &p.debian().to_owned()])
        {
            assert_eq!(builtin(name).family(), p.family(), "{name}");
        }
    }
    for unknown in ["riscv64", "linux/riscv64", "ppc64le", "", "arm32", "mips64be"] {
        assert!(Profiles::builtin().lookup(unknown).is_none(), "{unknown}");
    }
}

#[test]
fn names_agree_with_pier_oci() {
    // `uname -m` prints mips64 on little-endian MIPS too, but to pier_oci (as to Go and
    // Debian) a bare "mips64" would be the big-endian port, which it does not know.
    let not_oci_names = ["mips64"];
    for p in Profiles::builtin().all() {
        let names = std::iter::once(p.family())
            .chain(p.aliases().iter().map(String::as_str))
            .chain([p.uname(), p.debian()]);
        for name in names {
            match Platform::from_str(name) {
                Ok(platform) => assert_eq!(&platform, p.platform(), "{name}"),
                Err(_) => assert!(
                    not_oci_names.contains(&name) || name == p.family(),
                    "{name} of {} is unknown to pier_oci",
                    p.family()
                ),
            }
        }
        // What comes out is canonical: it parses back to itself.
        let shown = p.platform().to_string();
        assert_eq!(Platform::from_str(&shown).unwrap().to_string(), shown);
    }
}

#[test]
fn toolchain_names() {
    let row = |f: &str| {
        let p = builtin(f);
        (
            p.uname().to_owned(),
            p.debian().to_owned(),
            p.go_arch().map(str::to_owned),
            p.zig_target().map(str::to_owned),
            p.zig_cpu().map(str::to_owned),
            p.qemu().map(str::to_owned),
        )
    };
    let s = |v: &str| v.to_owned();
    let o = |v: &str| Some(v.to_owned());
    assert_eq!(
        row("x86"),
        (s("x86_64"), s("amd64"), o("amd64"), o("x86_64-linux-musl"), None, None)
    );
    assert_eq!(
        row("arm"),
        (
            s("aarch64"),
            s("arm64"),
            o("arm64"),
            o("aarch64-linux-musl"),
            None,
            o("qemu-aarch64")
        )
    );
    assert_eq!(
        row("loongarch"),
        (
            s("loongarch64"),
            s("loong64"),
            o("loong64"),
            o("loongarch64-linux-musl"),
            o("generic_la64+d"),
            o("qemu-loongarch64")
        )
    );
    assert_eq!(row("sw64"), (s("sw_64"), s("sw_64"), None, None, None, None));
    assert_eq!(
        row("mips"),
        (
            s("mips64"),
            s("mips64el"),
            o("mips64le"),
            o("mips64el-linux-muslabi64"),
            None,
            o("qemu-mips64el")
        )
    );
    assert!(builtin("sw64").rust_targets().is_empty());
    assert!(builtin("x86").rust_targets().contains(&s("x86_64-unknown-linux-musl")));
    assert!(
        builtin("mips")
            .rust_targets()
            .contains(&s("mips64el-unknown-linux-gnuabi64"))
    );
    for p in Profiles::builtin().all() {
        assert_eq!(p.base_image(), "scratch");
        assert_eq!(p.helm_overlay(), format!("values-{}.yaml", p.family()));
        assert!(!p.name().is_empty());
    }
    assert_eq!(builtin("c86").name(), "X86 (incl. Hygon C86)");
}

#[test]
fn elf_expectations() {
    let e = |f: &str| builtin(f).elf().clone();
    let le64 = |machines: Vec<u16>, abi| ElfExpect {
        machines,
        class: ElfClass::Elf64,
        endian: Endian::Little,
        loongarch_abi: abi,
    };
    assert_eq!(e("x86"), le64(vec![62], None));
    assert_eq!(e("arm"), le64(vec![183], None));
    assert_eq!(e("loongarch"), le64(vec![258], Some(LoongArchAbi::NewWorld)));
    assert_eq!(e("sw64"), le64(vec![0x9916, 268], None));
    assert_eq!(e("mips"), le64(vec![8], None));
}

#[test]
fn scaling_thresholds_are_the_papers() {
    // LYU Yimeng, JCA 2025 S1, Table 3: CPU out/in, memory out/in.
    let expected = [
        ("x86", 90, 45, 95, 50),
        ("arm", 90, 45, 90, 40),
        ("loongarch", 80, 40, 80, 35),
        ("sw64", 75, 35, 80, 35),
        ("mips", 70, 30, 70, 30),
    ];
    for (family, cpu_scale_out, cpu_scale_in, mem_scale_out, mem_scale_in) in expected {
        assert_eq!(
            builtin(family).scaling(),
            Scaling {
                cpu_scale_out,
                cpu_scale_in,
                mem_scale_out,
                mem_scale_in
            },
            "{family}"
        );
    }
}

#[test]
fn load_without_a_file_is_the_builtin_table() {
    let loaded = Profiles::load(None).unwrap();
    assert_eq!(loaded.all(), Profiles::builtin().all());
}

// ---- ELF ----------------------------------------------------------------------------------

/// A file header with the given fields, the rest zero (enough for the checks).
fn header(class: ElfClass, endian: Endian, machine: u16, flags: u32) -> Vec<u8> {
    let (len, flags_at) = match class {
        ElfClass::Elf32 => (52, 36),
        ElfClass::Elf64 => (64, 48),
    };
    let mut h = vec![0u8; len];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = match class {
        ElfClass::Elf32 => 1,
        ElfClass::Elf64 => 2,
    };
    h[5] = match endian {
        Endian::Little => 1,
        Endian::Big => 2,
    };
    h[6] = 1; // EV_CURRENT
    let (machine, flags, etype) = match endian {
        Endian::Little => (machine.to_le_bytes(), flags.to_le_bytes(), 2u16.to_le_bytes()),
        Endian::Big => (machine.to_be_bytes(), flags.to_be_bytes(), 2u16.to_be_bytes()),
    };
    h[16..18].copy_from_slice(&etype);
    h[18..20].copy_from_slice(&machine);
    h[flags_at..flags_at + 4].copy_from_slice(&flags);
    h
}

fn le64(machine: u16, flags: u32) -> ElfInfo {
    ElfInfo::parse(&header(ElfClass::Elf64, Endian::Little, machine, flags)).unwrap()
}

#[test]
fn parse_reads_both_classes_and_byte_orders() {
    for class in [ElfClass::Elf32, ElfClass::Elf64] {
        for endian in [Endian::Little, Endian::Big] {
            let h = header(class, endian, 0x1234, 0x8765_4321);
            assert!(ElfInfo::is_elf(&h));
            let info = ElfInfo::parse(&h).unwrap();
            assert_eq!(
                info,
                ElfInfo {
                    class,
                    endian,
                    machine: 0x1234,
                    flags: 0x8765_4321
                },
                "{class} {endian}"
            );
        }
    }
}

#[test]
fn parse_refuses_what_is_not_an_elf_header() {
    assert_eq!(ElfInfo::parse(b"#!/bin/sh\necho hello\n"), Err(ElfError::NotElf));
    assert_eq!(ElfInfo::parse(b""), Err(ElfError::NotElf));
    assert!(!ElfInfo::is_elf(b"#!/bin/sh"));
    assert!(!ElfInfo::is_elf(b"\x7fEL"));

    let full = header(ElfClass::Elf64, Endian::Little, EM_X86_64, 0);
    assert_eq!(
        ElfInfo::parse(&full[..40]),
        Err(ElfError::Truncated { got: 40, need: 64 })
    );
    assert_eq!(
        ElfInfo::parse(&full[..10]),
        Err(ElfError::Truncated { got: 10, need: 16 })
    );
    assert_eq!(
        ElfInfo::parse(&full[..3]),
        Err(ElfError::Truncated { got: 3, need: 16 })
    );
    let short32 = header(ElfClass::Elf32, Endian::Little, EM_MIPS, 0);
    assert_eq!(
        ElfInfo::parse(&short32[..51]),
        Err(ElfError::Truncated { got: 51, need: 52 })
    );
    assert!(
        ElfInfo::parse(&full[..40])
            .unwrap_err()
            .to_string()
            .contains("truncated")
    );

    let mut bad = full.clone();
    bad[4] = 3;
    assert_eq!(ElfInfo::parse(&bad), Err(ElfError::BadClass(3)));
    let mut bad = full;
    bad[5] = 0;
    assert_eq!(ElfInfo::parse(&bad), Err(ElfError::BadData(0)));
}

#[test]
fn x86_64_binary_fits_x86_only() {
    let elf = le64(EM_X86_64, 0);
    assert_eq!(builtin("x86").check_elf(&elf), Ok(()));
    let err = builtin("arm").check_elf(&elf).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ELF for x86-64 (EM_X86_64, 64-bit LSB), but linux/arm64/v8 needs aarch64 (EM_AARCH64 183, 64-bit LSB)"
    );
    let err = builtin("x86").check_elf(&le64(EM_AARCH64, 0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ELF for aarch64 (EM_AARCH64, 64-bit LSB), but linux/amd64 needs x86-64 (EM_X86_64 62, 64-bit LSB)"
    );
    for other in ["loongarch", "sw64", "mips"] {
        assert!(builtin(other).check_elf(&elf).is_err(), "{other}");
    }
}

#[test]
fn loongarch_new_world_fits_old_world_does_not() {
    let la = builtin("loongarch");
    let new_world = le64(EM_LOONGARCH, 0x43);
    assert_eq!(new_world.loongarch_abi(), Some(LoongArchAbi::NewWorld));
    assert_eq!(la.check_elf(&new_world), Ok(()));

    let old_world = le64(EM_LOONGARCH, 0x03);
    assert_eq!(old_world.loongarch_abi(), Some(LoongArchAbi::OldWorld));
    assert_eq!(
        la.check_elf(&old_world).unwrap_err().to_string(),
        "LoongArch old-world ABI (e_flags 0x3), but linux/loong64 expects new-world (e_flags 0x43)"
    );
    let reserved = le64(EM_LOONGARCH, 0xc3);
    assert_eq!(reserved.loongarch_abi(), None);
    assert!(
        la.check_elf(&reserved)
            .unwrap_err()
            .to_string()
            .contains("object ABI v3")
    );
    // The ABI is LoongArch's business only.
    assert_eq!(le64(EM_X86_64, 0x43).loongarch_abi(), None);
    assert!(builtin("x86").check_elf(&le64(EM_X86_64, 0x03)).is_ok());
}

#[test]
fn sw64_accepts_both_machine_numbers() {
    let sw = builtin("sw64");
    for machine in [EM_SW64, EM_SW64_ALT, 0x9916, 268] {
        assert_eq!(sw.check_elf(&le64(machine, 0)), Ok(()), "{machine:#x}");
    }
    assert_eq!(
        sw.check_elf(&le64(EM_X86_64, 0)).unwrap_err().to_string(),
        "ELF for x86-64 (EM_X86_64, 64-bit LSB), but linux/sw64 needs sw64 (EM_SW64 0x9916 or 268, 64-bit LSB)"
    );
    assert!(
        builtin("x86")
            .check_elf(&le64(EM_SW64, 0))
            .unwrap_err()
            .to_string()
            .starts_with("ELF for sw64 (EM_SW64, 64-bit LSB)")
    );
}

#[test]
fn mips_needs_64_bit_little_endian() {
    let mips = builtin("mips");
    // zig's mips64el binaries carry e_flags 0x80000005 (MIPS64r2, PIC, CPIC): not checked.
    assert_eq!(mips.check_elf(&le64(EM_MIPS, 0x8000_0005)), Ok(()));

    let big = ElfInfo::parse(&header(ElfClass::Elf64, Endian::Big, EM_MIPS, 0)).unwrap();
    let msg = mips.check_elf(&big).unwrap_err().to_string();
    assert_eq!(
        msg,
        "ELF for mips64 (EM_MIPS, 64-bit MSB), but linux/mips64le needs mips64 (EM_MIPS 8, 64-bit LSB)"
    );

    let small = ElfInfo::parse(&header(ElfClass::Elf32, Endian::Little, EM_MIPS, 0)).unwrap();
    let msg = mips.check_elf(&small).unwrap_err().to_string();
    assert_eq!(
        msg,
        "ELF for mips (EM_MIPS, 32-bit LSB), but linux/mips64le needs mips64 (EM_MIPS 8, 64-bit LSB)"
    );
}

#[test]
fn unknown_machines_are_named_by_number() {
    let expect = ElfExpect {
        machines: vec![999, 0x9999],
        class: ElfClass::Elf64,
        endian: Endian::Big,
        loongarch_abi: None,
    };
    assert_eq!(expect.to_string(), "machine 999 or 0x9999 (64-bit MSB)");
    let odd = le64(999, 0);
    assert_eq!(
        builtin("arm").check_elf(&odd).unwrap_err().to_string(),
        "ELF for machine 999 (64-bit LSB), but linux/arm64/v8 needs aarch64 (EM_AARCH64 183, 64-bit LSB)"
    );
}

/// The static binaries the end-to-end tests compile with zig, when a previous run left them
/// (`target/e2e-cache/hello-<zig target>-<key>`); nothing to check otherwise.
#[test]
fn real_binaries_when_present() {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let Ok(entries) = std::fs::read_dir(target.join("e2e-cache")) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(profile) = Profiles::builtin().all().iter().find(|p| {
            p.zig_target()
                .is_some_and(|t| file_name.starts_with(&format!("hello-{t}-")))
        }) else {
            continue;
        };
        let Ok(bytes) = std::fs::read(entry.path()) else {
            continue;
        };
        let info = ElfInfo::parse(&bytes[..bytes.len().min(HEADER_LEN)]).unwrap_or_else(|e| panic!("{file_name}: {e}"));
        assert_eq!(profile.check_elf(&info), Ok(()), "{file_name}");
        for other in Profiles::builtin()
            .all()
            .iter()
            .filter(|p| p.family() != profile.family())
        {
            assert!(
                other.check_elf(&info).is_err(),
                "{file_name} must not fit {}",
                other.family()
            );
        }
    }
}

// ---- user files ---------------------------------------------------------------------------

/// A file in the temp dir, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(text: &str) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("pier-profiles-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }

    fn name(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const RISCV: &str = r#"
[[profile]]
family = "riscv"
name = "RISC-V"
platform = "linux/riscv64"
aliases = ["riscv64", "rv64"]
uname = "riscv64"
debian = "riscv64"
rust_targets = ["riscv64gc-unknown-linux-gnu"]
go_arch = "riscv64"
zig_target = "riscv64-linux-musl"
qemu = "qemu-riscv64"

[profile.elf]
machine = [243]
class = 64
endian = "little"

[profile.scaling]
cpu_scale_out = 85
cpu_scale_in = 40
mem_scale_out = 85
mem_scale_in = 40

[[profile]]
family = "arm"
qemu = ""

[profile.scaling]
cpu_scale_out = 95
mem_scale_in = 30
"#;

#[test]
fn user_file_adds_a_family_and_overrides_another() {
    let file = TempFile::new(RISCV);
    let profiles = Profiles::load(Some(&file.0)).unwrap();
    let families: Vec<&str> = profiles.all().iter().map(Profile::family).collect();
    assert_eq!(families, ["x86", "arm", "loongarch", "sw64", "mips", "riscv"]);

    let rv = profiles.lookup("RV64").unwrap();
    assert_eq!(rv.family(), "riscv");
    assert_eq!(rv.platform().to_string(), "linux/riscv64");
    assert_eq!(profiles.lookup("linux/riscv64").unwrap().family(), "riscv");
    assert_eq!(rv.base_image(), "scratch");
    assert_eq!(rv.helm_overlay(), "values-riscv.yaml");
    assert_eq!(rv.zig_cpu(), None);
    assert_eq!(rv.check_elf(&le64(243, 0x5)), Ok(()));
    assert!(rv.check_elf(&le64(EM_X86_64, 0)).is_err());

    let arm = profiles.lookup("aarch64").unwrap();
    assert_eq!(
        arm.scaling(),
        Scaling {
            cpu_scale_out: 95,
            cpu_scale_in: 45,
            mem_scale_out: 90,
            mem_scale_in: 30
        }
    );
    assert_eq!(arm.qemu(), None, "an empty string takes a value away");
    assert_eq!(arm.go_arch(), Some("arm64"), "fields not given are kept");
    assert_eq!(arm.platform().to_string(), "linux/arm64/v8");
    // The built-in table is untouched.
    assert_eq!(builtin("aarch64").scaling().cpu_scale_out, 90);
    assert_eq!(builtin("aarch64").qemu(), Some("qemu-aarch64"));
}

/// Loads `text` as a user file and returns the error message, checking it names the file,
/// the line and the field.
fn refused(text: &str, line: usize, field: &str) -> String {
    let file = TempFile::new(text);
    let err = Profiles::load(Some(&file.0)).expect_err("must be refused");
    let msg = err.to_string();
    assert!(msg.contains(&file.name()), "file name in {msg:?}");
    assert!(msg.contains(&format!("line {line}:")), "line {line} in {msg:?}");
    assert!(msg.contains(&format!("`{field}`")), "{field} in {msg:?}");
    msg
}

#[test]
fn unknown_keys_are_refused() {
    let msg = refused(
        "[[profile]]\nfamily = \"arm\"\nqemu_binary = \"x\"\n",
        3,
        "profile[0].qemu_binary",
    );
    assert!(msg.contains("unknown key"), "{msg}");
    assert!(msg.contains("qemu"), "lists the keys allowed: {msg}");
    refused(
        "[[profile]]\nfamily = \"arm\"\n\n[profile.scaling]\ncpu_scale_out = 91\ncpu_scaleout = 92\n",
        6,
        "profile[0].scaling.cpu_scaleout",
    );
    refused(
        "[[profile]]\nfamily = \"arm\"\n[profile.elf]\nmachnie = [183]\n",
        4,
        "profile[0].elf.machnie",
    );
    refused("# comment\nprofiles = []\n", 2, "profiles");
}

#[test]
fn non_canonical_platform_is_refused() {
    let msg = refused(
        "[[profile]]\nfamily = \"arm\"\nplatform = \"linux/aarch64\"\n",
        3,
        "profile[0].platform",
    );
    assert!(msg.contains("\"linux/aarch64\" is not canonical"), "{msg}");
    assert!(msg.contains("\"linux/arm64/v8\""), "says the canonical spelling: {msg}");
    let msg = refused(
        "[[profile]]\nfamily = \"arm\"\nplatform = \"linux/arm64\"\n",
        3,
        "profile[0].platform",
    );
    assert!(msg.contains("write \"linux/arm64/v8\""), "{msg}");
    let msg = refused(
        "[[profile]]\nfamily = \"x86\"\n\nplatform = \"Linux/AMD64\"\n",
        4,
        "profile[0].platform",
    );
    assert!(msg.contains("not a platform"), "{msg}");
}

#[test]
fn names_two_profiles_claim_are_refused() {
    let with_alias = RISCV.replace(r#"["riscv64", "rv64"]"#, r#"["riscv64", "rv64", "la64"]"#);
    let msg = refused(&with_alias, 6, "profile[0].aliases[2]");
    assert!(msg.contains("\"la64\" already names profile \"loongarch\""), "{msg}");
    assert!(
        msg.contains("built-in profiles.toml, line"),
        "says where the other is: {msg}"
    );

    // The user's line is blamed even when the built-in claim comes later in table order.
    let msg = refused(
        "[[profile]]\nfamily = \"x86\"\nuname = \"aarch64\"\n",
        3,
        "profile[0].uname",
    );
    assert!(msg.contains("already names profile \"arm\""), "{msg}");

    let msg = refused(
        &RISCV.replace("linux/riscv64", "linux/mips64le"),
        5,
        "profile[0].platform",
    );
    assert!(
        msg.contains("\"linux/mips64le\" already names profile \"mips\""),
        "{msg}"
    );

    // A name pier_oci reads as another platform.
    let msg = refused(&RISCV.replace(r#""rv64""#, r#""x64""#), 6, "profile[0].aliases[1]");
    assert!(msg.contains("\"x64\" means linux/amd64"), "{msg}");

    refused(
        "[[profile]]\nfamily = \"arm\"\n[[profile]]\nfamily = \"ARM\"\n",
        4,
        "profile[1].family",
    );
}

#[test]
fn bad_thresholds_are_refused() {
    let msg = refused(
        "[[profile]]\nfamily = \"mips\"\n[profile.scaling]\ncpu_scale_out = 120\n",
        4,
        "profile[0].scaling.cpu_scale_out",
    );
    assert!(msg.contains("120 is not a percentage"), "{msg}");
    refused(
        "[[profile]]\nfamily = \"mips\"\n[profile.scaling]\nmem_scale_in = -1\n",
        4,
        "profile[0].scaling.mem_scale_in",
    );
    // Scale-in at or above the built-in scale-out (mips: 70).
    let msg = refused(
        "[[profile]]\nfamily = \"mips\"\n[profile.scaling]\ncpu_scale_in = 70\n",
        4,
        "profile[0].scaling.cpu_scale_in",
    );
    assert!(
        msg.contains("CPU scale-in at 70% must be below scale-out at 70%"),
        "{msg}"
    );
    // Scale-out lowered under the built-in scale-in (mips memory: 30): the user's line.
    let msg = refused(
        "[[profile]]\nfamily = \"mips\"\n[profile.scaling]\nmem_scale_out = 25\n",
        4,
        "profile[0].scaling.mem_scale_out",
    );
    assert!(msg.contains("memory scale-in at 30%"), "{msg}");
}

#[test]
fn other_bad_files_are_refused() {
    // A new family must be complete.
    let msg = refused(
        "[[profile]]\nfamily = \"riscv\"\nname = \"RISC-V\"\nplatform = \"linux/riscv64\"\n",
        2,
        "profile[0].uname",
    );
    assert!(msg.contains("required for the new profile \"riscv\""), "{msg}");
    // Wrong types name the field too.
    let msg = refused(
        "[[profile]]\nfamily = \"arm\"\n\n[profile.elf]\nclass = \"64\"\n",
        5,
        "profile[0].elf.class",
    );
    assert!(msg.contains("invalid type"), "{msg}");
    refused(
        "[[profile]]\nfamily = \"arm\"\n[profile.elf]\nclass = 48\n",
        4,
        "profile[0].elf.class",
    );
    refused(
        "[[profile]]\nfamily = \"arm\"\n[profile.elf]\nendian = \"middle\"\n",
        4,
        "profile[0].elf.endian",
    );
    refused(
        "[[profile]]\nfamily = \"loongarch\"\n[profile.elf]\nloongarch_abi = \"newworld\"\n",
        4,
        "profile[0].elf.loongarch_abi",
    );
    refused("[[profile]]\nname = \"nameless\"\n", 1, "profile[0].family");
    refused(
        "[[profile]]\nfamily = \"arm\"\naliases = [\"a b\"]\n",
        3,
        "profile[0].aliases[0]",
    );

    // Not TOML at all: file and line, no field to name.
    let file = TempFile::new("[[profile]]\nfamily = \"arm\n");
    let msg = Profiles::load(Some(&file.0)).unwrap_err().to_string();
    assert!(msg.starts_with(&format!("{}: line 2:", file.name())), "{msg}");

    let missing = std::env::temp_dir().join("pier-profiles-does-not-exist.toml");
    let msg = Profiles::load(Some(&missing)).unwrap_err().to_string();
    assert!(msg.contains("pier-profiles-does-not-exist.toml"), "{msg}");
}

#[test]
fn an_empty_user_file_changes_nothing() {
    let file = TempFile::new("# nothing to change\n");
    assert_eq!(Profiles::load(Some(&file.0)).unwrap().all(), Profiles::builtin().all());
}
