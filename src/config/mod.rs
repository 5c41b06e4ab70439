//! Configuration: one TOML file, every key overridable by `RESEAT_…` environment variables
//! (`RESEAT_SERVER__LISTEN` sets `server.listen`; `__` separates nested keys), secrets
//! readable from files (`admin_api_key_file = "/run/secrets/key"` sets `admin_api_key`).
//!
//! Loading never panics: every problem becomes one [`ConfigError`] line that names the file
//! or key and what to do, and the CLI exits with status 2.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

pub mod duration;
mod secret;
pub mod sites;

pub use secret::{REDACTED, Secret};

use crate::atlassian::AtlassianConfig;
use crate::queue::QueueConfig;
use crate::restore::config::RestoreConfig;
use crate::sweep::config::SweepConfig;

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_FILE: &str = "reseat.toml";

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The HTTP server: webhooks, links, admin pages and API.
    pub server: ServerConfig,
    /// Where reseat keeps its state.
    pub database: DatabaseConfig,
    /// The durable job queue.
    pub queue: QueueConfig,
    /// Logging.
    pub log: LogConfig,
    /// How reseat reaches the Atlassian organization and site.
    pub atlassian: AtlassianConfig,
    /// The products reseat manages and how it sweeps them.
    pub sweep: SweepConfig,
    /// Restore channels, rules and guards.
    pub restore: RestoreConfig,
    /// Email: sender, branding and transport (SMTP or a file outbox).
    pub mail: crate::notify::MailConfig,
    /// Signed restore and keep links: the key ring and how long links work.
    pub links: crate::notify::LinkConfig,
    /// Admin access: API tokens for `/api/v1` and users of the admin pages.
    pub admin: crate::web::config::AdminConfig,
    /// Prices per seat and the renewal date: savings in money and the seat forecast.
    pub billing: crate::billing::BillingConfig,
    /// Every site of the org reseat manages (`[[sites]]`); empty: the one site of
    /// `[atlassian]`.
    pub sites: Vec<sites::SiteEntry>,
    /// Sites found in the org's workspaces at start, beside `[[sites]]`.
    pub discovery: sites::DiscoveryConfig,
    /// Each `[[sites]]` entry's whole configuration (the org-wide one with the entry laid
    /// over it), in the order listed; empty for a one-site file.
    #[serde(skip)]
    pub site_configs: Vec<Config>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: String,
    /// The URL users reach reseat at, used in links and emails (defaults to `http://<listen>`).
    pub public_url: Option<String>,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub body_limit_bytes: usize,
    /// A request that takes longer than this is answered with 408.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// On SIGTERM or ctrl-c, how long in-flight requests and jobs may take to finish.
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>` (401 otherwise).
    /// Unset, it is open: keep the listen address private then.
    pub metrics_token: Option<Secret>,
    /// Reverse proxies in front of reseat (addresses or CIDR ranges, e.g. `"10.0.0.0/8"`).
    /// Only a request from one of them has its client address taken from
    /// `X-Forwarded-For` (the nearest address in it that is not itself a trusted proxy);
    /// from anywhere else the header is ignored. Empty (default): never.
    pub trusted_proxies: Vec<String>,
    /// Connections open at once at most; more wait in the kernel's accept queue. Lowered at
    /// start to fit the process's descriptor limit.
    pub max_connections: usize,
    /// A connection that has not sent a whole request head this long after connecting, or
    /// after its previous response (keep-alive), is closed.
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            body_limit_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            metrics_token: None,
            trusted_proxies: Vec::new(),
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

impl ServerConfig {
    /// The validated `trusted_proxies`.
    pub fn trusted_proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::key(
                            "server.trusted_proxies",
                            format!(
                                "expected an IP address or CIDR range like \"10.0.0.0/8\", got {entry:?}"
                            ),
                        )
                    })
            })
            .collect()
    }

    /// The validated listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            ConfigError::key(
                "server.listen",
                format!(
                    "expected an address like \"127.0.0.1:8080\", got {:?}",
                    self.listen
                ),
            )
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://FILE` (created if missing) or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`.
    pub url: String,
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// SQLite: how long a writer waits for another writer before failing.
    #[serde(with = "duration")]
    pub busy_timeout: Duration,
    /// How long to wait for a connection.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://reseat.db".into(),
            max_connections: 10,
            busy_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl DatabaseConfig {
    pub fn options(&self) -> crate::store::DbOptions {
        crate::store::DbOptions {
            url: self.url.clone(),
            max_connections: self.max_connections,
            busy_timeout: self.busy_timeout,
            connect_timeout: self.connect_timeout,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json` (`--log-format` overrides it).
    pub format: LogFormat,
    /// A tracing filter: `info`, `debug`, `reseat=debug,sqlx=warn`, … (`RUST_LOG` overrides it).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// A configuration problem, printed as one line: `config: <where>: <what>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config: {place}: {message}")]
