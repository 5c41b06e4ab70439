//! The application: binds its listener, serves the router, runs the queue workers beside
//! it, and stops cleanly when the shutdown future resolves (SIGTERM, ctrl-c, or a test).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::atlassian::{AtlassianClients, AtlassianError};
use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::notify::Notify;
use crate::queue::{Queue, Worker};
use crate::store::{Clock, Db, StoreError};

/// Everything a request handler or job may need, passed explicitly.
///
/// `config` and `atlassian` are one site's: the first site's in the state the server and
/// the commands start with, another's in the view [`AppState::for_site`] gives. Everything
/// else (the database, queue, outbox, the org's admin client) is the org's and shared.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub queue: Queue,
    pub metrics: Metrics,
    /// Clients for the Atlassian APIs the configuration has credentials for.
    pub atlassian: Arc<AtlassianClients>,
    /// The outbox and the link signer.
    pub notify: Notify,
    /// The Slack Web API client, when `restore.slack.bot_token` is set.
    pub slack: Option<Arc<crate::restore::slack::api::SlackApi>>,
    /// Every site reseat manages, in the order configured.
    pub sites: Arc<Vec<SiteView>>,
    /// The whole configuration as loaded (with `[[sites]]`), for what is the org's: the
    /// owners' configuration page.
    pub org_config: Arc<Config>,
}

/// One site: its configuration (the org-wide one with its `[[sites]]` entry laid over it)
/// and its clients (its own Jira, Confluence and JSM limits; the org's admin client).
#[derive(Clone)]
pub struct SiteView {
    pub name: String,
    pub config: Arc<Config>,
    pub atlassian: Arc<AtlassianClients>,
}

/// Each site's configuration and clients; the admin client (and its limit) is built once.
fn site_views(config: &Config) -> Result<Vec<SiteView>, StartError> {
    if config.site_configs.is_empty() {
        return Ok(vec![SiteView {
            name: config.site().to_owned(),
            config: Arc::new(config.clone()),
            atlassian: Arc::new(AtlassianClients::new(&config.atlassian)?),
        }]);
    }
    // The org's own clients: the admin API only (the site credentials in `[atlassian]` are
    // the sites' defaults).
    let org = AtlassianClients::new(&crate::atlassian::AtlassianConfig {
        site_email: None,
        site_api_token: None,
        ..config.atlassian.clone()
    })?;
    config
        .site_configs
        .iter()
        .map(|site| {
            Ok(SiteView {
                name: site.site().to_owned(),
                config: Arc::new(site.clone()),
                atlassian: Arc::new(AtlassianClients::for_site(
                    &site.atlassian,
                    org.admin.clone(),
                )?),
            })
        })
        .collect()
}

/// `[discovery]`: the sites the org's workspaces add to `[[sites]]`. If the admin API
/// cannot be read, or what it gives does not make a valid configuration, reseat starts
/// with the sites it is configured with, and says so: an unknown site is never acted on.
async fn discover_sites(config: Config) -> Config {
    let clients = match AtlassianClients::new(&crate::atlassian::AtlassianConfig {
        site_email: None,
        site_api_token: None,
        ..config.atlassian.clone()
    }) {
        Ok(clients) => clients,
        Err(error) => {
            tracing::warn!(%error, "discovery: cannot build the admin client; managing the configured sites only");
            return config;
        }
    };
    let (Some(admin), Some(org)) = (&clients.admin, &clients.org_id) else {
        return config;
    };
    let workspaces = match admin.workspaces(org).await {
        Ok(workspaces) => workspaces,
        Err(error) => {
            tracing::warn!(%error, "discovery: cannot list the org's workspaces; managing the configured sites only");
            return config;
        }
    };
    let found = crate::config::sites::discovered(&workspaces, &config);
    let mut discovered = config.clone();
    for entry in &found {
        tracing::info!(site = %entry.name, products = ?entry.products, "discovery: managing a site found in the org's workspaces");
    }
    discovered.sites.extend(found);
    match discovered.resolve_sites() {
        Ok(()) => discovered,
        Err(error) => {
            tracing::warn!(%error, "discovery: the sites found do not make a valid configuration; managing the configured sites only");
            config
        }
    }
}

