//! Stored logins: which user (or robot) and secret to present to which pier server.
//!
//! One JSON file, `credentials.json`, in `$PIER_CONFIG_DIR`, else `$XDG_CONFIG_HOME/pier`,
//! else `~/.config/pier`:
//!
//! ```json
//! {"current": "http://127.0.0.1:5000",
//!  "servers": {"http://127.0.0.1:5000": {"username": "admin", "secret": "…"}}}
//! ```
//!
//! Secrets are stored as given (like docker's config without a credential helper), so the
//! file is created 0600 inside a 0700 directory. Servers are keyed by [`server_url`], so
//! `127.0.0.1:5000` and `http://127.0.0.1:5000/` find the same entry.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use reqwest::Url;
use serde::{Deserialize, Serialize};

/// The file name inside the config directory.
pub const FILE_NAME: &str = "credentials.json";

/// What to present to one server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// A user name, or a robot's full name `robot$<project>+<name>`.
    pub username: String,
    /// The password or robot secret.
    pub secret: String,
}

/// The whole credentials file.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The server commands talk to when none is named (the last one logged in to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Logins by server URL (as [`server_url`] spells it).
    #[serde(default)]
    pub servers: BTreeMap<String, Credential>,
}

impl Credentials {
    /// The file at the default location; an absent file is an empty store.
    pub fn load() -> anyhow::Result<(Credentials, PathBuf)> {
        let path = default_path()?;
        Ok((Credentials::load_from(&path)?, path))
    }

    /// The file at `path`; an absent file is an empty store.
    pub fn load_from(path: &Path) -> anyhow::Result<Credentials> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("credentials file {} is not valid", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Credentials::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read credentials file {}", path.display())),
        }
    }

    /// Write the store to `path`, replacing it atomically so that a crash never leaves a
    /// half-written file, and never with wider permissions than 0600.
    pub fn save_to(&self, path: &Path) -> anyhow::Result<()> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
        let tmp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
        let result = (|| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            // `mode` only applies on creation; a stale temp file could be wider.
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            let mut text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
            text.push(b'\n');
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.with_context(|| format!("cannot write credentials file {}", path.display()))
    }

    /// The login stored for `server` (any spelling [`server_url`] accepts).
    pub fn lookup(&self, server: &str) -> Option<&Credential> {
        let key = server_url(server).ok()?;
        self.servers.get(&key)
    }

    /// Store a login for `server` and make it the current server.
    pub fn insert(&mut self, server: &str, credential: Credential) -> anyhow::Result<()> {
        let key = server_url(server)?;
        self.servers.insert(key.clone(), credential);
        self.current = Some(key);
        Ok(())
    }

    /// Forget the login for `server`; whether there was one. The current server is
    /// cleared when it is the one forgotten.
    pub fn remove(&mut self, server: &str) -> anyhow::Result<bool> {
        let key = server_url(server)?;
        if self.current.as_deref() == Some(key.as_str()) {
            self.current = None;
        }
        Ok(self.servers.remove(&key).is_some())
    }
}

/// Where the credentials file lives, from the process environment.
pub fn default_path() -> anyhow::Result<PathBuf> {
    path_from_env(|k| std::env::var_os(k))
}

