//! `/admin/login` (password), `/admin/login/{token}` (one-time link) and `/admin/logout`.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::json;

use super::auth::{
    self, AdminForm, ClientAddr, LOGIN_CSRF_COOKIE, SESSION_COOKIE, SharedLimiter, same_secret,
};
use super::pages::{error_page, render};
use super::store;
use crate::app::AppState;
use crate::audit;

#[derive(Template)]
#[template(path = "admin/login.html")]
struct LoginPage<'a> {
    organisation: &'a str,
    csrf: &'a str,
    name: &'a str,
    message: Option<&'a str>,
    /// For a login link: who it signs in (no password fields then).
    link_for: Option<&'a str>,
    /// The admin page to return to once signed in.
    next: &'a str,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    /// The admin page to return to once signed in.
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    csrf: String,
}

/// The sign-in form, with a fresh double-submit CSRF cookie.
fn login_form(
    state: &AppState,
    status: StatusCode,
    name: &str,
    message: Option<&str>,
    link_for: Option<&str>,
    next: &str,
) -> Response {
    let csrf = auth::random_token();
    let page = LoginPage {
        organisation: &state.config.mail.organisation,
        csrf: &csrf,
        name,
        message,
        link_for,
        next: auth::safe_return_path(next).unwrap_or_default(),
    };
    let mut response = render(status, page.render());
    response.headers_mut().append(
        header::SET_COOKIE,
        auth::cookie_header(state, LOGIN_CSRF_COOKIE, &csrf, "/admin", 3600),
    );
    response
}

fn login_csrf_ok(headers: &HeaderMap, submitted: &str) -> bool {
    auth::cookie(headers, LOGIN_CSRF_COOKIE).is_some_and(|cookie| same_secret(submitted, &cookie))
}

pub async fn page(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<LoginQuery>,
) -> Response {
    login_form(&state, StatusCode::OK, "", None, None, &query.next)
}

pub async fn submit(
    State(state): State<AppState>,
    Extension(limiter): Extension<SharedLimiter>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !login_csrf_ok(&headers, &form.csrf) {
        return auth::csrf_refused("(signing in)");
    }
    let name = form.name.trim();
    if !limiter.allow(&addr, name) {
        refused(
            &state,
            "admin.login_throttled",
            &addr,
            &format!("too many attempts for {name:?}"),
        )
        .await;
        let mut response = login_form(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            name,
            Some("Too many attempts. Wait a minute and try again."),
            None,
            &form.next,
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return response;
    }
    if !auth::check_password(&state, name, &form.password).await {
        refused(
            &state,
            "admin.login_failed",
            &addr,
            &format!("wrong name or password for {name:?}"),
        )
        .await;
        return login_form(
            &state,
            StatusCode::UNAUTHORIZED,
            name,
            Some("Wrong name or password."),
            None,
            &form.next,
        );
    }
    signed_in(&state, name, "password", &addr, &form.next).await
}

async fn signed_in(
    state: &AppState,
    admin: &str,
    method: &str,
    addr: &str,
    next: &str,
) -> Response {
    match auth::start_session(state, admin).await {
        Ok(cookie) => {
            let role = state.config.admin.user_grant(admin).map(|g| g.role_name());
            record(
                state,
                (format!("admin:{admin}"), role),
                "admin.login",
                json!({ "method": method, "addr": addr }),
            )
            .await;
            let target = auth::safe_return_path(next).unwrap_or("/admin");
            let mut response = Redirect::to(target).into_response();
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        Err(error) => {
            tracing::error!(%error, "cannot start an admin session");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Cannot sign in right now; please try again.",
            )
        }
    }
}

/// `GET /admin/login/{token}`: shows who the link signs in; uses nothing (mail and chat
/// scanners open links).
pub async fn link_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    match store::login_link_admin(&state.db, &auth::sha256_hex(&token), state.db.now_ms()).await {
        Ok(Some(admin)) => login_form(&state, StatusCode::OK, "", None, Some(&admin), ""),
        Ok(None) => link_refused(),
        Err(error) => {
            tracing::error!(%error, "cannot read a login link");
            error_page(StatusCode::INTERNAL_SERVER_ERROR, "Please try again.")
        }
    }
}

pub async fn link_submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LinkForm>,
) -> Response {
    if !login_csrf_ok(&headers, &form.csrf) {
        return auth::csrf_refused("(login link)");
    }
    match store::consume_login_link(&state.db, &auth::sha256_hex(&token), state.db.now_ms()).await {
        Ok(Some(admin)) => signed_in(&state, &admin, "link", &addr, "").await,
        Ok(None) => {
            refused(
                &state,
                "admin.login_link_refused",
                &addr,
                "unknown, used or expired",
            )
            .await;
            link_refused()
        }
        Err(error) => {
            tracing::error!(%error, "cannot use a login link");
            error_page(StatusCode::INTERNAL_SERVER_ERROR, "Please try again.")
        }
    }
}

fn link_refused() -> Response {
    error_page(
        StatusCode::GONE,
        "This sign-in link cannot be used: it was used already or is too old. Run `reseat admin login-link` for a new one.",
    )
}

pub async fn logout(State(state): State<AppState>, form: AdminForm) -> Response {
    if let Err(error) = store::delete_session(&state.db, &form.session.key).await {
        tracing::error!(%error, "cannot end an admin session");
    }
    let who = (form.session.actor(), Some(form.session.grant.role_name()));
    record(&state, who, "admin.logout", json!({})).await;
    let mut response = Redirect::to("/admin/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        auth::cookie_header(&state, SESSION_COOKIE, "", "/admin", 0),
    );
    response
}

/// Audits a sign-in event; a failure to write it is logged, the answer stays the same.
/// A refused sign-in, counted per minute, client address and reason (`audit_refusals`).
async fn refused(state: &AppState, action: &str, addr: &str, reason: &str) {
    let refusal = audit::Refusal {
        action,
        source: addr,
        reason,
    };
    if let Err(error) = audit::refused(&state.db, refusal).await {
        tracing::error!(%error, action, "cannot audit a refused sign-in");
    }
}

async fn record(
    state: &AppState,
    (actor, role): (String, Option<&str>),
    action: &str,
    details: serde_json::Value,
) {
    if let Err(error) = audit::record(
        &state.db,
        audit::Entry {
            actor: &actor,
            role,
            action,
            account_id: None,
            product: None,
            details,
        },
    )
    .await
    {
        tracing::error!(%error, action, "cannot audit a sign-in event");
    }
}
