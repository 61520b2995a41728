//! `pier inspect`, `pier copy`, `pier pull` and `pier index create`: moving images between
//! registries and OCI layouts with `pier-client`, with progress bars on a terminal and one
//! summary (or the client's report as JSON with `--json`) at the end.
//!
//! The CLI is synchronous; each command runs the async client on a small runtime of its own.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use pier_client::copy::{CopyReport, Select};
use pier_client::index::{IndexOptions, IndexReport, Inspection, Source};
use pier_client::location::DEFAULT_TAG;
use pier_client::{ImageStore, Location};
use pier_oci::{Platform, Reference, media};

use crate::Remote;
use crate::build::human_size;
use crate::output::{Table, printable};
use crate::progress::Progress;
use crate::registries::Reach;

/// `pier inspect REF`.
#[derive(Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The image or index: HOST[:PORT]/REPO[:TAG|@DIGEST] (without HOST: the current
    /// server), or oci:DIR[:TAG]; the tag defaults to latest
    #[arg(value_name = "REF")]
    pub reference: String,
}

/// `pier copy SRC DST`.
#[derive(Args)]
pub struct CopyArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// What to copy: HOST[:PORT]/REPO[:TAG|@DIGEST] or oci:DIR[:TAG] (tag: latest when
    /// none is given)
    #[arg(value_name = "SRC")]
    pub src: String,
    /// Where to: HOST[:PORT]/REPO[:TAG] or oci:DIR[:TAG]; without a tag, SRC's tag (else
    /// latest)
    #[arg(value_name = "DST")]
    pub dst: String,
    /// Copy an index as it is, every platform (the same digest at DST)
    #[arg(long, conflicts_with = "platforms")]
    pub all: bool,
    /// Copy only this platform (any alias: aarch64, loongarch64, …; repeatable): one gives
    /// that image alone, several a new index of them. Without --all or --platform, SRC must
    /// be a single image
    #[arg(long = "platform", value_name = "P")]
    pub platforms: Vec<Platform>,
}

/// `pier pull REF --platform P --output DIR`.
#[derive(Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// The image or index: HOST[:PORT]/REPO[:TAG|@DIGEST] (without HOST: the current
    /// server), or oci:DIR[:TAG]
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The platform to take (any alias: amd64, aarch64, loongarch64, …)
    #[arg(long, value_name = "P")]
    pub platform: Platform,
    /// The OCI image layout to write, created when missing (DIR, or oci:DIR[:TAG]); the
    /// image is tagged with REF's tag, else latest
    #[arg(short, long, value_name = "DIR")]
    pub output: String,
}

/// `pier index …`.
#[derive(Subcommand)]
pub enum IndexCommand {
    /// Merge single-arch images and indexes into one multi-arch index at TARGET.
    ///
    /// Images that are elsewhere (another repository, another registry, an OCI layout) are
    /// copied into TARGET's repository first, mounted when they are in the same registry.
    /// Two entries for one platform are refused unless --replace.
    Create(IndexCreateArgs),
}

/// `pier index create TARGET --from REF…`.
#[derive(Args)]
pub struct IndexCreateArgs {
    /// Where the index goes: HOST[:PORT]/REPO:TAG or oci:DIR:TAG (a tag is required)
    #[arg(value_name = "TARGET")]
    pub target: String,
    /// An image or index whose platforms go into the index (repeatable; entries keep this
    /// order)
    #[arg(long = "from", value_name = "REF", required = true)]
    pub from: Vec<String>,
    /// Start from the entries of the index TARGET names now (if there is one)
    #[arg(long)]
    pub append: bool,
    /// A platform given again replaces the earlier entry instead of being refused
    #[arg(long)]
    pub replace: bool,
}

/// `pier inspect`.
pub fn inspect(args: InspectArgs, json: bool) -> anyhow::Result<()> {
    let reach = Reach::load(args.remote.server.as_deref())?;
    let location = reach.location(&args.reference)?;
    let registries = reach.registries(&[&location]);
    let store = pier_client::open(&location, &registries);
    let reference = location.reference_or_default();
    let inspection = runtime()?.block_on(pier_client::index::inspect(store.as_ref(), &reference))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&inspection)?);
    } else {
        print!("{}", inspection_text(&inspection));
    }
    Ok(())
}

/// `pier copy`.
pub fn copy(args: CopyArgs, json: bool) -> anyhow::Result<()> {
    let reach = Reach::load(args.remote.server.as_deref())?;
    let src = reach.location(&args.src)?;
    let dst = reach.location(&args.dst)?;
    let dst = match dst.reference() {
        Some(_) => dst,
        None => dst.with_reference(Some(tag_of(&src))),
    };
    let select = if args.all {
        Some(Select::All)
    } else if args.platforms.is_empty() {
        None
    } else {
        Some(Select::Platforms(dedup(args.platforms)))
    };
    let report = transfer(&reach, &src, &dst, select)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("copied {} to {}: {}", shown(&src), shown(&dst), copy_summary(&report));
    }
    Ok(())
}

