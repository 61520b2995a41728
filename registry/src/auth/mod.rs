//! Access control: who the caller is ([`Auth::authenticate`]), what they may do
//! ([`Auth::grant`], from the [`matrix`] only), tokens, brute-force throttling and the audit
//! log.

mod audit;
pub mod matrix;
pub mod password;
mod throttle;
pub mod token;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use pier_oci::{RepoName, is_path_component};

pub use audit::AuditSink;
pub use ipnet::IpNet;
pub use matrix::{Action, ActionSpec, Grant, MAX_ACTIONS, RegisterError, Role};

/// The challenge of routes that take account credentials (the management API, extensions).
pub const BASIC_CHALLENGE: &str = "Basic realm=\"pier\"";
use throttle::{AddressLimiter, Failure, Throttle};
use token::{Access, Claims, Scope, TokenKeys};

use crate::limits::{
    DEFAULT_AUDIT_MAX_BYTES, DEFAULT_AUDIT_RETENTION_DAYS, DEFAULT_TOKEN_TTL, HASH_QUEUE_WAIT, MAX_SECRET_BYTES,
    MAX_USER_NAME, MIN_PASSWORD_LEN,
};
use crate::storage::{
    AccessStore, ActorKind, AuditAction, AuditEvent, AuditLog, MetaError, Outcome, ProjectRecord, ROBOT_PREFIX,
    UserRecord,
};

/// The system admin created at first start.
pub const ADMIN_USER: &str = "admin";
/// The project that exists from the start (public, as in Harbor).
pub const DEFAULT_PROJECT: &str = "library";
/// Where the generated first admin password is written when none is given.
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// Settings of access control: `[auth]` in the config file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Lifetime of issued tokens.
    #[serde(rename = "token_ttl_secs", with = "crate::config::secs")]
    pub token_ttl: Duration,
    /// Audit retention in days; 0 keeps everything.
    pub audit_retention_days: u64,
    /// Cap on the audit log's size on disk; the oldest segments are dropped to stay under
    /// it (0: no cap).
    #[serde(rename = "audit_max_mb", with = "crate::config::mib")]
    pub audit_max_bytes: u64,
    /// Proxies whose `X-Forwarded-For` (or `Forwarded`) header names the client. Anyone
    /// else's is ignored: the peer address is the client.
    #[serde(with = "crate::config::nets")]
    pub trusted_proxies: Vec<IpNet>,
    /// The first admin password (used on first start only). Never written out.
    #[serde(skip_serializing)]
    pub admin_password: Option<String>,
    /// The registry's external URL (e.g. `https://registry.example.com`), for the token
    /// realm in challenges. Without it the realm is built from the request's `Host`. Not a
    /// key of `[auth]`: [`crate::Registry::open_config`] sets it from the top-level
    /// [`crate::RegistryConfig::public_url`].
    #[serde(skip)]
    pub public_url: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            token_ttl: DEFAULT_TOKEN_TTL,
            audit_retention_days: DEFAULT_AUDIT_RETENTION_DAYS,
            audit_max_bytes: DEFAULT_AUDIT_MAX_BYTES,
            trusted_proxies: Vec::new(),
            admin_password: None,
            public_url: None,
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    /// No credentials.
    Anonymous,
    /// A user account.
    User {
        /// Name.
        name: String,
        /// System admin.
        admin: bool,
    },
    /// A robot account.
    Robot {
        /// Its project.
        project: String,
        /// Its short name.
        name: String,
        /// What it may do there.
        grant: Grant,
        /// Refused after this (Unix seconds).
        expires_at: Option<u64>,
    },
}

impl Subject {
    /// The name the audit log and tokens use.
    pub fn actor(&self) -> String {
        match self {
            Subject::Anonymous => "anonymous".into(),
            Subject::User { name, .. } => name.clone(),
            Subject::Robot { project, name, .. } => crate::storage::robot_account(project, name),
        }
    }

