//! The pipeline spec, `pier.yaml`: what to build (image, tags, platforms, base, steps, layers,
//! image config, annotations, per-platform overrides), and its per-platform [`Plan`]s.
//!
//! ```yaml
//! image: 127.0.0.1:5000/team/hello     # repository, no tag
//! tags: [latest, "1.0"]                # default: [latest]
//! platforms: [x86_64, aarch64]         # any alias; default: every profile of the table
//! base: scratch                        # or an image reference, or { alias: reference, … }
//! steps:                               # run on the host, once per platform
//!   - run: python3 -m ziglang cc -target {zig_target} -o out/{uname}/hello hello.c
//!     workdir: src                     # optional
//!     env: { CFLAGS: -O2 }             # optional
//! layers:
//!   - name: app                        # optional
//!     files:
//!       - { src: "out/{uname}/hello", dest: /usr/local/bin/hello, mode: "0755", uid: 0, gid: 0 }
//! env: { GREETING: hi }                # image config …
//! entrypoint: [/usr/local/bin/hello]
//! cmd: [--help]
//! workdir: /
//! user: "1000:1000"
//! exposed_ports: ["8080/tcp"]
//! labels: { org.opencontainers.image.title: hello }
//! annotations: { org.opencontainers.image.source: https://example.invalid/hello }  # manifest
//! overrides:                           # per platform alias: replaces base, steps, layers,
//!   aarch64: { cmd: [--arm] }          # lists and scalars; merges env, labels, annotations
//! ```
//!
//! The image config fields (`env`, `entrypoint`, `cmd`, `workdir`, `user`, `exposed_ports`,
//! `labels`) sit at the top level, the same names an override uses.
//!
//! ## Placeholders
//! In step commands, workdirs and env values, layer `src`/`dest`, and the values of `env` and
//! `labels`, `{name}` is replaced per platform ([`PLACEHOLDERS`]); `{{` and `}}` write a
//! literal brace (so a shell `${HOME}` is written `${{HOME}}`), a lone `}` is kept. An unknown
//! name is a parse error; a name without a value for one platform (`{zig_target}` on sw64) is
//! a [`Spec::plan`] error unless that platform overrides the step or layer that uses it.
//!
//! ## Error locations
//! Every error names the file, the line and the field (`layers[0].files[1].mode`).
//! - Errors of the YAML parser and of serde (syntax, unknown key, missing field, wrong type,
//!   bad mode) carry serde-saphyr's line; the field path is recovered from the text at that
//!   line and column by walking up the indentation (`field_path_at`, block style exactly,
//!   flow style down to the enclosing block key).
//! - Errors found after deserialization (unknown platform alias, empty layer, unknown or
//!   unavailable placeholder) use the line of the offending value, captured while parsing
//!   with serde-saphyr's [`Spanned`] wrappers and kept in a path → line table. Spans are
//!   exact (no text search that could find the wrong occurrence) and survive anchors and
//!   aliases. For a block scalar (`run: |`) the line is the scalar's first content line.

use std::collections::BTreeMap;
use std::path::Path;

use pier_arch_profiles::Profiles;
use pier_oci::Platform;
use serde::{Deserialize, Serialize};

use convert::Converter;
use locate::parse_error;
use raw::RawSpec;

mod convert;
mod locate;
mod plan;
mod raw;
#[cfg(test)]
mod tests;

/// Every placeholder name, in the order error messages list them.
pub const PLACEHOLDERS: &[&str] = &[
    "platform",
    "arch",
    "variant",
    "family",
    "uname",
    "debian",
    "goarch",
    "rust_target",
    "zig_target",
    "zig_cpu",
    "qemu",
];

