//! A fake Slack: the Web API methods reseat calls (`users.info`, `chat.postMessage`,
//! `chat.update`, `views.open`) under `/api/`, a `response_url` receiver under `/response/`,
//! and a signer that makes slash commands and interaction payloads the way Slack signs
//! them, so that tests and `reseat demo` drive reseat's Slack routes without Slack.
//!
//! Everything it receives is recorded ([`SlackState::calls`], [`SlackState::responses`])
//! and readable over HTTP under `/_slack/` (what `reseat slack send` prints). Like Slack,
//! the Web API answers HTTP 200 with `{"ok": false, "error": …}` on a failure.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The bot token the fake accepts by default (`Authorization: Bearer …`).
pub const DEFAULT_BOT_TOKEN: &str = "xoxb-sim-bot-token";
/// The signing secret the fake's [`sign`] uses by default.
pub const DEFAULT_SIGNING_SECRET: &str = "sim-slack-signing-secret";
/// The team id in the payloads it makes.
pub const TEAM_ID: &str = "T0SIMTEAM";

/// How to start the fake.
#[derive(Clone, Debug)]
pub struct SlackSimConfig {
    /// Address to listen on; default `127.0.0.1:0` (a free port).
    pub listen: SocketAddr,
    /// The bot token the Web API accepts.
    pub bot_token: String,
}

impl Default for SlackSimConfig {
    fn default() -> Self {
        SlackSimConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            bot_token: DEFAULT_BOT_TOKEN.to_owned(),
        }
    }
}

/// A Slack user as `users.info` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct FakeUser {
    pub id: String,
    pub name: String,
    pub real_name: String,
    /// `profile.email` (needs the `users:read.email` scope at Slack); `None` hides it.
    pub email: Option<String>,
    pub deleted: bool,
    pub is_bot: bool,
}

impl FakeUser {
    pub fn new(id: &str, name: &str, email: Option<&str>) -> FakeUser {
        FakeUser {
            id: id.to_owned(),
            name: name.to_owned(),
            real_name: name.to_owned(),
            email: email.map(str::to_owned),
            deleted: false,
            is_bot: false,
        }
    }
}

/// One Web API call received: the method (`chat.postMessage`) and its arguments.
#[derive(Clone, Debug, Serialize)]
pub struct Call {
    pub method: String,
    pub args: Value,
}

/// One message posted to a `response_url`.
#[derive(Clone, Debug, Serialize)]
pub struct Responded {
    /// The `response_url`'s id (its last path segment).
    pub id: String,
    pub body: Value,
}

/// A message in a channel, as posted and then updated.
#[derive(Clone, Debug, Serialize)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    pub text: String,
    pub blocks: Value,
}

#[derive(Default)]
struct Inner {
    users: BTreeMap<String, FakeUser>,
    calls: Vec<Call>,
    responses: Vec<Responded>,
    messages: Vec<Message>,
    next: u64,
}

/// The fake's state, shared by its handlers and the test that holds it.
#[derive(Clone)]
pub struct SlackState {
    inner: Arc<Mutex<Inner>>,
    base_url: String,
    bot_token: String,
}

impl SlackState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds (or replaces) a user `users.info` knows.
    pub fn add_user(&self, user: FakeUser) {
        self.lock().users.insert(user.id.clone(), user);
    }

    /// Every Web API call received, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The calls of one method.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Everything posted to any `response_url`, oldest first.
    pub fn responses(&self) -> Vec<Responded> {
        self.lock().responses.clone()
    }

    /// The messages in channels, as they are now (after updates).
    pub fn messages(&self) -> Vec<Message> {
        self.lock().messages.clone()
    }

    /// A new `response_url` on this fake (Slack gives one with every command and click).
    pub fn response_url(&self) -> String {
        let mut inner = self.lock();
        inner.next += 1;
        format!("{}/response/r{}", self.base_url, inner.next)
    }

    /// A new `trigger_id` (for `views.open`).
    pub fn trigger_id(&self) -> String {
        let mut inner = self.lock();
        inner.next += 1;
        format!("{}.trigger", inner.next)
    }
}