    /// The audit log's kind of actor.
    pub fn kind(&self) -> ActorKind {
        match self {
            Subject::Anonymous => ActorKind::Anonymous,
            Subject::User { .. } => ActorKind::User,
            Subject::Robot { .. } => ActorKind::Robot,
        }
    }

    /// A system admin.
    pub fn is_admin(&self) -> bool {
        matches!(self, Subject::User { admin: true, .. })
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    /// No credentials.
    Nothing,
    /// HTTP Basic, checked against the stores.
    Basic,
    /// A token; it limits the caller to its scopes.
    Token(Box<Claims>),
}

/// An authenticated request's caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub subject: Subject,
    /// How.
    pub via: Via,
    /// The client's address.
    pub client: String,
    /// The token endpoint to name in challenges.
    pub realm: String,
}

/// Why access is refused, or an access-control operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No or wrong credentials: 401 with a challenge.
    #[error("{message}")]
    Unauthenticated {
        /// `WWW-Authenticate` value.
        challenge: String,
        /// Why.
        message: String,
    },
    /// Authenticated, not allowed.
    #[error("{0}")]
    Denied(String),
    /// Too many failed logins.
    #[error("too many failed logins; retry in {retry_after} s")]
    Throttled {
        /// Seconds.
        retry_after: u64,
    },
    /// Too many password checks from this address, or all of them busy.
    #[error("too many password checks; retry in {retry_after} s")]
    RateLimited {
        /// Seconds.
        retry_after: u64,
    },
    /// A malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// A name that breaks the grammar.
    #[error("{0}")]
    InvalidName(String),
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// Exists already, or still in use.
    #[error("{0}")]
    Conflict(String),
    /// The stores failed.
    #[error(transparent)]
    Store(#[from] MetaError),
    /// Something else failed on our side.
    #[error("{0}")]
    Internal(String),
}

/// Why access control could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthOpenError {
    /// The signing key or the initial password file.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The stores.
    #[error(transparent)]
    Store(#[from] MetaError),
    /// A setting.
    #[error("{0}")]
    Config(String),
}

/// Unix seconds now.
pub fn now() -> u64 {
    pier_oci::time::now_secs()
}

/// Access control over an [`AccessStore`] and an [`AuditLog`].
pub struct Auth {
    access: Arc<dyn AccessStore>,
    audit: AuditSink,
    keys: TokenKeys,
    throttle: Throttle,
    limiter: AddressLimiter,
    logins: password::LoginCache,
    hashing: password::Hashing,
    config: AuthConfig,
}

/// Longest base64 of Basic credentials that can hold a valid name and secret: the longest
/// robot account (`robot$` + two path components + `+`), a colon and the longest secret.
const MAX_BASIC_B64: usize =
    (ROBOT_PREFIX.len() + 2 * pier_oci::MAX_NAME_LEN + 1 + 1 + MAX_SECRET_BYTES).div_ceil(3) * 4;

/// The answer to wrong credentials, the same whatever was wrong.
const WRONG_CREDENTIALS: &str = "invalid username or password";

/// Whether `name` can be a user's name: 1–[`MAX_USER_NAME`] letters, digits, `.`, `_`,
/// `-`, `@`, starting with a letter or digit.
pub fn valid_user_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_USER_NAME
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'@'))
}

/// A project's name is one repository path component (`a-z0-9` with single separators).
pub fn check_project_name(name: &str) -> Result<(), AuthError> {
    if pier_oci::is_path_component(name) {
        Ok(())
    } else {
        Err(AuthError::InvalidName(format!(
            "invalid project name {name:?}: use lowercase letters, digits and single separators (. _ __ -), as in a repository path component"
        )))
    }
}

/// `robot$<project>+<name>` → (project, name), when both follow the path-component grammar.
fn robot_parts(account: &str) -> Option<(&str, &str)> {
    account
        .strip_prefix(ROBOT_PREFIX)?
        .split_once('+')
        .filter(|(p, n)| is_path_component(p) && is_path_component(n))
}