pub struct ConfigError {
    /// The key (`server.listen`), environment variable or file at fault.
    pub place: String,
    pub message: String,
}

impl ConfigError {
    pub fn key(place: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            place: place.into(),
            message: message.into(),
        }
    }
}

/// Where configuration comes from: a file (optional) and environment variables.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--config`; when `None`, `reseat.toml` is read if it exists.
    pub file: Option<PathBuf>,
    /// `RESEAT_…` variables (pass `std::env::vars()`; tests pass their own).
    pub env: Vec<(String, String)>,
}

impl Sources {
    pub fn from_process(file: Option<PathBuf>) -> Sources {
        Sources {
            file,
            env: std::env::vars().collect(),
        }
    }
}

impl Config {
    /// Reads, merges and validates the configuration.
    pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
        let (mut table, file_label) = read_file(sources.file.as_deref())?;
        let env_keys = apply_env(&mut table, &sources.env)?;
        resolve_secret_files(&mut table, "")?;
        let config: Config = serde_path_to_error::deserialize(Value::Table(table.clone()))
            .map_err(|error| {
                let path = error.path().to_string();
                let inner = strip_location(&error.into_inner().to_string());
                describe_serde_error(&path, &inner, &env_keys, file_label.as_deref())
            })?;
        let mut config = config;
        config.site_configs = sites::resolve(&table, &config)?;
        config.validate()?;
        Ok(config)
    }

    /// Builds each `[[sites]]` entry's configuration from this one and validates the whole
    /// (what [`Config::load`] does for a file; for a configuration built in code).
    pub fn resolve_sites(&mut self) -> Result<(), ConfigError> {
        let value = secret::exposed(|| Value::try_from(&*self))
            .map_err(|e| ConfigError::key("sites", format!("cannot lay out the sites: {e}")))?;
        let Value::Table(table) = value else {
            return Err(ConfigError::key("sites", "cannot lay out the sites"));
        };
        self.site_configs = sites::resolve(&table, self)?;
        self.validate()
    }

    /// The names of the sites reseat manages: each `[[sites]]` entry's, or the one site of
    /// `[atlassian]`.
    pub fn site_names(&self) -> Vec<String> {
        if self.site_configs.is_empty() {
            vec![self.site().to_owned()]
        } else {
            self.site_configs
                .iter()
                .map(|c| c.site().to_owned())
                .collect()
        }
    }

    /// What `validate` checks of one site's own configuration.
    pub(crate) fn validate_site(&self) -> Result<(), ConfigError> {
        self.validate_atlassian()?;
        self.sweep.validate()?;
        if self.sweep.mode == crate::sweep::config::Mode::Live
            && (self.sweep.ladder.warn || self.sweep.ladder.remove)
            && self.links.signing_key.is_none()
        {
            return Err(ConfigError::key(
                "links.signing_key",
                "required when sweep.mode is live: warning and removal emails carry signed links",
            ));
        }
        self.restore.validate()?;
        self.links.validate()?;
        Ok(())
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.listen_addr()?;
        self.server.trusted_proxy_nets()?;
        if self.server.header_read_timeout < Duration::from_secs(1) {
            return Err(ConfigError::key(
                "server.header_read_timeout",
                "must be at least 1s",
            ));
        }
        if let Some(url) = &self.server.public_url {
            match url::Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                _ => {
                    return Err(ConfigError::key(
                        "server.public_url",
                        format!(
                            "expected an http(s) URL like \"https://reseat.example.com\", got {url:?}"
                        ),
                    ));
                }
            }
        }
        if self.server.body_limit_bytes < 1024 {
            return Err(ConfigError::key(
                "server.body_limit_bytes",
                "must be at least 1024",
            ));
        }
        let scheme = self.database.url.split(':').next().unwrap_or_default();
        if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
            return Err(ConfigError::key(
                "database.url",
                format!(
                    "unsupported database {scheme:?}; use sqlite://FILE or postgres://USER@HOST/DB"
                ),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::key(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        if self.queue.workers > 256 {
            return Err(ConfigError::key("queue.workers", "must be at most 256"));
        }
        if self.queue.max_attempts == 0 {
            return Err(ConfigError::key("queue.max_attempts", "must be at least 1"));
        }
        if self.discovery.enabled && self.atlassian.site_name.is_some() {
            return Err(ConfigError::key(
                "discovery.enabled",
                "finds the org's sites: remove atlassian.site_name (and list any site that needs its own settings as [[sites]])",
            ));
        }
        if self.discovery.enabled && self.atlassian.admin_api_key.is_none() {
            return Err(ConfigError::key(
                "discovery.enabled",
                "reads the org's workspaces through the admin API: set atlassian.org_id and atlassian.admin_api_key",
            ));
        }
        if self.sites.is_empty() && !self.discovery.enabled {
            self.validate_site()?;
        } else {
            for key in ["site_name", "site_base_url", "cloud_id"] {
                let set = match key {
                    "site_name" => self.atlassian.site_name.is_some(),
                    "site_base_url" => self.atlassian.site_base_url.is_some(),
                    _ => self.atlassian.cloud_id.is_some(),
                };
                if set {
                    return Err(ConfigError::key(
                        format!("atlassian.{key}"),
                        "with [[sites]], each site names itself in its own entry: move this key into the [[sites]] entry it belongs to",
                    ));
                }
            }
            self.validate_org_atlassian()?;
        }
        self.mail.validate(self.server.public_url.as_deref())?;
        self.admin.validate()?;
        // Prices and admin scopes name sites: every site reseat manages.
        let names = self.site_names();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.billing.validate(&names)?;
        self.admin.validate_scopes(&names)?;
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(ConfigError::key(
                "log.level",
                format!(
                    "expected a level like \"info\" or \"reseat=debug\", got {:?}",
                    self.log.level
                ),
            ));
        }
        Ok(())
    }

    /// `[atlassian]` of a file with `[[sites]]`: the org's part (the site credentials there
    /// are the sites' defaults, and no site is named there).
    fn validate_org_atlassian(&self) -> Result<(), ConfigError> {
        self.check_atlassian(false)
    }

    /// Secrets that become required once the section that uses them is configured.
    fn validate_atlassian(&self) -> Result<(), ConfigError> {
        self.check_atlassian(true)
    }

    fn check_atlassian(&self, names_a_site: bool) -> Result<(), ConfigError> {
        let atlassian = &self.atlassian;
        let how = |key: &str| {
            format!(
                "required secret is missing; set atlassian.{key}, atlassian.{key}_file or RESEAT_ATLASSIAN__{}",
                key.to_ascii_uppercase()
            )
        };
        if atlassian.org_id.is_some() && atlassian.admin_api_key.is_none() {
            return Err(ConfigError::key(
                "atlassian.admin_api_key",
                how("admin_api_key"),
            ));
        }
        if atlassian.site_email.is_some() && atlassian.site_api_token.is_none() {
            return Err(ConfigError::key(
                "atlassian.site_api_token",
                how("site_api_token"),
            ));
        }
        if atlassian.site_api_token.is_some() && atlassian.site_email.is_none() {
            return Err(ConfigError::key(
                "atlassian.site_email",
                "is required with atlassian.site_api_token (the site admin the token belongs to)",
            ));
        }
        if names_a_site
            && (atlassian.site_email.is_some() || atlassian.site_api_token.is_some())
            && atlassian.site_url().is_none()
        {
            return Err(ConfigError::key(
                "atlassian.site_name",
                "is required with site credentials: the site name (acme for acme.atlassian.net) or atlassian.site_base_url",
            ));
        }
        let directory = atlassian.directory_id.trim();
        if directory.is_empty()
            || !directory
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::key(
                "atlassian.directory_id",
                format!(
                    "{:?} is not a directory id: use \"-\" (every directory) or the id from admin.atlassian.com",
                    atlassian.directory_id
                ),
            ));
        }
        Ok(())
    }

    /// The site reseat manages, as recorded in the journal: the site name, else the cloud id.
    pub fn site(&self) -> &str {
        if let Some(first) = self.site_configs.first() {
            return first.site();
        }
        let atlassian = &self.atlassian;
        atlassian
            .site_name
            .as_deref()
            .or(atlassian.cloud_id.as_deref())
            .unwrap_or("default")
    }

    /// The public base URL for links (no trailing slash).
    pub fn public_url(&self) -> String {
        self.server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.server.listen))
            .trim_end_matches('/')
            .to_string()
    }

    /// The effective configuration as TOML, secrets redacted: every secret, and the password
    /// of every URL that carries one (`database.url` among them).
    pub fn to_redacted_toml(&self) -> String {
        let mut value = match toml::Value::try_from(self) {
            Ok(value) => value,
            Err(error) => return format!("# cannot render: {error}\n"),
        };
        redact_url_passwords(&mut value);
        toml::to_string_pretty(&value).unwrap_or_else(|error| format!("# cannot render: {error}\n"))
    }
}

