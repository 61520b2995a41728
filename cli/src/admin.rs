//! The management commands: login/logout, projects, members, robots, users and the audit
//! log, each one call (or a few) of the management API printed for people or, with
//! `--json`, as the server's JSON.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use serde_json::Value;

use pier_registry::storage::ActorKind;

use crate::api::{self, AuditEvent, AuditQuery, Named, Permission, RobotCreate, RobotSecret, Role};
use crate::credentials::{Credential, Credentials, server_url};
use crate::output::{Table, list_or_dash, print_json};
use crate::when;

/// How many pages `pier audit --all` follows before it stops and says where to go on
/// from: a bound on time and memory when a filter matches far more than anyone reads.
pub const AUDIT_MAX_PAGES: usize = 100;
/// Page size of `pier audit --all` without `--limit`: the server's maximum, so that the
/// bound above covers as many events as possible.
pub const AUDIT_ALL_PAGE_SIZE: u32 = 1000;

/// Where the credentials of a session came from (what `user passwd` must update).
enum Source {
    File(PathBuf),
    Env,
    Anonymous,
}

/// A server to manage, with the credentials to present to it.
pub struct Session {
    api: api::Client,
    json: bool,
    username: Option<String>,
    secret: Option<String>,
    source: Source,
}

impl Session {
    /// The server from `--server`/`PIER_SERVER`, else the current one of the credentials
    /// file; credentials from `PIER_USERNAME` + `PIER_PASSWORD`, else from that file.
    pub fn open(server: Option<&str>, json: bool) -> anyhow::Result<Session> {
        let from_env = env_credential(|k| std::env::var(k).ok())?;
        let (server, stored, path) = match (server, &from_env) {
            // CI with everything in the environment needs no credentials file at all.
            (Some(s), Some(_)) => (server_url(s)?, None, None),
            _ => {
                let (file, path) = Credentials::load()?;
                let server = match server.map(str::to_owned).or_else(|| file.current.clone()) {
                    Some(s) => server_url(&s)?,
                    None => bail!("no server given: pass --server URL, set PIER_SERVER, or `pier login SERVER` first"),
                };
                let stored = file.lookup(&server).cloned();
                (server, stored, Some(path))
            }
        };
        let (credential, source) = match (from_env, stored, path) {
            (Some(c), _, _) => (Some(c), Source::Env),
            (None, Some(c), Some(path)) => (Some(c), Source::File(path)),
            _ => (None, Source::Anonymous),
        };
        Ok(Session {
            api: api::Client::new(&server, credential.clone())?,
            json,
            username: credential.as_ref().map(|c| c.username.clone()),
            secret: credential.map(|c| c.secret),
            source,
        })
    }

    pub fn project_create(&self, name: &str, public: bool) -> anyhow::Result<()> {
        let r = self.api.create_project(name, public)?;
        self.done(&r.json, || {
            format!("Created {} project {}", visibility(r.data.public), r.data.name)
        });
        Ok(())
    }

    pub fn project_list(&self) -> anyhow::Result<()> {
        let r = self.api.list_projects()?;
        self.table(&r.json, || {
            let mut t = Table::new(&["NAME", "VISIBILITY", "ROLE", "CREATED"]);
            for p in &r.data {
                let role = p.role.as_ref().map_or("-".to_owned(), ToString::to_string);
                t.row([p.name.as_str(), visibility(p.public), &role, &p.created]);
            }
            t
        });
        Ok(())
    }

    pub fn project_delete(&self, name: &str) -> anyhow::Result<()> {
        self.api.delete_project(name)?;
        self.say(format!("Deleted project {name}"));
        Ok(())
    }

    pub fn project_set(&self, name: &str, public: bool) -> anyhow::Result<()> {
        let r = self.api.update_project(name, public)?;
        self.done(&r.json, || {
            format!("Project {} is now {}", r.data.name, visibility(r.data.public))
        });
        Ok(())
    }

