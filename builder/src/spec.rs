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
use std::fmt;
use std::path::Path;

use pier_arch_profiles::{Profile, Profiles};
use pier_oci::Platform;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

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

// ---------------------------------------------------------------------------------------
// Raw, located form: what serde reads.

type S = Spanned<String>;

fn line_of<T>(s: &Spanned<T>) -> usize {
    usize::try_from(s.referenced.line()).unwrap_or(usize::MAX)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    image: S,
    tags: Option<Vec<S>>,
    platforms: Option<Spanned<Vec<S>>>,
    base: Option<Spanned<RawBase>>,
    #[serde(default)]
    steps: Vec<RawStep>,
    #[serde(default)]
    layers: Vec<RawLayer>,
    #[serde(default)]
    env: BTreeMap<String, S>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    workdir: Option<String>,
    user: Option<String>,
    #[serde(default)]
    exposed_ports: Vec<S>,
    #[serde(default)]
    labels: BTreeMap<String, S>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    compression: Compression,
    #[serde(default)]
    overrides: Keyed<RawOverride>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    run: S,
    workdir: Option<S>,
    #[serde(default)]
    env: BTreeMap<String, S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayer {
    name: Option<String>,
    files: Spanned<Vec<RawFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    src: S,
    dest: S,
    mode: Option<Mode>,
    #[serde(default)]
    uid: u32,
    #[serde(default)]
    gid: u32,
    #[serde(default)]
    allow_elf_mismatch: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    base: Option<String>,
    steps: Option<Vec<RawStep>>,
    layers: Option<Vec<RawLayer>>,
    #[serde(default)]
    env: BTreeMap<String, S>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    workdir: Option<String>,
    user: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, S>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    exposed_ports: Option<Vec<S>>,
}

/// `base`: a string, or a map of platform names (located) to references.
enum RawBase {
    All(String),
    PerPlatform(Vec<(S, String)>),
}

impl<'de> Deserialize<'de> for RawBase {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawBase;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an image reference (or `scratch`), or a map of platform → image reference")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawBase, E> {
                Ok(RawBase::All(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawBase, A::Error> {
                Ok(RawBase::PerPlatform(keyed_entries(map)?))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A map whose keys keep their location, in document order.
struct Keyed<V>(Vec<(S, V)>);

impl<V> Default for Keyed<V> {
    fn default() -> Self {
        Keyed(Vec::new())
    }
}

fn keyed_entries<'de, A: MapAccess<'de>, V: Deserialize<'de>>(mut map: A) -> Result<Vec<(S, V)>, A::Error> {
    let mut out = Vec::new();
    while let Some(key) = map.next_key::<S>()? {
        out.push((key, map.next_value()?));
    }
    Ok(out)
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Keyed<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Vis<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Vis<V> {
            type Value = Keyed<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of platform → override")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Keyed<V>, A::Error> {
                Ok(Keyed(keyed_entries(map)?))
            }
        }
        deserializer.deserialize_map(Vis(std::marker::PhantomData))
    }
}

/// Permission bits, always octal: `"0755"`, `"755"`, `"0o755"`, or the same digits unquoted.
struct Mode(u32);

fn parse_mode(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let digits = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")).unwrap_or(t);
    let bad = || format!("bad mode {text:?} for `mode`: expected octal permission bits like \"0755\" (at most 7777)");
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(bad());
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|_| bad())?;
    if mode > 0o7777 {
        return Err(bad());
    }
    Ok(mode)
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Mode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("octal permission bits like \"0755\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Mode, E> {
                parse_mode(v).map(Mode).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Mode, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Mode, E> {
                self.visit_str(&v.to_string())
            }
        }
        // As a string, so an unquoted `0755` arrives as written (not as the integer 755).
        deserializer.deserialize_str(V)
    }
}

// ---------------------------------------------------------------------------------------
// Parsing.

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

    fn plan_one(&self, platform: &Platform, profiles: &Profiles) -> Result<Plan, SpecError> {
        let origin = &self.origin;
        let profile = profiles
            .lookup(&platform.to_string())
            .filter(|p| p.platform() == platform)
            .ok_or_else(|| SpecError::UnsupportedPlatform {
                file: origin.file.clone(),
                platform: platform.to_string(),
            })?;
        let none = Override::default();
        let ov = self.overrides.get(platform).unwrap_or(&none);
        let ov_prefix = origin
            .override_keys
            .get(platform)
            .map(|k| format!("overrides.{k}"))
            .unwrap_or_default();
        let x = Expander::new(profile, origin);

        let base = match (&ov.base, &self.base) {
            (Some(b), _) => b.clone(),
            (None, None) => profile.base_image().to_owned(),
            (None, Some(BaseSpec::All(b))) => b.clone(),
            (None, Some(BaseSpec::PerPlatform(m))) => {
                m.get(platform).cloned().ok_or_else(|| SpecError::MissingBase {
                    file: origin.file.clone(),
                    line: origin.base_line,
                    field: "base".into(),
                    platform: platform.to_string(),
                })?
            }
        };

        let (steps, steps_prefix) = match &ov.steps {
            Some(s) => (s, format!("{ov_prefix}.steps")),
            None => (&self.steps, "steps".to_owned()),
        };
        let steps = steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let p = format!("{steps_prefix}[{i}]");
                Ok(Step {
                    run: x.expand(&s.run, &format!("{p}.run"))?,
                    workdir: s
                        .workdir
                        .as_ref()
                        .map(|w| x.expand(w, &format!("{p}.workdir")))
                        .transpose()?,
                    env: x.expand_map(&s.env, &format!("{p}.env"))?,
                })
            })
            .collect::<Result<_, SpecError>>()?;

        let (layers, layers_prefix) = match &ov.layers {
            Some(l) => (l, format!("{ov_prefix}.layers")),
            None => (&self.layers, "layers".to_owned()),
        };
        let layers = layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let files = l
                    .files
                    .iter()
                    .enumerate()
                    .map(|(j, f)| {
                        let p = format!("{layers_prefix}[{i}].files[{j}]");
                        Ok(FileSpec {
                            src: x.expand(&f.src, &format!("{p}.src"))?,
                            dest: x.expand(&f.dest, &format!("{p}.dest"))?,
                            ..f.clone()
                        })
                    })
                    .collect::<Result<_, SpecError>>()?;
                Ok(LayerSpec {
                    name: l.name.clone(),
                    files,
                })
            })
            .collect::<Result<_, SpecError>>()?;

        // Maps merge: expand the spec's entries not overridden, then the override's.
        let merge = |base: &BTreeMap<String, String>, over: &BTreeMap<String, String>, field: &str| {
            let mut out = BTreeMap::new();
            for (k, v) in base.iter().filter(|(k, _)| !over.contains_key(*k)) {
                out.insert(k.clone(), x.expand(v, &format!("{field}.{k}"))?);
            }
            for (k, v) in over {
                out.insert(k.clone(), x.expand(v, &format!("{ov_prefix}.{field}.{k}"))?);
            }
            Ok::<_, SpecError>(out)
        };
        let env = merge(&self.env, &ov.env, "env")?;
        let labels = merge(&self.labels, &ov.labels, "labels")?;
        let mut annotations = self.annotations.clone();
        annotations.extend(ov.annotations.clone());

        Ok(Plan {
            platform: platform.clone(),
            family: profile.family().to_owned(),
            base,
            steps,
            layers,
            env,
            entrypoint: ov.entrypoint.clone().or_else(|| self.entrypoint.clone()),
            cmd: ov.cmd.clone().or_else(|| self.cmd.clone()),
            workdir: ov.workdir.clone().or_else(|| self.workdir.clone()),
            user: ov.user.clone().or_else(|| self.user.clone()),
            exposed_ports: ov.exposed_ports.clone().unwrap_or_else(|| self.exposed_ports.clone()),
            labels,
            annotations,
            compression: self.compression,
            vars: x.vars(),
        })
    }
}

