//! In-process tests of access control: every bad input of the token flow, Basic auth and
//! the management API, with what must stay unchanged after each refusal. (The whole
//! role × action matrix runs over HTTP against `pier serve` in the end-to-end suite.)

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use base64::Engine as _;
use common::{ADMIN_PASSWORD, Reg, Resp, basic, image_manifest};
use pier_oci::{Digest, media};
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn now() -> u64 {
    pier_registry::auth::now()
}

impl Reg {
    /// Push an image into any repository as `auth`; returns the answer of the manifest PUT.
    async fn push_as(&self, auth: &str, repo: &str, tag: &str) -> Resp {
        let config = format!("{{\"repo\":\"{repo}\"}}").into_bytes();
        let layer = format!("layer of {repo}").into_bytes();
        for blob in [&config, &layer] {
            let d = Digest::sha256_of(blob);
            let r = self
                .req(
                    Method::POST,
                    &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                    &[("authorization", auth)],
                    blob.clone(),
                )
                .await;
            if r.status != StatusCode::CREATED {
                return r;
            }
        }
        let m = image_manifest(&Digest::sha256_of(&config), &Digest::sha256_of(&layer), None);
        self.req(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("authorization", auth), ("content-type", media::OCI_MANIFEST)],
            m,
        )
        .await
    }

    async fn token(&self, auth: &str, scopes: &[&str]) -> Resp {
        let q: Vec<String> = scopes.iter().map(|s| format!("scope={}", percent(s))).collect();
        self.req(
            Method::GET,
            &format!("/service/token?service=pier&{}", q.join("&")),
            &[("authorization", auth)],
            Body::empty(),
        )
        .await
    }

    async fn bearer(&self, auth: &str, scopes: &[&str]) -> String {
        let r = self.token(auth, scopes).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        format!("Bearer {}", r.json()["token"].as_str().unwrap())
    }

    fn signing_key(&self) -> Vec<u8> {
        let text = std::fs::read_to_string(self.dir.path().join("token-signing-key")).unwrap();
        hex::decode(text.trim()).unwrap()
    }

    async fn audit(&self, query: &str) -> Vec<Value> {
        let r = self.admin(Method::GET, &format!("/audit?{query}"), Value::Null).await;
        r.json()["events"].as_array().unwrap().clone()
    }
}

fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn payload(bearer: &str) -> Value {
    let jwt = bearer.strip_prefix("Bearer ").unwrap();
    serde_json::from_slice(&B64.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn sign(key: &[u8], claims: &Value) -> String {
    let t = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .unwrap();
    format!("Bearer {t}")
}

fn claims(sub: &str, repo: &str, actions: &[&str], exp: u64) -> Value {
    json!({
        "iss": "pier", "aud": "pier", "sub": sub, "exp": exp, "nbf": now() - 10, "iat": now() - 10,
        "jti": "test", "access": [{ "type": "repository", "name": repo, "actions": actions }]
    })
}

fn assert_unauthorized(r: &Resp, what: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {:?}", r.body);
    assert_eq!(r.code(), "UNAUTHORIZED", "{what}");
    assert!(!r.header("www-authenticate").is_empty(), "{what}: no challenge");
}

#[tokio::test]
async fn anonymous_callers_are_challenged_and_public_pulls_need_no_token() {
    let r = Reg::new().await;
    r.push_as(&basic("admin", ADMIN_PASSWORD), "library/app", "v1").await;
    let v2 = r
        .req(Method::GET, "/v2/", &[("authorization", "")], Body::empty())
        .await;
    assert_unauthorized(&v2, "GET /v2/");
    assert_eq!(
        v2.header("www-authenticate"),
        r#"Bearer realm="http://localhost/service/token",service="pier""#
    );
    // The realm follows the Host the client used.
    let v2 = r
        .req(
            Method::GET,
            "/v2/",
            &[("authorization", ""), ("host", "reg.example:5000")],
            Body::empty(),
        )
        .await;
    assert!(
        v2.header("www-authenticate")
            .contains("http://reg.example:5000/service/token")
    );
    // Public project: pulled without any credentials.
    let get = r
        .req(
            Method::GET,
            "/v2/library/app/manifests/v1",
            &[("authorization", "")],
            Body::empty(),
        )
        .await;
    assert_eq!(get.status, StatusCode::OK);
    // Private project: a challenge naming the scope to ask for.
    r.project("private", false).await;
    r.push_as(&basic("admin", ADMIN_PASSWORD), "private/app", "v1").await;
    let get = r
        .req(
            Method::GET,
            "/v2/private/app/manifests/v1",
            &[("authorization", "")],
            Body::empty(),
        )
        .await;
    assert_unauthorized(&get, "anonymous pull from a private project");
    assert!(
        get.header("www-authenticate")
            .ends_with(r#"scope="repository:private/app:pull""#),
        "{}",
        get.header("www-authenticate")
    );
    // Anonymous push, even into the public project, is refused.
    let push = r.push_as("", "library/other", "v1").await;
    assert_unauthorized(&push, "anonymous push");
    assert!(push.header("www-authenticate").contains("pull,push"));
}

#[tokio::test]
async fn wrong_password_unknown_user_and_malformed_headers_get_401() {
    let r = Reg::new().await;
    let wrong = r
        .req(
            Method::GET,
            "/v2/",
            &[("authorization", &basic("admin", "nope-nope"))],
            Body::empty(),
        )
        .await;
    assert_unauthorized(&wrong, "wrong password");
    let unknown = r
        .req(
            Method::GET,
            "/v2/",
            &[("authorization", &basic("ghost", "whatever1"))],
            Body::empty(),
        )
        .await;
    assert_unauthorized(&unknown, "unknown user");
    // The same words for both: no user enumeration.
    assert_eq!(
        wrong.json()["errors"][0]["message"],
        unknown.json()["errors"][0]["message"]
    );
    let token = r
        .token(&basic("admin", "nope-nope"), &["repository:library/x:pull"])
        .await;
    assert_unauthorized(&token, "token with a wrong password");
    let nocolon = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("nocolon"));
    for bad in [
        "Basic !!!notbase64",
        nocolon.as_str(),
        "Basic",
        "Bearer",
        "Bearer a.b.c",
        "Bearer not-a-jwt",
        "Digest username=\"admin\"",
        "Negotiate abc",
    ] {
        for path in ["/v2/", "/v2/library/x/tags/list", "/api/v1/projects"] {
            let resp = r.req(Method::GET, path, &[("authorization", bad)], Body::empty()).await;
            assert_unauthorized(&resp, &format!("{bad} on {path}"));
        }
    }
}

#[tokio::test]
async fn tokens_expired_forged_alg_none_or_for_another_repository_are_refused() {
    let r = Reg::new().await;
    r.push_as(&basic("admin", ADMIN_PASSWORD), "library/a", "v1").await;
    r.project("private", false).await;
    r.push_as(&basic("admin", ADMIN_PASSWORD), "private/a", "v1").await;
    r.push_as(&basic("admin", ADMIN_PASSWORD), "private/b", "v1").await;
    let get = |auth: String, repo: &'static str| {
        let r = &r;
        async move {
            r.req(
                Method::GET,
                &format!("/v2/{repo}/manifests/v1"),
                &[("authorization", &auth)],
                Body::empty(),
            )
            .await
        }
    };
    let key = r.signing_key();
    // A token pier itself would issue works...
    let good = sign(&key, &claims("admin", "private/a", &["pull"], now() + 60));
    assert_eq!(get(good.clone(), "private/a").await.status, StatusCode::OK);
    // ...but not on another repository: insufficient scope, with the scope to ask for.
    let other = get(good, "private/b").await;
    assert_unauthorized(&other, "token for another repository");
    assert!(
        other
            .header("www-authenticate")
            .contains(r#"error="insufficient_scope""#)
    );
    assert!(other.header("www-authenticate").contains("repository:private/b:pull"));
    // Expired.
    let expired = sign(&key, &claims("admin", "private/a", &["pull"], now() - 120));
    assert_unauthorized(&get(expired, "private/a").await, "expired token");
    // Signed by another key.
    let forged = sign(&[7u8; 32], &claims("admin", "private/a", &["pull"], now() + 60));
    assert_unauthorized(&get(forged, "private/a").await, "token of another key");
    // alg: none.
    let none = format!(
        "Bearer {}.{}.",
        B64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(claims("admin", "private/a", &["pull"], now() + 60).to_string())
    );
    assert_unauthorized(&get(none, "private/a").await, "alg none");
    // A token whose account was deleted since.
    let carol = r.user("carol", "private", "developer").await;
    let t = r.bearer(&carol, &["repository:private/a:pull"]).await;
    assert_eq!(get(t.clone(), "private/a").await.status, StatusCode::OK);
    r.admin(Method::DELETE, "/users/carol", Value::Null).await;
    assert_unauthorized(&get(t, "private/a").await, "token of a deleted user");
    // Nothing was changed by any of it.
    assert_eq!(
        get(basic("admin", ADMIN_PASSWORD), "private/a").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn scope_escalation_yields_a_token_without_the_extra_actions() {
    let r = Reg::new().await;
    r.project("team", false).await;
    r.push_as(&basic("admin", ADMIN_PASSWORD), "team/app", "v1").await;
    let guest = r.user("gus", "team", "guest").await;
    let t = r
        .bearer(
            &guest,
            &["repository:team/app:pull,push,delete,*", "repository:library/x:push"],
        )
        .await;
    let p = payload(&t);
    assert_eq!(
        p["access"],
        json!([
            { "type": "repository", "name": "team/app", "actions": ["pull"] },
            { "type": "repository", "name": "library/x", "actions": [] },
        ])
    );
    assert_eq!(p["sub"], "gus");
    let push = r.push_as(&t, "team/app", "v2").await;
    assert_unauthorized(&push, "push with a pull-only token");
    assert!(push.header("www-authenticate").contains("insufficient_scope"));
    // With Basic the guest is known, so the refusal is a 403.
    let push = r.push_as(&guest, "team/app", "v2").await;
    assert_eq!(push.status, StatusCode::FORBIDDEN);
    assert_eq!(push.code(), "DENIED");
    let tags = r.get("/v2/team/app/tags/list").await.json();
    assert_eq!(tags["tags"], json!(["v1"]), "nothing was pushed");
    // The denied push is on record with its actor.
    let denied = r.audit("action=push&user=gus").await;
    assert!(
        denied
            .iter()
            .any(|e| e["result"] == "denied" && e["repository"] == "team/app"),
        "{denied:?}"
    );
    // The token request itself is on record as denied, with what was refused.
    let tokens = r.audit("action=token&user=gus").await;
    let t = tokens
        .iter()
        .find(|e| e["result"] == "denied")
        .expect("denied token event");
    let detail = t["detail"].as_str().unwrap();
    assert!(detail.contains("refused repository:team/app:push,delete,*"), "{detail}");
    // A developer asking for the same gets push; the system admin gets everything.
    let dev = r.user("dee", "team", "developer").await;
    let t = r.bearer(&dev, &["repository:team/app:pull,push,delete"]).await;
    assert_eq!(payload(&t)["access"][0]["actions"], json!(["pull", "push"]));
    let t = r
        .bearer(&basic("admin", ADMIN_PASSWORD), &["repository:team/app:*"])
        .await;
    assert_eq!(payload(&t)["access"][0]["actions"], json!(["*"]));
}

#[tokio::test]
async fn malformed_scopes_get_400() {
    let r = Reg::new().await;
    for bad in [
        "repository:onlytwo",
        "repository::pull",
        "repository:Bad/Name:pull",
        "repository:a/b:",
        "nonsense",
        "registry:other:*",
    ] {
        let resp = r.token(&basic("admin", ADMIN_PASSWORD), &[bad]).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", resp.body);
        assert_eq!(resp.code(), "BAD_REQUEST", "{bad}");
        let anonymous = r.token("", &[bad]).await;
        assert_eq!(anonymous.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let many: Vec<String> = (0..40).map(|i| format!("repository:library/r{i}:pull")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(r.token("", &many).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn robots_disabled_expired_rotated_or_deleted_stop_at_once() {
    let r = Reg::new().await;
    r.project("ci", false).await;
    let (name, secret) = r.robot("ci", "build", &["pull", "push"]).await;
    assert_eq!(name, "robot$ci+build");
    let auth = basic(&name, &secret);
    assert_eq!(r.push_as(&auth, "ci/app", "v1").await.status, StatusCode::CREATED);
    // Robots act in their own project only.
    let elsewhere = r.push_as(&auth, "library/app", "v1").await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);
    // The secret is stored only hashed.
    let listed = r.admin(Method::GET, "/projects/ci/robots", Value::Null).await;
    assert!(!String::from_utf8_lossy(&listed.body).contains(&secret));
    assert!(listed.json()[0].get("secret").is_none());

    r.admin(Method::PATCH, "/projects/ci/robots/build", json!({ "disabled": true }))
        .await;
    let v2 = r
        .req(Method::GET, "/v2/", &[("authorization", &auth)], Body::empty())
        .await;
    assert_unauthorized(&v2, "disabled robot");
    assert!(v2.json()["errors"][0]["message"].as_str().unwrap().contains("disabled"));
    r.admin(Method::PATCH, "/projects/ci/robots/build", json!({ "disabled": false }))
        .await;
    let t = r.bearer(&auth, &["repository:ci/app:pull"]).await;

    let rotated = r
        .admin(Method::POST, "/projects/ci/robots/build/rotate", Value::Null)
        .await;
    let new_secret = rotated.json()["secret"].as_str().unwrap().to_owned();
    assert_unauthorized(
        &r.req(Method::GET, "/v2/", &[("authorization", &auth)], Body::empty())
            .await,
        "old secret after rotation",
    );
    let auth = basic(&name, &new_secret);
    assert_eq!(
        r.req(Method::GET, "/v2/", &[("authorization", &auth)], Body::empty())
            .await
            .status,
        StatusCode::OK
    );

    // Expiry: set one two seconds ahead, and wait it out.
    r.admin(
        Method::PATCH,
        "/projects/ci/robots/robot$ci+build",
        json!({ "expires_at": (now() + 2).to_string() }),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let v2 = r
        .req(Method::GET, "/v2/", &[("authorization", &auth)], Body::empty())
        .await;
    assert_unauthorized(&v2, "expired robot");
    assert!(v2.json()["errors"][0]["message"].as_str().unwrap().contains("expired"));
    // Its token from before is refused too.
    let get = r
        .req(
            Method::GET,
            "/v2/ci/app/manifests/v1",
            &[("authorization", &t)],
            Body::empty(),
        )
        .await;
    assert_unauthorized(&get, "token of an expired robot");
    // An expiry in the past is refused at creation.
    let past = r
        .api(
            Method::POST,
            "/projects/ci/robots",
            &basic("admin", ADMIN_PASSWORD),
            json!({ "name": "old", "expires_at": "2001-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(past.code(), "BAD_REQUEST");
    // Administration cannot be given to a robot.
    let admin_robot = r
        .api(
            Method::POST,
            "/projects/ci/robots",
            &basic("admin", ADMIN_PASSWORD),
            json!({ "name": "boss", "permissions": ["manage_members"] }),
        )
        .await;
    assert_eq!(admin_robot.code(), "BAD_REQUEST");

    r.admin(Method::DELETE, "/projects/ci/robots/build", Value::Null).await;
    let gone = r
        .api(
            Method::GET,
            "/projects/ci/robots/build",
            &basic("admin", ADMIN_PASSWORD),
            Value::Null,
        )
        .await;
    assert_eq!(gone.code(), "NOT_FOUND");
    let events = r.audit("project=ci").await;
    for action in ["robot_create", "robot_update", "robot_rotate", "robot_delete"] {
        assert!(
            events
                .iter()
                .any(|e| e["action"] == action && e["actor"] == "admin" && e["target"] == name),
            "{action} missing: {events:?}"
        );
    }
    let pushes = r.audit("action=push&project=ci").await;
    assert!(
        pushes
            .iter()
            .any(|e| e["actor"] == name && e["actor_kind"] == "robot" && e["result"] == "success")
    );
}

#[tokio::test]
async fn repeated_failures_are_throttled_and_logged() {
    let r = Reg::new().await;
    r.project("p", false).await;
    let tom = r.user("tom", "p", "guest").await;
    let wrong = basic("tom", "wrong-password");
    for i in 0..5 {
        let resp = r
            .req(Method::GET, "/v2/", &[("authorization", &wrong)], Body::empty())
            .await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // Locked: even the right password is refused until the lock ends.
    for auth in [wrong.clone(), tom.clone()] {
        let resp = r
            .req(Method::GET, "/v2/", &[("authorization", &auth)], Body::empty())
            .await;
        assert_eq!(resp.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", resp.body);
        assert_eq!(resp.code(), "TOOMANYREQUESTS");
        let wait: u64 = resp.header("retry-after").parse().unwrap();
        assert!((1..=30).contains(&wait), "{wait}");
    }
    // The token endpoint and the management API are throttled the same way.
    assert_eq!(r.token(&tom, &[]).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        r.api(Method::GET, "/users/current", &tom, Value::Null).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another user is not affected.
    let resp = r
        .req(
            Method::GET,
            "/v2/",
            &[("authorization", &basic("admin", ADMIN_PASSWORD))],
            Body::empty(),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    let events = r.audit("user=tom&action=login_throttled").await;
    assert_eq!(events.len(), 1, "{events:?}");
}

#[tokio::test]
async fn audit_records_logins_and_throttling_with_filters_and_pages() {
    let r = Reg::new().await;
    // The admin's own requests are logins too; read the log before locking admin out.
    let ghost = basic("ghost", "wrong-password");
    for _ in 0..5 {
        r.req(Method::GET, "/v2/", &[("authorization", &ghost)], Body::empty())
            .await;
    }
    let events = r.audit("user=ghost").await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["action"] == "login" && e["result"] == "failure")
            .count(),
        5
    );
    assert_eq!(events.iter().filter(|e| e["action"] == "login_throttled").count(), 1);
    assert!(
        events
            .iter()
            .all(|e| e["client"].is_string() && e["time"].as_str().unwrap().ends_with('Z'))
    );
    // Pages: newest first, `next` goes on.
    let first = r
        .admin(Method::GET, "/audit?user=ghost&limit=2", Value::Null)
        .await
        .json();
    let ids: Vec<u64> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] > ids[1]);
    let next = first["next"].as_u64().unwrap();
    let second = r
        .admin(
            Method::GET,
            &format!("/audit?user=ghost&limit=2&before={next}"),
            Value::Null,
        )
        .await
        .json();
    let ids2: Vec<u64> = second["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert!(ids2.iter().all(|i| *i < ids[1]), "{ids:?} then {ids2:?}");
    // Time range: nothing before 2001, everything since then.
    assert!(r.audit("user=ghost&until=2001-01-01T00:00:00Z").await.is_empty());
    assert_eq!(r.audit("user=ghost&since=978307200").await.len(), events.len());
    // Bad filters.
    for q in ["action=fly", "since=yesterday", "limit=x"] {
        let resp = r
            .api(
                Method::GET,
                &format!("/audit?{q}"),
                &basic("admin", ADMIN_PASSWORD),
                Value::Null,
            )
            .await;
        assert_eq!(resp.code(), "BAD_REQUEST", "{q}");
    }
    // Non-admins read only projects where they have read_audit.
    r.project("p", false).await;
    let guest = r.user("gwen", "p", "guest").await;
    let limited = r.user("lim", "p", "limited_guest").await;
    assert_eq!(
        r.api(Method::GET, "/audit?project=p", &guest, Value::Null).await.status,
        StatusCode::OK
    );
    assert_eq!(r.api(Method::GET, "/audit", &guest, Value::Null).await.code(), "DENIED");
    assert_eq!(
        r.api(Method::GET, "/audit?project=p", &limited, Value::Null)
            .await
            .code(),
        "DENIED"
    );
    assert_eq!(
        r.api(Method::GET, "/audit?project=p", "", Value::Null).await.code(),
        "UNAUTHORIZED"
    );
}

#[tokio::test]
async fn projects_names_visibility_and_deletion() {
    let r = Reg::new().await;
    let admin = basic("admin", ADMIN_PASSWORD);
    for bad in ["Payments", "a/b", "-x", "", "x_", "a..b", &"p".repeat(300)] {
        let resp = r.api(Method::POST, "/projects", &admin, json!({ "name": bad })).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(resp.code(), "NAME_INVALID", "{bad:?}");
    }
    let unknown_field = r
        .api(Method::POST, "/projects", &admin, json!({ "name": "x", "pub": true }))
        .await;
    assert_eq!(unknown_field.code(), "BAD_REQUEST");
    assert!(String::from_utf8_lossy(&unknown_field.body).contains("pub"));
    r.project("pay", false).await;
    assert_eq!(
        r.api(Method::POST, "/projects", &admin, json!({ "name": "pay" }))
            .await
            .code(),
        "CONFLICT"
    );
    // Pushing into a project that does not exist is denied, even for the admin; so is a
    // name outside any project.
    let push = r.push_as(&admin, "nothere/app", "v1").await;
    assert_eq!(push.code(), "DENIED");
    assert!(
        push.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
    assert_eq!(r.push_as(&admin, "alpine", "v1").await.code(), "DENIED");

    // A non-empty project is not deleted, and nothing in it is touched.
    r.push_as(&admin, "pay/api", "v1").await;
    let dev = r.user("dan", "pay", "developer").await;
    let del = r.api(Method::DELETE, "/projects/pay", &admin, Value::Null).await;
    assert_eq!(del.status, StatusCode::CONFLICT);
    assert!(del.json()["errors"][0]["message"].as_str().unwrap().contains("pay/api"));
    assert_eq!(
        r.req(Method::GET, "/v2/pay/api/manifests/v1", &[], Body::empty())
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        r.admin(Method::GET, "/projects/pay/members", Value::Null).await.json()[0]["user"],
        "dan"
    );
    assert_eq!(r.push_as(&dev, "pay/api", "v2").await.status, StatusCode::CREATED);
    // Emptied (v1 and v2 are the same manifest), it goes, with its members.
    let d = r.req(Method::GET, "/v2/pay/api/manifests/v1", &[], Body::empty()).await;
    let digest = d.header("docker-content-digest").to_owned();
    let gone = r
        .req(
            Method::DELETE,
            &format!("/v2/pay/api/manifests/{digest}"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(gone.status, StatusCode::ACCEPTED);
    r.admin(Method::DELETE, "/projects/pay", Value::Null).await;
    assert_eq!(
        r.api(Method::GET, "/projects/pay", &admin, Value::Null).await.code(),
        "NOT_FOUND"
    );
    // Recreated, it has no members from before.
    r.project("pay", false).await;
    assert_eq!(
        r.admin(Method::GET, "/projects/pay/members", Value::Null).await.json(),
        json!([])
    );
    assert_eq!(r.push_as(&dev, "pay/api", "v3").await.status, StatusCode::FORBIDDEN);

    // Visibility: anonymous pulls follow it.
    r.push_as(&admin, "pay/api", "v4").await;
    let anon = || {
        r.req(
            Method::GET,
            "/v2/pay/api/manifests/v4",
            &[("authorization", "")],
            Body::empty(),
        )
    };
    assert_eq!(anon().await.status, StatusCode::UNAUTHORIZED);
    r.admin(Method::PATCH, "/projects/pay", json!({ "public": true })).await;
    assert_eq!(anon().await.status, StatusCode::OK);
    let listed = r.api(Method::GET, "/projects", "", Value::Null).await.json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["library", "pay"]);
}

#[tokio::test]
async fn mount_needs_pull_on_the_source_and_catalog_is_filtered() {
    let r = Reg::new().await;
    let admin = basic("admin", ADMIN_PASSWORD);
    r.project("secret", false).await;
    r.project("mine", false).await;
    r.push_as(&admin, "secret/app", "v1").await;
    let blob = Digest::sha256_of(b"layer of secret/app");
    let dev = r.user("mia", "mine", "developer").await;
    let mount = r
        .req(
            Method::POST,
            &format!("/v2/mine/app/blobs/uploads/?mount={blob}&from=secret/app"),
            &[("authorization", &dev)],
            Body::empty(),
        )
        .await;
    assert_eq!(
        mount.status,
        StatusCode::ACCEPTED,
        "no pull on the source: a fresh session"
    );
    assert!(mount.header("location").starts_with("/v2/mine/app/blobs/uploads/"));
    let head = r
        .req(
            Method::HEAD,
            &format!("/v2/mine/app/blobs/{blob}"),
            &[("authorization", &dev)],
            Body::empty(),
        )
        .await;
    assert_eq!(head.status, StatusCode::NOT_FOUND, "the blob was not linked");
    // Once mia may pull from the source, the same mount links it.
    r.admin(
        Method::POST,
        "/projects/secret/members",
        json!({ "user": "mia", "role": "limited_guest" }),
    )
    .await;
    let mount = r
        .req(
            Method::POST,
            &format!("/v2/mine/app/blobs/uploads/?mount={blob}&from=secret/app"),
            &[("authorization", &dev)],
            Body::empty(),
        )
        .await;
    assert_eq!(mount.status, StatusCode::CREATED);

    // The catalog: each caller sees what they may list.
    r.push_as(&admin, "library/pub", "v1").await;
    r.push_as(&admin, "mine/app", "v1").await;
    let catalog = |auth: String| {
        let r = &r;
        async move {
            let c = r
                .req(Method::GET, "/v2/_catalog", &[("authorization", &auth)], Body::empty())
                .await;
            assert_eq!(c.status, StatusCode::OK, "{:?}", c.body);
            c.json()["repositories"].clone()
        }
    };
    assert_eq!(catalog(String::new()).await, json!(["library/pub"]));
    assert_eq!(
        catalog(dev.clone()).await,
        json!(["library/pub", "mine/app", "secret/app"])
    );
    let other = r.user("oz", "library", "guest").await;
    assert_eq!(catalog(other).await, json!(["library/pub"]));
    assert_eq!(
        catalog(admin.clone()).await,
        json!(["library/pub", "mine/app", "secret/app"])
    );
    // Paging over a filtered catalog.
    let page = r
        .req(Method::GET, "/v2/_catalog?n=1", &[("authorization", "")], Body::empty())
        .await;
    assert_eq!(page.json()["repositories"], json!(["library/pub"]));
    // A token without the catalog scope is sent back for one.
    let t = r.bearer(&admin, &["repository:library/pub:pull"]).await;
    let c = r
        .req(Method::GET, "/v2/_catalog", &[("authorization", &t)], Body::empty())
        .await;
    assert_unauthorized(&c, "catalog without the catalog scope");
    assert!(c.header("www-authenticate").contains("registry:catalog:*"));
    let t = r.bearer(&dev, &["registry:catalog:*"]).await;
    assert_eq!(catalog(t).await, json!(["library/pub", "mine/app", "secret/app"]));
}

#[tokio::test]
async fn users_and_passwords() {
    let r = Reg::new().await;
    let admin = basic("admin", ADMIN_PASSWORD);
    r.project("p", false).await;
    let bob = r.user("bob", "p", "guest").await;
    assert_eq!(
        r.api(Method::GET, "/users/current", &bob, Value::Null).await.json(),
        json!({ "name": "bob", "kind": "user", "admin": false })
    );
    // Only admins manage users.
    assert_eq!(r.api(Method::GET, "/users", &bob, Value::Null).await.code(), "DENIED");
    let sneaky = r
        .api(
            Method::POST,
            "/users",
            &bob,
            json!({ "name": "eve", "password": "12345678", "admin": true }),
        )
        .await;
    assert_eq!(sneaky.code(), "DENIED");
    assert_eq!(
        r.api(
            Method::POST,
            "/users",
            &admin,
            json!({ "name": "bad name", "password": "12345678" })
        )
        .await
        .code(),
        "NAME_INVALID"
    );
    assert_eq!(
        r.api(
            Method::POST,
            "/users",
            &admin,
            json!({ "name": "short", "password": "1234" })
        )
        .await
        .code(),
        "BAD_REQUEST"
    );
    // Changing one's own password needs the old one; the old one stops working at once.
    let change = |auth: String, body: Value| {
        let r = &r;
        async move { r.api(Method::PUT, "/users/bob/password", &auth, body).await }
    };
    assert_eq!(
        change(bob.clone(), json!({ "password": "new-password-1" }))
            .await
            .code(),
        "BAD_REQUEST"
    );
    assert_eq!(
        change(
            bob.clone(),
            json!({ "password": "new-password-1", "old_password": "bob-password" })
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_unauthorized(
        &r.req(Method::GET, "/v2/", &[("authorization", &bob)], Body::empty())
            .await,
        "old password",
    );
    let bob = basic("bob", "new-password-1");
    assert_eq!(
        r.req(Method::GET, "/v2/", &[("authorization", &bob)], Body::empty())
            .await
            .status,
        StatusCode::OK
    );
    // Someone else's: denied; the admin cannot be deleted.
    let other = r.user("ann", "p", "guest").await;
    assert_eq!(
        change(
            other,
            json!({ "password": "x-password-2", "old_password": "ann-password" })
        )
        .await
        .code(),
        "DENIED"
    );
    assert_eq!(
        r.api(Method::DELETE, "/users/admin", &admin, Value::Null).await.code(),
        "DENIED"
    );
    assert_eq!(
        r.api(Method::DELETE, "/users/nobody", &admin, Value::Null).await.code(),
        "NOT_FOUND"
    );
    // Members: unknown user or role.
    assert_eq!(
        r.api(
            Method::POST,
            "/projects/p/members",
            &admin,
            json!({ "user": "nobody", "role": "guest" })
        )
        .await
        .code(),
        "NOT_FOUND"
    );
    let role = r
        .api(
            Method::POST,
            "/projects/p/members",
            &admin,
            json!({ "user": "bob", "role": "owner" }),
        )
        .await;
    assert_eq!(role.code(), "BAD_REQUEST");
    assert!(String::from_utf8_lossy(&role.body).contains("project_admin"));
    let events = r.audit("").await;
    for action in ["user_create", "member_set", "password_change", "project_create"] {
        assert!(events.iter().any(|e| e["action"] == action), "{action} missing");
    }
    assert_eq!(
        r.api(Method::GET, "/no/such/endpoint", &admin, Value::Null)
            .await
            .code(),
        "NOT_FOUND"
    );
    let doc = r.api(Method::GET, "/openapi.json", "", Value::Null).await;
    assert_eq!(doc.json()["openapi"], "3.1.0");
}

#[tokio::test]
async fn first_start_creates_admin_and_library_once() {
    let dir = tempfile::tempdir().unwrap();
    let registry = pier_registry::Registry::open(dir.path(), pier_registry::AuthConfig::default())
        .await
        .unwrap();
    let file = dir.path().join("initial-admin-password");
    let password = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(password.len() >= 20, "{password}");
    let subject = registry.auth().login("admin", &password, "test").await.unwrap();
    assert!(subject.is_admin());
    let library = registry.auth().access().project("library").await.unwrap().unwrap();
    assert!(library.public);
    // The stored hash is argon2id, not the password.
    let user = registry.auth().access().user("admin").await.unwrap().unwrap();
    assert!(user.password_hash.starts_with("$argon2id$") && !user.password_hash.contains(&password));
    // A deleted library is not recreated by a later start.
    registry.auth().access().delete_project("library").await.unwrap();
    assert!(!registry.auth().access().bootstrap(&user, &[library]).await.unwrap());
    // A too-short PIER_ADMIN_PASSWORD is refused with a clear error.
    let other = tempfile::tempdir().unwrap();
    let config = pier_registry::AuthConfig {
        admin_password: Some("short".into()),
        ..Default::default()
    };
    let e = pier_registry::Registry::open(other.path(), config)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("PIER_ADMIN_PASSWORD"), "{e}");
}