/// A short fingerprint of an account's current credential (its password hash or robot
/// secret hash): carried in tokens, so a token stops working once the credential changes.
fn credential_version(stored_hash: &str) -> String {
    hex::encode(&sha2::Sha256::digest(stored_hash.as_bytes())[..8])
}

/// A docker token action and the matrix actions it stands for.
const TOKEN_ACTIONS: &[(&str, &[Action])] = &[
    ("pull", &[Action::Pull, Action::ReadReferrers, Action::MountFrom]),
    ("push", &[Action::Push]),
    ("delete", &[Action::DeleteTag, Action::DeleteManifest]),
];

/// The docker token action that covers `a` on a repository.
fn token_action(a: Action) -> &'static str {
    TOKEN_ACTIONS
        .iter()
        .find(|(_, acts)| acts.contains(&a))
        .map(|(t, _)| *t)
        .unwrap_or("pull")
}

/// The scope a client should ask for to do `a` on `repo` (writes need pull too: clients
/// check blobs before uploading them).
fn challenge_scope(repo: &RepoName, a: Action) -> String {
    match token_action(a) {
        "pull" => format!("repository:{repo}:pull"),
        t => format!("repository:{repo}:pull,{t}"),
    }
}

impl Auth {
    /// Open access control: load or create the signing key, and on first start create the
    /// admin user and the default project.
    pub async fn open(
        data_dir: &Path,
        access: Arc<dyn AccessStore>,
        audit: Arc<dyn AuditLog>,
        config: AuthConfig,
    ) -> Result<Auth, AuthOpenError> {
        let keys = TokenKeys::load_or_create(data_dir)?;
        let auth = Auth {
            access,
            audit: AuditSink::new(audit, config.audit_retention_days, config.audit_max_bytes),
            keys,
            throttle: Throttle::default(),
            limiter: AddressLimiter::default(),
            logins: password::LoginCache::default(),
            hashing: password::Hashing::default(),
            config,
        };
        auth.bootstrap(data_dir).await?;
        Ok(auth)
    }

    async fn bootstrap(&self, data_dir: &Path) -> Result<(), AuthOpenError> {
        if self.access.user(ADMIN_USER).await?.is_some() {
            return Ok(());
        }
        let (password, generated) = match &self.config.admin_password {
            Some(p) if p.len() >= MIN_PASSWORD_LEN => (p.clone(), false),
            Some(_) => {
                return Err(AuthOpenError::Config(format!(
                    "PIER_ADMIN_PASSWORD must have at least {MIN_PASSWORD_LEN} characters"
                )));
            }
            None => {
                use base64::engine::general_purpose::URL_SAFE_NO_PAD;
                (URL_SAFE_NO_PAD.encode(token::random_bytes::<18>()?), true)
            }
        };
        let hash = self.hash(password.clone()).await.map_err(AuthOpenError::Config)?;
        let admin = UserRecord {
            name: ADMIN_USER.into(),
            password_hash: hash,
            admin: true,
            created: now(),
        };
        let library = ProjectRecord {
            name: DEFAULT_PROJECT.into(),
            public: true,
            created: now(),
        };
        if self.access.bootstrap(&admin, &[library]).await? && generated {
            let path = data_dir.join(INITIAL_PASSWORD_FILE);
            token::write_private(&path, format!("{password}\n").as_bytes())?;
            tracing::warn!(path = %path.display(), "created user admin with a generated password; read it from this file, log in, change it, and delete the file");
        }
        Ok(())
    }

    /// The users, projects, members and robots.
    pub fn access(&self) -> &dyn AccessStore {
        &*self.access
    }

    /// The audit queue.
    pub fn audit(&self) -> &AuditSink {
        &self.audit
    }

    /// Forget remembered logins (after users or robots change).
    pub fn credentials_changed(&self) {
        self.logins.clear();
    }

