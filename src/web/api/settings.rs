//! `GET /api/v1/config`: the effective configuration (secrets redacted) and which keys are
//! set, for owners only ([`crate::web::config::Action::Configure`]).

use axum::Json;
use axum::extract::State;

use crate::app::AppState;
use crate::web::keys::ConfigView;

/// The effective configuration with every secret redacted, and which keys and secrets are
/// set (never their values). Owner tokens only: any other role gets 403.
#[utoipa::path(
    get,
    path = "/api/v1/config",
    tag = "config",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The configuration, redacted, and the key status", body = ConfigView),
    )
)]
pub async fn config(State(state): State<AppState>) -> Json<ConfigView> {
    Json(ConfigView::of(&state.org_config))
}
