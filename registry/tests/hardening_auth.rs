//! Regression tests for the access-control findings of the security review:
//! each test is named after its finding and reproduces the attack in-process, bounded in
//! count, with the client's address set as a real connection would set it.

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use common::{ADMIN_PASSWORD, Reg, Resp, basic};
use pier_registry::limits::{
    AUDIT_BURST, AUDIT_DETAIL_MAX, AUDIT_FIELD_MAX, MAX_FAILED_LOGINS, MAX_SCOPES, PASSWORD_CHECK_BURST,
};
use pier_registry::{AuthConfig, Registry, RegistryConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A registry with these access-control settings (admin password as in every test).
async fn registry(auth: AuthConfig) -> Reg {
    let dir = tempfile::tempdir().unwrap();
    let auth = AuthConfig {
        admin_password: Some(ADMIN_PASSWORD.into()),
        ..auth
    };
    let registry = Registry::open_with(
        dir.path(),
        RegistryConfig {
            auth,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    Reg {
        router: registry.router(),
        registry,
        dir,
    }
}

/// A request from `peer` (the TCP peer address a connection would give).
async fn from(r: &Reg, peer: &str, method: Method, uri: &str, headers: &[(&str, &str)], body: Body) -> Resp {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b.body(body).unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    let resp = r.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    Resp { status, headers, body }
}

async fn v2_as(r: &Reg, peer: &str, auth: &str) -> Resp {
    from(r, peer, Method::GET, "/v2/", &[("authorization", auth)], Body::empty()).await
}

async fn admin_api(r: &Reg, method: Method, path: &str, body: Value) -> Resp {
    let resp = from(
        r,
        "127.0.0.1:1",
        method,
        &format!("/api/v1{path}"),
        &[
            ("authorization", &basic("admin", ADMIN_PASSWORD)),
            ("content-type", "application/json"),
        ],
        if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        },
    )
    .await;
    assert!(resp.status.is_success(), "{path}: {} {:?}", resp.status, resp.body);
    resp
}

/// Every audit event (all pages), after the queue is flushed.
async fn audit(r: &Reg, query: &str) -> Vec<Value> {
    r.registry.flush().await.unwrap();
    let mut out = Vec::new();
    let mut before = String::new();
    for _ in 0..1000 {
        let page = admin_api(
            r,
            Method::GET,
            &format!("/audit?limit=1000&{query}{before}"),
            Value::Null,
        )
        .await
        .json();
        out.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next"].as_u64() {
            Some(n) => before = format!("&before={n}"),
            None => return out,
        }
    }
    panic!("audit pages did not end");
}

fn audit_bytes(r: &Reg) -> u64 {
    std::fs::read_dir(r.dir.path().join("audit"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

async fn create_user(r: &Reg, name: &str, password: &str) {
    admin_api(r, Method::POST, "/users", json!({ "name": name, "password": password })).await;
}

#[tokio::test]
async fn finding_1_robot_login_flood_does_not_lift_a_lock() {
    let r = registry(AuthConfig::default()).await;
    let attacker = "203.0.113.9:4000";
    for _ in 0..MAX_FAILED_LOGINS {
        let resp = v2_as(&r, attacker, &basic("admin", "wrong-password")).await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        v2_as(&r, attacker, &basic("admin", ADMIN_PASSWORD)).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The flood of the review: 10 400 failed robot logins with fresh names (no argon2).
    for i in 0..10_400 {
        let resp = v2_as(&r, attacker, &basic(&format!("robot$flood{i}+r"), "x")).await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "robot login {i}");
    }
    let resp = v2_as(&r, attacker, &basic("admin", ADMIN_PASSWORD)).await;
    assert_eq!(resp.status, StatusCode::TOO_MANY_REQUESTS, "the flood lifted the lock");
    // Another address is not locked.
    assert_eq!(
        v2_as(&r, "203.0.113.10:4000", &basic("admin", ADMIN_PASSWORD))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn finding_2_over_long_names_and_secrets_are_refused_before_anything_keeps_them() {
    let r = registry(AuthConfig::default()).await;
    let long = "a".repeat(125 * 1024);
    let before = audit_bytes(&r);
    for i in 0..200 {
        let name = format!("robot${long}{i}+{long}");
        let resp = v2_as(&r, "198.51.100.2:1", &basic(&name, "x")).await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{:?}", resp.body);
        assert_eq!(resp.code(), "UNAUTHORIZED");
    }
    // Names that break the grammars of user and robot names, and over-long secrets.
    for (name, secret) in [
        ("a".repeat(65), "password".to_owned()),
        ("bad name".into(), "password".into()),
        ("robot$noplus".into(), "x".into()),
        ("robot$UPPER+ci".into(), "x".into()),
        ("admin".into(), "p".repeat(2000)),
    ] {
        let resp = v2_as(&r, "198.51.100.2:1", &basic(&name, &secret)).await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{name:.20}");
    }
    r.registry.flush().await.unwrap();
    let grown = audit_bytes(&r) - before;
    // The old code wrote every 250 KB name into the log (50 MB here).
    assert!(grown < 200 * 2048, "audit log grew {grown} bytes");
    for e in audit(&r, "action=login").await {
        assert!(e["actor"].as_str().unwrap().len() <= AUDIT_FIELD_MAX, "{e}");
    }
    // The right password still works after all that (admin was never the name used).
    assert_eq!(
        v2_as(&r, "198.51.100.2:1", &basic("admin", ADMIN_PASSWORD))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn finding_3_audit_events_are_bounded_and_floods_from_one_address_are_counted() {
    let r = registry(AuthConfig::default()).await;
    let scope = |i: usize| format!("repository:library/{}{i}:pull", "x".repeat(200));
    let query: Vec<String> = (0..MAX_SCOPES).map(|i| format!("scope={}", scope(i))).collect();
    let uri = format!("/service/token?service=pier&{}", query.join("&"));
    let before = audit_bytes(&r);
    let requests = 300;
    for _ in 0..requests {
        let resp = from(&r, "198.51.100.3:1", Method::GET, &uri, &[], Body::empty()).await;
        assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    }
    // More scopes than allowed: refused, not logged whole.
    let too_many: Vec<String> = (0..=MAX_SCOPES).map(|i| format!("scope={}", scope(i))).collect();
    let resp = from(
        &r,
        "198.51.100.3:1",
        Method::GET,
        &format!("/service/token?service=pier&{}", too_many.join("&")),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    let events: Vec<Value> = audit(&r, "action=token")
        .await
        .into_iter()
        .filter(|e| e["client"] == "198.51.100.3")
        .collect();
    // AUDIT_BURST one by one, the rest in one summary with the count.
    assert_eq!(events.len(), AUDIT_BURST as usize + 1, "{events:#?}");
    let summary = events
        .iter()
        .find(|e| e["detail"].as_str().unwrap().contains("more token events"))
        .expect("a summary event");
    let count = requests - AUDIT_BURST as usize;
    assert!(
        summary["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{count} more")),
        "{summary}"
    );
    for e in &events {
        assert!(e["detail"].as_str().unwrap().len() <= AUDIT_DETAIL_MAX, "{e}");
    }
    let grown = audit_bytes(&r) - before;
    // The old code wrote ~17 KB per request (5 MB here).
    assert!(grown < 64 * 1024, "audit log grew {grown} bytes");
}

#[tokio::test]
async fn finding_3_audit_log_has_a_size_cap_and_records_what_it_dropped() {
    let cap = 256 * 1024;
    let r = registry(AuthConfig {
        audit_max_bytes: cap,
        ..Default::default()
    })
    .await;
    admin_api(&r, Method::POST, "/projects", json!({ "name": "t", "public": true })).await;
    r.push_image("app", "1.0", "cap").await;
    // Pulls by an account are logged one by one: ~300 bytes each, 4 000 of them is 4× the cap.
    for i in 0..4000 {
        let resp = from(
            &r,
            "198.51.100.4:1",
            Method::GET,
            "/v2/t/app/manifests/1.0",
            &[("authorization", &basic("admin", ADMIN_PASSWORD))],
            Body::empty(),
        )
        .await;
        assert_eq!(resp.status, StatusCode::OK, "pull {i}");
        if i % 500 == 0 {
            // Let the writer run its size check (at most once a second).
            r.registry.flush().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
    }
    r.registry.flush().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // One more event triggers the check after the sleep.
    r.get("/v2/t/app/manifests/1.0").await;
    r.registry.flush().await.unwrap();
    let size = audit_bytes(&r);
    let segment = pier_registry::storage::FileAuditLog::segment_bytes_for(cap);
    assert!(size <= cap + 2 * segment, "audit log holds {size} bytes, cap {cap}");
    let purged = audit(&r, "action=audit_purged").await;
    assert!(!purged.is_empty(), "no record of the dropped events");
    assert!(
        purged[0]["detail"].as_str().unwrap().contains("oldest events"),
        "{}",
        purged[0]
    );
}

#[tokio::test]
async fn finding_6_password_checks_are_rate_limited_per_address_and_others_are_served() {
    let r = registry(AuthConfig::default()).await;
    create_user(&r, "dev1", "dev1-password").await;
    // Warm the admin's cached login from the flooding address.
    assert_eq!(
        v2_as(&r, "192.0.2.50:1", &basic("admin", ADMIN_PASSWORD)).await.status,
        StatusCode::OK
    );
    let mut statuses = std::collections::BTreeMap::new();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let router = r.router.clone();
        tasks.push(tokio::spawn(async move {
            let mut req = Request::get("/v2/")
                .header("authorization", basic(&format!("guess{i}"), "wrong-password"))
                .body(Body::empty())
                .unwrap();
            req.extensions_mut()
                .insert(ConnectInfo("192.0.2.50:2".parse::<SocketAddr>().unwrap()));
            let resp = router.oneshot(req).await.unwrap();
            (resp.status(), resp.headers().get("retry-after").cloned())
        }));
    }
    for t in tasks {
        let (status, retry) = t.await.unwrap();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let secs: u64 = retry.expect("Retry-After").to_str().unwrap().parse().unwrap();
            assert!((1..=2).contains(&secs), "{secs}");
        }
        *statuses.entry(status.as_u16()).or_insert(0) += 1;
    }
    let checked = statuses.get(&401).copied().unwrap_or(0);
    assert!(
        checked <= PASSWORD_CHECK_BURST as usize + 2,
        "{checked} password checks ran from one address: {statuses:?}"
    );
    assert!(statuses.get(&429).copied().unwrap_or(0) > 0, "{statuses:?}");
    // The flooding address's cached login is not affected; a real login elsewhere is checked.
    assert_eq!(
        v2_as(&r, "192.0.2.50:1", &basic("admin", ADMIN_PASSWORD)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        v2_as(&r, "192.0.2.51:1", &basic("dev1", "dev1-password")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn finding_6_right_passwords_do_not_use_up_the_address_budget() {
    let r = registry(AuthConfig::default()).await;
    let n = PASSWORD_CHECK_BURST as usize * 2;
    for i in 0..n {
        create_user(&r, &format!("ci{i}"), &format!("ci{i}-password")).await;
    }
    // Many different accounts logging in from one CI host: every one is an argon2 check.
    for i in 0..n {
        let resp = v2_as(
            &r,
            "192.0.2.60:1",
            &basic(&format!("ci{i}"), &format!("ci{i}-password")),
        )
        .await;
        assert_eq!(resp.status, StatusCode::OK, "login {i}: {:?}", resp.body);
    }
}

#[tokio::test]
async fn finding_8_trusted_proxies_name_the_client_and_nobody_else_does() {
    let r = registry(AuthConfig {
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..Default::default()
    })
    .await;
    let proxy = "127.0.0.1:443";
    let lock = |client: &'static str| {
        let r = &r;
        async move {
            for _ in 0..MAX_FAILED_LOGINS {
                let resp = from(
                    r,
                    proxy,
                    Method::GET,
                    "/v2/",
                    &[
                        ("authorization", &basic("admin", "wrong-password")),
                        ("x-forwarded-for", client),
                    ],
                    Body::empty(),
                )
                .await;
                assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
            }
        }
    };
    lock("203.0.113.20").await;
    let through = |client: &'static str, header: &'static str| {
        let r = &r;
        async move {
            from(
                r,
                proxy,
                Method::GET,
                "/v2/",
                &[("authorization", &basic("admin", ADMIN_PASSWORD)), (header, client)],
                Body::empty(),
            )
            .await
            .status
        }
    };
    // The attacker's address is locked; everyone else behind the proxy is not.
    assert_eq!(
        through("203.0.113.20", "x-forwarded-for").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(through("203.0.113.21", "x-forwarded-for").await, StatusCode::OK);
    assert_eq!(through("for=203.0.113.22", "forwarded").await, StatusCode::OK);
    // A client cannot pose as another by prepending to the chain: the proxy appends the
    // real address last, and that is the one believed.
    assert_eq!(
        through("203.0.113.21, 203.0.113.20", "x-forwarded-for").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The audit log names the real client.
    let failures = audit(&r, "user=admin&action=login").await;
    assert!(failures.iter().any(|e| e["client"] == "203.0.113.20"), "{failures:#?}");

    // From an address that is not a trusted proxy, X-Forwarded-For is ignored.
    let stranger = "198.51.100.30:1";
    for i in 0..MAX_FAILED_LOGINS {
        let resp = from(
            &r,
            stranger,
            Method::GET,
            "/v2/",
            &[
                ("authorization", &basic("admin", "wrong-password")),
                ("x-forwarded-for", &format!("192.0.2.{i}")),
            ],
            Body::empty(),
        )
        .await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    }
    let resp = from(
        &r,
        stranger,
        Method::GET,
        "/v2/",
        &[
            ("authorization", &basic("admin", ADMIN_PASSWORD)),
            ("x-forwarded-for", "192.0.2.99"),
        ],
        Body::empty(),
    )
    .await;
    assert_eq!(resp.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn finding_8_robots_have_no_lockout() {
    let r = registry(AuthConfig::default()).await;
    admin_api(&r, Method::POST, "/projects", json!({ "name": "ci", "public": false })).await;
    let robot = admin_api(
        &r,
        Method::POST,
        "/projects/ci/robots",
        json!({ "name": "build", "permissions": ["pull", "push"] }),
    )
    .await
    .json();
    let (name, secret) = (robot["name"].as_str().unwrap(), robot["secret"].as_str().unwrap());
    for _ in 0..MAX_FAILED_LOGINS * 4 {
        assert_eq!(
            v2_as(&r, "198.51.100.40:1", &basic(name, "not-the-secret"))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        v2_as(&r, "198.51.100.40:1", &basic(name, secret)).await.status,
        StatusCode::OK
    );
}

async fn token_for(r: &Reg, auth: &str) -> String {
    let resp = from(
        r,
        "198.51.100.50:1",
        Method::GET,
        "/service/token?service=pier&scope=repository:p/app:pull",
        &[("authorization", auth)],
        Body::empty(),
    )
    .await;
    assert_eq!(resp.status, StatusCode::OK, "{:?}", resp.body);
    format!("Bearer {}", resp.json()["token"].as_str().unwrap())
}

#[tokio::test]
async fn finding_12_tokens_die_with_a_password_change_or_a_rotated_secret() {
    let r = registry(AuthConfig::default()).await;
    admin_api(&r, Method::POST, "/projects", json!({ "name": "p", "public": false })).await;
    create_user(&r, "carol", "carol-password").await;
    admin_api(
        &r,
        Method::POST,
        "/projects/p/members",
        json!({ "user": "carol", "role": "developer" }),
    )
    .await;
    let token = token_for(&r, &basic("carol", "carol-password")).await;
    let tags = |auth: String| {
        let r = &r;
        async move {
            from(
                r,
                "198.51.100.50:1",
                Method::GET,
                "/v2/p/app/tags/list",
                &[("authorization", &auth)],
                Body::empty(),
            )
            .await
            .status
        }
    };
    // Unknown repository, but authorised: 404, not 401.
    assert_eq!(tags(token.clone()).await, StatusCode::NOT_FOUND);
    admin_api(
        &r,
        Method::PUT,
        "/users/carol/password",
        json!({ "password": "carol-new-password" }),
    )
    .await;
    assert_eq!(tags(token).await, StatusCode::UNAUTHORIZED);
    let fresh = token_for(&r, &basic("carol", "carol-new-password")).await;
    assert_eq!(tags(fresh).await, StatusCode::NOT_FOUND);

    let robot = admin_api(
        &r,
        Method::POST,
        "/projects/p/robots",
        json!({ "name": "ci", "permissions": ["pull"] }),
    )
    .await
    .json();
    let name = robot["name"].as_str().unwrap().to_owned();
    let token = token_for(&r, &basic(&name, robot["secret"].as_str().unwrap())).await;
    assert_eq!(tags(token.clone()).await, StatusCode::NOT_FOUND);
    let rotated = admin_api(&r, Method::POST, "/projects/p/robots/ci/rotate", Value::Null)
        .await
        .json();
    assert_eq!(tags(token).await, StatusCode::UNAUTHORIZED);
    let fresh = token_for(&r, &basic(&name, rotated["secret"].as_str().unwrap())).await;
    assert_eq!(tags(fresh).await, StatusCode::NOT_FOUND);
}
