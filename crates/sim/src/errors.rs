//! Error bodies in each API family's own shape, and the credential checks that produce
//! 401 and 403 (Basic auth on site APIs, Bearer key on the admin API).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use super::seed::{FOREIGN_ADMIN_KEY, VIEWER_EMAIL, VIEWER_TOKEN};
use super::state::SimState;

/// Which Atlassian API a request belongs to; decides the error body shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    /// Organizations admin API (`/admin/...`).
    Admin,
    /// Jira platform (`/rest/api/3/...`).
    Jira,
    /// Confluence v1 (`/wiki/rest/api/...`).
    Confluence,
    /// Jira Service Management (`/rest/servicedeskapi/...`).
    Jsm,
}

impl Family {
    pub fn of_path(path: &str) -> Family {
        if path.starts_with("/admin/") {
            Family::Admin
        } else if path.starts_with("/wiki/") {
            Family::Confluence
        } else if path.starts_with("/rest/servicedeskapi") {
            Family::Jsm
        } else {
            Family::Jira
        }
    }
}

/// An error answered in the family's format.
#[derive(Debug)]
pub(crate) struct ApiError {
    family: Family,
    status: StatusCode,
    message: String,
    /// Admin API application code (`ADMIN-404-2`…), or JSM i18n key.
    code: &'static str,
    /// Admin `errors[].title`; the status's reason phrase when `None`.
    title: Option<&'static str>,
    retry_after: Option<u64>,
}

pub(crate) type ApiResult<T = Response> = Result<T, ApiError>;

impl ApiError {
    pub fn new(family: Family, status: StatusCode, message: impl Into<String>) -> ApiError {
        let code = match (family, status.as_u16()) {
            (Family::Admin, 400) => "ADMIN-400-1",
            (Family::Admin, 404) => "ADMIN-404-1",
            (Family::Admin, 429) => "ADMIN-429-1",
            (Family::Admin, _) => "ADMIN-500-1",
            (_, 400) => "sd.request.error.bad.request",
            (_, 401) => "sd.request.error.unauthorized",
            (_, 403) => "sd.request.error.forbidden",
            (_, 404) => "sd.request.error.not.found",
            _ => "sd.request.error.internal",
        };
        ApiError {
            family,
            status,
            message: message.into(),
            code,
            title: None,
            retry_after: None,
        }
    }

    /// Overrides the admin `errors[].title` (e.g. "Unknown Resource").
    pub fn with_title(mut self, title: &'static str) -> ApiError {
        self.title = Some(title);
        self
    }

    /// Overrides the admin application code (e.g. `ADMIN-404-2` for an unknown org).
    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = code;
        self
    }

    /// Adds a `Retry-After` header (seconds).
    pub fn with_retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }

    pub fn bad_request(family: Family, message: impl Into<String>) -> ApiError {
        ApiError::new(family, StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(family: Family, message: impl Into<String>) -> ApiError {
        ApiError::new(family, StatusCode::NOT_FOUND, message)
    }

    pub fn forbidden(family: Family, message: impl Into<String>) -> ApiError {
        ApiError::new(family, StatusCode::FORBIDDEN, message)
    }

    fn body(&self) -> serde_json::Value {
        let status = self.status.as_u16();
        match self.family {
            Family::Admin => match status {
                // The admin spec answers 401 and 429 from its proxy (`ProxyError`) and
                // 403 as `NoPermsError`; everything else as JSON:API `errors`.
                401 | 429 => json!({ "code": status, "message": self.message }),
                403 => json!({
                    "timestamp": chrono::Utc::now().to_rfc3339(),
                    "status": 403,
                    "error": "Forbidden",
                    "message": self.message,
                    "requestId": uuid::Uuid::new_v4().to_string(),
                }),
                _ => json!({ "errors": [{
                    "id": uuid::Uuid::new_v4().to_string(),
                    "status": status.to_string(),
                    "code": self.code,
                    "title": self.title.or(self.status.canonical_reason()).unwrap_or("Error"),
                    "detail": self.message,
                }]}),
            },
            Family::Jira => json!({ "errorMessages": [self.message], "errors": {} }),
            Family::Confluence => json!({
                "statusCode": status,
                "data": {
                    "authorized": status != 401 && status != 403,
                    "valid": status != 400,
                    "errors": [],
                    "successful": false,
                },
                "message": self.message,
            }),
            Family::Jsm => json!({
                "errorMessage": self.message,
                "i18nErrorMessage": { "i18nKey": self.code, "parameters": [] },
            }),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The answer for a path no route serves. Under `/admin/` it is the API gateway's generic
/// 404, `{"code": 404, "message": "Not Found"}` (the spec's `ProxyError` shape, the one the
/// gateway also uses for 401 and 429): no `errors[]`, no application code, so it cannot be
/// mistaken for the directory's "user not found" (`ADMIN-UAM-404-1`). Elsewhere, 404 in the
/// family's shape.
pub(crate) async fn route_not_found(uri: axum::http::Uri) -> Response {
    match Family::of_path(uri.path()) {
        Family::Admin => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "code": 404, "message": "Not Found" })),
        )
            .into_response(),
        family => ApiError::not_found(family, "The simulator does not serve this resource.")
            .into_response(),
    }
}

/// Who is calling a site API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The configured site-admin credential.
    SiteAdmin,
    /// The seeded viewer: valid, but without admin rights.
    Viewer,
}

/// Checks Basic `email:api_token` on a site API.
pub(crate) fn site_caller(
    sim: &SimState,
    headers: &HeaderMap,
    family: Family,
) -> ApiResult<Caller> {
    let unauthorized = || {
        let msg = match family {
            Family::Jira => "Client must be authenticated to access this resource.",
            Family::Confluence => "This request requires authentication.",
            _ => "You are not logged in.",
        };
        ApiError::new(family, StatusCode::UNAUTHORIZED, msg)
    };
    let raw = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .ok_or_else(unauthorized)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(unauthorized)?;
    let (email, token) = decoded.split_once(':').ok_or_else(unauthorized)?;
    let config = sim.config();
    if email.eq_ignore_ascii_case(&config.site_email) && token == config.site_token {
        Ok(Caller::SiteAdmin)
    } else if email.eq_ignore_ascii_case(VIEWER_EMAIL) && token == VIEWER_TOKEN {
        Ok(Caller::Viewer)
    } else {
        Err(unauthorized())
    }
}

/// Checks Basic auth and requires site-admin rights (403 for the viewer).
pub(crate) fn site_admin(sim: &SimState, headers: &HeaderMap, family: Family) -> ApiResult<()> {
    match site_caller(sim, headers, family)? {
        Caller::SiteAdmin => Ok(()),
        Caller::Viewer => {
            let msg = match family {
                Family::Jira => {
                    "You do not have permission to perform this operation. Site administration permission is required."
                }
                Family::Confluence => {
                    "User is not permitted to perform this operation: site admin permission required"
                }
                _ => "You do not have permission to perform this action.",
            };
            Err(ApiError::forbidden(family, msg))
        }
    }
}

/// Checks the Bearer key of the admin API: 401 unknown key, 403 key of another org.
pub(crate) fn org_admin(sim: &SimState, headers: &HeaderMap) -> ApiResult<()> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match key {
        Some(k) if k == sim.config().admin_key => Ok(()),
        Some(FOREIGN_ADMIN_KEY) => Err(ApiError::forbidden(
            Family::Admin,
            "The API key does not grant access to this organization.",
        )),
        _ => Err(ApiError::new(
            Family::Admin,
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
        )),
    }
}
