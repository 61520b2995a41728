//! The registry's configuration. [`RegistryConfig`] is the config file's shape (TOML,
//! unknown keys refused); [`KEYS`] is the one table of its keys, giving for each where else
//! it may be set (a `PIER_…` environment variable, a `pier serve` flag) and what it means.
//! [`RegistryConfig::load`] layers them: defaults < file < environment < flags. README's
//! configuration table is rendered from the same table ([`markdown_table`]).
//!
//! Keys of the file that are lists of tables (upstream registries to proxy, chart mirrors)
//! belong in the file only: they become fields here with no row in [`KEYS`].

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::auth::AuthConfig;
use crate::limits;
use crate::metrics::MetricsConfig;

/// Where `pier serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 5000));
/// The data directory unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = "./pier-data";
/// The log filter unless told otherwise.
pub const DEFAULT_LOG: &str = "info";
/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "PIER_CONFIG";
/// The `pier serve` flag naming the config file.
pub const CONFIG_FLAG: &str = "config";

const MIB: u64 = 1024 * 1024;

/// Everything a registry is opened with: the config file's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Where `pier serve` listens.
    pub listen: SocketAddr,
    /// Blobs, upload sessions, metadata, the audit log and the token signing key.
    pub data_dir: PathBuf,
    /// The registry's external URL (e.g. `https://registry.example.com`), for the token
    /// realm in challenges. Without it the realm is built from the request's `Host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// The log filter (`info`, `pier_registry=debug`, …).
    pub log: String,
    /// `[auth]`: access control and the audit log.
    pub auth: AuthConfig,
    /// `[uploads]`: upload sessions.
    pub uploads: UploadConfig,
    /// `[connections]`: connection timeouts and limits (used by [`crate::serve`]).
    pub connections: ConnectionLimits,
    /// `[storage]`: where blobs are kept.
    pub storage: StorageConfig,
    /// `[metadata]`: where registry metadata, accounts and the audit log are kept.
    pub metadata: MetadataConfig,
    /// `[metrics]`: Prometheus metrics at `/metrics`.
    pub metrics: MetricsConfig,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            listen: DEFAULT_LISTEN,
            data_dir: DEFAULT_DATA_DIR.into(),
            public_url: None,
            log: DEFAULT_LOG.into(),
            auth: AuthConfig::default(),
            uploads: UploadConfig::default(),
            connections: ConnectionLimits::default(),
            storage: StorageConfig::default(),
            metadata: MetadataConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// Upload sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadConfig {
    /// An upload session untouched for this long (no chunk received) is dropped with its
    /// bytes, by a sweep every `sweep_every`; its URL then answers `BLOB_UPLOAD_UNKNOWN`.
    #[serde(rename = "upload_ttl_secs", with = "secs")]
    pub ttl: Duration,
    /// How often expired upload sessions are swept (tuning for tests, not a key).
    #[serde(skip)]
    pub sweep_every: Duration,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            ttl: limits::DEFAULT_UPLOAD_TTL,
            sweep_every: limits::UPLOAD_SWEEP_EVERY,
        }
    }
}

/// How long connections may idle or stall, and how many may be open at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionLimits {
    /// A request's head must arrive whole within this time after its first byte.
    #[serde(rename = "header_read_timeout_secs", with = "secs")]
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this long.
    #[serde(rename = "idle_timeout_secs", with = "secs")]
    pub idle_timeout: Duration,
    /// A request body that delivers no bytes for this long ends the request (an upload
    /// keeps what arrived and can be resumed).
    #[serde(rename = "body_idle_timeout_secs", with = "secs")]
    pub body_idle_timeout: Duration,
    /// Connections served at once; more are answered 503 and closed.
    #[serde(deserialize_with = "at_least_one")]
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: limits::HEADER_READ_TIMEOUT,
            idle_timeout: limits::IDLE_TIMEOUT,
            body_idle_timeout: limits::BODY_IDLE_TIMEOUT,
            max_connections: limits::MAX_CONNECTIONS,
        }
    }
}

