//! The architecture table: one profile per CPU family pier builds for — X86 (including
//! Hygon C86), ARM, LoongArch, SW64 and MIPS — with its canonical OCI platform, the names
//! people and toolchains use for it, cross-compiler targets, the qemu that runs it, what its
//! ELF binaries look like and its autoscaling thresholds.
//!
//! The table is data (`profiles.toml`, built in) and users extend or override it with a file
//! in the same format ([`Profiles::load`]). Any alias finds its profile; only canonical
//! platform names come out.
//!
//! ```
//! use pier_arch_profiles::{ElfInfo, Profiles};
//!
//! let profiles = Profiles::builtin();
//! let arm = profiles.lookup("aarch64").unwrap();
//! assert_eq!(arm.platform().to_string(), "linux/arm64/v8");
//! assert_eq!(arm.qemu(), Some("qemu-aarch64"));
//! assert_eq!(arm.scaling().cpu_scale_out, 90);
//!
//! // An x86-64 executable's header: 64-bit, little-endian, e_machine 62.
//! let mut header = [0u8; 64];
//! header[..6].copy_from_slice(b"\x7fELF\x02\x01");
//! header[18] = 62;
//! let elf = ElfInfo::parse(&header).unwrap();
//! assert!(profiles.lookup("c86").unwrap().check_elf(&elf).is_ok());
//! assert_eq!(
//!     arm.check_elf(&elf).unwrap_err().to_string(),
//!     "ELF for x86-64 (EM_X86_64, 64-bit LSB), but linux/arm64/v8 needs aarch64 (EM_AARCH64 183, 64-bit LSB)"
//! );
//! ```
#![deny(missing_docs)]

pub mod elf;
mod table;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::LazyLock;

pub use elf::{ElfClass, ElfError, ElfExpect, ElfInfo, ElfMismatch, Endian, LoongArchAbi};
pub use pier_oci::Platform;

/// The built-in table, in the format user files use.
pub const BUILTIN_TOML: &str = include_str!("../profiles.toml");

/// What errors call the built-in table.
const BUILTIN_NAME: &str = "built-in profiles.toml";

/// Why a profile file was refused. Every variant but `Read` names the file, the line and the
/// key path (`profile[1].scaling.cpu_scale_in`: the second `[[profile]]` of the file).
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML.
    #[error("{file}: line {line}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// The TOML parser's message.
        message: String,
    },
    /// A key the format does not have.
    #[error("{file}: line {line}: unknown key `{field}` (expected one of: {expected})")]
    UnknownKey {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// Key path.
        field: String,
        /// The keys allowed there.
        expected: String,
    },
    /// A value of the wrong type or outside its set.
    #[error("{file}: line {line}: `{field}`: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// Key path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A platform spelled other than canonically.
    #[error("{file}: line {line}: `{field}`: platform {given:?} is not canonical; write {canonical:?}")]
    NonCanonicalPlatform {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// Key path.
        field: String,
        /// As written.
        given: String,
        /// As it must be written.
        canonical: String,
    },
    /// A name (family, alias, uname, Debian name or platform) two profiles claim.
    #[error("{file}: line {line}: `{field}`: {name:?} already names {other}")]
    DuplicateName {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// Key path.
        field: String,
        /// The name.
        name: String,
        /// The other claim: `profile "arm" (built-in profiles.toml, line 48)`.
        other: String,
    },
    /// A scaling threshold that is not a percentage, or a scale-in not below its scale-out.
    #[error("{file}: line {line}: `{field}`: {message}")]
    Threshold {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// Key path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A new profile without a required field.
    #[error("{file}: line {line}: `{field}` is required for the new profile {family:?}")]
    Missing {
        /// The file.
        file: String,
        /// 1-based line (of the profile's `family`).
        line: usize,
        /// Key path of the missing field.
        field: String,
        /// The new profile.
        family: String,
    },
}

/// Autoscaling thresholds, percent of requested CPU and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scaling {
    /// Add replicas above this CPU use.
    pub cpu_scale_out: u8,
    /// Remove replicas below this CPU use.
    pub cpu_scale_in: u8,
    /// Add replicas above this memory use.
    pub mem_scale_out: u8,
    /// Remove replicas below this memory use.
    pub mem_scale_in: u8,
}

/// One CPU family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    family: String,
    name: String,
    platform: Platform,
    aliases: Vec<String>,
    uname: String,
    debian: String,
    rust_targets: Vec<String>,
    go_arch: Option<String>,
    zig_target: Option<String>,
    zig_cpu: Option<String>,
    qemu: Option<String>,
    base_image: String,
    helm_overlay: String,
    elf: ElfExpect,
    scaling: Scaling,
}

impl Profile {
    /// The family id: `x86`, `arm`, `loongarch`, `sw64`, `mips`.
    pub fn family(&self) -> &str {
        &self.family
    }

