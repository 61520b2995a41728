//! The requests and answers of the management API (`/api/v1/…`), one type per schema of
//! `openapi.json`: the server writes them, clients (the `pier` CLI, a web console) read
//! them.
//!
//! Fields stand in alphabetical order. The answers used to be built as JSON maps, which
//! serde_json writes sorted; keeping that order keeps every answer the same to the byte.
//!
//! Requests refuse fields they do not know, so that a misspelt option fails loudly instead
//! of being ignored. Answers do the opposite: names from vocabularies that grow (roles,
//! permissions, audit actions) arrive as [`Named`], so a client reading a newer server
//! still reads the rest of the answer.
//!
//! ```
//! use pier_registry::management::{Member, Named};
//! use pier_registry::auth::Role;
//!
//! let m: Member = serde_json::from_str(r#"{"role":"auditor","user":"alice"}"#).unwrap();
//! assert_eq!(m.role, Named::Unknown("auditor".into()));
//! let m: Member = serde_json::from_str(r#"{"role":"guest","user":"alice"}"#).unwrap();
//! assert_eq!(m.role, Named::Known(Role::Guest));
//! ```

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::auth::{Action, Role};
use crate::storage::{ActorKind, AuditAction, Outcome};

/// A name from a vocabulary the server may extend: the value this crate knows, or the
/// name as a newer server sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Named<T> {
    /// A name this crate knows.
    Known(T),
    /// A name it does not (yet) know.
    Unknown(String),
}

impl<T> From<T> for Named<T> {
    fn from(v: T) -> Named<T> {
        Named::Known(v)
    }
}

impl<T: Serialize> fmt::Display for Named<T> {
    /// The name as it stands on the wire.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Named::Unknown(name) => f.write_str(name),
            Named::Known(v) => match serde_json::to_value(v) {
                Ok(serde_json::Value::String(name)) => f.write_str(&name),
                _ => Err(fmt::Error),
            },
        }
    }
}

/// `GET /users/current`: who the credentials belong to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Whoami {
    /// A system admin.
    pub admin: bool,
    /// A user or a robot account.
    pub kind: Named<ActorKind>,
    /// The account name (a robot's full `robot$<project>+<name>`).
    pub name: String,
    /// A robot's project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// A system admin.
    pub admin: bool,
    /// RFC 3339.
    pub created: String,
    /// The login name.
    pub name: String,
}

/// `POST /users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    /// Make the user a system admin.
    #[serde(default)]
    pub admin: bool,
    /// The login name.
    pub name: String,
    /// The first password.
    pub password: String,
}

/// `PUT /users/{user}/password`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The current password: required when users change their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_password: Option<String>,
    /// The new password.
    pub password: String,
}

/// A project, with the caller's role in it when the caller is a member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// RFC 3339.
    pub created: String,
    /// The project name: the first path component of its repositories.
    pub name: String,
    /// Anyone, even anonymous, may pull.
    pub public: bool,
    /// The caller's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Named<Role>>,
}

/// `POST /projects`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectCreate {
    /// The project name.
    pub name: String,
    /// Anyone, even anonymous, may pull.
    #[serde(default)]
    pub public: bool,
}

/// `PATCH /projects/{project}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectUpdate {
    /// The new visibility.
    pub public: bool,
}

/// A member of a project: listed by `GET /projects/{project}/members`, and the answer to
/// `POST` there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The member's role.
    pub role: Named<Role>,
    /// The user.
    pub user: String,
}

/// `POST /projects/{project}/members`: add a member or change their role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSet {
    /// The role to give.
    pub role: Role,
    /// The user.
    pub user: String,
}

/// A robot account of a project (never with its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Robot {
    /// RFC 3339.
    pub created: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// A disabled robot cannot log in.
    pub disabled: bool,
    /// RFC 3339; `null` for never.
    pub expires_at: Option<String>,
    /// The full account name, `robot$<project>+<name>`.
    pub name: String,
    /// What it may do in its project.
    pub permissions: Vec<Named<Action>>,
    /// Its project.
    pub project: String,
}

/// A robot with its secret: the answer to creating it or rotating its secret, the only
/// times the secret is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobotSecret {
    /// The robot.
    #[serde(flatten)]
    pub robot: Robot,
    /// The secret to log in with.
    pub secret: String,
}

