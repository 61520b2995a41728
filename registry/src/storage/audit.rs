//! The audit log trait: an append-only record of who did what, when, from where.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::meta::MetaError;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A manifest was read (GET; HEADs and blob reads are not logged).
    Pull,
    /// A manifest was pushed.
    Push,
    /// A tag was deleted.
    DeleteTag,
    /// A manifest was deleted by digest.
    DeleteManifest,
    /// A blob was deleted from a repository.
    DeleteBlob,
    /// Credentials were checked.
    Login,
    /// A login was refused because of earlier failures.
    LoginThrottled,
    /// A token was issued.
    Token,
    /// A project was created.
    ProjectCreate,
    /// A project's visibility changed.
    ProjectUpdate,
    /// A project was deleted.
    ProjectDelete,
    /// A member was added or their role changed.
    MemberSet,
    /// A member was removed.
    MemberRemove,
    /// A robot was created.
    RobotCreate,
    /// A robot was disabled, enabled or changed.
    RobotUpdate,
    /// A robot's secret was replaced.
    RobotRotate,
    /// A robot was deleted.
    RobotDelete,
    /// A user was created.
    UserCreate,
    /// A user was deleted.
    UserDelete,
    /// A password was changed.
    PasswordChange,
    /// The oldest events were dropped to keep the log under its size cap.
    AuditPurged,
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A user account.
    User,
    /// A robot account.
    Robot,
    /// No credentials.
    Anonymous,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Success,
    /// Tried and failed (wrong password, bad request, missing content).
    Failure,
    /// Refused by the permission matrix.
    Denied,
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unix seconds.
    pub time: u64,
    /// User or robot name, `anonymous`, or the name a failed login gave.
    pub actor: String,
    /// What kind of account `actor` is.
    pub actor_kind: ActorKind,
    /// What happened.
    pub action: AuditAction,
    /// The project concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The repository concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Tag or digest as requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The manifest or blob digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The user, member or robot acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The client's address.
    pub client: String,
    /// How it ended.
    pub result: Outcome,
    /// More about it (granted scopes, why it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditEvent {
    /// An event at `time` with nothing but who did what, from where, and how it ended; the
    /// caller fills in what it is about.
    pub fn new(
        time: u64,
        actor: String,
        actor_kind: ActorKind,
        action: AuditAction,
        client: String,
        result: Outcome,
    ) -> Self {
        AuditEvent {
            time,
            actor,
            actor_kind,
            action,
            project: None,
            repository: None,
            reference: None,
            digest: None,
            target: None,
            client,
            result,
            detail: None,
        }
    }
}

/// Which events a query wants. Every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// Actor name.
    pub actor: Option<String>,
    /// Project.
    pub project: Option<String>,
    /// Action.
    pub action: Option<AuditAction>,
    /// Events at or after (Unix seconds).
    pub since: Option<u64>,
    /// Events before (Unix seconds).
    pub until: Option<u64>,
    /// Only ids below this (the cursor of the previous page).
    pub before: Option<u64>,
    /// Page size.
    pub limit: usize,
}

/// One page of a query: events newest first with their ids, and the cursor of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    /// `(id, event)`, ids decreasing.
    pub events: Vec<(u64, AuditEvent)>,
    /// Pass as `before` to continue; `None` when the log has no more matches.
    pub next: Option<u64>,
}

/// What [`AuditLog::purge_to_size`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Events.
    pub events: usize,
    /// Bytes of storage they took.
    pub bytes: u64,
}

/// An append-only event log.
///
/// Contract (checked by the conformance suite, `storage::testing` with the `testing`
/// feature): ids increase in append order; appended events are durable once `flush`
/// returns; nothing but `purge_before` and `purge_to_size` removes an event, and both
/// remove the oldest first.
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Append events in order.
    async fn append(&self, events: Vec<AuditEvent>) -> Result<(), MetaError>;
    /// Matching events, newest first. Scans at most `scan_limit` entries; when it stops
    /// early the page is short and `next` says where to go on.
    async fn query(&self, q: &AuditQuery, scan_limit: usize) -> Result<AuditPage, MetaError>;
    /// Drop events older than `time` (retention). Returns how many.
    async fn purge_before(&self, time: u64) -> Result<usize, MetaError>;
    /// Drop the oldest events until the log takes at most about `max_bytes` of storage
    /// (a backend may drop in whole units, and keeps the unit being written).
    async fn purge_to_size(&self, max_bytes: u64) -> Result<Purged, MetaError>;
    /// Make appended events durable.
    async fn flush(&self) -> Result<(), MetaError>;
}
