//! A tiny recording HTTP server on 127.0.0.1:0 standing in for Atlassian: it records every
//! request (method, path, query, JSON body, auth header) and answers through a closure.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use reseat::atlassian::{AtlassianClients, AtlassianConfig, FamilyLimits, RetrySettings};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<serde_json::Value>,
    pub authorization: Option<String>,
}

impl Recorded {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    pub fn raw(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

pub type Responder = Arc<dyn Fn(&Recorded, usize) -> Reply + Send + Sync>;

pub struct FakeServer {
    pub base_url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeServer {
    /// Starts the server; `respond` gets each request and how many came before it.
    pub async fn start(
        respond: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let respond: Responder = Arc::new(respond);
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let seen = requests.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let respond = respond.clone();
                let seen = seen.clone();
                async move {
                    let recorded = Recorded {
                        method: method.to_string(),
                        path: uri.path().to_owned(),
                        query: url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                            .into_owned()
                            .collect(),
                        body: (!body.is_empty())
                            .then(|| serde_json::from_slice(&body).expect("request body is JSON")),
                        authorization: headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned),
                    };
                    let count = {
                        let mut all = seen.lock().expect("lock");
                        all.push(recorded.clone());
                        all.len() - 1
                    };
                    let reply = respond(&recorded, count);
                    let mut response: Response = (
                        StatusCode::from_u16(reply.status).expect("status"),
                        reply.body,
                    )
                        .into_response();
                    response
                        .headers_mut()
                        .insert("content-type", "application/json".parse().expect("header"));
                    for (name, value) in reply.headers {
                        response
                            .headers_mut()
                            .insert(name, value.parse().expect("header"));
                    }
                    response
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base_url, requests }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }
}

pub const ADMIN_KEY: &str = "org-admin-key-SECRET-1234";
pub const SITE_TOKEN: &str = "site-api-token-SECRET-5678";
pub const SITE_EMAIL: &str = "admin@acme.test";
pub const ORG_ID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

/// A configuration pointing every family at `base_url`, with fast retries.
pub fn config(base_url: &str) -> AtlassianConfig {
    let toml = format!(
        r#"
        org_id = "{ORG_ID}"
        cloud_id = "c0ffee00-0000-4000-8000-000000000001"
        site_name = "acme"
        admin_base_url = "{base_url}"
        site_base_url = "{base_url}"
        admin_api_key = "{ADMIN_KEY}"
        site_email = "{SITE_EMAIL}"
        site_api_token = "{SITE_TOKEN}"
        "#
    );
    let mut config: AtlassianConfig = toml::from_str(&toml).expect("test config parses");
    let fast = FamilyLimits {
        requests_per_second: 1000,
        concurrency: 8,
    };
    config.admin = fast;
    config.jira = fast;
    config.confluence = fast;
    config.jsm = fast;
    config.retry = RetrySettings {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_retry_wait: Duration::from_secs(60),
        timeout: Duration::from_secs(10),
    };
    config
}

pub fn clients(base_url: &str) -> AtlassianClients {
    AtlassianClients::new(&config(base_url)).expect("clients build")
}
