//! Access control over HTTP: the whole permission matrix of the contract, cell by
//! cell, against a real `pier serve`. Every subject (anonymous, a user without a role, one
//! user per role, robots, the system admin) × project (public, private) × action is actually
//! performed as that subject, and the answer and its effect (or that nothing changed, seen
//! by the admin) are checked against a table written out below, independently of the
//! server's code. Separate tests cover bad input on the token endpoint and in
//! `Authorization` headers.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use base64::Engine as _;
use pier_e2e::{ADMIN_PASSWORD, ADMIN_USER, Pier, basic, sha256, test_bytes};
use pier_oci::media;
use reqwest::blocking::Client;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Per-request timeout: every request here moves a few bytes over loopback.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The repository (inside each test project) the cells act on.
const REPO: &str = "app";

/// The permission matrix of the contract (role × action), copied by hand: one row per role
/// plus `public` (what anyone, even anonymous, may do on a PUBLIC project). Columns are
/// the actions of [`CELLS`] in order (abbreviated in the header line); `y` allowed, `-` denied.
const MATRIX: &str = "
                pull push dtag dman refs mount cat vmem mmem mrob audit upd del
project_admin    y    y    y    y    y    y     y   y    y    y    y     y   y
maintainer       y    y    y    y    y    y     y   y    -    y    y     -   -
developer        y    y    -    -    y    y     y   y    -    -    y     -   -
guest            y    -    -    -    y    y     y   y    -    -    y     -   -
limited_guest    y    -    -    -    y    y     y   -    -    -    -     -   -
public           y    -    -    -    y    y     y   -    -    -    -     -   -
";

/// Everything a robot may be given (the repository actions of the matrix).
const ROBOT_ALL: &[&str] = &[
    "pull",
    "push",
    "delete_tag",
    "delete_manifest",
    "read_referrers",
    "mount_from",
    "list_catalog",
];
const ROBOT_RW: &[&str] = &["pull", "push"];
const ROBOT_RO: &[&str] = &["pull"];

/// The two projects of the matrix, the mount destination every user is a developer of, and
/// the project of the foreign robot.
const PUB: &str = "pub";
const PRIV: &str = "priv";
const DST: &str = "dst";
const OTHER: &str = "other";

/// Who performs a cell.
#[derive(Clone, Copy, Debug)]
enum Who {
    Anonymous,
    /// A user with this role in both matrix projects (`None`: no role at all).
    User {
        name: &'static str,
        role: Option<&'static str>,
    },
    /// A robot of the cell's own project (one per matrix project, same name and permissions).
    OwnRobot {
        short: &'static str,
        perms: &'static [&'static str],
    },
    /// A robot of project [`OTHER`].
    OtherRobot {
        short: &'static str,
        perms: &'static [&'static str],
    },
    /// The system admin.
    Admin,
}

/// A user with `role` in both matrix projects.
const fn user(name: &'static str, role: Option<&'static str>) -> Who {
    Who::User { name, role }
}

const SUBJECTS: [(&str, Who); 11] = [
    ("anonymous", Who::Anonymous),
    ("no-role user", user("nobody", None)),
    ("limited_guest", user("lguest", Some("limited_guest"))),
    ("guest", user("guest", Some("guest"))),
    ("developer", user("dev", Some("developer"))),
    ("maintainer", user("maint", Some("maintainer"))),
    ("project_admin", user("padmin", Some("project_admin"))),
    (
        "robot [pull,push]",
        Who::OwnRobot {
            short: "rw",
            perms: ROBOT_RW,
        },
    ),
    (
        "robot [pull]",
        Who::OwnRobot {
            short: "ro",
            perms: ROBOT_RO,
        },
    ),
    (
        "robot of other project (all)",
        Who::OtherRobot {
            short: "all",
            perms: ROBOT_ALL,
        },
    ),
    ("system admin", Who::Admin),
];

fn password(user: &str) -> String {
    format!("{user}-Passw0rd!")
}

fn robot_name(project: &str, short: &str) -> String {
    format!("robot${project}+{short}")
}

/// The `y`/`-` row of `role`.
fn row(role: &str) -> Vec<bool> {
    let mut lines = MATRIX.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().expect("MATRIX header");
    assert_eq!(header.split_whitespace().count(), CELLS.len(), "MATRIX header");
    let cells = lines
        .find_map(|l| l.strip_prefix(role).filter(|rest| rest.starts_with(' ')))
        .unwrap_or_else(|| panic!("no row {role} in MATRIX"));
    let row: Vec<bool> = cells
        .split_whitespace()
        .map(|c| match c {
            "y" => true,
            "-" => false,
            other => panic!("MATRIX cell {other:?} in row {role}"),
        })
        .collect();
    assert_eq!(row.len(), CELLS.len(), "row {role} of MATRIX");
    row
}

fn column(action: &str) -> usize {
    CELLS
        .iter()
        .position(|(a, _)| *a == action)
        .unwrap_or_else(|| panic!("unknown action {action}"))
}

fn role_allows(role: &str, action: &str) -> bool {
    row(role)[column(action)]
}

/// The expected answer: role row (member) ∪ public column (public project) ∪ everything
/// (system admin); a robot: its permission list in its own project ∪ public column of a
/// public project.
fn expected(who: Who, public: bool, action: &str) -> bool {
    let public_ok = public && role_allows("public", action);
    match who {
        Who::Admin => true,
        Who::Anonymous | Who::OtherRobot { .. } => public_ok,
        Who::User { role, .. } => role.is_some_and(|r| role_allows(r, action)) || public_ok,
        Who::OwnRobot { perms, .. } => perms.contains(&action) || public_ok,
    }
}

/// Credentials as sent.
#[derive(Clone)]
enum Auth {
    Anonymous,
    Basic(String, String),
    Bearer(String),
    /// A literal `Authorization` header value.
    Raw(String),
}

impl Auth {
    fn label(&self) -> String {
        match self {
            Auth::Anonymous => "anonymous".into(),
            Auth::Basic(u, _) => format!("Basic {u}"),
            Auth::Bearer(_) => "Bearer".into(),
            Auth::Raw(v) => format!("Authorization: {v}"),
        }
    }
}

enum Body {
    Empty,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

/// One answer, read completely.
struct Got {
    what: String,
    method: Method,
    path: String,
    status: StatusCode,
    www: String,
    location: String,
    bytes: Vec<u8>,
}

impl Got {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    /// The first OCI error code of the body.
    fn code(&self) -> String {
        self.json()["errors"][0]["code"].as_str().unwrap_or("").to_owned()
    }

    fn is(&self, status: u16) -> bool {
        self.status.as_u16() == status
    }