/// Replaces the password of every URL in `value` (at any depth) with the redaction marker.
fn redact_url_passwords(value: &mut toml::Value) {
    match value {
        toml::Value::String(text) if text.contains("://") => {
            let redacted = crate::store::redact_url(text);
            if redacted != *text {
                *text = redacted.replace("REDACTED", secret::REDACTED);
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(redact_url_passwords),
        toml::Value::Table(table) => table.iter_mut().for_each(|(_, v)| redact_url_passwords(v)),
        _ => {}
    }
}

fn read_file(explicit: Option<&Path>) -> Result<(Table, Option<String>), ConfigError> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None if Path::new(DEFAULT_FILE).is_file() => PathBuf::from(DEFAULT_FILE),
        None => return Ok((Table::new(), None)),
    };
    let label = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|error| {
        ConfigError::key(
            &label,
            format!("cannot read the file ({error}); check --config"),
        )
    })?;
    let table: Table = toml::from_str(&text).map_err(|error| {
        let line = error
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let place = match line {
            Some(line) => format!("{label} line {line}"),
            None => label.clone(),
        };
        ConfigError::key(place, error.message().trim().replace('\n', " "))
    })?;
    Ok((table, Some(label)))
}

/// Applies `RESEAT_A__B__C=value` variables to the table; returns which key came from which
/// variable, so errors can name the variable.
fn apply_env(
    table: &mut Table,
    env: &[(String, String)],
) -> Result<BTreeMap<String, String>, ConfigError> {
    let defaults = match Value::try_from(Config::default()) {
        Ok(Value::Table(defaults)) => defaults,
        _ => Table::new(),
    };
    let mut origins = BTreeMap::new();
    let mut vars: Vec<_> = env
        .iter()
        .filter(|(name, _)| name.starts_with("RESEAT_") && name.contains("__"))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let segments: Vec<String> = name["RESEAT_".len()..]
            .split("__")
            .map(|segment| segment.to_ascii_lowercase())
            .collect();
        if segments.iter().any(String::is_empty) {
            return Err(ConfigError::key(
                name,
                "expected RESEAT_SECTION__KEY, e.g. RESEAT_SERVER__LISTEN",
            ));
        }
        let mut node = &mut *table;
        let mut default_node = Some(&defaults);
        let mut path = Vec::new();
        for (index, segment) in segments.iter().enumerate() {
            let key = node
                .keys()
                .find(|key| key.replace('-', "_") == *segment)
                .cloned()
                .unwrap_or_else(|| segment.clone());
            path.push(key.clone());
            let default_value = default_node.and_then(|d| d.get(&key));
            if index + 1 == segments.len() {
                node.insert(key, env_value(raw, default_value));
            } else {
                default_node = default_value.and_then(Value::as_table);
                let entry = node
                    .entry(key)
                    .or_insert_with(|| Value::Table(Table::new()));
                node = match entry {
                    Value::Table(inner) => inner,
                    _ => {
                        return Err(ConfigError::key(
                            name,
                            format!("{} is not a section", path.join(".")),
                        ));
                    }
                };
            }
        }
        origins.insert(path.join("."), name.clone());
    }
    Ok(origins)
}

