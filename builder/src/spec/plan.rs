//! Spec → per-platform [`Plan`]s: overrides applied, placeholders expanded.

use std::collections::BTreeMap;

use pier_arch_profiles::{Profile, Profiles};
use pier_oci::Platform;

use super::*;

impl Spec {
    pub(super) fn plan_one(&self, platform: &Platform, profiles: &Profiles) -> Result<Plan, SpecError> {
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

/// Walks `text`, calling `value(name)` for each `{name}`; returns the expanded text, or why
/// not. `value` returns `Ok(None)` to keep going without output (checking only) and `Err`
/// to stop.
pub(super) fn scan_placeholders<F>(text: &str, mut value: F) -> Result<String, String>
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
pub(super) struct Expander<'a> {
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