/// The blob store backend (`[storage] backend = "…"`). A backend is one arm here and one
/// in `backends::open`; its settings, if any, are the arm's fields (arms are structs even
/// without any: serde ignores unknown keys next to a unit arm's tag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum StorageConfig {
    /// Files under the data directory (`DATA/blobs`, `DATA/uploads`).
    Fs {},
    /// In memory: gone when the process ends (tests, embedding).
    Memory {},
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig::Fs {}
    }
}

/// The metadata backend (`[metadata] backend = "…"`): registry metadata, accounts and the
/// audit log. A backend is one arm here and one in `backends::open`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum MetadataConfig {
    /// sled under `DATA/meta`, the audit log as files under `DATA/audit`.
    Sled {},
    /// In memory: gone when the process ends (tests, embedding).
    Memory {},
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig::Sled {}
    }
}

/// Durations as whole seconds, at least one (a zero timeout would refuse everything).
pub(crate) mod secs {
    use std::time::Duration;

    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match u64::deserialize(d)? {
            0 => Err(D::Error::custom("must be at least 1 (seconds)")),
            n => Ok(Duration::from_secs(n)),
        }
    }
}

/// A byte count written as whole MiB.
pub(crate) mod mib {
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(bytes / super::MIB)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        Ok(u64::deserialize(d)?.saturating_mul(super::MIB))
    }
}

/// Addresses or CIDRs (`10.0.0.5`, `10.0.0.0/8`, IPv6 likewise), written as CIDRs.
pub(crate) mod nets {
    use ipnet::IpNet;
    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(nets: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(nets.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| D::Error::custom(format!("{s:?} is not an address or CIDR (e.g. 10.0.0.0/8)")))
            })
            .collect()
    }
}

fn at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    match usize::deserialize(d)? {
        0 => Err(serde::de::Error::custom("must be at least 1")),
        n => Ok(n),
    }
}

/// How an environment variable's or a flag's text becomes a config value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Text as is; the name says what it holds in help (`ADDR`, `DIR`, …).
    Text(&'static str),
    /// A whole number.
    Number,
    /// `true` or `false`.
    Bool,
    /// Comma-separated items (a TOML array in the file).
    List,
}

impl Kind {
    /// What a flag takes, for help.
    pub fn value_name(self) -> &'static str {
        match self {
            Kind::Text(name) => name,
            Kind::Number => "N",
            Kind::Bool => "BOOL",
            Kind::List => "LIST",
        }
    }

    fn parse(self, text: &str) -> Result<toml::Value, String> {
        match self {
            Kind::Text(_) => Ok(toml::Value::String(text.to_owned())),
            Kind::Number => text
                .trim()
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| format!("{text:?} is not a whole number")),
            Kind::Bool => text
                .trim()
                .parse::<bool>()
                .map(toml::Value::Boolean)
                .map_err(|_| format!("{text:?} is not true or false")),
            Kind::List => Ok(toml::Value::Array(
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_owned()))
                    .collect(),
            )),
        }
    }
}

/// One configuration key: its place in the file and where else it may be set.
#[derive(Debug, PartialEq)]
pub struct Key {
    /// Dotted path in the file: `auth.token_ttl_secs` is `token_ttl_secs` in `[auth]` (and
    /// `auth.token_ttl_secs = 300` is the same line in TOML).
    pub path: &'static str,
    /// The environment variable that sets it.
    pub env: &'static str,
    /// The `pier serve` flag (without `--`) that sets it. None for secrets, which must not
    /// show in process listings.
    pub flag: Option<&'static str>,
    /// How an environment or flag value is read.
    pub kind: Kind,
    /// What it means, in Markdown (README and `--help`).
    pub help: &'static str,
    /// Words for the default where its value says too little ("from the request's Host").
    pub default_note: Option<&'static str>,
    /// Also accepted at the top level of the file, its place before the file had sections.
    pub was_flat: bool,
}

impl Key {
    const fn new(path: &'static str, env: &'static str, flag: &'static str, kind: Kind, help: &'static str) -> Key {
        Key {
            path,
            env,
            flag: Some(flag),
            kind,
            help,
            default_note: None,
            was_flat: false,
        }
    }

