//! `pier serve`: settings from flags > environment > config file > defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use pier_registry::auth::IpNet;
use pier_registry::{ConnectionLimits, RegistryConfig, limits};
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
    /// Cap on the audit log's size in MiB (oldest events dropped first); 0: no cap
    /// [default: 1024]
    #[arg(long, env = "PIER_AUDIT_MAX_MB")]
    audit_max_mb: Option<u64>,
    /// Addresses or CIDRs of reverse proxies whose X-Forwarded-For names the client,
    /// comma-separated (e.g. 10.0.0.5,192.168.0.0/24) [default: none]
    #[arg(long, env = "PIER_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Option<Vec<String>>,
    /// Seconds an untouched upload session is kept [default: 86400]
    #[arg(long, env = "PIER_UPLOAD_TTL")]
    upload_ttl_secs: Option<u64>,
    /// Seconds a request head may take to arrive [default: 20]
    #[arg(long, env = "PIER_HEADER_READ_TIMEOUT")]
    header_read_timeout_secs: Option<u64>,
    /// Seconds a keep-alive connection may idle between requests [default: 60]
    #[arg(long, env = "PIER_IDLE_TIMEOUT")]
    idle_timeout_secs: Option<u64>,
    /// Seconds a request body may send nothing before the request ends [default: 60]
    #[arg(long, env = "PIER_BODY_IDLE_TIMEOUT")]
    body_idle_timeout_secs: Option<u64>,
    /// Connections served at once; more are answered 503 [default: 1024]
    #[arg(long, env = "PIER_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// TOML file with any of the keys in README.md's configuration table
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
    audit_max_mb: Option<u64>,
    trusted_proxies: Option<Vec<String>>,
    upload_ttl_secs: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    body_idle_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
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
    audit_max_mb: u64,
    trusted_proxies: Vec<IpNet>,
    upload_ttl: Duration,
    connections: ConnectionLimits,
}

/// `10.0.0.5` or `10.0.0.0/8` (IPv6 likewise).
fn parse_net(s: &str) -> anyhow::Result<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| anyhow::anyhow!("trusted_proxies: {s:?} is not an address or CIDR (e.g. 10.0.0.0/8)"))
}

/// A number of seconds that must be at least 1.
fn seconds(name: &str, v: Option<u64>, default: Duration) -> anyhow::Result<Duration> {
    match v {
        None => Ok(default),
        Some(0) => anyhow::bail!("{name} must be at least 1"),
        Some(n) => Ok(Duration::from_secs(n)),
    }
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
        audit_max_mb: args
            .audit_max_mb
            .or(file.audit_max_mb)
            .unwrap_or(limits::DEFAULT_AUDIT_MAX_BYTES / MIB),
        trusted_proxies: args
            .trusted_proxies
            .or(file.trusted_proxies)
            .unwrap_or_default()
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| parse_net(s))
            .collect::<anyhow::Result<_>>()?,
        upload_ttl: seconds(
            "upload_ttl_secs",
            args.upload_ttl_secs.or(file.upload_ttl_secs),
            limits::DEFAULT_UPLOAD_TTL,
        )?,
        connections: ConnectionLimits {
            header_read_timeout: seconds(
                "header_read_timeout_secs",
                args.header_read_timeout_secs.or(file.header_read_timeout_secs),
                limits::HEADER_READ_TIMEOUT,
            )?,
            idle_timeout: seconds(
                "idle_timeout_secs",
                args.idle_timeout_secs.or(file.idle_timeout_secs),
                limits::IDLE_TIMEOUT,
            )?,
            body_idle_timeout: seconds(
                "body_idle_timeout_secs",
                args.body_idle_timeout_secs.or(file.body_idle_timeout_secs),
                limits::BODY_IDLE_TIMEOUT,
            )?,
            max_connections: match args.max_connections.or(file.max_connections) {
                Some(0) => anyhow::bail!("max_connections must be at least 1"),
                other => other.unwrap_or(limits::MAX_CONNECTIONS),
            },
        },
    })
}

const MIB: u64 = 1024 * 1024;

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
    // Everything pier writes (metadata database, audit log, blobs) is for its own user
    // only, whatever umask it was started with.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    if s.token_ttl.is_zero() {
        anyhow::bail!("token_ttl_secs must be at least 1");
    }
    if !s.listen.ip().is_loopback() && s.public_url.is_none() {
        tracing::warn!(
            listen = %s.listen,
            "listening on a non-loopback address without --public-url: token challenges name the realm after each request's Host header, which a client chooses; set --public-url to the registry's external URL"
        );
    }
    let config = RegistryConfig {
        auth: pier_registry::AuthConfig {
            token_ttl: s.token_ttl,
            audit_retention_days: s.audit_retention_days,
            audit_max_bytes: s.audit_max_mb.saturating_mul(MIB),
            trusted_proxies: s.trusted_proxies.clone(),
            admin_password: std::env::var(ADMIN_PASSWORD_ENV).ok().filter(|p| !p.is_empty()),
            public_url: s.public_url.clone(),
        },
        upload_ttl: s.upload_ttl,
        connections: s.connections.clone(),
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let registry = pier_registry::Registry::open_with(&s.data_dir, config)
            .await
            .with_context(|| format!("cannot open the data dir {}", s.data_dir.display()))?;
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
    fn hardening_keys_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("pier.toml");
        std::fs::write(
            &cfg,
            "trusted_proxies = [\"10.0.0.5\", \"192.168.0.0/24\"]\naudit_max_mb = 64\nupload_ttl_secs = 3600\nidle_timeout_secs = 5\nmax_connections = 100\n",
        )
        .unwrap();
        let s = settings(ServeArgs {
            config: Some(cfg.clone()),
            max_connections: Some(200),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.trusted_proxies.len(), 2);
        assert!(s.trusted_proxies[0].contains(&"10.0.0.5".parse::<std::net::IpAddr>().unwrap()));
        assert_eq!(s.audit_max_mb, 64);
        assert_eq!(s.upload_ttl, Duration::from_secs(3600));
        assert_eq!(s.connections.idle_timeout, Duration::from_secs(5));
        assert_eq!(s.connections.max_connections, 200);
        assert_eq!(s.connections.header_read_timeout, limits::HEADER_READ_TIMEOUT);
        std::fs::write(&cfg, "trusted_proxies = [\"10.0.0.0/33\"]\n").unwrap();
        let e = settings(ServeArgs {
            config: Some(cfg.clone()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("trusted_proxies") && e.contains("10.0.0.0/33"), "{e}");
        std::fs::write(&cfg, "idle_timeout_secs = 0\n").unwrap();
        let e = settings(ServeArgs {
            config: Some(cfg),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("idle_timeout_secs"), "{e}");
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
