//! Fault and load injection (latency, a request-rate limit, random 429/5xx, held
//! requests, dropped connections and lost answers) and the request log, both applied by
//! one middleware in front of every Atlassian route (not `/_sim/`).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::errors::{ApiError, Family};
use super::net::ConnKill;
use super::state::{SimState, lock};

/// A kind of injected failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// 429 with `Retry-After: 1`.
    RateLimited,
    /// 500 in the family's error format.
    ServerError,
    /// 503 with `Retry-After: 1`.
    Unavailable,
    /// The request is held for `timeout_ms`, then the connection is closed unanswered.
    Timeout,
    /// The connection is closed without a response.
    Drop,
    /// The request takes effect upstream, then the connection is closed before the
    /// answer is written: the client sees a reset or an incomplete message, never a status.
    Lost,
}

/// Requests per second each API family allows on its own, in fixed one-second windows;
/// `None` (or `0` in a patch) for no limit of the family's own. The families are counted
/// separately, as Atlassian's are: a client can use them side by side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FamilyLimits {
    /// Organizations admin API (`/admin/...`).
    pub admin: Option<u32>,
    /// Jira platform (`/rest/api/...` and every other site path).
    pub jira: Option<u32>,
    /// Confluence (`/wiki/...`).
    pub confluence: Option<u32>,
    /// Jira Service Management (`/rest/servicedeskapi/...`).
    pub jsm: Option<u32>,
}

impl FamilyLimits {
    /// The same limits with `0` read as "none".
    pub fn normalized(self) -> FamilyLimits {
        let n = |l: Option<u32>| l.filter(|r| *r > 0);
        FamilyLimits {
            admin: n(self.admin),
            jira: n(self.jira),
            confluence: n(self.confluence),
            jsm: n(self.jsm),
        }
    }

    fn get(&self, family: Family) -> Option<u32> {
        match family {
            Family::Admin => self.admin,
            Family::Jira => self.jira,
            Family::Confluence => self.confluence,
            Family::Jsm => self.jsm,
        }
    }
}

/// Current fault settings (see `docs/simulator.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultSettings {
    /// Added to every Atlassian request, in milliseconds.
    pub latency_ms: u64,
    /// Requests per second over all Atlassian routes together (one shared window, on top
    /// of the families' own); above it, 429 with `Retry-After`.
    pub rate_limit: Option<u32>,
    /// Each API family's own requests per second.
    pub family_rate_limits: FamilyLimits,
    /// Share of requests (0..=1) that fail with one of `fail_kinds`.
    pub fail_rate: f64,
    /// Kinds drawn (uniformly) for failing requests.
    pub fail_kinds: Vec<FaultKind>,
    /// How long a `timeout` fault holds the request before closing it, in milliseconds.
    pub timeout_ms: u64,
    /// Share of requests (0..=1) whose answer is lost after they took effect (kind `lost`),
    /// rolled after the other faults; see `lose_mutations_only`.
    pub lose_rate: f64,
    /// Whether `lose_rate` applies only to mutations (`POST`, `PUT`, `PATCH`, `DELETE`,
    /// except the read-only `POST .../search`); default true.
    pub lose_mutations_only: bool,
    /// Delay before a membership change an API accepted becomes visible to reads, in
    /// milliseconds (eventual consistency; 0 = at once).
    pub consistency_ms: u64,
}

impl Default for FaultSettings {
    fn default() -> Self {
        FaultSettings {
            latency_ms: 0,
            rate_limit: None,
            family_rate_limits: FamilyLimits::default(),
            fail_rate: 0.0,
            fail_kinds: vec![
                FaultKind::RateLimited,
                FaultKind::ServerError,
                FaultKind::Unavailable,
                FaultKind::Timeout,
                FaultKind::Drop,
            ],
            timeout_ms: 30_000,
            lose_rate: 0.0,
            lose_mutations_only: true,
            consistency_ms: 0,
        }
    }
}

