//! The extension point: a router of another crate mounted beside the registry's own,
//! authorised by actions it registered in the permission matrix.

mod common;

use std::sync::OnceLock;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{ADMIN_PASSWORD, Reg, basic};
use pier_registry::auth::{Action, ActionSpec, Grant, RegisterError, Role};
use pier_registry::config::{MetadataConfig, StorageConfig};
use pier_registry::{ApiError, Context, Registry, RegistryConfig};
use serde_json::{Value, json};

/// The actions an app store would add: every role reads charts (anyone in a public
/// project), the roles that push images upload them; robots can be given both.
fn chart_actions() -> (Action, Action) {
    static ACTIONS: OnceLock<(Action, Action)> = OnceLock::new();
    *ACTIONS.get_or_init(|| {
        let read = Action::register(ActionSpec {
            name: "chart_read",
            roles: Role::ALL,
            public: true,
            robots: true,
        })
        .unwrap();
        let write = Action::register(ActionSpec {
            name: "chart_write",
            roles: &[Role::ProjectAdmin, Role::Maintainer, Role::Developer],
            public: false,
            robots: true,
        })
        .unwrap();
        (read, write)
    })
}

/// A chart listing that answers with the project's repositories, read through the
/// registry's own operations, and an upload that only checks the right to write.
fn chart_routes(ctx: Context) -> Router {
    async fn list(State(ctx): State<Context>, Path(project): Path<String>, req: Request) -> Response {
        let (parts, _) = req.into_parts();
        let run = async {
            let caller = ctx.caller(&parts).await?;
            ctx.authorize(&caller, &project, chart_actions().0).await?;
            let repos = ctx.service.project_repositories(&project).await?;
            let names: Vec<String> = repos.iter().map(ToString::to_string).collect();
            let body = json!({ "project": project, "repositories": names }).to_string();
            Ok::<_, ApiError>(([("content-type", "application/json")], body).into_response())
        };
        run.await.unwrap_or_else(IntoResponse::into_response)
    }
    async fn upload(State(ctx): State<Context>, Path(project): Path<String>, req: Request) -> Response {
        let (parts, _) = req.into_parts();
        let run = async {
            let caller = ctx.caller(&parts).await?;
            ctx.authorize(&caller, &project, chart_actions().1).await?;
            Ok::<_, ApiError>(StatusCode::CREATED.into_response())
        };
        run.await.unwrap_or_else(IntoResponse::into_response)
    }
    Router::new()
        .route("/api/chartrepo/{project}/charts", get(list).post(upload))
        .with_state(ctx)
}

/// A registry built from its configuration with every store in memory, with the chart
/// routes mounted.
async fn registry_with_charts() -> Reg {
    chart_actions();
    let dir = tempfile::tempdir().unwrap();
    let mut config = RegistryConfig {
        data_dir: dir.path().to_path_buf(),
        storage: StorageConfig::Memory {},
        metadata: MetadataConfig::Memory {},
        ..Default::default()
    };
    config.auth.admin_password = Some(ADMIN_PASSWORD.into());
    let registry = Registry::open_config(&config).await.unwrap();
    let registry = registry.clone().mount(chart_routes(registry.context()));
    Reg::with_registry(registry, dir).await
}

async fn call(reg: &Reg, method: Method, project: &str, auth: &str) -> (StatusCode, Value, String) {
    let r = reg
        .req(
            method,
            &format!("/api/chartrepo/{project}/charts"),
            &[("authorization", auth)],
            axum::body::Body::empty(),
        )
        .await;
    let challenge = r.header("www-authenticate").to_owned();
    let body = if r.body.is_empty() { Value::Null } else { r.json() };
    (r.status, body, challenge)
}

