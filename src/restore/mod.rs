//! Restore: requests for access from the JSM portal, signed links and webhooks, decided by
//! one rule engine, processed from the durable queue, answered where they came from.

pub mod command;
pub mod deliveries;
pub mod intake;
pub mod links;
pub mod reply;
pub mod rules;
pub mod signin;
pub mod slack;
pub mod status;
pub mod store;
pub mod teams;
pub mod worker;

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;

/// The restore routes: the webhook channels, Slack, Teams, the sign-in hooks (and the link
/// pages).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/hooks/jsm", post(intake::jsm))
        .route("/hooks/automation", post(intake::automation))
        .route("/hooks/webhook", post(intake::webhook))
        .route("/hooks/slack/commands", post(slack::commands))
        .route("/hooks/slack/interactions", post(slack::interactions))
        .route("/hooks/teams", post(teams::hook))
        .route("/hooks/okta", get(signin::okta_verify).post(signin::okta))
        .route("/hooks/signin", post(signin::webhook))
        .route(
            "/restore/{token}",
            get(links::restore_page).post(links::restore_submit),
        )
        .route(
            "/keep/{token}",
            get(links::keep_page).post(links::keep_submit),
        )
}
pub mod admin;
pub mod cli;
pub mod config;
pub mod signature;
