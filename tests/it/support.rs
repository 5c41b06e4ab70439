//! Test harness: a fresh database per test (SQLite file, or a uniquely named PostgreSQL
//! database when `RESEAT_TEST_DATABASE_URL` points at a server), and `spawn_app()`.
//!
//! Every app a test spawns reads time from its own [`TestClock`]: a test makes an hour
//! pass with `app.advance(Duration::from_secs(3_600))` instead of sleeping or rewriting
//! timestamps in tables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use reseat::app::{App, AppState};
use reseat::config::Config;
use reseat::store::TestClock;
use tokio::sync::oneshot;

/// Says once per test process, on the terminal itself (past the test harness's output capture,
/// so that it shows in a passing run), that a group of tests was skipped and how to run it.
pub fn say_skipped(what: &'static str, how: &'static str) {
    use std::io::Write as _;
    static SAID: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if said.contains(&what) {
        return;
    }
    said.push(what);
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what}: {how}");
}

/// A database that exists for one test only.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>, // (admin url, database name)
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("reseat.db").display());
        TestDb {
            url,
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A SQLite file the caller keeps (to reopen it after a simulated crash).
    pub fn sqlite_file(path: &std::path::Path) -> TestDb {
        TestDb {
            url: format!("sqlite://{}", path.display()),
            _dir: None,
            postgres: None,
        }
    }

    /// A new PostgreSQL database, or `None` when no server is configured for tests.
    /// With `RESEAT_REQUIRE_POSTGRES=1`, a missing or unreachable server fails the test.
    pub async fn postgres() -> Option<TestDb> {
        let required = std::env::var("RESEAT_REQUIRE_POSTGRES").as_deref() == Ok("1");
        let Ok(admin_url) = std::env::var("RESEAT_TEST_DATABASE_URL") else {
            assert!(
                !required,
                "RESEAT_REQUIRE_POSTGRES=1 but RESEAT_TEST_DATABASE_URL is not set"
            );
            say_skipped(
                "the PostgreSQL variants of the store tests",
                "RESEAT_TEST_DATABASE_URL is not set; set it to \
                 postgres://postgres@127.0.0.1:5432/postgres (any server where the user may \
                 create databases) to run them",
            );
            return None;
        };
        let name = format!("reseat_test_{}", uuid::Uuid::new_v4().simple());
        match admin_exec(&admin_url, &format!("CREATE DATABASE {name}")).await {
            Ok(()) => {}
            Err(error) if !required => {
                eprintln!("skipping PostgreSQL: {error}");
                say_skipped(
                    "the PostgreSQL variants of the store tests",
                    "the server at RESEAT_TEST_DATABASE_URL does not answer; start it, or set \
                     RESEAT_REQUIRE_POSTGRES=1 to make this a failure",
                );
                return None;
            }
            Err(error) => panic!("PostgreSQL required but unavailable at {admin_url}: {error}"),
        }
        let mut url = url::Url::parse(&admin_url).expect("RESEAT_TEST_DATABASE_URL is a URL");
        url.set_path(&name);
        Some(TestDb {
            url: url.to_string(),
            _dir: None,
            postgres: Some((admin_url, name)),
        })
    }

    /// Every backend the tests should cover here: SQLite always, PostgreSQL when available.
    pub async fn all() -> Vec<TestDb> {
        let mut dbs = vec![TestDb::sqlite()];
        dbs.extend(TestDb::postgres().await);
        dbs
    }

    pub fn backend_name(&self) -> &'static str {
        if self.postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    pub fn config(&self) -> Config {
        let mut config = Config::default();
        config.database.url = self.url.clone();
        config.server.listen = "127.0.0.1:0".into();
        config
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.postgres.take() {
            // Drop runs inside the test's runtime; a separate thread gets its own.
            let _ = std::thread::spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                let _ = runtime.block_on(admin_exec(
                    &admin_url,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ));
            })
            .join();
        }
    }
}

async fn admin_exec(admin_url: &str, sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    conn.execute(sql).await?;
    conn.close().await
}

