//! Storage: one connection pool over SQLite (the default) or PostgreSQL (for several
//! replicas), and the embedded migrations for each.
//!
//! Queries are written once with `$1`-style placeholders, which both drivers accept, and
//! run through sqlx's `Any` driver. Timestamps are stored as UTC milliseconds since the
//! epoch (`BIGINT`) so that comparisons mean the same on both backends. The few
//! statements that must differ (queue claims) ask [`Db::backend`]. The handle carries the
//! [`Clock`] that every stored timestamp and expiry is read from (the system clock, or a
//! test's [`TestClock`]).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

pub mod clock;
pub mod lease;
pub mod time;

pub use clock::{Clock, TestClock};

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The connection pool every area of reseat shares.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// The SQLite file, for the migration lock next to it.
    file: Option<PathBuf>,
    /// Where "now" comes from for everything stored through this handle.
    clock: Clock,
}

/// How to open the database, from the `[database]` section of the configuration.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub url: String,
    pub max_connections: u32,
    pub busy_timeout: Duration,
    pub connect_timeout: Duration,
}

/// Why the database could not be opened, worded for the person running reseat.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "database.url: unsupported database {scheme:?} in {url}; use sqlite://FILE or postgres://USER@HOST/DB"
    )]
    UnsupportedScheme { scheme: String, url: String },
    #[error(
        "database.url: the directory {dir} for the SQLite file does not exist; create it or point database.url elsewhere"
    )]
    MissingDirectory { dir: PathBuf },
    #[error(
        "database.url: cannot write the SQLite file {file} ({reason}); check the directory's permissions or point database.url elsewhere"
    )]
    NotWritable { file: PathBuf, reason: String },
    #[error(
        "database.url: cannot connect to {url} ({reason}); is the server running and the URL right?"
    )]
    Unreachable { url: String, reason: String },
    #[error("database: migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database: {0}")]
    Query(#[from] sqlx::Error),
}

/// The PostgreSQL advisory lock key that serializes migrations ("reseat" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x7265_7365_6174;

/// Waits for the exclusive lock on `<file>.migrate.lock` (released when dropped).
async fn lock_file(file: &Path) -> Result<std::fs::File, StoreError> {
    let mut name = file.as_os_str().to_owned();
    name.push(".migrate.lock");
    let path = PathBuf::from(name);
    let not_writable = |error: std::io::Error| StoreError::NotWritable {
        file: path.clone(),
        reason: error.to_string(),
    };
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(not_writable)?;
    tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .map_err(|error| StoreError::NotWritable {
            file: file.to_path_buf(),
            reason: error.to_string(),
        })?
        .map_err(not_writable)
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Opens the pool (creating a SQLite file if it is missing). Does not migrate.
    #[tracing::instrument(skip_all, fields(db = %redact_url(&options.url)))]
    pub async fn connect(options: &DbOptions) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        let url = options.url.trim();
        let scheme = url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let backend = match scheme.as_str() {
            "sqlite" => Backend::Sqlite,
            "postgres" | "postgresql" => Backend::Postgres,
            _ => {
                return Err(StoreError::UnsupportedScheme {
                    scheme,
                    url: redact_url(url),
                });
            }
        };
        let pool = match backend {
            Backend::Sqlite => connect_sqlite(url, options).await?,
            Backend::Postgres => connect_postgres(url, options).await?,
        };
        let file = match backend {
            Backend::Sqlite => sqlite_file(url),
            Backend::Postgres => None,
        };
        Ok(Db {
            pool,
            backend,
            file,
            clock: Clock::system(),
        })
    }

    /// Applies the embedded migrations for this backend, one process at a time: two
    /// processes starting together never race them. PostgreSQL: a session advisory lock
    /// held on the connection that migrates. SQLite: an exclusive lock on the file
    /// `<database>.migrate.lock` next to the database (an in-memory database has one user).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => {
                let _lock = match &self.file {
                    Some(file) => Some(lock_file(file).await?),
                    None => None,
                };
                SQLITE_MIGRATIONS.run(&self.pool).await?;
            }
            Backend::Postgres => {
                let mut conn = self.pool.acquire().await?;
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(MIGRATION_LOCK_KEY)
                    .execute(&mut *conn)
                    .await?;
                let result = POSTGRES_MIGRATIONS.run(&mut *conn).await;
                let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(MIGRATION_LOCK_KEY)
                    .execute(&mut *conn)
                    .await;
                result?;
                unlocked?;
            }
        }
        Ok(())
    }

    /// True when the database answers and every embedded migration has been applied.
    pub async fn is_ready(&self) -> bool {
        let expected = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.iter().count(),
            Backend::Postgres => POSTGRES_MIGRATIONS.iter().count(),
        } as i64;
        let applied: Result<i64, _> =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = (1 = 1)")
                .fetch_one(&self.pool)
                .await;
        matches!(applied, Ok(n) if n >= expected)
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The same pool, reading time from `clock` (set once, before the handle is shared).
    pub fn with_clock(self, clock: Clock) -> Db {
        Db { clock, ..self }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Now, in stored form, from this handle's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Now, from this handle's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn connect_sqlite(url: &str, options: &DbOptions) -> Result<AnyPool, StoreError> {
    let file = sqlite_file(url);
    if let Some(file) = &file {
        let dir = match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(StoreError::MissingDirectory { dir });
        }
        check_writable(file, &dir)?;
    }
    // `mode=rwc` creates the file; WAL lets readers and the writer proceed together and the
    // busy timeout makes concurrent writers wait instead of failing.
    let busy_ms = options.busy_timeout.as_millis();
    let full_url = with_query(url, "mode=rwc");
    let connect =
        AnyConnectOptions::from_str(&full_url).map_err(|error| StoreError::Unreachable {
            url: redact_url(url),
            reason: error.to_string(),
        })?;
    let pool = AnyPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.connect_timeout)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                conn.execute(&*format!("PRAGMA busy_timeout = {busy_ms}"))
                    .await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                Ok(())
            })
        })
        .connect_with(connect.disable_statement_logging())
        .await
        .map_err(|error| match &file {
            Some(file) => StoreError::NotWritable {
                file: file.clone(),
                reason: error.to_string(),
            },
            None => StoreError::Unreachable {
                url: redact_url(url),
                reason: error.to_string(),
            },
        })?;
    sqlx::query("PRAGMA journal_mode = WAL")
        .execute(&pool)
        .await?;
    Ok(pool)
}