    pub fn member_add(&self, project: &str, user: &str, role: Role) -> anyhow::Result<()> {
        let (r, added) = self.api.set_member(project, user, role)?;
        self.done(&r.json, || {
            if added {
                format!("Added {} to {project} as {}", r.data.user, r.data.role)
            } else {
                format!("{} is now {} in {project}", r.data.user, r.data.role)
            }
        });
        Ok(())
    }

    pub fn member_list(&self, project: &str) -> anyhow::Result<()> {
        let r = self.api.list_members(project)?;
        self.table(&r.json, || {
            let mut t = Table::new(&["USER", "ROLE"]);
            for m in &r.data {
                t.row([m.user.clone(), m.role.to_string()]);
            }
            t
        });
        Ok(())
    }

    pub fn member_remove(&self, project: &str, user: &str) -> anyhow::Result<()> {
        self.api.remove_member(project, user)?;
        self.say(format!("Removed {user} from {project}"));
        Ok(())
    }

    pub fn robot_create(
        &self,
        project: &str,
        name: &str,
        permissions: Vec<Permission>,
        expires: Option<&str>,
        description: Option<String>,
    ) -> anyhow::Result<()> {
        let expires_at = match expires {
            Some(e) => when::parse_expiry(e, SystemTime::now())?.map(when::rfc3339),
            None => None,
        };
        let body = RobotCreate {
            name: name.to_owned(),
            description: description.unwrap_or_default(),
            // Without --perm the server's default applies (pull only).
            permissions: (!permissions.is_empty()).then_some(permissions),
            expires_at,
        };
        let r = self.api.create_robot(project, &body)?;
        self.secret_shown(&r.json, &r.data, "Created robot");
        Ok(())
    }

    pub fn robot_list(&self, project: &str) -> anyhow::Result<()> {
        let r = self.api.list_robots(project)?;
        let now = when::rfc3339(SystemTime::now());
        self.table(&r.json, || {
            let mut t = Table::new(&["NAME", "PERMISSIONS", "STATUS", "EXPIRES", "CREATED", "DESCRIPTION"]);
            for robot in &r.data {
                // Both are RFC 3339 UTC with seconds, so text order is time order.
                let expired = robot.expires_at.as_deref().is_some_and(|e| e <= now.as_str());
                let status = match (robot.disabled, expired) {
                    (true, _) => "disabled",
                    (false, true) => "expired",
                    (false, false) => "enabled",
                };
                t.row([
                    robot.name.as_str(),
                    &list_or_dash(&robot.permissions),
                    status,
                    robot.expires_at.as_deref().unwrap_or("never"),
                    &robot.created,
                    &robot.description,
                ]);
            }
            t
        });
        Ok(())
    }

    pub fn robot_rotate(&self, project: &str, name: &str) -> anyhow::Result<()> {
        let r = self.api.rotate_robot(project, name)?;
        self.secret_shown(&r.json, &r.data, "New secret for robot");
        Ok(())
    }

    pub fn robot_set_disabled(&self, project: &str, name: &str, disabled: bool) -> anyhow::Result<()> {
        let r = self.api.set_robot_disabled(project, name, disabled)?;
        let state = if r.data.disabled { "disabled" } else { "enabled" };
        self.done(&r.json, || format!("Robot {} is {state}", r.data.name));
        Ok(())
    }

    pub fn robot_delete(&self, project: &str, name: &str) -> anyhow::Result<()> {
        self.api.delete_robot(project, name)?;
        self.say(format!("Deleted robot {name} of {project}"));
        Ok(())
    }

    pub fn user_create(&self, name: &str, admin: bool, password_stdin: bool) -> anyhow::Result<()> {
        let password = new_password(name, password_stdin)?;
        let r = self.api.create_user(name, &password, admin)?;
        self.done(&r.json, || {
            let what = if r.data.admin { "system admin" } else { "user" };
            format!("Created {what} {}", r.data.name)
        });
        Ok(())
    }

    pub fn user_list(&self) -> anyhow::Result<()> {
        let r = self.api.list_users()?;
        self.table(&r.json, || {
            let mut t = Table::new(&["NAME", "ADMIN", "CREATED"]);
            for u in &r.data {
                t.row([u.name.as_str(), if u.admin { "yes" } else { "no" }, &u.created]);
            }
            t
        });
        Ok(())
    }