    /// Hash a password off the runtime, in one of the bounded argon2 slots.
    pub async fn hash(&self, password: String) -> Result<String, String> {
        self.hashing.hash(password).await
    }

    /// The client's address: the peer's, or, when the peer is a trusted proxy, the nearest
    /// address of the forwarding chain that is not itself a trusted proxy.
    fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let trusted = |ip: &IpAddr| self.config.trusted_proxies.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let mut client = peer;
        for hop in forwarded_chain(headers).iter().rev() {
            // An entry that is not an address (`unknown`, an obfuscated name) ends what can
            // be believed: the hop before it is the client as far as pier can tell.
            let Some(ip) = hop else { break };
            client = *ip;
            if !trusted(ip) {
                break;
            }
        }
        client
    }

    /// The token endpoint URL for challenges.
    fn realm(&self, headers: &HeaderMap) -> String {
        let base = match &self.config.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .filter(|h| !h.is_empty() && !h.contains(['"', ' ', '/']))
                    .unwrap_or("localhost");
                // pier speaks plain HTTP itself; behind a TLS proxy the proxy says so.
                let scheme = headers
                    .get("x-forwarded-proto")
                    .and_then(|v| v.to_str().ok())
                    .filter(|p| *p == "https" || *p == "http")
                    .unwrap_or("http");
                format!("{scheme}://{host}")
            }
        };
        format!("{base}/service/token")
    }

    /// A Bearer challenge, optionally for a scope and with an error.
    pub fn challenge(realm: &str, scope: Option<&str>, error: Option<&str>) -> String {
        let mut c = format!("Bearer realm=\"{realm}\",service=\"{}\"", token::SERVICE);
        if let Some(s) = scope {
            c.push_str(&format!(",scope=\"{s}\""));
        }
        if let Some(e) = error {
            c.push_str(&format!(",error=\"{e}\""));
        }
        c
    }

    /// Identify the caller from the `Authorization` header. No header: anonymous.
    pub async fn authenticate(&self, headers: &HeaderMap, client: Option<SocketAddr>) -> Result<Caller, AuthError> {
        let realm = self.realm(headers);
        let client = client
            .map(|a| self.client_ip(a.ip(), headers).to_string())
            .unwrap_or_else(|| "unknown".into());
        let unauthenticated = |message: &str| AuthError::Unauthenticated {
            challenge: Auth::challenge(&realm, None, Some("invalid_token")),
            message: message.to_owned(),
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(Caller {
                subject: Subject::Anonymous,
                via: Via::Nothing,
                client,
                realm,
            });
        };
        let value = value
            .to_str()
            .map_err(|_| unauthenticated("malformed Authorization header"))?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let (name, secret) = parse_basic(rest).ok_or_else(|| unauthenticated("malformed Basic credentials"))?;
            let subject = self.login(&name, &secret, &client).await?;
            return Ok(Caller {
                subject,
                via: Via::Basic,
                client,
                realm,
            });
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            if rest.is_empty() {
                return Err(unauthenticated("empty Bearer token"));
            }
            let claims = self.keys.verify(rest).map_err(|e| unauthenticated(&e.to_string()))?;
            let subject = self
                .subject_of_token(&claims)
                .await?
                .ok_or_else(|| unauthenticated("the token's account no longer exists or is disabled"))?;
            return Ok(Caller {
                subject,
                via: Via::Token(Box::new(claims)),
                client,
                realm,
            });
        }
        Err(unauthenticated("unsupported authorization scheme; use Basic or Bearer"))
    }

    /// The live subject behind a token's `sub` (an account deleted or disabled since the
    /// token was issued is refused).
    async fn subject_of_token(&self, claims: &Claims) -> Result<Option<Subject>, AuthError> {
        if claims.sub.is_empty() {
            return Ok(Some(Subject::Anonymous));
        }
        // A credential changed since the token was issued (password changed, secret
        // rotated) voids it, as the old credential itself is refused at once. pier puts the
        // version in every token it issues for an account; one without (issued before
        // versions existed) lives out its short TTL.
        let current = |stored: &str| claims.cv.as_deref().is_none_or(|cv| cv == credential_version(stored));
        if let Some((project, name)) = robot_parts(&claims.sub) {
            let Some(r) = self.access.robot(project, name).await? else {
                return Ok(None);
            };
            if r.disabled || r.expires_at.is_some_and(|e| e <= now()) || !current(&r.secret_sha256) {
                return Ok(None);
            }
            return Ok(Some(Subject::Robot {
                project: r.project,
                name: r.name,
                grant: Grant::of(&r.permissions),
                expires_at: r.expires_at,
            }));
        }
        Ok(self
            .access
            .user(&claims.sub)
            .await?
            .filter(|u| current(&u.password_hash))
            .map(|u| Subject::User {
                name: u.name,
                admin: u.admin,
            }))
    }

    /// The credential version of a subject's account now, for a token.
    async fn current_credential(&self, subject: &Subject) -> Result<Option<String>, AuthError> {
        Ok(match subject {
            Subject::Anonymous => None,
            Subject::User { name, .. } => self
                .access
                .user(name)
                .await?
                .map(|u| credential_version(&u.password_hash)),
            Subject::Robot { project, name, .. } => self
                .access
                .robot(project, name)
                .await?
                .map(|r| credential_version(&r.secret_sha256)),
        })
    }

    /// Check a name and secret (user password or robot secret), with throttling and audit.
    ///
    /// Names outside the grammars of user and robot names and over-long secrets are refused
    /// before anything is looked up, cached or counted. Robot secrets are 256-bit random
    /// values checked with one SHA-256: they cannot be guessed, so robots have no lockout
    /// (which would only let anyone lock a CI robot out). User passwords go through the
    /// per-user-and-address lockout, the per-address rate limit and the bounded argon2 queue.
    pub async fn login(&self, name: &str, secret: &str, client: &str) -> Result<Subject, AuthError> {
        let robot = robot_parts(name);
        let well_formed = secret.len() <= MAX_SECRET_BYTES && (robot.is_some() || valid_user_name(name));
        // Built only when something is recorded: a remembered login (the common case for
        // clients that send Basic credentials on every request) records nothing.
        let login_event = || AuditEvent {
            time: now(),
            actor: name.to_owned(),
            actor_kind: if name.starts_with(ROBOT_PREFIX) {
                ActorKind::Robot
            } else {
                ActorKind::User
            },
            action: AuditAction::Login,
            project: None,
            repository: None,
            reference: None,
            digest: None,
            target: None,
            client: client.to_owned(),
            result: Outcome::Failure,
            detail: None,
        };
        if !well_formed {
            let mut event = login_event();
            // The audit sink cuts the name to a bounded length.
            event.detail = Some("malformed credentials".into());
            self.audit.record(event).await;
            return Err(wrong_credentials(WRONG_CREDENTIALS));
        }
        // A locked pair is refused even the right password (and a remembered login) until
        // the lock ends: the lock is per address, so only the guesser's address waits.
        if robot.is_none()
            && let Err(wait) = self.throttle.check(name, client)
        {
            // Not logged: the log has the lockout itself, once.
            return Err(AuthError::Throttled {
                retry_after: retry_secs(wait),
            });
        }
        if let Some(s) = self.logins.get(name, secret) {
            let expired = matches!(&s, Subject::Robot { expires_at: Some(e), .. } if *e <= now());
            if !expired {
                return Ok(s);
            }
        }
        let checked = match robot {
            Some((project, short)) => self.check_robot(project, short, secret).await?,
            None => match self.check_user(name, secret, client).await {
                Err(e @ AuthError::RateLimited { .. }) => {
                    let mut event = login_event();
                    event.action = AuditAction::LoginThrottled;
                    event.detail = Some(e.to_string());
                    self.audit.record(event).await;
                    return Err(e);
                }
                other => other?,
            },
        };
        let mut event = login_event();
        match checked {
            Ok(s) => {
                if robot.is_none() {
                    self.throttle.succeeded(name, client);
                }
                self.logins.put(name, secret, s.clone());
                event.result = Outcome::Success;
                self.audit.record(event).await;
                Ok(s)
            }
            Err(why) => {
                event.detail = Some(why.to_owned());
                self.audit.record(event.clone()).await;
                if robot.is_none()
                    && let Failure::LockedOut(d) = self.throttle.failed(name, client)
                {
                    event.action = AuditAction::LoginThrottled;
                    event.detail = Some(format!("locked out for {} s", d.as_secs()));
                    self.audit.record(event).await;
                }
                Err(wrong_credentials(why))
            }
        }
    }

    /// A robot's secret. `Err(why)` says no more than the caller may learn: the robot's
    /// state only once its secret matched.
    async fn check_robot(
        &self,
        project: &str,
        name: &str,
        secret: &str,
    ) -> Result<Result<Subject, &'static str>, AuthError> {
        let Some(r) = self.access.robot(project, name).await? else {
            return Ok(Err(WRONG_CREDENTIALS));
        };
        let given = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
        if !constant_time_eq(given.as_bytes(), r.secret_sha256.as_bytes()) {
            return Ok(Err(WRONG_CREDENTIALS));
        }
        if r.disabled {
            return Ok(Err("robot account is disabled"));
        }
        if r.expires_at.is_some_and(|e| e <= now()) {
            return Ok(Err("robot account has expired"));
        }
        Ok(Ok(Subject::Robot {
            project: r.project,
            name: r.name,
            grant: Grant::of(&r.permissions),
            expires_at: r.expires_at,
        }))
    }

    /// A user's password: the address's budget of password checks, then argon2 (an unknown
    /// user is checked against a decoy hash: same time, same answer).
    async fn check_user(
        &self,
        name: &str,
        secret: &str,
        client: &str,
    ) -> Result<Result<Subject, &'static str>, AuthError> {
        if let Err(wait) = self.limiter.take(client) {
            return Err(AuthError::RateLimited {
                retry_after: retry_secs(wait),
            });
        }
        let user = self.access.user(name).await?;
        let phc = user
            .as_ref()
            .map_or_else(|| password::DECOY.to_owned(), |u| u.password_hash.clone());
        let ok = self
            .hashing
            .verify(secret.to_owned(), phc, HASH_QUEUE_WAIT)
            .await
            .map_err(|password::Busy| AuthError::RateLimited { retry_after: 1 })?;
        Ok(match user {
            Some(u) if ok => {
                // Right passwords do not count against the address: only guesses do.
                self.limiter.refund(client);
                Ok(Subject::User {
                    name: u.name,
                    admin: u.admin,
                })
            }
            _ => Err(WRONG_CREDENTIALS),
        })
    }

    /// What `subject` may do in `project` (and the project, if it exists). A project that
    /// does not exist grants nothing to anyone: pushing into it is denied.
    pub async fn grant(&self, subject: &Subject, project: &str) -> Result<(Option<ProjectRecord>, Grant), AuthError> {
        let Some(p) = self.access.project(project).await? else {
            return Ok((None, Grant::NONE));
        };
        let public = if p.public { Grant::public() } else { Grant::NONE };
        let g = match subject {
            Subject::Anonymous => public,
            Subject::User { admin: true, .. } => Grant::all(),
            Subject::User { name, .. } => match self.access.role(project, name).await? {
                Some(r) => r.grant().union(public),
                None => public,
            },
            Subject::Robot {
                project: own, grant, ..
            } => {
                if own == project {
                    grant.union(public)
                } else {
                    public
                }
            }
        };
        Ok((Some(p), g))
    }

    /// Whether the caller may do `action` on `repo`: the token (if any) must cover it and the
    /// matrix must allow it.
    pub async fn check(&self, caller: &Caller, repo: &RepoName, action: Action) -> Result<(), AuthError> {
        let Some(project) = repo.project() else {
            return Err(self.refuse(
                caller,
                Some(challenge_scope(repo, action)),
                format!("repository names are <project>/<repository>; {repo} belongs to no project"),
            ));
        };
        if let Via::Token(claims) = &caller.via {
            let needed = token_action(action);
            if !claims
                .actions("repository", repo.as_str())
                .any(|a| a == needed || a == "*")
            {
                let scope = challenge_scope(repo, action);
                return Err(AuthError::Unauthenticated {
                    challenge: Auth::challenge(&caller.realm, Some(&scope), Some("insufficient_scope")),
                    message: format!("the token does not grant {needed} on {repo}"),
                });
            }
        }
        let (p, g) = self.grant(&caller.subject, project).await?;
        if g.has(action) {
            return Ok(());
        }
        let message = match p {
            None if caller.subject.is_admin() => format!("project {project} does not exist; create it first"),
            _ => format!("{} may not {} in {repo}", caller.subject.actor(), action),
        };
        Err(self.refuse(caller, Some(challenge_scope(repo, action)), message))
    }

    /// Whether the caller may do `action` in `project`, for routes about a project rather
    /// than a repository (the management API, extensions' routes): anonymous callers are
    /// asked for Basic credentials, others refused; the admin learns that the project does
    /// not exist.
    pub async fn check_project(
        &self,
        caller: &Caller,
        project: &str,
        action: Action,
    ) -> Result<(ProjectRecord, Grant), AuthError> {
        check_project_name(project)?;
        let (p, g) = self.grant(&caller.subject, project).await?;
        match p {
            Some(p) if g.has(action) => Ok((p, g)),
            None if caller.subject.is_admin() => Err(AuthError::NotFound(format!("project {project} does not exist"))),
            _ => Err(match caller.subject {
                Subject::Anonymous => AuthError::Unauthenticated {
                    challenge: BASIC_CHALLENGE.into(),
                    message: "authentication required".into(),
                },
                _ => AuthError::Denied(format!(
                    "{} may not {action} in project {project}",
                    caller.subject.actor()
                )),
            }),
        }
    }

    /// 401 with a challenge for anonymous callers (they may succeed with credentials), 403
    /// for everyone else.
    pub fn refuse(&self, caller: &Caller, scope: Option<String>, message: String) -> AuthError {
        match caller.subject {
            Subject::Anonymous => AuthError::Unauthenticated {
                challenge: Auth::challenge(&caller.realm, scope.as_deref(), None),
                message: "authentication required".into(),
            },
            _ => AuthError::Denied(message),
        }
    }

    /// Grant what the matrix allows of the requested scopes, and sign a token for it.
    /// Returns the token, its lifetime and what was granted.
    pub async fn issue_token(
        &self,
        subject: &Subject,
        scopes: &[Scope],
    ) -> Result<(String, u64, Vec<Access>), AuthError> {
        let mut access: Vec<Access> = Vec::new();
        for scope in scopes {
            match scope {
                Scope::Catalog => access.push(Access {
                    kind: "registry".into(),
                    name: "catalog".into(),
                    actions: vec!["*".into()],
                }),
                Scope::Repository(repo, wanted) => {
                    let g = match repo.project() {
                        Some(p) => self.grant(subject, p).await?.1,
                        None => Grant::NONE,
                    };
                    let allowed = |t: &str| {
                        TOKEN_ACTIONS
                            .iter()
                            .find(|(n, _)| *n == t)
                            .is_some_and(|(_, acts)| acts.iter().any(|a| g.has(*a)))
                    };
                    let mut actions: Vec<String> = Vec::new();
                    for w in wanted {
                        let granted: Vec<&str> = match w.as_str() {
                            "*" if TOKEN_ACTIONS.iter().all(|(t, _)| allowed(t)) => vec!["*"],
                            "*" => TOKEN_ACTIONS.iter().map(|(t, _)| *t).filter(|t| allowed(t)).collect(),
                            t if allowed(t) => vec![t],
                            _ => vec![],
                        };
                        for a in granted {
                            if !actions.iter().any(|x| x == a) {
                                actions.push(a.to_owned());
                            }
                        }
                    }
                    access.push(Access {
                        kind: "repository".into(),
                        name: repo.to_string(),
                        actions,
                    });
                }
            }
        }
        let t = now();
        let ttl = self.config.token_ttl.as_secs();
        let sub = match subject {
            Subject::Anonymous => String::new(),
            s => s.actor(),
        };
        let jti = hex::encode(token::random_bytes::<16>().map_err(|e| AuthError::Internal(e.to_string()))?);
        let cv = self.current_credential(subject).await?;
        let claims = Claims {
            iss: token::SERVICE.into(),
            sub,
            aud: token::SERVICE.into(),
            exp: t + ttl,
            nbf: t.saturating_sub(1),
            iat: t,
            jti,
            cv,
            access: access.clone(),
        };
        Ok((self.keys.sign(&claims), ttl, access))
    }

    /// An audit event by `caller`, to be completed by the caller of this function.
    pub fn event(&self, caller: &Caller, action: AuditAction, result: Outcome) -> AuditEvent {
        AuditEvent::new(
            now(),
            caller.subject.actor(),
            caller.subject.kind(),
            action,
            caller.client.clone(),
            result,
        )
    }
}

