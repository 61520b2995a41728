//! `pier build`: the builder library with progress lines on stderr, then a summary table (or
//! the report as JSON on stdout with `--json`).

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::bail;
use pier_builder::build::{self, BuildOptions, BuildReport, Event, Output};

use crate::output::{Table, printable};

/// What `pier build` was given.
pub struct Request {
    pub file: PathBuf,
    pub output: String,
    pub platforms: Vec<String>,
    pub profiles: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub json: bool,
}

pub fn run(req: Request) -> anyhow::Result<()> {
    let output = Output::parse(&req.output)?;
    let cache_dir = match req.cache_dir {
        Some(d) => d,
        None => cache_dir_from_env(|k| std::env::var_os(k))?,
    };
    let opts = BuildOptions {
        spec: req.file,
        platforms: (!req.platforms.is_empty()).then_some(req.platforms),
        profiles: req.profiles,
        cache_dir,
        output,
        epoch: None,
    };
    let report = build::build(&opts, &show)?;
    if req.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", summary(&report, &req.output));
    }
    Ok(())
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

/// One progress line on stderr per event.
fn show(event: Event) {
    let line = match event {
        Event::StepStarted {
            platform,
            index,
            total,
            command,
        } => format!("[{platform}] step {}/{total}: {}", index + 1, printable(&command)),
        Event::StepFinished {
            platform,
            index,
            elapsed,
        } => format!("[{platform}] step {} done in {:.1}s", index + 1, elapsed.as_secs_f64()),
        Event::Layer {
            platform,
            name,
            digest,
            size,
            cached,
        } => format!(
            "[{platform}] layer {}: {} {}{}",
            printable(&name),
            short(&digest),
            human_size(size),
            if cached { " (cached)" } else { "" }
        ),
        Event::PlatformDone { platform } => format!("[{platform}] done"),
    };
    let _ = writeln!(std::io::stderr().lock(), "{line}");
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
    format!(
        "{}index {} ({}) in {}\n",
        t.render(),
        report.index,
        report.tags.join(", "),
        printable(output)
    )
}

/// `sha256:0123456789ab`.
fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

/// `512 B`, `1.5 KiB`, `3.2 MiB`.
fn human_size(bytes: u64) -> String {
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