    /// The request and the whole answer, for a report.
    fn show(&self) -> String {
        let mut body = self.text();
        if body.len() > 400 {
            body.truncate(body.char_indices().nth(400).map_or(body.len(), |(i, _)| i));
            body.push('…');
        }
        let mut s = format!("{} → {} {body}", self.what, self.status);
        if !self.www.is_empty() {
            s.push_str(&format!(" [WWW-Authenticate: {}]", self.www));
        }
        if !self.location.is_empty() {
            s.push_str(&format!(" [Location: {}]", self.location));
        }
        s
    }
}

fn call(c: &Client, base: &str, auth: &Auth, method: Method, path: &str, body: Body) -> Got {
    let url = if path.starts_with("http") {
        path.to_owned()
    } else {
        format!("{base}{path}")
    };
    let mut rb = c.request(method.clone(), &url);
    rb = match auth {
        Auth::Anonymous => rb,
        Auth::Basic(u, p) => rb.header("authorization", basic(u, p)),
        Auth::Bearer(t) => rb.bearer_auth(t),
        Auth::Raw(v) => rb.header("authorization", v.as_str()),
    };
    rb = match body {
        Body::Empty => rb,
        Body::Json(v) => rb.json(&v),
        Body::Raw(ct, b) => rb.header("content-type", ct).body(b),
    };
    let what = format!("{method} {path} as {}", auth.label());
    match rb.send() {
        Ok(r) => {
            let h = |n: &str| {
                r.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            };
            let (www, location) = (h("www-authenticate"), h("location"));
            let status = r.status();
            let bytes = r.bytes().map(|b| b.to_vec()).unwrap_or_default();
            Got {
                what,
                method,
                path: path.to_owned(),
                status,
                www,
                location,
                bytes,
            }
        }
        Err(e) => Got {
            what,
            method,
            path: path.to_owned(),
            status: StatusCode::from_u16(599).expect("599"),
            www: String::new(),
            location: String::new(),
            bytes: format!("transport error: {e}").into_bytes(),
        },
    }
}

/// `k=v&…`, form-encoded (as a query string or an `application/x-www-form-urlencoded` body).
fn form(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://form.invalid/").expect("URL");
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or("").to_owned()
}

fn with_query(location: &str, q: &str) -> String {
    if location.contains('?') {
        format!("{location}&{q}")
    } else {
        format!("{location}?{q}")
    }
}

/// The claims of a JWT (its middle segment).
fn jwt_payload(token: &str) -> Result<Value, String> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(format!("token is not a JWT (3 segments): {token:?}"));
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .map_err(|e| format!("JWT payload is not base64url ({e}): {:?}", parts[1]))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("JWT payload is not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// The actions a token's `access` grants on `type:name`.
fn granted(payload: &Value, typ: &str, name: &str) -> BTreeSet<String> {
    payload["access"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["type"] == typ && a["name"] == name)
        .flat_map(|a| a["actions"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

/// A token from `GET /service/token` for `scopes`; `Err` describes a failure.
fn fetch_token(c: &Client, base: &str, auth: &Auth, scopes: &[&str]) -> Result<(String, Value), String> {
    let mut query = vec![("service", "pier")];
    query.extend(scopes.iter().map(|s| ("scope", *s)));
    let path = format!("/service/token?{}", form(&query));
    let g = call(c, base, auth, Method::GET, &path, Body::Empty);
    if !g.is(200) {
        return Err(format!("token request failed: {}", g.show()));
    }
    let body = g.json();
    let token = body["token"]
        .as_str()
        .or(body["access_token"].as_str())
        .ok_or_else(|| format!("token answer without token: {}", g.show()))?
        .to_owned();
    let payload = jwt_payload(&token)?;
    Ok((token, payload))
}

/// `2026-11-23T10:00:00Z`: RFC 3339, UTC, seconds precision.
fn rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// A descriptor of something pushed.
#[derive(Clone)]
struct Desc {
    media_type: &'static str,
    digest: String,
    size: usize,
}

impl Desc {
    fn of(media_type: &'static str, bytes: &[u8]) -> Desc {
        Desc {
            media_type,
            digest: sha256(bytes),
            size: bytes.len(),
        }
    }

    fn json(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }
}

/// An OCI image manifest; `note` (an annotation) makes its digest unique.
fn image_manifest(
    config: &Desc,
    layers: &[&Desc],
    note: &str,
    subject: Option<&Desc>,
    artifact: Option<&str>,
) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": config.json(),
        "layers": layers.iter().map(|l| l.json()).collect::<Vec<_>>(),
        "annotations": { "org.pier.test.note": note },
    });
    if let Some(s) = subject {
        m["subject"] = s.json();
    }
    if let Some(a) = artifact {
        m["artifactType"] = json!(a);
    }
    serde_json::to_vec(&m).expect("manifest json")
}

/// One matrix project, with what the admin pushed into it.
struct Proj {
    name: &'static str,
    public: bool,
    repo: String,
    config: Desc,
    layer: Desc,
    /// The manifest tagged `base`.
    base: Desc,
    /// A manifest whose subject is `base`.
    referrer: String,
}

/// The server, and the admin who sets up and verifies every cell.
struct Ctx {
    pier: Pier,
    base: String,
    admin: Client,
    admin_auth: Auth,
    /// Robot secrets by full robot name.
    secrets: HashMap<String, String>,
    /// Where `pier` keeps its data; declared after it, so that it goes after pier stops.
    _dir: tempfile::TempDir,
}

impl Ctx {
    fn admin(&self, m: Method, path: &str, body: Body) -> Got {
        call(&self.admin, &self.base, &self.admin_auth, m, path, body)
    }

    /// An admin request that must answer one of `want`; `Err` shows it otherwise.
    fn admin_want(&self, m: Method, path: &str, body: Body, want: &[u16]) -> Result<Got, String> {
        let g = self.admin(m, path, body);
        if want.contains(&g.status.as_u16()) {
            Ok(g)
        } else {
            Err(format!("admin expected {want:?}: {}", g.show()))
        }
    }

    fn push_blob(&self, repo: &str, bytes: &[u8]) -> Result<String, String> {
        let d = sha256(bytes);
        let path = format!("/v2/{repo}/blobs/uploads/?digest={d}");
        self.admin_want(
            Method::POST,
            &path,
            Body::Raw("application/octet-stream", bytes.to_vec()),
            &[201],
        )?;
        Ok(d)
    }

    fn push_manifest(&self, repo: &str, reference: &str, bytes: &[u8]) -> Result<String, String> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        self.admin_want(
            Method::PUT,
            &path,
            Body::Raw(media::OCI_MANIFEST, bytes.to_vec()),
            &[201],
        )?;
        Ok(sha256(bytes))
    }

    /// Status of an admin request (for "is it still there" checks).
    fn admin_status(&self, m: Method, path: &str) -> u16 {
        self.admin(m, path, Body::Empty).status.as_u16()
    }

    fn members(&self, project: &str) -> Result<Vec<(String, String)>, String> {
        let g = self.admin_want(
            Method::GET,
            &format!("/api/v1/projects/{project}/members"),
            Body::Empty,
            &[200],
        )?;
        let list = g.json();
        let arr = list
            .as_array()
            .ok_or_else(|| format!("members is not an array: {}", g.show()))?;
        Ok(arr
            .iter()
            .map(|m| {
                (
                    m["user"].as_str().unwrap_or("").to_owned(),
                    m["role"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect())
    }

    fn project_public(&self, project: &str) -> Result<bool, String> {
        let g = self.admin_want(Method::GET, &format!("/api/v1/projects/{project}"), Body::Empty, &[200])?;
        g.json()["public"]
            .as_bool()
            .ok_or_else(|| format!("project without public: {}", g.show()))
    }
}

/// A subject acting in one project.
struct Caller<'a> {
    c: &'a Client,
    base: &'a str,
    auth: Auth,
    who: Who,
}

impl Caller<'_> {
    fn call(&self, m: Method, path: &str, body: Body) -> Got {
        call(self.c, self.base, &self.auth, m, path, body)
    }

    fn token(&self, scopes: &[&str]) -> Result<(String, Value), String> {
        fetch_token(self.c, self.base, &self.auth, scopes)
    }

    fn bearer(&self, token: String) -> Caller<'_> {
        Caller {
            c: self.c,
            base: self.base,
            auth: Auth::Bearer(token),
            who: self.who,
        }
    }

    fn anonymous(&self) -> bool {
        matches!(self.auth, Auth::Anonymous)
    }
}

/// What one cell found wrong.
type Problems = Vec<String>;

/// Marks a problem after which the matrix cannot go on.
const FATAL: &str = "FATAL";

/// `g` must have status `want`.
fn ok(p: &mut Problems, g: &Got, want: u16) -> bool {
    if g.is(want) {
        true
    } else {
        p.push(format!("expected {want}: {}", g.show()));
        false
    }
}

/// The scope an anonymous 401 on a repository must challenge for: `pull` for reads,
/// `pull,push` for writes, at least the repository for deletions.
fn challenge_scope(g: &Got) -> Option<String> {
    let tail = g.path.strip_prefix("/v2/")?;
    let end = ["/manifests/", "/blobs/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|m| tail.find(m))
        .min()?;
    let repo = &tail[..end];
    Some(match g.method {
        Method::GET | Method::HEAD => format!("scope=\"repository:{repo}:pull\""),
        Method::POST | Method::PUT | Method::PATCH => format!("scope=\"repository:{repo}:pull,push\""),
        _ => format!("scope=\"repository:{repo}:"),
    })
}

/// `g` must be a denial: 401 UNAUTHORIZED (anonymous; on /v2/ with a Bearer challenge),
/// 403 DENIED (Basic), 401 with `error="insufficient_scope"` (Bearer).
fn denied(p: &mut Problems, g: &Got, who: &Caller, v2: bool) {
    match &who.auth {
        Auth::Anonymous => {
            if !g.is(401) || g.code() != "UNAUTHORIZED" {
                p.push(format!("expected 401 UNAUTHORIZED: {}", g.show()));
            } else if v2
                && !(g.www.starts_with("Bearer ") && g.www.contains("realm=") && g.www.contains("service=\"pier\""))
            {
                p.push(format!("401 without a Bearer challenge: {}", g.show()));
            } else if v2
                && let Some(scope) = challenge_scope(g)
                && !g.www.contains(&scope)
            {
                p.push(format!("challenge without {scope}: {}", g.show()));
            }
        }
        Auth::Bearer(_) => {
            if !insufficient_scope(g) {
                p.push(format!("expected 401 with error=\"insufficient_scope\": {}", g.show()));
            }
        }
        Auth::Basic(..) | Auth::Raw(_) => {
            if !g.is(403) || g.code() != "DENIED" {
                p.push(format!("expected 403 DENIED: {}", g.show()));
            }
        }
    }
}

/// Allowed: status `want` (then `effect` holds); denied: a denial.
fn outcome(p: &mut Problems, g: &Got, who: &Caller, allow: bool, want: u16, v2: bool) -> bool {
    if allow {
        ok(p, g, want)
    } else {
        denied(p, g, who, v2);
        false
    }
}

fn verify(p: &mut Problems, cond: bool, msg: impl FnOnce() -> String) {
    if !cond {
        p.push(msg());
    }
}

/// One cell of the matrix: a subject doing an action in a project.
struct Cell<'a> {
    ctx: &'a Ctx,
    who: Caller<'a>,
    pr: &'a Proj,
    /// What the matrix says.
    allow: bool,
    /// Unique per cell, for names and test bytes that must not collide.
    id: u64,
}

/// A cell's check: it performs the action and records what it finds wrong; `Err` when the
/// admin's setup or verification failed.
type CellCheck = fn(&Cell, &mut Problems) -> Result<(), String>;

/// The actions of the contract, in the column order of [`MATRIX`], with their checks.
const CELLS: [(&str, CellCheck); 13] = [
    ("pull", cell_pull),
    ("push", cell_push),
    ("delete_tag", cell_delete_tag),
    ("delete_manifest", cell_delete_manifest),
    ("read_referrers", cell_read_referrers),
    ("mount_from", cell_mount_from),
    ("list_catalog", cell_list_catalog),
    ("view_members", cell_view_members),
    ("manage_members", cell_manage_members),
    ("manage_robots", cell_manage_robots),
    ("read_audit", cell_read_audit),
    ("update_project", cell_update_project),
    ("delete_project", cell_delete_project),
];

/// The `base` manifest, read as `who`.
fn pull_base(p: &mut Problems, who: &Caller, pr: &Proj, allow: bool) {
    let g = who.call(Method::GET, &format!("/v2/{}/manifests/base", pr.repo), Body::Empty);
    if outcome(p, &g, who, allow, 200, true) {
        verify(p, sha256(&g.bytes) == pr.base.digest, || {
            format!("wrong manifest: {}", g.show())
        });
    }
}

/// The Docker token flow: a token for pull,push on `repo`, which must grant `action`
/// exactly when allowed; `who` with that token.
fn bearer_for<'a>(p: &mut Problems, who: &'a Caller, repo: &str, action: &str, allow: bool) -> Option<Caller<'a>> {
    let scope = format!("repository:{repo}:pull,push");
    match who.token(&[&scope]) {
        Err(e) => {
            p.push(e);
            None
        }
        Ok((token, claims)) => {
            let actions = granted(&claims, "repository", repo);
            verify(p, actions.contains(action) == allow, || {
                format!("token for {scope} grants {actions:?} ({action} expected: {allow}); claims {claims}")
            });
            Some(who.bearer(token))
        }
    }
}

