//! The admin JSON API under `/api/v1`: plans, restore requests, a user's timeline, the audit
//! log, the rule tester and counts. Every route but `openapi.json` needs a bearer token from
//! `[[admin.api_tokens]]`; the OpenAPI document is generated from the handlers below, so the
//! router and the document cannot disagree on which routes exist.

pub mod audit;
pub mod auth;
pub mod extract;
pub mod me;
pub mod plans;
pub mod requests;
pub mod rules;
pub mod settings;
pub mod stats;
pub mod users;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::web::error::{ErrorBody, ErrorDetail};

/// Where the document is served (without a token).
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "reseat admin API",
        description = "Plans, restore requests, timelines, audit log and rule tester of a reseat service. \
            Authenticate with `Authorization: Bearer <token>` (tokens are configured as SHA-256 digests in \
            `[[admin.api_tokens]]`). Lists are paged with `limit` and `cursor`: pass the response's \
            `next_cursor` as `cursor` until it is null. Errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "plans", description = "Sweep plans and their items"),
        (name = "requests", description = "Restore requests: list, approve, deny"),
        (name = "users", description = "One account's history"),
        (name = "audit", description = "The append-only audit log"),
        (name = "rules", description = "The restore rule tester"),
        (name = "stats", description = "Counts for a dashboard"),
        (name = "me", description = "What the calling token may do"),
        (name = "config", description = "The configuration, redacted, and key status (owners only)"),
    )
)]
struct ApiDoc;

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(plans::list))
        .routes(routes!(plans::get))
        .routes(routes!(plans::items))
        .routes(routes!(requests::list))
        .routes(routes!(requests::get))
        .routes(routes!(requests::approve))
        .routes(routes!(requests::deny))
        .routes(routes!(users::timeline))
        .routes(routes!(audit::list))
        .routes(routes!(audit::csv))
        .routes(routes!(rules::explain))
        .routes(routes!(stats::stats))
        .routes(routes!(me::me))
        .routes(routes!(settings::config))
}

/// The OpenAPI document of the API, as served at [`OPENAPI_PATH`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api_router().split_for_parts();
    finish(&mut doc);
    doc
}

/// The API routes: token-checked, plus the public document.
pub fn router(state: AppState) -> Router<AppState> {
    let (routes, mut doc) = api_router().split_for_parts();
    finish(&mut doc);
    let document: Arc<String> = Arc::new(doc.to_json().unwrap_or_else(|error| {
        tracing::error!(%error, "cannot render the OpenAPI document");
        "{}".into()
    }));
    routes
        .route_layer(middleware::from_fn_with_state(state, auth::require_token))
        // Answers carry personal data and admin state: never cached, by a browser or a proxy.
        .layer(middleware::map_response(no_store))
        .route(
            OPENAPI_PATH,
            get(move || {
                let document = Arc::clone(&document);
                async move {
                    ([(CONTENT_TYPE, "application/json")], document.to_string()).into_response()
                }
            }),
        )
}

async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// What every operation shares, added in one place: the bearer scheme, and the 401 and 500
/// answers (with the 401's `WWW-Authenticate` challenge).
fn finish(doc: &mut utoipa::openapi::OpenApi) {
    let error_content = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build()
    };
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API token from [[admin.api_tokens]] (configured as its SHA-256)",
                ))
                .build(),
        ),
    );
    components.responses.insert(
        "Unauthorized".into(),
        RefOr::T(
            ResponseBuilder::new()
                .description("The bearer token is missing or not valid")
                .header(
                    "WWW-Authenticate",
                    utoipa::openapi::header::HeaderBuilder::new()
                        .schema(
                            utoipa::openapi::ObjectBuilder::new()
                                .schema_type(utoipa::openapi::schema::Type::String),
                        )
                        .description(Some("Bearer realm=\"reseat\""))
                        .build(),
                )
                .content("application/json", error_content())
                .build(),
        ),
    );
    components.responses.insert(
        "Forbidden".into(),
        RefOr::T(
            ResponseBuilder::new()
                .description(
                    "The token's role (viewer, approver, operator, owner) does not allow this; nothing was changed",
                )
                .content("application/json", error_content())
                .build(),
        ),
    );
    components.responses.insert(
        "Internal".into(),
        RefOr::T(
            ResponseBuilder::new()
                .description("A database or internal failure (details are in the log)")
                .content("application/json", error_content())
                .build(),
        ),
    );
    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            let secured = operation
                .security
                .as_ref()
                .is_some_and(|requirements| !requirements.is_empty());
            let responses = &mut operation.responses.responses;
            if secured {
                responses.insert(
                    "401".into(),
                    RefOr::Ref(Ref::new("#/components/responses/Unauthorized")),
                );
                responses.insert(
                    "403".into(),
                    RefOr::Ref(Ref::new("#/components/responses/Forbidden")),
                );
            }
            responses.insert(
                "500".into(),
                RefOr::Ref(Ref::new("#/components/responses/Internal")),
            );
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}