/// A running reseat on 127.0.0.1 with its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    /// The app's worker with every handler registered; tests drive `run_once()`.
    pub worker: reseat::queue::Worker,
    pub client: reqwest::Client,
    /// The app's clock; [`TestApp::advance`] moves it.
    clock: TestClock,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), reseat::app::StartError>>>,
    /// Kept so the database lives as long as the app.
    pub _db: TestDb,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Makes `by` pass for the app: jobs, leases, links and keeps fall due as if it had.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Signs in on the admin pages as `name` with `password` (`http` must not follow
    /// redirects): the session cookie and the CSRF token of the overview.
    pub async fn sign_in(
        &self,
        http: &reqwest::Client,
        name: &str,
        password: &str,
    ) -> (String, String) {
        let page = http.get(self.url("/admin/login")).send().await.unwrap();
        let cookie = cookie_of(&page, "reseat_admin_login");
        let csrf = csrf_in(&page.text().await.unwrap());
        let response = http
            .post(self.url("/admin/login"))
            .header("cookie", cookie)
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", name),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{name} signs in");
        let session = cookie_of(&response, "reseat_admin");
        let page = http
            .get(self.url("/admin"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        let csrf = csrf_in(&page.text().await.unwrap());
        (session, csrf)
    }

    /// Opens a link's confirmation page (a restore or keep link) and presses its button, as
    /// a person does: the page's CSRF token and cookie, and `fields` (e.g. a justification).
    pub async fn press_link(&self, url: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let page = self.client.get(url).send().await.unwrap();
        assert_eq!(page.status(), 200, "{url}");
        let cookie = cookie_of(&page, "reseat_csrf");
        let csrf = csrf_in(&page.text().await.unwrap());
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.client
            .post(url)
            .header("cookie", cookie)
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// Signals shutdown and waits for the app to stop.
    pub async fn stop(mut self) -> Result<(), reseat::app::StartError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("app task"),
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An `[[admin.users]]` entry signing in with `password`; `role` None is an owner.
pub fn admin_user(
    name: &str,
    password: &str,
    role: Option<reseat::web::config::Role>,
) -> reseat::web::config::AdminUser {
    reseat::web::config::AdminUser {
        name: name.into(),
        password_hash: reseat::web::admin::auth::hash_password(password)
            .unwrap()
            .into(),
        role,
        sites: Vec::new(),
        products: Vec::new(),
        slack_user_id: None,
        email: None,
    }
}

/// A cookie the response sets, as `name=value`.
pub fn cookie_of(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap().to_string())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie"))
}

/// The CSRF token of the first form on a page.
pub fn csrf_in(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[start..start + page[start..].find('"').unwrap()].to_string()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestDb::sqlite(), |_| {}, axum::Router::new()).await
}

pub async fn spawn_app_with(
    db: TestDb,
    adjust: impl FnOnce(&mut Config),
    extra: axum::Router<AppState>,
) -> TestApp {
    let mut config = db.config();
    adjust(&mut config);
    spawn_configured(db, config, extra).await
}

/// Starts the app with a full configuration (its database URL and listen address are
/// replaced by the test database's and port 0), on a fresh test clock.
pub async fn spawn_configured(
    db: TestDb,
    mut config: Config,
    extra: axum::Router<AppState>,
) -> TestApp {
    let clock = TestClock::new();
    config.database.url = db.url.clone();
    config.server.listen = "127.0.0.1:0".into();
    let app = App::build_with_clock(config, extra, clock.clock())
        .await
        .expect("app starts");
    let addr = app.local_addr();
    let state = app.state().clone();
    let worker = app.worker().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        state,
        worker,
        client: reqwest::Client::new(),
        clock,
        stop: Some(stop),
        task: Some(task),
        _db: db,
    }
}

/// The `reseat` binary built for these tests.
pub fn reseat_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_reseat"))
}

/// The repository root (for `reseat.example.toml`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl TestApp {
    /// Stops the app and starts it again on the same database with its configuration
    /// changed by `adjust` (a restart after an admin edited the file).
    pub async fn restart(mut self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = (*self.state.config).clone();
        adjust(&mut config);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("app task").expect("the app stops");
        }
        let db = std::mem::replace(&mut self._db, TestDb::sqlite());
        spawn_configured(db, config, axum::Router::new()).await
    }

    /// Runs queued jobs until none is due; returns how many ran.
    pub async fn drain_queue(&self) -> usize {
        let mut ran = 0;
        loop {
            match self.worker.run_once().await.expect("queue works") {
                reseat::queue::WorkerOutcome::Idle => return ran,
                _ => ran += 1,
            }
        }
    }
}

/// Log lines written while a test runs, captured by a `tracing` subscriber at TRACE on this
/// thread (a `#[tokio::test]` runtime runs every task there).
#[derive(Clone, Default)]
pub struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Captures every event at TRACE until the guard is dropped.
    pub fn capture_at_trace(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8")
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