    pub fn user_delete(&self, name: &str) -> anyhow::Result<()> {
        self.api.delete_user(name)?;
        self.say(format!("Deleted user {name}"));
        Ok(())
    }

    pub fn user_passwd(&self, name: &str, password_stdin: bool) -> anyhow::Result<()> {
        let own = self.username.as_deref() == Some(name);
        let password = new_password(name, password_stdin)?;
        // The server wants the old password from users changing their own; the one this
        // session authenticates with is exactly that, so nobody has to type it again.
        let old = if own { self.secret.as_deref() } else { None };
        self.api.change_password(name, &password, old)?;
        self.say(format!("Changed the password of {name}"));
        if own {
            match &self.source {
                Source::File(path) => {
                    // Otherwise the very next command would fail with the old password.
                    let mut file = Credentials::load_from(path)?;
                    if let Some(c) = file.servers.get_mut(self.api.server()) {
                        c.secret = password;
                        file.save_to(path)?;
                        self.say(format!("Updated the stored login for {}", self.api.server()));
                    }
                }
                Source::Env => eprintln!("note: PIER_PASSWORD still holds the old password"),
                Source::Anonymous => {}
            }
        }
        Ok(())
    }

    /// `pier audit`: one page, or with `all` every page up to [`AUDIT_MAX_PAGES`].
    pub fn audit(&self, mut query: AuditQuery, all: bool) -> anyhow::Result<()> {
        if all && query.limit.is_none() {
            query.limit = Some(AUDIT_ALL_PAGE_SIZE);
        }
        let mut json_events: Vec<Value> = Vec::new();
        let mut events: Vec<AuditEvent> = Vec::new();
        let mut pages = 0;
        let more = loop {
            let page = self.api.audit(&query)?;
            pages += 1;
            if let Some(Value::Array(list)) = page.json.get("events") {
                json_events.extend(list.iter().cloned());
            }
            events.extend(page.data.events);
            match page.data.next {
                // A cursor must move backwards; one that does not would loop for ever.
                Some(next) if all && pages < AUDIT_MAX_PAGES && query.before.is_none_or(|b| next < b) => {
                    query.before = Some(next)
                }
                next => break next,
            }
        };
        if self.json {
            print_json(&Value::Array(json_events));
        } else {
            audit_table(&events).print();
        }
        if let Some(next) = more {
            if all {
                eprintln!("note: stopped after {pages} pages; older events: add --before {next}");
            } else {
                eprintln!("note: more events: --all fetches them, or --before {next} the next page");
            }
        }
        Ok(())
    }

    /// A change's confirmation, or with `--json` the server's answer.
    fn done(&self, json: &Value, message: impl FnOnce() -> String) {
        if self.json {
            print_json(json);
        } else {
            println!("{}", message());
        }
    }

    /// A confirmation of a change whose answer has no body: nothing to print with `--json`
    /// (the exit status tells).
    fn say(&self, message: String) {
        if !self.json {
            println!("{message}");
        }
    }

    fn table(&self, json: &Value, table: impl FnOnce() -> Table) {
        if self.json {
            print_json(json);
        } else {
            table().print();
        }
    }

    fn secret_shown(&self, json: &Value, r: &RobotSecret, what: &str) {
        if self.json {
            print_json(json);
            return;
        }
        let robot = &r.robot;
        println!(
            "{what} {} (project {}, permissions {}, expires {})",
            robot.name,
            robot.project,
            list_or_dash(&robot.permissions),
            robot.expires_at.as_deref().unwrap_or("never")
        );
        println!("name:   {}", robot.name);
        println!("secret: {}", r.secret);
        println!("The secret is not shown again: store it now (`pier robot rotate` makes a new one).");
    }
}