#[tokio::test]
async fn a_mounted_router_is_authorised_by_registered_actions() {
    let reg = registry_with_charts().await;
    reg.project("apps", false).await;
    reg.project("open", true).await;
    reg.push_image("web", "v1", "x").await; // t/web, so project t has a repository
    let dev = reg.user("dev", "apps", "developer").await;
    let guest = reg.user("guest", "apps", "guest").await;
    let admin = basic("admin", ADMIN_PASSWORD);

    // Developers write and read; guests read only.
    assert_eq!(call(&reg, Method::POST, "apps", &dev).await.0, StatusCode::CREATED);
    assert_eq!(call(&reg, Method::GET, "apps", &guest).await.0, StatusCode::OK);
    let (status, body, _) = call(&reg, Method::POST, "apps", &guest).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["errors"][0]["code"], "DENIED", "{body}");
    assert!(
        body["errors"][0]["message"].as_str().unwrap().contains("chart_write"),
        "{body}"
    );

    // Anonymous callers: asked for credentials in a private project, let read a public one.
    let (status, _, challenge) = call(&reg, Method::GET, "apps", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.starts_with("Basic"), "{challenge}");
    assert_eq!(call(&reg, Method::GET, "open", "").await.0, StatusCode::OK);
    assert_eq!(call(&reg, Method::POST, "open", "").await.0, StatusCode::UNAUTHORIZED);

    // The route reads through the registry's operations.
    let (status, body, _) = call(&reg, Method::GET, "t", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["repositories"], json!(["t/web"]));

    // Unknown and invalid projects.
    let (status, body, _) = call(&reg, Method::GET, "nope", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body, _) = call(&reg, Method::GET, "Bad..Name", &admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["code"], "NAME_INVALID", "{body}");

    // Robots can be given the new actions through the management API, and only those
    // they were given count.
    let (writer, secret) = reg.robot("apps", "charts", &["chart_write"]).await;
    assert_eq!(
        call(&reg, Method::POST, "apps", &basic(&writer, &secret)).await.0,
        StatusCode::CREATED
    );
    let (puller, secret) = reg.robot("apps", "images", &["pull"]).await;
    assert_eq!(
        call(&reg, Method::POST, "apps", &basic(&puller, &secret)).await.0,
        StatusCode::FORBIDDEN
    );

    // The registry's own routes still answer beside the mounted ones.
    assert_eq!(reg.get("/v2/t/web/tags/list").await.status, StatusCode::OK);
    // Nothing but the token signing key went to disk: the stores are the in-memory ones.
    assert!(!reg.dir.path().join("meta").exists() && !reg.dir.path().join("blobs").exists());
}

#[test]
fn registered_actions_join_the_matrix() {
    let (read, write) = chart_actions();
    assert_eq!(read.name(), "chart_read");
    assert_eq!("chart_write".parse::<Action>().unwrap(), write);
    assert!(Action::all().contains(&write));
    assert!(Role::LimitedGuest.allows(read) && !Role::LimitedGuest.allows(write));
    assert!(Role::Developer.allows(write) && Role::ProjectAdmin.allows(write));
    assert!(Grant::public().has(read) && !Grant::public().has(write));
    assert!(Grant::robot_grantable().has(write));
    assert!(Grant::all().has(write));
    // The built-in matrix is unchanged.
    assert!(!Role::Developer.allows(Action::DeleteManifest));
    assert!(!Grant::public().has(Action::Push));

    // Registering the same action again is harmless; a clash is refused.
    let same = ActionSpec {
        name: "chart_read",
        roles: Role::ALL,
        public: true,
        robots: true,
    };
    assert_eq!(Action::register(same.clone()), Ok(read));
    let other = ActionSpec { public: false, ..same };
    assert_eq!(Action::register(other), Err(RegisterError::Taken("chart_read")));
    let builtin = ActionSpec {
        name: "push",
        roles: &[],
        public: false,
        robots: false,
    };
    assert_eq!(Action::register(builtin), Err(RegisterError::Taken("push")));
    let bad = ActionSpec {
        name: "Chart-Read",
        roles: &[],
        public: false,
        robots: false,
    };
    assert_eq!(Action::register(bad), Err(RegisterError::BadName("Chart-Read")));
}
