//! Full image references as docker writes them: `[host[:port]/]path[:tag][@digest]`.

use std::fmt;
use std::str::FromStr;

use crate::{Digest, DigestError, RepoName, Tag};

/// Longest image name (host and path, without tag or digest), as docker's reference grammar
/// caps it.
pub const MAX_REFERENCE_NAME_LEN: usize = 255;

/// The registry a reference without a host belongs to, as docker normalizes it.
pub const DOCKER_HUB: &str = "docker.io";

/// Docker Hub's other spelling, normalized to [`DOCKER_HUB`].
const DOCKER_HUB_INDEX: &str = "index.docker.io";

/// Why an image reference is rejected; each message names the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    /// Nothing given.
    #[error("empty image reference")]
    Empty,
    /// The first component looks like a registry host but is not a valid one.
    #[error("registry {host:?} {why}")]
    Host {
        /// The host as given.
        host: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The path is not a repository name.
    #[error(
        "invalid repository {0:?}: lowercase path components (a-z, 0-9, separated by ., _, __ \
         or -) joined by /"
    )]
    Repository(String),
    /// The tag breaks the tag grammar.
    #[error("invalid tag {0:?}: [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}")]
    Tag(String),
    /// The part after `@` is not a digest.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// Host and path together are too long.
    #[error("the name is longer than {MAX_REFERENCE_NAME_LEN} characters ({0})")]
    TooLong(usize),
}

/// A parsed image reference. The host is kept as written (`None` when the reference has
/// none: which registry that means is the caller's choice, see [`ImageRef::docker_name`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    host: Option<String>,
    repository: RepoName,
    tag: Option<Tag>,
    digest: Option<Digest>,
}

impl ImageRef {
    /// `host[:port]`, when the reference starts with one.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The repository path (without the host).
    pub fn repository(&self) -> &RepoName {
        &self.repository
    }

    /// The tag, if given.
    pub fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }

    /// The digest, if given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The name docker and containerd store the image under: the host defaulting to
    /// [`DOCKER_HUB`] (`index.docker.io` is the same), whose one-component paths live under
    /// `library/`. `hello` → `docker.io/library/hello`. Tag and digest are not included.
    pub fn docker_name(&self) -> String {
        let host = match self.host.as_deref() {
            None | Some(DOCKER_HUB_INDEX) => DOCKER_HUB,
            Some(h) => h,
        };
        let path = self.repository.as_str();
        if host == DOCKER_HUB && !path.contains('/') {
            format!("{host}/library/{path}")
        } else {
            format!("{host}/{path}")
        }
    }
}

/// Docker's rule: the first of several components is a registry host when it has a dot or a
/// port, or is `localhost`.
fn is_host(first: &str) -> bool {
    first.contains(['.', ':']) || first == "localhost"
}

impl FromStr for ImageRef {
    type Err = ImageRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ImageRefError::Empty);
        }
        // Paths and tags hold no `@`, so the first one starts the digest.
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (rest, Some(d.parse::<Digest>()?)),
            None => (s, None),
        };
        // A colon after the last `/` starts the tag; one before it is a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let (name, tag) = rest.split_at(last_slash + i);
                let tag = &tag[1..];
                (
                    name,
                    Some(tag.parse::<Tag>().map_err(|_| ImageRefError::Tag(tag.to_owned()))?),
                )
            }
            None => (rest, None),
        };
        if name.len() > MAX_REFERENCE_NAME_LEN {
            return Err(ImageRefError::TooLong(name.len()));
        }
        let (host, path) = match name.split_once('/') {
            Some((first, path)) if is_host(first) => {
                check_host(first).map_err(|why| ImageRefError::Host {
                    host: first.to_owned(),
                    why,
                })?;
                (Some(first.to_owned()), path)
            }
            _ => (None, name),
        };
        let repository = path
            .parse::<RepoName>()
            .map_err(|_| ImageRefError::Repository(path.to_owned()))?;
        Ok(ImageRef {
            host,
            repository,
            tag,
            digest,
        })
    }
}