/// `POST /projects/{project}/robots`; absent fields take the server's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobotCreate {
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// RFC 3339 or Unix seconds; absent for never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The short name (the part after `+`).
    pub name: String,
    /// What it may do; absent for pull only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<Action>>,
}

/// `PATCH /projects/{project}/robots/{robot}`: the fields present change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobotUpdate {
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Disable or enable it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// `Some(None)` (an explicit `null`) removes the expiry; `None` (absent) keeps it.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Option<String>>,
    /// What it may do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<Action>>,
}

/// `Some(None)` for an explicit `null`; with `#[serde(default)]`, `None` for an absent field.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// One entry of the audit log, as `GET /audit` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// What happened.
    pub action: Named<AuditAction>,
    /// User or robot name, `anonymous`, or the name a failed login gave.
    pub actor: String,
    /// What kind of account `actor` is.
    pub actor_kind: Named<ActorKind>,
    /// The client's address.
    pub client: String,
    /// More about it (granted scopes, why it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The manifest or blob digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Its place in the log: the cursor (`before`) of the next page.
    pub id: u64,
    /// The project concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Tag or digest as requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The repository concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// How it ended.
    pub result: Named<Outcome>,
    /// The user, member or robot acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// RFC 3339.
    pub time: String,
}

