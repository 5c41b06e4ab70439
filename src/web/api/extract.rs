//! Extractors whose rejections are [`ApiError`]s, so that a malformed query or body gets the
//! same JSON error body as every other failure; and the shared pagination rules.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::web::error::ApiError;

/// Items per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page.
pub const MAX_LIMIT: u32 = 500;

/// `Query<T>` answering a bad query string with a 400 JSON error.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// A JSON body that may be absent (empty): `None` then. A body that is present must be
/// JSON (`Content-Type: application/json`, or no content type) and match `T`.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .map(|value| value.to_str().unwrap_or_default().to_ascii_lowercase());
        let body =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection.status().as_u16() {
                    413 => ApiError::PayloadTooLarge,
                    _ => ApiError::BadRequest(rejection.body_text()),
                })?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if let Some(content_type) = content_type {
            let essence = content_type.split(';').next().unwrap_or_default().trim();
            if essence != "application/json" {
                return Err(ApiError::UnsupportedMediaType);
            }
        }
        serde_json::from_slice(&body)
            .map(|value| OptionalJson(Some(value)))
            .map_err(|error| ApiError::BadRequest(format!("invalid JSON body: {error}")))
    }
}

/// The page size asked for, checked against the documented range.
pub fn limit(asked: Option<u32>) -> Result<i64, ApiError> {
    match asked.unwrap_or(DEFAULT_LIMIT) {
        limit @ 1..=MAX_LIMIT => Ok(i64::from(limit)),
        other => Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}, got {other}"
        ))),
    }
}

/// The pattern of a cursor over string ids (UUIDs): checked, so that a cursor the schema
/// calls invalid is refused rather than silently matching nothing.
pub const ID_CURSOR_PATTERN: &str = "^[0-9A-Za-z-]{1,64}$";
/// The pattern of a cursor over numeric ids.
pub const NUMBER_CURSOR_PATTERN: &str = "^[0-9]{1,18}$";

/// A cursor over string ids.
pub fn id_cursor(cursor: Option<&str>) -> Result<Option<&str>, ApiError> {
    match cursor {
        None => Ok(None),
        Some(text)
            if (1..=64).contains(&text.len())
                && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            Ok(Some(text))
        }
        Some(_) => Err(ApiError::BadRequest(
            "cursor must be the next_cursor of the previous page".into(),
        )),
    }
}

/// A cursor over numeric ids.
pub fn number_cursor(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    match cursor {
        None => Ok(None),
        Some(text)
            if (1..=18).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            text.parse().map(Some).map_err(|_| {
                ApiError::BadRequest("cursor must be the next_cursor of the previous page".into())
            })
        }
        Some(_) => Err(ApiError::BadRequest(
            "cursor must be the next_cursor of the previous page".into(),
        )),
    }
}

/// The cursor of the next page: the last row's key when the page is full.
pub fn next_cursor<T>(rows: &[T], limit: i64, key: impl Fn(&T) -> String) -> Option<String> {
    if usize::try_from(limit).is_ok_and(|limit| rows.len() == limit) {
        rows.last().map(key)
    } else {
        None
    }
}

/// An identifier from the path or query: letters, digits and `- _ : .`, at most 128.
pub const ATLASSIAN_ID_PATTERN: &str = "^[A-Za-z0-9_:.-]{1,128}$";

/// `Path<T>` answering an undecodable segment with a 400 JSON error.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// `?site=NAME` on a list: the site as reseat keys it, or 404 naming the sites.
pub fn site_filter(
    state: &crate::app::AppState,
    site: Option<&str>,
) -> Result<Option<crate::restore::store::SiteFilter>, crate::web::error::ApiError> {
    Ok(state
        .named_site(site)
        .map_err(crate::web::error::ApiError::NotFound)?
        .map(|view| crate::restore::store::SiteFilter::of(state, &view)))
}
