//! Reading profile files: the built-in table, then user files merged over it, with every
//! error pointing at a file, a line and a key path.
//!
//! A file is read twice. First into a tree of keys with their spans, which catches unknown
//! keys (serde's own message names the key but not the table it sits in) and maps any byte
//! offset back to a key path; then into typed structs whose values keep their spans, so that
//! checks made after merging (duplicate names, scale-in above scale-out) can still point at
//! the line that caused them.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use pier_oci::Platform;
use serde::Deserialize;
use toml::Spanned;

use crate::elf::{ElfClass, ElfExpect, Endian, LoongArchAbi};
use crate::{Profile, ProfileError, Scaling};

/// One TOML text and what to call it in errors.
pub(crate) struct Source<'a> {
    pub name: String,
    pub text: &'a str,
    /// A user file, as opposed to the built-in table: when a conflict involves both, the
    /// user's line is the one to blame, since the built-in table is consistent on its own.
    pub user: bool,
}

impl Source<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }

    fn loc(&self, span: Range<usize>, field: impl Into<String>) -> Loc {
        Loc {
            file: self.name.clone(),
            line: self.line(span.start),
            field: field.into(),
            user: self.user,
        }
    }
}

/// Where a value came from.
#[derive(Debug, Clone)]
struct Loc {
    file: String,
    line: usize,
    field: String,
    user: bool,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, line {}", self.file, self.line)
    }
}

impl Loc {
    fn invalid(&self, message: impl Into<String>) -> ProfileError {
        ProfileError::Invalid {
            file: self.file.clone(),
            line: self.line,
            field: self.field.clone(),
            message: message.into(),
        }
    }

    fn threshold(&self, message: impl Into<String>) -> ProfileError {
        ProfileError::Threshold {
            file: self.file.clone(),
            line: self.line,
            field: self.field.clone(),
            message: message.into(),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone)]
struct L<T> {
    v: T,
    at: Loc,
}

// ---- the key tree -------------------------------------------------------------------------

const TOP_KEYS: &[&str] = &["profile"];
const PROFILE_KEYS: &[&str] = &[
    "family",
    "name",
    "platform",
    "aliases",
    "uname",
    "debian",
    "rust_targets",
    "go_arch",
    "zig_target",
    "zig_cpu",
    "qemu",
    "base_image",
    "helm_overlay",
    "elf",
    "scaling",
];
const ELF_KEYS: &[&str] = &["machine", "class", "endian", "loongarch_abi"];
const SCALING_KEYS: &[&str] = &["cpu_scale_out", "cpu_scale_in", "mem_scale_out", "mem_scale_in"];

enum Kind {
    Table(Vec<(Spanned<String>, Spanned<Kind>)>),
    Array(Vec<Spanned<Kind>>),
    Scalar,
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

struct KindVisitor;

impl<'de> serde::de::Visitor<'de> for KindVisitor {
    type Value = Kind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }

    fn visit_str<E>(self, _: &str) -> Result<Kind, E> {
        Ok(Kind::Scalar)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Kind::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        Ok(Kind::Table(entries))
    }
}

fn check_keys(tree: &Spanned<Kind>, src: &Source) -> Result<(), ProfileError> {
    let unknown = |key: &Spanned<String>, path: String, expected: &[&str]| ProfileError::UnknownKey {
        file: src.name.clone(),
        line: src.line(key.span().start),
        field: path,
        expected: expected.join(", "),
    };
    let Kind::Table(top) = tree.get_ref() else {
        return Ok(());
    };
    for (key, value) in top {
        if !TOP_KEYS.contains(&key.get_ref().as_str()) {
            return Err(unknown(key, key.get_ref().clone(), TOP_KEYS));
        }
        // Wrong shapes (`[profile]` instead of `[[profile]]`) are the typed pass's to report.
        let Kind::Array(profiles) = value.get_ref() else {
            continue;
        };
        for (i, profile) in profiles.iter().enumerate() {
            let Kind::Table(fields) = profile.get_ref() else {
                continue;
            };
            for (key, value) in fields {
                let name = key.get_ref().as_str();
                let path = format!("profile[{i}].{name}");
                if !PROFILE_KEYS.contains(&name) {
                    return Err(unknown(key, path, PROFILE_KEYS));
                }
                let inner = match name {
                    "elf" => ELF_KEYS,
                    "scaling" => SCALING_KEYS,
                    _ => continue,
                };
                if let Kind::Table(sub) = value.get_ref() {
                    for (key, _) in sub {
                        if !inner.contains(&key.get_ref().as_str()) {
                            return Err(unknown(key, format!("{path}.{}", key.get_ref()), inner));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// The key path of the deepest key or value covering `offset`. Every branch is searched:
/// the span of a `[[profile]]` entry stops where its `[profile.elf]` header begins, so a
/// container's span says nothing about where its sub-tables are.
fn locate(tree: &Spanned<Kind>, offset: usize) -> Option<String> {
    fn walk(node: &Spanned<Kind>, offset: usize) -> Option<String> {
        match node.get_ref() {
            Kind::Table(entries) => entries.iter().find_map(|(key, value)| match walk(value, offset) {
                Some(sub) if sub.starts_with('[') => Some(format!("{}{sub}", key.get_ref())),
                Some(sub) => Some(format!("{}.{sub}", key.get_ref())),
                None => (key.span().contains(&offset) || value.span().contains(&offset)).then(|| key.get_ref().clone()),
            }),
            Kind::Array(items) => items.iter().enumerate().find_map(|(i, item)| match walk(item, offset) {
                Some(sub) if sub.starts_with('[') => Some(format!("[{i}]{sub}")),
                Some(sub) => Some(format!("[{i}].{sub}")),
                None => item.span().contains(&offset).then(|| format!("[{i}]")),
            }),
            Kind::Scalar => None,
        }
    }
    walk(tree, offset)
}

// ---- the typed pass -----------------------------------------------------------------------

type S<T> = Option<Spanned<T>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    profile: Vec<Spanned<RawProfile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    family: S<String>,
    name: S<String>,
    platform: S<String>,
    aliases: S<Vec<Spanned<String>>>,
    uname: S<String>,
    debian: S<String>,
    rust_targets: S<Vec<String>>,
    go_arch: S<String>,
    zig_target: S<String>,
    zig_cpu: S<String>,
    qemu: S<String>,
    base_image: S<String>,
    helm_overlay: S<String>,
    elf: Option<RawElf>,
    scaling: Option<RawScaling>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawElf {
    machine: S<Vec<u16>>,
    class: S<u8>,
    endian: S<String>,
    loongarch_abi: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScaling {
    cpu_scale_out: S<i64>,
    cpu_scale_in: S<i64>,
    mem_scale_out: S<i64>,
    mem_scale_in: S<i64>,
}

fn parse(src: &Source) -> Result<RawFile, ProfileError> {
    let syntax = |e: &toml::de::Error| ProfileError::Syntax {
        file: src.name.clone(),
        line: src.line(e.span().map_or(0, |s| s.start)),
        message: e.message().to_owned(),
    };
    // The tree cannot hold datetimes (no field takes one); when it fails, the typed pass
    // gives the better message, for those and for syntax errors alike.
    let tree = toml::from_str::<Spanned<Kind>>(src.text);
    if let Ok(tree) = &tree {
        check_keys(tree, src)?;
    }
    match (toml::from_str::<RawFile>(src.text), tree) {
        (Ok(raw), Ok(_)) => Ok(raw),
        (Ok(_), Err(e)) => Err(syntax(&e)),
        (Err(e), tree) => {
            let offset = e.span().map_or(0, |s| s.start);
            match tree.ok().and_then(|t| locate(&t, offset)) {
                Some(field) => Err(ProfileError::Invalid {
                    file: src.name.clone(),
                    line: src.line(offset),
                    field,
                    message: e.message().to_owned(),
                }),
                None => Err(syntax(&e)),
            }
        }
    }
}

// ---- merging ------------------------------------------------------------------------------

/// A profile while files are merged: required fields may still be missing, and the values
/// later checks need keep their origin.
struct Draft {
    family: L<String>,
    name: Option<String>,
    platform: Option<L<Platform>>,
    aliases: Vec<L<String>>,
    uname: Option<L<String>>,
    debian: Option<L<String>>,
    rust_targets: Vec<String>,
    go_arch: Option<String>,
    zig_target: Option<String>,
    zig_cpu: Option<String>,
    qemu: Option<String>,
    base_image: Option<String>,
    helm_overlay: Option<String>,
    machines: Option<Vec<u16>>,
    class: Option<ElfClass>,
    endian: Option<Endian>,
    loongarch_abi: Option<LoongArchAbi>,
    /// cpu_scale_out, cpu_scale_in, mem_scale_out, mem_scale_in.
    scaling: [Option<L<u8>>; 4],
}

/// A non-canonical platform in a file would be written into manifests as is, where docker
/// and containerd, matching by exact string, never select it; hence refused, not fixed.
fn canonical_platform(given: &str, at: &Loc) -> Result<Platform, ProfileError> {
    match Platform::from_str(given) {
        Ok(p) if p.to_string() == given => Ok(p),
        Ok(p) => Err(ProfileError::NonCanonicalPlatform {
            file: at.file.clone(),
            line: at.line,
            field: at.field.clone(),
            given: given.to_owned(),
            canonical: p.to_string(),
        }),
        // pier_oci knows the five families; a user profile may add another, which is
        // canonical by definition as long as it is spelled the way OCI spells platforms.
        Err(_) => {
            let parts: Vec<&str> = given.split('/').collect();
            let word = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            };
            match parts.as_slice() {
                ["linux", arch, rest @ ..] if rest.len() <= 1 && parts[1..].iter().all(|s| word(s)) => Ok(Platform {
                    os: "linux".to_owned(),
                    architecture: (*arch).to_owned(),
                    variant: rest.first().map(|v| (*v).to_owned()),
                }),
                _ => Err(at.invalid(format!(
                    "{given:?} is not a platform (write linux/ARCH or linux/ARCH/VARIANT, lowercase)"
                ))),
            }
        }
    }
}

/// Empty means "none", so that a user file can take a built-in value away.
fn optional(v: Spanned<String>) -> Option<String> {
    Some(v.into_inner()).filter(|s| !s.is_empty())
}

fn name(v: Spanned<String>, src: &Source, field: String) -> Result<L<String>, ProfileError> {
    let at = src.loc(v.span(), field);
    let v = v.into_inner();
    if v.trim().is_empty() || v.chars().any(char::is_whitespace) {
        return Err(at.invalid(format!("{v:?} is not a name (empty or with spaces)")));
    }
    Ok(L { v, at })
}

impl Draft {
    fn new(family: L<String>) -> Draft {
        Draft {
            family,
            name: None,
            platform: None,
            aliases: Vec::new(),
            uname: None,
            debian: None,
            rust_targets: Vec::new(),
            go_arch: None,
            zig_target: None,
            zig_cpu: None,
            qemu: None,
            base_image: None,
            helm_overlay: None,
            machines: None,
            class: None,
            endian: None,
            loongarch_abi: None,
            scaling: [None, None, None, None],
        }
    }

    /// Replaces the fields the file gives.
    fn apply(&mut self, p: RawProfile, src: &Source, at: &str) -> Result<(), ProfileError> {
        if let Some(v) = p.name {
            self.name = Some(v.into_inner());
        }
        if let Some(v) = p.platform {
            let loc = src.loc(v.span(), format!("{at}.platform"));
            let platform = canonical_platform(v.get_ref(), &loc)?;
            self.platform = Some(L { v: platform, at: loc });
        }
        if let Some(v) = p.aliases {
            self.aliases = (v.into_inner().into_iter().enumerate())
                .map(|(i, a)| name(a, src, format!("{at}.aliases[{i}]")))
                .collect::<Result<_, _>>()?;
        }
        if let Some(v) = p.uname {
            self.uname = Some(name(v, src, format!("{at}.uname"))?);
        }
        if let Some(v) = p.debian {
            self.debian = Some(name(v, src, format!("{at}.debian"))?);
        }
        if let Some(v) = p.rust_targets {
            self.rust_targets = v.into_inner();
        }
        for (field, value) in [
            (&mut self.go_arch, p.go_arch),
            (&mut self.zig_target, p.zig_target),
            (&mut self.zig_cpu, p.zig_cpu),
            (&mut self.qemu, p.qemu),
            (&mut self.base_image, p.base_image),
            (&mut self.helm_overlay, p.helm_overlay),
        ] {
            if let Some(v) = value {
                *field = optional(v);
            }
        }
        if let Some(elf) = p.elf {
            self.apply_elf(elf, src, at)?;
        }
        if let Some(s) = p.scaling {
            let given = [
                ("cpu_scale_out", s.cpu_scale_out),
                ("cpu_scale_in", s.cpu_scale_in),
                ("mem_scale_out", s.mem_scale_out),
                ("mem_scale_in", s.mem_scale_in),
            ];
            for (slot, (key, value)) in self.scaling.iter_mut().zip(given) {
                let Some(v) = value else { continue };
                let loc = src.loc(v.span(), format!("{at}.scaling.{key}"));
                let percent = *v.get_ref();
                let Some(percent) = u8::try_from(percent).ok().filter(|p| *p <= 100) else {
                    return Err(loc.threshold(format!("{percent} is not a percentage (0 to 100)")));
                };
                *slot = Some(L { v: percent, at: loc });
            }
        }
        Ok(())
    }

    fn apply_elf(&mut self, elf: RawElf, src: &Source, at: &str) -> Result<(), ProfileError> {
        if let Some(v) = elf.machine {
            if v.get_ref().is_empty() {
                return Err(src
                    .loc(v.span(), format!("{at}.elf.machine"))
                    .invalid("needs at least one machine number"));
            }
            self.machines = Some(v.into_inner());
        }
        if let Some(v) = elf.class {
            self.class = Some(match v.get_ref() {
                32 => ElfClass::Elf32,
                64 => ElfClass::Elf64,
                other => {
                    return Err(src
                        .loc(v.span(), format!("{at}.elf.class"))
                        .invalid(format!("{other} is not 32 or 64")));
                }
            });
        }
        if let Some(v) = elf.endian {
            self.endian = Some(match v.get_ref().as_str() {
                "little" => Endian::Little,
                "big" => Endian::Big,
                other => {
                    return Err(src
                        .loc(v.span(), format!("{at}.elf.endian"))
                        .invalid(format!("{other:?} is not \"little\" or \"big\"")));
                }
            });
        }
        if let Some(v) = elf.loongarch_abi {
            self.loongarch_abi = match v.get_ref().as_str() {
                "" => None,
                "old-world" => Some(LoongArchAbi::OldWorld),
                "new-world" => Some(LoongArchAbi::NewWorld),
                other => {
                    return Err(src
                        .loc(v.span(), format!("{at}.elf.loongarch_abi"))
                        .invalid(format!("{other:?} is not \"old-world\" or \"new-world\"")));
                }
            };
        }
        Ok(())
    }

    /// A new family must say everything the table cannot guess.
    fn require(&self, at: &str) -> Result<(), ProfileError> {
        let missing = [
            ("name", self.name.is_none()),
            ("platform", self.platform.is_none()),
            ("uname", self.uname.is_none()),
            ("debian", self.debian.is_none()),
            ("elf.machine", self.machines.is_none()),
            ("elf.class", self.class.is_none()),
            ("elf.endian", self.endian.is_none()),
            ("scaling.cpu_scale_out", self.scaling[0].is_none()),
            ("scaling.cpu_scale_in", self.scaling[1].is_none()),
            ("scaling.mem_scale_out", self.scaling[2].is_none()),
            ("scaling.mem_scale_in", self.scaling[3].is_none()),
        ];
        match missing.iter().find(|(_, m)| *m) {
            Some((field, _)) => Err(ProfileError::Missing {
                file: self.family.at.file.clone(),
                line: self.family.at.line,
                field: format!("{at}.{field}"),
                family: self.family.v.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Every name this profile answers to, with where it was written.
    fn names(&self) -> impl Iterator<Item = (String, &Loc)> {
        let platform = self.platform.iter().map(|p| (p.v.to_string(), &p.at));
        std::iter::once(&self.family)
            .chain(&self.aliases)
            .chain(&self.uname)
            .chain(&self.debian)
            .map(|n| (n.v.clone(), &n.at))
            .chain(platform)
    }

    fn finish(self) -> Profile {
        // `require` ran on every draft when its family first appeared, and merging only
        // replaces values.
        const CHECKED: &str = "required fields were checked when the profile was added";
        let percent = |i: usize| self.scaling[i].as_ref().expect(CHECKED).v;
        let scaling = Scaling {
            cpu_scale_out: percent(0),
            cpu_scale_in: percent(1),
            mem_scale_out: percent(2),
            mem_scale_in: percent(3),
        };
        let helm_overlay = self
            .helm_overlay
            .unwrap_or_else(|| format!("values-{}.yaml", self.family.v));
        Profile {
            name: self.name.expect(CHECKED),
            platform: self.platform.expect(CHECKED).v,
            aliases: self.aliases.into_iter().map(|a| a.v).collect(),
            uname: self.uname.expect(CHECKED).v,
            debian: self.debian.expect(CHECKED).v,
            rust_targets: self.rust_targets,
            go_arch: self.go_arch,
            zig_target: self.zig_target,
            zig_cpu: self.zig_cpu,
            qemu: self.qemu,
            base_image: self.base_image.unwrap_or_else(|| "scratch".to_owned()),
            helm_overlay,
            elf: ElfExpect {
                machines: self.machines.expect(CHECKED),
                class: self.class.expect(CHECKED),
                endian: self.endian.expect(CHECKED),
                loongarch_abi: self.loongarch_abi,
            },
            scaling,
            family: self.family.v,
        }
    }
}

fn merge(src: &Source, drafts: &mut Vec<Draft>) -> Result<(), ProfileError> {
    let raw = parse(src)?;
    let mut seen = HashSet::new();
    for (i, profile) in raw.profile.into_iter().enumerate() {
        let at = format!("profile[{i}]");
        let span = profile.span();
        let profile = profile.into_inner();
        let Some(family) = profile.family.clone() else {
            return Err(src
                .loc(span, format!("{at}.family"))
                .invalid("every profile needs a family"));
        };
        let family = name(family, src, format!("{at}.family"))?;
        if !seen.insert(family.v.to_ascii_lowercase()) {
            return Err(family
                .at
                .invalid(format!("profile {:?} appears twice in this file", family.v)));
        }
        let existing = drafts.iter().position(|d| d.family.v.eq_ignore_ascii_case(&family.v));
        let draft = match existing {
            Some(j) => &mut drafts[j],
            None => {
                drafts.push(Draft::new(family));
                drafts.last_mut().expect("just pushed")
            }
        };
        draft.apply(profile, src, &at)?;
        if existing.is_none() {
            draft.require(&at)?;
        }
    }
    Ok(())
}

/// Checks that need the merged table: a user file may change one side of a pair.
fn validate(drafts: &[Draft]) -> Result<(), ProfileError> {
    for d in drafts {
        for (out, inn, what) in [(0, 1, "CPU"), (2, 3, "memory")] {
            let (Some(out), Some(inn)) = (&d.scaling[out], &d.scaling[inn]) else {
                continue;
            };
            if inn.v >= out.v {
                let blame = if out.at.user && !inn.at.user { &out.at } else { &inn.at };
                return Err(blame.threshold(format!(
                    "{what} scale-in at {}% must be below scale-out at {}% (profile {:?})",
                    inn.v, out.v, d.family.v
                )));
            }
        }
    }
    let mut claimed: HashMap<String, (usize, &Loc)> = HashMap::new();
    for (i, d) in drafts.iter().enumerate() {
        for (name, at) in d.names() {
            match claimed.get(&name.to_ascii_lowercase()) {
                Some(&(j, _)) if j == i => {}
                Some(&(j, other)) => {
                    let (blame, other, other_family) = if other.user && !at.user {
                        (other, at, &d.family.v)
                    } else {
                        (at, other, &drafts[j].family.v)
                    };
                    return Err(ProfileError::DuplicateName {
                        file: blame.file.clone(),
                        line: blame.line,
                        field: blame.field.clone(),
                        name,
                        other: format!("profile {other_family:?} ({other})"),
                    });
                }
                None => {
                    claimed.insert(name.to_ascii_lowercase(), (i, at));
                }
            }
        }
    }
    // After all claims: a name that is another profile's is best reported as such.
    for d in drafts {
        let Some(platform) = &d.platform else { continue };
        for (name, at) in d.names() {
            // A name pier_oci reads as another platform would send `lookup` and
            // `Platform::from_str` different ways.
            if let Some(means) = Platform::from_str(&name).ok().filter(|m| *m != platform.v) {
                return Err(at.invalid(format!(
                    "{name:?} means {means}, but profile {:?} is {}",
                    d.family.v, platform.v
                )));
            }
        }
    }
    Ok(())
}

/// The profiles of the sources, each merged over the ones before.
pub(crate) fn build(sources: &[Source]) -> Result<Vec<Profile>, ProfileError> {
    let mut drafts = Vec::new();
    for src in sources {
        merge(src, &mut drafts)?;
    }
    validate(&drafts)?;
    Ok(drafts.into_iter().map(Draft::finish).collect())
}
