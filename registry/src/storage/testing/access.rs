//! The [`AccessStore`] contracts.

use super::Factory;
use crate::auth::{Action, Role};
use crate::storage::{AccessStore, ProjectRecord, RobotRecord, SetMember, UserRecord};

/// A user named `name`.
fn user(name: &str) -> UserRecord {
    UserRecord {
        name: name.into(),
        password_hash: format!("hash of {name}"),
        admin: false,
        created: 1,
    }
}

/// A private project named `name`.
fn project(name: &str) -> ProjectRecord {
    ProjectRecord {
        name: name.into(),
        public: false,
        created: 1,
    }
}

/// A robot `name` of `project` that may pull.
fn robot(project: &str, name: &str) -> RobotRecord {
    RobotRecord {
        project: project.into(),
        name: name.into(),
        description: String::new(),
        secret_sha256: "00".into(),
        permissions: vec![Action::Pull],
        disabled: false,
        expires_at: None,
        created: 1,
    }
}

/// Users, projects, members and robots: names are unique, updates need an existing
/// record, memberships are seen from both sides, robots live in existing projects; deleting
/// a user drops their memberships, deleting a project its members and robots.
pub async fn users_projects_members_robots<S: AccessStore + ?Sized>(new: &impl Factory<S>) {
    let s = new.make().await;
    // Users.
    assert!(s.create_user(&user("bob")).await.unwrap());
    assert!(!s.create_user(&user("bob")).await.unwrap(), "names are unique");
    let mut bob = s.user("bob").await.unwrap().unwrap();
    bob.admin = true;
    assert!(s.update_user(&bob).await.unwrap());
    assert!(s.user("bob").await.unwrap().unwrap().admin);
    assert!(!s.update_user(&user("nobody")).await.unwrap());
    assert!(s.create_user(&user("amy")).await.unwrap());
    let names: Vec<String> = s.users().await.unwrap().into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["amy", "bob"]);

    // Projects, with the creator as project admin.
    assert!(s.create_project(&project("p"), Some("bob")).await.unwrap());
    assert!(!s.create_project(&project("p"), None).await.unwrap());
    assert_eq!(s.role("p", "bob").await.unwrap(), Some(Role::ProjectAdmin));
    let mut p = s.project("p").await.unwrap().unwrap();
    p.public = true;
    assert!(s.update_project(&p).await.unwrap());
    assert!(s.project("p").await.unwrap().unwrap().public);
    assert!(s.create_project(&project("q"), None).await.unwrap());

    // Members, seen from both sides.
    assert_eq!(s.set_member("p", "amy", Role::Guest).await.unwrap(), SetMember::Added);
    assert_eq!(
        s.set_member("p", "amy", Role::Developer).await.unwrap(),
        SetMember::Changed(Role::Guest)
    );
    assert_eq!(
        s.set_member("p", "ghost", Role::Guest).await.unwrap(),
        SetMember::NoUser
    );
    assert_eq!(
        s.set_member("zz", "amy", Role::Guest).await.unwrap(),
        SetMember::NoProject
    );
    s.set_member("q", "amy", Role::LimitedGuest).await.unwrap();
    assert_eq!(
        s.members("p").await.unwrap(),
        [
            ("amy".to_owned(), Role::Developer),
            ("bob".to_owned(), Role::ProjectAdmin)
        ]
    );
    assert_eq!(
        s.memberships("amy").await.unwrap(),
        [("p".to_owned(), Role::Developer), ("q".to_owned(), Role::LimitedGuest)]
    );
    assert!(s.remove_member("q", "amy").await.unwrap());
    assert!(!s.remove_member("q", "amy").await.unwrap());
    assert_eq!(s.role("q", "amy").await.unwrap(), None);

    // Robots live in existing projects.
    assert!(s.create_robot(&robot("p", "ci")).await.unwrap());
    assert!(!s.create_robot(&robot("p", "ci")).await.unwrap());
    assert!(!s.create_robot(&robot("zz", "ci")).await.unwrap(), "no such project");
    let mut r = s.robot("p", "ci").await.unwrap().unwrap();
    assert_eq!(r.account(), "robot$p+ci");
    r.disabled = true;
    assert!(s.update_robot(&r).await.unwrap());
    assert!(s.robot("p", "ci").await.unwrap().unwrap().disabled);
    assert!(s.create_robot(&robot("q", "ci")).await.unwrap());
    assert_eq!(s.robots("p").await.unwrap().len(), 1);

    // Deleting a user drops their memberships; deleting a project its members and robots.
    assert!(s.delete_user("amy").await.unwrap());
    assert!(!s.delete_user("amy").await.unwrap());
    assert_eq!(s.role("p", "amy").await.unwrap(), None);
    assert!(s.memberships("amy").await.unwrap().is_empty());
    assert!(s.delete_project("p").await.unwrap());
    assert!(!s.delete_project("p").await.unwrap());
    assert!(s.members("p").await.unwrap().is_empty());
    assert!(s.robots("p").await.unwrap().is_empty());
    assert!(s.memberships("bob").await.unwrap().is_empty());
    assert_eq!(s.robots("q").await.unwrap().len(), 1, "other projects keep theirs");
    assert!(s.create_project(&project("p"), None).await.unwrap());
    assert!(
        s.members("p").await.unwrap().is_empty(),
        "a new project of the same name starts empty"
    );
}

/// First-start setup runs once in a store's life, so a deleted default project stays
/// deleted.
pub async fn bootstrap_runs_once<S: AccessStore + ?Sized>(new: &impl Factory<S>) {
    let s = new.make().await;
    let admin = UserRecord {
        admin: true,
        ..user("admin")
    };
    assert!(s.bootstrap(&admin, &[project("library")]).await.unwrap());
    assert!(s.user("admin").await.unwrap().unwrap().admin);
    assert!(s.delete_project("library").await.unwrap());
    assert!(!s.bootstrap(&admin, &[project("library")]).await.unwrap());
    assert!(s.project("library").await.unwrap().is_none());
}