impl AppState {
    /// The state without a server: for one-shot commands (`reseat sweep`) and tests.
    pub async fn open(config: Config) -> Result<AppState, StartError> {
        AppState::open_with_clock(config, Clock::system()).await
    }

    /// Like [`AppState::open`], reading time from `clock` (tests pass a test clock).
    pub async fn open_with_clock(config: Config, clock: Clock) -> Result<AppState, StartError> {
        let config = if config.discovery.enabled {
            discover_sites(config).await
        } else {
            config
        };
        let sites = site_views(&config)?;
        let db = open_store(&config).await?.with_clock(clock);
        let queue = Queue::new(db.clone(), config.queue.clone());
        let notify = Notify::from_config(&config, queue.clone())?;
        let first = sites[0].clone();
        let slack =
            crate::restore::slack::api::SlackApi::from_config(&config.restore.slack).map(Arc::new);
        Ok(AppState {
            org_config: Arc::new(config.clone()),
            config: first.config,
            db,
            queue,
            metrics: Metrics::new(),
            atlassian: first.atlassian,
            notify,
            sites: Arc::new(sites),
            slack,
        })
    }

    /// The site reseat manages, as recorded in the journal: the site name, else the cloud id.
    pub fn site(&self) -> &str {
        self.config.site()
    }

    /// The names of every site reseat manages.
    pub fn site_names(&self) -> Vec<String> {
        self.sites.iter().map(|s| s.name.clone()).collect()
    }

    /// Whether reseat manages several sites.
    pub fn is_multi_site(&self) -> bool {
        self.sites.len() > 1
    }

    /// The site a request names (`?site=NAME`, `--site`): none when it names none (blank
    /// counts as none), else the state seen from it, or the error that names every site.
    pub fn named_site(&self, name: Option<&str>) -> Result<Option<AppState>, String> {
        let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        self.for_site(name).map(Some).ok_or_else(|| {
            format!(
                "reseat manages no site {name:?} (sites: {})",
                self.site_names().join(", ")
            )
        })
    }

    /// The same state seen from `site` (its configuration and clients); `None` for a site
    /// reseat does not manage.
    pub fn for_site(&self, site: &str) -> Option<AppState> {
        let key = crate::atlassian::config::site_key(site);
        let view = self
            .sites
            .iter()
            .find(|s| s.name == key || s.name == site)?;
        Some(AppState {
            config: view.config.clone(),
            atlassian: view.atlassian.clone(),
            ..self.clone()
        })
    }

    /// The state seen from each site, in the order configured.
    pub fn each_site(&self) -> Vec<AppState> {
        self.sites
            .iter()
            .map(|view| AppState {
                config: view.config.clone(),
                atlassian: view.atlassian.clone(),
                ..self.clone()
            })
            .collect()
    }

    /// The clock every stored timestamp and expiry is read from (the database handle's).
    pub fn clock(&self) -> &Clock {
        self.db.clock()
    }
}

/// Why the application could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    // Not a `source`: the cause is in the message already, and an error chain would say it
    // twice.
    #[error("server.listen: cannot listen on {addr} ({cause}); is another process using it?")]
    Bind {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("server: {0}")]
    Serve(std::io::Error),
    #[error("config: atlassian: {0}")]
    Atlassian(#[from] AtlassianError),
}

/// Opens the database and applies migrations: what `serve` and `migrate` both do first.
pub async fn open_store(config: &Config) -> Result<Db, StoreError> {
    let db = Db::connect(&config.database.options()).await?;
    db.migrate().await?;
    Ok(db)
}

/// A bound, ready-to-run application.
pub struct App {
    listener: TcpListener,
    state: AppState,
    router: Router,
    worker: Worker,
}

