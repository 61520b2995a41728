//! The raw, located form of a spec: what serde reads, every value wrapped in its location.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::Compression;

pub(super) type S = Spanned<String>;

pub(super) fn line_of<T>(s: &Spanned<T>) -> usize {
    usize::try_from(s.referenced.line()).unwrap_or(usize::MAX)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpec {
    pub(super) image: S,
    pub(super) tags: Option<Vec<S>>,
    pub(super) platforms: Option<Spanned<Vec<S>>>,
    pub(super) base: Option<Spanned<RawBase>>,
    #[serde(default)]
    pub(super) steps: Vec<RawStep>,
    #[serde(default)]
    pub(super) layers: Vec<RawLayer>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, S>,
    pub(super) entrypoint: Option<Vec<String>>,
    pub(super) cmd: Option<Vec<String>>,
    pub(super) workdir: Option<String>,
    pub(super) user: Option<String>,
    #[serde(default)]
    pub(super) exposed_ports: Vec<S>,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, S>,
    #[serde(default)]
    pub(super) annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) compression: Compression,
    #[serde(default)]
    pub(super) overrides: Keyed<RawOverride>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub(super) run: S,
    pub(super) workdir: Option<S>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLayer {
    pub(super) name: Option<String>,
    pub(super) files: Spanned<Vec<RawFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) src: S,
    pub(super) dest: S,
    pub(super) mode: Option<Mode>,
    #[serde(default)]
    pub(super) uid: u32,
    #[serde(default)]
    pub(super) gid: u32,
    #[serde(default)]
    pub(super) allow_elf_mismatch: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOverride {
    pub(super) base: Option<String>,
    pub(super) steps: Option<Vec<RawStep>>,
    pub(super) layers: Option<Vec<RawLayer>>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, S>,
    pub(super) entrypoint: Option<Vec<String>>,
    pub(super) cmd: Option<Vec<String>>,
    pub(super) workdir: Option<String>,
    pub(super) user: Option<String>,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, S>,
    #[serde(default)]
    pub(super) annotations: BTreeMap<String, String>,
    pub(super) exposed_ports: Option<Vec<S>>,
}

/// `base`: a string, or a map of platform names (located) to references.
pub(super) enum RawBase {
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
pub(super) struct Keyed<V>(pub(super) Vec<(S, V)>);

impl<V> Default for Keyed<V> {
    fn default() -> Self {
        Keyed(Vec::new())
    }
}

pub(super) fn keyed_entries<'de, A: MapAccess<'de>, V: Deserialize<'de>>(mut map: A) -> Result<Vec<(S, V)>, A::Error> {
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
pub(super) struct Mode(pub(super) u32);

pub(super) fn parse_mode(text: &str) -> Result<u32, String> {
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
