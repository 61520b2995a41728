//! ELF headers: what a binary is built for, and whether a profile accepts it.
//!
//! Only the file header matters (the first 52 bytes of an ELF32 file, 64 of an ELF64 one):
//! machine, class and byte order say which CPU family can run it, and on LoongArch `e_flags`
//! tells the old-world ABI from the new-world one, which do not run on each other's systems.

use std::fmt;

use pier_oci::Platform;

/// `EM_X86_64`.
pub const EM_X86_64: u16 = 62;
/// `EM_AARCH64`.
pub const EM_AARCH64: u16 = 183;
/// `EM_LOONGARCH`.
pub const EM_LOONGARCH: u16 = 258;
/// `EM_SW64` as Sunway's own toolchains write it.
pub const EM_SW64: u16 = 0x9916;
/// `EM_SW64` as some other toolchains write it; seen in the wild next to 0x9916.
pub const EM_SW64_ALT: u16 = 268;
/// `EM_MIPS`, for every MIPS: class and byte order tell mips64el from the others.
pub const EM_MIPS: u16 = 8;

/// (number, `EM_` constant, human name for 64-bit, human name for 32-bit). The families pier
/// builds for, plus the common ones a wrong binary is most likely to be.
const MACHINES: &[(u16, &str, &str, &str)] = &[
    (3, "EM_386", "x86", "x86"),
    (EM_MIPS, "EM_MIPS", "mips64", "mips"),
    (20, "EM_PPC", "ppc", "ppc"),
    (21, "EM_PPC64", "ppc64", "ppc64"),
    (22, "EM_S390", "s390x", "s390"),
    (40, "EM_ARM", "arm", "arm"),
    (43, "EM_SPARCV9", "sparc64", "sparc64"),
    (EM_X86_64, "EM_X86_64", "x86-64", "x32"),
    (EM_AARCH64, "EM_AARCH64", "aarch64", "aarch64 (ILP32)"),
    (243, "EM_RISCV", "riscv64", "riscv32"),
    (EM_LOONGARCH, "EM_LOONGARCH", "loongarch64", "loongarch32"),
    (EM_SW64_ALT, "EM_SW64", "sw64", "sw64"),
    (EM_SW64, "EM_SW64", "sw64", "sw64"),
];

/// The `EM_` constant's name for a machine number, if known.
pub fn machine_constant(machine: u16) -> Option<&'static str> {
    MACHINES.iter().find(|m| m.0 == machine).map(|m| m.1)
}

/// A human name for a machine number (`x86-64`, `aarch64`, `loongarch64`, `sw64`, `mips64`),
/// if known. MIPS shares one number between 32 and 64 bits, hence the class.
pub fn machine_name(machine: u16, class: ElfClass) -> Option<&'static str> {
    MACHINES.iter().find(|m| m.0 == machine).map(|m| match class {
        ElfClass::Elf64 => m.2,
        ElfClass::Elf32 => m.3,
    })
}

/// `ELFCLASS32` or `ELFCLASS64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElfClass {
    /// 32-bit.
    Elf32,
    /// 64-bit.
    Elf64,
}

impl ElfClass {
    /// 32 or 64.
    pub fn bits(self) -> u8 {
        match self {
            ElfClass::Elf32 => 32,
            ElfClass::Elf64 => 64,
        }
    }
}

impl fmt::Display for ElfClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-bit", self.bits())
    }
}

/// Byte order (`ELFDATA2LSB` or `ELFDATA2MSB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endian {
    /// Little-endian, `LSB`.
    Little,
    /// Big-endian, `MSB`.
    Big,
}

impl fmt::Display for Endian {
    /// `LSB`/`MSB`, as `file(1)` says it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Endian::Little => "LSB",
            Endian::Big => "MSB",
        })
    }
}

/// The LoongArch object ABI, from `e_flags` bits 6–7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoongArchAbi {
    /// ABI v0: the first, vendor-distributed systems (e_flags typically 0x03).
    OldWorld,
    /// ABI v1: upstream toolchains and current distributions (e_flags typically 0x43).
    NewWorld,
}