/// `pier login`: check the credentials with the server, and only then store them.
pub fn login(server: Option<&str>, username: &str, password_stdin: bool, json: bool) -> anyhow::Result<()> {
    let (mut file, path) = Credentials::load()?;
    let server = match server.map(str::to_owned).or_else(|| file.current.clone()) {
        Some(s) => server_url(&s)?,
        None => bail!("which server? `pier login SERVER -u NAME`, e.g. `pier login 127.0.0.1:5000 -u admin`"),
    };
    let password = read_secret(&format!("Password for {username} at {server}: "), password_stdin)?;
    let credential = Credential {
        username: username.to_owned(),
        secret: password,
    };
    let api = api::Client::new(&server, Some(credential.clone()))?;
    let me = api.whoami().with_context(|| format!("login to {server} failed"))?;
    file.insert(&server, credential)?;
    file.save_to(&path)?;
    if json {
        print_json(&me.json);
    } else {
        let what = match (&me.data.kind, me.data.admin, &me.data.project) {
            (_, true, _) => " (system admin)".to_owned(),
            (Named::Known(ActorKind::Robot), _, Some(p)) => format!(" (robot of project {p})"),
            _ => String::new(),
        };
        println!("Logged in to {server} as {}{what}", me.data.name);
        println!("Credentials stored in {}", path.display());
    }
    Ok(())
}

/// `pier logout`: forget the stored credentials of a server (the current one by default).
pub fn logout(server: Option<&str>, json: bool) -> anyhow::Result<()> {
    let (mut file, path) = Credentials::load()?;
    let server = match server.map(str::to_owned).or_else(|| file.current.clone()) {
        Some(s) => server_url(&s)?,
        None => bail!("not logged in to any server"),
    };
    let removed = file.remove(&server)?;
    if removed {
        file.save_to(&path)?;
    }
    if json {
        print_json(&serde_json::json!({"server": server, "removed": removed}));
    } else if removed {
        println!("Logged out of {server}");
    } else {
        println!("Not logged in to {server}");
    }
    Ok(())
}

/// Credentials from `PIER_USERNAME` and `PIER_PASSWORD` (both, or neither).
pub fn env_credential(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<Credential>> {
    let get = |k: &str| var(k).filter(|v| !v.is_empty());
    match (get("PIER_USERNAME"), get("PIER_PASSWORD")) {
        (Some(username), Some(secret)) => Ok(Some(Credential { username, secret })),
        (None, None) => Ok(None),
        (Some(_), None) => bail!("PIER_USERNAME is set but PIER_PASSWORD is not"),
        (None, Some(_)) => bail!("PIER_PASSWORD is set but PIER_USERNAME is not"),
    }
}

/// A password: all of standard input with `--password-stdin`, else typed at the terminal.
fn read_secret(prompt: &str, from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the password from standard input")?;
        return password_from_stdin(&text);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for the password: pipe it in with --password-stdin");
    }
    let password = rpassword::prompt_password(prompt).context("cannot read the password from the terminal")?;
    if password.is_empty() {
        bail!("empty password");
    }
    Ok(password)
}

/// A password being set: typed twice at a terminal, so that a typo does not lock anyone out.
fn new_password(user: &str, from_stdin: bool) -> anyhow::Result<String> {
    let password = read_secret(&format!("New password for {user}: "), from_stdin)?;
    if !from_stdin {
        let again = read_secret("Repeat it: ", false)?;
        if again != password {
            bail!("the passwords differ");
        }
    }
    Ok(password)
}

/// What `--password-stdin` got, less the line end that `echo` and here-strings add.
fn password_from_stdin(text: &str) -> anyhow::Result<String> {
    let password = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    if password.is_empty() {
        bail!("--password-stdin: standard input holds no password");
    }
    Ok(password.to_owned())
}

fn visibility(public: bool) -> &'static str {
    if public { "public" } else { "private" }
}

fn audit_table(events: &[AuditEvent]) -> Table {
    let mut t = Table::new(&["TIME", "ACTOR", "ACTION", "TARGET", "RESULT", "CLIENT"]);
    for e in events {
        t.row([
            e.time.as_str(),
            &e.actor,
            &e.action.to_string(),
            &audit_target(e),
            &e.result.to_string(),
            &e.client,
        ]);
    }
    t
}