use sha2::Digest as _;

/// A wait as the whole seconds of `Retry-After`, at least one.
fn retry_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

fn wrong_credentials(why: &str) -> AuthError {
    AuthError::Unauthenticated {
        challenge: BASIC_CHALLENGE.into(),
        message: why.to_owned(),
    }
}

/// The addresses of `X-Forwarded-For`, or of `Forwarded` when there is no
/// `X-Forwarded-For`, from the original client to the last proxy; `None` for an entry that
/// is not an address. Ports and IPv6 brackets are dropped.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    fn addr(s: &str) -> Option<IpAddr> {
        let s = s.trim().trim_matches('"');
        if let Ok(ip) = s.parse() {
            return Some(ip);
        }
        if let Some(rest) = s.strip_prefix('[') {
            return rest.split_once(']')?.0.parse().ok();
        }
        // IPv4 with a port.
        s.rsplit_once(':').and_then(|(h, _)| h.parse().ok())
    }
    let values = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff.iter().map(|e| addr(e)).collect();
    }
    values("forwarded")
        .iter()
        .map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| addr(v))
            })?
        })
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `base64(name:secret)` → (name, secret).
fn parse_basic(b64: &str) -> Option<(String, String)> {
    // Longer than any valid robot name and secret can be once encoded: not decoded at all.
    if b64.len() > MAX_BASIC_B64 {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (name, secret) = text.split_once(':')?;
    if name.is_empty() {
        return None;
    }
    Some((name.to_owned(), secret.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_parse() {
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            parse_basic(&enc("robot$ci+build:s3:cret")),
            Some(("robot$ci+build".into(), "s3:cret".into()))
        );
        assert_eq!(parse_basic(&enc("nocolon")), None);
        assert_eq!(parse_basic(&enc(":pw")), None);
        assert_eq!(parse_basic("!!!"), None);
    }

    #[test]
    fn challenges_name_realm_service_and_scope() {
        let c = Auth::challenge("http://h:5000/service/token", Some("repository:a/b:pull"), None);
        assert_eq!(
            c,
            r#"Bearer realm="http://h:5000/service/token",service="pier",scope="repository:a/b:pull""#
        );
        assert_eq!(
            challenge_scope(&"a/b".parse().unwrap(), Action::Push),
            "repository:a/b:pull,push"
        );
        assert_eq!(
            challenge_scope(&"a/b".parse().unwrap(), Action::DeleteTag),
            "repository:a/b:pull,delete"
        );
    }
}