/// Types an environment value like the key it sets: strings stay strings, numbers, booleans
/// and arrays are parsed as TOML.
fn env_value(raw: &str, default: Option<&Value>) -> Value {
    let parsed = || {
        toml::from_str::<Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
    };
    match default {
        Some(Value::String(_)) => Value::String(raw.to_string()),
        Some(_) => parsed().unwrap_or_else(|| Value::String(raw.to_string())),
        None => {
            let looks_structured =
                raw.starts_with('[') || raw.starts_with('{') || raw == "true" || raw == "false";
            match parsed() {
                Some(value) if looks_structured => value,
                _ => Value::String(raw.to_string()),
            }
        }
    }
}

/// Replaces every `X_file = "path"` by `X = <contents of path>`.
fn resolve_secret_files(table: &mut Table, prefix: &str) -> Result<(), ConfigError> {
    let keys: Vec<String> = table.keys().cloned().collect();
    for key in keys {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if let Some(Value::Table(inner)) = table.get_mut(&key) {
            resolve_secret_files(inner, &full)?;
            continue;
        }
        if let Some(Value::Array(items)) = table.get_mut(&key) {
            for (i, item) in items.iter_mut().enumerate() {
                if let Value::Table(inner) = item {
                    resolve_secret_files(inner, &format!("{full}[{i}]"))?;
                }
            }
            continue;
        }
        let Some(target) = key.strip_suffix("_file") else {
            continue;
        };
        let Some(Value::String(path)) = table.get(&key).cloned() else {
            return Err(ConfigError::key(full, "expected a file path"));
        };
        if table.contains_key(target) {
            return Err(ConfigError::key(
                full,
                format!("set either {target} or {key}, not both"),
            ));
        }
        let contents = std::fs::read_to_string(&path).map_err(|error| {
            ConfigError::key(
                &full,
                format!("cannot read the secret file {path:?} ({error})"),
            )
        })?;
        let value = contents.trim_end_matches(['\n', '\r']).to_string();
        if value.trim().is_empty() {
            return Err(ConfigError::key(
                full,
                format!("the secret file {path:?} is empty"),
            ));
        }
        table.remove(&key);
        table.insert(target.to_string(), Value::String(value));
    }
    Ok(())
}