fn cell_pull(cell: &Cell, p: &mut Problems) -> Result<(), String> {
    let Cell { who, pr, allow, .. } = cell;
    let repo = &pr.repo;
    pull_base(p, who, pr, *allow);
    let g = who.call(
        Method::GET,
        &format!("/v2/{repo}/blobs/{}", pr.layer.digest),
        Body::Empty,
    );
    if outcome(p, &g, who, *allow, 200, true) {
        verify(p, sha256(&g.bytes) == pr.layer.digest, || {
            format!("wrong blob: {}", g.show())
        });
    }
    let g = who.call(Method::GET, &format!("/v2/{repo}/tags/list"), Body::Empty);
    if outcome(p, &g, who, *allow, 200, true) {
        let has = g.json()["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "base"));
        verify(p, has, || format!("tag base not listed: {}", g.show()));
    }
    if let Some(b) = bearer_for(p, who, repo, "pull", *allow) {
        pull_base(p, &b, pr, *allow);
    }
    Ok(())
}

/// PUT manifest `tag` as `who`: `manifest` when allowed; when denied, one whose blobs are
/// all there, so that only authorization can stop it. Then the admin must read `manifest`
/// under `tag`, or no `tag` at all.
fn put_manifest_checked(
    cell: &Cell,
    p: &mut Problems,
    who: &Caller,
    tag: &str,
    manifest: Vec<u8>,
) -> Result<(), String> {
    let Cell { ctx, pr, allow, .. } = cell;
    let repo = &pr.repo;
    let digest = sha256(&manifest);
    let body = if *allow {
        manifest
    } else {
        image_manifest(&pr.config, &[&pr.layer], tag, None, None)
    };
    let g = who.call(
        Method::PUT,
        &format!("/v2/{repo}/manifests/{tag}"),
        Body::Raw(media::OCI_MANIFEST, body),
    );
    if outcome(p, &g, who, *allow, 201, true) {
        let seen = ctx.admin_want(Method::GET, &format!("/v2/{repo}/manifests/{tag}"), Body::Empty, &[200])?;
        verify(p, sha256(&seen.bytes) == digest, || {
            format!("admin reads another manifest: {}", seen.show())
        });
    } else if !allow {
        verify(
            p,
            ctx.admin_status(Method::GET, &format!("/v2/{repo}/manifests/{tag}")) == 404,
            || format!("tag {tag} exists after a denied push as {}", who.auth.label()),
        );
    }
    Ok(())
}

/// A new layer and an image manifest over it, tagged `tag`.
fn new_image(pr: &Proj, seed: u64, tag: &str) -> (Vec<u8>, Desc, Vec<u8>) {
    let blob = test_bytes(seed, 24);
    let layer = Desc::of(media::OCI_LAYER_GZIP, &blob);
    let manifest = image_manifest(&pr.config, &[&layer], tag, None, None);
    (blob, layer, manifest)
}

fn cell_push(cell: &Cell, p: &mut Problems) -> Result<(), String> {
    let Cell { ctx, who, pr, .. } = cell;
    let (allow, id) = (cell.allow, cell.id);
    let repo = &pr.repo;
    // Basic (or anonymous): POST a session, PUT the blob, PUT the manifest.
    let tag = format!("push{id}");
    let (blob, layer, manifest) = new_image(pr, id * 10 + 1, &tag);
    if allow {
        let g = who.call(Method::POST, &format!("/v2/{repo}/blobs/uploads/"), Body::Empty);
        if ok(p, &g, 202) {
            let put = with_query(&g.location, &format!("digest={}", layer.digest));
            let g = who.call(Method::PUT, &put, Body::Raw("application/octet-stream", blob));
            ok(p, &g, 201);
        }
    } else {
        // Monolithic, so that a wrongly accepted request would store the blob at once.
        let g = who.call(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={}", layer.digest),
            Body::Raw("application/octet-stream", blob),
        );
        denied(p, &g, who, true);
        verify(
            p,
            ctx.admin_status(Method::HEAD, &format!("/v2/{repo}/blobs/{}", layer.digest)) == 404,
            || format!("blob {} arrived in {repo} after a denied upload", layer.digest),
        );
    }
    put_manifest_checked(cell, p, who, &tag, manifest)?;

    // The Docker token flow: token for pull,push, then push with Bearer.
    let Some(b) = bearer_for(p, who, repo, "push", allow) else {
        return Ok(());
    };
    let tag = format!("pushb{id}");
    let (blob, layer, manifest) = new_image(pr, id * 10 + 2, &tag);
    let g = b.call(
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/?digest={}", layer.digest),
        Body::Raw("application/octet-stream", blob),
    );
    outcome(p, &g, &b, allow, 201, true);
    put_manifest_checked(cell, p, &b, &tag, manifest)
}

/// A DELETE of `what` as `who`; `after`, what the admin's request for it answers afterwards:
/// 404 once deleted, 200 after a denial.
fn check_deletion(p: &mut Problems, g: &Got, who: &Caller, allow: bool, what: &str, after: u16) {
    if outcome(p, g, who, allow, 202, true) {
        verify(p, after == 404, || {
            format!("{what} still answers {after} after its deletion")
        });
    } else if !allow {
        verify(p, after == 200, || {
            format!("{what} answers {after} after a denied deletion")
        });
    }
}

fn cell_delete_tag(cell: &Cell, p: &mut Problems) -> Result<(), String> {
    let Cell { ctx, who, pr, .. } = cell;
    let (allow, id) = (cell.allow, cell.id);
    let repo = &pr.repo;
    let tag = format!("dt{id}");
    ctx.push_manifest(repo, &tag, &image_manifest(&pr.config, &[&pr.layer], &tag, None, None))?;
    let g = who.call(Method::DELETE, &format!("/v2/{repo}/manifests/{tag}"), Body::Empty);
    let after = ctx.admin_status(Method::GET, &format!("/v2/{repo}/manifests/{tag}"));
    check_deletion(p, &g, who, allow, &format!("tag {tag}"), after);
    Ok(())
}

fn cell_delete_manifest(cell: &Cell, p: &mut Problems) -> Result<(), String> {
    let Cell { ctx, who, pr, .. } = cell;
    let (allow, id) = (cell.allow, cell.id);
    let repo = &pr.repo;
    let tag = format!("dm{id}");
    let digest = ctx.push_manifest(repo, &tag, &image_manifest(&pr.config, &[&pr.layer], &tag, None, None))?;
    let g = who.call(Method::DELETE, &format!("/v2/{repo}/manifests/{digest}"), Body::Empty);
    let after = ctx.admin_status(Method::GET, &format!("/v2/{repo}/manifests/{digest}"));
    check_deletion(p, &g, who, allow, &format!("manifest {digest}"), after);
    // And a blob.
    let blob = ctx.push_blob(repo, &test_bytes(id * 10 + 3, 16))?;
    let g = who.call(Method::DELETE, &format!("/v2/{repo}/blobs/{blob}"), Body::Empty);
    let after = ctx.admin_status(Method::HEAD, &format!("/v2/{repo}/blobs/{blob}"));
    check_deletion(p, &g, who, allow, &format!("blob {blob}"), after);
    Ok(())
}

fn cell_read_referrers(cell: &Cell, p: &mut Problems) -> Result<(), String> {
    let Cell { who, pr, allow, .. } = cell;
    let g = who.call(
        Method::GET,
        &format!("/v2/{}/referrers/{}", pr.repo, pr.base.digest),
        Body::Empty,
    );
    if outcome(p, &g, who, *allow, 200, true) {
        let has = g.json()["manifests"]
            .as_array()
            .is_some_and(|l| l.iter().any(|m| m["digest"] == pr.referrer.as_str()));
        verify(p, has, || format!("referrer {} not listed: {}", pr.referrer, g.show()));
    }
    Ok(())
}

fn cell_mount_from(cell: &Cell, p: &mut Problems) -> Result<(), String> {
    let Cell { ctx, who, pr, .. } = cell;
    let (allow, id) = (cell.allow, cell.id);
    let dst = mount_destination(who.who, pr.name).expect("the matrix skips subjects without a destination");
    let blob = ctx.push_blob(&pr.repo, &test_bytes(id * 10 + 4, 16))?;
    let g = who.call(
        Method::POST,
        &format!("/v2/{dst}/blobs/uploads/?mount={blob}&from={}", pr.repo),
        Body::Empty,
    );
    let after = ctx.admin_status(Method::HEAD, &format!("/v2/{dst}/blobs/{blob}"));
    if allow {
        if ok(p, &g, 201) {
            verify(p, after == 200, || format!("mounted blob answers {after} in {dst}"));
        }
    } else {
        // Exactly as if the blob did not exist: a fresh session.
        if !g.is(202) || !g.location.contains("/blobs/uploads/") {
            p.push(format!("expected 202 with a fresh session: {}", g.show()));
        }
        verify(p, after == 404, || {
            format!("blob {blob} answers {after} in {dst} after a refused mount")
        });
    }
    Ok(())
}

/// Whether a catalog answer lists `repo` (`None`: not a catalog).
fn catalog_lists(g: &Got, repo: &str) -> Option<bool> {
    g.json()["repositories"].as_array().map(|l| l.iter().any(|r| r == repo))
}

fn check_catalog(p: &mut Problems, g: &Got, who: &Caller, allow: bool, repo: &str) {
    let lists = if g.is(200) { catalog_lists(g, repo) } else { None };
    let good = match (allow, lists) {
        (true, Some(true)) | (false, Some(false)) => true,
        // Anonymous may also be challenged instead of getting a catalog without it.
        (false, None) => who.anonymous() && g.is(401),
        _ => false,
    };
    verify(p, good, || {
        format!(
            "expected a catalog {} {repo}: {}",
            if allow { "listing" } else { "without" },
            g.show()
        )
    });
}

fn cell_list_catalog(cell: &Cell, p: &mut Problems) -> Result<(), String> {
    let Cell { who, pr, allow, .. } = cell;
    let g = who.call(Method::GET, "/v2/_catalog", Body::Empty);
    check_catalog(p, &g, who, *allow, &pr.repo);
    match who.token(&["registry:catalog:*"]) {
        Err(e) => p.push(e),
        Ok((token, _)) => {
            let b = who.bearer(token);
            let g = b.call(Method::GET, "/v2/_catalog", Body::Empty);
            check_catalog(p, &g, who, *allow, &pr.repo);
        }
    }
    Ok(())
}

fn cell_view_members(cell: &Cell, p: &mut Problems) -> Result<(), String> {
    let Cell { who, pr, allow, .. } = cell;
    let g = who.call(
        Method::GET,
        &format!("/api/v1/projects/{}/members", pr.name),
        Body::Empty,
    );
    if outcome(p, &g, who, *allow, 200, false) {
        let has = g
            .json()
            .as_array()
            .is_some_and(|l| l.iter().any(|m| m["user"] == "dev" && m["role"] == "developer"));
        verify(p, has, || format!("member dev (developer) not listed: {}", g.show()));
    }
    Ok(())
}

fn cell_manage_members(cell: &Cell, p: &mut Problems) -> Result<(), String> {
    let Cell {
        ctx, who, pr, allow, ..
    } = cell;
    let members = format!("/api/v1/projects/{}/members", pr.name);
    // The state the cell needs: victim is a guest, victim2 is not a member.
    ctx.admin_want(
        Method::POST,
        &members,
        Body::Json(json!({"user": "victim", "role": "guest"})),
        &[200, 201],
    )?;
    ctx.admin_want(Method::DELETE, &format!("{members}/victim2"), Body::Empty, &[204, 404])?;
    let g_del = who.call(Method::DELETE, &format!("{members}/victim"), Body::Empty);
    let g_add = who.call(
        Method::POST,
        &members,
        Body::Json(json!({"user": "victim2", "role": "guest"})),
    );
    let now = ctx.members(pr.name)?;
    let has = |u: &str| now.iter().any(|(n, _)| n == u);
    if *allow {
        if ok(p, &g_del, 204) {
            verify(p, !has("victim"), || {
                format!("victim is still a member after removal: {now:?}")
            });
        }
        if ok(p, &g_add, 201) {
            let guest = now.iter().any(|(n, r)| n == "victim2" && r == "guest");
            verify(p, guest, || {
                format!("victim2 is not a guest after being added: {now:?}")
            });
        }
    } else {
        denied(p, &g_del, who, false);
        denied(p, &g_add, who, false);
        verify(p, has("victim") && !has("victim2"), || {
            format!("members changed after denied calls: {now:?}")
        });
    }
    Ok(())
}

fn cell_manage_robots(cell: &Cell, p: &mut Problems) -> Result<(), String> {
    let Cell { ctx, who, pr, .. } = cell;
    let (allow, id) = (cell.allow, cell.id);
    let robots = format!("/api/v1/projects/{}/robots", pr.name);
    let (victim, made) = (format!("vic{id}"), format!("mk{id}"));
    ctx.admin_want(
        Method::POST,
        &robots,
        Body::Json(json!({"name": victim, "permissions": ["pull"]})),
        &[201],
    )?;
    let g_list = who.call(Method::GET, &robots, Body::Empty);
    let g_make = who.call(
        Method::POST,
        &robots,
        Body::Json(json!({"name": made, "permissions": ["pull"]})),
    );
    let g_del = who.call(Method::DELETE, &format!("{robots}/{victim}"), Body::Empty);
    let made_now = ctx.admin_status(Method::GET, &format!("{robots}/{made}"));
    let victim_now = ctx.admin_status(Method::GET, &format!("{robots}/{victim}"));
    if allow {
        if ok(p, &g_list, 200) {
            let list = g_list.json();
            let fine = list.as_array().is_some_and(|l| {
                l.iter().all(|r| r.get("secret").is_none())
                    && l.iter().any(|r| r["name"] == robot_name(pr.name, &victim))
            });
            verify(p, fine, || {
                format!("robot list without {victim} or with secrets: {}", g_list.show())
            });
        }
        if ok(p, &g_make, 201) {
            let secret = g_make.json()["secret"].as_str().is_some_and(|s| !s.is_empty());
            verify(p, secret, || format!("created robot without secret: {}", g_make.show()));
            verify(p, made_now == 200, || {
                format!("created robot {made} answers {made_now} to the admin")
            });
        }
        if ok(p, &g_del, 204) {
            verify(p, victim_now == 404, || {
                format!("deleted robot {victim} answers {victim_now} to the admin")
            });
        }
    } else {
        for g in [&g_list, &g_make, &g_del] {
            denied(p, g, who, false);
        }
        verify(p, made_now == 404, || {
            format!("robot {made} answers {made_now} after a denied creation")
        });
        verify(p, victim_now == 200, || {
            format!("robot {victim} answers {victim_now} after a denied deletion")
        });
    }
    Ok(())
}

fn cell_read_audit(cell: &Cell, p: &mut Problems) -> Result<(), String> {
    let Cell { who, pr, allow, .. } = cell;
    let g = who.call(Method::GET, &format!("/api/v1/audit?project={}", pr.name), Body::Empty);
    if outcome(p, &g, who, *allow, 200, false) {
        let body = g.json();
        let events = body["events"].as_array().cloned().unwrap_or_default();
        verify(p, !events.is_empty(), || {
            format!("no audit events for {}: {}", pr.name, g.show())
        });
        let foreign: Vec<&Value> = events
            .iter()
            .filter(|e| {
                e.get("project").is_some_and(|x| x != pr.name)
                    || e["repository"]
                        .as_str()
                        .is_some_and(|r| !r.starts_with(&format!("{}/", pr.name)))
            })
            .collect();
        verify(p, foreign.is_empty(), || {
            format!(
                "audit?project={} returns events of other projects: {foreign:?}",
                pr.name
            )
        });
    }
    Ok(())
}

fn cell_update_project(cell: &Cell, p: &mut Problems) -> Result<(), String> {
    let Cell {
        ctx, who, pr, allow, ..
    } = cell;
    let path = format!("/api/v1/projects/{}", pr.name);
    let g = who.call(Method::PATCH, &path, Body::Json(json!({"public": !pr.public})));
    let now = ctx.project_public(pr.name)?;
    if now != pr.public {
        // Put it back whatever happened, so later cells see the project as they expect.
        ctx.admin_want(Method::PATCH, &path, Body::Json(json!({"public": pr.public})), &[200])?;
    }
    if outcome(p, &g, who, *allow, 200, false) {
        verify(p, g.json()["public"] == !pr.public, || {
            format!("PATCH answer does not show the change: {}", g.show())
        });
        verify(p, now != pr.public, || {
            format!("visibility unchanged after an allowed PATCH: {}", g.show())
        });
    } else if !allow {
        verify(p, now == pr.public, || {
            format!("visibility changed after a denied PATCH: {}", g.show())
        });
    }
    Ok(())
}

fn cell_delete_project(cell: &Cell, p: &mut Problems) -> Result<(), String> {
    let Cell { ctx, who, pr, .. } = cell;
    let (allow, id) = (cell.allow, cell.id);
    let path = format!("/api/v1/projects/{}", pr.name);
    let g = who.call(Method::DELETE, &path, Body::Empty);
    if allow {
        if !g.is(409) || g.code() != "CONFLICT" {
            p.push(format!(
                "expected 409 CONFLICT (the project holds repositories): {}",
                g.show()
            ));
        }
    } else {
        denied(p, &g, who, false);
    }
    let project = ctx.admin_status(Method::GET, &path);
    let manifest = ctx.admin_status(Method::GET, &format!("/v2/{}/manifests/base", pr.repo));
    if project != 200 || manifest != 200 {
        // Later cells cannot run without it: the caller stops the matrix here.
        p.push(format!(
            "{FATAL}: project {} is gone after {}: the project answers {project}, its manifest {manifest}",
            pr.name,
            g.show()
        ));
        return Ok(());
    }
    if allow {
        // An empty project they administer goes.
        let tmp = format!("tmp{id}");
        ctx.admin_want(
            Method::POST,
            "/api/v1/projects",
            Body::Json(json!({"name": tmp, "public": false})),
            &[201],
        )?;
        if let Who::User { name, .. } = who.who {
            ctx.admin_want(
                Method::POST,
                &format!("/api/v1/projects/{tmp}/members"),
                Body::Json(json!({"user": name, "role": "project_admin"})),
                &[200, 201],
            )?;
        }
        let g = who.call(Method::DELETE, &format!("/api/v1/projects/{tmp}"), Body::Empty);
        if ok(p, &g, 204) {
            let after = ctx.admin_status(Method::GET, &format!("/api/v1/projects/{tmp}"));
            verify(p, after == 404, || {
                format!("deleted project {tmp} answers {after} to the admin")
            });
        }
    }
    Ok(())
}

/// Where a subject mounts into: a repository of a project in which it may push.
fn mount_destination(who: Who, project: &str) -> Option<String> {
    match who {
        Who::Anonymous => None,
        Who::User { name, .. } => Some(format!("{DST}/m-{name}")),
        Who::Admin => Some(format!("{DST}/m-admin")),
        Who::OwnRobot { short, perms } => perms.contains(&"push").then(|| format!("{project}/m-{short}")),
        Who::OtherRobot { short, perms } => perms.contains(&"push").then(|| format!("{OTHER}/m-{short}")),
    }
}

fn setup_project(ctx: &Ctx, name: &'static str, public: bool, seed: u64) -> Proj {
    let repo = format!("{name}/{REPO}");
    let config_bytes = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "comment": name
    }))
    .expect("config");
    let layer_bytes = test_bytes(seed, 32);
    let config = Desc::of(media::OCI_CONFIG, &config_bytes);
    let layer = Desc::of(media::OCI_LAYER_GZIP, &layer_bytes);
    let setup = || -> Result<Proj, String> {
        ctx.push_blob(&repo, &config_bytes)?;
        ctx.push_blob(&repo, &layer_bytes)?;
        let base_bytes = image_manifest(&config, &[&layer], "base", None, None);
        ctx.push_manifest(&repo, "base", &base_bytes)?;
        let base = Desc::of(media::OCI_MANIFEST, &base_bytes);
        ctx.push_blob(&repo, b"{}")?;
        let empty = Desc::of(media::OCI_EMPTY, b"{}");
        let sig = image_manifest(
            &empty,
            &[&layer],
            "sig",
            Some(&base),
            Some("application/vnd.pier.test.sig"),
        );
        let referrer = sha256(&sig);
        ctx.push_manifest(&repo, &referrer, &sig)?;
        Ok(Proj {
            name,
            public,
            repo: repo.clone(),
            config: config.clone(),
            layer: layer.clone(),
            base,
            referrer,
        })
    };
    setup().unwrap_or_else(|e| panic!("setting up {repo}: {e}"))
}