/// `GET /audit`: one page of events, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    /// The events.
    pub events: Vec<AuditEvent>,
    /// Pass as `before` for the next (older) page; `null` on the last one.
    pub next: Option<u64>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn robot() -> Robot {
        Robot {
            created: "2026-11-23T10:00:00Z".into(),
            description: "builds".into(),
            disabled: false,
            expires_at: Some("2027-01-01T00:00:00Z".into()),
            name: "robot$ci+build".into(),
            permissions: vec![Action::Pull.into(), Action::Push.into()],
            project: "ci".into(),
        }
    }

    /// One value of each type with every optional field present, under its schema's name
    /// in openapi.json.
    fn samples() -> Vec<(&'static str, Value, String)> {
        fn both<T: Serialize>(name: &'static str, v: T) -> (&'static str, Value, String) {
            (
                name,
                serde_json::to_value(&v).unwrap(),
                serde_json::to_string(&v).unwrap(),
            )
        }
        let event = AuditEvent {
            action: AuditAction::RobotUpdate.into(),
            actor: "alice".into(),
            actor_kind: ActorKind::User.into(),
            client: "127.0.0.1".into(),
            detail: Some("disabled".into()),
            digest: Some("sha256:ab".into()),
            id: 7,
            project: Some("ci".into()),
            reference: Some("1.0".into()),
            repository: Some("ci/app".into()),
            result: Outcome::Success.into(),
            target: Some("robot$ci+build".into()),
            time: "2026-11-23T10:00:00Z".into(),
        };
        vec![
            both(
                "Whoami",
                Whoami {
                    admin: false,
                    kind: ActorKind::Robot.into(),
                    name: "robot$ci+build".into(),
                    project: Some("ci".into()),
                },
            ),
            both(
                "User",
                User {
                    admin: true,
                    created: "2026-11-23T10:00:00Z".into(),
                    name: "alice".into(),
                },
            ),
            both(
                "UserCreate",
                UserCreate {
                    admin: true,
                    name: "alice".into(),
                    password: "pw".into(),
                },
            ),
            both(
                "PasswordChange",
                PasswordChange {
                    old_password: Some("old".into()),
                    password: "new".into(),
                },
            ),
            both(
                "Project",
                Project {
                    created: "2026-11-23T10:00:00Z".into(),
                    name: "ci".into(),
                    public: true,
                    role: Some(Role::Guest.into()),
                },
            ),
            both(
                "ProjectCreate",
                ProjectCreate {
                    name: "ci".into(),
                    public: true,
                },
            ),
            both("ProjectUpdate", ProjectUpdate { public: false }),
            both(
                "Member",
                Member {
                    role: Role::Developer.into(),
                    user: "alice".into(),
                },
            ),
            both(
                "Member",
                MemberSet {
                    role: Role::Developer,
                    user: "alice".into(),
                },
            ),
            both("Robot", robot()),
            both(
                "RobotCreate",
                RobotCreate {
                    description: "builds".into(),
                    expires_at: Some("7d".into()),
                    name: "build".into(),
                    permissions: Some(vec![Action::Pull]),
                },
            ),
            both(
                "RobotUpdate",
                RobotUpdate {
                    description: Some("d".into()),
                    disabled: Some(true),
                    expires_at: Some(None),
                    permissions: Some(vec![Action::Push]),
                },
            ),
            both("AuditEvent", event.clone()),
            both(
                "AuditPage",
                AuditPage {
                    events: vec![event],
                    next: Some(3),
                },
            ),
        ]
    }

    #[test]
    fn every_type_has_the_fields_of_its_schema() {
        let doc: Value = serde_json::from_str(include_str!("auth/openapi.json")).unwrap();
        for (name, value, _) in samples() {
            let schema = &doc["components"]["schemas"][name];
            let mut documented: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
            let mut written: Vec<&String> = value.as_object().unwrap().keys().collect();
            documented.sort();
            written.sort();
            assert_eq!(written, documented, "{name}");
        }
    }

    #[test]
    fn fields_are_written_in_the_order_of_a_json_map() {
        for (name, value, text) in samples() {
            assert_eq!(text, value.to_string(), "{name}");
        }
        let secret = RobotSecret {
            robot: robot(),
            secret: "s3cret".into(),
        };
        let text = serde_json::to_string(&secret).unwrap();
        assert_eq!(text, serde_json::to_value(&secret).unwrap().to_string());
        assert!(text.ends_with(r#""project":"ci","secret":"s3cret"}"#), "{text}");
    }

    #[test]
    fn absent_optional_fields_stay_absent_or_null_as_before() {
        let user = Whoami {
            admin: true,
            kind: ActorKind::User.into(),
            name: "admin".into(),
            project: None,
        };
        assert_eq!(
            serde_json::to_string(&user).unwrap(),
            r#"{"admin":true,"kind":"user","name":"admin"}"#
        );
        let mut r = robot();
        r.expires_at = None;
        r.description = String::new();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"created": "2026-11-23T10:00:00Z", "description": "", "disabled": false, "expires_at": null,
                   "name": "robot$ci+build", "permissions": ["pull", "push"], "project": "ci"})
        );
        let create = RobotCreate {
            name: "ci".into(),
            ..Default::default()
        };
        assert_eq!(serde_json::to_string(&create).unwrap(), r#"{"name":"ci"}"#);
        assert_eq!(
            serde_json::to_string(&PasswordChange {
                old_password: None,
                password: "p".into()
            })
            .unwrap(),
            r#"{"password":"p"}"#
        );
    }

    #[test]
    fn names_a_newer_server_adds_are_read_as_unknown() {
        let mut v = serde_json::to_value(robot()).unwrap();
        v["permissions"] = json!(["pull", "chart_push"]);
        let r: Robot = serde_json::from_value(v).unwrap();
        assert_eq!(
            r.permissions,
            [Named::Known(Action::Pull), Named::Unknown("chart_push".into())]
        );
        assert_eq!(r.permissions[0].to_string(), "pull");
        assert_eq!(r.permissions[1].to_string(), "chart_push");
        assert_eq!(Named::from(AuditAction::LoginThrottled).to_string(), "login_throttled");
        assert!(serde_json::from_value::<Member>(json!({"role": 3, "user": "a"})).is_err());
    }

    #[test]
    fn requests_refuse_unknown_fields_and_names() {
        let bad = [
            serde_json::from_str::<UserCreate>(r#"{"name":"a","password":"p","admn":true}"#).is_err(),
            serde_json::from_str::<MemberSet>(r#"{"role":"auditor","user":"a"}"#).is_err(),
            serde_json::from_str::<RobotCreate>(r#"{"name":"a","permissions":["chart_push"]}"#).is_err(),
            serde_json::from_str::<RobotUpdate>(r#"{"expires":null}"#).is_err(),
            serde_json::from_str::<ProjectUpdate>("{}").is_err(),
            serde_json::from_str::<RobotCreate>(r#"{"name":"a","description":null}"#).is_err(),
        ];
        assert_eq!(bad, [true; 6]);
    }

    #[test]
    fn robot_updates_tell_null_from_absent() {
        let absent: RobotUpdate = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.expires_at, None);
        let null: RobotUpdate = serde_json::from_str(r#"{"expires_at":null}"#).unwrap();
        assert_eq!(null.expires_at, Some(None));
        assert_eq!(serde_json::to_string(&null).unwrap(), r#"{"expires_at":null}"#);
    }
}