fn describe_serde_error(
    path: &str,
    message: &str,
    env_keys: &BTreeMap<String, String>,
    file: Option<&str>,
) -> ConfigError {
    let path = if path == "." {
        String::new()
    } else {
        path.to_string()
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let unknown = rest.split('`').next().unwrap_or_default();
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        // The path already ends with the unknown key.
        let key = if path.is_empty() {
            unknown.to_string()
        } else {
            path.clone()
        };
        let suggestion = expected
            .iter()
            .map(|candidate| (strsim::jaro_winkler(unknown, candidate), *candidate))
            .filter(|(score, _)| *score > 0.7)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, candidate)| format!("; did you mean {candidate:?}?"))
            .unwrap_or_else(|| {
                if expected.is_empty() {
                    String::new()
                } else {
                    format!("; valid keys here: {}", expected.join(", "))
                }
            });
        let place = origin(&key, env_keys);
        return ConfigError::key(place, format!("unknown key{suggestion}"));
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let missing = rest.split('`').next().unwrap_or_default();
        let key = if path.is_empty() {
            missing.to_string()
        } else {
            format!("{path}.{missing}")
        };
        return ConfigError::key(key, "is required");
    }
    let place = if path.is_empty() {
        file.unwrap_or("config").to_string()
    } else {
        origin(&path, env_keys)
    };
    ConfigError::key(place, message.replace('\n', " "))
}

/// The TOML deserializer appends `in `key`` to its messages; the key is named already.
fn strip_location(message: &str) -> String {
    let message = message.trim();
    match message.rfind("in `") {
        Some(at) if message.ends_with('`') && message[..at].ends_with(char::is_whitespace) => {
            message[..at].trim().to_string()
        }
        _ => message.to_string(),
    }
}

fn origin(key: &str, env_keys: &BTreeMap<String, String>) -> String {
    match env_keys.get(key) {
        Some(var) => format!("{key} (from {var})"),
        None => key.to_string(),
    }
}

#[cfg(test)]
mod tests;
