//! `/v1/areas`: the caller's part of the area tree, and the CSV import.

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::routes::{Page, decode_cursor, encode_cursor};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use baithak_api_types::{AreaItem, AreaPage, ImportResult, Problem};
use baithak_domain::Role;
use baithak_domain::import::parse_area_csv;
use baithak_store::areas::{Area, ImportFailure};
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AreaQuery {
    /// Find one area by its code.
    pub code: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

fn item(a: Area, ancestor: bool) -> AreaItem {
    AreaItem {
        id: a.id.0,
        code: a.code,
        name: a.name,
        kind: a.kind,
        parent_id: a.parent_id.map(|p| p.0),
        ancestor,
    }
}

/// The caller's area and its subtree in tree order; the first page also carries the
/// caller's ancestors (`"ancestor": true`).
#[utoipa::path(get, operation_id = "list_areas", path = "/v1/areas", tag = "areas", params(AreaQuery), security(("bearer" = [])),
    responses((status = 200, body = AreaPage), (status = 401, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<AreaQuery>,
) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let page = Page::new(q.limit)?;
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let scope = user.scope.clone();
    let code = q.code.clone();
    let first_page = after.is_none();
    let (ancestors, mut rows) = state
        .store
        .run(move |s| {
            let ancestors = if first_page {
                let mut a = s.areas_by_ids(&scope.ancestors())?;
                // Root first, like the subtree that follows.
                a.sort_by_key(|x| x.path.as_str().len());
                a
            } else {
                Vec::new()
            };
            let rows =
                s.areas_in_subtree(&scope, code.as_deref(), after.as_deref(), page.fetch())?;
            Ok((ancestors, rows))
        })
        .await?;
    let next = page
        .trim(&mut rows)
        .map(|last| encode_cursor(last.path.as_str()));
    let mut items: Vec<AreaItem> = ancestors
        .into_iter()
        .filter(|a| q.code.as_deref().is_none_or(|c| c == a.code))
        .map(|a| item(a, true))
        .collect();
    items.extend(rows.into_iter().map(|a| item(a, false)));
    Ok(HttpResponse::Ok().json(AreaPage {
        items,
        next_cursor: next,
    }))
}

/// Import areas from CSV (`code,name,kind,parent_code`), all rows or none. An admin
/// imports within their own subtree.
#[utoipa::path(post, operation_id = "import_areas", path = "/v1/areas/import", tag = "areas", security(("bearer" = [])),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportResult),
              (status = 400, body = Problem, description = "a bad row, named by its line"),
              (status = 403, body = Problem)))]
#[tracing::instrument(skip_all)]
pub async fn import(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    user.require(&[Role::Admin])?;
    if body.len() > state.config.import_limit {
        return Err(ApiError::TooLarge(format!(
            "the CSV may be at most {} bytes",
            state.config.import_limit
        )));
    }
    let rows = parse_area_csv(&body[..]).map_err(|e| {
        ApiError::Validation(vec![baithak_api_types::FieldError {
            field: format!("line {}", e.line),
            message: e.message,
        }])
    })?;
    let store = state.store.clone();
    let (scope, actor) = (user.scope.clone(), user.id);
    let span = tracing::Span::current();
    let res = tokio::task::spawn_blocking(move || {
        span.in_scope(|| store.import_areas(&rows, Some(&scope), Some(actor), &|_| {}))
    })
    .await
    .map_err(ApiError::internal)?;
    match res {
        Ok(s) => Ok(HttpResponse::Ok().json(ImportResult {
            created: s.created,
            renamed: s.renamed,
            unchanged: s.unchanged,
        })),
        Err(ImportFailure::Row(e)) => {
            Err(ApiError::Validation(vec![baithak_api_types::FieldError {
                field: format!("line {}", e.line),
                message: e.message,
            }]))
        }
        Err(ImportFailure::Store(e)) => Err(e.into()),
    }
}
