//! The `pier` binary: a thin clap layer over the pier crates.

mod admin;
mod api;
mod build;
mod credentials;
mod images;
mod output;
mod progress;
mod registries;
mod serve;
mod when;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::TypedValueParser;
use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::admin::Session;
use crate::api::{AuditQuery, Permission, Role};

/// pier: multi-architecture images and a private registry to serve them.
#[derive(Parser)]
#[command(name = "pier", version, about)]
struct Cli {
    /// Print JSON instead of tables and messages (the server's JSON for management commands,
    /// the build report for `pier build`)
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Which server a management command talks to.
#[derive(Args)]
struct Remote {
    /// The pier server, e.g. http://127.0.0.1:5000 or registry.example.com:5000; without a
    /// scheme, http:// for localhost and 127.0.0.0/8, https:// for every other host
    /// [default: the server of the last `pier login`]
    #[arg(long, env = "PIER_SERVER", global = true, value_name = "URL")]
    server: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry (OCI Distribution v1.1) on a local data directory.
    Serve(serve::ServeArgs),
    /// Check a user's (or robot's) credentials with a server and store them for the other
    /// commands (in $PIER_CONFIG_DIR, else $XDG_CONFIG_HOME/pier, else ~/.config/pier).
    ///
    /// Management commands then use them; PIER_USERNAME and PIER_PASSWORD override them.
    Login(LoginArgs),
    /// Forget the stored credentials of a server.
    Logout {
        /// The server [default: the current one]
        #[arg(env = "PIER_SERVER")]
        server: Option<String>,
    },
    /// Projects: the first segment of repository names, public or private.
    Project {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Who may do what in a project.
    Member {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: MemberCommand,
    },
    /// Robot accounts: credentials for CI and machines, limited to one project.
    Robot {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: RobotCommand,
    },
    /// User accounts (system admin).
    User {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Who did what, newest first.
    ///
    /// WHEN is an RFC 3339 time (2026-11-23T10:00:00Z, with an offset such as +08:00, or a
    /// bare date), Unix seconds, or a duration meaning that long ago (30m, 1h, 7d).
    Audit(AuditArgs),
    /// Build one image per platform from a pipeline spec (pier.yaml), daemonless, in
    /// parallel, into one multi-arch index.
    ///
    /// Steps run on this host with `sh -c` in the spec's directory. Times come from
    /// SOURCE_DATE_EPOCH, else the last git commit of the spec's directory, else 0.
    Build(BuildArgs),
    /// Describe an image or index: what REF names (index or image, digest, media type), then
    /// one row per platform with its manifest digest, layer count and size.
    Inspect(images::InspectArgs),
    /// Copy an image or index between registries and OCI layouts, in any direction.
    ///
    /// Blobs DST has are skipped, blobs in another repository of the same registry are
    /// mounted, the others are streamed and checked against their digests; the tag is written
    /// last, so a failed copy leaves no tag behind. An index needs --all (as it is) or
    /// --platform (some of its images).
    Copy(images::CopyArgs),
    /// Write one platform's image into an OCI image layout (a `pier copy` into oci:DIR).
    Pull(images::PullArgs),
    /// Multi-arch indexes: merge separately built images into one.
    Index {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: images::IndexCommand,
    },
}

#[derive(Args)]
#[command(group(ArgGroup::new("destination").required(true).multiple(true).args(["output", "push"])))]
struct BuildArgs {
    /// The pipeline spec
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    file: PathBuf,
    /// Where the images go: oci:DIR (an OCI image layout, all platforms under one index) or
    /// docker-archive:FILE (one platform, for `docker load`)
    #[arg(long, value_name = "oci:DIR|docker-archive:FILE")]
    output: Option<String>,
    /// Push the index (and every platform's image) to the spec's `image`, under every tag,
    /// with the credentials of `pier login` (PIER_USERNAME/PIER_PASSWORD for PIER_SERVER)
    #[arg(long)]
    push: bool,
    #[command(flatten)]
    remote: Remote,
    /// Build only this platform (any alias; repeatable) [default: every platform of the spec]
    #[arg(long = "platform", value_name = "P")]
    platforms: Vec<String>,
    /// An architecture table (TOML) merged over the built-in one
    #[arg(long, value_name = "FILE")]
    profiles: Option<PathBuf>,
    /// Layer cache and step logs [default: $XDG_CACHE_HOME/pier, else ~/.cache/pier]
    #[arg(long, env = "PIER_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

#[derive(Args)]
struct LoginArgs {
    /// The server, e.g. http://127.0.0.1:5000 or 127.0.0.1:5000; without a scheme,
    /// http:// for localhost and 127.0.0.0/8, https:// for every other host
    /// [default: the current server]
    #[arg(env = "PIER_SERVER")]
    server: Option<String>,
    /// User name, or a robot's full name robot$<project>+<name>
    #[arg(short, long)]
    username: String,
    /// Read the password from standard input instead of asking at the terminal
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
enum ProjectCommand {
    /// Create a project; you become its project admin.
    Create {
        name: String,
        /// Anyone, even without credentials, may pull
        #[arg(long)]
        public: bool,
    },
    /// Projects you can see: public ones and those you are a member of (all for a system admin).
    List,
    /// Delete an empty project with its members and robots.
    Delete { name: String },
    /// Change who may pull.
    #[command(group(ArgGroup::new("visibility").required(true).args(["public", "private"])))]
    Set {
        name: String,
        /// Anyone, even without credentials, may pull
        #[arg(long)]
        public: bool,
        /// Only members (and robots) may pull
        #[arg(long)]
        private: bool,
    },
}

/// Roles by their API names, as the server's matrix defines them.
fn role_parser() -> impl TypedValueParser<Value = Role> {
    clap::builder::PossibleValuesParser::new(Role::ALL.iter().map(|r| r.name()))
        .map(|s| s.parse::<Role>().expect("a listed role parses"))
}

/// The permissions a robot can be given, from the server's matrix.
fn permission_parser() -> impl TypedValueParser<Value = Permission> {
    let grantable = pier_registry::auth::Grant::robot_grantable().actions();
    clap::builder::PossibleValuesParser::new(grantable.into_iter().map(|a| a.name()))
        .map(|s| s.parse::<Permission>().expect("a listed permission parses"))
}

#[derive(Subcommand)]
enum MemberCommand {
    /// Add a user to a project, or change their role.
    Add {
        project: String,
        user: String,
        #[arg(value_parser = role_parser())]
        role: Role,
    },
    /// Members of a project and their roles.
    List { project: String },
    /// Take a user out of a project.
    Remove { project: String, user: String },
}

#[derive(Subcommand)]
enum RobotCommand {
    /// Create a robot account; prints its secret, once.
    Create {
        project: String,
        /// Short name; the robot logs in as robot$<project>+<name>
        name: String,
        /// What it may do in the project (comma-separated or repeated) [default: pull]
        #[arg(long = "perm", value_parser = permission_parser(), value_delimiter = ',', value_name = "PERM")]
        perms: Vec<Permission>,
        /// When it stops working: a duration from now (30d, 12h), an RFC 3339 time, or never
        #[arg(long, value_name = "WHEN")]
        expires: Option<String>,
        /// What it is for
        #[arg(long)]
        description: Option<String>,
    },
    /// Robot accounts of a project (never their secrets).
    List { project: String },
    /// Replace a robot's secret; the old one stops working at once.
    Rotate { project: String, name: String },
    /// Make a robot's credentials fail until enabled again.
    Disable { project: String, name: String },
    /// Let a disabled robot in again.
    Enable { project: String, name: String },
    /// Delete a robot account.
    Delete { project: String, name: String },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is asked for at the terminal.
    Create {
        name: String,
        /// Make them a system admin (everything, in every project)
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input instead
        #[arg(long)]
        password_stdin: bool,
    },
    /// All users.
    List,
    /// Delete a user and their memberships.
    Delete { name: String },
    /// Set a user's password (your own, or anyone's as a system admin).
    Passwd {
        name: String,
        /// Read the new password from standard input instead of asking at the terminal
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Filters of `pier audit`.
#[derive(Args)]
struct AuditArgs {
    #[command(flatten)]
    remote: Remote,
    /// Only events by this user or robot
    #[arg(long)]
    user: Option<String>,
    /// Only events in this project (needed unless you are a system admin)
    #[arg(long)]
    project: Option<String>,
    /// Only this action: pull, push, delete_tag, delete_manifest, delete_blob, login,
    /// login_throttled, token, project_create, member_set, robot_create, …
    #[arg(long)]
    action: Option<String>,
    /// Only events at or after WHEN (a time, or a duration ago: 1h, 7d)
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Only events before WHEN (a time, or a duration ago: 1h, 7d)
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    /// Events per page (1-1000) [default: 100, or 1000 with --all]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: Option<u32>,
    /// Only events older than this id (the cursor the previous page ended at)
    #[arg(long, value_name = "ID")]
    before: Option<u64>,
    #[arg(long, help = format!("Follow the pages to the end (at most {} pages)", admin::AUDIT_MAX_PAGES))]
    all: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Serve(args) = cli.command {
        // As before the management commands existed: anyhow's report for a server.
        return match serve::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e:?}");
                ExitCode::FAILURE
            }
        };
    }
    match manage(cli.command, cli.json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn manage(command: Command, json: bool) -> anyhow::Result<()> {
    let open = |remote: &Remote| Session::open(remote.server.as_deref(), json);
    match command {
        Command::Serve(_) => unreachable!("handled in main"),
        Command::Login(a) => admin::login(a.server.as_deref(), &a.username, a.password_stdin, json),
        Command::Logout { server } => admin::logout(server.as_deref(), json),
        Command::Project { remote, command } => {
            let s = open(&remote)?;
            match command {
                ProjectCommand::Create { name, public } => s.project_create(&name, public),
                ProjectCommand::List => s.project_list(),
                ProjectCommand::Delete { name } => s.project_delete(&name),
                ProjectCommand::Set { name, public, .. } => s.project_set(&name, public),
            }
        }
        Command::Member { remote, command } => {
            let s = open(&remote)?;
            match command {
                MemberCommand::Add { project, user, role } => s.member_add(&project, &user, role),
                MemberCommand::List { project } => s.member_list(&project),
                MemberCommand::Remove { project, user } => s.member_remove(&project, &user),
            }
        }
        Command::Robot { remote, command } => {
            let s = open(&remote)?;
            match command {
                RobotCommand::Create {
                    project,
                    name,
                    perms,
                    expires,
                    description,
                } => s.robot_create(&project, &name, perms, expires.as_deref(), description),
                RobotCommand::List { project } => s.robot_list(&project),
                RobotCommand::Rotate { project, name } => s.robot_rotate(&project, &name),
                RobotCommand::Disable { project, name } => s.robot_set_disabled(&project, &name, true),
                RobotCommand::Enable { project, name } => s.robot_set_disabled(&project, &name, false),
                RobotCommand::Delete { project, name } => s.robot_delete(&project, &name),
            }
        }
        Command::User { remote, command } => {
            let s = open(&remote)?;
            match command {
                UserCommand::Create {
                    name,
                    admin,
                    password_stdin,
                } => s.user_create(&name, admin, password_stdin),
                UserCommand::List => s.user_list(),
                UserCommand::Delete { name } => s.user_delete(&name),
                UserCommand::Passwd { name, password_stdin } => s.user_passwd(&name, password_stdin),
            }
        }
        Command::Audit(a) => {
            let s = open(&a.remote)?;
            let now = std::time::SystemTime::now();
            let time = |t: Option<String>| -> anyhow::Result<Option<String>> {
                t.map(|t| when::parse_past(&t, now).map(when::rfc3339)).transpose()
            };
            let query = AuditQuery {
                user: a.user,
                project: a.project,
                action: a.action,
                since: time(a.since)?,
                until: time(a.until)?,
                limit: a.limit,
                before: a.before,
            };
            s.audit(query, a.all)
        }
        Command::Build(a) => build::run(build::Request {
            file: a.file,
            output: a.output,
            push: a.push,
            server: a.remote.server,
            platforms: a.platforms,
            profiles: a.profiles,
            cache_dir: a.cache_dir,
            json,
        }),
        Command::Inspect(a) => images::inspect(a, json),
        Command::Copy(a) => images::copy(a, json),
        Command::Pull(a) => images::pull(a, json),
        Command::Index { remote, command } => images::index(&remote, command, json),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pier").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn login() {
        let cli = parse(&["login", "127.0.0.1:5000", "-u", "admin", "--password-stdin"]).unwrap();
        let Command::Login(a) = cli.command else {
            panic!("not login")
        };
        assert_eq!(a.server.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(a.username, "admin");
        assert!(a.password_stdin);
        let err = parse(&["login", "127.0.0.1:5000"]).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn server_and_json_go_anywhere_after_the_group() {
        for args in [
            &["--json", "project", "--server", "http://h:1", "list"][..],
            &["project", "list", "--server", "http://h:1", "--json"],
            &["project", "--json", "list", "--server=http://h:1"],
        ] {
            let cli = parse(args).unwrap();
            assert!(cli.json, "{args:?}");
            let Command::Project { remote, command } = cli.command else {
                panic!("not project")
            };
            assert_eq!(remote.server.as_deref(), Some("http://h:1"), "{args:?}");
            assert!(matches!(command, ProjectCommand::List));
        }
    }

    #[test]
    fn project_set_needs_exactly_one_visibility() {
        let cli = parse(&["project", "set", "team", "--private"]).unwrap();
        let Command::Project {
            command: ProjectCommand::Set { name, public, private },
            ..
        } = cli.command
        else {
            panic!("not project set")
        };
        assert_eq!((name.as_str(), public, private), ("team", false, true));
        assert!(parse(&["project", "set", "team"]).is_err());
        let both = parse(&["project", "set", "team", "--public", "--private"])
            .err()
            .unwrap();
        assert_eq!(both.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn member_roles_are_validated() {
        let cli = parse(&["member", "add", "team", "alice", "limited_guest"]).unwrap();
        let Command::Member {
            command: MemberCommand::Add { role, .. },
            ..
        } = cli.command
        else {
            panic!("not member add")
        };
        assert_eq!(role, Role::LimitedGuest);
        let err = parse(&["member", "add", "team", "alice", "owner"]).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidValue);
        let text = err.to_string();
        assert!(text.contains("owner") && text.contains("project_admin"), "{text}");
    }

    #[test]
    fn robot_permissions_split_on_commas_and_repeat() {
        let cli = parse(&[
            "robot",
            "create",
            "team",
            "ci",
            "--perm",
            "pull,push",
            "--perm",
            "delete_tag",
            "--expires",
            "30d",
        ])
        .unwrap();
        let Command::Robot {
            command: RobotCommand::Create { perms, expires, .. },
            ..
        } = cli.command
        else {
            panic!("not robot create")
        };
        assert_eq!(perms, [Permission::Pull, Permission::Push, Permission::DeleteTag]);
        assert_eq!(expires.as_deref(), Some("30d"));
        assert!(parse(&["robot", "create", "team", "ci", "--perm", "admin"]).is_err());
        assert!(parse(&["robot", "disable", "team"]).is_err());
    }

    #[test]
    fn audit_flags() {
        let cli = parse(&["audit", "--project", "team", "--since", "1h", "--limit", "5", "--all"]).unwrap();
        let Command::Audit(a) = cli.command else {
            panic!("not audit")
        };
        assert_eq!(a.project.as_deref(), Some("team"));
        assert_eq!(a.since.as_deref(), Some("1h"));
        assert_eq!(a.limit, Some(5));
        assert!(a.all);
        assert!(parse(&["audit", "--limit", "0"]).is_err());
        assert!(parse(&["audit", "--limit", "1001"]).is_err());
    }

    #[test]
    fn build_flags() {
        let cli = parse(&[
            "build",
            "-f",
            "examples/hello/pier.yaml",
            "--output",
            "oci:out",
            "--platform",
            "amd64",
            "--platform",
            "aarch64",
            "--cache-dir",
            "/tmp/c",
            "--json",
        ])
        .unwrap();
        assert!(cli.json);
        let Command::Build(a) = cli.command else {
            panic!("not build")
        };
        assert_eq!(a.file, PathBuf::from("examples/hello/pier.yaml"));
        assert_eq!(a.output.as_deref(), Some("oci:out"));
        assert!(!a.push);
        assert_eq!(a.platforms, ["amd64", "aarch64"]);
        assert_eq!(a.cache_dir, Some(PathBuf::from("/tmp/c")));
        let err = parse(&["build", "-f", "pier.yaml"]).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let cli = parse(&["build", "-f", "pier.yaml", "--push"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Build(BuildArgs {
                push: true,
                output: None,
                ..
            })
        ));
    }

    #[test]
    fn user_commands() {
        let cli = parse(&["user", "create", "bob", "--admin", "--password-stdin"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::User {
                command: UserCommand::Create {
                    admin: true,
                    password_stdin: true,
                    ..
                },
                ..
            }
        ));
        assert!(parse(&["user", "passwd"]).is_err());
    }
}
