//! `GET|POST /admin/requests/{id}/decide/{token}`: the Approve and Deny buttons of an
//! approval card (Teams). The token is a signed, single-use decision link bound to one
//! request and one decision; only a signed-in admin whose role may decide uses it (the
//! route is [`crate::web::config::Action::Decide`]). `GET` shows the request and a button,
//! changing nothing; the `POST` (with the session's CSRF token) decides through the same
//! path as the requests page. A link used before, or a request decided meanwhile, shows
//! the decision and changes nothing.

use std::time::Duration;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::auth::{AdminForm, AdminSession};
use super::pages::{Layout, error_page, render};
use super::requests::RequestView;
use crate::app::AppState;
use crate::audit;
use crate::notify::{LinkError, Purpose, TokenClaims, TokenRejection};
use crate::restore::admin::{self, AdminError};
use crate::restore::store::{self, RestoreRequest};
use crate::restore::worker;

/// How long deciding waits for the restore before showing the page.
const INLINE_WAIT: Duration = Duration::from_secs(15);

#[derive(Template)]
#[template(path = "admin/decide.html")]
struct DecidePage {
    layout: Layout,
    r: RequestView,
    site: String,
    groups: Vec<String>,
    approve: bool,
    open: bool,
    notice: Option<String>,
    action: String,
}

/// What the link may do, once checked.
enum Checked {
    /// Unused, and the request waits for a decision.
    Usable(TokenClaims, RestoreRequest),
    /// Used before, or the request is decided: show it.
    Decided(RestoreRequest, &'static str),
}

async fn check(state: &AppState, id: &str, token: &str) -> Result<Checked, Response> {
    let claims = match state
        .notify
        .links
        .verify(token, Purpose::Decide, state.clock().now())
    {
        Ok(claims) => claims,
        Err(rejection) => return Err(refused(state, rejection.as_str()).await),
    };
    if claims.request_id.as_deref() != Some(id)
        || crate::atlassian::site_key(&claims.site) != crate::atlassian::site_key(state.site())
    {
        return Err(refused(state, "another_request").await);
    }
    let request = match store::get(&state.db, id).await {
        Ok(Some(request)) => request,
        Ok(None) => return Err(refused(state, "unknown_request").await),
        Err(error) => return Err(internal(error)),
    };
    let checked = match state.db.pool().acquire().await {
        Ok(mut conn) => state.notify.links.check(&mut conn, &claims).await,
        Err(error) => Err(LinkError::Store(error)),
    };
    match checked {
        Ok(()) if request.state().is_open() => Ok(Checked::Usable(claims, request)),
        Ok(()) => Ok(Checked::Decided(
            request,
            "The request was decided already.",
        )),
        Err(LinkError::Rejected(TokenRejection::AlreadyUsed)) => {
            Ok(Checked::Decided(request, "This link was used already."))
        }
        Err(LinkError::Rejected(rejection)) => Err(refused(state, rejection.as_str()).await),
        Err(error) => Err(internal(error)),
    }
}

fn internal(error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "cannot check a decision link");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong; please try again.",
    )
}

async fn refused(state: &AppState, reason: &str) -> Response {
    tracing::warn!(reason, "decision link refused");
    let _ = audit::refused(
        &state.db,
        audit::Refusal {
            action: "link.rejected",
            source: "link:decide",
            reason,
        },
    )
    .await;
    error_page(
        StatusCode::FORBIDDEN,
        "This decision link cannot be used: it is not valid for this request, or it is too old. Nothing was changed. Decide on the requests page instead.",
    )
}

async fn page(
    state: &AppState,
    session: &AdminSession,
    request: RestoreRequest,
    approve: bool,
    open: bool,
    notice: Option<String>,
    token: &str,
) -> Response {
    let groups = match (&request.account_id, &request.product) {
        (Some(account), Some(product)) => {
            crate::ledger::taken_groups(&state.db, account, product, state.site())
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|g| g.name)
                .collect()
        }
        _ => Vec::new(),
    };
    let action = format!("/admin/requests/{}/decide/{token}", request.id);
    let page = DecidePage {
        layout: Layout::new(state, session, "requests"),
        site: state.site().to_string(),
        r: RequestView::from(request),
        groups,
        approve,
        open,
        notice,
        action,
    };
    render(StatusCode::OK, page.render())
}