/// Why a spec was refused. Every variant but `Read` names the file; all but `Read` and
/// `UnsupportedPlatform` also name the 1-based line and the field path.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML parser or serde refused the document: syntax, unknown key, missing field,
    /// wrong type, bad mode.
    #[error("{file}: line {line}, column {column}: `{field}`: {message}")]
    Parse {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Field path, e.g. `layers[0].files[1].mode`.
        field: String,
        /// The parser's message.
        message: String,
    },
    /// A platform name no profile answers to.
    #[error("{file}: line {line}: `{field}`: unknown platform {given:?}; known: {known}")]
    UnknownPlatform {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// Field path.
        field: String,
        /// As written.
        given: String,
        /// The known families with their platforms and aliases.
        known: String,
    },
    /// Two names of the same platform in one list or map.
    #[error("{file}: line {line}: `{field}`: {given:?} is {platform}, already given")]
    DuplicatePlatform {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// Field path.
        field: String,
        /// As written.
        given: String,
        /// Its canonical platform.
        platform: String,
    },
    /// A layer without files.
    #[error("{file}: line {line}: `{field}`: a layer needs at least one file")]
    EmptyLayer {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// Field path (`layers[1].files`).
        field: String,
    },
    /// `{name}` where no placeholder has that name, or a `{` never closed.
    #[error("{file}: line {line}: `{field}`: {message}")]
    BadPlaceholder {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// Field path.
        field: String,
        /// What is wrong, with the known placeholders.
        message: String,
    },
    /// A placeholder that has no value for one platform.
    #[error(
        "{file}: line {line}: `{field}`: placeholder {{{name}}} has no value for {platform} \
         (family {family}); override this for that platform under `overrides`"
    )]
    Unavailable {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// Field path.
        field: String,
        /// The placeholder.
        name: &'static str,
        /// The platform being planned (canonical).
        platform: String,
        /// Its family.
        family: String,
    },
    /// A per-platform `base` map without an entry for a built platform.
    #[error("{file}: line {line}: `{field}`: no base image for {platform} (give one in `base` or its override)")]
    MissingBase {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// Field path.
        field: String,
        /// The platform.
        platform: String,
    },
    /// Any other invalid value.
    #[error("{file}: line {line}: `{field}`: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// Field path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// [`Spec::plan`] was given a table without a profile for one of the spec's platforms.
    #[error("{file}: no profile for {platform} in the architecture table given")]
    UnsupportedPlatform {
        /// The file.
        file: String,
        /// The platform.
        platform: String,
    },
}

/// The base image: one for every platform, or one per platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum BaseSpec {
    /// `scratch` or an image reference (pier picks the platform from its index).
    All(String),
    /// Platform → `scratch` or reference; keys written as any alias, stored canonical.
    PerPlatform(BTreeMap<Platform, String>),
}

/// A build step, run on the host once per platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Shell command (`sh -c`).
    pub run: String,
    /// Working directory, relative to the spec's directory.
    pub workdir: Option<String>,
    /// Extra environment, over the platform's `PIER_*` variables.
    pub env: BTreeMap<String, String>,
}

/// One layer of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerSpec {
    /// A name for progress and history (`created_by`).
    pub name: Option<String>,
    /// What goes in it; never empty.
    pub files: Vec<FileSpec>,
}

/// A file or directory put into a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSpec {
    /// Host path, relative to the spec's directory.
    pub src: String,
    /// Absolute path in the image.
    pub dest: String,
    /// Permission bits (at most `0o7777`); `None`: the source's bits.
    pub mode: Option<u32>,
    /// Owner uid in the image (default 0).
    pub uid: u32,
    /// Owner gid in the image (default 0).
    pub gid: u32,
    /// Let an ELF file of another architecture in (deliberate cases); default false.
    pub allow_elf_mismatch: bool,
}

/// Per-platform changes: a given list or scalar replaces the spec's, a given map is merged
/// over it (override wins per key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Override {
    /// Replaces the base image.
    pub base: Option<String>,
    /// Replaces every step.
    pub steps: Option<Vec<Step>>,
    /// Replaces every layer.
    pub layers: Option<Vec<LayerSpec>>,
    /// Merged over the env.
    pub env: BTreeMap<String, String>,
    /// Replaces the entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the cmd.
    pub cmd: Option<Vec<String>>,
    /// Replaces the workdir.
    pub workdir: Option<String>,
    /// Replaces the user.
    pub user: Option<String>,
    /// Merged over the labels.
    pub labels: BTreeMap<String, String>,
    /// Merged over the annotations.
    pub annotations: BTreeMap<String, String>,
    /// Replaces the exposed ports.
    pub exposed_ports: Option<Vec<String>>,
}

/// Layer compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (the default; what every client reads).
    #[default]
    Gzip,
    /// zstd (`application/vnd.oci.image.layer.v1.tar+zstd`).
    Zstd,
}

