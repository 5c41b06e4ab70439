//! The built-in Atlassian Cloud simulator used by `reseat sim`, `reseat demo`, tests and
//! benchmarks.
//!
//! One HTTP server serves, under their real paths, the parts of Atlassian Cloud reseat
//! calls: the Organizations admin API (`/admin/v1/...`, Bearer key), Jira platform v3
//! (`/rest/api/3/...`), Confluence v1 (`/wiki/rest/api/...`) and Jira Service Management
//! (`/rest/servicedeskapi/...`), all three with Basic `email:api_token`. A seeded,
//! deterministic org lives in memory ([`SimState`]); faults and load are injected by
//! [`faults`]; tests and tools inspect and change everything under `/_sim/`
//! ([`control`]). See `docs/simulator.md`.

mod admin;
mod cli;
mod confluence;
mod consistency;
mod control;
mod errors;
pub mod faults;
mod jira;
mod jsm;
pub mod jsm_model;
pub mod model;
mod net;
mod params;
pub mod roles;
pub mod seed;
pub mod slack;
mod state;
pub mod teams;
#[cfg(feature = "validate")]
pub mod validate;
mod views;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use cli::{SimArgs, run};
pub use faults::{FamilyLimits, FaultKind, FaultPatch, FaultSettings, LogEntry};
pub use model::{AccountStatus, AccountType, Product};
pub use seed::{Category, GroundTruth, SeededUser};
pub use state::{SimError, SimState};
pub use views::{
    ActivityView, CommentView, GroupRef, GroupView, NewRequest, NewUser, RequestView, UserPatch,
    UserView,
};

/// Default org id (a fixed UUID so that demo configs can name it).
pub const DEFAULT_ORG_ID: &str = "5f3e2d1c-0b9a-4c8d-9e7f-6a5b4c3d2e1f";
/// Default cloud id of the configured site.
pub const DEFAULT_CLOUD_ID: &str = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d";
/// Default site name (`acme.atlassian.net`).
pub const DEFAULT_SITE_NAME: &str = "acme";
/// Default `productAccess[].key` of Jira Service Management (see [`SimConfig::jsm_key`]).
pub const DEFAULT_JSM_KEY: &str = "jira-servicedesk";
/// Default Bearer key of the admin API.
pub const DEFAULT_ADMIN_KEY: &str = "sim-admin-key";
/// Default email of the site-admin Basic credential.
pub const DEFAULT_SITE_EMAIL: &str = "admin@acme.example";
/// Default API token of the site-admin Basic credential.
pub const DEFAULT_SITE_TOKEN: &str = "sim-site-token";

/// Which platform the simulator models.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Today's Atlassian Cloud: the v2 directory actions only; the retired v1
    /// `suspend-access`, `restore-access` and v1 directory `DELETE` answer the gateway's
    /// generic route-not-found 404.
    #[default]
    Current,
    /// Also serves the retired v1 directory actions, to test a client's fallback.
    Legacy,
}

impl Profile {
    /// Wire and flag name.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Current => "current",
            Profile::Legacy => "legacy",
        }
    }
}

/// How to start a simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Address to listen on; default `127.0.0.1:0` (a free port).
    pub listen: SocketAddr,
    /// The platform modelled; default [`Profile::Current`].
    pub profile: Profile,
    /// Accounts to seed, including the site admin and the viewer (at least 2).
    pub users: usize,
    /// Seed of the generated org; the same seed gives the same org.
    pub seed: u64,
    /// Latency added to every Atlassian request.
    pub latency: Duration,
    /// Requests per second over all Atlassian routes together; `None` for no limit.
    pub rate_limit: Option<u32>,
    /// Each API family's own requests per second (admin, Jira, Confluence, JSM), counted
    /// separately; default none.
    pub family_rate_limits: FamilyLimits,
    /// Share (0..=1) of requests failing with a random fault.
    pub fail_rate: f64,
    /// Share (0..=1) of mutations whose answer is lost after they took effect.
    pub lose_rate: f64,
    /// `productAccess[].key` of Jira Service Management in the v2 user search. No source
    /// confirms the platform's current key; the default, `jira-servicedesk`, is the resource
    /// owner in JSM's site ARI, the way `jira` and `confluence` are for theirs.
    pub jsm_key: String,
    /// Delay before membership changes made through the APIs become visible to reads
    /// (eventual consistency); default 0, at once.
    pub consistency: Duration,
    /// Check every JSON answer against the vendored OpenAPI documents and record the
    /// violations ([`SimState::spec_violations`]); a [`SimHandle`] with violations panics
    /// when dropped. Needs the `validate` feature; the default is on exactly when it is
    /// built (reseat's tests build it, so every simulator they spawn validates).
    pub validate_responses: bool,
    /// Organization id.
    pub org_id: String,
    /// Cloud id of the configured site.
    pub cloud_id: String,
    /// Name of the configured site.
    pub site_name: String,
    /// Bearer key accepted by the admin API.
    pub admin_key: String,
    /// Email of the site-admin Basic credential.
    pub site_email: String,
    /// API token of the site-admin Basic credential.
    pub site_token: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            profile: Profile::Current,
            users: 500,
            seed: 42,
            latency: Duration::ZERO,
            rate_limit: None,
            family_rate_limits: FamilyLimits::default(),
            fail_rate: 0.0,
            lose_rate: 0.0,
            jsm_key: DEFAULT_JSM_KEY.to_owned(),
            consistency: Duration::ZERO,
            validate_responses: cfg!(feature = "validate"),
            org_id: DEFAULT_ORG_ID.to_owned(),
            cloud_id: DEFAULT_CLOUD_ID.to_owned(),
            site_name: DEFAULT_SITE_NAME.to_owned(),
            admin_key: DEFAULT_ADMIN_KEY.to_owned(),
            site_email: DEFAULT_SITE_EMAIL.to_owned(),
            site_token: DEFAULT_SITE_TOKEN.to_owned(),
        }
    }
}

