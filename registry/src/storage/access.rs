//! The access store trait: users, projects, memberships and robot accounts.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::meta::MetaError;
use crate::auth::{Action, Role};

/// A user account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Login name.
    pub name: String,
    /// Argon2 PHC string of the password.
    pub password_hash: String,
    /// System admin.
    pub admin: bool,
    /// Unix seconds.
    pub created: u64,
}

/// A project: the first segment of its repositories' names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectRecord {
    /// Name (a repository path component).
    pub name: String,
    /// Anyone may pull.
    pub public: bool,
    /// Unix seconds.
    pub created: u64,
}

/// A robot account of one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobotRecord {
    /// Its project.
    pub project: String,
    /// Short name; the account name is `robot$<project>+<name>`.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// SHA-256 (hex) of the secret. Secrets are 256 random bits, so a slow hash adds nothing.
    pub secret_sha256: String,
    /// What it may do in its project.
    pub permissions: Vec<Action>,
    /// Refused while set.
    pub disabled: bool,
    /// Unix seconds after which it is refused.
    pub expires_at: Option<u64>,
    /// Unix seconds.
    pub created: u64,
}

impl RobotRecord {
    /// `robot$<project>+<name>`, the name it logs in with.
    pub fn account(&self) -> String {
        robot_account(&self.project, &self.name)
    }
}

/// `robot$<project>+<name>`.
pub fn robot_account(project: &str, name: &str) -> String {
    format!("{ROBOT_PREFIX}{project}+{name}")
}

/// What every robot account name starts with.
pub const ROBOT_PREFIX: &str = "robot$";

/// What [`AccessStore::set_member`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetMember {
    /// A new member.
    Added,
    /// An existing member's role changed from this one.
    Changed(Role),
    /// No such user.
    NoUser,
    /// No such project.
    NoProject,
}

/// Users, projects, members and robots.
///
/// Contract (checked by the conformance suite, `storage::testing` with the `testing`
/// feature): every mutating call is atomic and durable when it returns; deleting a user
/// removes their memberships, deleting a project removes its members and robots.
#[async_trait]
pub trait AccessStore: Send + Sync + 'static {
    /// A user by name.
    async fn user(&self, name: &str) -> Result<Option<UserRecord>, MetaError>;
    /// Add a user; false when the name is taken.
    async fn create_user(&self, user: &UserRecord) -> Result<bool, MetaError>;
    /// Replace an existing user; false when there is none.
    async fn update_user(&self, user: &UserRecord) -> Result<bool, MetaError>;
    /// Delete a user and their memberships; false when there is none.
    async fn delete_user(&self, name: &str) -> Result<bool, MetaError>;
    /// All users, by name.
    async fn users(&self) -> Result<Vec<UserRecord>, MetaError>;

    /// A project by name.
    async fn project(&self, name: &str) -> Result<Option<ProjectRecord>, MetaError>;
    /// Add a project, with `owner` (a user) as its project admin; false when it exists.
    async fn create_project(&self, project: &ProjectRecord, owner: Option<&str>) -> Result<bool, MetaError>;
    /// Replace an existing project; false when there is none.
    async fn update_project(&self, project: &ProjectRecord) -> Result<bool, MetaError>;
    /// Delete a project with its members and robots; false when there is none.
    async fn delete_project(&self, name: &str) -> Result<bool, MetaError>;
    /// All projects, by name.
    async fn projects(&self) -> Result<Vec<ProjectRecord>, MetaError>;

    /// Give `user` `role` in `project` (both must exist).
    async fn set_member(&self, project: &str, user: &str, role: Role) -> Result<SetMember, MetaError>;
    /// Remove a member; false when not a member.
    async fn remove_member(&self, project: &str, user: &str) -> Result<bool, MetaError>;
    /// A user's role in a project.
    async fn role(&self, project: &str, user: &str) -> Result<Option<Role>, MetaError>;
    /// A project's members by user name.
    async fn members(&self, project: &str) -> Result<Vec<(String, Role)>, MetaError>;
    /// A user's projects by name, with their role.
    async fn memberships(&self, user: &str) -> Result<Vec<(String, Role)>, MetaError>;

    /// A robot by project and short name.
    async fn robot(&self, project: &str, name: &str) -> Result<Option<RobotRecord>, MetaError>;
    /// Add a robot to an existing project; false when the name is taken or the project is gone.
    async fn create_robot(&self, robot: &RobotRecord) -> Result<bool, MetaError>;
    /// Replace an existing robot; false when there is none.
    async fn update_robot(&self, robot: &RobotRecord) -> Result<bool, MetaError>;
    /// Delete a robot; false when there is none.
    async fn delete_robot(&self, project: &str, name: &str) -> Result<bool, MetaError>;
    /// A project's robots by name.
    async fn robots(&self, project: &str) -> Result<Vec<RobotRecord>, MetaError>;

    /// First-start setup, done at most once in a store's life (so a deleted default
    /// project stays deleted): create `admin` and `projects`. True when it ran now.
    async fn bootstrap(&self, admin: &UserRecord, projects: &[ProjectRecord]) -> Result<bool, MetaError>;
}
