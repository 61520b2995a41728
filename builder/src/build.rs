//! `pier build`: a spec → one image per platform, built in parallel → one OCI index.
//!
//! For every selected platform (one thread each) the plan's steps run on the host with
//! `sh -c`, in the spec's directory (or the step's `workdir`, relative to it), with the
//! profile's `PIER_*` variables and the step's env added to the environment; their stdout and
//! stderr go to a per-platform log under the cache directory. A failing step stops every
//! platform: the others check a shared flag between steps (and kill a running step). Then
//! each layer is built through the [`LayerCache`] with the platform's ELF check. Finally the
//! images and one index — tagged with every tag of the spec, listing the platforms in the
//! spec's order — are written to the output.
//!
//! Times (layer mtimes, config `created`) come from [`BuildOptions::epoch`], else
//! [`source_date_epoch`]. A base other than `scratch` is fetched through a [`BaseFetcher`]
//! (pier-client implements it for registries and OCI layouts): the platform's image of the
//! base's index, whose layers go first and whose config the spec's fields extend.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use oci_spec::image::Descriptor;
use pier_arch_profiles::{ProfileError, Profiles};
use pier_oci::Platform;
use serde::Serialize;

use crate::image::{ConfigOptions, ImageError, OciLayout, image_config};
use crate::layer::{self, Layer, LayerCache, LayerEntry, LayerError};
use crate::spec::{self, Plan, Spec, SpecError};

/// Lines of a failing step's log the error shows.
pub const LOG_TAIL_LINES: usize = 20;

/// One platform's image of a base, ready to build on.
pub use pier_oci::layout::BaseImage;

/// Fetches base images. The builder itself speaks to no registry.
pub trait BaseFetcher: Sync {
    /// The image of `platform` in the base `reference` (an index or a single image), its
    /// layers stored under `blobs_dir` (named by digest hex, reused when present). The error
    /// is a message naming the base (e.g. the platforms it has instead).
    fn fetch(&self, reference: &str, platform: &Platform, blobs_dir: &Path) -> Result<BaseImage, String>;
}

/// A function with [`BaseFetcher::fetch`]'s signature fetches bases: how a registry client
/// (pier-client's `Bases`) plugs in without the builder depending on it.
impl<F> BaseFetcher for F
where
    F: Fn(&str, &Platform, &Path) -> Result<BaseImage, String> + Sync,
{
    fn fetch(&self, reference: &str, platform: &Platform, blobs_dir: &Path) -> Result<BaseImage, String> {
        self(reference, platform, blobs_dir)
    }
}

/// The fetcher of [`build`]: every base other than `scratch` is refused.
pub struct NoBases;

impl BaseFetcher for NoBases {
    fn fetch(&self, reference: &str, _platform: &Platform, _blobs_dir: &Path) -> Result<BaseImage, String> {
        Err(format!(
            "{reference}: this build has no registry client to pull base images (`pier build` has one)"
        ))
    }
}

/// Where the images go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// An OCI image layout directory (created when missing, kept when it is one).
    OciDir(PathBuf),
    /// A `docker load`-able tar of one platform's image, tagged `image:tag` for every tag.
    DockerArchive(PathBuf),
}

impl Output {
    /// Parses `--output`: `oci:DIR` or `docker-archive:FILE`.
    pub fn parse(text: &str) -> Result<Output, BuildError> {
        match text.split_once(':') {
            Some(("oci", dir)) if !dir.is_empty() => Ok(Output::OciDir(PathBuf::from(dir))),
            Some(("docker-archive", file)) if !file.is_empty() => Ok(Output::DockerArchive(PathBuf::from(file))),
            _ => Err(BuildError::UnsupportedOutput(text.to_owned())),
        }
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::OciDir(d) => write!(f, "oci:{}", d.display()),
            Output::DockerArchive(p) => write!(f, "docker-archive:{}", p.display()),
        }
    }
}

/// What to build and where.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The `pier.yaml`; relative paths in it are relative to its directory.
    pub spec: PathBuf,
    /// Platforms to build (any alias), in any order; `None`: every platform of the spec.
    /// The spec's order is kept either way.
    pub platforms: Option<Vec<String>>,
    /// A user architecture table merged over the built-in one.
    pub profiles: Option<PathBuf>,
    /// The layer cache and the step logs (`<cache_dir>/logs/`).
    pub cache_dir: PathBuf,
    /// Where the images go.
    pub output: Output,
    /// `SOURCE_DATE_EPOCH`; `None`: [`source_date_epoch`] of the spec's directory.
    pub epoch: Option<u64>,
}