/// What an event was about: `repository:tag` / `repository@digest` for registry actions,
/// else the project and the user, member or robot acted on.
fn audit_target(e: &AuditEvent) -> String {
    if let Some(repo) = &e.repository {
        return match (&e.reference, &e.digest) {
            (Some(r), _) if r.contains(':') => format!("{repo}@{r}"),
            (Some(r), _) => format!("{repo}:{r}"),
            (None, Some(d)) => format!("{repo}@{d}"),
            (None, None) => repo.clone(),
        };
    }
    match (&e.project, &e.target) {
        (Some(p), Some(t)) => format!("{p} ({t})"),
        (Some(p), None) => p.clone(),
        (None, Some(t)) => t.clone(),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use pier_registry::storage::{AuditAction, Outcome};

    use super::*;

    fn event(repo: Option<&str>, reference: Option<&str>, digest: Option<&str>) -> AuditEvent {
        AuditEvent {
            action: AuditAction::Push.into(),
            actor: "admin".into(),
            actor_kind: ActorKind::User.into(),
            client: "127.0.0.1".into(),
            detail: None,
            digest: digest.map(Into::into),
            id: 1,
            project: Some("team".into()),
            reference: reference.map(Into::into),
            repository: repo.map(Into::into),
            result: Outcome::Success.into(),
            target: None,
            time: "2026-11-23T10:00:00Z".into(),
        }
    }

    #[test]
    fn audit_targets() {
        let d = "sha256:ab12";
        assert_eq!(
            audit_target(&event(Some("team/app"), Some("1.0"), Some(d))),
            "team/app:1.0"
        );
        assert_eq!(
            audit_target(&event(Some("team/app"), Some(d), Some(d))),
            "team/app@sha256:ab12"
        );
        assert_eq!(
            audit_target(&event(Some("team/app"), None, Some(d))),
            "team/app@sha256:ab12"
        );
        assert_eq!(audit_target(&event(Some("team/app"), None, None)), "team/app");
        assert_eq!(audit_target(&event(None, None, None)), "team");
        let mut member = event(None, None, None);
        member.target = Some("alice".into());
        assert_eq!(audit_target(&member), "team (alice)");
        member.project = None;
        assert_eq!(audit_target(&member), "alice");
    }

    #[test]
    fn audit_table_layout() {
        let mut login = event(None, None, None);
        login.project = None;
        login.action = AuditAction::Login.into();
        login.result = Outcome::Failure.into();
        let rows = [event(Some("team/app"), Some("1.0"), None), login];
        assert_eq!(
            audit_table(&rows).render(),
            "TIME                  ACTOR  ACTION  TARGET        RESULT   CLIENT\n\
             2026-11-23T10:00:00Z  admin  push    team/app:1.0  success  127.0.0.1\n\
             2026-11-23T10:00:00Z  admin  login                 failure  127.0.0.1\n"
        );
    }

    #[test]
    fn env_credentials_come_in_pairs() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let both = env_credential(env(&[("PIER_USERNAME", "robot$t+ci"), ("PIER_PASSWORD", "s")])).unwrap();
        assert_eq!(
            both,
            Some(Credential {
                username: "robot$t+ci".into(),
                secret: "s".into()
            })
        );
        assert_eq!(env_credential(env(&[])).unwrap(), None);
        assert_eq!(
            env_credential(env(&[("PIER_USERNAME", ""), ("PIER_PASSWORD", "")])).unwrap(),
            None
        );
        assert!(env_credential(env(&[("PIER_USERNAME", "a")])).is_err());
        assert!(env_credential(env(&[("PIER_PASSWORD", "a")])).is_err());
    }

    #[test]
    fn stdin_passwords_lose_one_line_end() {
        assert_eq!(password_from_stdin("pw\n").unwrap(), "pw");
        assert_eq!(password_from_stdin("pw\r\n").unwrap(), "pw");
        assert_eq!(password_from_stdin("pw").unwrap(), "pw");
        assert_eq!(password_from_stdin(" pw \n\n").unwrap(), " pw \n");
        assert!(password_from_stdin("\n").is_err());
        assert!(password_from_stdin("").is_err());
    }
}