/// `host[:port]`: DNS labels joined by `.` (or a bracketed IPv6 address), a decimal port.
fn check_host(host: &str) -> Result<(), &'static str> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').ok_or("has an unclosed [")?;
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err("is not a valid IPv6 address");
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("has text after the IPv6 address")?),
        };
        (None, port)
    } else {
        match host.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(host), None),
        }
    };
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
    };
    if name.is_some_and(|h| !h.split('.').all(label_ok)) {
        return Err("is not a host name");
    }
    // Digits only (u16's parser would also take a leading `+`), at most 65535.
    if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err()) {
        return Err("has a bad port");
    }
    Ok(())
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(h) = &self.host {
            write!(f, "{h}/")?;
        }
        write!(f, "{}", self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_string(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> String {
        format!("sha256:{}", "a".repeat(64))
    }

    /// Input, host, repository, tag, whether it has a digest, docker name.
    type Case<'a> = (&'a str, Option<&'a str>, &'a str, Option<&'a str>, bool, &'a str);

    #[test]
    fn good_references() {
        let d = digest();
        let with_both = format!("reg.example/a/b:1@{d}");
        let by_digest = format!("hello@{d}");
        let cases: [Case; 11] = [
            ("hello", None, "hello", None, false, "docker.io/library/hello"),
            (
                "hello:latest",
                None,
                "hello",
                Some("latest"),
                false,
                "docker.io/library/hello",
            ),
            (
                "team/hello:1.0",
                None,
                "team/hello",
                Some("1.0"),
                false,
                "docker.io/team/hello",
            ),
            (
                "127.0.0.1:5000/myorg/app:1.0",
                Some("127.0.0.1:5000"),
                "myorg/app",
                Some("1.0"),
                false,
                "127.0.0.1:5000/myorg/app",
            ),
            (
                "127.0.0.1:5000/hello",
                Some("127.0.0.1:5000"),
                "hello",
                None,
                false,
                "127.0.0.1:5000/hello",
            ),
            ("localhost/a:b", Some("localhost"), "a", Some("b"), false, "localhost/a"),
            (
                "index.docker.io/hello:x",
                Some("index.docker.io"),
                "hello",
                Some("x"),
                false,
                "docker.io/library/hello",
            ),
            (
                "[::1]:5000/hello:x",
                Some("[::1]:5000"),
                "hello",
                Some("x"),
                false,
                "[::1]:5000/hello",
            ),
            // Without a slash the first component is the path, even when it holds a colon.
            (
                "localhost:5000",
                None,
                "localhost",
                Some("5000"),
                false,
                "docker.io/library/localhost",
            ),
            (&by_digest, None, "hello", None, true, "docker.io/library/hello"),
            (
                &with_both,
                Some("reg.example"),
                "a/b",
                Some("1"),
                true,
                "reg.example/a/b",
            ),
        ];
        for (text, host, repo, tag, has_digest, docker) in cases {
            let r: ImageRef = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(r.host(), host, "{text}");
            assert_eq!(r.repository().as_str(), repo, "{text}");
            assert_eq!(r.tag().map(Tag::as_str), tag, "{text}");
            assert_eq!(
                r.digest().map(ToString::to_string),
                has_digest.then(|| d.clone()),
                "{text}"
            );
            assert_eq!(r.docker_name(), docker, "{text}");
            assert_eq!(r.to_string(), text, "round trip");
        }
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        let too_long = format!("{}:x", "a".repeat(MAX_REFERENCE_NAME_LEN + 1));
        for (bad, says) in [
            ("", "empty image reference"),
            ("Hello:latest", "invalid repository \"Hello\""),
            ("127.0.0.1:5000/My/App", "invalid repository \"My/App\""),
            ("a//b:c", "invalid repository \"a//b\""),
            ("a/b/", "invalid repository \"a/b/\""),
            ("hello:", "invalid tag \"\""),
            ("hello:-x", "invalid tag \"-x\""),
            ("hello:bad tag", "invalid tag \"bad tag\""),
            ("hello@sha256:zz", "digest \"sha256:zz\""),
            ("hello@", "digest \"\""),
            ("exa_mple.com/a:b", "registry \"exa_mple.com\" is not a host name"),
            ("example.com:99999/a:b", "registry \"example.com:99999\" has a bad port"),
            ("example.com:/a:b", "registry \"example.com:\" has a bad port"),
            ("example.com:+80/a", "has a bad port"),
            ("[::1/a", "has an unclosed ["),
            ("[]:5000/a", "is not a valid IPv6 address"),
            ("[::1]x/a", "has text after the IPv6 address"),
            (&too_long, "longer than 255 characters"),
        ] {
            let e = bad.parse::<ImageRef>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}
