//! The OpenAPI document, generated from the handlers and wire types. The checked-in
//! `api-spec/openapi.yaml` must equal it (see the `openapi` test).

use crate::routes;
use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "baithak", description = "Photo-backed field meeting reports, offline sync and daily quota verification."),
    modifiers(&BearerAuth),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        crate::metrics::serve,
        serve,
        routes::auth::login,
        routes::auth::refresh,
        routes::auth::logout,
        routes::areas::list,
        routes::areas::import,
        routes::users::create,
        routes::users::list,
        routes::users::get,
        routes::users::update,
    )
)]
pub struct ApiDoc;

/// The document as YAML, exactly as `api-spec/openapi.yaml` should hold it.
/// The whole document: the routes above plus each feature module's own part.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(routes::media::Doc::openapi());
    doc.merge(routes::uploads::Doc::openapi());
    doc.merge(routes::sync::Doc::openapi());
    doc.merge(routes::meetings::Doc::openapi());
    doc.merge(routes::compliance::Doc::openapi());
    doc.merge(routes::records::Doc::openapi());
    doc
}

pub fn yaml() -> Result<String, String> {
    let mut doc = document();
    // The crate version would make every release bump a spec diff.
    doc.info.version = "1".into();
    doc.to_yaml().map_err(|e| e.to_string())
}

/// This document, as JSON.
#[utoipa::path(get, operation_id = "openapi", path = "/openapi.json", tag = "health",
    responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn serve() -> HttpResponse {
    let mut doc = document();
    doc.info.version = "1".into();
    HttpResponse::Ok().json(doc)
}