/// A running simulator.
pub struct SimHandle {
    base_url: String,
    state: SimState,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &SimConfig {
        self.state.config()
    }

    /// Direct inspection and mutation, for Rust tests.
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// Stops serving; held (timeout-fault) requests are dropped at once.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "simulator task ended abnormally");
        }
    }
}

impl Drop for SimHandle {
    /// With `validate_responses`, a simulator whose answers violated the vendored specs
    /// fails the test that used it (unless that test is failing already).
    fn drop(&mut self) {
        let violations = self.state.spec_violations();
        if !violations.is_empty() && !std::thread::panicking() {
            panic!(
                "{} simulator answer(s) violate the vendored OpenAPI documents:\n{}",
                violations.len(),
                violations
                    .iter()
                    .take(20)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

/// Seeds an org, binds `config.listen` and serves until [`SimHandle::shutdown`].
pub async fn spawn(config: SimConfig) -> std::io::Result<SimHandle> {
    if config.validate_responses && !cfg!(feature = "validate") {
        return Err(std::io::Error::other(
            "validate_responses needs reseat-sim built with the validate feature",
        ));
    }
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let mut addr = listener.local_addr()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(Ipv4Addr::LOCALHOST.into());
    }
    let base_url = format!("http://{addr}");
    let shutdown = CancellationToken::new();
    let state = SimState::new(config, base_url.clone(), shutdown.clone());
    let app = router(state.clone());
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<net::ConnKill>();
        let served = axum::serve(net::SimListener { inner: listener }, service)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "simulator server failed");
        }
    });
    Ok(SimHandle {
        base_url,
        state,
        shutdown,
        task: Some(task),
    })
}

/// An org of several sites: one simulator per site, each serving its own site APIs on its
/// own address; the first also serves the org's admin API for all of them
/// ([`SimState::add_site`]). Each entry's `cloud_id` and `site_name` name its site; the org
/// id, admin key and seed should be the same, so that every site has the same accounts.
pub async fn spawn_org(sites: Vec<SimConfig>) -> std::io::Result<Vec<SimHandle>> {
    let mut handles = Vec::with_capacity(sites.len());
    for config in sites {
        handles.push(spawn(config).await?);
    }
    if let Some((first, rest)) = handles.split_first() {
        for site in rest {
            first.state().add_site(site.state().clone());
        }
    }
    Ok(handles)
}

/// What `reseat sim` prints at start, one fact per line.
pub fn banner(handle: &SimHandle) -> String {
    let c = handle.config();
    format!(
        "listening: {}\norg-id: {}\ncloud-id: {}\nadmin-key: {}\nsite-auth: {}:{}\n",
        handle.base_url(),
        c.org_id,
        c.cloud_id,
        c.admin_key,
        c.site_email,
        c.site_token
    )
}

/// Every route: the Atlassian APIs behind the fault layer, and `/_sim/` beside it.
fn router(state: SimState) -> Router {
    let atlassian = Router::new()
        .merge(admin::router(state.config().profile))
        .merge(roles::router())
        .merge(jira::router())
        .merge(confluence::router())
        .merge(jsm::router())
        .fallback(errors::route_not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            faults::layer,
        ));
    Router::new()
        .nest("/_sim", control::router())
        .merge(atlassian)
        .with_state(state)
}