/// Start pier; panic unless it already does access control (GET /v2/ anonymous → 401).
fn start() -> Ctx {
    let dir = tempfile::tempdir().expect("tempdir");
    let pier = Pier::start(&dir.path().join("data"));
    let ctx = Ctx {
        base: pier.url(),
        admin: pier_e2e::http_client(REQUEST_TIMEOUT),
        admin_auth: Auth::Basic(ADMIN_USER.into(), ADMIN_PASSWORD.into()),
        secrets: HashMap::new(),
        pier,
        _dir: dir,
    };
    let g = call(
        &ctx.admin,
        &ctx.base,
        &Auth::Anonymous,
        Method::GET,
        "/v2/",
        Body::Empty,
    );
    assert!(
        g.is(401),
        "pier has no access control yet (anonymous GET /v2/ must answer 401): {}",
        g.show()
    );
    ctx.pier.admin_api(Method::GET, "/v2/", None, 200);
    ctx
}

fn create_user(ctx: &Ctx, name: &str) {
    ctx.pier.create_user(name, &password(name));
}

/// A new project (201: none of that name may exist yet).
fn create_project(ctx: &Ctx, name: &str, public: bool) {
    let body = json!({"name": name, "public": public});
    ctx.pier.admin_api(Method::POST, "/api/v1/projects", Some(body), 201);
}