/// `pier pull`: a copy of one platform into an OCI layout.
pub fn pull(args: PullArgs, json: bool) -> anyhow::Result<()> {
    let reach = Reach::load(args.remote.server.as_deref())?;
    let src = reach.location(&args.reference)?;
    let dst = output_layout(&args.output)?;
    let dst = match dst.reference() {
        Some(Reference::Digest(_)) => bail!("--output {}: give a directory (and a tag), not a digest", args.output),
        Some(_) => dst,
        None => dst.with_reference(Some(tag_of(&src))),
    };
    let platform = args.platform.to_string();
    let report = transfer(&reach, &src, &dst, Some(Select::Platforms(vec![args.platform])))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "pulled {platform} of {} into {}: {}",
            shown(&src),
            shown(&dst),
            copy_summary(&report)
        );
    }
    Ok(())
}

/// `pier index …`.
pub fn index(remote: &Remote, command: IndexCommand, json: bool) -> anyhow::Result<()> {
    match command {
        IndexCommand::Create(a) => index_create(remote, a, json),
    }
}

fn index_create(remote: &Remote, args: IndexCreateArgs, json: bool) -> anyhow::Result<()> {
    let reach = Reach::load(remote.server.as_deref())?;
    let target = reach.location(&args.target)?;
    let tag = match target.reference() {
        Some(r @ Reference::Tag(_)) => r.clone(),
        Some(Reference::Digest(_)) => bail!(
            "{}: an index is stored under a tag, not a digest: give TARGET as REPO:TAG",
            shown(&target)
        ),
        None => bail!(
            "{}: TARGET needs a tag for the index, e.g. {}:1.0",
            shown(&target),
            shown(&target)
        ),
    };
    let froms = args
        .from
        .iter()
        .map(|f| reach.location(f))
        .collect::<anyhow::Result<Vec<Location>>>()?;
    let mut all: Vec<&Location> = vec![&target];
    all.extend(&froms);
    let registries = reach.registries(&all);
    let dst = pier_client::open(&target, &registries);
    let stores: Vec<Box<dyn ImageStore>> = froms.iter().map(|l| pier_client::open(l, &registries)).collect();
    let sources: Vec<Source<'_>> = froms
        .iter()
        .zip(&stores)
        .map(|(l, s)| Source {
            store: s.as_ref(),
            reference: l.reference_or_default(),
        })
        .collect();
    let options = IndexOptions {
        append: args.append,
        replace: args.replace,
    };
    let report = runtime()?.block_on(async {
        let progress = Progress::new();
        pier_client::index::create_index(dst.as_ref(), &tag, &sources, options, &|e| progress.event(e)).await
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", index_text(&report));
    }
    Ok(())
}

/// Copies `src` to `dst` (both with a reference). Without a selection, `src` must be a
/// single image: an index is refused with its platforms listed, before anything is copied.
fn transfer(reach: &Reach, src: &Location, dst: &Location, select: Option<Select>) -> anyhow::Result<CopyReport> {
    let registries = reach.registries(&[src, dst]);
    let from = pier_client::open(src, &registries);
    let to = pier_client::open(dst, &registries);
    let src_ref = src.reference_or_default();
    let dst_ref = dst.reference_or_default();
    let src_shown = shown(&src.with_reference(Some(src_ref.clone())));
    let dst_shown = shown(&dst.with_reference(Some(dst_ref.clone())));
    let report = runtime()?.block_on(async {
        let select = match select {
            Some(s) => s,
            None => {
                let top = from.get_manifest(&src_ref).await?;
                if top.is_index() {
                    let platforms = pier_client::copy::platform_list(&top.index(&src_shown)?.manifests);
                    bail!(
                        "{src_shown} is a multi-platform index ({}): give --all to copy it as it is, or \
                         --platform P (repeatable) to pick images from it",
                        platforms
                    );
                }
                Select::All
            }
        };
        let progress = Progress::new();
        // The copy writes the destination's manifest last, so a failure leaves it untouched.
        let report = pier_client::copy::copy(from.as_ref(), &src_ref, to.as_ref(), &dst_ref, &select, &|e| {
            progress.event(e)
        })
        .await
        .with_context(|| format!("copy to {dst_shown} stopped: {dst_shown} was not written"))?;
        anyhow::Ok(report)
    })?;
    Ok(report)
}

/// A runtime for one command.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The tag a destination without one takes: the source's tag, else `latest`.
fn tag_of(src: &Location) -> Reference {
    match src.reference() {
        Some(r @ Reference::Tag(_)) => r.clone(),
        _ => Reference::Tag(DEFAULT_TAG.parse().expect("a valid tag")),
    }
}

/// `--output DIR` or `--output oci:DIR[:TAG]`.
fn output_layout(text: &str) -> anyhow::Result<Location> {
    if text.starts_with("oci:") {
        return Ok(Location::parse(text, None)?);
    }
    if text.is_empty() {
        bail!("--output needs a directory");
    }
    Ok(Location::Layout {
        dir: PathBuf::from(text),
        reference: None,
    })
}

/// Platforms in the order given, each once (`aarch64` and `arm64` are one).
fn dedup(platforms: Vec<Platform>) -> Vec<Platform> {
    let mut out: Vec<Platform> = Vec::new();
    for p in platforms {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// A location for messages (layout paths may hold anything).
fn shown(location: &Location) -> String {
    printable(&location.to_string())
}

/// `index sha256:… (linux/amd64, linux/arm64/v8); 4 blobs sent (1.2 MiB), 0 mounted, 0 already there`.
fn copy_summary(r: &CopyReport) -> String {
    let kind = if media::is_index(&r.media_type) {
        "index"
    } else {
        "image"
    };
    format!(
        "{kind} {} ({}); {} blob{} sent ({}), {} mounted, {} already there",
        r.digest,
        printable(&r.platforms.join(", ")),
        r.blobs_copied,
        if r.blobs_copied == 1 { "" } else { "s" },
        human_size(r.bytes_copied),
        r.blobs_mounted,
        r.blobs_present
    )
}

/// The first line says what the reference names; then one row per platform.
fn inspection_text(i: &Inspection) -> String {
    let kind = if i.index { "index" } else { "image" };
    let count = match i.images.len() {
        1 => "1 platform".to_owned(),
        n => format!("{n} platforms"),
    };
    let mut t = Table::new(&["PLATFORM", "DIGEST", "LAYERS", "SIZE"]);
    for image in &i.images {
        t.row([
            image.platform.clone(),
            image.digest.clone(),
            image.layers.to_string(),
            human_size(image.size),
        ]);
    }
    format!(
        "{}: {kind} {} ({}), {count}\n{}",
        printable(&i.reference),
        i.digest,
        printable(&i.media_type),
        t.render()
    )
}

/// The entries, then the index's digest and what was moved.
fn index_text(r: &IndexReport) -> String {
    let mut t = Table::new(&["PLATFORM", "DIGEST", "FROM"]);
    for e in &r.entries {
        t.row([e.platform.clone(), e.digest.clone(), e.from.clone()]);
    }
    format!(
        "{}index {} at {}; {} blob{} sent, {} mounted, {} already there\n",
        t.render(),
        r.digest,
        printable(&r.target),
        r.blobs_copied,
        if r.blobs_copied == 1 { "" } else { "s" },
        r.blobs_mounted,
        r.blobs_present
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pier_client::index::{ImageSummary, IndexEntry};

    fn parse(args: &[&str]) -> Result<crate::Cli, clap::Error> {
        use clap::Parser as _;
        crate::Cli::try_parse_from(std::iter::once("pier").chain(args.iter().copied()))
    }

    #[test]
    fn copy_flags() {
        let cli = parse(&[
            "copy",
            "oci:out:1.0",
            "h:5000/a/b",
            "--platform",
            "aarch64",
            "--platform",
            "x86_64",
        ])
        .unwrap();
        let crate::Command::Copy(a) = cli.command else {
            panic!("not copy")
        };
        assert_eq!(
            (a.src.as_str(), a.dst.as_str(), a.all),
            ("oci:out:1.0", "h:5000/a/b", false)
        );
        let names: Vec<String> = a.platforms.iter().map(Platform::to_string).collect();
        assert_eq!(names, ["linux/arm64/v8", "linux/amd64"]);
        let both = parse(&["copy", "a.b/c/d", "a.b/c/e", "--all", "--platform", "amd64"])
            .err()
            .unwrap();
        assert_eq!(both.kind(), clap::error::ErrorKind::ArgumentConflict);
        let bad = parse(&["copy", "a.b/c/d", "a.b/c/e", "--platform", "s390x"])
            .err()
            .unwrap();
        assert!(bad.to_string().contains("s390x"), "{bad}");
    }

    #[test]
    fn pull_needs_a_platform_and_an_output() {
        let cli = parse(&[
            "pull",
            "h:5000/a/b:1",
            "--platform",
            "loongarch64",
            "-o",
            "out",
            "--json",
        ])
        .unwrap();
        assert!(cli.json);
        let crate::Command::Pull(a) = cli.command else {
            panic!("not pull")
        };
        assert_eq!(
            (a.platform.to_string().as_str(), a.output.as_str()),
            ("linux/loong64", "out")
        );
        for missing in [
            &["pull", "h:5000/a/b:1", "-o", "out"][..],
            &["pull", "h:5000/a/b:1", "--platform", "amd64"],
        ] {
            let e = parse(missing).err().unwrap();
            assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument, "{missing:?}");
        }
    }

    #[test]
    fn index_create_flags() {
        let cli = parse(&[
            "index",
            "create",
            "h:5000/a/app:1",
            "--from",
            "h:5000/a/x:1",
            "--from",
            "oci:y:1",
            "--append",
            "--server",
            "http://h:5000",
        ])
        .unwrap();
        let crate::Command::Index {
            remote,
            command: IndexCommand::Create(a),
        } = cli.command
        else {
            panic!("not index create")
        };
        assert_eq!(remote.server.as_deref(), Some("http://h:5000"));
        assert_eq!(a.from, ["h:5000/a/x:1", "oci:y:1"]);
        assert!(a.append && !a.replace);
        let e = parse(&["index", "create", "h:5000/a/app:1"]).err().unwrap();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn destination_tags() {
        let src = Location::parse("h.example/a/b:1.0", None).unwrap();
        assert_eq!(tag_of(&src).to_string(), "1.0");
        let bare = Location::parse("h.example/a/b", None).unwrap();
        assert_eq!(tag_of(&bare).to_string(), "latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let by_digest = Location::parse(&format!("h.example/a/b@{d}"), None).unwrap();
        assert_eq!(tag_of(&by_digest).to_string(), "latest");
    }

    #[test]
    fn output_layouts() {
        assert_eq!(output_layout("out").unwrap().to_string(), "oci:out");
        assert_eq!(output_layout("oci:out:2").unwrap().to_string(), "oci:out:2");
        assert_eq!(output_layout("/tmp/x y").unwrap().to_string(), "oci:/tmp/x y");
        assert!(output_layout("").is_err());
        assert!(output_layout("oci:").is_err());
    }

    #[test]
    fn platforms_once_each() {
        let p = |s: &str| s.parse::<Platform>().unwrap();
        assert_eq!(
            dedup(vec![p("aarch64"), p("amd64"), p("linux/arm64/v8")]),
            [p("arm64"), p("amd64")]
        );
    }

    #[test]
    fn copy_line() {
        let r = CopyReport {
            digest: "sha256:ii".into(),
            media_type: media::OCI_INDEX.into(),
            platforms: vec!["linux/amd64".into(), "linux/arm64/v8".into()],
            blobs_copied: 4,
            bytes_copied: 3 * 1024 * 1024,
            blobs_mounted: 1,
            blobs_present: 2,
        };
        assert_eq!(
            copy_summary(&r),
            "index sha256:ii (linux/amd64, linux/arm64/v8); 4 blobs sent (3.0 MiB), 1 mounted, 2 already there"
        );
    }

    #[test]
    fn inspection_table() {
        let i = Inspection {
            reference: "h:5000/a/b:1.0".into(),
            digest: "sha256:ii".into(),
            media_type: media::OCI_INDEX.into(),
            index: true,
            images: vec![ImageSummary {
                platform: "linux/amd64".into(),
                digest: "sha256:mm".into(),
                media_type: media::OCI_MANIFEST.into(),
                config: "sha256:cc".into(),
                layers: 1,
                size: 2048,
            }],
        };
        assert_eq!(
            inspection_text(&i),
            "h:5000/a/b:1.0: index sha256:ii (application/vnd.oci.image.index.v1+json), 1 platform\n\
             PLATFORM     DIGEST     LAYERS  SIZE\n\
             linux/amd64  sha256:mm  1       2.0 KiB\n"
        );
    }

    #[test]
    fn index_table() {
        let r = IndexReport {
            target: "h:5000/a/app:1.0".into(),
            digest: "sha256:ii".into(),
            entries: vec![IndexEntry {
                platform: "linux/amd64".into(),
                digest: "sha256:mm".into(),
                from: "h:5000/a/app-amd64:1.0".into(),
            }],
            blobs_copied: 1,
            blobs_mounted: 2,
            blobs_present: 0,
        };
        assert_eq!(
            index_text(&r),
            "PLATFORM     DIGEST     FROM\n\
             linux/amd64  sha256:mm  h:5000/a/app-amd64:1.0\n\
             index sha256:ii at h:5000/a/app:1.0; 1 blob sent, 2 mounted, 0 already there\n"
        );
    }
}