/// Turns a serde-saphyr error into [`SpecError::Parse`] with the field path at its location.
fn parse_error(e: &serde_saphyr::Error, text: &str, file: &str) -> SpecError {
    let (line, column) = e
        .location()
        .map(|l| {
            (
                usize::try_from(l.line()).unwrap_or(0),
                usize::try_from(l.column()).unwrap_or(0),
            )
        })
        .unwrap_or((0, 0));
    let mut message = e.without_snippet().to_string();
    let suffix = format!(" at line {line}, column {column}");
    if let Some(m) = message.strip_suffix(&suffix) {
        message = m.to_owned();
    }
    let mut path = field_path_at(text, line, column);
    let named = |prefix: &str| {
        let rest = message.split_once(prefix)?.1;
        Some(rest.split('`').next()?.to_owned())
    };
    if let Some(name) = named("unknown field `") {
        if path.last() != Some(&Seg::Key(name.clone())) {
            path.push(Seg::Key(name));
        }
    } else if let Some(name) = named("missing field `") {
        // serde reports a missing field at the start of its mapping: the first key there.
        if matches!(path.last(), Some(Seg::Key(_))) {
            path.pop();
        }
        path.push(Seg::Key(name));
    }
    SpecError::Parse {
        file: file.to_owned(),
        line,
        column,
        field: format_path(&path),
        message,
    }
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn format_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() {
        out.push_str("(document)");
    }
    out
}

/// The block-structure entries that open a line: `- ` markers (`None`) and a mapping key
/// (`Some`), each with its 0-based character column.
fn line_entries(line: &str) -> Vec<(usize, Option<String>)> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && chars[i] == ' ' {
            i += 1;
        }
        if i >= chars.len() || chars[i] == '#' {
            break;
        }
        if chars[i] == '-' && chars.get(i + 1).is_none_or(|c| *c == ' ') {
            out.push((i, None));
            i += 1;
            continue;
        }
        if let Some(key) = mapping_key(&chars[i..]) {
            out.push((i, Some(key)));
        }
        break;
    }
    out
}

/// The key of `key: value` / `"key": value` at the start of `s`, if it is one.
fn mapping_key(s: &[char]) -> Option<String> {
    let is_end = |j: usize| s.get(j).is_none_or(|c| *c == ' ' || *c == '\t');
    match s.first()? {
        q @ ('"' | '\'') => {
            let close = s[1..].iter().position(|c| c == q)? + 1;
            (s.get(close + 1) == Some(&':') && is_end(close + 2)).then(|| s[1..close].iter().collect())
        }
        '[' | '{' | '|' | '>' | '&' | '*' | '!' | '%' | '@' | '`' => None,
        _ => {
            for j in 0..s.len() {
                if s[j] == '#' && j > 0 && s[j - 1] == ' ' {
                    return None;
                }
                if s[j] == ':' && is_end(j + 1) {
                    return Some(s[..j].iter().collect::<String>().trim_end().to_owned());
                }
            }
            None
        }
    }
}

/// The field path of the node at a 1-based line and column, recovered from the text: the
/// entries of that line up to the column, then, going up, each enclosing line (the nearest
/// one above that starts left of the current outermost entry, or at the same column with a
/// key when the current one is a `- ` item), with sequence indices counted from the sibling
/// `- ` markers passed on the way. Exact for block style; inside flow collections it stops
/// at the enclosing block key. Best effort, for error messages only.
fn field_path_at(text: &str, line: usize, column: usize) -> Vec<Seg> {
    let lines: Vec<&str> = text.lines().collect();
    if line == 0 || line > lines.len() {
        return Vec::new();
    }
    let pos = column.saturating_sub(1);
    let mut row = line - 1;
    let mut group: Vec<(usize, Option<String>)> = line_entries(lines[row])
        .into_iter()
        .filter(|(c, _)| *c <= pos)
        .collect();
    if group.is_empty() {
        // A continuation line: its parent is the nearest line above starting left of it.
        let indent = lines[row].chars().take_while(|c| *c == ' ').count();
        group.push((indent, Some(String::new())));
    }
    let mut rev: Vec<Seg> = Vec::new();
    loop {
        let (c0, first) = group[0].clone();
        // Walk up to the parent, counting sibling `- ` markers at c0.
        let mut siblings = 0;
        let mut parent = None;
        let mut r = row;
        while r > 0 {
            r -= 1;
            let entries = line_entries(lines[r]);
            let Some((c, kind)) = entries.first() else { continue };
            if *c < c0 || (*c == c0 && first.is_none() && kind.is_some()) {
                parent = Some((r, entries));
                break;
            }
            if *c == c0 && kind.is_none() && first.is_none() {
                siblings += 1;
            }
        }
        for (i, (_, kind)) in group.iter().enumerate().rev() {
            match kind {
                Some(k) if k.is_empty() => {}
                Some(k) => rev.push(Seg::Key(k.clone())),
                None => rev.push(Seg::Index(if i == 0 { siblings } else { 0 })),
            }
        }
        let Some((r, entries)) = parent else { break };
        row = r;
        group = entries
            .into_iter()
            .filter(|(c, k)| *c < c0 || (*c == c0 && k.is_some() && first.is_none()))
            .collect();
    }
    rev.reverse();
    rev
}

