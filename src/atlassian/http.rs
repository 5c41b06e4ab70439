//! The shared HTTP layer of every Atlassian client: authentication, the client-side rate
//! limit and concurrency bound, and the ONE retry policy.
//!
//! Retry policy (decided in [`verdict`]):
//! * 429 — always retried (the request was refused before it ran), after `Retry-After`
//!   (seconds or HTTP date), else `X-RateLimit-Reset`, else exponential backoff.
//! * 503 with `Retry-After` — load shedding before the request ran: retried like a 429.
//! * other 5xx, timeouts, dropped connections — retried only for idempotent calls, with
//!   exponential backoff and jitter; a non-idempotent call may already have taken effect,
//!   so it fails with [`AtlassianError::Transient`] and the caller decides.
//! * connection refused / not established — retried for every call (nothing was sent).
//! * 401, 403, 404, 409, other 4xx and malformed bodies — never retried.
//!
//! Which calls are idempotent is declared per call ([`Call::idempotent`]); see
//! `docs/atlassian-endpoints.md`. All waits use `tokio::time`, so tests run on a paused clock.

use crate::atlassian::config::{FamilyLimits, RetrySettings};
use crate::atlassian::error::{
    AtlassianError, MembershipChange, MembershipOutcome, classify_membership,
};
use crate::atlassian::product::{AccountId, GroupId};
use base64::Engine as _;
use governor::{Quota, RateLimiter, clock, middleware::NoOpMiddleware, state};
use rand::Rng as _;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::DeserializeOwned;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use url::Url;

pub use crate::atlassian::transport::{
    BoxFuture, ReqwestTransport, Transport, TransportError, TransportRequest, TransportResponse,
};
pub use reqwest::Method;

/// How the client authenticates to one API family. `Debug` never shows the secret.
#[derive(Clone)]
pub enum Auth {
    /// `Authorization: Bearer <org admin API key>` (Organizations admin API).
    Bearer(SecretString),
    /// `Authorization: Basic base64(email:api_token)` (site APIs).
    Basic {
        /// The user's email.
        email: String,
        /// The user's API token.
        token: SecretString,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bearer(_) => f.write_str("Bearer([redacted])"),
            Self::Basic { email, .. } => write!(f, "Basic({email}:[redacted])"),
        }
    }
}

impl Auth {
    fn header_value(&self) -> SecretString {
        match self {
            Self::Bearer(key) => format!("Bearer {}", key.expose_secret()).into(),
            Self::Basic { email, token } => {
                let pair = format!("{email}:{}", token.expose_secret());
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                format!("Basic {encoded}").into()
            }
        }
    }
}

/// governor clock on `tokio::time`, so rate-limit waits follow a paused test clock.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TokioClock;

impl clock::Clock for TokioClock {
    type Instant = std::time::Instant;
    fn now(&self) -> Self::Instant {
        tokio::time::Instant::now().into_std()
    }
}

type Limiter = RateLimiter<
    state::NotKeyed,
    state::InMemoryState,
    TokioClock,
    NoOpMiddleware<std::time::Instant>,
>;

/// One API call, described before it is sent.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    method: Method,
    /// The path template as documented (`/rest/api/3/group/member`), for logs and errors.
    template: &'static str,
    /// Path segments after the base URL, unencoded.
    segments: Vec<String>,
    query: Vec<(&'static str, String)>,
    body: Option<serde_json::Value>,
    idempotent: bool,
}

impl Call {
    /// A call to `template`, with `{placeholders}` filled in order from `args`. GET, PUT and
    /// DELETE start idempotent, POST does not.
    pub(crate) fn new(method: Method, template: &'static str, args: &[&str]) -> Self {
        let mut args = args.iter();
        let segments = template
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|segment| {
                if segment.starts_with('{') {
                    args.next().map_or_else(String::new, |a| (*a).to_owned())
                } else {
                    segment.to_owned()
                }
            })
            .collect();
        let idempotent = method != Method::POST;
        Self {
            method,
            template,
            segments,
            query: Vec::new(),
            body: None,
            idempotent,
        }
    }

    pub(crate) fn get(template: &'static str, args: &[&str]) -> Self {
        Self::new(Method::GET, template, args)
    }

    pub(crate) fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    pub(crate) fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Declares whether sending this call twice has the same effect as once.
    pub(crate) fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    fn endpoint(&self) -> String {
        format!("{} {}", self.method, self.template)
    }
}

