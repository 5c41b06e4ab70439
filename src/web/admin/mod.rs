//! The admin dashboard under `/admin`: server-rendered pages (askama, auto-escaped, no
//! JavaScript) for the overview, plans, restore requests, users, the audit log, CSV import
//! and the rules, behind a sign-in ([`auth`]).
//!
//! Every route is listed once in [`ROUTES`]; the router is built from that table and the
//! tests walk it, so a page cannot be added without the sign-in and CSRF checks covering it.

use std::sync::Arc;

use axum::http::Method;
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Router};

use crate::app::AppState;

pub mod auth;
pub mod charts;
pub mod cli;
mod decide;
mod login;
pub mod pages;
mod people;
pub use requests::explanation as explanation_lines;
mod plans;
mod reports;
pub(crate) mod requests;
mod still_billed;
pub mod store;
mod upload;

/// One admin route.
pub struct AdminRoute {
    /// The path, with `{param}` placeholders.
    pub path: &'static str,
    pub method: Method,
    /// Reachable without a session (only the sign-in pages).
    pub public: bool,
    /// Changes something: the form must carry the CSRF token.
    pub changes: bool,
    handler: fn() -> MethodRouter<AppState>,
}

const fn route(
    path: &'static str,
    method: Method,
    public: bool,
    changes: bool,
    handler: fn() -> MethodRouter<AppState>,
) -> AdminRoute {
    AdminRoute {
        path,
        method,
        public,
        changes,
        handler,
    }
}

/// Every admin route.
pub const ROUTES: &[AdminRoute] = &[
    route("/admin/login", Method::GET, true, false, || {
        get(login::page)
    }),
    route("/admin/login", Method::POST, true, true, || {
        post(login::submit)
    }),
    route("/admin/login/{token}", Method::GET, true, false, || {
        get(login::link_page)
    }),
    route("/admin/login/{token}", Method::POST, true, true, || {
        post(login::link_submit)
    }),
    route("/admin/logout", Method::POST, false, true, || {
        post(login::logout)
    }),
    route("/admin", Method::GET, false, false, || get(pages::overview)),
    route("/admin/plans", Method::GET, false, false, || {
        get(plans::list)
    }),
    route("/admin/plans/{id}", Method::GET, false, false, || {
        get(plans::show)
    }),
    route(
        "/admin/plans/{id}/still-billed.csv",
        Method::GET,
        false,
        false,
        || get(still_billed::csv),
    ),
    route("/admin/plans/{id}/items", Method::POST, false, true, || {
        post(plans::exclude)
    }),
    route("/admin/plans/{id}/apply", Method::GET, false, false, || {
        get(plans::confirm_apply)
    }),
    route("/admin/plans/{id}/apply", Method::POST, false, true, || {
        post(plans::apply)
    }),
    route(
        "/admin/reports/savings.csv",
        Method::GET,
        false,
        false,
        || get(reports::savings_csv),
    ),
    route(
        "/admin/reports/savings.json",
        Method::GET,
        false,
        false,
        || get(reports::savings_json),
    ),
    route("/admin/requests", Method::GET, false, false, || {
        get(requests::list)
    }),
    route(
        "/admin/requests/{id}/approve",
        Method::POST,
        false,
        true,
        || post(requests::approve),
    ),
    route(
        "/admin/requests/{id}/deny",
        Method::POST,
        false,
        true,
        || post(requests::deny),
    ),
    route(
        "/admin/requests/{id}/decide/{token}",
        Method::GET,
        false,
        false,
        || get(decide::confirm),
    ),
    route(
        "/admin/requests/{id}/decide/{token}",
        Method::POST,
        false,
        true,
        || post(decide::submit),
    ),
    route("/admin/users", Method::GET, false, false, || {
        get(people::search)
    }),
    route("/admin/users/{account}", Method::GET, false, false, || {
        get(people::timeline)
    }),
    route("/admin/audit", Method::GET, false, false, || {
        get(people::audit)
    }),
    route("/admin/audit.csv", Method::GET, false, false, || {
        get(people::audit_csv)
    }),
    route("/admin/import", Method::GET, false, false, || {
        get(plans::import_page)
    }),
    // The file streams to disk under admin.import_max_bytes, not the body limit.
    route("/admin/import/{id}", Method::GET, false, false, || {
        get(plans::import_progress)
    }),
    route("/admin/import", Method::POST, false, true, || {
        post(plans::import).layer(axum::extract::DefaultBodyLimit::disable())
    }),
    route("/admin/rules", Method::GET, false, false, || {
        get(requests::rules)
    }),
    // Owners only (Action::Configure).
    route("/admin/config", Method::GET, false, false, || {
        get(pages::config)
    }),
];

/// The admin pages, built from [`ROUTES`].
pub fn router(state: &AppState) -> Router<AppState> {
    let limiter: auth::SharedLimiter = Arc::new(auth::LoginLimiter::new(
        state.config.admin.login_attempts_per_minute,
    ));
    ROUTES
        .iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, (route.handler)())
        })
        .layer(Extension(limiter))
}