/// A parsed and checked `pier.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Repository reference without tag: `127.0.0.1:5000/team/hello`.
    pub image: String,
    /// Tags to push (default `[latest]`).
    pub tags: Vec<String>,
    /// Platforms to build, canonical, in the order written (default: every profile, in
    /// table order).
    pub platforms: Vec<Platform>,
    /// Base image; `None`: each profile's default base image.
    pub base: Option<BaseSpec>,
    /// Build steps.
    pub steps: Vec<Step>,
    /// Layers, bottom first.
    pub layers: Vec<LayerSpec>,
    /// Image config `Env`.
    pub env: BTreeMap<String, String>,
    /// Image config `Entrypoint` (`None`: the base's).
    pub entrypoint: Option<Vec<String>>,
    /// Image config `Cmd` (`None`: the base's).
    pub cmd: Option<Vec<String>>,
    /// Image config `WorkingDir`.
    pub workdir: Option<String>,
    /// Image config `User`.
    pub user: Option<String>,
    /// Image config `ExposedPorts`, normalized to `port/proto` (`8080` → `8080/tcp`).
    pub exposed_ports: Vec<String>,
    /// Image config `Labels`.
    pub labels: BTreeMap<String, String>,
    /// OCI manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// Layer compression (default gzip).
    pub compression: Compression,
    /// Per-platform overrides, keyed by canonical platform.
    pub overrides: BTreeMap<Platform, Override>,
    /// Where things were written, for errors of [`Spec::plan`].
    origin: Origin,
}

/// The file name, the line of every located field path, and the override keys as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Origin {
    file: String,
    lines: BTreeMap<String, usize>,
    override_keys: BTreeMap<Platform, String>,
    base_line: usize,
}

impl Origin {
    fn line(&self, path: &str) -> usize {
        self.lines.get(path).copied().unwrap_or(0)
    }
}

/// One platform's build: the spec with that platform's overrides applied and every
/// placeholder expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Canonical platform.
    pub platform: Platform,
    /// Profile family (`x86`, `arm`, `loongarch`, `sw64`, `mips`).
    pub family: String,
    /// Base image: `scratch` or a reference.
    pub base: String,
    /// Steps to run, expanded.
    pub steps: Vec<Step>,
    /// Layers, expanded.
    pub layers: Vec<LayerSpec>,
    /// Image config `Env`, expanded.
    pub env: BTreeMap<String, String>,
    /// Image config `Entrypoint` (`None`: the base's).
    pub entrypoint: Option<Vec<String>>,
    /// Image config `Cmd` (`None`: the base's).
    pub cmd: Option<Vec<String>>,
    /// Image config `WorkingDir`.
    pub workdir: Option<String>,
    /// Image config `User`.
    pub user: Option<String>,
    /// Image config `ExposedPorts` (`port/proto`).
    pub exposed_ports: Vec<String>,
    /// Image config `Labels`, expanded.
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// Layer compression.
    pub compression: Compression,
    /// The profile's variables for the step runner's environment: `PIER_PLATFORM`,
    /// `PIER_ARCH`, `PIER_VARIANT`, `PIER_FAMILY`, `PIER_UNAME`, `PIER_DEBIAN`, `PIER_GOARCH`,
    /// `PIER_RUST_TARGET`, `PIER_ZIG_TARGET`, `PIER_ZIG_CPU`, `PIER_QEMU` (empty when the
    /// profile has no value).
    pub vars: BTreeMap<String, String>,
}

impl Spec {
    /// Read and check a spec file against the built-in architecture table.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        Spec::load_with(path, Profiles::builtin())
    }

    /// Read and check a spec file against a given architecture table (user-extended).
    pub fn load_with(path: &Path, profiles: &Profiles) -> Result<Spec, SpecError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            file: file.clone(),
            source,
        })?;
        Spec::parse_with(&text, &file, profiles)
    }

    /// Parse and check a spec against the built-in architecture table; `file_name` is what
    /// errors call the text.
    pub fn parse(text: &str, file_name: &str) -> Result<Spec, SpecError> {
        Spec::parse_with(text, file_name, Profiles::builtin())
    }

    /// Parse and check a spec against a given architecture table.
    pub fn parse_with(text: &str, file_name: &str, profiles: &Profiles) -> Result<Spec, SpecError> {
        let raw: RawSpec = serde_saphyr::from_str(text).map_err(|e| parse_error(&e, text, file_name))?;
        Converter {
            origin: Origin {
                file: file_name.to_owned(),
                ..Origin::default()
            },
            profiles,
        }
        .spec(raw)
    }

    /// The file name errors use.
    pub fn file_name(&self) -> &str {
        &self.origin.file
    }

    /// One plan per platform, in the order of [`Spec::platforms`], with that platform's
    /// overrides applied and placeholders expanded. `profiles` must know every platform of
    /// the spec (the table it was parsed with, or one extending it).
    pub fn plan(&self, profiles: &Profiles) -> Result<Vec<Plan>, SpecError> {
        self.platforms.iter().map(|p| self.plan_one(p, profiles)).collect()
    }
}
