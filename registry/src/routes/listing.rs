//! Listings: tags, the catalog and referrers.

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use pier_oci::{Digest, ErrorCode, RepoName, media};

use std::collections::HashMap;

use super::{App, Result, param, query};
use crate::auth::{Action, Caller};
use crate::error::ApiError;
use crate::limits::MAX_PAGE;

/// `n` and `last` of a paginated listing. `n` absent means "as many as allowed".
fn page(uri: &Uri) -> Result<(usize, Option<String>)> {
    let q = query(uri);
    let n = match param(&q, "n") {
        None => MAX_PAGE,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| {
                ApiError::code(ErrorCode::Unsupported)
                    .status(StatusCode::BAD_REQUEST)
                    .message(format!("n must be a non-negative integer, not {v:?}"))
            })?
            .min(MAX_PAGE),
    };
    Ok((n, param(&q, "last").map(str::to_owned)))
}

/// A JSON answer, with an RFC 5988 `Link` to the next page when the page was full.
fn paged_json(body: serde_json::Value, path: &str, n: usize, items: &[String]) -> Response {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if n > 0
        && items.len() == n
        && let Some(last) = items.last()
    {
        let enc = percent_encoding::utf8_percent_encode(last, percent_encoding::NON_ALPHANUMERIC);
        if let Ok(v) = HeaderValue::from_str(&format!("<{path}?n={n}&last={enc}>; rel=\"next\"")) {
            h.insert(header::LINK, v);
        }
    }
    (h, body.to_string()).into_response()
}

pub(super) async fn tags(app: &App, name: &RepoName, uri: &Uri) -> Result {
    let (n, last) = page(uri)?;
    let tags = app.service.tags(name, last.as_deref(), n).await?;
    let body = serde_json::json!({ "name": name.as_str(), "tags": tags });
    Ok(paged_json(body, &format!("/v2/{name}/tags/list"), n, &tags))
}

/// The catalog holds only repositories of projects where the caller has `list_catalog`:
/// the store is read in pages and filtered until the caller's page is full.
pub(super) async fn catalog(app: &App, caller: &Caller, uri: &Uri) -> Result {
    let (n, last) = page(uri)?;
    let mut visible: HashMap<String, bool> = HashMap::new();
    let mut repos = Vec::with_capacity(n.min(MAX_PAGE));
    let mut cursor = last;
    while repos.len() < n {
        let batch = app.service.repositories(cursor.as_deref(), MAX_PAGE).await?;
        let Some(end) = batch.last().cloned() else {
            break;
        };
        for r in batch {
            let Some((project, _)) = r.split_once('/') else {
                continue;
            };
            let ok = match visible.get(project) {
                Some(ok) => *ok,
                None => {
                    let ok = app
                        .auth
                        .grant(&caller.subject, project)
                        .await?
                        .1
                        .has(Action::ListCatalog);
                    visible.insert(project.to_owned(), ok);
                    ok
                }
            };
            if ok {
                repos.push(r);
                if repos.len() == n {
                    break;
                }
            }
        }
        cursor = Some(end);
    }
    let body = serde_json::json!({ "repositories": repos });
    Ok(paged_json(body, "/v2/_catalog", n, &repos))
}

pub(super) async fn referrers(app: &App, name: &RepoName, digest: &str, uri: &Uri) -> Result {
    let digest: Digest = digest.parse()?;
    let q = query(uri);
    let filter = param(&q, "artifactType").filter(|a| !a.is_empty());
    let list = app.service.referrers(name, &digest, filter).await?;
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": list,
    });
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media::OCI_INDEX));
    if filter.is_some() {
        h.insert("oci-filters-applied", HeaderValue::from_static("artifactType"));
    }
    Ok((h, body.to_string()).into_response())
}
