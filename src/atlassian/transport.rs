//! How one HTTP request is sent: the [`Transport`] seam and its reqwest implementation. The
//! retry policy around it lives in `http.rs`.

use crate::atlassian::error::AtlassianError;
use reqwest::Method;
use reqwest::header::{self, HeaderMap};
use secrecy::{ExposeSecret as _, SecretString};
use std::time::Duration;
use std::{future::Future, pin::Pin};
use url::Url;

/// A boxed future, so [`Transport`] stays object-safe without the `futures` crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One HTTP request as handed to a [`Transport`].
#[derive(Debug, Clone)]
pub struct TransportRequest {
    /// The HTTP method.
    pub method: Method,
    /// The full URL, query included.
    pub url: Url,
    /// The `Authorization` header value (redacted in `Debug`).
    pub authorization: SecretString,
    /// A JSON body, if any.
    pub body: Option<Vec<u8>>,
}

/// One HTTP response as a [`Transport`] returns it.
#[derive(Debug, Clone)]
pub struct TransportResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// No connection was made: the request was certainly not sent.
    Connect(String),
    /// The attempt took longer than the configured timeout.
    Timeout,
    /// The connection broke after the request may have been sent.
    Dropped(String),
}

/// Sends one HTTP request. The production transport is [`ReqwestTransport`]; tests may
/// substitute a scripted one (e.g. to drive the retry policy on a paused clock).
pub trait Transport: Send + Sync + 'static {
    /// Sends the request once, without retrying.
    fn send(
        &self,
        request: TransportRequest,
    ) -> BoxFuture<'_, Result<TransportResponse, TransportError>>;
}

/// The real transport: reqwest with rustls, a per-attempt timeout and a user agent.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// Builds the transport; `timeout` bounds one attempt from connect to the last body byte.
    pub fn new(timeout: Duration) -> Result<Self, AtlassianError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("reseat/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AtlassianError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client })
    }
}

fn transport_error(error: reqwest::Error) -> TransportError {
    // reqwest error texts name the URL, never headers, so they hold no credentials.
    let (timeout, connect) = (error.is_timeout(), error.is_connect());
    let text = error.without_url().to_string();
    if timeout {
        TransportError::Timeout
    } else if connect {
        TransportError::Connect(text)
    } else {
        TransportError::Dropped(text)
    }
}

impl Transport for ReqwestTransport {
    fn send(
        &self,
        request: TransportRequest,
    ) -> BoxFuture<'_, Result<TransportResponse, TransportError>> {
        Box::pin(async move {
            let mut authorization =
                header::HeaderValue::from_str(request.authorization.expose_secret())
                    .map_err(|_| TransportError::Connect("credentials are not ASCII".into()))?;
            authorization.set_sensitive(true);
            let mut builder = self
                .client
                .request(request.method, request.url)
                .header(header::AUTHORIZATION, authorization)
                .header(header::ACCEPT, "application/json");
            if let Some(body) = request.body {
                builder = builder
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(body);
            }
            let response = builder.send().await.map_err(transport_error)?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(transport_error)?.to_vec();
            Ok(TransportResponse {
                status,
                headers,
                body,
            })
        })
    }
}