    const fn note(self, default_note: &'static str) -> Key {
        Key {
            default_note: Some(default_note),
            ..self
        }
    }

    const fn env_only(path: &'static str, env: &'static str, kind: Kind, help: &'static str) -> Key {
        Key {
            flag: None,
            ..Key::new(path, env, "", kind, help)
        }
    }

    const fn was_flat(self) -> Key {
        Key { was_flat: true, ..self }
    }

    /// The key's name at the top level of the file before it had sections.
    fn flat_name(&self) -> Option<&'static str> {
        self.was_flat
            .then(|| self.path.rsplit_once('.').map(|(_, leaf)| leaf))
            .flatten()
    }
}

/// Every key that may be set from the environment or a flag, in README order.
pub const KEYS: &[Key] = &[
    Key::new("listen", "PIER_LISTEN", "listen", Kind::Text("ADDR"), "address to listen on"),
    Key::new(
        "data_dir",
        "PIER_DATA_DIR",
        "data-dir",
        Kind::Text("DIR"),
        "blobs, upload sessions and metadata",
    ),
    Key::new(
        "log",
        "PIER_LOG",
        "log",
        Kind::Text("FILTER"),
        "log filter (`info`, `debug`, `pier_registry=debug`, …)",
    ),
    Key::new(
        "public_url",
        "PIER_PUBLIC_URL",
        "public-url",
        Kind::Text("URL"),
        "external URL, for the token realm in challenges",
    )
    .note("from the request's `Host`"),
    Key::new(
        "auth.token_ttl_secs",
        "PIER_TOKEN_TTL",
        "token-ttl-secs",
        Kind::Number,
        "lifetime of issued tokens",
    )
    .was_flat(),
    Key::new(
        "auth.audit_retention_days",
        "PIER_AUDIT_RETENTION_DAYS",
        "audit-retention-days",
        Kind::Number,
        "audit events older than this are dropped (0: keep all)",
    )
    .was_flat(),
    Key::new(
        "auth.audit_max_mb",
        "PIER_AUDIT_MAX_MB",
        "audit-max-mb",
        Kind::Number,
        "cap on the audit log's size; the oldest events are dropped first, and the log says so (0: no cap)",
    )
    .was_flat(),
    Key::new(
        "auth.trusted_proxies",
        "PIER_TRUSTED_PROXIES",
        "trusted-proxies",
        Kind::List,
        "addresses or CIDRs (comma-separated; a TOML array in the file) of reverse proxies whose `X-Forwarded-For` names the client",
    )
    .note("none")
    .was_flat(),
    Key::env_only(
        "auth.admin_password",
        "PIER_ADMIN_PASSWORD",
        Kind::Text("PASSWORD"),
        "the first `admin` password, read on first start only (never a flag, so it never shows in `ps`)",
    )
    .note("generated"),
    Key::new(
        "uploads.upload_ttl_secs",
        "PIER_UPLOAD_TTL",
        "upload-ttl-secs",
        Kind::Number,
        "an upload session that receives nothing for this long is dropped with its bytes",
    )
    .was_flat(),
    Key::new(
        "connections.header_read_timeout_secs",
        "PIER_HEADER_READ_TIMEOUT",
        "header-read-timeout-secs",
        Kind::Number,
        "a request head must arrive within this time",
    )
    .was_flat(),
    Key::new(
        "connections.idle_timeout_secs",
        "PIER_IDLE_TIMEOUT",
        "idle-timeout-secs",
        Kind::Number,
        "a keep-alive connection idle this long is closed",
    )
    .was_flat(),
    Key::new(
        "connections.body_idle_timeout_secs",
        "PIER_BODY_IDLE_TIMEOUT",
        "body-idle-timeout-secs",
        Kind::Number,
        "a request body that sends nothing this long ends the request (an upload keeps what arrived: resume it)",
    )
    .was_flat(),
    Key::new(
        "connections.max_connections",
        "PIER_MAX_CONNECTIONS",
        "max-connections",
        Kind::Number,
        "connections served at once; more are answered `503` with `Retry-After`",
    )
    .was_flat(),
    Key::new(
        "storage.backend",
        "PIER_STORAGE_BACKEND",
        "storage-backend",
        Kind::Text("NAME"),
        "where blobs are kept: `fs` (files under the data directory) or `memory` (lost at exit)",
    ),
    Key::new(
        "metadata.backend",
        "PIER_METADATA_BACKEND",
        "metadata-backend",
        Kind::Text("NAME"),
        "where metadata, accounts and the audit log are kept: `sled` (under the data directory) or `memory` (lost at exit)",
    ),
    Key::new(
        "metrics.enabled",
        "PIER_METRICS_ENABLED",
        "metrics-enabled",
        Kind::Bool,
        "serve Prometheus metrics at `/metrics` (`false`: it answers `404`)",
    ),
    Key::env_only(
        "metrics.token",
        "PIER_METRICS_TOKEN",
        Kind::Text("TOKEN"),
        "bearer token that `/metrics` asks for (never a flag, so it never shows in `ps`)",
    )
    .note("none: open to all"),
];

