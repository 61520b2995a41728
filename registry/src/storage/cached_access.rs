//! An in-memory cache in front of any [`AccessStore`]. Every registry request asks who a
//! user is, whether a project is public and which role the caller has there; those answers
//! change rarely, so they are served from memory instead of a blocking store lookup each.
//!
//! Every change goes through this wrapper and empties the cache, so an answer is never
//! staler than the last change made through it. A generation counter keeps a lookup that
//! raced with a change from putting its old answer back.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::access::{AccessStore, ProjectRecord, RobotRecord, SetMember, UserRecord};
use super::meta::MetaError;
use crate::auth::Role;

/// Most entries per map before it is emptied (a bound, not a working-set size: the answers
/// are tiny and the hot set is the users and projects in use).
const MAX_ENTRIES: usize = 16 * 1024;

struct Maps {
    users: HashMap<String, Option<UserRecord>>,
    projects: HashMap<String, Option<ProjectRecord>>,
    roles: HashMap<(String, String), Option<Role>>,
    robots: HashMap<(String, String), Option<RobotRecord>>,
}

/// [`AccessStore`] with its point lookups cached.
pub struct CachedAccess {
    inner: Arc<dyn AccessStore>,
    maps: Mutex<Maps>,
    generation: AtomicU64,
}

fn put<K: Eq + Hash, V>(map: &mut HashMap<K, V>, k: K, v: V) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(k, v);
}

impl CachedAccess {
    /// Cache `inner`.
    pub fn new(inner: Arc<dyn AccessStore>) -> CachedAccess {
        CachedAccess {
            inner,
            maps: Mutex::new(Maps {
                users: HashMap::new(),
                projects: HashMap::new(),
                roles: HashMap::new(),
                robots: HashMap::new(),
            }),
            generation: AtomicU64::new(0),
        }
    }

    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().expect("access cache lock")
    }

    /// A cached answer, or the store's (cached unless a change happened meanwhile).
    async fn lookup<V: Clone>(
        &self,
        get: impl Fn(&Maps) -> Option<V>,
        fetch: impl Future<Output = Result<V, MetaError>>,
        keep: impl FnOnce(&mut Maps, V),
    ) -> Result<V, MetaError> {
        if let Some(v) = get(&self.maps()) {
            return Ok(v);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let v = fetch.await?;
        let mut maps = self.maps();
        if self.generation.load(Ordering::Acquire) == generation {
            keep(&mut maps, v.clone());
        }
        Ok(v)
    }

    /// After a change: forget everything.
    fn changed<T>(&self, r: Result<T, MetaError>) -> Result<T, MetaError> {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut m = self.maps();
        m.users.clear();
        m.projects.clear();
        m.roles.clear();
        m.robots.clear();
        r
    }
}

#[async_trait]
impl AccessStore for CachedAccess {
    async fn user(&self, name: &str) -> Result<Option<UserRecord>, MetaError> {
        self.lookup(
            |m| m.users.get(name).cloned(),
            self.inner.user(name),
            |m, v| put(&mut m.users, name.to_owned(), v),
        )
        .await
    }

    async fn create_user(&self, user: &UserRecord) -> Result<bool, MetaError> {
        self.changed(self.inner.create_user(user).await)
    }

    async fn update_user(&self, user: &UserRecord) -> Result<bool, MetaError> {
        self.changed(self.inner.update_user(user).await)
    }

    async fn delete_user(&self, name: &str) -> Result<bool, MetaError> {
        self.changed(self.inner.delete_user(name).await)
    }

    async fn users(&self) -> Result<Vec<UserRecord>, MetaError> {
        self.inner.users().await
    }

    async fn project(&self, name: &str) -> Result<Option<ProjectRecord>, MetaError> {
        self.lookup(
            |m| m.projects.get(name).cloned(),
            self.inner.project(name),
            |m, v| put(&mut m.projects, name.to_owned(), v),
        )
        .await
    }

    async fn create_project(&self, project: &ProjectRecord, owner: Option<&str>) -> Result<bool, MetaError> {
        self.changed(self.inner.create_project(project, owner).await)
    }

    async fn update_project(&self, project: &ProjectRecord) -> Result<bool, MetaError> {
        self.changed(self.inner.update_project(project).await)
    }

    async fn delete_project(&self, name: &str) -> Result<bool, MetaError> {
        self.changed(self.inner.delete_project(name).await)
    }

    async fn projects(&self) -> Result<Vec<ProjectRecord>, MetaError> {
        self.inner.projects().await
    }

    async fn set_member(&self, project: &str, user: &str, role: Role) -> Result<SetMember, MetaError> {
        self.changed(self.inner.set_member(project, user, role).await)
    }

    async fn remove_member(&self, project: &str, user: &str) -> Result<bool, MetaError> {
        self.changed(self.inner.remove_member(project, user).await)
    }

    async fn role(&self, project: &str, user: &str) -> Result<Option<Role>, MetaError> {
        let k = (project.to_owned(), user.to_owned());
        self.lookup(
            |m| m.roles.get(&k).copied(),
            self.inner.role(project, user),
            |m, v| put(&mut m.roles, k.clone(), v),
        )
        .await
    }

    async fn members(&self, project: &str) -> Result<Vec<(String, Role)>, MetaError> {
        self.inner.members(project).await
    }

    async fn memberships(&self, user: &str) -> Result<Vec<(String, Role)>, MetaError> {
        self.inner.memberships(user).await
    }

    async fn robot(&self, project: &str, name: &str) -> Result<Option<RobotRecord>, MetaError> {
        let k = (project.to_owned(), name.to_owned());
        self.lookup(
            |m| m.robots.get(&k).cloned(),
            self.inner.robot(project, name),
            |m, v| put(&mut m.robots, k.clone(), v),
        )
        .await
    }

    async fn create_robot(&self, robot: &RobotRecord) -> Result<bool, MetaError> {
        self.changed(self.inner.create_robot(robot).await)
    }

    async fn update_robot(&self, robot: &RobotRecord) -> Result<bool, MetaError> {
        self.changed(self.inner.update_robot(robot).await)
    }

    async fn delete_robot(&self, project: &str, name: &str) -> Result<bool, MetaError> {
        self.changed(self.inner.delete_robot(project, name).await)
    }

    async fn robots(&self, project: &str) -> Result<Vec<RobotRecord>, MetaError> {
        self.inner.robots(project).await
    }

    async fn bootstrap(&self, admin: &UserRecord, projects: &[ProjectRecord]) -> Result<bool, MetaError> {
        self.changed(self.inner.bootstrap(admin, projects).await)
    }
}