    /// Display name, e.g. `X86 (incl. Hygon C86)`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The canonical OCI platform; the only spelling pier writes.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// Other names accepted for this family, as listed in the table.
    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }

    /// What `uname -m` prints on it.
    pub fn uname(&self) -> &str {
        &self.uname
    }

    /// The Debian (or Debian-derived ports') architecture name.
    pub fn debian(&self) -> &str {
        &self.debian
    }

    /// Rust target triples; empty where rustc has none (SW64).
    pub fn rust_targets(&self) -> &[String] {
        &self.rust_targets
    }

    /// `GOARCH`, if Go supports the family.
    pub fn go_arch(&self) -> Option<&str> {
        self.go_arch.as_deref()
    }

    /// zig's target triple (for `zig cc -target`), if zig supports the family.
    pub fn zig_target(&self) -> Option<&str> {
        self.zig_target.as_deref()
    }

    /// A CPU to pass zig (`-mcpu=`) instead of its default, when the default does not run
    /// under the emulator (LoongArch: `generic_la64+d`).
    pub fn zig_cpu(&self) -> Option<&str> {
        self.zig_cpu.as_deref()
    }

    /// The qemu-user binary that runs this family's programs; `None` for the build hosts'
    /// own family and for families no emulator exists for (SW64: built, never run).
    pub fn qemu(&self) -> Option<&str> {
        self.qemu.as_deref()
    }

    /// The default base image (`scratch`: static binaries need nothing under them).
    pub fn base_image(&self) -> &str {
        &self.base_image
    }

    /// The app store's Helm values overlay for the family (`values-<family>.yaml`).
    pub fn helm_overlay(&self) -> &str {
        &self.helm_overlay
    }

    /// What its ELF files must be.
    pub fn elf(&self) -> &ElfExpect {
        &self.elf
    }

    /// Its autoscaling thresholds.
    pub fn scaling(&self) -> Scaling {
        self.scaling
    }

    /// Whether an ELF file runs on this family (machine, class, byte order, LoongArch ABI).
    pub fn check_elf(&self, elf: &ElfInfo) -> Result<(), ElfMismatch> {
        self.elf.check(elf, &self.platform)
    }
}

/// The table: profiles in order, and every name they answer to.
#[derive(Debug, Clone)]
pub struct Profiles {
    profiles: Vec<Profile>,
    /// Lowercased family, alias, uname, Debian name and platform → index.
    index: HashMap<String, usize>,
}

static BUILTIN: LazyLock<Profiles> = LazyLock::new(|| {
    // The tests parse the same text, so this cannot fail in a tested build.
    Profiles::from_sources(&[builtin_source()]).unwrap_or_else(|e| panic!("{e}"))
});

fn builtin_source() -> table::Source<'static> {
    table::Source {
        name: BUILTIN_NAME.to_owned(),
        text: BUILTIN_TOML,
        user: false,
    }
}

impl Profiles {
    /// The built-in table.
    pub fn builtin() -> &'static Profiles {
        &BUILTIN
    }

    /// The built-in table with a user file merged over it: a profile of an existing family
    /// replaces the fields it gives, a new family is appended (and must give all required
    /// fields); unknown keys are errors.
    pub fn load(extra: Option<&Path>) -> Result<Profiles, ProfileError> {
        let Some(path) = extra else {
            return Ok(Profiles::builtin().clone());
        };
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            file: file.clone(),
            source,
        })?;
        let user = table::Source {
            name: file,
            text: &text,
            user: true,
        };
        Profiles::from_sources(&[builtin_source(), user])
    }

    fn from_sources(sources: &[table::Source]) -> Result<Profiles, ProfileError> {
        let profiles = table::build(sources)?;
        let mut index = HashMap::new();
        for (i, p) in profiles.iter().enumerate() {
            let names = std::iter::once(&p.family)
                .chain(&p.aliases)
                .chain([&p.uname, &p.debian])
                .cloned()
                .chain([p.platform.to_string()]);
            for name in names {
                index.insert(name.to_ascii_lowercase(), i);
            }
        }
        Ok(Profiles { profiles, index })
    }

    /// The profile for a family id, alias, `uname -m`, Debian name or platform, in any case;
    /// platforms in any spelling `pier_oci::Platform` reads (`linux/aarch64`, `x64`).
    pub fn lookup(&self, name: &str) -> Option<&Profile> {
        let name = name.trim();
        if let Some(&i) = self.index.get(&name.to_ascii_lowercase()) {
            return Some(&self.profiles[i]);
        }
        let platform = Platform::from_str(name).ok()?;
        self.profiles.iter().find(|p| p.platform == platform)
    }

    /// Every profile, in table order (built-in ones first, in the order of the file).
    pub fn all(&self) -> &[Profile] {
        &self.profiles
    }
}

#[cfg(test)]
mod tests;
