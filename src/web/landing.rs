//! `GET /`: a small page saying what this service is and where to go next.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::app::AppState;

#[derive(Template)]
#[template(path = "pages/landing.html")]
struct LandingPage<'a> {
    organisation: &'a str,
    support_contact: Option<&'a str>,
    docs: &'a str,
}

/// The documents a first-time reader wants, named by their path in the source.
const DOCS: &str = "docs/configuration.md, docs/restore-setup.md, docs/admin.md, docs/api.md";

pub async fn landing(State(state): State<AppState>) -> Response {
    let page = LandingPage {
        organisation: &state.config.mail.organisation,
        support_contact: state.config.mail.support_contact.as_deref(),
        docs: DOCS,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot render the landing page");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}