/// A running fake.
pub struct SlackHandle {
    base_url: String,
    state: SlackState,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl SlackHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Where the Web API is: reseat's `restore.slack.api_base_url`.
    pub fn api_base_url(&self) -> String {
        format!("{}/api", self.base_url)
    }

    pub fn state(&self) -> &SlackState {
        &self.state
    }

    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Binds `config.listen` and serves until [`SlackHandle::shutdown`].
pub async fn spawn(config: SlackSimConfig) -> std::io::Result<SlackHandle> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let mut addr = listener.local_addr()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    let base_url = format!("http://{addr}");
    let state = SlackState {
        inner: Arc::default(),
        base_url: base_url.clone(),
        bot_token: config.bot_token,
    };
    let app = Router::new()
        .route("/api/{method}", post(web_api))
        .route("/response/{id}", post(respond))
        .route("/_slack/calls", get(list_calls))
        .route("/_slack/responses", get(list_responses))
        .with_state(state.clone());
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "slack simulator failed");
        }
    });
    Ok(SlackHandle {
        base_url,
        state,
        shutdown,
        task: Some(task),
    })
}

fn ok(value: Value) -> Response {
    axum::Json(value).into_response()
}

fn failed(error: &str) -> Response {
    ok(json!({ "ok": false, "error": error }))
}

/// The arguments of a Web API call: a JSON body, or a form (`users.info` is usually sent as
/// a form).
fn arguments(headers: &HeaderMap, body: &[u8]) -> Option<Value> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/json") {
        return serde_json::from_slice(body).ok();
    }
    let map: serde_json::Map<String, Value> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    Some(Value::Object(map))
}

async fn web_api(
    State(state): State<SlackState>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(state.bot_token.as_str()) {
        return failed(if bearer.is_none() {
            "not_authed"
        } else {
            "invalid_auth"
        });
    }
    let Some(args) = arguments(&headers, &body) else {
        return failed("invalid_json");
    };
    let mut inner = state.lock();
    inner.calls.push(Call {
        method: method.clone(),
        args: args.clone(),
    });
    let text = |key: &str| args.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    match method.as_str() {
        "users.info" => {
            let Some(user) = text("user").and_then(|id| inner.users.get(&id).cloned()) else {
                return failed("user_not_found");
            };
            let mut profile = json!({ "real_name": user.real_name, "display_name": user.name });
            if let Some(email) = &user.email {
                profile["email"] = json!(email);
            }
            ok(json!({
                "ok": true,
                "user": {
                    "id": user.id,
                    "team_id": TEAM_ID,
                    "name": user.name,
                    "real_name": user.real_name,
                    "deleted": user.deleted,
                    "is_bot": user.is_bot,
                    "profile": profile,
                }
            }))
        }
        "chat.postMessage" => {
            let Some(channel) = text("channel") else {
                return failed("channel_not_found");
            };
            if text("text").is_none() && args.get("blocks").is_none() {
                return failed("no_text");
            }
            inner.next += 1;
            let ts = format!("1700000000.{:06}", inner.next);
            inner.messages.push(Message {
                channel: channel.clone(),
                ts: ts.clone(),
                text: text("text").unwrap_or_default(),
                blocks: args.get("blocks").cloned().unwrap_or(Value::Null),
            });
            ok(json!({ "ok": true, "channel": channel, "ts": ts }))
        }
        "chat.update" => {
            let (Some(channel), Some(ts)) = (text("channel"), text("ts")) else {
                return failed("message_not_found");
            };
            let new_text = text("text").unwrap_or_default();
            let blocks = args.get("blocks").cloned().unwrap_or(Value::Null);
            match inner
                .messages
                .iter_mut()
                .find(|m| m.channel == channel && m.ts == ts)
            {
                Some(message) => {
                    message.text = new_text;
                    message.blocks = blocks;
                    ok(json!({ "ok": true, "channel": channel, "ts": ts }))
                }
                None => failed("message_not_found"),
            }
        }
        "views.open" => {
            if text("trigger_id").is_none() {
                return failed("invalid_trigger_id");
            }
            if args.get("view").is_none() {
                return failed("invalid_arguments");
            }
            inner.next += 1;
            ok(json!({ "ok": true, "view": { "id": format!("V{:08}", inner.next) } }))
        }
        _ => failed("unknown_method"),
    }
}