/// A partial update of [`FaultSettings`]; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct FaultPatch {
    /// New latency.
    pub latency_ms: Option<u64>,
    /// New rate limit; `0` turns the limit off.
    pub rate_limit: Option<u32>,
    /// New per-family limits; replaces all four (absent or `0` = none).
    pub family_rate_limits: Option<FamilyLimits>,
    /// New fail rate (0..=1).
    pub fail_rate: Option<f64>,
    /// New failure kinds (non-empty).
    pub fail_kinds: Option<Vec<FaultKind>>,
    /// New hold time for `timeout` faults.
    pub timeout_ms: Option<u64>,
    /// New lost-answer rate (0..=1).
    pub lose_rate: Option<f64>,
    /// Whether lost answers hit only mutations.
    pub lose_mutations_only: Option<bool>,
    /// New consistency delay; changes already accepted keep their time.
    pub consistency_ms: Option<u64>,
}

impl FaultSettings {
    /// Applies a patch; errors name the bad field.
    pub fn apply(&mut self, patch: FaultPatch) -> Result<(), String> {
        if let Some(r) = patch.fail_rate {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("fail_rate must be between 0 and 1, got {r}"));
            }
            self.fail_rate = r;
        }
        if let Some(r) = patch.lose_rate {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("lose_rate must be between 0 and 1, got {r}"));
            }
            self.lose_rate = r;
        }
        if let Some(m) = patch.lose_mutations_only {
            self.lose_mutations_only = m;
        }
        if let Some(c) = patch.consistency_ms {
            self.consistency_ms = c;
        }
        if let Some(k) = patch.fail_kinds {
            if k.is_empty() {
                return Err("fail_kinds must not be empty".to_owned());
            }
            self.fail_kinds = k;
        }
        if let Some(l) = patch.latency_ms {
            self.latency_ms = l;
        }
        if let Some(r) = patch.rate_limit {
            self.rate_limit = (r > 0).then_some(r);
        }
        if let Some(f) = patch.family_rate_limits {
            self.family_rate_limits = f.normalized();
        }
        if let Some(t) = patch.timeout_ms {
            self.timeout_ms = t;
        }
        Ok(())
    }
}

/// One request seen by the simulator.
#[derive(Clone, Debug, Serialize)]
pub struct LogEntry {
    /// Sequence number, from 1.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Status sent; 0 when the connection was closed without a response.
    pub status: u16,
    /// The injected fault, if any.
    pub fault: Option<FaultKind>,
    /// Time from arrival to response, in milliseconds.
    pub elapsed_ms: u64,
    /// Arrival time.
    pub at: DateTime<Utc>,
}

/// Most entries kept; older ones are discarded (the sequence number keeps counting).
const LOG_CAP: usize = 500_000;

/// Run-time fault state: settings, the rate window and the fault dice.
pub(crate) struct Faults {
    pub settings: Mutex<FaultSettings>,
    /// Rate windows: index 0 for `rate_limit`, then one per family ([`window_of`]).
    windows: Mutex<[(Instant, u32); 5]>,
    rng: Mutex<StdRng>,
    log: Mutex<VecDeque<LogEntry>>,
    seq: AtomicU64,
}

enum Admission {
    Allowed { remaining: u32, reset_in: Duration },
    Limited { retry_after: Duration },
}

