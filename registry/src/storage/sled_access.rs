//! Users, projects, members and robots in the same sled database as the registry metadata.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::access::{AccessStore, ProjectRecord, RobotRecord, SetMember, UserRecord};
use super::keys::{self, key, prefix};
use super::meta::MetaError;
use crate::auth::Role;

struct Trees {
    db: sled::Db,
    users: sled::Tree,
    projects: sled::Tree,
    members: sled::Tree,
    member_of: sled::Tree,
    robots: sled::Tree,
}

/// [`AccessStore`] on sled.
#[derive(Clone)]
pub struct SledAccessStore {
    t: Arc<Trees>,
}

use super::sled_run::{self, engine};

impl sled_run::Trees for Trees {
    fn db(&self) -> &sled::Db {
        &self.db
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<MetaError>>;

fn tx_engine(e: TransactionError<MetaError>) -> MetaError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => engine(e),
    }
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialize")
}

fn decode<T: DeserializeOwned>(what: &str, v: &[u8]) -> Result<T, MetaError> {
    serde_json::from_slice(v).map_err(|e| MetaError::Corrupt(format!("{what}: {e}")))
}

fn decode_role(v: &[u8]) -> Result<Role, MetaError> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| MetaError::Corrupt(format!("role {v:?}")))
}

/// `(last key component, value)` of every entry under `pfx`.
fn scan_prefix(tree: &sled::Tree, pfx: &[u8]) -> Result<Vec<(String, sled::IVec)>, MetaError> {
    tree.scan_prefix(pfx)
        .map(|r| {
            let (k, v) = r.map_err(engine)?;
            Ok((keys::last_component(&k)?, v))
        })
        .collect()
}

fn all<T: DeserializeOwned>(tree: &sled::Tree, what: &str) -> Result<Vec<T>, MetaError> {
    tree.iter().map(|r| decode(what, &r.map_err(engine)?.1)).collect()
}

impl SledAccessStore {
    /// The access trees of an open database.
    pub(crate) fn open(db: sled::Db) -> Result<SledAccessStore, MetaError> {
        let tree = |name: &str| db.open_tree(name).map_err(engine);
        Ok(SledAccessStore {
            t: Arc::new(Trees {
                users: tree(keys::USERS)?,
                projects: tree(keys::PROJECTS)?,
                members: tree(keys::MEMBERS)?,
                member_of: tree(keys::MEMBER_OF)?,
                robots: tree(keys::ROBOTS)?,
                db,
            }),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Trees) -> Result<T, MetaError> + Send + 'static,
    ) -> Result<T, MetaError> {
        sled_run::run(&self.t, f).await
    }

    /// `run`, then flush: a change is durable before the caller answers.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Trees) -> Result<T, MetaError> + Send + 'static,
    ) -> Result<T, MetaError> {
        sled_run::write(&self.t, f).await
    }

    /// Insert `value` under `k` unless present.
    async fn insert_new(&self, tree: fn(&Trees) -> &sled::Tree, k: Vec<u8>, value: Vec<u8>) -> Result<bool, MetaError> {
        self.write(move |t| {
            let r = tree(t)
                .compare_and_swap(k, None as Option<&[u8]>, Some(value))
                .map_err(engine)?;
            Ok(r.is_ok())
        })
        .await
    }

    /// Replace the value under `k` if present.
    async fn replace(&self, tree: fn(&Trees) -> &sled::Tree, k: Vec<u8>, value: Vec<u8>) -> Result<bool, MetaError> {
        self.write(move |t| {
            let tree = tree(t);
            // Retry on a concurrent change: the update is a plain replace, the loop only
            // guarantees that a record deleted meanwhile is not resurrected.
            loop {
                let Some(old) = tree.get(&k).map_err(engine)? else {
                    return Ok(false);
                };
                if tree
                    .compare_and_swap(&k, Some(old), Some(value.as_slice()))
                    .map_err(engine)?
                    .is_ok()
                {
                    return Ok(true);
                }
            }
        })
        .await
    }

    async fn get<T: DeserializeOwned + Send + 'static>(
        &self,
        tree: fn(&Trees) -> &sled::Tree,
        what: &'static str,
        k: Vec<u8>,
    ) -> Result<Option<T>, MetaError> {
        self.run(move |t| tree(t).get(k).map_err(engine)?.map(|v| decode(what, &v)).transpose())
            .await
    }
}