fn create_robot(ctx: &mut Ctx, project: &str, short: &str, perms: &[&str]) {
    let (full, secret) = ctx.pier.create_robot(project, short, perms);
    ctx.secrets.insert(full, secret);
}

fn auth_of(ctx: &Ctx, who: Who, project: &str) -> Auth {
    let robot = |project: &str, short: &str| {
        let n = robot_name(project, short);
        Auth::Basic(n.clone(), ctx.secrets[&n].clone())
    };
    match who {
        Who::Anonymous => Auth::Anonymous,
        Who::User { name, .. } => Auth::Basic(name.into(), password(name)),
        Who::Admin => Auth::Basic(ADMIN_USER.into(), ADMIN_PASSWORD.into()),
        Who::OwnRobot { short, .. } => robot(project, short),
        Who::OtherRobot { short, .. } => robot(OTHER, short),
    }
}

/// `who` acting in `project`.
fn caller<'a>(ctx: &'a Ctx, c: &'a Client, who: Who, project: &str) -> Caller<'a> {
    Caller {
        c,
        base: &ctx.base,
        auth: auth_of(ctx, who, project),
        who,
    }
}

struct Mismatch {
    subject: &'static str,
    project: &'static str,
    action: &'static str,
    expected: bool,
    problems: Problems,
}

