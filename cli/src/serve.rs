//! `pier serve`: settings from flags > environment > config file > defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

const DEFAULT_LISTEN: &str = "127.0.0.1:5000";
const DEFAULT_DATA_DIR: &str = "./pier-data";
const DEFAULT_LOG: &str = "info";

/// Flags of `pier serve`. Every one is optional so that the config file can fill it.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:5000]
    #[arg(long, env = "PIER_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory holding blobs, uploads and metadata [default: ./pier-data]
    #[arg(long, env = "PIER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Log filter, e.g. `info` or `pier_registry=debug` [default: info]
    #[arg(long, env = "PIER_LOG")]
    log: Option<String>,
    /// The registry's external URL (e.g. https://registry.example.com), used in token
    /// challenges when pier runs behind a proxy [default: from the request's Host]
    #[arg(long, env = "PIER_PUBLIC_URL")]
    public_url: Option<String>,
    /// Lifetime of issued tokens in seconds [default: 300]
    #[arg(long, env = "PIER_TOKEN_TTL")]
    token_ttl_secs: Option<u64>,
    /// Days audit events are kept; 0 keeps them forever [default: 180]
    #[arg(long, env = "PIER_AUDIT_RETENTION_DAYS")]
    audit_retention_days: Option<u64>,
    /// TOML file with any of: listen, data_dir, log, public_url, token_ttl_secs,
    /// audit_retention_days
    #[arg(long, env = "PIER_CONFIG")]
    config: Option<PathBuf>,
}

/// The first admin password, read on first start only. An environment variable rather
/// than a flag, so that it does not show in process listings.
const ADMIN_PASSWORD_ENV: &str = "PIER_ADMIN_PASSWORD";

/// The config file's shape. Unknown keys are errors, so a typo is never silently ignored.
#[derive(Deserialize, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    log: Option<String>,
    public_url: Option<String>,
    token_ttl_secs: Option<u64>,
    audit_retention_days: Option<u64>,
}

/// The settings `pier serve` runs with.
#[derive(Debug, PartialEq)]
struct Settings {
    listen: SocketAddr,
    data_dir: PathBuf,
    log: String,
    public_url: Option<String>,
    token_ttl: std::time::Duration,
    audit_retention_days: u64,
}

fn read_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
}

fn settings(args: ServeArgs) -> anyhow::Result<Settings> {
    let file = match &args.config {
        Some(p) => read_config(p)?,
        None => FileConfig::default(),
    };
    Ok(Settings {
        listen: args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("default address")),
        data_dir: args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
        log: args.log.or(file.log).unwrap_or_else(|| DEFAULT_LOG.into()),
        public_url: args.public_url.or(file.public_url),
        token_ttl: args
            .token_ttl_secs
            .or(file.token_ttl_secs)
            .map_or(pier_registry::limits::DEFAULT_TOKEN_TTL, std::time::Duration::from_secs),
        audit_retention_days: args
            .audit_retention_days
            .or(file.audit_retention_days)
            .unwrap_or(pier_registry::limits::DEFAULT_AUDIT_RETENTION_DAYS),
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let s = settings(args)?;
    let filter =
        tracing_subscriber::EnvFilter::try_new(&s.log).with_context(|| format!("invalid log filter {:?}", s.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    std::fs::create_dir_all(&s.data_dir).with_context(|| format!("cannot create data dir {}", s.data_dir.display()))?;
    if s.token_ttl.is_zero() {
        anyhow::bail!("token_ttl_secs must be at least 1");
    }
    let auth = pier_registry::AuthConfig {
        token_ttl: s.token_ttl,
        audit_retention_days: s.audit_retention_days,
        admin_password: std::env::var(ADMIN_PASSWORD_ENV).ok().filter(|p| !p.is_empty()),
        public_url: s.public_url.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let registry = pier_registry::Registry::open(&s.data_dir, auth).await?;
        let listener = tokio::net::TcpListener::bind(s.listen)
            .await
            .with_context(|| format!("cannot listen on {}", s.listen))?;
        tracing::info!(listen = %listener.local_addr()?, data_dir = %s.data_dir.display(), "pier registry serving");
        pier_registry::serve(listener, registry, shutdown_signal()).await?;
        anyhow::Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = settings(ServeArgs::default()).unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn flags_beat_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("pier.toml");
        std::fs::write(&cfg, "listen = \"127.0.0.1:6000\"\ndata_dir = \"/srv/pier\"\n").unwrap();
        let s = settings(ServeArgs {
            config: Some(cfg.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.listen.port(), 6000);
        assert_eq!(s.data_dir, PathBuf::from("/srv/pier"));
        let s = settings(ServeArgs {
            config: Some(cfg),
            listen: Some("127.0.0.1:7000".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.listen.port(), 7000);
        assert_eq!(s.data_dir, PathBuf::from("/srv/pier"));
    }

    #[test]
    fn bad_config_names_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("pier.toml");
        std::fs::write(&cfg, "listn = \"127.0.0.1:6000\"\n").unwrap();
        let e = settings(ServeArgs {
            config: Some(cfg.clone()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("pier.toml") && e.contains("listn"), "{e}");
        std::fs::write(&cfg, "listen = \"not an address\"\n").unwrap();
        let e = settings(ServeArgs {
            config: Some(cfg),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("listen"), "{e}");
    }
}