impl Faults {
    pub fn new(settings: FaultSettings, seed: u64) -> Faults {
        Faults {
            settings: Mutex::new(settings),
            windows: Mutex::new([(Instant::now(), 0); 5]),
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x5eed_fa17)),
            log: Mutex::new(VecDeque::new()),
            seq: AtomicU64::new(0),
        }
    }

    /// Fixed one-second windows: simple, and what "N requests per second" means to a reader.
    fn admit(&self, window: usize, limit: u32) -> Admission {
        let mut windows = lock(&self.windows);
        let w = &mut windows[window];
        let now = Instant::now();
        if now.duration_since(w.0) >= Duration::from_secs(1) {
            *w = (now, 0);
        }
        let reset_in = Duration::from_secs(1).saturating_sub(now.duration_since(w.0));
        if w.1 >= limit {
            return Admission::Limited {
                retry_after: reset_in,
            };
        }
        w.1 += 1;
        Admission::Allowed {
            remaining: limit - w.1,
            reset_in,
        }
    }

    fn roll(&self, settings: &FaultSettings) -> Option<FaultKind> {
        if settings.fail_rate <= 0.0 || settings.fail_kinds.is_empty() {
            return None;
        }
        let mut rng = lock(&self.rng);
        if rng.random::<f64>() >= settings.fail_rate {
            return None;
        }
        Some(settings.fail_kinds[rng.random_range(0..settings.fail_kinds.len())])
    }

    /// Whether this request's answer is lost after it took effect (`lose_rate`).
    fn roll_lost(&self, settings: &FaultSettings, method: &str, path: &str) -> bool {
        if settings.lose_rate <= 0.0 || (settings.lose_mutations_only && !is_mutation(method, path))
        {
            return false;
        }
        lock(&self.rng).random::<f64>() < settings.lose_rate
    }

    fn record(&self, mut entry: LogEntry) {
        entry.seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let mut log = lock(&self.log);
        if log.len() >= LOG_CAP {
            log.pop_front();
        }
        log.push_back(entry);
    }

    pub fn log(&self) -> Vec<LogEntry> {
        lock(&self.log).iter().cloned().collect()
    }

    pub fn clear_log(&self) {
        lock(&self.log).clear();
    }

    pub fn count(&self, method: &str, path: &str) -> usize {
        lock(&self.log)
            .iter()
            .filter(|e| e.method.eq_ignore_ascii_case(method) && e.path == path)
            .count()
    }
}

/// A request that changes state: `POST`, `PUT`, `PATCH` or `DELETE`, except the searches
/// that the APIs send as `POST` (`.../users/search`).
pub fn is_mutation(method: &str, path: &str) -> bool {
    let writes = ["POST", "PUT", "PATCH", "DELETE"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method));
    writes && !path.ends_with("/search")
}

/// The rate window of a family's own limit.
fn window_of(family: Family) -> usize {
    match family {
        Family::Admin => 1,
        Family::Jira => 2,
        Family::Confluence => 3,
        Family::Jsm => 4,
    }
}

/// `RateLimit-Reason` of a 429: Jira's documented `jira-burst-based` for Jira, the same
/// form for the other families, `global-burst-based` for the shared `rate_limit`.
fn reason_of(window: usize) -> &'static str {
    match window {
        1 => "admin-burst-based",
        2 => "jira-burst-based",
        3 => "confluence-burst-based",
        4 => "jsm-burst-based",
        _ => "global-burst-based",
    }
}

/// A limit that applied to a request: which, and what it left.
#[derive(Clone, Copy)]
struct RateState {
    limit: u32,
    remaining: u32,
    reset_in: Duration,
}