/// Progress of a build, for the caller to show. Sent from the platforms' threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A step is starting.
    StepStarted {
        /// Canonical platform.
        platform: String,
        /// 0-based index of the step.
        index: usize,
        /// Number of steps of the platform.
        total: usize,
        /// The command.
        command: String,
    },
    /// A step ended with success.
    StepFinished {
        /// Canonical platform.
        platform: String,
        /// 0-based index of the step.
        index: usize,
        /// How long it ran.
        elapsed: Duration,
    },
    /// The base image of a platform is ready.
    Base {
        /// Canonical platform.
        platform: String,
        /// The base as the spec names it.
        base: String,
        /// Digest of its manifest for the platform.
        manifest: String,
        /// Number of its layers.
        layers: usize,
    },
    /// A layer is ready.
    Layer {
        /// Canonical platform.
        platform: String,
        /// The layer's name in the spec, else `layers[i]`.
        name: String,
        /// Its digest.
        digest: String,
        /// Compressed size.
        size: u64,
        /// Whether it came from the cache.
        cached: bool,
    },
    /// Every step and layer of a platform is done.
    PlatformDone {
        /// Canonical platform.
        platform: String,
    },
}

/// One layer of a built image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerReport {
    /// Digest of the compressed blob.
    pub digest: String,
    /// Compressed size.
    pub size: u64,
    /// Whether it came from the cache.
    pub cached: bool,
}

/// One platform's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlatformReport {
    /// Canonical platform.
    pub platform: String,
    /// Manifest digest.
    pub manifest: String,
    /// Config digest.
    pub config: String,
    /// Layers, in order.
    pub layers: Vec<LayerReport>,
}

/// What a build produced (also the `--json` output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildReport {
    /// The spec's `image` (where `--push` sends it).
    pub image: String,
    /// Digest of the index.
    pub index: String,
    /// Tags the index got.
    pub tags: Vec<String>,
    /// Images, in the spec's platform order.
    pub platforms: Vec<PlatformReport>,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The spec is invalid (the error names file, line and field).
    #[error("{0}")]
    Spec(SpecError),
    /// The user architecture table is invalid.
    #[error("{0}")]
    Profiles(ProfileError),
    /// An `--output` other than `oci:DIR`.
    #[error("output {0:?} is not supported: give oci:DIR or docker-archive:FILE")]
    UnsupportedOutput(String),
    /// `docker-archive:` with more than one platform.
    #[error(
        "{file}: docker-archive: holds one platform's image, but this build has {count} ({platforms}): \
         choose one with --platform, or write all of them with --output oci:DIR or --push"
    )]
    ArchiveOnePlatform {
        /// The spec file.
        file: String,
        /// How many platforms.
        count: usize,
        /// Which.
        platforms: String,
    },
    /// Writing the docker archive failed.
    #[error("{0}")]
    Archive(Box<crate::archive::ArchiveError>),
    /// A `--platform` that is not a platform of the spec.
    #[error("{file}: platform {given:?} is not one the spec builds (it builds: {known})")]
    PlatformNotInSpec {
        /// The spec file.
        file: String,
        /// As given.
        given: String,
        /// The spec's platforms.
        known: String,
    },
    /// The base image of a platform could not be had.
    #[error("{file}: `base` of {platform}: {message}")]
    Base {
        /// The spec file.
        file: String,
        /// Canonical platform.
        platform: String,
        /// Why (names the base).
        message: String,
    },
    /// A feature of the spec this slice does not implement.
    #[error("{file}: `{field}` of {platform}: {message}")]
    NotImplemented {
        /// The spec file.
        file: String,
        /// Field.
        field: String,
        /// Canonical platform.
        platform: String,
        /// What is missing.
        message: String,
    },
    /// `SOURCE_DATE_EPOCH` is not a number of seconds.
    #[error("SOURCE_DATE_EPOCH={0:?} is not a number of seconds since 1970")]
    BadEpoch(String),
    /// A step exited with failure (or could not be started).
    #[error("{0}")]
    StepFailed(Box<StepFailure>),
    /// A layer could not be built (a file refused by the ELF check, a missing source…).
    #[error("{platform}: layer {layer}: {error}")]
    Layer {
        /// Canonical platform.
        platform: String,
        /// Layer name or `layers[i]`.
        layer: String,
        /// Why (shown in the message, so not chained as a source).
        error: LayerError,
    },
    /// Writing the output failed.
    #[error("{output}: {error}")]
    Image {
        /// The output.
        output: String,
        /// Why (shown in the message, so not chained as a source).
        error: ImageError,
    },
    /// Another platform failed first; this one stopped.
    #[error("{0}: stopped because another platform failed")]
    Cancelled(String),
    /// Reading or writing a file of the build failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// Why (shown in the message, so not chained as a source).
        error: io::Error,
    },
}