fn is_approve(claims: &TokenClaims) -> bool {
    claims.decision.as_deref() == Some("approve")
}

/// `GET`: what the link would do; changes nothing.
pub async fn confirm(
    State(state): State<AppState>,
    session: AdminSession,
    Path((id, token)): Path<(String, String)>,
) -> Response {
    match check(&state, &id, &token).await {
        Ok(Checked::Usable(claims, request)) => {
            page(
                &state,
                &session,
                request,
                is_approve(&claims),
                true,
                None,
                &token,
            )
            .await
        }
        Ok(Checked::Decided(request, why)) => {
            let notice = decided_notice(&request, why);
            page(
                &state,
                &session,
                request,
                false,
                false,
                Some(notice),
                &token,
            )
            .await
        }
        Err(response) => response,
    }
}

fn decided_notice(request: &RestoreRequest, why: &str) -> String {
    let by = request
        .matched_rule
        .as_deref()
        .map(|rule| format!(" ({rule})"))
        .unwrap_or_default();
    format!("{why} It is {}{by}.", request.status)
}

/// `POST`: decides, once.
pub async fn submit(
    State(state): State<AppState>,
    Path((id, token)): Path<(String, String)>,
    form: AdminForm,
) -> Response {
    let session = &form.session;
    let (claims, request) = match check(&state, &id, &token).await {
        Ok(Checked::Usable(claims, request)) => (claims, request),
        Ok(Checked::Decided(request, why)) => {
            let notice = decided_notice(&request, why);
            return page(&state, session, request, false, false, Some(notice), &token).await;
        }
        Err(response) => return response,
    };
    let approve = is_approve(&claims);
    let decided = if approve {
        admin::approve(&state, &request.id, &session.grant, Vec::new()).await
    } else {
        let reason = form
            .get("reason")
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .unwrap_or("Declined by an administrator.");
        admin::deny(&state, &request.id, &session.grant, reason).await
    };
    match decided {
        Ok(()) => {}
        Err(AdminError::NotOpen { .. }) => {
            // Another admin (or the other button) was first: that decision stands.
            let request = store::get(&state.db, &id)
                .await
                .ok()
                .flatten()
                .unwrap_or(request);
            let notice = decided_notice(&request, "The request was decided already.");
            return page(
                &state,
                session,
                request,
                approve,
                false,
                Some(notice),
                &token,
            )
            .await;
        }
        Err(error) => {
            tracing::error!(%error, request_id = %id, "a decision link could not decide");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The request could not be decided; please try again or use the requests page.",
            );
        }
    }
    // The decision is written; the link is spent (a second use shows the decision).
    let consumed = async {
        let mut tx = state.db.pool().begin().await?;
        state
            .notify
            .links
            .consume(&mut tx, &claims, state.clock().now())
            .await?;
        tx.commit().await.map_err(LinkError::Store)
    }
    .await;
    if let Err(error) = consumed {
        tracing::warn!(%error, request_id = %id, "a decision link was not marked used; the request is decided");
    }
    let _ = audit::record(
        &state.db,
        audit::Entry {
            actor: &session.actor(),
            role: Some(session.grant.role_name()),
            action: "restore.decided_by_link",
            account_id: request.account_id.as_deref(),
            product: request.product.as_deref(),
            details: json!({ "request_id": id, "decision": claims.decision }),
        },
    )
    .await;
    match worker::run_now(&state, &id, INLINE_WAIT).await {
        Ok(Some(request)) if request.is_decided() => {}
        Ok(_) => tracing::warn!(request_id = %id, "still running; the queue finishes it"),
        Err(error) => tracing::warn!(request_id = %id, %error, "the queue will retry"),
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("done", &id)
        .finish();
    Redirect::to(&format!("/admin/requests?{query}")).into_response()
}