/// One API family's connection: base URL, auth, limits and the retry policy.
pub(crate) struct ApiClient {
    family: &'static str,
    base: Url,
    auth: Auth,
    transport: Arc<dyn Transport>,
    retry: RetrySettings,
    limiter: Limiter,
    permits: Semaphore,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("family", &self.family)
            .field("base", &self.base.as_str())
            .field("auth", &self.auth)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// What to do with one attempt's outcome.
enum Verdict {
    Done(TransportResponse),
    Retry {
        error: AtlassianError,
        wait: Option<Duration>,
    },
    Fail(AtlassianError),
}

/// THE retry decision for one attempt (see the module docs).
fn verdict(outcome: Result<TransportResponse, TransportError>, idempotent: bool) -> Verdict {
    let response = match outcome {
        Ok(response) => response,
        Err(TransportError::Connect(message)) => {
            return Verdict::Retry {
                error: AtlassianError::Transient {
                    status: None,
                    message: format!("cannot connect: {message}"),
                },
                wait: None,
            };
        }
        Err(other) => {
            let message = match other {
                TransportError::Timeout => "timed out".to_owned(),
                TransportError::Dropped(m) | TransportError::Connect(m) => {
                    format!("connection dropped: {m}")
                }
            };
            let error = AtlassianError::Transient {
                status: None,
                message,
            };
            return if idempotent {
                Verdict::Retry { error, wait: None }
            } else {
                Verdict::Fail(error)
            };
        }
    };
    let status = response.status;
    if (200..300).contains(&status) {
        return Verdict::Done(response);
    }
    let wait = server_wait(&response.headers);
    let error = AtlassianError::from_status(status, &response.body, wait);
    match status {
        429 => Verdict::Retry { error, wait },
        503 if wait.is_some() => Verdict::Retry {
            error: AtlassianError::RateLimited { retry_after: wait },
            wait,
        },
        500..=599 if idempotent => Verdict::Retry { error, wait },
        _ => Verdict::Fail(error),
    }
}

/// How long the server asked us to wait: `Retry-After` (delta seconds or HTTP date), else
/// `X-RateLimit-Reset` (ISO 8601, with or without seconds).
pub(crate) fn server_wait(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let until = |at: chrono::DateTime<chrono::Utc>| {
        (at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO)
    };
    if let Some(value) = text("retry-after") {
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        if let Ok(seconds) = value.parse::<f64>()
            && seconds.is_finite()
            && seconds >= 0.0
        {
            return Some(Duration::from_secs_f64(seconds.min(86_400.0)));
        }
        if let Ok(at) = chrono::DateTime::parse_from_rfc2822(value) {
            return Some(until(at.to_utc()));
        }
    }
    if let Some(value) = text("x-ratelimit-reset") {
        if let Ok(at) = chrono::DateTime::parse_from_rfc3339(value) {
            return Some(until(at.to_utc()));
        }
        if let Ok(at) = chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%MZ") {
            return Some(until(at.and_utc()));
        }
    }
    None
}

