//! Platforms (`os/architecture[/variant]`) with pier's canonical spellings.
//!
//! Input accepts the aliases people and toolchains use (`x86_64`, `aarch64`, `loongarch64`,
//! `sw_64`, `mips64el`, …); output is always canonical, because docker and containerd match
//! platforms by exact string (`loong64`, `mips64le`), so a manifest written with an alias is
//! one no client will ever select.

use std::fmt;
use std::str::FromStr;

/// Why a platform string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown platform {0:?} (expected e.g. linux/amd64, linux/arm64/v8, linux/loong64, linux/sw64, linux/mips64le or an alias such as aarch64)"
)]
pub struct PlatformError(pub String);

/// A canonical platform.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// Canonical architecture, e.g. `arm64`.
    pub architecture: String,
    /// Variant, e.g. `v8`, if the architecture has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Alias → (canonical architecture, canonical variant). The left side is matched
/// case-insensitively.
const ARCH_ALIASES: &[(&str, &str, Option<&str>)] = &[
    ("amd64", "amd64", None),
    ("x86_64", "amd64", None),
    ("x86-64", "amd64", None),
    ("x64", "amd64", None),
    ("c86", "amd64", None),
    ("arm64", "arm64", Some("v8")),
    ("aarch64", "arm64", Some("v8")),
    ("armv8", "arm64", Some("v8")),
    ("arm64v8", "arm64", Some("v8")),
    ("loong64", "loong64", None),
    ("loongarch64", "loong64", None),
    ("la64", "loong64", None),
    ("sw64", "sw64", None),
    ("sw_64", "sw64", None),
    ("sunway", "sw64", None),
    ("mips64le", "mips64le", None),
    ("mips64el", "mips64le", None),
];

impl Platform {
    /// The canonical architecture (and variant) for an alias, if known.
    pub fn canonical_arch(alias: &str) -> Option<(&'static str, Option<&'static str>)> {
        ARCH_ALIASES
            .iter()
            .find(|(a, _, _)| a.eq_ignore_ascii_case(alias))
            .map(|&(_, arch, variant)| (arch, variant))
    }

    /// The five platforms pier builds for, canonical.
    pub fn defaults() -> Vec<Platform> {
        [
            "linux/amd64",
            "linux/arm64/v8",
            "linux/loong64",
            "linux/sw64",
            "linux/mips64le",
        ]
        .iter()
        .map(|s| s.parse().expect("built-in platform"))
        .collect()
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    /// `linux/aarch64`, `linux/arm64/v8`, or a bare architecture alias (`loongarch64`,
    /// meaning `linux/loong64`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PlatformError(s.to_owned());
        let parts: Vec<&str> = s.trim().split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [arch] => ("linux", *arch, None),
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] => (*os, *arch, Some(*variant)),
            _ => return Err(err()),
        };
        if os != "linux" {
            return Err(err());
        }
        let (arch, default_variant) = Platform::canonical_arch(arch).ok_or_else(err)?;
        // Only arm64 has a variant here, and only v8 exists for it.
        let variant = match (variant, default_variant) {
            (None, v) => v,
            (Some(v), Some(d)) if v.eq_ignore_ascii_case(d) => Some(d),
            _ => return Err(err()),
        };
        Ok(Platform {
            os: os.to_owned(),
            architecture: arch.to_owned(),
            variant: variant.map(str::to_owned),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_become_canonical() {
        let cases = [
            ("x86_64", "linux/amd64"),
            ("linux/amd64", "linux/amd64"),
            ("c86", "linux/amd64"),
            ("aarch64", "linux/arm64/v8"),
            ("linux/arm64", "linux/arm64/v8"),
            ("linux/arm64/v8", "linux/arm64/v8"),
            ("loongarch64", "linux/loong64"),
            ("linux/loongarch64", "linux/loong64"),
            ("sw_64", "linux/sw64"),
            ("mips64el", "linux/mips64le"),
            ("MIPS64EL", "linux/mips64le"),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<Platform>().unwrap().to_string(), want, "{input}");
        }
    }

    #[test]
    fn rejects_unknown() {
        for bad in [
            "",
            "windows/amd64",
            "linux/riscv64",
            "linux/arm64/v7",
            "linux/amd64/v2",
            "a/b/c/d",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn five_defaults() {
        assert_eq!(Platform::defaults().len(), 5);
    }
}
