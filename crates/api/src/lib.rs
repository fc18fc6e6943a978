//! The baithak HTTP API: the actix-web application, authentication, scope checks,
//! problem+json errors and the OpenAPI description.
//!
//! This is the only crate that names actix. [`app`] builds the whole application so
//! the server binary and in-process tests serve exactly the same thing.

pub mod auth;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod photos;
pub mod quota;
pub mod routes;
pub mod state;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{App, HttpRequest, HttpResponse, web};
use baithak_api_types::Problem;
pub use error::{ApiError, ApiResult};
pub use state::{ApiConfig, AppState};
use std::sync::Arc;
use tracing_actix_web::TracingLogger;

fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req| {
            use actix_web::error::JsonPayloadError as E;
            let api = match &err {
                E::OverflowKnownLength { .. } | E::Overflow { .. } => {
                    ApiError::TooLarge(format!("JSON bodies may be at most {limit} bytes"))
                }
                E::ContentType => {
                    ApiError::UnsupportedMediaType("send the body as application/json".into())
                }
                E::Deserialize(e) => ApiError::bad_request("invalid_json", e.to_string()),
                other => ApiError::bad_request("invalid_body", other.to_string()),
            };
            api.into()
        })
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _req| ApiError::bad_request("invalid_query", err.to_string()).into())
}

fn path_config() -> web::PathConfig {
    // A malformed id cannot name anything the caller may see.
    web::PathConfig::default().error_handler(|_err, _req| ApiError::NotFound.into())
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    let p = Problem::new(404, "not_found", "Not found").with_detail(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    ));
    error::problem_response(&p)
}

/// Turns any error response that is not already a problem (actix's own 405, payload
/// errors, …) into one, so clients parse a single error shape.
fn ensure_problem<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(Problem::CONTENT_TYPE.as_bytes()));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (code, title) = match status {
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "Method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "Payload too large"),
        StatusCode::NOT_FOUND => ("not_found", "Not found"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "Unsupported media type"),
        s if s.is_server_error() => ("internal", "Internal server error"),
        _ => ("bad_request", "Bad request"),
    };
    let problem = Problem::new(status.as_u16(), code, title);
    let (req, old) = res.into_parts();
    let mut new = error::problem_response(&problem);
    new.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(Problem::CONTENT_TYPE),
    );
    for name in [header::RETRY_AFTER, header::ALLOW] {
        if let Some(v) = old.headers().get(&name) {
            new.headers_mut().insert(name, v.clone());
        }
    }
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, new).map_into_right_body(),
    ))
}

/// The whole application around `state`.
pub fn app(
    state: Arc<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let json_limit = state.config.json_limit;
    let import_limit = state.config.import_limit;
    App::new()
        .app_data(web::Data::from(state))
        .app_data(json_config(json_limit))
        .app_data(query_config())
        .app_data(path_config())
        .wrap(ErrorHandlers::new().default_handler(ensure_problem))
        .wrap(actix_web::middleware::from_fn(metrics::middleware))
        .wrap(TracingLogger::default())
        .route("/healthz", web::get().to(routes::health::healthz))
        .route("/readyz", web::get().to(routes::health::readyz))
        .route("/openapi.json", web::get().to(openapi::serve))
        .route("/metrics", web::get().to(metrics::serve))
        .service(
            web::scope("/v1")
                .route("/auth/login", web::post().to(routes::auth::login))
                .route("/auth/refresh", web::post().to(routes::auth::refresh))
                .route("/auth/logout", web::post().to(routes::auth::logout))
                .route("/areas", web::get().to(routes::areas::list))
                .service(
                    web::resource("/areas/import")
                        .app_data(web::PayloadConfig::new(import_limit))
                        .route(web::post().to(routes::areas::import)),
                )
                .service(
                    web::resource("/users")
                        .route(web::get().to(routes::users::list))
                        .route(web::post().to(routes::users::create)),
                )
                .service(
                    web::resource("/users/{id}")
                        .route(web::get().to(routes::users::get))
                        .route(web::patch().to(routes::users::update)),
                )
                .configure(routes::media::configure)
                .configure(routes::uploads::configure)
                .configure(routes::sync::configure)
                .configure(routes::meetings::configure)
                .configure(routes::compliance::configure)
                .configure(routes::records::configure),
        )
        .default_service(web::to(not_found))
}
