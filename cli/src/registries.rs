//! How image commands reach registries: the logins of `pier login` (and `PIER_USERNAME` /
//! `PIER_PASSWORD` for the server of `PIER_SERVER`), plain HTTP for servers logged in to
//! over http:// and for loopback hosts, and the current server as the registry of
//! references that name none.

use anyhow::Context as _;
use pier_client::{Location, Login, Registries, RegistryOptions};
use reqwest::Url;

use crate::admin::env_credential;
use crate::credentials::{Credentials, is_loopback, server_url};

/// What image commands need to reach registries.
pub struct Reach {
    options: RegistryOptions,
    /// `host[:port]` of the current server, for references without a registry.
    pub default_registry: Option<String>,
}

impl Reach {
    /// From the credentials file and the environment; `server` is `--server`/`PIER_SERVER`.
    pub fn load(server: Option<&str>) -> anyhow::Result<Reach> {
        let (file, _) = Credentials::load()?;
        let mut options = RegistryOptions::default();
        for (url, cred) in &file.servers {
            let (host, plain) = authority(url)?;
            if plain {
                options.plain_http.push(host.clone());
            }
            options.logins.insert(
                host,
                Login {
                    username: cred.username.clone(),
                    secret: cred.secret.clone(),
                },
            );
        }
        let current = match server {
            Some(s) => Some(server_url(s)?),
            None => file.current.clone(),
        };
        let default_registry = match &current {
            Some(url) => {
                let (host, plain) = authority(url)?;
                if plain && !options.plain_http.contains(&host) {
                    options.plain_http.push(host.clone());
                }
                // CI: credentials in the environment count for the server named.
                if let Some(c) = env_credential(|k| std::env::var(k).ok())? {
                    options.logins.insert(
                        host.clone(),
                        Login {
                            username: c.username,
                            secret: c.secret,
                        },
                    );
                }
                Some(host)
            }
            None => None,
        };
        Ok(Reach {
            options,
            default_registry,
        })
    }

    /// Parses an image location, with the current server for references without a registry.
    pub fn location(&self, text: &str) -> anyhow::Result<Location> {
        Ok(Location::parse(text, self.default_registry.as_deref())?)
    }

    /// The client for these locations: loopback registries among them speak plain HTTP
    /// (as docker does) even when never logged in to.
    pub fn registries(&self, locations: &[&Location]) -> Registries {
        let mut options = self.options.clone();
        for l in locations {
            if let Location::Registry { registry, .. } = l
                && !options.plain_http.contains(registry)
                && Url::parse(&format!("http://{registry}")).is_ok_and(|u| is_loopback(&u))
            {
                options.plain_http.push(registry.clone());
            }
        }
        Registries::new(options)
    }

    /// The logins, by registry (for tests).
    #[cfg(test)]
    fn logins(&self) -> &std::collections::HashMap<String, Login> {
        &self.options.logins
    }
}

/// `http://127.0.0.1:5000` → (`127.0.0.1:5000`, plain HTTP).
fn authority(server: &str) -> anyhow::Result<(String, bool)> {
    let url = Url::parse(server).with_context(|| format!("server {server:?} is not a URL"))?;
    let host = url.host_str().context("server without a host")?;
    let host = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    Ok((host, url.scheme() == "http"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        assert_eq!(
            authority("http://127.0.0.1:5000").unwrap(),
            ("127.0.0.1:5000".into(), true)
        );
        assert_eq!(authority("https://reg.example").unwrap(), ("reg.example".into(), false));
    }

    #[test]
    fn loopback_registries_speak_http() {
        let reach = Reach {
            options: RegistryOptions::default(),
            default_registry: None,
        };
        assert!(reach.logins().is_empty());
        let local = reach.location("127.0.0.1:5000/a/b:1").unwrap();
        let remote = reach.location("reg.example/a/b:1").unwrap();
        let r = reach.registries(&[&local, &remote]);
        assert!(r.is_plain_http("127.0.0.1:5000"));
        assert!(!r.is_plain_http("reg.example"));
    }
}
