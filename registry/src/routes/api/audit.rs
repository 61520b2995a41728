//! `GET /audit`: the audit log, filtered and paged.

use axum::extract::State;
use axum::http::Uri;

use super::{deny, ok, parse_time, project_for};
use crate::auth::{Action, AuthError, Caller, Subject};
use crate::limits::{AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX, AUDIT_SCAN_LIMIT};
use crate::management;
use crate::routes::{App, Result, param, query as query_pairs};
use crate::storage::{AuditAction, AuditEvent, AuditQuery};
use pier_oci::time::rfc3339;

fn event(id: u64, e: AuditEvent) -> management::AuditEvent {
    management::AuditEvent {
        action: e.action.into(),
        actor: e.actor,
        actor_kind: e.actor_kind.into(),
        client: e.client,
        detail: e.detail,
        digest: e.digest,
        id,
        project: e.project,
        reference: e.reference,
        repository: e.repository,
        result: e.result.into(),
        target: e.target,
        time: rfc3339(e.time),
    }
}

pub(super) async fn query(State(app): State<App>, caller: Caller, uri: Uri) -> Result {
    if matches!(caller.subject, Subject::Anonymous) {
        return Err(deny(&caller, String::new()));
    }
    let q = query_pairs(&uri);
    let text = |k: &str| param(&q, k).filter(|v| !v.is_empty()).map(str::to_owned);
    let project = text("project");
    if !caller.subject.is_admin() {
        let Some(p) = &project else {
            return Err(deny(
                &caller,
                "name a project (?project=): only system admins read the whole log".into(),
            ));
        };
        project_for(&app, &caller, p, Action::ReadAudit).await?;
    }
    let action = match text("action") {
        None => None,
        Some(a) => Some(
            serde_json::from_value::<AuditAction>(serde_json::Value::String(a.clone()))
                .map_err(|_| AuthError::BadRequest(format!("action: unknown audit action {a:?}")))?,
        ),
    };
    let number = |k: &str| -> std::result::Result<Option<u64>, AuthError> {
        text(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| AuthError::BadRequest(format!("{k}: {v:?} is not a number")))
            })
            .transpose()
    };
    let limit = number("limit")?.map_or(AUDIT_PAGE_DEFAULT, |l| (l as usize).clamp(1, AUDIT_PAGE_MAX));
    let query = AuditQuery {
        actor: text("user"),
        project,
        action,
        since: text("since").map(|v| parse_time("since", &v)).transpose()?,
        until: text("until").map(|v| parse_time("until", &v)).transpose()?,
        before: number("before")?,
        limit,
    };
    // Everything recorded before this query is part of its answer.
    app.auth.audit().sync().await;
    let page = app.auth.audit().log().query(&query, AUDIT_SCAN_LIMIT).await?;
    ok(&management::AuditPage {
        events: page.events.into_iter().map(|(id, e)| event(id, e)).collect(),
        next: page.next,
    })
}