async fn respond(State(state): State<SlackState>, Path(id): Path<String>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
    };
    state.lock().responses.push(Responded { id, body });
    (StatusCode::OK, "ok").into_response()
}

async fn list_calls(State(state): State<SlackState>) -> Response {
    ok(json!(state.calls()))
}

async fn list_responses(State(state): State<SlackState>) -> Response {
    ok(json!(state.responses()))
}

/// `X-Slack-Signature` of a request: `v0=` and the hex HMAC-SHA256 of
/// `v0:{timestamp}:{body}` under the signing secret.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

/// A slash command as Slack sends it (`application/x-www-form-urlencoded`).
#[derive(Clone, Debug)]
pub struct SlashCommand {
    pub command: String,
    pub text: String,
    pub user_id: String,
    pub user_name: String,
    pub channel_id: String,
    pub response_url: String,
    pub trigger_id: String,
}

impl SlashCommand {
    /// The form body.
    pub fn body(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", "deprecated-verification-token")
            .append_pair("team_id", TEAM_ID)
            .append_pair("team_domain", "sim")
            .append_pair("channel_id", &self.channel_id)
            .append_pair("channel_name", "general")
            .append_pair("user_id", &self.user_id)
            .append_pair("user_name", &self.user_name)
            .append_pair("command", &self.command)
            .append_pair("text", &self.text)
            .append_pair("api_app_id", "A0SIMAPP")
            .append_pair("response_url", &self.response_url)
            .append_pair("trigger_id", &self.trigger_id)
            .finish()
    }
}

/// The form body of an interaction (`payload=<JSON>`).
pub fn interaction_body(payload: &Value) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

/// A `block_actions` payload: `user` clicked the button `action_id` (with `value`) on the
/// message `ts` in `channel`.
pub fn block_action(
    state: &SlackState,
    user: &str,
    action_id: &str,
    value: &str,
    channel: &str,
    ts: &str,
) -> Value {
    json!({
        "type": "block_actions",
        "team": { "id": TEAM_ID, "domain": "sim" },
        "user": { "id": user, "username": user, "team_id": TEAM_ID },
        "api_app_id": "A0SIMAPP",
        "trigger_id": state.trigger_id(),
        "response_url": state.response_url(),
        "container": { "type": "message", "message_ts": ts, "channel_id": channel },
        "channel": { "id": channel },
        "message": { "ts": ts },
        "actions": [{
            "type": "button",
            "action_id": action_id,
            "block_id": "decide",
            "value": value,
            "action_ts": "1700000000.000001",
        }],
    })
}

/// A `view_submission` payload of a modal (`callback_id`, `private_metadata`) whose input
/// block `block_id` / action `action_id` holds `value`.
pub fn view_submission(
    user: &str,
    callback_id: &str,
    private_metadata: &str,
    block_id: &str,
    action_id: &str,
    value: &str,
) -> Value {
    json!({
        "type": "view_submission",
        "team": { "id": TEAM_ID, "domain": "sim" },
        "user": { "id": user, "username": user, "team_id": TEAM_ID },
        "api_app_id": "A0SIMAPP",
        "view": {
            "id": "V00000001",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": { "values": { block_id: { action_id: { "type": "plain_text_input", "value": value } } } },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_slacks_documented_example() {
        // Slack's "Verifying requests from Slack" example.
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            sign(
                "8f742231b10e8888abcd99yyyzzz85a5",
                1531420618,
                body.as_bytes()
            ),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
    }
}
