//! A Microsoft Teams fake, for tests and the demo:
//!
//! - [`TeamsChannel`]: what an incoming webhook (or a Workflows "when a Teams webhook request
//!   is received" trigger) is to its sender. It accepts `POST /webhook/{anything}` with a
//!   JSON message, answers as Teams does (`200` with body `1`), and records every message,
//!   so tests can read the Adaptive Cards posted to the channel.
//! - [`OutgoingWebhook`]: what Teams sends to an outgoing webhook when someone @mentions
//!   it: the activity JSON and its `Authorization: HMAC <base64>` header, signed with the
//!   security token Teams shows when the webhook is created.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

/// A fake Teams channel that records what is posted to its incoming webhook.
pub struct TeamsChannel {
    url: String,
    messages: Arc<Mutex<Vec<Value>>>,
    shutdown: CancellationToken,
}

impl TeamsChannel {
    /// Listens on 127.0.0.1 (port 0: any free port).
    pub async fn spawn() -> std::io::Result<TeamsChannel> {
        Self::spawn_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    pub async fn spawn_on(addr: SocketAddr) -> std::io::Result<TeamsChannel> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let messages: Arc<Mutex<Vec<Value>>> = Arc::default();
        let app = Router::new()
            .route("/webhook/{*rest}", post(receive))
            .with_state(messages.clone());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(TeamsChannel {
            url: format!("http://{addr}/webhook/incoming/reseat-approvals"),
            messages,
            shutdown,
        })
    }

    /// The incoming-webhook URL to configure.
    pub fn webhook_url(&self) -> String {
        self.url.clone()
    }

    /// Every message posted so far, oldest first.
    pub fn messages(&self) -> Vec<Value> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The Adaptive Cards of every message posted so far.
    pub fn cards(&self) -> Vec<Value> {
        self.messages().iter().flat_map(adaptive_cards).collect()
    }
}

impl Drop for TeamsChannel {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The Adaptive Cards attached to a message.
pub fn adaptive_cards(message: &Value) -> Vec<Value> {
    message["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["contentType"] == "application/vnd.microsoft.card.adaptive")
        .map(|a| a["content"].clone())
        .collect()
}

/// Every `Action.OpenUrl` of a card: (title, url).
pub fn card_links(card: &Value) -> Vec<(String, String)> {
    card["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["type"] == "Action.OpenUrl")
        .map(|a| {
            (
                a["title"].as_str().unwrap_or_default().to_string(),
                a["url"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Every text of a card (text blocks and facts), for reading it in tests.
pub fn card_text(card: &Value) -> String {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for key in ["text", "title", "value"] {
                    if let Some(Value::String(text)) = map.get(key) {
                        out.push(text.clone());
                    }
                }
                for (key, inner) in map {
                    if key != "actions" {
                        walk(inner, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&card["body"], &mut out);
    out.join("\n")
}

async fn receive(
    State(messages): State<Arc<Mutex<Vec<Value>>>>,
    body: Bytes,
) -> (StatusCode, &'static str) {
    match serde_json::from_slice::<Value>(&body) {
        Ok(message) if message.get("attachments").is_some() || message.get("text").is_some() => {
            if let Ok(mut all) = messages.lock() {
                all.push(message);
            }
            (StatusCode::OK, "1")
        }
        // What Teams answers to a body it cannot show.
        _ => (
            StatusCode::BAD_REQUEST,
            "Bad payload received by generic incoming webhook.",
        ),
    }
}

/// Teams' side of an outgoing webhook: builds and signs the requests Teams sends.
#[derive(Clone)]
pub struct OutgoingWebhook {
    /// The security token (base64) Teams shows once when the webhook is created.
    pub security_token: String,
    /// The name people @mention.
    pub name: String,
}

impl OutgoingWebhook {
    /// A webhook with a fresh random 32-byte security token.
    pub fn new(name: &str) -> OutgoingWebhook {
        let key: [u8; 32] = rand::random();
        OutgoingWebhook {
            security_token: STANDARD.encode(key),
            name: name.to_string(),
        }
    }

    /// The activity Teams sends when `sender` writes `@name text` in a channel; `id` is
    /// the message id. The sender's `userPrincipalName` is sent when given (tenants do not
    /// always include it).
    pub fn message(
        &self,
        id: &str,
        text: &str,
        sender: &Sender,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Value {
        let mut from = json!({
            "id": format!("29:{}", sender.aad_object_id),
            "name": sender.name,
            "aadObjectId": sender.aad_object_id,
        });
        if let Some(upn) = &sender.user_principal_name {
            from["userPrincipalName"] = json!(upn);
        }
        json!({
            "type": "message",
            "id": id,
            "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "localTimestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "serviceUrl": "https://smba.trafficmanager.net/emea/",
            "channelId": "msteams",
            "from": from,
            "conversation": {
                "isGroup": true,
                "id": "19:reseat-requests@thread.tacv2;messageid=1",
                "name": null,
                "conversationType": "channel",
                "tenantId": "72f988bf-0000-4000-8000-2d7cd011db47"
            },
            "recipient": null,
            "textFormat": "plain",
            "attachmentLayout": null,
            "membersAdded": [],
            "membersRemoved": [],
            "topicName": null,
            "historyDisclosed": null,
            "locale": "en-GB",
            "text": format!("<at>{}</at>&nbsp;{text}\n", self.name),
            "speak": null,
            "inputHint": null,
            "summary": null,
            "suggestedActions": null,
            "attachments": [{
                "contentType": "text/html",
                "content": format!("<div><div><span itemscope=\"\" itemtype=\"http://schema.skype.com/Mention\" itemid=\"0\">{}</span>&nbsp;{text}</div></div>", self.name),
            }],
            "entities": [{ "type": "clientInfo", "locale": "en-GB", "country": "GB", "platform": "Web" }],
            "channelData": {
                "teamsChannelId": "19:reseat-requests@thread.tacv2",
                "teamsTeamId": "19:team@thread.tacv2",
                "channel": { "id": "19:reseat-requests@thread.tacv2" },
                "team": { "id": "19:team@thread.tacv2" },
                "tenant": { "id": "72f988bf-0000-4000-8000-2d7cd011db47" }
            },
            "action": null,
            "replyToId": null,
            "value": null,
            "name": null,
            "relatesTo": null,
            "code": null
        })
    }

    /// The `Authorization` header Teams sends with `body`.
    pub fn authorization(&self, body: &[u8]) -> String {
        sign(&self.security_token, body)
    }
}

/// `HMAC <base64 HMAC-SHA256 of body>` keyed by the base64-decoded token.
pub fn sign(security_token: &str, body: &[u8]) -> String {
    let key = STANDARD.decode(security_token).unwrap_or_default();
    // HMAC takes keys of any length; an empty token signs with an empty key.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&key) else {
        return "HMAC ".to_string();
    };
    mac.update(body);
    format!("HMAC {}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Who writes a message.
#[derive(Debug, Clone)]
pub struct Sender {
    pub aad_object_id: String,
    pub name: String,
    pub user_principal_name: Option<String>,
}
