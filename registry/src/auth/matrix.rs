//! The permission matrix: which project role may do which action, written down once as
//! data. Every access decision in pier goes through [`Role::allows`], [`Grant::public`]
//! and [`Grant`]; nothing else knows what a role means. Extensions add their actions to
//! it with [`Action::register`].

use std::fmt;
use std::str::FromStr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

macro_rules! names {
    ($ty:ident { $($variant:ident => $name:literal,)* }) => {
        impl $ty {
            /// Every value, in table order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant,)*];

            /// The name used in the API, the CLI and the audit log.
            pub fn name(self) -> &'static str {
                match self { $($ty::$variant => $name,)* }
            }
        }

        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($ty::$variant),)*
                    _ => Err(format!(
                        "unknown {} {s:?}; expected one of: {}",
                        stringify!($ty).to_lowercase(),
                        [$($name),*].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Something a caller does in a project: one of the built-in actions, or one an extension
/// added with [`Action::register`] (an app store's chart read and write).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Action(u8);

/// The built-in actions: each a constant named as the enum variant it once was (so code
/// reads the same and `match` still works), its number, its name and what it allows.
macro_rules! builtin_actions {
    ($($name:ident = $n:literal, $text:literal, $doc:literal;)*) => {
        #[allow(non_upper_case_globals)]
        impl Action {
            $(#[doc = $doc] pub const $name: Action = Action($n);)*

            /// The built-in actions, in table order.
            pub const BUILTIN: &'static [Action] = &[$(Action::$name,)*];
        }

        /// Names of the built-in actions, by their number.
        const BUILTIN_NAMES: &[&str] = &[$($text,)*];
    };
}

builtin_actions! {
    Pull = 0, "pull", "Read manifests, blobs and tag lists.";
    Push = 1, "push", "Upload blobs and put manifests.";
    DeleteTag = 2, "delete_tag", "Delete a tag (`DELETE …/manifests/<tag>`).";
    DeleteManifest = 3, "delete_manifest", "Delete a manifest or a blob by digest.";
    ReadReferrers = 4, "read_referrers", "List referrers.";
    MountFrom = 5, "mount_from", "Use a repository as the source of a cross-repository mount.";
    ListCatalog = 6, "list_catalog", "See the project's repositories in `/v2/_catalog`.";
    ViewMembers = 7, "view_members", "List the project's members.";
    ManageMembers = 8, "manage_members", "Add, change and remove members.";
    ManageRobots = 9, "manage_robots", "Create, change, rotate and delete robot accounts.";
    ReadAudit = 10, "read_audit", "Query the project's audit log.";
    UpdateProject = 11, "update_project", "Change the project's visibility.";
    DeleteProject = 12, "delete_project", "Delete the (empty) project.";
}

/// How many actions there can be, built-in and registered: a [`Grant`] is one bit each.
pub const MAX_ACTIONS: usize = 64;

/// An action an extension adds to the matrix: its name and who is granted it. The name
/// is what the API, robot permissions and the audit log use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionSpec {
    /// `[a-z_]+`, unique.
    pub name: &'static str,
    /// The roles that grant it.
    pub roles: &'static [Role],
    /// Whether anyone, anonymous callers included, may do it in a public project.
    pub public: bool,
    /// Whether a robot account can be given it.
    pub robots: bool,
}

/// Why an action cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The name is empty or has characters other than `a-z` and `_`.
    #[error("action name {0:?} must be lowercase letters and '_'")]
    BadName(&'static str),
    /// The name is taken by a built-in action or by another registration with other grants.
    #[error("action {0:?} exists already with other grants")]
    Taken(&'static str),
    /// [`MAX_ACTIONS`] are in use.
    #[error("no room for action {0:?}: at most {MAX_ACTIONS} actions")]
    Full(&'static str),
}

/// The registered actions. Grants per role are bit sets read on every access check, so
/// they are atomics; the specs (names) are read only to print and parse actions.
struct Registered {
    specs: RwLock<Vec<ActionSpec>>,
    roles: [AtomicU64; ROLES],
    public: AtomicU64,
    robots: AtomicU64,
    /// Every registered action, for [`Grant::all`] (the system admin's, on every request).
    all: AtomicU64,
}

const ROLES: usize = Role::ALL.len();

static REGISTERED: Registered = Registered {
    specs: RwLock::new(Vec::new()),
    roles: [const { AtomicU64::new(0) }; ROLES],
    public: AtomicU64::new(0),
    robots: AtomicU64::new(0),
    all: AtomicU64::new(0),
};

impl Action {
    /// Add an action to the matrix for this process: the roles of `spec` (and public
    /// projects, and robots, as it says) are granted it from now on. Registering the same
    /// spec again returns the same action, so every registry opened in a process can
    /// register what its extensions need.
    pub fn register(spec: ActionSpec) -> Result<Action, RegisterError> {
        let name = spec.name;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(RegisterError::BadName(name));
        }
        if BUILTIN_NAMES.contains(&name) {
            return Err(RegisterError::Taken(name));
        }
        let mut specs = REGISTERED.specs.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = specs.iter().position(|s| s.name == name) {
            return if specs[i] == spec {
                Ok(Action((BUILTIN_NAMES.len() + i) as u8))
            } else {
                Err(RegisterError::Taken(name))
            };
        }
        let n = BUILTIN_NAMES.len() + specs.len();
        if n >= MAX_ACTIONS {
            return Err(RegisterError::Full(name));
        }
        let bit = 1u64 << n;
        for r in spec.roles {
            REGISTERED.roles[*r as usize].fetch_or(bit, Ordering::Release);
        }
        if spec.public {
            REGISTERED.public.fetch_or(bit, Ordering::Release);
        }
        if spec.robots {
            REGISTERED.robots.fetch_or(bit, Ordering::Release);
        }
        REGISTERED.all.fetch_or(bit, Ordering::Release);
        specs.push(spec);
        Ok(Action(n as u8))
    }

    /// Every action, built-in then registered.
    pub fn all() -> Vec<Action> {
        let registered = REGISTERED.specs.read().unwrap_or_else(|e| e.into_inner()).len();
        (0..BUILTIN_NAMES.len() + registered).map(|i| Action(i as u8)).collect()
    }

    /// The name used in the API, the CLI and the audit log.
    pub fn name(self) -> &'static str {
        let i = self.0 as usize;
        if let Some(n) = BUILTIN_NAMES.get(i) {
            return n;
        }
        let specs = REGISTERED.specs.read().unwrap_or_else(|e| e.into_inner());
        specs.get(i - BUILTIN_NAMES.len()).map_or("unknown", |s| s.name)
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(i) = BUILTIN_NAMES.iter().position(|n| *n == s) {
            return Ok(Action(i as u8));
        }
        let specs = REGISTERED.specs.read().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = specs.iter().position(|spec| spec.name == s) {
            return Ok(Action((BUILTIN_NAMES.len() + i) as u8));
        }
        drop(specs);
        let names: Vec<&str> = Action::all().into_iter().map(Action::name).collect();
        Err(format!("unknown action {s:?}; expected one of: {}", names.join(", ")))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A member's role in a project, as in Harbor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Everything in the project.
    ProjectAdmin,
    /// Everything about images, robots and the log; not membership or the project itself.
    Maintainer,
    /// Pull and push.
    Developer,
    /// Read-only, including members and the log.
    Guest,
    /// Pull only: no members, no log.
    LimitedGuest,
}

names!(Role {
    ProjectAdmin => "project_admin",
    Maintainer => "maintainer",
    Developer => "developer",
    Guest => "guest",
    LimitedGuest => "limited_guest",
});

/// A set of actions (a bit per [`Action`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Grant(u64);

impl Grant {
    /// No action.
    pub const NONE: Grant = Grant(0);

    /// Every action, registered ones included.
    pub fn all() -> Grant {
        Grant::of(Action::BUILTIN).union(Grant(REGISTERED.all.load(Ordering::Acquire)))
    }

    /// What anyone, anonymous callers included, may do in a public project.
    pub fn public() -> Grant {
        PUBLIC.union(Grant(REGISTERED.public.load(Ordering::Acquire)))
    }

    /// The actions a robot account can be given: repository work only, never
    /// administration.
    pub fn robot_grantable() -> Grant {
        ROBOT_GRANTABLE.union(Grant(REGISTERED.robots.load(Ordering::Acquire)))
    }

    /// Exactly these actions.
    pub const fn of(actions: &[Action]) -> Grant {
        let mut bits = 0u64;
        let mut i = 0;
        while i < actions.len() {
            bits |= 1 << actions[i].0;
            i += 1;
        }
        Grant(bits)
    }

    /// Whether `a` is in the set.
    pub fn has(self, a: Action) -> bool {
        self.0 & (1 << a.0) != 0
    }

    /// Both sets together.
    pub fn union(self, other: Grant) -> Grant {
        Grant(self.0 | other.0)
    }

    /// The actions in the set, in table order.
    pub fn actions(self) -> Vec<Action> {
        Action::all().into_iter().filter(|a| self.has(*a)).collect()
    }
}

/// The matrix. A row per role: the actions it grants.
const MATRIX: &[(Role, Grant)] = &[
    (
        Role::ProjectAdmin,
        Grant::of(&[
            Action::Pull,
            Action::Push,
            Action::DeleteTag,
            Action::DeleteManifest,
            Action::ReadReferrers,
            Action::MountFrom,
            Action::ListCatalog,
            Action::ViewMembers,
            Action::ManageMembers,
            Action::ManageRobots,
            Action::ReadAudit,
            Action::UpdateProject,
            Action::DeleteProject,
        ]),
    ),
    (
        Role::Maintainer,
        Grant::of(&[
            Action::Pull,
            Action::Push,
            Action::DeleteTag,
            Action::DeleteManifest,
            Action::ReadReferrers,
            Action::MountFrom,
            Action::ListCatalog,
            Action::ViewMembers,
            Action::ManageRobots,
            Action::ReadAudit,
        ]),
    ),
    (
        Role::Developer,
        Grant::of(&[
            Action::Pull,
            Action::Push,
            Action::ReadReferrers,
            Action::MountFrom,
            Action::ListCatalog,
            Action::ViewMembers,
            Action::ReadAudit,
        ]),
    ),
    (
        Role::Guest,
        Grant::of(&[
            Action::Pull,
            Action::ReadReferrers,
            Action::MountFrom,
            Action::ListCatalog,
            Action::ViewMembers,
            Action::ReadAudit,
        ]),
    ),
    (
        Role::LimitedGuest,
        Grant::of(&[
            Action::Pull,
            Action::ReadReferrers,
            Action::MountFrom,
            Action::ListCatalog,
        ]),
    ),
];

/// The built-in part of [`Grant::public`].
const PUBLIC: Grant = Grant::of(&[
    Action::Pull,
    Action::ReadReferrers,
    Action::MountFrom,
    Action::ListCatalog,
]);

/// The built-in part of [`Grant::robot_grantable`].
const ROBOT_GRANTABLE: Grant = Grant::of(&[
    Action::Pull,
    Action::Push,
    Action::DeleteTag,
    Action::DeleteManifest,
    Action::ReadReferrers,
    Action::MountFrom,
    Action::ListCatalog,
]);

impl Role {
    /// The actions this role grants in its project, registered ones included.
    pub fn grant(self) -> Grant {
        let builtin = MATRIX
            .iter()
            .find(|(r, _)| *r == self)
            .map(|(_, g)| *g)
            .unwrap_or(Grant::NONE);
        builtin.union(Grant(REGISTERED.roles[self as usize].load(Ordering::Acquire)))
    }

    /// Whether this role may do `a`.
    pub fn allows(self, a: Action) -> bool {
        self.grant().has(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_has_a_row_and_roles_are_ordered_by_power() {
        for r in Role::ALL {
            assert_eq!(MATRIX.iter().filter(|(x, _)| x == r).count(), 1, "{r}");
        }
        // Each role grants everything the next (weaker) one does.
        for w in Role::ALL.windows(2) {
            let (strong, weak) = (w[0].grant(), w[1].grant());
            assert_eq!(strong.union(weak), strong, "{} ⊇ {}", w[0], w[1]);
        }
        assert_eq!(Role::ProjectAdmin.grant(), Grant::all());
    }

    #[test]
    fn builtin_actions_are_numbered_in_table_order() {
        assert_eq!(Action::BUILTIN.len(), BUILTIN_NAMES.len());
        for (i, a) in Action::BUILTIN.iter().enumerate() {
            assert_eq!(a.0 as usize, i, "{a}");
        }
    }

    #[test]
    fn names_round_trip() {
        for a in Action::all() {
            assert_eq!(a.name().parse::<Action>().unwrap(), a);
        }
        for r in Role::ALL {
            assert_eq!(serde_json::to_string(r).unwrap(), format!("\"{r}\""));
        }
        let e = "owner".parse::<Role>().unwrap_err();
        assert!(e.contains("project_admin"), "{e}");
    }
}