impl LoongArchAbi {
    /// The object ABI version this stands for in `e_flags` bits 6–7.
    pub fn version(self) -> u32 {
        match self {
            LoongArchAbi::OldWorld => 0,
            LoongArchAbi::NewWorld => 1,
        }
    }

    /// The ABI of a LoongArch object from its `e_flags`; `None` for the reserved versions.
    pub fn from_flags(flags: u32) -> Option<LoongArchAbi> {
        match (flags >> 6) & 0x3 {
            0 => Some(LoongArchAbi::OldWorld),
            1 => Some(LoongArchAbi::NewWorld),
            _ => None,
        }
    }

    /// `old-world` or `new-world`, as written in profiles.
    pub fn as_str(self) -> &'static str {
        match self {
            LoongArchAbi::OldWorld => "old-world",
            LoongArchAbi::NewWorld => "new-world",
        }
    }
}

impl fmt::Display for LoongArchAbi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why bytes are not a readable ELF header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// No `\x7fELF` magic.
    #[error("not an ELF file (no \\x7fELF magic)")]
    NotElf,
    /// Fewer bytes than the header needs.
    #[error("truncated ELF header: {got} bytes, need {need}")]
    Truncated {
        /// Bytes available.
        got: usize,
        /// Bytes the header needs.
        need: usize,
    },
    /// `EI_CLASS` is neither 1 nor 2.
    #[error("ELF header with invalid class {0} (EI_CLASS must be 1 or 2)")]
    BadClass(u8),
    /// `EI_DATA` is neither 1 nor 2.
    #[error("ELF header with invalid byte order {0} (EI_DATA must be 1 or 2)")]
    BadData(u8),
}

/// What an ELF header says about its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ElfInfo {
    /// 32 or 64 bits.
    pub class: ElfClass,
    /// Byte order.
    pub endian: Endian,
    /// `e_machine`.
    pub machine: u16,
    /// `e_flags` (processor-specific; the ABI on LoongArch).
    pub flags: u32,
}

/// Bytes needed to read an ELF header of any class.
pub const HEADER_LEN: usize = 64;

impl ElfInfo {
    /// Whether the bytes start with the ELF magic: cheap enough to ask of every file.
    pub fn is_elf(bytes: &[u8]) -> bool {
        bytes.starts_with(b"\x7fELF")
    }

    /// Reads a file header; `header_bytes` may be the whole file or just its start
    /// ([`HEADER_LEN`] bytes always suffice).
    pub fn parse(header_bytes: &[u8]) -> Result<ElfInfo, ElfError> {
        let b = header_bytes;
        if !Self::is_elf(b) {
            // Four bytes that are a prefix of the magic are a cut-off ELF, not another format.
            return Err(if b"\x7fELF".starts_with(b) && !b.is_empty() {
                ElfError::Truncated { got: b.len(), need: 16 }
            } else {
                ElfError::NotElf
            });
        }
        if b.len() < 16 {
            return Err(ElfError::Truncated { got: b.len(), need: 16 });
        }
        let (class, need, flags_at) = match b[4] {
            1 => (ElfClass::Elf32, 52, 36),
            2 => (ElfClass::Elf64, 64, 48),
            c => return Err(ElfError::BadClass(c)),
        };
        let endian = match b[5] {
            1 => Endian::Little,
            2 => Endian::Big,
            d => return Err(ElfError::BadData(d)),
        };
        if b.len() < need {
            return Err(ElfError::Truncated { got: b.len(), need });
        }
        let machine = [b[18], b[19]];
        let flags = [b[flags_at], b[flags_at + 1], b[flags_at + 2], b[flags_at + 3]];
        let (machine, flags) = match endian {
            Endian::Little => (u16::from_le_bytes(machine), u32::from_le_bytes(flags)),
            Endian::Big => (u16::from_be_bytes(machine), u32::from_be_bytes(flags)),
        };
        Ok(ElfInfo {
            class,
            endian,
            machine,
            flags,
        })
    }

    /// The LoongArch object ABI, for LoongArch files whose version is not reserved.
    pub fn loongarch_abi(&self) -> Option<LoongArchAbi> {
        (self.machine == EM_LOONGARCH)
            .then(|| LoongArchAbi::from_flags(self.flags))
            .flatten()
    }
}