/// Checks raw values, records their lines, and builds the public [`Spec`].
struct Converter<'a> {
    origin: Origin,
    profiles: &'a Profiles,
}

impl Converter<'_> {
    fn invalid(&self, line: usize, field: &str, message: impl Into<String>) -> SpecError {
        SpecError::Invalid {
            file: self.origin.file.clone(),
            line,
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// Records the line of `s` under `path` and returns its value.
    fn take(&mut self, s: S, path: String) -> String {
        self.origin.lines.insert(path, line_of(&s));
        s.value
    }

    /// Like [`Converter::take`], for a string placeholders are expanded in: also checks that
    /// every placeholder exists.
    fn take_expandable(&mut self, s: S, path: String) -> Result<String, SpecError> {
        let line = line_of(&s);
        scan_placeholders(&s.value, |_| Ok(None::<String>)).map_err(|message| SpecError::BadPlaceholder {
            file: self.origin.file.clone(),
            line,
            field: path.clone(),
            message,
        })?;
        Ok(self.take(s, path))
    }

    fn take_map(&mut self, map: BTreeMap<String, S>, prefix: &str) -> Result<BTreeMap<String, String>, SpecError> {
        map.into_iter()
            .map(|(k, v)| {
                let value = self.take_expandable(v, format!("{prefix}.{k}"))?;
                Ok((k, value))
            })
            .collect()
    }

    fn platform(&self, name: &S, field: &str) -> Result<Platform, SpecError> {
        match self.profiles.lookup(&name.value) {
            Some(p) => Ok(p.platform().clone()),
            None => Err(SpecError::UnknownPlatform {
                file: self.origin.file.clone(),
                line: line_of(name),
                field: field.to_owned(),
                given: name.value.clone(),
                known: known_platforms(self.profiles),
            }),
        }
    }

    fn steps(&mut self, raw: Vec<RawStep>, prefix: &str) -> Result<Vec<Step>, SpecError> {
        raw.into_iter()
            .enumerate()
            .map(|(i, s)| {
                let p = format!("{prefix}[{i}]");
                if s.run.value.trim().is_empty() {
                    return Err(self.invalid(line_of(&s.run), &format!("{p}.run"), "empty command"));
                }
                Ok(Step {
                    run: self.take_expandable(s.run, format!("{p}.run"))?,
                    workdir: s
                        .workdir
                        .map(|w| self.take_expandable(w, format!("{p}.workdir")))
                        .transpose()?,
                    env: self.take_map(s.env, &format!("{p}.env"))?,
                })
            })
            .collect()
    }

    fn layers(&mut self, raw: Vec<RawLayer>, prefix: &str) -> Result<Vec<LayerSpec>, SpecError> {
        raw.into_iter()
            .enumerate()
            .map(|(i, l)| {
                let p = format!("{prefix}[{i}]");
                if l.files.value.is_empty() {
                    return Err(SpecError::EmptyLayer {
                        file: self.origin.file.clone(),
                        line: line_of(&l.files),
                        field: format!("{p}.files"),
                    });
                }
                let files = l
                    .files
                    .value
                    .into_iter()
                    .enumerate()
                    .map(|(j, f)| {
                        let fp = format!("{p}.files[{j}]");
                        for (s, name) in [(&f.src, "src"), (&f.dest, "dest")] {
                            if s.value.trim().is_empty() {
                                return Err(self.invalid(line_of(s), &format!("{fp}.{name}"), "empty path"));
                            }
                        }
                        if !f.dest.value.starts_with('/') && !f.dest.value.starts_with('{') {
                            return Err(self.invalid(
                                line_of(&f.dest),
                                &format!("{fp}.dest"),
                                format!("{:?} is not an absolute path in the image", f.dest.value),
                            ));
                        }
                        Ok(FileSpec {
                            src: self.take_expandable(f.src, format!("{fp}.src"))?,
                            dest: self.take_expandable(f.dest, format!("{fp}.dest"))?,
                            mode: f.mode.map(|m| m.0),
                            uid: f.uid,
                            gid: f.gid,
                            allow_elf_mismatch: f.allow_elf_mismatch,
                        })
                    })
                    .collect::<Result<_, SpecError>>()?;
                Ok(LayerSpec { name: l.name, files })
            })
            .collect()
    }

    fn ports(&self, raw: Vec<S>, prefix: &str) -> Result<Vec<String>, SpecError> {
        raw.into_iter()
            .enumerate()
            .map(|(i, s)| {
                let (port, proto) = s.value.split_once('/').unwrap_or((&s.value, "tcp"));
                let ok = port.parse::<u16>().is_ok_and(|p| p > 0) && matches!(proto, "tcp" | "udp" | "sctp");
                if !ok {
                    return Err(self.invalid(
                        line_of(&s),
                        &format!("{prefix}[{i}]"),
                        format!("bad port {:?}: expected PORT or PORT/tcp|udp|sctp", s.value),
                    ));
                }
                Ok(format!("{port}/{proto}"))
            })
            .collect()
    }

    fn spec(mut self, raw: RawSpec) -> Result<Spec, SpecError> {
        let image_line = line_of(&raw.image);
        let image = self.take(raw.image, "image".into());
        check_repository(&image).map_err(|m| self.invalid(image_line, "image", m))?;

        let tags = match raw.tags {
            None => vec!["latest".to_owned()],
            Some(tags) => {
                let mut out: Vec<String> = Vec::new();
                for (i, t) in tags.into_iter().enumerate() {
                    let field = format!("tags[{i}]");
                    check_tag(&t.value).map_err(|m| self.invalid(line_of(&t), &field, m))?;
                    if out.contains(&t.value) {
                        return Err(self.invalid(line_of(&t), &field, format!("tag {:?} given twice", t.value)));
                    }
                    out.push(self.take(t, field));
                }
                out
            }
        };

        let platforms = match raw.platforms {
            None => self.profiles.all().iter().map(|p| p.platform().clone()).collect(),
            Some(list) => {
                if list.value.is_empty() {
                    return Err(self.invalid(line_of(&list), "platforms", "no platforms given"));
                }
                let mut out: Vec<Platform> = Vec::new();
                for (i, name) in list.value.into_iter().enumerate() {
                    let field = format!("platforms[{i}]");
                    let platform = self.platform(&name, &field)?;
                    if out.contains(&platform) {
                        return Err(SpecError::DuplicatePlatform {
                            file: self.origin.file.clone(),
                            line: line_of(&name),
                            field,
                            given: name.value,
                            platform: platform.to_string(),
                        });
                    }
                    self.take(name, field);
                    out.push(platform);
                }
                out
            }
        };

        let base = match raw.base {
            None => None,
            Some(b) => {
                self.origin.base_line = line_of(&b);
                match b.value {
                    RawBase::All(r) => {
                        check_base(&r).map_err(|m| self.invalid(self.origin.base_line, "base", m))?;
                        Some(BaseSpec::All(r))
                    }
                    RawBase::PerPlatform(entries) => {
                        let mut map = BTreeMap::new();
                        for (key, r) in entries {
                            let field = format!("base.{}", key.value);
                            let platform = self.platform(&key, &field)?;
                            check_base(&r).map_err(|m| self.invalid(line_of(&key), &field, m))?;
                            if map.insert(platform.clone(), r).is_some() {
                                return Err(SpecError::DuplicatePlatform {
                                    file: self.origin.file.clone(),
                                    line: line_of(&key),
                                    field,
                                    given: key.value,
                                    platform: platform.to_string(),
                                });
                            }
                            self.take(key, field);
                        }
                        Some(BaseSpec::PerPlatform(map))
                    }
                }
            }
        };

        let steps = self.steps(raw.steps, "steps")?;
        let layers = self.layers(raw.layers, "layers")?;
        let env = self.take_map(raw.env, "env")?;
        let labels = self.take_map(raw.labels, "labels")?;
        let exposed_ports = self.ports(raw.exposed_ports, "exposed_ports")?;

        let mut overrides = BTreeMap::new();
        for (key, o) in raw.overrides.0 {
            let prefix = format!("overrides.{}", key.value);
            let platform = self.platform(&key, &prefix)?;
            if overrides.contains_key(&platform) {
                return Err(SpecError::DuplicatePlatform {
                    file: self.origin.file.clone(),
                    line: line_of(&key),
                    field: prefix,
                    given: key.value,
                    platform: platform.to_string(),
                });
            }
            if let Some(b) = &o.base {
                check_base(b).map_err(|m| self.invalid(line_of(&key), &format!("{prefix}.base"), m))?;
            }
            let ov = Override {
                base: o.base,
                steps: o.steps.map(|s| self.steps(s, &format!("{prefix}.steps"))).transpose()?,
                layers: o
                    .layers
                    .map(|l| self.layers(l, &format!("{prefix}.layers")))
                    .transpose()?,
                env: self.take_map(o.env, &format!("{prefix}.env"))?,
                entrypoint: o.entrypoint,
                cmd: o.cmd,
                workdir: o.workdir,
                user: o.user,
                labels: self.take_map(o.labels, &format!("{prefix}.labels"))?,
                annotations: o.annotations,
                exposed_ports: o
                    .exposed_ports
                    .map(|p| self.ports(p, &format!("{prefix}.exposed_ports")))
                    .transpose()?,
            };
            self.origin.override_keys.insert(platform.clone(), key.value.clone());
            self.take(key, prefix);
            overrides.insert(platform, ov);
        }

        Ok(Spec {
            image,
            tags,
            platforms,
            base,
            steps,
            layers,
            env,
            entrypoint: raw.entrypoint,
            cmd: raw.cmd,
            workdir: raw.workdir,
            user: raw.user,
            exposed_ports,
            labels,
            annotations: raw.annotations,
            compression: raw.compression,
            overrides,
            origin: self.origin,
        })
    }
}

/// `family (platform: aliases…)` for every profile, for unknown-platform messages.
fn known_platforms(profiles: &Profiles) -> String {
    profiles
        .all()
        .iter()
        .map(|p| format!("{} ({}: {})", p.family(), p.platform(), p.aliases().join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A repository reference without tag or digest: `[host[:port]/]path`, lowercase path
/// components of `[a-z0-9._-]`.
fn check_repository(image: &str) -> Result<(), String> {
    if image.is_empty() {
        return Err("empty image name".into());
    }
    if image.contains('@') {
        return Err(format!("{image:?}: no digest here; `image` is a repository"));
    }
    let mut parts: Vec<&str> = image.split('/').collect();
    let has_host = parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost");
    if has_host {
        parts.remove(0);
    }
    for part in parts {
        if part.contains(':') {
            return Err(format!(
                "{image:?} has a tag: give the repository here and tags in `tags`"
            ));
        }
        let ok = !part.is_empty()
            && part
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
            && part.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
        if !ok {
            return Err(format!(
                "{image:?}: repository path components are lowercase letters, digits and . _ -"
            ));
        }
    }
    Ok(())
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !tag.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bad tag {tag:?}: up to 128 of A-Z a-z 0-9 _ . -, not starting with . or -"
        ))
    }
}

fn check_base(reference: &str) -> Result<(), String> {
    if reference.trim().is_empty() || reference.contains(char::is_whitespace) {
        Err(format!("bad base image {reference:?}: `scratch` or an image reference"))
    } else {
        Ok(())
    }
}

/// Walks `text`, calling `value(name)` for each `{name}`; returns the expanded text, or why
/// not. `value` returns `Ok(None)` to keep going without output (checking only) and `Err`
/// to stop.
fn scan_placeholders<F>(text: &str, mut value: F) -> Result<String, String>
where
    F: FnMut(&str) -> Result<Option<String>, String>,
{
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
        } else if let Some(after) = tail.strip_prefix('}') {
            out.push('}');
            rest = after;
        } else {
            let Some(end) = tail.find('}') else {
                return Err(format!(
                    "`{{` never closed in {text:?} (write `{{{{` for a literal brace)"
                ));
            };
            let name = &tail[1..end];
            if !PLACEHOLDERS.contains(&name) {
                return Err(format!(
                    "unknown placeholder {{{name}}}; known: {} (write `{{{{` and `}}}}` for literal braces)",
                    PLACEHOLDERS
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if let Some(v) = value(name)? {
                out.push_str(&v);
            }
            rest = &tail[end + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands placeholders for one profile.
struct Expander<'a> {
    profile: &'a Profile,
    origin: &'a Origin,
    values: BTreeMap<&'static str, Option<String>>,
}

impl<'a> Expander<'a> {
    fn new(profile: &'a Profile, origin: &'a Origin) -> Self {
        let p = profile.platform();
        let rust_target = profile
            .rust_targets()
            .iter()
            .find(|t| t.contains("musl"))
            .or_else(|| profile.rust_targets().first())
            .cloned();
        let values = BTreeMap::from([
            ("platform", Some(p.to_string())),
            ("arch", Some(p.architecture.clone())),
            ("variant", Some(p.variant.clone().unwrap_or_default())),
            ("family", Some(profile.family().to_owned())),
            ("uname", Some(profile.uname().to_owned())),
            ("debian", Some(profile.debian().to_owned())),
            ("goarch", profile.go_arch().map(str::to_owned)),
            ("rust_target", rust_target),
            ("zig_target", profile.zig_target().map(str::to_owned)),
            ("zig_cpu", Some(profile.zig_cpu().unwrap_or_default().to_owned())),
            ("qemu", Some(profile.qemu().unwrap_or_default().to_owned())),
        ]);
        Expander {
            profile,
            origin,
            values,
        }
    }

    fn expand(&self, text: &str, path: &str) -> Result<String, SpecError> {
        let mut missing = None;
        let out = scan_placeholders(text, |name| match self.values.get(name) {
            Some(Some(v)) => Ok(Some(v.clone())),
            _ => {
                missing = PLACEHOLDERS.iter().find(|p| **p == name).copied();
                Err(String::new())
            }
        });
        out.map_err(|message| match missing {
            Some(name) => SpecError::Unavailable {
                file: self.origin.file.clone(),
                line: self.origin.line(path),
                field: path.to_owned(),
                name,
                platform: self.profile.platform().to_string(),
                family: self.profile.family().to_owned(),
            },
            None => SpecError::BadPlaceholder {
                file: self.origin.file.clone(),
                line: self.origin.line(path),
                field: path.to_owned(),
                message,
            },
        })
    }

    fn expand_map(&self, map: &BTreeMap<String, String>, prefix: &str) -> Result<BTreeMap<String, String>, SpecError> {
        map.iter()
            .map(|(k, v)| Ok((k.clone(), self.expand(v, &format!("{prefix}.{k}"))?)))
            .collect()
    }

    fn vars(&self) -> BTreeMap<String, String> {
        [
            ("PIER_PLATFORM", "platform"),
            ("PIER_ARCH", "arch"),
            ("PIER_VARIANT", "variant"),
            ("PIER_FAMILY", "family"),
            ("PIER_UNAME", "uname"),
            ("PIER_DEBIAN", "debian"),
            ("PIER_GOARCH", "goarch"),
            ("PIER_RUST_TARGET", "rust_target"),
            ("PIER_ZIG_TARGET", "zig_target"),
            ("PIER_ZIG_CPU", "zig_cpu"),
            ("PIER_QEMU", "qemu"),
        ]
        .into_iter()
        .map(|(var, name)| {
            let value = self.values.get(name).cloned().flatten().unwrap_or_default();
            (var.to_owned(), value)
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The complete example: five platforms by alias, a zig cross-compile step, a LoongArch
    /// override adding `-mcpu={zig_cpu}`, an SW64 override replacing the step and the layer.
    const EXAMPLE: &str = r#"# pier.yaml: hello, for the whole fleet
image: 127.0.0.1:5000/team/hello
tags: [latest, "1.0"]
platforms:
  - x86_64
  - aarch64
  - loongarch64
  - sw_64
  - mips64el
base: scratch
steps:
  - run: python3 -m ziglang cc -target {zig_target} -mcpu=baseline -static -O2 -o out/{uname}/hello hello.c
    env:
      ZIG_GLOBAL_CACHE_DIR: .zig-cache/{family}
layers:
  - name: hello
    files:
      - src: out/{uname}/hello
        dest: /usr/local/bin/hello
        mode: "0755"
env:
  GREETING: hello from {uname}
entrypoint: [/usr/local/bin/hello]
exposed_ports: ["8080", 53/udp]
labels:
  org.opencontainers.image.title: hello
  io.pier.platform: "{platform}"
annotations:
  org.opencontainers.image.source: https://example.invalid/hello
overrides:
  loongarch64:
    steps:
      - run: python3 -m ziglang cc -target {zig_target} -mcpu={zig_cpu} -static -O2 -o out/{uname}/hello hello.c
  sw_64:
    steps:
      - run: ./tools/sw64-payload out/{uname}/hello
        workdir: .
    layers:
      - name: hello (script payload)
        files:
          - src: out/{uname}/hello
            dest: /usr/local/bin/hello
            mode: 0755
            allow_elf_mismatch: true
    labels:
      io.pier.note: built, never run
    annotations:
      io.pier.sw64: payload
"#;

    fn plans(text: &str) -> Vec<Plan> {
        Spec::parse(text, "pier.yaml")
            .unwrap()
            .plan(Profiles::builtin())
            .unwrap()
    }

    fn err(text: &str) -> String {
        match Spec::parse(text, "pier.yaml") {
            Ok(spec) => spec.plan(Profiles::builtin()).map(|_| ()).unwrap_err().to_string(),
            Err(e) => e.to_string(),
        }
    }

    /// The error names the file, the line and the field, and says what `what` says.
    #[track_caller]
    fn assert_err(text: &str, line: usize, field: &str, what: &str) {
        let e = err(text);
        assert!(e.starts_with("pier.yaml: "), "{e}");
        assert!(
            e.contains(&format!("line {line}:")) || e.contains(&format!("line {line},")),
            "want line {line}: {e}"
        );
        assert!(e.contains(&format!("`{field}`")), "want field `{field}`: {e}");
        assert!(e.contains(what), "want {what:?}: {e}");
    }

    #[test]
    fn spec_example_plans_every_platform_in_order() {
        let spec = Spec::parse(EXAMPLE, "pier.yaml").unwrap();
        assert_eq!(spec.image, "127.0.0.1:5000/team/hello");
        assert_eq!(spec.tags, ["latest", "1.0"]);
        let canonical: Vec<String> = spec.platforms.iter().map(ToString::to_string).collect();
        assert_eq!(
            canonical,
            [
                "linux/amd64",
                "linux/arm64/v8",
                "linux/loong64",
                "linux/sw64",
                "linux/mips64le"
            ]
        );
        assert_eq!(spec.exposed_ports, ["8080/tcp", "53/udp"]);
        assert_eq!(spec.layers[0].files[0].mode, Some(0o755));

        let plans = spec.plan(Profiles::builtin()).unwrap();
        assert_eq!(plans.len(), 5);
        let families: Vec<&str> = plans.iter().map(|p| p.family.as_str()).collect();
        assert_eq!(families, ["x86", "arm", "loongarch", "sw64", "mips"]);
        for (plan, platform) in plans.iter().zip(&spec.platforms) {
            assert_eq!(&plan.platform, platform);
            assert_eq!(plan.base, "scratch");
            assert_eq!(
                plan.entrypoint.as_deref(),
                Some(&["/usr/local/bin/hello".to_owned()][..])
            );
            assert_eq!(plan.cmd, None);
            assert_eq!(plan.exposed_ports, ["8080/tcp", "53/udp"]);
            assert_eq!(plan.labels["io.pier.platform"], platform.to_string());
            assert_eq!(plan.labels["org.opencontainers.image.title"], "hello");
            assert_eq!(
                plan.annotations["org.opencontainers.image.source"],
                "https://example.invalid/hello"
            );
            assert_eq!(plan.layers.len(), 1);
            assert_eq!(plan.layers[0].files[0].dest, "/usr/local/bin/hello");
            assert_eq!(plan.layers[0].files[0].mode, Some(0o755));
            assert_eq!(plan.vars["PIER_PLATFORM"], platform.to_string());
            assert_eq!(plan.vars["PIER_FAMILY"], plan.family);
        }

        let cc = |target: &str, cpu: &str, uname: &str| {
            format!("python3 -m ziglang cc -target {target} -mcpu={cpu} -static -O2 -o out/{uname}/hello hello.c")
        };
        let [x86, arm, la, sw, mips] = &plans[..] else {
            unreachable!()
        };
        assert_eq!(x86.steps[0].run, cc("x86_64-linux-musl", "baseline", "x86_64"));
        assert_eq!(arm.steps[0].run, cc("aarch64-linux-musl", "baseline", "aarch64"));
        assert_eq!(
            la.steps[0].run,
            cc("loongarch64-linux-musl", "generic_la64+d", "loongarch64")
        );
        assert_eq!(mips.steps[0].run, cc("mips64el-linux-muslabi64", "baseline", "mips64"));
        assert_eq!(sw.steps[0].run, "./tools/sw64-payload out/sw_64/hello");
        assert_eq!(sw.steps[0].workdir.as_deref(), Some("."));
        assert_eq!(x86.steps[0].env["ZIG_GLOBAL_CACHE_DIR"], ".zig-cache/x86");
        assert_eq!(
            la.steps[0].env,
            BTreeMap::new(),
            "an overridden step list replaces the steps"
        );

        assert_eq!(x86.layers[0].files[0].src, "out/x86_64/hello");
        assert_eq!(mips.layers[0].files[0].src, "out/mips64/hello");
        assert_eq!(sw.layers[0].name.as_deref(), Some("hello (script payload)"));
        assert_eq!(sw.layers[0].files[0].src, "out/sw_64/hello");
        assert!(sw.layers[0].files[0].allow_elf_mismatch);
        assert!(!x86.layers[0].files[0].allow_elf_mismatch);

        assert_eq!(arm.env["GREETING"], "hello from aarch64");
        assert_eq!(sw.env["GREETING"], "hello from sw_64");
        // Maps merge: the spec's labels and annotations stay, the override's are added.
        assert_eq!(sw.labels["io.pier.note"], "built, never run");
        assert_eq!(sw.labels["org.opencontainers.image.title"], "hello");
        assert_eq!(sw.annotations["io.pier.sw64"], "payload");
        assert_eq!(sw.annotations.len(), 2);
        assert!(!x86.labels.contains_key("io.pier.note"));

        assert_eq!(arm.vars["PIER_ARCH"], "arm64");
        assert_eq!(arm.vars["PIER_VARIANT"], "v8");
        assert_eq!(arm.vars["PIER_UNAME"], "aarch64");
        assert_eq!(arm.vars["PIER_GOARCH"], "arm64");
        assert_eq!(arm.vars["PIER_RUST_TARGET"], "aarch64-unknown-linux-musl");
        assert_eq!(arm.vars["PIER_ZIG_TARGET"], "aarch64-linux-musl");
        assert_eq!(arm.vars["PIER_ZIG_CPU"], "");
        assert_eq!(arm.vars["PIER_QEMU"], "qemu-aarch64");
        assert_eq!(la.vars["PIER_ZIG_CPU"], "generic_la64+d");
        assert_eq!(mips.vars["PIER_RUST_TARGET"], "mips64el-unknown-linux-muslabi64");
        assert_eq!(sw.vars["PIER_GOARCH"], "");
        assert_eq!(sw.vars["PIER_ZIG_TARGET"], "");
        assert_eq!(sw.vars["PIER_UNAME"], "sw_64");
        assert_eq!(x86.vars["PIER_VARIANT"], "");
        assert_eq!(x86.vars.len(), 11);
    }

    #[test]
    fn spec_is_deterministic() {
        let a = Spec::parse(EXAMPLE, "pier.yaml").unwrap();
        let b = Spec::parse(EXAMPLE, "pier.yaml").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.plan(Profiles::builtin()).unwrap(),
            b.plan(Profiles::builtin()).unwrap()
        );
        assert_eq!(plans(EXAMPLE), plans(EXAMPLE));
        assert_eq!(
            serde_json::to_string(&plans(EXAMPLE)).unwrap(),
            serde_json::to_string(&plans(EXAMPLE)).unwrap()
        );
    }

    #[test]
    fn spec_defaults() {
        let spec = Spec::parse("image: team/hello\n", "pier.yaml").unwrap();
        assert_eq!(spec.tags, ["latest"]);
        let all: Vec<Platform> = Profiles::builtin().all().iter().map(|p| p.platform().clone()).collect();
        assert_eq!(spec.platforms, all);
        assert_eq!(spec.base, None);
        assert_eq!(spec.compression, Compression::Gzip);
        let plans = spec.plan(Profiles::builtin()).unwrap();
        assert_eq!(plans.len(), 5);
        assert!(
            plans
                .iter()
                .all(|p| p.base == "scratch" && p.steps.is_empty() && p.layers.is_empty())
        );
    }

    #[test]
    fn spec_aliases_become_canonical() {
        let spec = Spec::parse(
            "image: a/b\nplatforms: [amd64, ARM64, la64, sunway, mips64le, ]\n\
             base:\n  aarch64: debian:12\n  linux/amd64: alpine:3\n  loong64: scratch\n  sw64: scratch\n  mips64el: scratch\n\
             overrides:\n  c86: { cmd: [x] }\n",
            "pier.yaml",
        )
        .unwrap();
        let p: Vec<String> = spec.platforms.iter().map(ToString::to_string).collect();
        assert_eq!(
            p,
            [
                "linux/amd64",
                "linux/arm64/v8",
                "linux/loong64",
                "linux/sw64",
                "linux/mips64le"
            ]
        );
        let plans = spec.plan(Profiles::builtin()).unwrap();
        assert_eq!(plans[0].base, "alpine:3");
        assert_eq!(plans[1].base, "debian:12");
        assert_eq!(plans[0].cmd, Some(vec!["x".to_owned()]));
        assert_eq!(plans[1].cmd, None);
        let amd64: Platform = "linux/amd64".parse().unwrap();
        assert!(spec.overrides.contains_key(&amd64));
    }

    #[test]
    fn spec_overrides_replace_scalars_and_merge_maps() {
        let text = "image: a/b\nplatforms: [x86_64, aarch64]\nbase: debian:12\nworkdir: /app\nuser: app\n\
                    env: { A: '1', B: '2' }\ncmd: [run]\nexposed_ports: [80]\n\
                    overrides:\n  aarch64:\n    base: debian:12-slim\n    workdir: /srv\n    user: root\n    \
                    env: { B: three, C: '{goarch}' }\n    exposed_ports: []\n    entrypoint: [sh]\n";
        let plans = plans(text);
        assert_eq!(plans[0].base, "debian:12");
        assert_eq!(plans[1].base, "debian:12-slim");
        assert_eq!(plans[1].workdir.as_deref(), Some("/srv"));
        assert_eq!(plans[1].user.as_deref(), Some("root"));
        assert_eq!(plans[0].user.as_deref(), Some("app"));
        let env: Vec<(&str, &str)> = plans[1].env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(env, [("A", "1"), ("B", "three"), ("C", "arm64")]);
        assert_eq!(plans[0].exposed_ports, ["80/tcp"]);
        assert!(plans[1].exposed_ports.is_empty());
        assert_eq!(plans[1].cmd, Some(vec!["run".to_owned()]));
        assert_eq!(plans[1].entrypoint, Some(vec!["sh".to_owned()]));
    }

    #[test]
    fn spec_placeholders_and_escapes() {
        let text = "image: a/b\nplatforms: [aarch64]\nsteps:\n  - run: echo ${{HOME}} {{x}} } {arch}/{variant} {debian} {qemu} {rust_target} {goarch}\n";
        assert_eq!(
            plans(text)[0].steps[0].run,
            "echo ${HOME} {x} } arm64/v8 arm64 qemu-aarch64 aarch64-unknown-linux-musl arm64"
        );
        let text = "image: a/b\nplatforms: [x86_64]\nsteps:\n  - run: '[{qemu}] [{zig_cpu}] [{variant}]'\n";
        assert_eq!(plans(text)[0].steps[0].run, "[] [] []");
        // Placeholders are not expanded outside the documented fields.
        let text = "image: a/b\nplatforms: [x86_64]\ncmd: ['{uname}']\n";
        assert_eq!(plans(text)[0].cmd, Some(vec!["{uname}".to_owned()]));
    }

    #[test]
    fn spec_modes() {
        let mode = |m: &str| {
            let text = format!("image: a/b\nlayers:\n  - files:\n      - {{ src: a, dest: /a, mode: {m} }}\n");
            Spec::parse(&text, "pier.yaml").map(|s| s.layers[0].files[0].mode.unwrap())
        };
        assert_eq!(mode("\"0755\"").unwrap(), 0o755);
        assert_eq!(mode("0755").unwrap(), 0o755);
        assert_eq!(mode("755").unwrap(), 0o755);
        assert_eq!(mode("'0o644'").unwrap(), 0o644);
        assert_eq!(mode("4755").unwrap(), 0o4755);
        for bad in ["493", "'rwx'", "0o17777", "''", "-1"] {
            assert!(mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spec_error_unknown_key() {
        assert_err("image: a/b\nstep:\n  - run: x\n", 2, "step", "unknown field `step`");
        assert_err(
            "image: a/b\nlayers:\n  - files:\n      - src: a\n        dest: /a\n        owner: 1\n",
            6,
            "layers[0].files[0].owner",
            "unknown field `owner`",
        );
        assert_err(
            "image: a/b\noverrides:\n  aarch64:\n    steps:\n      - run: a\n      - run: b\n        shell: bash\n",
            7,
            "overrides.aarch64.steps[1].shell",
            "unknown field `shell`",
        );
    }

    #[test]
    fn spec_error_unknown_platform() {
        for (text, line, field) in [
            ("image: a/b\nplatforms:\n  - x86_64\n  - riscv64\n", 4, "platforms[1]"),
            ("image: a/b\nplatforms: [arm64, ppc64le]\n", 2, "platforms[1]"),
            (
                "image: a/b\noverrides:\n  aarch64: {}\n  armhf:\n    cmd: [x]\n",
                4,
                "overrides.armhf",
            ),
            (
                "image: a/b\nbase:\n  amd64: scratch\n  s390x: scratch\n",
                4,
                "base.s390x",
            ),
        ] {
            assert_err(text, line, field, "unknown platform");
            let e = err(text);
            for known in [
                "x86_64",
                "aarch64",
                "loongarch64",
                "sw_64",
                "mips64el",
                "linux/arm64/v8",
            ] {
                assert!(e.contains(known), "{e}");
            }
        }
        assert_err(
            "image: a/b\nplatforms: [arm64, x86_64, aarch64]\n",
            2,
            "platforms[2]",
            "already given",
        );
        assert_err(
            "image: a/b\noverrides:\n  arm64: {}\n  aarch64: {}\n",
            4,
            "overrides.aarch64",
            "linux/arm64/v8, already given",
        );
    }

    #[test]
    fn spec_error_bad_mode() {
        assert_err(
            "image: a/b\nlayers:\n  - files:\n      - src: a\n        dest: /a\n        mode: \"0999\"\n",
            6,
            "layers[0].files[0].mode",
            "bad mode \"0999\"",
        );
        assert_err(
            "image: a/b\nlayers:\n  - files:\n      - src: a\n        dest: /a\n      - src: b\n        dest: /b\n        mode: 10000\n",
            8,
            "layers[0].files[1].mode",
            "bad mode",
        );
    }

    #[test]
    fn spec_error_missing_field() {
        assert_err("# no image\ntags: [x]\n", 2, "image", "missing field `image`");
        assert_err(
            "image: a/b\nlayers:\n  - files:\n      - src: a\n",
            4,
            "layers[0].files[0].dest",
            "missing field `dest`",
        );
    }

    #[test]
    fn spec_error_empty_layer() {
        assert_err(
            "image: a/b\nlayers:\n  - files:\n      - { src: a, dest: /a }\n  - name: empty\n    files: []\n",
            6,
            "layers[1].files",
            "at least one file",
        );
        assert_err(
            "image: a/b\noverrides:\n  sw64:\n    layers:\n      - files: []\n",
            5,
            "overrides.sw64.layers[0].files",
            "at least one file",
        );
    }

    #[test]
    fn spec_error_unknown_placeholder() {
        assert_err(
            "image: a/b\nsteps:\n  - run: make\n  - run: echo {arch} {target}\n",
            4,
            "steps[1].run",
            "unknown placeholder {target}; known: {platform}, {arch}",
        );
        assert_err(
            "image: a/b\nsteps:\n  - run: echo ${HOME}\n",
            3,
            "steps[0].run",
            "unknown placeholder {HOME}",
        );
        assert_err(
            "image: a/b\nlabels:\n  a: x\n  b: '{uname'\n",
            4,
            "labels.b",
            "never closed",
        );
        assert_err(
            "image: a/b\nlayers:\n  - files:\n      - src: out/{os}/x\n        dest: /x\n",
            4,
            "layers[0].files[0].src",
            "unknown placeholder {os}",
        );
        // Checked in overrides too, even for a platform not built.
        assert_err(
            "image: a/b\nplatforms: [amd64]\noverrides:\n  sw64:\n    env:\n      X: '{sw}'\n",
            6,
            "overrides.sw64.env.X",
            "unknown placeholder {sw}",
        );
    }

    #[test]
    fn spec_error_placeholder_without_value() {
        let text =
            "image: a/b\nplatforms: [amd64, sw_64]\nsteps:\n  - run: make\n  - run: zig cc -target {zig_target} x.c\n";
        assert_err(
            text,
            5,
            "steps[1].run",
            "placeholder {zig_target} has no value for linux/sw64 (family sw64)",
        );
        let text = "image: a/b\nplatforms: [sw64]\nlayers:\n  - files:\n      - src: target/{rust_target}/x\n        dest: /x\n";
        assert_err(
            text,
            5,
            "layers[0].files[0].src",
            "{rust_target} has no value for linux/sw64",
        );
        let text = "image: a/b\nplatforms: [sw64]\nenv:\n  GOARCH: '{goarch}'\n";
        assert_err(text, 4, "env.GOARCH", "{goarch} has no value for linux/sw64");
        let text = "image: a/b\nplatforms: [sw64]\noverrides:\n  sw_64:\n    steps:\n      - run: cc -o {zig_target}\n";
        assert_err(
            text,
            6,
            "overrides.sw_64.steps[0].run",
            "{zig_target} has no value for linux/sw64",
        );
        // Overridden for that platform: fine.
        let text = "image: a/b\nplatforms: [amd64, sw_64]\nsteps:\n  - run: zig cc -target {zig_target} x.c\n\
                    overrides:\n  sw64:\n    steps: []\n";
        let planned = plans(text);
        assert_eq!(planned[0].steps[0].run, "zig cc -target x86_64-linux-musl x.c");
        assert!(planned[1].steps.is_empty());
        // A label the override replaces is not expanded for that platform either.
        let text = "image: a/b\nplatforms: [sw_64]\nlabels:\n  go: '{goarch}'\noverrides:\n  sw64:\n    labels:\n      go: none\n";
        assert_eq!(plans(text)[0].labels["go"], "none");
    }

    #[test]
    fn spec_error_other_values() {
        assert_err("image: a/b:1.0\n", 1, "image", "has a tag");
        assert_err("image: A/b\n", 1, "image", "lowercase");
        assert_err("image: a/b\ntags: [ok, 'no good']\n", 2, "tags[1]", "bad tag");
        assert_err("image: a/b\nplatforms: []\n", 2, "platforms", "no platforms");
        assert_err(
            "image: a/b\nexposed_ports: [80, http]\n",
            2,
            "exposed_ports[1]",
            "bad port",
        );
        assert_err(
            "image: a/b\nplatforms: [amd64, arm64]\nbase:\n  amd64: alpine:3\n",
            4,
            "base",
            "no base image for linux/arm64/v8",
        );
        assert_err("image: a/b\nimage: c/d\n", 2, "image", "duplicate");
        assert_err("image: a/b\ncompression: xz\n", 2, "compression", "xz");
        assert_err(
            "image: a/b\nlayers:\n  - files:\n      - src: a\n        dest: relative\n",
            5,
            "layers[0].files[0].dest",
            "absolute",
        );
        let e = Spec::load(Path::new("/nonexistent/pier.yaml")).unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/pier.yaml: "), "{e}");
    }

    #[test]
    fn spec_load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pier.yaml");
        std::fs::write(&path, EXAMPLE).unwrap();
        let spec = Spec::load(&path).unwrap();
        assert_eq!(spec.file_name(), path.display().to_string());
        std::fs::write(&path, "image: a/b\nbogus: 1\n").unwrap();
        let e = Spec::load(&path).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: line 2", path.display())), "{e}");
    }

    #[test]
    fn spec_field_path_at() {
        let text = "a:\n  b:\n    - x: 1\n      y: 2\n    - x: 3\n      z:\n        - q\n        - r: 1\nlist:\n- k: 1\n- k: 2\n";
        let at = |l, c| format_path(&field_path_at(text, l, c));
        assert_eq!(at(1, 1), "a");
        assert_eq!(at(3, 9), "a.b[0].x");
        assert_eq!(at(4, 7), "a.b[0].y");
        assert_eq!(at(5, 7), "a.b[1].x");
        assert_eq!(at(6, 7), "a.b[1].z");
        assert_eq!(at(8, 11), "a.b[1].z[1].r");
        assert_eq!(at(11, 3), "list[1].k");
        assert_eq!(at(99, 1), "(document)");
    }
}