/// The matrix's findings.
#[derive(Default)]
struct Report {
    mismatches: Vec<Mismatch>,
}

impl Report {
    /// Keep what one check of `subject` × `project` × `action` found wrong, if anything.
    fn add(&mut self, subject: &'static str, project: &'static str, action: &'static str, expected: bool, p: Problems) {
        if !p.is_empty() {
            self.mismatches.push(Mismatch {
                subject,
                project,
                action,
                expected,
                problems: p,
            });
        }
    }

    fn text(&self) -> String {
        let mut report = format!("{} mismatching cells:\n", self.mismatches.len());
        for m in &self.mismatches {
            report.push_str(&format!(
                "\n* {} × {} × {}: expected {}\n",
                m.subject,
                m.project,
                m.action,
                if m.expected { "allowed" } else { "denied" }
            ));
            for pb in &m.problems {
                report.push_str(&format!("    - {pb}\n"));
            }
        }
        report
    }
}

/// Users, projects, members and robots of the matrix; the two matrix projects.
fn setup_matrix(ctx: &mut Ctx) -> [Proj; 2] {
    let users: Vec<(&str, Option<&str>)> = SUBJECTS
        .iter()
        .filter_map(|(_, w)| match w {
            Who::User { name, role } => Some((*name, *role)),
            _ => None,
        })
        .collect();
    for (name, _) in &users {
        create_user(ctx, name);
    }
    create_user(ctx, "victim");
    create_user(ctx, "victim2");
    for (name, public) in [(PUB, true), (PRIV, false), (DST, false), (OTHER, false)] {
        create_project(ctx, name, public);
    }
    for project in [PUB, PRIV] {
        for (name, role) in &users {
            if let Some(role) = role {
                ctx.pier.add_member(project, name, role);
            }
        }
    }
    for (name, _) in &users {
        ctx.pier.add_member(DST, name, "developer");
    }
    for (_, w) in SUBJECTS {
        match w {
            Who::OwnRobot { short, perms } => {
                for project in [PUB, PRIV] {
                    create_robot(ctx, project, short, perms);
                }
            }
            Who::OtherRobot { short, perms } => create_robot(ctx, OTHER, short, perms),
            _ => {}
        }
    }
    [setup_project(ctx, PUB, true, 1), setup_project(ctx, PRIV, false, 2)]
}

