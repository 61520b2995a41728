//! Raw → checked: every raw value validated with its line recorded, into the public
//! [`Spec`].

use std::collections::BTreeMap;

use pier_arch_profiles::Profiles;
use pier_oci::{ImageRef, ImageRefError, Platform, Tag};

use super::plan::scan_placeholders;
use super::raw::*;
use super::*;

/// Checks raw values, records their lines, and builds the public [`Spec`].
pub(super) struct Converter<'a> {
    pub(super) origin: Origin,
    pub(super) profiles: &'a Profiles,
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

    pub(super) fn spec(mut self, raw: RawSpec) -> Result<Spec, SpecError> {
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
pub(super) fn known_platforms(profiles: &Profiles) -> String {
    profiles
        .all()
        .iter()
        .map(|p| format!("{} ({}: {})", p.family(), p.platform(), p.aliases().join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A repository reference without tag or digest: `[host[:port]/]path` ([`ImageRef`]).
pub(super) fn check_repository(image: &str) -> Result<(), String> {
    let reference: ImageRef = image.parse().map_err(|e: ImageRefError| match e {
        ImageRefError::Empty => "empty image name".to_owned(),
        other => format!("{image:?}: {other}"),
    })?;
    if reference.digest().is_some() {
        return Err(format!("{image:?}: no digest here; `image` is a repository"));
    }
    if reference.tag().is_some() {
        return Err(format!(
            "{image:?} has a tag: give the repository here and tags in `tags`"
        ));
    }
    Ok(())
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` ([`Tag`]).
pub(super) fn check_tag(tag: &str) -> Result<(), String> {
    match tag.parse::<Tag>() {
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "bad tag {tag:?}: up to 128 of A-Z a-z 0-9 _ . -, not starting with . or -"
        )),
    }
}

pub(super) fn check_base(reference: &str) -> Result<(), String> {
    if reference.trim().is_empty() || reference.contains(char::is_whitespace) {
        Err(format!("bad base image {reference:?}: `scratch` or an image reference"))
    } else {
        Ok(())
    }
}
