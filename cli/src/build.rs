//! `pier build`: the builder library with progress lines on stderr, then a summary table (or
//! the report as JSON on stdout with `--json`); with `--push`, the built layout is then
//! copied to the spec's `image` with pier-client: every platform's blobs and manifest
//! first, the index and its tags last, so a failed push leaves no tag on a partial image.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context as _, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pier_builder::build::{self, BuildOptions, BuildReport, Event, Output};
use pier_client::Location;
use pier_client::base::Bases;
use pier_client::copy::{CopyReport, Select};
use pier_client::layout::LayoutStore;
use pier_oci::{Platform, Reference};

use crate::output::{Table, printable};
use crate::registries::Reach;

/// What `pier build` was given.
pub struct Request {
    pub file: PathBuf,
    /// `oci:DIR` or `docker-archive:FILE`; without it (only with `push`) the images go to a
    /// layout in the cache directory, removed after the push.
    pub output: Option<String>,
    pub push: bool,
    /// `--server`/`PIER_SERVER`: the registry of an `image` without a host.
    pub server: Option<String>,
    pub platforms: Vec<String>,
    pub profiles: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub json: bool,
}

pub fn run(req: Request) -> anyhow::Result<()> {
    let cache_dir = match req.cache_dir {
        Some(d) => d,
        None => cache_dir_from_env(|k| std::env::var_os(k))?,
    };
    // Credentials are needed for --push (checked before anything is built) and for base
    // images (only if the spec has one).
    let reach = Reach::load(req.server.as_deref());
    if req.push {
        reach.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
    }
    let mut scratch = None;
    let output = match &req.output {
        Some(o) => Output::parse(o)?,
        None => {
            std::fs::create_dir_all(&cache_dir)
                .with_context(|| format!("cannot create the cache directory {}", cache_dir.display()))?;
            let dir = tempfile::Builder::new()
                .prefix("push-")
                .tempdir_in(&cache_dir)
                .with_context(|| format!("cannot create a directory in {}", cache_dir.display()))?;
            let output = Output::OciDir(dir.path().to_path_buf());
            scratch = Some(dir);
            output
        }
    };
    if req.push && matches!(output, Output::DockerArchive(_)) {
        bail!("--push needs all platforms in an OCI layout: use --output oci:DIR with --push, or no --output");
    }
    let shown = output.to_string();
    let layout_dir = match &output {
        Output::OciDir(d) => Some(d.clone()),
        Output::DockerArchive(_) => None,
    };
    let opts = BuildOptions {
        spec: req.file,
        platforms: (!req.platforms.is_empty()).then_some(req.platforms),
        profiles: req.profiles,
        cache_dir,
        output,
        epoch: None,
    };
    let bases = Bases::new(
        reach.as_ref().ok().and_then(|r| r.default_registry.clone()),
        |location: &Location| {
            reach
                .as_ref()
                .map(|r| r.registries(&[location]))
                .map_err(|e| format!("{e:#}"))
        },
    )?;
    let progress = BuildProgress::new();
    let fetch = |reference: &str, platform: &Platform, blobs: &Path| bases.fetch(reference, platform, blobs);
    let report = build::build_with(&opts, &|e| progress.event(e), &fetch)?;
    drop(progress);
    let pushed = match (&reach, &layout_dir) {
        (Ok(reach), Some(dir)) if req.push => Some(push(reach, &report, dir)?),
        _ => None,
    };
    drop(scratch);
    if req.json {
        let mut value = serde_json::to_value(&report)?;
        if let Some((target, copy)) = &pushed {
            value["pushed"] = serde_json::json!({ "repository": target, "tags": report.tags, "copy": copy });
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let shown = if req.output.is_some() { shown } else { String::new() };
        print!("{}", summary(&report, &shown));
        if let Some((target, copy)) = &pushed {
            println!("{}", pushed_line(target, &report.tags, copy));
        }
    }
    Ok(())
}

/// Pushes the first tag with everything under it, then points the other tags at the same
/// index. Returns the repository and what the copy did.
fn push(reach: &Reach, report: &BuildReport, layout: &std::path::Path) -> anyhow::Result<(String, CopyReport)> {
    let dest = reach
        .location(&report.image)
        .with_context(|| format!("`image` of the spec ({}) is not where --push can go", report.image))?;
    if !matches!(dest, Location::Registry { .. }) {
        bail!(
            "`image` of the spec is {}: --push needs a registry repository",
            report.image
        );
    }
    if dest.reference().is_some() {
        bail!(
            "`image` of the spec ({}) must not have a tag: the tags come from `tags`",
            report.image
        );
    }
    let Some((first, rest)) = report.tags.split_first() else {
        bail!("the spec has no tags: nothing to push under");
    };
    let registries = reach.registries(&[&dest]);
    let store = pier_client::open(&dest, &registries);
    let src = LayoutStore::new(layout);
    let tag = |t: &str| -> anyhow::Result<Reference> { Ok(Reference::Tag(t.parse()?)) };
    let first = tag(first)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let repository = dest.repository_display();
    let copy = runtime.block_on(async {
        let progress = crate::progress::Progress::new();
        // The copy writes the tag last, so a failure here has tagged nothing.
        let copy = pier_client::copy::copy(&src, &first, store.as_ref(), &first, &Select::All, &|e| {
            progress.event(e)
        })
        .await
        .with_context(|| format!("push to {repository} stopped: no tag was written"))?;
        let index = store.get_manifest(&first).await?;
        for t in rest {
            store
                .put_manifest(&tag(t)?, &index)
                .await
                .with_context(|| format!("pushed {repository}:{first} but could not tag it :{t}"))?;
        }
        anyhow::Ok(copy)
    })?;
    Ok((repository, copy))
}

/// `pushed 127.0.0.1:5000/team/hello:1.0, :latest (sha256:…): 5 blobs sent (1.2 MiB), 2 already there`.
fn pushed_line(repository: &str, tags: &[String], copy: &CopyReport) -> String {
    let tags: Vec<String> = tags.iter().map(|t| format!(":{t}")).collect();
    let mut parts = vec![format!(
        "{} blobs sent ({})",
        copy.blobs_copied,
        human_size(copy.bytes_copied)
    )];
    if copy.blobs_mounted > 0 {
        parts.push(format!("{} mounted", copy.blobs_mounted));
    }
    if copy.blobs_present > 0 {
        parts.push(format!("{} already there", copy.blobs_present));
    }
    format!(
        "pushed {repository}{} ({}): {}",
        tags.join(", "),
        copy.digest,
        parts.join(", ")
    )
}

/// `--cache-dir` was not given (clap reads `PIER_CACHE_DIR` into it): `$XDG_CACHE_HOME/pier`,
/// else `~/.cache/pier`.
pub fn cache_dir_from_env(var: impl Fn(&str) -> Option<OsString>) -> anyhow::Result<PathBuf> {
    let set = |k: &str| var(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("PIER_CACHE_DIR") {
        return Ok(dir);
    }
    // The XDG spec says relative values are invalid and must be ignored.
    if let Some(dir) = set("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return Ok(dir.join("pier"));
    }
    match set("HOME") {
        Some(home) => Ok(home.join(".cache").join("pier")),
        None => bail!("cannot tell where to keep the build cache: give --cache-dir or set PIER_CACHE_DIR or HOME"),
    }
}

/// Progress of a build on stderr: on a terminal, one spinner per platform saying what it
/// does now, with the event lines printed above the spinners; elsewhere (CI logs) just the
/// lines.
struct BuildProgress {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl BuildProgress {
    fn new() -> BuildProgress {
        BuildProgress {
            multi: std::io::stderr()
                .is_terminal()
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn event(&self, event: Event) {
        let (platform, text) = describe_event(&event);
        let Some(multi) = &self.multi else {
            let _ = writeln!(std::io::stderr().lock(), "[{platform}] {text}");
            return;
        };
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        let bar = bars.entry(platform.clone()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:16} {wide_msg} {elapsed}").expect("a valid template"),
            );
            bar.set_prefix(platform.clone());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        let _ = multi.println(format!("[{platform}] {text}"));
        if matches!(event, Event::PlatformDone { .. }) {
            bar.finish_and_clear();
        } else {
            bar.set_message(text);
        }
    }
}

impl Drop for BuildProgress {
    fn drop(&mut self) {
        // A failed build leaves spinners running: clear them so the error is the last thing.
        for bar in self.bars.lock().unwrap_or_else(|e| e.into_inner()).values() {
            bar.finish_and_clear();
        }
    }
}

/// The platform an event is about and what it says.
fn describe_event(event: &Event) -> (String, String) {
    let (platform, text) = match event {
        Event::StepStarted {
            platform,
            index,
            total,
            command,
        } => (platform, format!("step {}/{total}: {}", index + 1, printable(command))),
        Event::StepFinished {
            platform,
            index,
            elapsed,
        } => (
            platform,
            format!("step {} done in {:.1}s", index + 1, elapsed.as_secs_f64()),
        ),
        Event::Layer {
            platform,
            name,
            digest,
            size,
            cached,
        } => (
            platform,
            format!(
                "layer {}: {} {}{}",
                printable(name),
                short(digest),
                human_size(*size),
                if *cached { " (cached)" } else { "" }
            ),
        ),
        Event::Base {
            platform,
            base,
            manifest,
            layers,
        } => (
            platform,
            format!("base {}: {} ({layers} layers)", printable(base), short(manifest)),
        ),
        Event::PlatformDone { platform } => (platform, "done".to_owned()),
    };
    (platform.clone(), text)
}

fn summary(report: &BuildReport, output: &str) -> String {
    let mut t = Table::new(&["PLATFORM", "LAYERS", "SIZE", "MANIFEST", "CACHED"]);
    for p in &report.platforms {
        let size: u64 = p.layers.iter().map(|l| l.size).sum();
        // yes: every layer came from the cache.
        let cached = if p.layers.iter().all(|l| l.cached) { "yes" } else { "no" };
        t.row([
            p.platform.clone(),
            p.layers.len().to_string(),
            human_size(size),
            p.manifest.clone(),
            cached.to_owned(),
        ]);
    }
    let place = if output.is_empty() {
        String::new()
    } else {
        format!(" in {}", printable(output))
    };
    format!(
        "{}index {} ({}){place}\n",
        t.render(),
        report.index,
        report.tags.join(", "),
    )
}

/// `sha256:0123456789ab`.
fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

/// `512 B`, `1.5 KiB`, `3.2 MiB`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use pier_builder::build::{LayerReport, PlatformReport};

    #[test]
    fn cache_dir_order() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| OsString::from(*v))
        };
        let all: &'static [(&str, &str)] = &[("PIER_CACHE_DIR", "/p"), ("XDG_CACHE_HOME", "/x"), ("HOME", "/h")];
        assert_eq!(cache_dir_from_env(env(all)).unwrap(), PathBuf::from("/p"));
        assert_eq!(cache_dir_from_env(env(&all[1..])).unwrap(), PathBuf::from("/x/pier"));
        assert_eq!(
            cache_dir_from_env(env(&all[2..])).unwrap(),
            PathBuf::from("/h/.cache/pier")
        );
        assert_eq!(
            cache_dir_from_env(env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")])).unwrap(),
            PathBuf::from("/h/.cache/pier")
        );
        assert!(cache_dir_from_env(env(&[])).is_err());
    }

    #[test]
    fn event_lines() {
        let e = Event::Layer {
            platform: "linux/amd64".into(),
            name: "app".into(),
            digest: format!("sha256:{}", "ab".repeat(32)),
            size: 2048,
            cached: true,
        };
        assert_eq!(
            describe_event(&e),
            (
                "linux/amd64".to_owned(),
                "layer app: sha256:abababababab 2.0 KiB (cached)".to_owned()
            )
        );
        let done = Event::PlatformDone {
            platform: "linux/sw64".into(),
        };
        assert_eq!(describe_event(&done).1, "done");
        // Without a terminal the progress is plain lines and keeps no bars.
        let p = BuildProgress {
            multi: None,
            bars: Mutex::new(HashMap::new()),
        };
        p.event(e);
        assert!(p.bars.lock().unwrap().is_empty());
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(10), "10 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn summary_table() {
        let layer = |cached| LayerReport {
            digest: "sha256:aa".into(),
            size: 2048,
            cached,
        };
        let report = BuildReport {
            image: "127.0.0.1:5000/t/hello".into(),
            index: "sha256:ii".into(),
            tags: vec!["latest".into(), "1.0".into()],
            platforms: vec![
                PlatformReport {
                    platform: "linux/amd64".into(),
                    manifest: "sha256:mm".into(),
                    config: "sha256:cc".into(),
                    layers: vec![layer(true), layer(true)],
                },
                PlatformReport {
                    platform: "linux/arm64/v8".into(),
                    manifest: "sha256:nn".into(),
                    config: "sha256:dd".into(),
                    layers: vec![layer(false), layer(true)],
                },
            ],
        };
        assert_eq!(
            summary(&report, "oci:out"),
            "PLATFORM        LAYERS  SIZE     MANIFEST   CACHED\n\
             linux/amd64     2       4.0 KiB  sha256:mm  yes\n\
             linux/arm64/v8  2       4.0 KiB  sha256:nn  no\n\
             index sha256:ii (latest, 1.0) in oci:out\n"
        );
    }
}