/// Exponential backoff with jitter: a random delay in `[d/2, d]`, `d = base * 2^(attempt-1)`
/// capped at `max_delay`.
fn backoff(retry: &RetrySettings, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    let ceiling = retry.base_delay.saturating_mul(factor).min(retry.max_delay);
    let floor = ceiling / 2;
    if ceiling <= floor {
        return ceiling;
    }
    let nanos = rand::rng().random_range(floor.as_nanos()..=ceiling.as_nanos());
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

impl ApiClient {
    pub(crate) fn new(
        family: &'static str,
        base: Url,
        auth: Auth,
        limits: FamilyLimits,
        retry: RetrySettings,
        transport: Arc<dyn Transport>,
    ) -> Self {
        let rate = NonZeroU32::new(limits.requests_per_second).unwrap_or(NonZeroU32::MIN);
        // Nearly evenly spaced: Atlassian (and the simulator) count requests in fixed
        // windows, and a full second's burst at a window's edge would spend the next window's
        // budget and earn 429s that hold a worker for a whole `Retry-After`. A burst of 2% of
        // the rate keeps that overshoot small while letting several requests go per timer
        // tick (waits are rounded to the millisecond, which alone would cap a strictly
        // spaced 500/s at about 330/s).
        //
        // A limiter that allows a burst of b at a sustained r starts up to r + b requests in
        // some one-second window, and a fixed window upstream answers the extra b with 429s;
        // so the sustained rate is r - b, and no second ever sees more than r. (Below 100/s
        // the burst is one request: at most one over, rarely, for the full rate.)
        let burst = NonZeroU32::new(rate.get() / 50).unwrap_or(NonZeroU32::MIN);
        let sustained = if burst.get() > 1 {
            NonZeroU32::new(rate.get() - burst.get()).unwrap_or(NonZeroU32::MIN)
        } else {
            rate
        };
        let limiter = RateLimiter::direct_with_clock(
            Quota::per_second(sustained).allow_burst(burst),
            TokioClock,
        );
        let permits = Semaphore::new(usize::try_from(limits.concurrency.max(1)).unwrap_or(1));
        Self {
            family,
            base,
            auth,
            transport,
            retry,
            limiter,
            permits,
        }
    }

    fn url(&self, call: &Call) -> Result<Url, AtlassianError> {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| {
                AtlassianError::Invalid(format!("base URL {} cannot take a path", self.base))
            })?;
            path.pop_if_empty();
            path.extend(&call.segments);
        }
        if !call.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &call.query {
                pairs.append_pair(name, value);
            }
        }
        Ok(url)
    }

    async fn wait_for_rate_limit(&self) {
        while let Err(not_until) = self.limiter.check() {
            let wait = not_until.wait_time_from(clock::Clock::now(&TokioClock));
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// Sends the call under the family's limits and the retry policy; returns the 2xx
    /// response or the error left after retries.
    #[tracing::instrument(skip_all, fields(family = self.family, endpoint = %call.endpoint()))]
    pub(crate) async fn send(&self, call: &Call) -> Result<TransportResponse, AtlassianError> {
        self.send_tracked(call).await.0
    }

    /// [`ApiClient::send`], also saying whether an attempt before the last one may have
    /// taken effect upstream (its answer was lost: a dropped connection, a timeout, a 5xx).
    /// Then the last answer ("not a member", "already a member") proves nothing about the
    /// state before the call.
    async fn send_tracked(&self, call: &Call) -> (Result<TransportResponse, AtlassianError>, bool) {
        let mut earlier_may_have_acted = false;
        let result = self.send_attempts(call, &mut earlier_may_have_acted).await;
        (result, earlier_may_have_acted)
    }

    async fn send_attempts(
        &self,
        call: &Call,
        earlier_may_have_acted: &mut bool,
    ) -> Result<TransportResponse, AtlassianError> {
        let request = TransportRequest {
            method: call.method.clone(),
            url: self.url(call)?,
            authorization: self.auth.header_value(),
            body: call
                .body
                .as_ref()
                .map(|body| serde_json::to_vec(body).unwrap_or_default()),
        };
        let max_attempts = self.retry.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = {
                let _permit = self.permits.acquire().await.map_err(|_| {
                    AtlassianError::Invalid("the client is shutting down".to_owned())
                })?;
                self.wait_for_rate_limit().await;
                self.transport.send(request.clone()).await
            };
            let may_have_acted = match &outcome {
                Err(TransportError::Connect(_)) => false,
                Err(_) => true,
                Ok(response) => response.status >= 500,
            };
            let (error, wait) = match verdict(outcome, call.idempotent) {
                Verdict::Done(response) => return Ok(response),
                Verdict::Fail(error) => return Err(error),
                Verdict::Retry { error, wait } => (error, wait),
            };
            if attempt >= max_attempts {
                tracing::warn!(attempt, %error, "giving up after the last attempt");
                return Err(error);
            }
            let delay = wait.unwrap_or_else(|| backoff(&self.retry, attempt));
            if delay > self.retry.max_retry_wait {
                tracing::warn!(?delay, %error, "server asked for a longer wait than allowed");
                return Err(match error {
                    AtlassianError::RateLimited { .. } => AtlassianError::RateLimited {
                        retry_after: Some(delay),
                    },
                    other => other,
                });
            }
            tracing::debug!(attempt, ?delay, %error, "retrying");
            *earlier_may_have_acted |= may_have_acted;
            tokio::time::sleep(delay).await;
        }
    }

    /// Sends the call and decodes a JSON body; malformed JSON is a [`AtlassianError::Decode`].
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: &Call) -> Result<T, AtlassianError> {
        let response = self.send(call).await?;
        decode(&call.endpoint(), &response.body)
    }

    /// Sends the call and ignores the body.
    pub(crate) async fn execute(&self, call: &Call) -> Result<(), AtlassianError> {
        self.send(call).await.map(drop)
    }

    /// Adds (`POST ?groupId=` with `{accountId}`) or removes (`DELETE ?groupId=&accountId=`)
    /// a group member; Jira and Confluence spell these calls the same way. The add is retried
    /// like an idempotent call: a repeat answers "already a member", which
    /// [`classify_membership`] counts as success, as it does "not a member" for a remove.
    /// Such an answer after a retry whose earlier attempt may have acted is `Changed`.
    pub(crate) async fn change_membership(
        &self,
        change: MembershipChange,
        template: &'static str,
        group: &GroupId,
        account: &AccountId,
    ) -> Result<MembershipOutcome, AtlassianError> {
        let call = match change {
            MembershipChange::Add => Call::new(Method::POST, template, &[])
                .query("groupId", group)
                .json(serde_json::json!({ "accountId": account }))
                .idempotent(true),
            MembershipChange::Remove => Call::new(Method::DELETE, template, &[])
                .query("groupId", group)
                .query("accountId", account),
        };
        let (result, earlier_may_have_acted) = self.send_tracked(&call).await;
        match classify_membership(change, result.map(drop))? {
            // An earlier attempt may have made the change and lost its answer: "not a
            // member" / "already a member" then says nothing about who made it, so the call
            // counts as having changed the membership (the journal keeps what was planned).
            MembershipOutcome::AlreadyInPlace if earlier_may_have_acted => {
                tracing::info!(
                    ?change,
                    "the membership was already in place after a retry; an earlier attempt may have changed it"
                );
                Ok(MembershipOutcome::Changed)
            }
            outcome => Ok(outcome),
        }
    }
}