fn header_secs(d: Duration) -> u64 {
    // Retry-After is whole seconds; never tell a client to retry "now".
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The middleware: latency, rate limit, random faults, then the handler; logs the outcome.
pub(crate) async fn layer(State(sim): State<SimState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let at = Utc::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let kill = req
        .extensions()
        .get::<ConnectInfo<ConnKill>>()
        .map(|c| c.0.clone());
    let family = Family::of_path(&path);
    let faults = sim.faults();
    let settings = lock(&faults.settings).clone();
    let shutdown = sim.shutdown_token();

    if settings.latency_ms > 0 {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(settings.latency_ms)) => {}
            _ = shutdown.cancelled() => {}
        }
    }

    // The shared limit first, then the family's own; the first that is exhausted answers.
    let windows = [
        (0, settings.rate_limit),
        (window_of(family), settings.family_rate_limits.get(family)),
    ];
    let mut tightest: Option<RateState> = None;
    let mut limited = None;
    for (window, limit) in windows {
        let Some(limit) = limit else { continue };
        match faults.admit(window, limit) {
            Admission::Limited { retry_after } => {
                limited = Some((window, limit, retry_after));
                break;
            }
            Admission::Allowed {
                remaining,
                reset_in,
            } => {
                if tightest.is_none_or(|t| remaining < t.remaining) {
                    tightest = Some(RateState {
                        limit,
                        remaining,
                        reset_in,
                    });
                }
            }
        }
    }
    let fault;
    let mut response = match limited {
        Some((window, limit, retry_after)) => {
            fault = Some(FaultKind::RateLimited);
            tightest = Some(RateState {
                limit,
                remaining: 0,
                reset_in: retry_after,
            });
            let mut r = ApiError::new(
                family,
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests. Rate limit exceeded.",
            )
            .with_retry_after(header_secs(retry_after))
            .into_response();
            r.headers_mut().insert(
                HeaderName::from_static("ratelimit-reason"),
                HeaderValue::from_static(reason_of(window)),
            );
            r
        }
        None => {
            fault = faults.roll(&settings).or_else(|| {
                faults
                    .roll_lost(&settings, &method, &path)
                    .then_some(FaultKind::Lost)
            });
            match fault {
                None => {
                    let answer = next.run(req).await;
                    if sim.config().validate_responses {
                        check_answer(&sim, &method, &path, answer).await
                    } else {
                        answer
                    }
                }
                Some(FaultKind::Lost) => {
                    // The handler runs to the end (the change is made), then the answer is
                    // thrown away with the connection.
                    let _answer = next.run(req).await;
                    dropped(kill.as_ref())
                }
                Some(FaultKind::RateLimited) => ApiError::new(
                    family,
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many requests (injected fault).",
                )
                .with_retry_after(1)
                .into_response(),
                Some(FaultKind::ServerError) => ApiError::new(
                    family,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal server error (injected fault).",
                )
                .into_response(),
                Some(FaultKind::Unavailable) => ApiError::new(
                    family,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service unavailable (injected fault).",
                )
                .with_retry_after(1)
                .into_response(),
                Some(FaultKind::Timeout) => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(settings.timeout_ms)) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    dropped(kill.as_ref())
                }
                Some(FaultKind::Drop) => dropped(kill.as_ref()),
            }
        }
    };
    if let Some(t) = tightest {
        add_rate_headers(&mut response, t.limit, t.remaining, t.reset_in);
    }
    let unanswered = matches!(
        fault,
        Some(FaultKind::Timeout | FaultKind::Drop | FaultKind::Lost)
    ) && kill.is_some();
    faults.record(LogEntry {
        seq: 0,
        method,
        path,
        query,
        status: if unanswered {
            0
        } else {
            response.status().as_u16()
        },
        fault,
        elapsed_ms: started.elapsed().as_millis() as u64,
        at,
    });
    response
}

/// Checks a JSON answer against the vendored specs and records what violates them
/// (see [`crate::validate`]); the answer is passed on unchanged.
#[cfg(feature = "validate")]
async fn check_answer(sim: &SimState, method: &str, path: &str, answer: Response) -> Response {
    let (parts, body) = answer.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let json = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    if json && let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        let violations = crate::validate::check(method, path, parts.status.as_u16(), &value);
        for v in &violations {
            tracing::error!(violation = %v, "simulator answer violates the spec");
        }
        sim.record_violations(violations);
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Without the `validate` feature there is nothing to check against.
#[cfg(not(feature = "validate"))]
async fn check_answer(_: &SimState, _: &str, _: &str, answer: Response) -> Response {
    answer
}

/// Closes the connection unanswered; the returned response is never written.
fn dropped(kill: Option<&ConnKill>) -> Response {
    match kill {
        Some(k) => {
            k.kill();
            StatusCode::BAD_GATEWAY.into_response()
        }
        // Without our listener (never in practice) the best we can do is a 502.
        None => StatusCode::BAD_GATEWAY.into_response(),
    }
}

fn add_rate_headers(resp: &mut Response, limit: u32, remaining: u32, reset_in: Duration) {
    let reset = (Utc::now() + chrono::Duration::from_std(reset_in).unwrap_or_default())
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let h = resp.headers_mut();
    h.insert(
        HeaderName::from_static("x-ratelimit-limit"),
        HeaderValue::from(limit),
    );
    h.insert(
        HeaderName::from_static("x-ratelimit-remaining"),
        HeaderValue::from(remaining),
    );
    if let Ok(v) = HeaderValue::from_str(&reset) {
        h.insert(HeaderName::from_static("x-ratelimit-reset"), v);
    }
}