async fn connect_postgres(url: &str, options: &DbOptions) -> Result<AnyPool, StoreError> {
    let unreachable = |error: sqlx::Error| StoreError::Unreachable {
        url: redact_url(url),
        reason: error.to_string(),
    };
    let connect = AnyConnectOptions::from_str(url)
        .map_err(unreachable)?
        .disable_statement_logging();
    // One direct connection first: a pool would hide "connection refused" or "database does
    // not exist" behind a generic time-out.
    let probe = tokio::time::timeout(options.connect_timeout, connect.connect())
        .await
        .map_err(|_| StoreError::Unreachable {
            url: redact_url(url),
            reason: format!("no answer within {:?}", options.connect_timeout),
        })?
        .map_err(unreachable)?;
    let _ = probe.close().await;
    AnyPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.connect_timeout)
        .connect_with(connect)
        .await
        .map_err(unreachable)
}

/// The file behind a `sqlite://` URL, or `None` for an in-memory database.
/// The file of a `sqlite:` URL; `None` for in-memory databases and other backends.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

fn check_writable(file: &Path, dir: &Path) -> Result<(), StoreError> {
    let not_writable = |reason: String| StoreError::NotWritable {
        file: file.to_path_buf(),
        reason,
    };
    if file.exists() {
        let meta = std::fs::metadata(file).map_err(|e| not_writable(e.to_string()))?;
        if meta.permissions().readonly() {
            return Err(not_writable("the file is read-only".into()));
        }
        return Ok(());
    }
    // Creating a probe file is the only reliable test (permissions, read-only mounts, root).
    let probe = dir.join(format!(".reseat-write-test-{}", uuid::Uuid::new_v4()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(error) => Err(not_writable(format!(
            "the directory is not writable: {error}"
        ))),
    }
}

fn with_query(url: &str, param: &str) -> String {
    let key = param.split('=').next().unwrap_or(param);
    if url.contains(&format!("{key}=")) {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&{param}")
    } else {
        format!("{url}?{param}")
    }
}

/// The URL with any password replaced, safe for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("REDACTED"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// True when the error is a unique-constraint violation, on either backend; callers map it
/// to a conflict instead of checking first.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || db.code().as_deref() == Some("23505")
                || db.code().as_deref() == Some("2067")
                || db.code().as_deref() == Some("1555")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_sqlite_file() {
        assert_eq!(
            sqlite_file("sqlite://reseat.db"),
            Some(PathBuf::from("reseat.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:///var/x.db?mode=rwc"),
            Some(PathBuf::from("/var/x.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db.example/reseat"),
            "postgres://app:REDACTED@db.example/reseat"
        );
        assert_eq!(redact_url("sqlite://reseat.db"), "sqlite://reseat.db");
    }
}