/// Every subject authenticates (the anonymous one is challenged), and whoami names the
/// user a Basic login names.
fn check_login(caller: &Caller) -> Problems {
    let mut p = Problems::new();
    let g = caller.call(Method::GET, "/v2/", Body::Empty);
    if caller.anonymous() {
        verify(&mut p, g.is(401) && g.www.starts_with("Bearer realm="), || {
            format!("expected 401 with a Bearer challenge: {}", g.show())
        });
    } else {
        ok(&mut p, &g, 200);
        let g = caller.call(Method::GET, "/api/v1/users/current", Body::Empty);
        if ok(&mut p, &g, 200)
            && let Auth::Basic(u, _) = &caller.auth
        {
            verify(&mut p, g.json()["name"] == u.as_str(), || {
                format!("whoami is not {u}: {}", g.show())
            });
        }
    }
    p
}

#[test]
fn role_action_matrix_over_http() {
    let mut ctx = start();
    let projects = setup_matrix(&mut ctx);

    // One client per subject.
    let clients: Vec<Client> = SUBJECTS
        .iter()
        .map(|_| pier_e2e::http_client(REQUEST_TIMEOUT))
        .collect();
    let mut report = Report::default();

    for ((label, who), c) in SUBJECTS.iter().zip(&clients) {
        for pr in &projects {
            let p = check_login(&caller(&ctx, c, *who, pr.name));
            report.add(label, pr.name, "authenticate (not a cell)", true, p);
        }
    }

    let (mut checked, mut allowed, mut denied_n, mut skipped) = (0usize, 0usize, 0usize, 0usize);
    let mut skips: Vec<String> = Vec::new();
    let mut id = 0u64;
    'matrix: for pr in &projects {
        for (action, check) in CELLS {
            for ((label, who), c) in SUBJECTS.iter().zip(&clients) {
                id += 1;
                if action == "mount_from" && mount_destination(*who, pr.name).is_none() {
                    skipped += 1;
                    skips.push(format!("{label} × {} × mount_from (no push anywhere)", pr.name));
                    continue;
                }
                let cell = Cell {
                    ctx: &ctx,
                    who: caller(&ctx, c, *who, pr.name),
                    pr,
                    allow: expected(*who, pr.public, action),
                    id,
                };
                let mut p = Problems::new();
                if let Err(e) = check(&cell, &mut p) {
                    p.push(format!("admin setup/verification failed: {e}"));
                }
                checked += 1;
                if cell.allow {
                    allowed += 1;
                } else {
                    denied_n += 1;
                }
                let fatal = p.iter().any(|x| x.starts_with(FATAL));
                report.add(label, pr.name, action, cell.allow, p);
                if fatal {
                    break 'matrix;
                }
            }
        }
    }

    for s in &skips {
        println!("skipped: {s}");
    }
    println!("access matrix: {checked} cells checked ({allowed} allowed, {denied_n} denied, {skipped} skipped)");
    if !report.mismatches.is_empty() {
        let text = report.text();
        drop(ctx);
        panic!("{text}");
    }
    let total = SUBJECTS.len() * projects.len() * CELLS.len();
    assert!(
        checked >= total - skipped,
        "only {checked} of {total} cells checked ({skipped} skipped)"
    );
    assert_eq!(total, 11 * 2 * 13);
}

/// A 401 that asks for a token with more scope.
fn insufficient_scope(g: &Got) -> bool {
    g.is(401) && g.www.contains("error=\"insufficient_scope\"")
}

/// Panic with every problem found, if there are any.
fn assert_no_problems(what: &str, problems: &Problems) {
    assert!(problems.is_empty(), "{what}:\n  - {}", problems.join("\n  - "));
}