impl fmt::Display for ElfInfo {
    /// `aarch64 (EM_AARCH64, 64-bit LSB)`; unknown machines by number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (machine_name(self.machine, self.class), machine_constant(self.machine)) {
            (Some(name), Some(constant)) => write!(f, "{name} ({constant}, {} {})", self.class, self.endian),
            _ => write!(
                f,
                "machine {} ({} {})",
                machine_number(self.machine),
                self.class,
                self.endian
            ),
        }
    }
}

/// What a profile needs of the ELF files in its images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfExpect {
    /// Accepted `e_machine` values (TOML key `machine`); more than one where toolchains
    /// disagree (SW64).
    pub machines: Vec<u16>,
    /// Required class.
    pub class: ElfClass,
    /// Required byte order.
    pub endian: Endian,
    /// Required LoongArch object ABI, when the family has two.
    pub loongarch_abi: Option<LoongArchAbi>,
}

impl fmt::Display for ElfExpect {
    /// `x86-64 (EM_X86_64 62, 64-bit LSB)`; `sw64 (EM_SW64 0x9916 or 268, 64-bit LSB)`;
    /// unknown machines by number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let numbers = || {
            self.machines
                .iter()
                .map(|m| machine_number(*m))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        let first = self.machines.first().copied().unwrap_or_default();
        match (machine_name(first, self.class), machine_constant(first)) {
            (Some(name), Some(constant)) => {
                write!(f, "{name} ({constant} {}, {} {})", numbers(), self.class, self.endian)
            }
            _ => write!(f, "machine {} ({} {})", numbers(), self.class, self.endian),
        }
    }
}

/// Vendor-chosen numbers outside the registered range (0x9916) read better in hex, as their
/// headers define them; registered ones are decimal, as in elf.h.
fn machine_number(m: u16) -> String {
    if m >= 0x1000 { format!("{m:#x}") } else { m.to_string() }
}

/// An ELF file that a profile's platform cannot run; the message says what the file is and
/// what the platform needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfMismatch {
    /// Wrong machine, class or byte order.
    Format {
        /// The file.
        found: ElfInfo,
        /// The profile's platform.
        platform: Platform,
        /// What the profile accepts.
        expected: ElfExpect,
    },
    /// Right machine, wrong LoongArch object ABI.
    LoongArchAbi {
        /// The file.
        found: ElfInfo,
        /// The profile's platform.
        platform: Platform,
        /// The ABI the profile requires.
        expected: LoongArchAbi,
    },
}

impl fmt::Display for ElfMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfMismatch::Format {
                found,
                platform,
                expected,
            } => write!(f, "ELF for {found}, but {platform} needs {expected}"),
            ElfMismatch::LoongArchAbi {
                found,
                platform,
                expected,
            } => {
                let what = match LoongArchAbi::from_flags(found.flags) {
                    Some(abi) => format!("{abi} ABI"),
                    None => format!("object ABI v{}", (found.flags >> 6) & 0x3),
                };
                // The flags the same file would carry under the expected ABI: same
                // floating-point ABI (bits 0-2), the expected object ABI version (bits 6-7).
                let want = (found.flags & !0xc0) | (expected.version() << 6);
                write!(
                    f,
                    "LoongArch {what} (e_flags {:#x}), but {platform} expects {expected} (e_flags {want:#x})",
                    found.flags
                )
            }
        }
    }
}

impl std::error::Error for ElfMismatch {}

impl ElfExpect {
    /// Whether an ELF file fits; `platform` only names it in the error.
    pub fn check(&self, found: &ElfInfo, platform: &Platform) -> Result<(), ElfMismatch> {
        if !self.machines.contains(&found.machine) || found.class != self.class || found.endian != self.endian {
            return Err(ElfMismatch::Format {
                found: *found,
                platform: platform.clone(),
                expected: self.clone(),
            });
        }
        match self.loongarch_abi {
            Some(expected) if found.machine == EM_LOONGARCH && found.loongarch_abi() != Some(expected) => {
                Err(ElfMismatch::LoongArchAbi {
                    found: *found,
                    platform: platform.clone(),
                    expected,
                })
            }
            _ => Ok(()),
        }
    }
}