pub(crate) fn decode<T: DeserializeOwned>(
    endpoint: &str,
    body: &[u8],
) -> Result<T, AtlassianError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| AtlassianError::Decode {
        endpoint: endpoint.to_owned(),
        message: format!("at `{}`: {}", error.path(), error.inner()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        assert_eq!(
            server_wait(&headers(&[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        let at = chrono::Utc::now() + chrono::Duration::seconds(90);
        let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let wait = server_wait(&headers(&[("retry-after", &date)])).unwrap();
        assert!(
            wait > Duration::from_secs(80) && wait <= Duration::from_secs(90),
            "{wait:?}"
        );
        let past = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(
            server_wait(&headers(&[("retry-after", past)])),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn ratelimit_reset_is_used_without_retry_after() {
        let at = chrono::Utc::now() + chrono::Duration::seconds(30);
        let wait = server_wait(&headers(&[("x-ratelimit-reset", &at.to_rfc3339())])).unwrap();
        assert!(wait > Duration::from_secs(25), "{wait:?}");
        let minutes = (chrono::Utc::now() + chrono::Duration::minutes(3))
            .format("%Y-%m-%dT%H:%MZ")
            .to_string();
        let wait = server_wait(&headers(&[("x-ratelimit-reset", &minutes)])).unwrap();
        assert!(wait > Duration::from_secs(100), "{wait:?}");
        assert_eq!(
            server_wait(&headers(&[("x-ratelimit-reset", "soon")])),
            None
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let retry = RetrySettings {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetrySettings::default()
        };
        let first = backoff(&retry, 1);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let third = backoff(&retry, 3);
        assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
        assert!(backoff(&retry, 40) <= Duration::from_secs(1));
    }

    #[test]
    fn auth_debug_hides_secrets() {
        let bearer = Auth::Bearer("org-key-123".to_owned().into());
        let basic = Auth::Basic {
            email: "admin@acme.test".into(),
            token: "tok-456".to_owned().into(),
        };
        let shown = format!("{bearer:?} {basic:?}");
        assert!(
            !shown.contains("org-key-123") && !shown.contains("tok-456"),
            "{shown}"
        );
        let request = TransportRequest {
            method: Method::GET,
            url: Url::parse("http://x.test/").unwrap(),
            authorization: basic.header_value(),
            body: None,
        };
        assert!(!format!("{request:?}").contains("Basic "));
    }

    #[test]
    fn placeholders_fill_path_segments() {
        let call = Call::get(
            "/wiki/rest/api/group/{groupId}/membersByGroupId",
            &["g 1/x"],
        );
        assert_eq!(
            call.segments,
            ["wiki", "rest", "api", "group", "g 1/x", "membersByGroupId"]
        );
        let client = ApiClient::new(
            "test",
            Url::parse("http://127.0.0.1:9/base/").unwrap(),
            Auth::Bearer("k".to_owned().into()),
            FamilyLimits::default(),
            RetrySettings::default(),
            Arc::new(ReqwestTransport::new(Duration::from_secs(1)).unwrap()),
        );
        let url = client.url(&call.query("start", 5)).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/base/wiki/rest/api/group/g%201%2Fx/membersByGroupId?start=5"
        );
    }
}