/// Where settings come from besides the defaults.
#[derive(Debug, Default)]
pub struct Sources {
    /// The config file (`--config`); when none, [`CONFIG_ENV`] may name one.
    pub file: Option<PathBuf>,
    /// Environment variables by name (an empty value counts as unset).
    pub env: HashMap<String, String>,
    /// Flags as given (a list key's values joined with commas), applied in order.
    pub flags: Vec<(&'static Key, String)>,
}

impl Sources {
    /// The process's environment variables that [`RegistryConfig::load`] reads.
    pub fn process_env() -> Result<HashMap<String, String>, ConfigError> {
        let mut env = HashMap::new();
        for name in KEYS.iter().map(|k| k.env).chain([CONFIG_ENV]) {
            match std::env::var(name) {
                Ok(v) => {
                    env.insert(name.to_owned(), v);
                }
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(ConfigError::Invalid {
                        origin: Origin::Env(name.to_owned()),
                        message: "not valid UTF-8".into(),
                    });
                }
            }
        }
        Ok(env)
    }
}

/// Where a bad value came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// The config file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A `pier serve` flag (without `--`).
    Flag(&'static str),
    /// The sources together (each was valid alone).
    Combined,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "config file {}", p.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Flag(flag) => write!(f, "flag --{flag}"),
            Origin::Combined => f.write_str("configuration"),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// Which file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A value (or the file's syntax) is wrong; the message names the key.
    #[error("{origin}: {message}")]
    Invalid {
        /// Where it came from.
        origin: Origin,
        /// What is wrong, starting with the key's path.
        message: String,
    },
}

/// A loaded configuration and what the user should hear about it (keys in their old
/// place).
#[derive(Debug)]
pub struct Loaded {
    /// The settings.
    pub config: RegistryConfig,
    /// Warnings for the log.
    pub notes: Vec<String>,
}

impl RegistryConfig {
    /// Layer the defaults, the config file, the environment and the flags, in that order.
    pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
        let env = |name: &str| sources.env.get(name).filter(|v| !v.is_empty());
        let mut notes = Vec::new();
        let file = sources.file.clone().or_else(|| env(CONFIG_ENV).map(PathBuf::from));
        let mut tree = match &file {
            Some(path) => read_file(path, &mut notes)?,
            None => toml::Table::new(),
        };
        let given = KEYS
            .iter()
            .filter_map(|k| env(k.env).map(|v| (k, v.as_str(), Origin::Env(k.env.to_owned()))));
        let flagged = sources.flags.iter().map(|(k, v)| {
            let flag = k.flag.expect("flags are only built for keys that have one");
            (*k, v.as_str(), Origin::Flag(flag))
        });
        for (key, text, origin) in given.chain(flagged) {
            let invalid = |message| ConfigError::Invalid {
                origin: origin.clone(),
                message,
            };
            let value = key
                .kind
                .parse(text)
                .map_err(|e| invalid(format!("{}: {e}", key.path)))?;
            // Checked on its own first, so that an error names this source and not the
            // merged whole.
            let mut alone = toml::Table::new();
            insert(&mut alone, key.path, value.clone()).map_err(&invalid)?;
            from_tree(alone).map_err(&invalid)?;
            insert(&mut tree, key.path, value).map_err(&invalid)?;
        }
        let config = from_tree(tree).map_err(|message| ConfigError::Invalid {
            origin: Origin::Combined,
            message,
        })?;
        Ok(Loaded { config, notes })
    }
}