/// Where the credentials file lives, given a way to read environment variables.
pub fn path_from_env(var: impl Fn(&str) -> Option<OsString>) -> anyhow::Result<PathBuf> {
    let set = |k: &str| var(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("PIER_CONFIG_DIR") {
        return Ok(dir.join(FILE_NAME));
    }
    // The XDG spec says relative values are invalid and must be ignored.
    if let Some(dir) = set("XDG_CONFIG_HOME").filter(|d| d.is_absolute()) {
        return Ok(dir.join("pier").join(FILE_NAME));
    }
    match set("HOME") {
        Some(home) => Ok(home.join(".config").join("pier").join(FILE_NAME)),
        None => bail!("cannot tell where to keep credentials: set PIER_CONFIG_DIR or HOME"),
    }
}

/// The canonical spelling of a server: `scheme://host[:port]`, no path, no trailing slash.
///
/// Without a scheme, loopback hosts (`localhost`, 127.0.0.0/8, `::1`) get `http://` and
/// every other host `https://`: plain HTTP is only reasonable where nothing else can listen
/// in, which is also the rule docker applies to registries.
pub fn server_url(input: &str) -> anyhow::Result<String> {
    let input = input.trim();
    if input.is_empty() {
        bail!("empty server address");
    }
    let with_scheme = if input.contains("://") {
        input.to_owned()
    } else {
        let probe = Url::parse(&format!("http://{input}"))
            .with_context(|| format!("server {input:?} is not host[:port] nor a URL"))?;
        let scheme = if is_loopback(&probe) { "http" } else { "https" };
        format!("{scheme}://{input}")
    };
    let url = Url::parse(&with_scheme).with_context(|| format!("server {input:?} is not a valid URL"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        bail!("server {input:?}: only http:// and https:// are supported");
    }
    if url.host().is_none() {
        bail!("server {input:?} has no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!("server {input:?}: give credentials with `pier login -u`, not in the URL");
    }
    // The registry API lives at the root (/v2/, /api/v1/), so a path would be ignored
    // anyway; refusing it catches pasted repository references early.
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        bail!("server {input:?} must be scheme://host[:port] without a path");
    }
    Ok(url.origin().ascii_serialization())
}

/// Whether the URL's host is this machine (so plain HTTP is fine and proxies must not see it).
pub fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    // IPv6 hosts come bracketed.
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        return ip.is_loopback();
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| OsString::from(v))
    }

    #[test]
    fn path_prefers_pier_config_dir_then_xdg_then_home() {
        let all = [("PIER_CONFIG_DIR", "/p"), ("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")];
        assert_eq!(path_from_env(env(&all)).unwrap(), Path::new("/p/credentials.json"));
        assert_eq!(
            path_from_env(env(&all[1..])).unwrap(),
            Path::new("/x/pier/credentials.json")
        );
        assert_eq!(
            path_from_env(env(&all[2..])).unwrap(),
            Path::new("/h/.config/pier/credentials.json")
        );
        let relative_xdg = [("XDG_CONFIG_HOME", "rel"), ("HOME", "/h")];
        assert_eq!(
            path_from_env(env(&relative_xdg)).unwrap(),
            Path::new("/h/.config/pier/credentials.json")
        );
        let empty = [("PIER_CONFIG_DIR", ""), ("HOME", "/h")];
        assert_eq!(
            path_from_env(env(&empty)).unwrap(),
            Path::new("/h/.config/pier/credentials.json")
        );
        assert!(path_from_env(env(&[])).is_err());
    }

    #[test]
    fn server_urls_are_canonical() {
        let cases = [
            ("127.0.0.1:5000", "http://127.0.0.1:5000"),
            ("http://127.0.0.1:5000/", "http://127.0.0.1:5000"),
            ("localhost:5000", "http://localhost:5000"),
            ("[::1]:5000", "http://[::1]:5000"),
            ("127.1.2.3", "http://127.1.2.3"),
            ("registry.example.com", "https://registry.example.com"),
            ("Registry.Example.com:8443", "https://registry.example.com:8443"),
            ("10.0.0.5:5000", "https://10.0.0.5:5000"),
            ("https://r.example.com:443", "https://r.example.com"),
            ("http://r.example.com", "http://r.example.com"),
        ];
        for (input, want) in cases {
            assert_eq!(server_url(input).unwrap(), want, "{input}");
        }
        for bad in [
            "",
            "ftp://x",
            "http://u:p@x",
            "127.0.0.1:5000/team/app",
            "http://x/?q=1",
            "a b",
        ] {
            assert!(server_url(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn round_trip_with_private_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cfg").join("pier").join(FILE_NAME);
        assert_eq!(Credentials::load_from(&path).unwrap(), Credentials::default());

        let mut c = Credentials::default();
        let alice = Credential {
            username: "alice".into(),
            secret: "s3cret pass".into(),
        };
        c.insert("127.0.0.1:5000", alice.clone()).unwrap();
        c.insert(
            "https://r.example.com",
            Credential {
                username: "robot$team+ci".into(),
                secret: "x".into(),
            },
        )
        .unwrap();
        c.save_to(&path).unwrap();

        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);

        let back = Credentials::load_from(&path).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.current.as_deref(), Some("https://r.example.com"));
        assert_eq!(back.lookup("http://127.0.0.1:5000/"), Some(&alice));
        assert_eq!(back.lookup("localhost:5000"), None);

        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["servers"]["http://127.0.0.1:5000"]["username"], "alice");
        assert_eq!(json["current"], "https://r.example.com");

        // Saving over a file that someone opened up keeps it private.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut back = back;
        assert!(back.remove("r.example.com").unwrap());
        assert!(!back.remove("r.example.com").unwrap());
        assert_eq!(back.current, None);
        back.save_to(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(Credentials::load_from(&path).unwrap().servers.len(), 1);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [FILE_NAME]);
    }

    #[test]
    fn a_corrupt_file_names_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(FILE_NAME);
        std::fs::write(&path, "{not json").unwrap();
        let err = format!("{:#}", Credentials::load_from(&path).unwrap_err());
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}