/// A guest asking for pull,push on a private project gets pull only; the push then fails
/// with an insufficient_scope challenge, and nothing arrives.
#[test]
fn token_scope_escalation_is_dropped_silently() {
    let ctx = start();
    create_user(&ctx, "guest");
    create_project(&ctx, PRIV, false);
    ctx.pier.add_member(PRIV, "guest", "guest");
    let pr = setup_project(&ctx, PRIV, false, 7);
    let c = pier_e2e::http_client(REQUEST_TIMEOUT);
    let send = |auth: &Auth, m: Method, path: &str, body: Body| call(&c, &ctx.base, auth, m, path, body);
    let guest = Auth::Basic("guest".into(), password("guest"));
    let scope = format!("repository:{}:pull,push", pr.repo);
    let mut problems = Problems::new();

    // GET, and the POST form docker login uses.
    let query = form(&[("service", "pier"), ("scope", &scope)]);
    let get = send(&guest, Method::GET, &format!("/service/token?{query}"), Body::Empty);
    let login = form(&[
        ("grant_type", "password"),
        ("username", "guest"),
        ("password", &password("guest")),
        ("service", "pier"),
        ("scope", &scope),
    ]);
    let post = send(
        &Auth::Anonymous,
        Method::POST,
        "/service/token",
        Body::Raw("application/x-www-form-urlencoded", login.into_bytes()),
    );
    let mut tokens = Vec::new();
    for (how, g) in [("GET", get), ("POST", post)] {
        if !ok(&mut problems, &g, 200) {
            continue;
        }
        let body = g.json();
        let (token, access_token) = (body["token"].as_str(), body["access_token"].as_str());
        verify(&mut problems, body["expires_in"] == 300, || {
            format!("{how} token: expires_in is not 300: {}", g.show())
        });
        verify(
            &mut problems,
            body["issued_at"].as_str().is_some_and(rfc3339_utc),
            || format!("{how} token: issued_at is not RFC 3339 UTC: {}", g.show()),
        );
        match (token, access_token) {
            (Some(t), Some(a)) => match (jwt_payload(t), jwt_payload(a)) {
                (Ok(claims), Ok(_)) => tokens.push((how, t.to_owned(), claims)),
                (Err(e), _) | (_, Err(e)) => problems.push(format!("{how} token: {e}")),
            },
            _ => problems.push(format!("{how} token: token and access_token expected: {}", g.show())),
        }
    }
    for (how, token, claims) in tokens {
        let access = claims["access"].as_array().cloned().unwrap_or_default();
        let want = json!([{"type": "repository", "name": pr.repo, "actions": ["pull"]}]);
        verify(&mut problems, Value::Array(access.clone()) == want, || {
            format!("{how} token access is {access:?}, expected exactly {want} (claims {claims})")
        });
        let b = Auth::Bearer(token);
        let g = send(&b, Method::GET, &format!("/v2/{}/manifests/base", pr.repo), Body::Empty);
        ok(&mut problems, &g, 200);
        let blob = test_bytes(99, 16);
        let g = send(
            &b,
            Method::POST,
            &format!("/v2/{}/blobs/uploads/?digest={}", pr.repo, sha256(&blob)),
            Body::Raw("application/octet-stream", blob),
        );
        verify(&mut problems, insufficient_scope(&g), || {
            format!("{how} token: push must answer 401 insufficient_scope: {}", g.show())
        });
        let m = image_manifest(&pr.config, &[&pr.layer], "escalated", None, None);
        let g = send(
            &b,
            Method::PUT,
            &format!("/v2/{}/manifests/escalated", pr.repo),
            Body::Raw(media::OCI_MANIFEST, m),
        );
        verify(&mut problems, insufficient_scope(&g), || {
            format!(
                "{how} token: manifest PUT must answer 401 insufficient_scope: {}",
                g.show()
            )
        });
    }
    let after = ctx.admin_status(Method::GET, &format!("/v2/{}/manifests/escalated", pr.repo));
    verify(&mut problems, after == 404, || {
        format!("the escalated push arrived (tag answers {after})")
    });
    assert_no_problems("scope escalation", &problems);
}

/// A token for repository A opens nothing in repository B, even for the system admin.
#[test]
fn token_for_one_repository_does_not_open_another() {
    let ctx = start();
    create_user(&ctx, "dev");
    create_project(&ctx, PRIV, false);
    ctx.pier.add_member(PRIV, "dev", "developer");
    let pr = setup_project(&ctx, PRIV, false, 8);
    let other = format!("{PRIV}/other");
    let m = image_manifest(&pr.config, &[&pr.layer], "other", None, None);
    let setup = || -> Result<(), String> {
        ctx.push_blob(
            &other,
            &serde_json::to_vec(
                &json!({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"comment":PRIV}),
            )
            .expect("json"),
        )?;
        ctx.push_blob(&other, &test_bytes(8, 32))?;
        ctx.push_manifest(&other, "base", &m)?;
        Ok(())
    };
    setup().unwrap_or_else(|e| panic!("setup {other}: {e}"));
    let c = pier_e2e::http_client(REQUEST_TIMEOUT);
    let mut problems = Problems::new();
    for auth in [Auth::Basic("dev".into(), password("dev")), ctx.admin_auth.clone()] {
        let who = auth.label();
        let scope = format!("repository:{}:pull,push", pr.repo);
        let (token, _) = fetch_token(&c, &ctx.base, &auth, &[&scope]).unwrap_or_else(|e| panic!("{who}: {e}"));
        let b = Auth::Bearer(token);
        let g = call(
            &c,
            &ctx.base,
            &b,
            Method::GET,
            &format!("/v2/{}/manifests/base", pr.repo),
            Body::Empty,
        );
        verify(&mut problems, g.is(200), || {
            format!("{who}'s token on its own repository: {}", g.show())
        });
        for (m, path) in [
            (Method::GET, format!("/v2/{other}/manifests/base")),
            (Method::GET, format!("/v2/{other}/tags/list")),
            (Method::POST, format!("/v2/{other}/blobs/uploads/")),
        ] {
            let g = call(&c, &ctx.base, &b, m, &path, Body::Empty);
            verify(&mut problems, insufficient_scope(&g), || {
                format!(
                    "{who}'s token for {} used on {other}: expected 401 insufficient_scope: {}",
                    pr.repo,
                    g.show()
                )
            });
        }
    }
    assert_no_problems("token for A on B", &problems);
}

/// Malformed scopes are 400 BAD_REQUEST, whoever asks.
#[test]
fn malformed_scopes_are_bad_requests() {
    let ctx = start();
    let c = pier_e2e::http_client(REQUEST_TIMEOUT);
    let mut problems = Problems::new();
    for auth in [Auth::Anonymous, ctx.admin_auth.clone()] {
        for scope in [
            "repository:onlytwo",
            "repository::pull",
            "repository:Bad/Name:pull",
            "nonsense",
        ] {
            let path = format!("/service/token?{}", form(&[("service", "pier"), ("scope", scope)]));
            let g = call(&c, &ctx.base, &auth, Method::GET, &path, Body::Empty);
            verify(&mut problems, g.is(400) && g.code() == "BAD_REQUEST", || {
                format!("scope {scope:?}: expected 400 BAD_REQUEST: {}", g.show())
            });
        }
    }
    assert_no_problems("malformed scopes", &problems);
}

/// Broken `Authorization` headers are 401 UNAUTHORIZED with an OCI error body — never a 500,
/// never anonymous access — on the token endpoint, on /v2/ and on /api/v1.
#[test]
fn malformed_authorization_headers_are_unauthorized() {
    let ctx = start();
    let c = pier_e2e::http_client(REQUEST_TIMEOUT);
    let mut problems = Problems::new();
    let headers = [
        "Basic !!!notbase64",
        // base64("nocolon")
        "Basic bm9jb2xvbg==",
        "Bearer",
        "Bearer a.b.c",
        "Digest x",
    ];
    // Well-formed, wrong password (one try per path: far from the lockout).
    let wrong = Auth::Basic(ADMIN_USER.into(), "not-the-password".into());
    for path in [
        "/service/token?service=pier&scope=repository%3Alibrary%2Fx%3Apull",
        "/v2/",
        "/api/v1/users/current",
    ] {
        for auth in headers.map(|h| Auth::Raw(h.into())).iter().chain([&wrong]) {
            let g = call(&c, &ctx.base, auth, Method::GET, path, Body::Empty);
            verify(&mut problems, g.is(401) && g.code() == "UNAUTHORIZED", || {
                format!("expected 401 UNAUTHORIZED: {}", g.show())
            });
        }
    }
    assert_no_problems("malformed Authorization", &problems);
}