/// A failed step: the platform, the command, how it ended and the end of its log.
#[derive(Debug, thiserror::Error)]
#[error("{platform}: step {index} failed: `{command}` {status}\nlog: {log}\n--- last lines of the log ---\n{tail}")]
pub struct StepFailure {
    /// Canonical platform.
    pub platform: String,
    /// 1-based step number.
    pub index: usize,
    /// The command.
    pub command: String,
    /// `exited with status 3`, `was killed by signal 9`, …
    pub status: String,
    /// The platform's log file.
    pub log: String,
    /// Its last [`LOG_TAIL_LINES`] lines.
    pub tail: String,
}

// Not `#[from]`: the messages already hold their causes, so no source chain repeats them.
impl From<SpecError> for BuildError {
    fn from(e: SpecError) -> BuildError {
        BuildError::Spec(e)
    }
}

impl From<ProfileError> for BuildError {
    fn from(e: ProfileError) -> BuildError {
        BuildError::Profiles(e)
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BuildError + '_ {
    move |error| BuildError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// `SOURCE_DATE_EPOCH` from the environment if set, else the time of the last git commit of
/// `dir` (`git -C DIR log -1 --format=%ct`, when git exists and `dir` is in a repository),
/// else 0.
pub fn source_date_epoch(dir: &Path) -> Result<u64, BuildError> {
    if let Some(v) = std::env::var_os("SOURCE_DATE_EPOCH") {
        let v = v.to_string_lossy().trim().to_owned();
        return v.parse().map_err(|_| BuildError::BadEpoch(v));
    }
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["log", "-1", "--format=%ct"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    Ok(match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().parse().unwrap_or(0),
        _ => 0,
    })
}

/// Builds the spec: steps and layers of every platform in parallel, then the images and
/// the index into the output. `progress` receives [`Event`]s from the platforms' threads.
pub fn build(opts: &BuildOptions, progress: &(dyn Fn(Event) + Sync)) -> Result<BuildReport, BuildError> {
    build_with(opts, progress, &NoBases)
}

/// [`build`], with base images other than `scratch` fetched by `bases`.
pub fn build_with(
    opts: &BuildOptions,
    progress: &(dyn Fn(Event) + Sync),
    bases: &dyn BaseFetcher,
) -> Result<BuildReport, BuildError> {
    let profiles = Profiles::load(opts.profiles.as_deref())?;
    let mut spec = Spec::load_with(&opts.spec, &profiles)?;
    let file = spec.file_name().to_owned();
    let spec_dir = match opts.spec.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if let Some(wanted) = &opts.platforms {
        let mut keep = Vec::new();
        for given in wanted {
            let platform = profiles
                .lookup(given)
                .map(|p| p.platform().clone())
                .filter(|p| spec.platforms.contains(p))
                .ok_or_else(|| BuildError::PlatformNotInSpec {
                    file: file.clone(),
                    given: given.clone(),
                    known: spec
                        .platforms
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            keep.push(platform);
        }
        spec.platforms.retain(|p| keep.contains(p));
    }
    let plans = spec.plan(&profiles)?;
    for plan in &plans {
        if plan.compression == spec::Compression::Zstd && matches!(opts.output, Output::DockerArchive(_)) {
            return Err(BuildError::NotImplemented {
                file: file.clone(),
                field: "compression".into(),
                platform: plan.platform.to_string(),
                message: "docker-archive: needs gzip layers (docker load does not read zstd ones); \
                          use --output oci:DIR or --push for zstd"
                    .into(),
            });
        }
    }
    if matches!(opts.output, Output::DockerArchive(_)) && plans.len() != 1 {
        return Err(BuildError::ArchiveOnePlatform {
            file: file.clone(),
            count: plans.len(),
            platforms: plans
                .iter()
                .map(|p| p.platform.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let epoch = match opts.epoch {
        Some(e) => e,
        None => source_date_epoch(&spec_dir)?,
    };
    let cache = LayerCache::open(&opts.cache_dir).map_err(|error| BuildError::Layer {
        platform: "-".into(),
        layer: "cache".into(),
        error,
    })?;
    let logs = opts.cache_dir.join("logs");
    fs::create_dir_all(&logs).map_err(io_err(&logs))?;

    let stop = AtomicBool::new(false);
    let ctx = Ctx {
        file: &file,
        spec_dir: &spec_dir,
        cache: &cache,
        logs: &logs,
        epoch,
        stop: &stop,
        progress,
        profiles: &profiles,
        bases,
    };
    let results: Vec<Result<Built, BuildError>> = std::thread::scope(|s| {
        let handles: Vec<_> = plans.iter().map(|plan| s.spawn(|| ctx.platform(plan))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut built = Vec::new();
    let mut cancelled = None;
    for r in results {
        match r {
            Ok(layers) => built.push(layers),
            Err(e @ BuildError::Cancelled(_)) => cancelled = cancelled.or(Some(e)),
            Err(e) => return Err(e),
        }
    }
    if let Some(e) = cancelled {
        return Err(e);
    }

    // A docker archive is made from an OCI layout in the cache, removed afterwards.
    let scratch_layout;
    let dir = match &opts.output {
        Output::OciDir(dir) => dir.as_path(),
        Output::DockerArchive(_) => {
            scratch_layout = tempfile::Builder::new()
                .prefix("archive-")
                .tempdir_in(&opts.cache_dir)
                .map_err(io_err(&opts.cache_dir))?;
            scratch_layout.path()
        }
    };
    let image_err = |error| BuildError::Image {
        output: opts.output.to_string(),
        error,
    };
    let layout = OciLayout::create(dir).map_err(image_err)?;
    let mut manifests = Vec::new();
    let mut reports = Vec::new();
    for (plan, layers) in plans.iter().zip(&built) {
        let (base, layers) = (&layers.base, &layers.layers);
        let mut only: Vec<Layer> = base.as_ref().map(|b| b.layers.clone()).unwrap_or_default();
        only.extend(layers.iter().map(|(l, _)| l.clone()));
        let (desc, config) = write_image(&layout, plan, base.as_ref(), &only, epoch).map_err(image_err)?;
        reports.push(PlatformReport {
            platform: plan.platform.to_string(),
            manifest: desc.digest().to_string(),
            config,
            layers: layers
                .iter()
                .map(|(l, cached)| LayerReport {
                    digest: l.digest.to_string(),
                    size: l.size,
                    cached: *cached,
                })
                .collect(),
        });
        manifests.push(desc);
    }
    let mut index = None;
    for tag in &spec.tags {
        index = Some(
            layout
                .write_index(&manifests, tag, &BTreeMap::new())
                .map_err(image_err)?,
        );
    }
    let index = match index {
        Some(i) => i,
        // No tags (the spec defaults to `latest`, so only an empty list): write it untagged.
        None => layout.put_index(&manifests, &BTreeMap::new()).map_err(image_err)?,
    };
    if let Output::DockerArchive(file) = &opts.output {
        let repo_tags: Vec<String> = spec.tags.iter().map(|t| format!("{}:{t}", spec.image)).collect();
        crate::archive::write_docker_archive(&layout, &manifests[0], &repo_tags, file)
            .map_err(|e| BuildError::Archive(Box::new(e)))?;
    }
    Ok(BuildReport {
        image: spec.image.clone(),
        index: index.digest().to_string(),
        tags: spec.tags.clone(),
        platforms: reports,
    })
}

/// One platform's image on its base, with the plan's manifest annotations. Returns the
/// manifest descriptor (with its platform) and the config digest.
fn write_image(
    layout: &OciLayout,
    plan: &Plan,
    base: Option<&BaseImage>,
    layers: &[Layer],
    epoch: u64,
) -> Result<(Descriptor, String), ImageError> {
    let own = ConfigOptions {
        env: plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        entrypoint: plan.entrypoint.clone(),
        cmd: plan.cmd.clone(),
        workdir: plan.workdir.clone(),
        user: plan.user.clone(),
        exposed_ports: plan.exposed_ports.clone(),
        labels: plan.labels.clone(),
    };
    let cfg = match base {
        Some(b) => on_base(&b.config, own),
        None => own,
    };
    let mut config = image_config(&plan.platform, layers, &cfg, epoch)?;
    if let Some(b) = base {
        // The base's own history (with its empty_layer entries) replaces the entries
        // generated for its layers.
        let base_history: Vec<oci_spec::image::History> = b
            .config
            .get("history")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| ImageError::Spec {
                what: "base image history",
                message: e.to_string(),
            })?
            .unwrap_or_default();
        let ours = config.history().clone().unwrap_or_default().split_off(b.layers.len());
        config.set_history(Some(base_history.into_iter().chain(ours).collect()));
    }
    let (manifest, config) = layout.write_annotated_image(&plan.platform, layers, &config, &plan.annotations)?;
    Ok((manifest, config.digest().to_string()))
}

/// The spec's config fields over a base's config, as docker does with `FROM`: environment
/// variables replace the base's of the same name, labels and ports add to the base's, and the
/// other fields replace the base's when the spec sets them — except that setting
/// `entrypoint` drops the base's `cmd` (its arguments would belong to another program).
pub fn on_base(base_config: &serde_json::Value, own: ConfigOptions) -> ConfigOptions {
    let c = &base_config["config"];
    let strings = |v: &serde_json::Value| -> Option<Vec<String>> {
        v.as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
    };
    let text = |v: &serde_json::Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    let mut env = strings(&c["Env"]).unwrap_or_default();
    for e in own.env {
        let key = e.split('=').next().unwrap_or("").to_owned();
        match env.iter_mut().find(|b| b.split('=').next() == Some(key.as_str())) {
            Some(slot) => *slot = e,
            None => env.push(e),
        }
    }
    let mut labels: BTreeMap<String, String> = c["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    labels.extend(own.labels);
    let mut exposed_ports: Vec<String> = c["ExposedPorts"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    exposed_ports.extend(own.exposed_ports);
    let cmd = match (&own.cmd, &own.entrypoint) {
        (Some(cmd), _) => Some(cmd.clone()),
        (None, Some(_)) => None,
        (None, None) => strings(&c["Cmd"]),
    };
    ConfigOptions {
        env,
        entrypoint: own.entrypoint.or_else(|| strings(&c["Entrypoint"])),
        cmd,
        workdir: own.workdir.or_else(|| text(&c["WorkingDir"])),
        user: own.user.or_else(|| text(&c["User"])),
        exposed_ports,
        labels,
    }
}

/// A platform's base (if any) and its own layers (with whether each came from the cache).
struct Built {
    base: Option<BaseImage>,
    layers: Vec<(Layer, bool)>,
}

/// What every platform's thread shares.
struct Ctx<'a> {
    file: &'a str,
    spec_dir: &'a Path,
    cache: &'a LayerCache,
    logs: &'a Path,
    epoch: u64,
    stop: &'a AtomicBool,
    progress: &'a (dyn Fn(Event) + Sync),
    profiles: &'a Profiles,
    bases: &'a dyn BaseFetcher,
}

impl Ctx<'_> {
    /// Base, steps, then layers, of one platform; sets the stop flag on failure.
    fn platform(&self, plan: &Plan) -> Result<Built, BuildError> {
        let r = self.platform_inner(plan);
        if matches!(&r, Err(e) if !matches!(e, BuildError::Cancelled(_))) {
            self.stop.store(true, Ordering::SeqCst);
        }
        r
    }

    fn platform_inner(&self, plan: &Plan) -> Result<Built, BuildError> {
        let name = plan.platform.to_string();
        // The base first: a base without this platform fails before any step runs.
        let base = if plan.base == "scratch" {
            None
        } else {
            let image = self
                .bases
                .fetch(&plan.base, &plan.platform, &self.cache.blobs_dir())
                .map_err(|message| BuildError::Base {
                    file: self.file.to_owned(),
                    platform: name.clone(),
                    message,
                })?;
            (self.progress)(Event::Base {
                platform: name.clone(),
                base: plan.base.clone(),
                manifest: image.manifest.clone(),
                layers: image.layers.len(),
            });
            Some(image)
        };
        let log_path = self.logs.join(format!("{}.log", name.replace('/', "-")));
        let mut log = File::create(&log_path).map_err(io_err(&log_path))?;
        for (i, step) in plan.steps.iter().enumerate() {
            if self.stop.load(Ordering::SeqCst) {
                return Err(BuildError::Cancelled(name.clone()));
            }
            (self.progress)(Event::StepStarted {
                platform: name.clone(),
                index: i,
                total: plan.steps.len(),
                command: step.run.clone(),
            });
            let started = Instant::now();
            let dir = match &step.workdir {
                Some(w) => self.spec_dir.join(w),
                None => self.spec_dir.to_path_buf(),
            };
            writeln!(log, "$ {}", step.run).map_err(io_err(&log_path))?;
            log.flush().map_err(io_err(&log_path))?;
            let fail = |status: String, log: &mut File| {
                let tail = tail(&log_path, LOG_TAIL_LINES);
                let _ = writeln!(log, "pier: step {status}");
                BuildError::StepFailed(Box::new(StepFailure {
                    platform: name.clone(),
                    index: i + 1,
                    command: step.run.clone(),
                    status,
                    log: log_path.display().to_string(),
                    tail,
                }))
            };
            let child = (|| {
                Command::new("sh")
                    .arg("-c")
                    .arg(&step.run)
                    .current_dir(&dir)
                    .envs(&plan.vars)
                    .envs(&step.env)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log.try_clone()?)
                    .spawn()
            })();
            let mut child = match child {
                Ok(c) => c,
                Err(e) => {
                    return Err(fail(
                        format!("could not start `sh` in {}: {e}", dir.display()),
                        &mut log,
                    ));
                }
            };
            let status = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break status,
                    Ok(None) if self.stop.load(Ordering::SeqCst) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(BuildError::Cancelled(name.clone()));
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                    Err(e) => return Err(fail(format!("could not be waited for: {e}"), &mut log)),
                }
            };
            if !status.success() {
                return Err(fail(describe(status), &mut log));
            }
            (self.progress)(Event::StepFinished {
                platform: name.clone(),
                index: i,
                elapsed: started.elapsed(),
            });
        }
        if self.stop.load(Ordering::SeqCst) {
            return Err(BuildError::Cancelled(name.clone()));
        }
        let profile = self
            .profiles
            .lookup(&name)
            .filter(|p| p.platform() == &plan.platform)
            .ok_or_else(|| SpecError::UnsupportedPlatform {
                file: self.file.to_owned(),
                platform: name.clone(),
            })?;
        let mut layers = Vec::new();
        for (i, spec_layer) in plan.layers.iter().enumerate() {
            if self.stop.load(Ordering::SeqCst) {
                return Err(BuildError::Cancelled(name.clone()));
            }
            let layer_name = spec_layer.name.clone().unwrap_or_else(|| format!("layers[{i}]"));
            let entries: Vec<LayerEntry> = spec_layer
                .files
                .iter()
                .map(|f| {
                    let mut e = LayerEntry::new(self.spec_dir.join(&f.src), f.dest.clone()).with_owner(f.uid, f.gid);
                    if let Some(m) = f.mode {
                        e = e.with_mode(m);
                    }
                    e
                })
                .collect();
            let allow: Vec<String> = spec_layer
                .files
                .iter()
                .filter(|f| f.allow_elf_mismatch)
                .map(|f| f.dest.clone())
                .collect();
            let check = layer::elf_checker(profile, &allow);
            let (built, cached) = self
                .cache
                .get_or_build(&entries, self.epoch, compression(plan.compression), &check)
                .map_err(|error| BuildError::Layer {
                    platform: name.clone(),
                    layer: layer_name.clone(),
                    error,
                })?;
            (self.progress)(Event::Layer {
                platform: name.clone(),
                name: layer_name,
                digest: built.digest.to_string(),
                size: built.size,
                cached,
            });
            layers.push((built, cached));
        }
        (self.progress)(Event::PlatformDone { platform: name });
        Ok(Built { base, layers })
    }
}

/// The layer compressor for the spec's `compression`.
fn compression(c: spec::Compression) -> layer::Compression {
    match c {
        spec::Compression::Gzip => layer::Compression::Gzip,
        spec::Compression::Zstd => layer::Compression::Zstd,
    }
}

/// `exited with status 3` or `was killed by signal 9`.
fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(sig) = status.signal() {
            return format!("was killed by signal {sig}");
        }
    }
    format!("ended with {status}")
}

/// The last `n` lines of a file (of its last 64 KiB), lossily decoded.
fn tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