/// The file as a tree, its keys moved from their old flat places, checked.
fn read_file(path: &Path, notes: &mut Vec<String>) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |message: String| ConfigError::Invalid {
        origin: Origin::File(path.to_owned()),
        message,
    };
    let mut tree: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string().trim_end().to_owned()))?;
    for key in KEYS {
        let Some(flat) = key.flat_name() else { continue };
        let Some(value) = tree.remove(flat) else { continue };
        if lookup(&tree, key.path).is_some() {
            return Err(invalid(format!(
                "{flat} is set twice: at the top level (its old place) and as {}; keep {}",
                section_form(key.path),
                section_form(key.path)
            )));
        }
        insert(&mut tree, key.path, value).map_err(invalid)?;
        notes.push(format!(
            "config file {}: {flat} moved to {}; the old place still works",
            path.display(),
            section_form(key.path)
        ));
    }
    from_tree(tree.clone()).map_err(invalid)?;
    Ok(tree)
}

/// `auth.token_ttl_secs` as `[auth] token_ttl_secs`.
fn section_form(path: &str) -> String {
    match path.rsplit_once('.') {
        Some((section, leaf)) => format!("[{section}] {leaf}"),
        None => path.to_owned(),
    }
}

fn lookup<'a>(tree: &'a toml::Table, path: &str) -> Option<&'a toml::Value> {
    let (sections, leaf) = split(path);
    let mut table = tree;
    for s in sections {
        table = table.get(s)?.as_table()?;
    }
    table.get(leaf)
}

fn insert(tree: &mut toml::Table, path: &str, value: toml::Value) -> Result<(), String> {
    let (sections, leaf) = split(path);
    let mut table = tree;
    for s in sections {
        table = table
            .entry(s)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("{s}: expected a table ([{s}])"))?;
    }
    table.insert(leaf.to_owned(), value);
    Ok(())
}

fn split(path: &str) -> (impl Iterator<Item = &str>, &str) {
    let (sections, leaf) = path.rsplit_once('.').unwrap_or(("", path));
    (sections.split('.').filter(|s| !s.is_empty()), leaf)
}

/// Deserialize, naming the key at fault.
fn from_tree(tree: toml::Table) -> Result<RegistryConfig, String> {
    serde_path_to_error::deserialize(tree).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // toml ends with the table's name ("in `auth`"), which the path already gives.
        let message = message
            .split_once("\nin `")
            .map_or(message.as_str(), |(m, _)| m)
            .trim_end();
        if path == "." {
            message.to_owned()
        } else {
            format!("{path}: {message}")
        }
    })
}

/// The default of `key` as README and `--help` show it.
pub fn default_text(key: &Key) -> String {
    if let Some(note) = key.default_note {
        return note.to_owned();
    }
    let defaults = toml::Table::try_from(RegistryConfig::default()).expect("the defaults serialize");
    match lookup(&defaults, key.path) {
        Some(toml::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "none".into(),
    }
}

/// README's configuration table: every key, then the config file itself.
pub fn markdown_table() -> String {
    let mut out = String::from("| flag | environment | config file key | default | meaning |\n|---|---|---|---|---|\n");
    let code = |s: &str| format!("`{s}`");
    for key in KEYS {
        let flag = key
            .flag
            .map_or("—".into(), |f| code(&format!("--{f} {}", key.kind.value_name())));
        let default = match key.default_note {
            Some(note) => note.to_owned(),
            None => code(&default_text(key)),
        };
        out += &format!(
            "| {flag} | {} | {} | {default} | {} |\n",
            code(key.env),
            code(key.path),
            key.help
        );
    }
    out += &format!("| `--{CONFIG_FLAG} FILE` | `{CONFIG_ENV}` | — | none | TOML file with any of the keys above |\n");
    out
}

#[cfg(test)]
mod tests;
