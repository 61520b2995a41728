//! The `pier` management commands (login, user, project, member, robot, audit) run as a
//! person or a script would run them: the real binary as a subprocess, with its own
//! credentials directory, against a real `pier serve`. What they set up is then checked
//! from the outside: robot secrets tried with Basic auth on `/v2/`, the audit log read
//! back, and bad input refused with the server's error code.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use pier_e2e::{ADMIN_PASSWORD, Pier, http_client, pier_bin, sha256};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// How long one `pier` command may take (each is one or a few small API calls).
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// Per-request limit for the test's own HTTP checks.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const ALICE_PASSWORD: &str = "alice-Secret-42";

/// The `pier` binary with a private credentials directory and none of the environment
/// that would pick another server or other credentials.
struct PierCli {
    config_dir: PathBuf,
}

impl PierCli {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(pier_bin());
        cmd.args(args)
            .env("PIER_CONFIG_DIR", &self.config_dir)
            .env_remove("PIER_SERVER")
            .env_remove("PIER_USERNAME")
            .env_remove("PIER_PASSWORD");
        cmd
    }

    fn credentials_file(&self) -> PathBuf {
        self.config_dir.join("credentials.json")
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run(self.command(args), stdin)
    }

    /// stdout of a command that must succeed.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(out.status.success(), "pier {args:?} failed:\n{}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The JSON a `--json` command prints.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let text = self.ok(&all, None);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("pier {all:?} printed no JSON ({e}):\n{text}"))
    }

    /// stderr of a command that must fail.
    fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            !out.status.success(),
            "pier {args:?} succeeded but must fail:\n{}",
            show(&out)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// Run `cmd` (stdin from `input`, or closed), killing it after [`CLI_TIMEOUT`].
fn run(mut cmd: Command, input: Option<&str>) -> Output {
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
    }
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(CLI_TIMEOUT) {
        Ok(out) => out.expect("wait for pier"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("{cmd:?} did not finish within {CLI_TIMEOUT:?}");
        }
    }
}

fn show(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The status of `GET /v2/` with Basic credentials.
fn v2_status(pier: &Pier, user: &str, secret: &str) -> StatusCode {
    http_client(HTTP_TIMEOUT)
        .get(format!("{}/v2/", pier.url()))
        .basic_auth(user, Some(secret))
        .send()
        .expect("GET /v2/")
        .status()
}

/// Push one small image (config blob + manifest, no layers) as the system admin, so that
/// `repo`'s project holds a repository.
fn push_small_image(pier: &Pier, repo: &str) {
    let c = http_client(HTTP_TIMEOUT);
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let digest = sha256(config);
    let r = c
        .post(format!("{}/v2/{repo}/blobs/uploads/?digest={digest}", pier.url()))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("content-type", "application/octet-stream")
        .body(config.to_vec())
        .send()
        .expect("POST blob");
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "push config blob: {}",
        r.text().unwrap_or_default()
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": config.len()},
        "layers": []
    });
    let r = c
        .put(format!("{}/v2/{repo}/manifests/v1", pier.url()))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&manifest).expect("manifest"))
        .send()
        .expect("PUT manifest");
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "push manifest: {}",
        r.text().unwrap_or_default()
    );
}

fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .find(|v| v[key] == value)
        .unwrap_or_else(|| panic!("no {key}={value} in {list}"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn management_commands_against_a_real_server() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pier = Pier::start(&tmp.path().join("data"));
    let server = pier.url();
    let cli = PierCli {
        config_dir: tmp.path().join("config"),
    };

    // A wrong password is refused and leaves nothing behind.
    let err = cli.fails(
        &["login", &server, "-u", "admin", "--password-stdin"],
        Some("not-the-password\n"),
    );
    assert!(err.contains("UNAUTHORIZED"), "{err}");
    assert!(!cli.credentials_file().exists(), "a failed login stored credentials");

    // Without a terminal and without --password-stdin there is nobody to ask.
    let err = cli.fails(&["login", &server, "-u", "admin"], None);
    assert!(err.contains("--password-stdin"), "{err}");

    // Logging in as the admin, without a scheme (loopback → http).
    let out = cli.ok(
        &["login", &pier.host(), "-u", "admin", "--password-stdin"],
        Some(&format!("{ADMIN_PASSWORD}\n")),
    );
    assert!(out.contains("admin"), "{out}");
    let file = cli.credentials_file();
    assert_eq!(mode(&file), 0o600, "credentials file mode");
    assert_eq!(mode(&cli.config_dir), 0o700, "credentials directory mode");
    let stored: Value = serde_json::from_slice(&std::fs::read(&file).expect("read credentials")).expect("json");
    assert_eq!(stored["current"], server.as_str(), "{stored}");
    assert_eq!(stored["servers"][&server]["username"], "admin", "{stored}");
    assert_eq!(stored["servers"][&server]["secret"], ADMIN_PASSWORD, "{stored}");

    // A later wrong login does not replace the good one.
    let err = cli.fails(
        &["login", &server, "-u", "admin", "--password-stdin"],
        Some("wrong-password"),
    );
    assert!(err.contains("UNAUTHORIZED"), "{err}");
    let again: Value = serde_json::from_slice(&std::fs::read(&file).expect("read credentials")).expect("json");
    assert_eq!(again, stored, "a failed login changed the credentials file");

    // A user, a private project, the user as developer.
    cli.ok(
        &["user", "create", "alice", "--password-stdin"],
        Some(&format!("{ALICE_PASSWORD}\n")),
    );
    let users = cli.json(&["user", "list"]);
    assert_eq!(find(&users, "name", "alice")["admin"], false, "{users}");
    assert_eq!(v2_status(&pier, "alice", ALICE_PASSWORD), StatusCode::OK);

    let out = cli.ok(&["project", "create", "team"], None);
    assert!(out.contains("team"), "{out}");
    let projects = cli.json(&["project", "list"]);
    assert_eq!(find(&projects, "name", "team")["public"], false, "{projects}");
    let listed = cli.ok(&["project", "list"], None);
    assert!(listed.starts_with("NAME"), "{listed}");
    assert!(
        listed.lines().any(|l| l.starts_with("team ") && l.contains("private")),
        "{listed}"
    );

    cli.ok(&["member", "add", "team", "alice", "developer"], None);
    let members = cli.json(&["member", "list", "team"]);
    assert_eq!(find(&members, "user", "alice")["role"], "developer", "{members}");

    // Credentials from the environment win over the file (CI): alice sees her role.
    let mut as_alice = cli.command(&["project", "list", "--json", "--server", &server]);
    as_alice
        .env("PIER_USERNAME", "alice")
        .env("PIER_PASSWORD", ALICE_PASSWORD);
    let out = run(as_alice, None);
    assert!(out.status.success(), "{}", show(&out));
    let seen: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(find(&seen, "name", "team")["role"], "developer", "{seen}");

    // A robot with pull,push: its secret opens /v2/, a wrong one does not.
    let robot = cli.json(&[
        "robot",
        "create",
        "team",
        "ci",
        "--perm",
        "pull,push",
        "--expires",
        "30d",
        "--description",
        "CI pipeline",
    ]);
    assert_eq!(robot["name"], "robot$team+ci", "{robot}");
    assert_eq!(robot["permissions"], json!(["pull", "push"]), "{robot}");
    assert!(robot["expires_at"].is_string(), "{robot}");
    let secret = robot["secret"].as_str().expect("secret").to_owned();
    assert_eq!(v2_status(&pier, "robot$team+ci", &secret), StatusCode::OK);
    assert_eq!(
        v2_status(&pier, "robot$team+ci", &format!("{secret}x")),
        StatusCode::UNAUTHORIZED
    );

    // The human form shows the secret once, with the warning.
    let out = cli.ok(&["robot", "create", "team", "reader"], None);
    assert!(out.contains("robot$team+reader"), "{out}");
    assert!(out.contains("not shown again"), "{out}");

    // Rotating: the old secret stops working, the new one works.
    let rotated = cli.json(&["robot", "rotate", "team", "ci"]);
    let new_secret = rotated["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(v2_status(&pier, "robot$team+ci", &secret), StatusCode::UNAUTHORIZED);
    assert_eq!(v2_status(&pier, "robot$team+ci", &new_secret), StatusCode::OK);

    // Disabling shuts it out.
    cli.ok(&["robot", "disable", "team", "ci"], None);
    assert_eq!(v2_status(&pier, "robot$team+ci", &new_secret), StatusCode::UNAUTHORIZED);
    let robots = cli.json(&["robot", "list", "team"]);
    let ci = find(&robots, "name", "robot$team+ci");
    assert_eq!(ci["disabled"], true, "{robots}");
    assert_eq!(ci["permissions"], json!(["pull", "push"]), "{robots}");
    assert_eq!(ci["description"], "CI pipeline", "{robots}");
    assert!(ci.get("secret").is_none(), "robot list shows a secret: {robots}");
    assert_eq!(
        find(&robots, "name", "robot$team+reader")["permissions"],
        json!(["pull"])
    );
    let table = cli.ok(&["robot", "list", "team"], None);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("robot$team+ci ") && l.contains("disabled")),
        "{table}"
    );

    // The audit log names who did it.
    let events = cli.json(&["audit", "--project", "team"]);
    for action in ["robot_create", "member_set"] {
        let e = find(&events, "action", action);
        assert_eq!(e["actor"], "admin", "{e}");
        assert_eq!(e["result"], "success", "{e}");
    }
    let table = cli.ok(&["audit", "--project", "team", "--since", "1h", "--all"], None);
    assert!(table.starts_with("TIME"), "{table}");
    assert!(
        table.lines().any(|l| l.contains("robot_create") && l.contains("admin")),
        "{table}"
    );
    // --all follows the server's cursors: small pages add up to the one big page.
    let one_page = cli.json(&["audit", "--project", "team", "--limit", "1000"]);
    let paged = cli.json(&["audit", "--project", "team", "--limit", "2", "--all"]);
    assert!(one_page.as_array().expect("events").len() > 2, "{one_page}");
    assert_eq!(paged, one_page, "--all --limit 2");
    let out = cli.run(&["audit", "--project", "team", "--limit", "2", "--json"], None);
    let first: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(first.as_array().expect("events").len(), 2, "{first}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--all"), "{}", show(&out));
    let none = cli.json(&["audit", "--project", "team", "--until", "2000-01-01T00:00:00Z"]);
    assert_eq!(none, json!([]), "events before 2000");

    // A project holding a repository cannot be deleted; an empty one can.
    push_small_image(&pier, "team/app");
    let err = cli.fails(&["project", "delete", "team"], None);
    assert!(err.contains("CONFLICT"), "{err}");
    assert!(err.starts_with("error: 409 CONFLICT"), "{err}");
    cli.ok(&["project", "create", "scratch", "--public"], None);
    cli.ok(&["project", "set", "scratch", "--private"], None);
    assert_eq!(
        find(&cli.json(&["project", "list"]), "name", "scratch")["public"],
        false
    );
    cli.ok(&["project", "delete", "scratch"], None);
    let projects = cli.json(&["project", "list"]);
    assert!(
        !projects
            .as_array()
            .expect("list")
            .iter()
            .any(|p| p["name"] == "scratch"),
        "{projects}"
    );

    // Bad input.
    let err = cli.fails(&["member", "add", "team", "alice", "owner"], None);
    assert!(err.contains("owner"), "{err}");
    let err = cli.fails(&["project", "create", "Bad_Name"], None);
    assert!(err.contains("NAME_INVALID"), "{err}");

    // A server that is not there is named.
    let gone = format!("http://127.0.0.1:{}", pier_e2e::free_port());
    let err = cli.fails(&["project", "list", "--server", &gone], None);
    assert!(err.contains(&gone), "{err}");

    // Logging out forgets the server; commands then go anonymous and are told so.
    cli.ok(&["logout", &server], None);
    let after: Value = serde_json::from_slice(&std::fs::read(&file).expect("read credentials")).expect("json");
    assert!(after["servers"].get(&server).is_none(), "{after}");
    let err = cli.fails(&["user", "list", "--server", &server], None);
    assert!(err.contains("UNAUTHORIZED"), "{err}");
}