impl App {
    /// Connects the store, migrates, and binds `server.listen` (port 0 picks a free port).
    pub async fn build(config: Config) -> Result<App, StartError> {
        App::build_with(config, Router::new()).await
    }

    /// Like [`App::build`], with extra routes merged into the router (tests use this).
    pub async fn build_with(config: Config, extra: Router<AppState>) -> Result<App, StartError> {
        App::build_with_clock(config, extra, Clock::system()).await
    }

    /// Like [`App::build_with`], reading time from `clock`: tests pass a
    /// [`TestClock`](crate::store::TestClock)'s to make time pass without waiting.
    pub async fn build_with_clock(
        config: Config,
        extra: Router<AppState>,
        clock: Clock,
    ) -> Result<App, StartError> {
        let addr = config.server.listen_addr()?;
        let state = AppState::open_with_clock(config, clock).await?;
        let metrics = state.metrics.clone();
        let queue = state.queue.clone();
        let notify = state.notify.clone();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|cause| StartError::Bind { addr, cause })?;
        let worker = Worker::new(queue, format!("{}-{}", hostname(), std::process::id()))
            .with_metrics(metrics)
            .handle(
                crate::restore::store::PROCESS_JOB,
                crate::restore::worker::RestoreProcessor::new(state.clone()),
            )
            .handle(
                crate::sweep::job::APPLY_JOB,
                crate::sweep::job::ApplyJob::new(state.clone()),
            )
            .handle(
                crate::notify::SEND_JOB,
                std::sync::Arc::new(notify.sender.clone()),
            );
        let router = crate::web::router(state.clone(), extra);
        Ok(App {
            listener,
            state,
            router,
            worker,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The worker with every area's job handlers registered; tests drive its `run_once()`.
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// Serves until `shutdown` resolves, then stops accepting connections, lets in-flight
    /// requests and jobs finish (up to `server.shutdown_timeout`), and returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let App {
            listener,
            state,
            router,
            worker,
        } = self;
        let cancel = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..state.config.queue.workers {
            let worker = worker.named(format!("{}-{n}", worker.id()));
            tasks.spawn(worker.run(cancel.clone()));
        }
        let holder = worker.id().to_string();
        if let Some(scheduler) = crate::sweep::schedule::Scheduler::new(state.clone(), holder) {
            tasks.spawn(scheduler.run(cancel.clone()));
        }
        if let Some(cron) = state
            .config
            .mail
            .digest_schedule
            .as_deref()
            .and_then(|e| crate::schedule::parse(e).ok())
        {
            let digest_state = state.clone();
            tasks.spawn(crate::schedule::run(
                "digest",
                cron,
                cancel.clone(),
                move |at| {
                    let state = digest_state.clone();
                    async move {
                        match crate::notify::digest::scheduled_turn(&state, at).await {
                            Ok(sent) => tracing::info!(sent, "admin digest queued"),
                            Err(error) => tracing::error!(%error, "admin digest failed"),
                        }
                    }
                },
            ));
        }
        let server_cancel = cancel.clone();
        let limits = crate::web::serve::ServeLimits::from_config(&state.config.server);
        let server = tokio::spawn(crate::web::serve::serve(
            listener,
            router,
            limits,
            async move { server_cancel.cancelled().await },
        ));
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests and jobs");
        cancel.cancel();
        let grace = state.config.server.shutdown_timeout;
        let finished = tokio::time::timeout(grace, async {
            let served = server.await;
            while tasks.join_next().await.is_some() {}
            served
        })
        .await;
        state.db.close().await;
        match finished {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(error))) => Err(StartError::Serve(error)),
            Ok(Err(join)) => Err(StartError::Serve(std::io::Error::other(join.to_string()))),
            Err(_) => {
                tracing::warn!(?grace, "shutdown timeout reached; stopping anyway");
                Ok(())
            }
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "reseat".into())
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
