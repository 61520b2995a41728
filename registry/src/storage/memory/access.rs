//! Users, projects, members and robots in memory.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::auth::Role;
use crate::storage::access::{AccessStore, ProjectRecord, RobotRecord, SetMember, UserRecord};
use crate::storage::meta::MetaError;

/// A pair key: (project, user) or (project, robot).
type Pair = (String, String);

#[derive(Default)]
struct State {
    users: BTreeMap<String, UserRecord>,
    projects: BTreeMap<String, ProjectRecord>,
    /// (project, user) → role. A user's memberships are found by a scan: they are read on
    /// account pages, not per request.
    members: BTreeMap<Pair, Role>,
    robots: BTreeMap<Pair, RobotRecord>,
    bootstrapped: bool,
}

/// The entries of `map` whose key starts with `first`, in order.
fn under<'a, V>(map: &'a BTreeMap<Pair, V>, first: &str) -> impl Iterator<Item = (&'a String, &'a V)> {
    let start = (first.to_owned(), String::new());
    map.range((Bound::Included(start), Bound::Unbounded))
        .take_while(move |((f, _), _)| f == first)
        .map(|((_, second), v)| (second, v))
}

/// Replace the value under `k` if there is one.
fn replace<K: Ord, V>(map: &mut BTreeMap<K, V>, k: K, v: V) -> bool {
    match map.get_mut(&k) {
        Some(old) => {
            *old = v;
            true
        }
        None => false,
    }
}

/// Insert `v` under `k` unless there is a value already.
fn insert_new<K: Ord, V>(map: &mut BTreeMap<K, V>, k: K, v: V) -> bool {
    match map.entry(k) {
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert(v);
            true
        }
        std::collections::btree_map::Entry::Occupied(_) => false,
    }
}

/// [`AccessStore`] in memory.
#[derive(Default)]
pub struct MemoryAccessStore {
    state: Mutex<State>,
}

impl MemoryAccessStore {
    /// An empty store.
    pub fn new() -> MemoryAccessStore {
        MemoryAccessStore::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T, MetaError> {
        Ok(f(&mut lock(&self.state)))
    }
}

#[async_trait]
impl AccessStore for MemoryAccessStore {
    async fn user(&self, name: &str) -> Result<Option<UserRecord>, MetaError> {
        self.with(|s| s.users.get(name).cloned())
    }

    async fn create_user(&self, user: &UserRecord) -> Result<bool, MetaError> {
        self.with(|s| insert_new(&mut s.users, user.name.clone(), user.clone()))
    }

    async fn update_user(&self, user: &UserRecord) -> Result<bool, MetaError> {
        self.with(|s| replace(&mut s.users, user.name.clone(), user.clone()))
    }

    async fn delete_user(&self, name: &str) -> Result<bool, MetaError> {
        self.with(|s| {
            if s.users.remove(name).is_none() {
                return false;
            }
            s.members.retain(|(_, user), _| user != name);
            true
        })
    }

    async fn users(&self) -> Result<Vec<UserRecord>, MetaError> {
        self.with(|s| s.users.values().cloned().collect())
    }

    async fn project(&self, name: &str) -> Result<Option<ProjectRecord>, MetaError> {
        self.with(|s| s.projects.get(name).cloned())
    }

    async fn create_project(&self, project: &ProjectRecord, owner: Option<&str>) -> Result<bool, MetaError> {
        self.with(|s| {
            if !insert_new(&mut s.projects, project.name.clone(), project.clone()) {
                return false;
            }
            if let Some(o) = owner {
                s.members
                    .insert((project.name.clone(), o.to_owned()), Role::ProjectAdmin);
            }
            true
        })
    }

    async fn update_project(&self, project: &ProjectRecord) -> Result<bool, MetaError> {
        self.with(|s| replace(&mut s.projects, project.name.clone(), project.clone()))
    }

    async fn delete_project(&self, name: &str) -> Result<bool, MetaError> {
        self.with(|s| {
            if s.projects.remove(name).is_none() {
                return false;
            }
            s.members.retain(|(project, _), _| project != name);
            s.robots.retain(|(project, _), _| project != name);
            true
        })
    }

    async fn projects(&self) -> Result<Vec<ProjectRecord>, MetaError> {
        self.with(|s| s.projects.values().cloned().collect())
    }

    async fn set_member(&self, project: &str, user: &str, role: Role) -> Result<SetMember, MetaError> {
        self.with(|s| {
            if !s.users.contains_key(user) {
                return SetMember::NoUser;
            }
            if !s.projects.contains_key(project) {
                return SetMember::NoProject;
            }
            match s.members.insert((project.to_owned(), user.to_owned()), role) {
                None => SetMember::Added,
                Some(old) => SetMember::Changed(old),
            }
        })
    }

    async fn remove_member(&self, project: &str, user: &str) -> Result<bool, MetaError> {
        self.with(|s| s.members.remove(&(project.to_owned(), user.to_owned())).is_some())
    }

    async fn role(&self, project: &str, user: &str) -> Result<Option<Role>, MetaError> {
        self.with(|s| s.members.get(&(project.to_owned(), user.to_owned())).copied())
    }

    async fn members(&self, project: &str) -> Result<Vec<(String, Role)>, MetaError> {
        self.with(|s| under(&s.members, project).map(|(u, r)| (u.clone(), *r)).collect())
    }

    async fn memberships(&self, user: &str) -> Result<Vec<(String, Role)>, MetaError> {
        self.with(|s| {
            s.members
                .iter()
                .filter(|((_, u), _)| u == user)
                .map(|((p, _), r)| (p.clone(), *r))
                .collect()
        })
    }

    async fn robot(&self, project: &str, name: &str) -> Result<Option<RobotRecord>, MetaError> {
        self.with(|s| s.robots.get(&(project.to_owned(), name.to_owned())).cloned())
    }

    async fn create_robot(&self, robot: &RobotRecord) -> Result<bool, MetaError> {
        self.with(|s| {
            s.projects.contains_key(&robot.project)
                && insert_new(
                    &mut s.robots,
                    (robot.project.clone(), robot.name.clone()),
                    robot.clone(),
                )
        })
    }

    async fn update_robot(&self, robot: &RobotRecord) -> Result<bool, MetaError> {
        self.with(|s| {
            replace(
                &mut s.robots,
                (robot.project.clone(), robot.name.clone()),
                robot.clone(),
            )
        })
    }

    async fn delete_robot(&self, project: &str, name: &str) -> Result<bool, MetaError> {
        self.with(|s| s.robots.remove(&(project.to_owned(), name.to_owned())).is_some())
    }

    async fn robots(&self, project: &str) -> Result<Vec<RobotRecord>, MetaError> {
        self.with(|s| under(&s.robots, project).map(|(_, r)| r.clone()).collect())
    }

    async fn bootstrap(&self, admin: &UserRecord, projects: &[ProjectRecord]) -> Result<bool, MetaError> {
        self.with(|s| {
            if std::mem::replace(&mut s.bootstrapped, true) {
                return false;
            }
            s.users.insert(admin.name.clone(), admin.clone());
            for p in projects {
                s.projects.insert(p.name.clone(), p.clone());
            }
            true
        })
    }
}