#[async_trait]
impl AccessStore for SledAccessStore {
    async fn user(&self, name: &str) -> Result<Option<UserRecord>, MetaError> {
        self.get(|t| &t.users, "user", name.as_bytes().to_vec()).await
    }

    async fn create_user(&self, user: &UserRecord) -> Result<bool, MetaError> {
        self.insert_new(|t| &t.users, user.name.as_bytes().to_vec(), encode(user))
            .await
    }

    async fn update_user(&self, user: &UserRecord) -> Result<bool, MetaError> {
        self.replace(|t| &t.users, user.name.as_bytes().to_vec(), encode(user))
            .await
    }

    async fn delete_user(&self, name: &str) -> Result<bool, MetaError> {
        let name = name.to_owned();
        self.write(move |t| {
            let projects: Vec<String> = scan_prefix(&t.member_of, &prefix(&[&name]))?
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            (&t.users, &t.members, &t.member_of)
                .transaction(|(users, members, member_of)| -> TxResult<bool> {
                    if users.remove(name.as_bytes())?.is_none() {
                        return Ok(false);
                    }
                    for p in &projects {
                        members.remove(key(&[p, &name]))?;
                        member_of.remove(key(&[&name, p]))?;
                    }
                    Ok(true)
                })
                .map_err(tx_engine)
        })
        .await
    }

    async fn users(&self) -> Result<Vec<UserRecord>, MetaError> {
        self.run(|t| all(&t.users, "user")).await
    }

    async fn project(&self, name: &str) -> Result<Option<ProjectRecord>, MetaError> {
        self.get(|t| &t.projects, "project", name.as_bytes().to_vec()).await
    }

    async fn create_project(&self, project: &ProjectRecord, owner: Option<&str>) -> Result<bool, MetaError> {
        let (project, owner) = (project.clone(), owner.map(str::to_owned));
        self.write(move |t| {
            (&t.projects, &t.members, &t.member_of)
                .transaction(|(projects, members, member_of)| -> TxResult<bool> {
                    if projects.get(project.name.as_bytes())?.is_some() {
                        return Ok(false);
                    }
                    projects.insert(project.name.as_bytes(), encode(&project))?;
                    if let Some(o) = &owner {
                        let role = Role::ProjectAdmin.name().as_bytes();
                        members.insert(key(&[&project.name, o]), role)?;
                        member_of.insert(key(&[o, &project.name]), role)?;
                    }
                    Ok(true)
                })
                .map_err(tx_engine)
        })
        .await
    }

    async fn update_project(&self, project: &ProjectRecord) -> Result<bool, MetaError> {
        self.replace(|t| &t.projects, project.name.as_bytes().to_vec(), encode(project))
            .await
    }

    async fn delete_project(&self, name: &str) -> Result<bool, MetaError> {
        let name = name.to_owned();
        self.write(move |t| {
            let users: Vec<String> = scan_prefix(&t.members, &prefix(&[&name]))?
                .into_iter()
                .map(|(u, _)| u)
                .collect();
            let robots: Vec<String> = scan_prefix(&t.robots, &prefix(&[&name]))?
                .into_iter()
                .map(|(r, _)| r)
                .collect();
            (&t.projects, &t.members, &t.member_of, &t.robots)
                .transaction(|(projects, members, member_of, robots_tree)| -> TxResult<bool> {
                    if projects.remove(name.as_bytes())?.is_none() {
                        return Ok(false);
                    }
                    for u in &users {
                        members.remove(key(&[&name, u]))?;
                        member_of.remove(key(&[u, &name]))?;
                    }
                    for r in &robots {
                        robots_tree.remove(key(&[&name, r]))?;
                    }
                    Ok(true)
                })
                .map_err(tx_engine)
        })
        .await
    }

    async fn projects(&self) -> Result<Vec<ProjectRecord>, MetaError> {
        self.run(|t| all(&t.projects, "project")).await
    }

