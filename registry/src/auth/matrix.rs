//! The permission matrix: which project role may do which action, written down once as
//! data. Every access decision in pier goes through [`Role::allows`], [`PUBLIC`] and
//! [`Grant`]; nothing else knows what a role means.

use std::fmt;
use std::str::FromStr;

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

/// Something a caller does in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Read manifests, blobs and tag lists.
    Pull,
    /// Upload blobs and put manifests.
    Push,
    /// Delete a tag (`DELETE …/manifests/<tag>`).
    DeleteTag,
    /// Delete a manifest or a blob by digest.
    DeleteManifest,
    /// List referrers.
    ReadReferrers,
    /// Use a repository as the source of a cross-repository mount.
    MountFrom,
    /// See the project's repositories in `/v2/_catalog`.
    ListCatalog,
    /// List the project's members.
    ViewMembers,
    /// Add, change and remove members.
    ManageMembers,
    /// Create, change, rotate and delete robot accounts.
    ManageRobots,
    /// Query the project's audit log.
    ReadAudit,
    /// Change the project's visibility.
    UpdateProject,
    /// Delete the (empty) project.
    DeleteProject,
}

names!(Action {
    Pull => "pull",
    Push => "push",
    DeleteTag => "delete_tag",
    DeleteManifest => "delete_manifest",
    ReadReferrers => "read_referrers",
    MountFrom => "mount_from",
    ListCatalog => "list_catalog",
    ViewMembers => "view_members",
    ManageMembers => "manage_members",
    ManageRobots => "manage_robots",
    ReadAudit => "read_audit",
    UpdateProject => "update_project",
    DeleteProject => "delete_project",
});

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
pub struct Grant(u16);

impl Grant {
    /// No action.
    pub const NONE: Grant = Grant(0);

    /// Every action.
    pub fn all() -> Grant {
        Grant::of(Action::ALL)
    }

    /// Exactly these actions.
    pub const fn of(actions: &[Action]) -> Grant {
        let mut bits = 0u16;
        let mut i = 0;
        while i < actions.len() {
            bits |= 1 << actions[i] as u16;
            i += 1;
        }
        Grant(bits)
    }

    /// Whether `a` is in the set.
    pub fn has(self, a: Action) -> bool {
        self.0 & (1 << a as u16) != 0
    }

    /// Both sets together.
    pub fn union(self, other: Grant) -> Grant {
        Grant(self.0 | other.0)
    }

    /// The actions in the set, in table order.
    pub fn actions(self) -> Vec<Action> {
        Action::ALL.iter().copied().filter(|a| self.has(*a)).collect()
    }
}

use Action::*;

/// The matrix. A row per role: the actions it grants.
const MATRIX: &[(Role, Grant)] = &[
    (
        Role::ProjectAdmin,
        Grant::of(&[
            Pull,
            Push,
            DeleteTag,
            DeleteManifest,
            ReadReferrers,
            MountFrom,
            ListCatalog,
            ViewMembers,
            ManageMembers,
            ManageRobots,
            ReadAudit,
            UpdateProject,
            DeleteProject,
        ]),
    ),
    (
        Role::Maintainer,
        Grant::of(&[
            Pull,
            Push,
            DeleteTag,
            DeleteManifest,
            ReadReferrers,
            MountFrom,
            ListCatalog,
            ViewMembers,
            ManageRobots,
            ReadAudit,
        ]),
    ),
    (
        Role::Developer,
        Grant::of(&[
            Pull,
            Push,
            ReadReferrers,
            MountFrom,
            ListCatalog,
            ViewMembers,
            ReadAudit,
        ]),
    ),
    (
        Role::Guest,
        Grant::of(&[Pull, ReadReferrers, MountFrom, ListCatalog, ViewMembers, ReadAudit]),
    ),
    (
        Role::LimitedGuest,
        Grant::of(&[Pull, ReadReferrers, MountFrom, ListCatalog]),
    ),
];

/// What anyone, anonymous callers included, may do in a public project.
pub const PUBLIC: Grant = Grant::of(&[Pull, ReadReferrers, MountFrom, ListCatalog]);

/// The actions a robot account can be given: repository work only, never administration.
pub const ROBOT_GRANTABLE: Grant = Grant::of(&[
    Pull,
    Push,
    DeleteTag,
    DeleteManifest,
    ReadReferrers,
    MountFrom,
    ListCatalog,
]);

impl Role {
    /// The actions this role grants in its project.
    pub fn grant(self) -> Grant {
        MATRIX
            .iter()
            .find(|(r, _)| *r == self)
            .map(|(_, g)| *g)
            .unwrap_or(Grant::NONE)
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
    fn names_round_trip() {
        for a in Action::ALL {
            assert_eq!(a.name().parse::<Action>().unwrap(), *a);
        }
        for r in Role::ALL {
            assert_eq!(serde_json::to_string(r).unwrap(), format!("\"{r}\""));
        }
        let e = "owner".parse::<Role>().unwrap_err();
        assert!(e.contains("project_admin"), "{e}");
    }
}