    async fn set_member(&self, project: &str, user: &str, role: Role) -> Result<SetMember, MetaError> {
        let (project, user) = (project.to_owned(), user.to_owned());
        self.write(move |t| {
            (&t.users, &t.projects, &t.members, &t.member_of)
                .transaction(|(users, projects, members, member_of)| -> TxResult<SetMember> {
                    if users.get(user.as_bytes())?.is_none() {
                        return Ok(SetMember::NoUser);
                    }
                    if projects.get(project.as_bytes())?.is_none() {
                        return Ok(SetMember::NoProject);
                    }
                    let value = role.name().as_bytes();
                    let old = members.insert(key(&[&project, &user]), value)?;
                    member_of.insert(key(&[&user, &project]), value)?;
                    Ok(match old {
                        None => SetMember::Added,
                        Some(v) => SetMember::Changed(decode_role(&v).map_err(ConflictableTransactionError::Abort)?),
                    })
                })
                .map_err(tx_engine)
        })
        .await
    }

    async fn remove_member(&self, project: &str, user: &str) -> Result<bool, MetaError> {
        let (project, user) = (project.to_owned(), user.to_owned());
        self.write(move |t| {
            (&t.members, &t.member_of)
                .transaction(|(members, member_of)| -> TxResult<bool> {
                    let was = members.remove(key(&[&project, &user]))?.is_some();
                    member_of.remove(key(&[&user, &project]))?;
                    Ok(was)
                })
                .map_err(tx_engine)
        })
        .await
    }

    async fn role(&self, project: &str, user: &str) -> Result<Option<Role>, MetaError> {
        let k = key(&[project, user]);
        self.run(move |t| t.members.get(k).map_err(engine)?.map(|v| decode_role(&v)).transpose())
            .await
    }

    async fn members(&self, project: &str) -> Result<Vec<(String, Role)>, MetaError> {
        let pfx = prefix(&[project]);
        self.run(move |t| {
            scan_prefix(&t.members, &pfx)?
                .into_iter()
                .map(|(u, v)| Ok((u, decode_role(&v)?)))
                .collect()
        })
        .await
    }

    async fn memberships(&self, user: &str) -> Result<Vec<(String, Role)>, MetaError> {
        let pfx = prefix(&[user]);
        self.run(move |t| {
            scan_prefix(&t.member_of, &pfx)?
                .into_iter()
                .map(|(p, v)| Ok((p, decode_role(&v)?)))
                .collect()
        })
        .await
    }

    async fn robot(&self, project: &str, name: &str) -> Result<Option<RobotRecord>, MetaError> {
        self.get(|t| &t.robots, "robot", key(&[project, name])).await
    }

    async fn create_robot(&self, robot: &RobotRecord) -> Result<bool, MetaError> {
        let robot = robot.clone();
        self.write(move |t| {
            (&t.projects, &t.robots)
                .transaction(|(projects, robots)| -> TxResult<bool> {
                    let k = key(&[&robot.project, &robot.name]);
                    if projects.get(robot.project.as_bytes())?.is_none() || robots.get(&k)?.is_some() {
                        return Ok(false);
                    }
                    robots.insert(k, encode(&robot))?;
                    Ok(true)
                })
                .map_err(tx_engine)
        })
        .await
    }

    async fn update_robot(&self, robot: &RobotRecord) -> Result<bool, MetaError> {
        self.replace(|t| &t.robots, key(&[&robot.project, &robot.name]), encode(robot))
            .await
    }

    async fn delete_robot(&self, project: &str, name: &str) -> Result<bool, MetaError> {
        let k = key(&[project, name]);
        self.write(move |t| Ok(t.robots.remove(k).map_err(engine)?.is_some()))
            .await
    }

    async fn robots(&self, project: &str) -> Result<Vec<RobotRecord>, MetaError> {
        let pfx = prefix(&[project]);
        self.run(move |t| {
            scan_prefix(&t.robots, &pfx)?
                .into_iter()
                .map(|(_, v)| decode("robot", &v))
                .collect()
        })
        .await
    }

    async fn bootstrap(&self, admin: &UserRecord, projects: &[ProjectRecord]) -> Result<bool, MetaError> {
        let (admin, projects) = (admin.clone(), projects.to_vec());
        self.write(move |t| {
            (&*t.db, &t.users, &t.projects)
                .transaction(|(db, users, projects_tree)| -> TxResult<bool> {
                    if db.get(keys::BOOTSTRAPPED_KEY)?.is_some() {
                        return Ok(false);
                    }
                    db.insert(keys::BOOTSTRAPPED_KEY, &[])?;
                    users.insert(admin.name.as_bytes(), encode(&admin))?;
                    for p in &projects {
                        projects_tree.insert(p.name.as_bytes(), encode(p))?;
                    }
                    Ok(true)
                })
                .map_err(tx_engine)
        })
        .await
    }
}
