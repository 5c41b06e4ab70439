//! The command line: `reseat serve`, `reseat migrate`, `reseat config check`, …
//!
//! Every error a user can cause ends as one line on stderr and a non-zero exit status:
//! 2 for configuration problems, 1 for everything else.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::{App, StartError, open_store, shutdown_signal};
use crate::config::{Config, ConfigError, LogFormat, Sources};

#[derive(Debug, Parser)]
#[command(
    name = "reseat",
    version,
    about = "Reclaims idle Atlassian Cloud seats and gives access back in seconds when a legitimate user asks.",
    long_about = None
)]
pub struct Cli {
    /// Configuration file (default: ./reseat.toml if it exists, else built-in defaults).
    /// Every key can also be set by environment, e.g. RESEAT_SERVER__LISTEN.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format: text (human) or json (for collectors). Overrides log.format.
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole loop on a laptop: the Atlassian simulator with a sample org, and the
    /// service against it on SQLite with a file outbox. Prints the URLs to open.
    Demo(crate::demo::DemoArgs),
    /// Run the service: webhook intake, restore links, admin UI and API, queue workers.
    Serve {
        /// Address to listen on (overrides server.listen).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Run the built-in Atlassian Cloud simulator alone (for tests, demos and benchmarks).
    Sim(crate::sim::SimArgs),
    /// Reclaim idle seats: plan, then apply once (`reseat sweep plan|apply` for one step).
    Sweep(SweepArgs),
    /// Restore rules: `reseat rules explain --account ID --product KEY --channel C`.
    Rules(crate::restore::cli::RulesArgs),
    /// Restore requests waiting for an admin: list, approve, deny.
    Requests(crate::restore::cli::RequestsArgs),
    /// Admin access: hash a password or an API token, print a one-time login link or the
    /// API's OpenAPI document.
    Admin(crate::web::admin::cli::AdminArgs),
    /// Send a signed Standard Webhooks restore request (to try the webhook channel).
    Webhook(crate::restore::cli::WebhookArgs),
    /// Send a signed Slack slash command (to try the Slack channel against the demo's fake).
    Slack(crate::restore::slack::send::SlackArgs),
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print a signed, single-use link for one user (for support staff).
    Link {
        /// The user's Atlassian account id.
        #[arg(long, value_name = "ID")]
        account: String,
        /// The product key, e.g. jira-software, jira-service-desk, confluence.
        #[arg(long, value_name = "KEY", value_parser = crate::atlassian::ProductKey::parse_known)]
        product: crate::atlassian::ProductKey,
        /// restore (give access back) or keep (keep access a warning said would go).
        #[arg(long, default_value = "restore", value_name = "PURPOSE")]
        purpose: crate::notify::Purpose,
        /// The site the link is for (default: links.site).
        #[arg(long, value_name = "SITE")]
        site: Option<String>,
        /// How long the link works (default: links.restore_ttl or links.keep_ttl), e.g. 7d.
        #[arg(long, value_name = "DURATION", value_parser = crate::config::duration::parse)]
        expires_in: Option<std::time::Duration>,
        /// Act as this [[admin.users]] entry, with its role and scope (default: the CLI,
        /// owner). Issuing a link gives access back, so it needs approver or above.
        #[arg(long = "as", value_name = "NAME")]
        as_admin: Option<String>,
    },
    /// Emails.
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
    /// Reports for finance.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Money saved by month: one row per site × product × month (seats reclaimed and given
    /// back, seat-days free, savings at the `[billing]` prices).
    Savings {
        /// csv or json.
        #[arg(long, default_value = "csv", value_name = "FORMAT")]
        format: crate::billing::report::Format,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Render a template with sample data to stdout: warning, removal, restored, pending,
    /// declined, digest.
    Preview {
        /// The template's name.
        template: String,
        /// The display name to use in the sample.
        #[arg(long, default_value = "Ada Lovelace", value_name = "NAME")]
        name: String,
        /// Print only one part: text or html.
        #[arg(long, value_name = "PART")]
        part: Option<PreviewPart>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PreviewPart {
    Text,
    Html,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub command: Option<SweepCommand>,
    /// Activity source: `api` (default) or `csv:FILE`; repeat to combine (newest wins).
    #[arg(long, value_name = "SOURCE")]
    pub source: Vec<String>,
    /// Confirm changes when sweep.mode is live.
    #[arg(long)]
    pub yes: bool,
    /// Only this site (repeat for several); default every configured site.
    #[arg(long, value_name = "NAME")]
    pub site: Vec<String>,
    /// Act as this [[admin.users]] entry, with its role and scope (default: the CLI, owner).
    #[arg(long = "as", value_name = "NAME")]
    pub as_admin: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SweepCommand {
    /// Compute and store a plan per site (one row per user x product); nothing changes.
    Plan {
        /// Activity source: `api` (default) or `csv:FILE`; repeat to combine (newest wins).
        #[arg(long, value_name = "SOURCE")]
        source: Vec<String>,
        /// Also write the plan to FILE.csv or FILE.json (one site: with several, add --site).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Only this site (repeat for several); default every configured site.
        #[arg(long, value_name = "NAME")]
        site: Vec<String>,
        /// Act as this [[admin.users]] entry, with its role and scope (default: the CLI).
        #[arg(long = "as", value_name = "NAME")]
        as_admin: Option<String>,
    },
    /// Apply a stored plan (each site's newest by default): warn, remove, journal.
    Apply {
        /// The plan id (default: the newest plan of each site).
        #[arg(long, value_name = "ID")]
        plan: Option<String>,
        /// Confirm changes when sweep.mode is live.
        #[arg(long)]
        yes: bool,
        /// Only this site (repeat for several); default every configured site.
        #[arg(long, value_name = "NAME")]
        site: Vec<String>,
        /// Act as this [[admin.users]] entry, with its role and scope (default: the CLI).
        #[arg(long = "as", value_name = "NAME")]
        as_admin: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective values, secrets redacted.
    Check {
        /// Also ask the site: the admin API key administers the org, every managed product
        /// is on the site, and every access and protect group exists (nothing is changed).
        #[arg(long)]
        online: bool,
    },
}

/// A failure of a command, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Sweep(#[from] crate::sweep::SweepError),
    /// `config check --online` found the site disagreeing (exit status 2, as for a bad file).
    #[error("{0}")]
    Online(String),
    /// A flag that names something the configuration does not have (exit status 2).
    #[error("{0}")]
    Usage(String),
    /// Outside the role or scope of `--as NAME` (exit status 2; audited, nothing changed).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Other(String),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Config(_)
            | CliError::Online(_)
            | CliError::Usage(_)
            | CliError::Refused(_)
            | CliError::Sweep(crate::sweep::SweepError::Refused(_))
            | CliError::Start(StartError::Config(_)) => ExitCode::from(2),
            CliError::Sweep(crate::sweep::SweepError::Busy { .. }) => {
                ExitCode::from(crate::sweep::run_lease::EXIT_BUSY)
            }
            _ => ExitCode::from(1),
        }
    }
}

impl From<crate::store::StoreError> for CliError {
    fn from(error: crate::store::StoreError) -> Self {
        CliError::Start(StartError::Store(error))
    }
}

/// The credential a command acts with: `--as NAME` is that `[[admin.users]]` entry, with
/// its role and scope; without it, `cli`, owner of everything (whoever runs the CLI holds
/// the configuration and the database already).
pub fn acting_grant(
    config: &Config,
    as_admin: Option<&str>,
) -> Result<crate::web::config::Grant, CliError> {
    match as_admin {
        None => Ok(crate::web::config::Grant::cli()),
        Some(name) => config.admin.user_grant(name).ok_or_else(|| {
            CliError::Refused(format!(
                "--as: no admin {name:?} in [[admin.users]]; nothing was changed"
            ))
        }),
    }
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("reseat: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            error.exit_code()
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config, CliError> {
    let config = Config::load(&Sources::from_process(cli.config.clone()))?;
    let format = match cli.log_format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) => LogFormat::Text,
        None => config.log.format,
    };
    crate::telemetry::init(format, &config.log.level);
    Ok(config)
}

/// The configuration of a command that reads or changes reseat's state: its database must
/// exist already. Only `serve`, `migrate` and `demo` create one, so a command run in the
/// wrong folder, or without its configuration, says so instead of leaving a new empty
/// `reseat.db` behind.
fn load_config_with_database(cli: &Cli) -> Result<Config, CliError> {
    let config = load_config(cli)?;
    require_database(&config)?;
    Ok(config)
}

fn require_database(config: &Config) -> Result<(), CliError> {
    let Some(file) = crate::store::sqlite_file(config.database.url.trim()) else {
        return Ok(());
    };
    if file.exists() {
        return Ok(());
    }
    let default = config.database.url == crate::config::DatabaseConfig::default().url;
    Err(ConfigError::key(
        "database.url",
        format!(
            "no database at {}{}; give --config FILE (or RESEAT_DATABASE__URL), or create it with `reseat migrate`",
            file.display(),
            if default {
                " (the default, as no configuration names one)"
            } else {
                ""
            }
        ),
    )
    .into())
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Serve { listen } => {
            let mut config = load_config(&cli)?;
            if let Some(listen) = listen {
                config.server.listen = listen.clone();
                config
                    .server
                    .listen_addr()
                    .map_err(|e| ConfigError::key("--listen", e.message))?;
            }
            let app = App::build(config).await?;
            let addr = app.local_addr();
            tracing::info!(%addr, "reseat is serving");
            println!("listening: http://{addr}");
            app.run_until(shutdown_signal()).await?;
            Ok(())
        }
        Command::Migrate => {
            let config = load_config(&cli)?;
            let db = open_store(&config).await?;
            db.close().await;
            println!(
                "database is up to date: {}",
                crate::store::redact_url(&config.database.url)
            );
            Ok(())
        }
        Command::Demo(args) => {
            // Warnings only by default: the guide the demo prints must stay on screen.
            crate::telemetry::init(
                match cli.log_format {
                    Some(LogFormatArg::Json) => LogFormat::Json,
                    _ => LogFormat::Text,
                },
                if args.verbose { "info" } else { "warn" },
            );
            crate::demo::run(args.clone(), shutdown_signal())
                .await
                .map_err(|error| CliError::Other(format!("demo: {error:#}")))
        }
        Command::Sim(args) => {
            crate::telemetry::init(LogFormat::Text, "warn");
            crate::sim::run(args.clone(), shutdown_signal())
                .await
                .map_err(|error| CliError::Other(format!("sim: {error:#}")))
        }
        Command::Sweep(args) => {
            let config = load_config_with_database(&cli)?;
            run_sweep(config, args).await
        }
        Command::Rules(args) => {
            let state = crate::app::AppState::open(load_config_with_database(&cli)?).await?;
            let out = crate::restore::cli::rules(&state, args)
                .await
                .map_err(CliError::Other)?;
            print!("{out}");
            Ok(())
        }
        Command::Admin(args) => match &args.command {
            crate::web::admin::cli::AdminCommand::HashPassword => {
                let hash = crate::web::admin::cli::hash_password(std::io::stdin().lock())
                    .map_err(CliError::Other)?;
                println!("{hash}");
                Ok(())
            }
            crate::web::admin::cli::AdminCommand::LoginLink { name, dir } => {
                let config = match dir {
                    Some(dir) => crate::web::admin::cli::demo_config(dir)?,
                    None => load_config(&cli)?,
                };
                require_database(&config)?;
                let name = name
                    .clone()
                    .or_else(|| dir.as_ref().map(|_| crate::demo::DEMO_ADMIN.to_string()))
                    .or_else(|| std::env::var("USER").ok())
                    .unwrap_or_else(|| "admin".into());
                let state = crate::app::AppState::open(config).await?;
                let out = crate::web::admin::cli::login_link(&state, &name)
                    .await
                    .map_err(CliError::Other)?;
                print!("{out}");
                Ok(())
            }
            crate::web::admin::cli::AdminCommand::HashToken => {
                let mut token = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut token)
                    .map_err(|error| CliError::Other(format!("admin hash-token: {error}")))?;
                // A trailing newline from `echo` or a terminal is not part of the token.
                let token = token.trim_end_matches(['\n', '\r']);
                if token.trim().is_empty() {
                    return Err(CliError::Other(
                        "admin hash-token: no token on standard input; try: printf %s TOKEN | reseat admin hash-token".into(),
                    ));
                }
                println!("{}", crate::web::config::hash_token(token));
                Ok(())
            }
            crate::web::admin::cli::AdminCommand::Whoami { as_admin, token } => {
                let config = load_config(&cli)?;
                let grant = match (as_admin, token) {
                    (Some(name), _) => config.admin.user_grant(name).ok_or_else(|| {
                        CliError::Other(format!(
                            "admin whoami: no admin {name:?} in [[admin.users]]"
                        ))
                    })?,
                    (None, Some(token)) => crate::web::api::auth::token_name(&config.admin, token)
                        .and_then(|name| config.admin.token_grant(&name))
                        .ok_or_else(|| {
                            CliError::Other(
                                "admin whoami: the token matches no [[admin.api_tokens]] entry"
                                    .into(),
                            )
                        })?,
                    (None, None) => crate::web::config::Grant::cli(),
                };
                print!("{}", crate::web::admin::cli::whoami(&grant));
                Ok(())
            }
            crate::web::admin::cli::AdminCommand::Openapi => {
                let document = crate::web::api::openapi()
                    .to_pretty_json()
                    .map_err(|error| CliError::Other(format!("admin openapi: {error}")))?;
                println!("{document}");
                Ok(())
            }
        },
        Command::Slack(args) => {
            let out = crate::restore::slack::send::send(args)
                .await
                .map_err(CliError::Other)?;
            print!("{out}");
            Ok(())
        }
        Command::Webhook(args) => {
            let out = crate::restore::cli::webhook(args)
                .await
                .map_err(CliError::Other)?;
            print!("{out}");
            Ok(())
        }
        Command::Requests(args) => {
            let state = crate::app::AppState::open(load_config_with_database(&cli)?).await?;
            let out = crate::restore::cli::requests(&state, args).await?;
            print!("{out}");
            Ok(())
        }
        Command::Link {
            account,
            product,
            purpose,
            site,
            expires_in,
            as_admin,
        } => {
            let config = load_config(&cli)?;
            let grant = acting_grant(&config, as_admin.as_deref())?;
            let site = site
                .clone()
                .or_else(|| config.links.site.clone())
                .ok_or_else(|| {
                    ConfigError::key(
                        "links.site",
                        "no site for the link; pass --site SITE or set links.site",
                    )
                })?;
            let signer =
                crate::notify::LinkSigner::from_config(&config.links, &config.public_url());
            if !signer.can_sign() {
                return Err(ConfigError::key(
                    "links.signing_key",
                    "no signing key; set links.signing_key and links.keys.<id> (see docs/notifications.md)",
                )
                .into());
            }
            let now = chrono::Utc::now();
            let expires = match expires_in {
                Some(ttl) => {
                    now + chrono::Duration::from_std(*ttl)
                        .map_err(|_| CliError::Other("--expires-in: too long".into()))?
                }
                None => signer.default_expiry(*purpose, now),
            };
            require_database(&config)?;
            let db = open_store(&config).await?;
            let allowed = async {
                grant
                    .require(&db, crate::web::config::Action::Decide)
                    .await?;
                let what = format!("a link for {} on {site}", product.as_str());
                grant
                    .require_scope(&db, &site, Some(product.as_str()), &what)
                    .await
            }
            .await;
            if let Err(refused) = allowed {
                db.close().await;
                return Err(CliError::Refused(refused.to_string()));
            }
            let issued = async {
                let mut tx = db.pool().begin().await?;
                let issued = signer
                    .issue(&mut tx, *purpose, account, product.as_str(), &site, expires)
                    .await?;
                crate::audit::record_in(
                    &mut tx,
                    db.now_ms(),
                    crate::audit::Entry {
                        actor: &grant.actor,
                        role: Some(grant.role_name()),
                        action: "link.issued",
                        account_id: Some(account),
                        product: Some(product.as_str()),
                        details: serde_json::json!({ "purpose": purpose.to_string(), "site": site }),
                    },
                )
                .await?;
                tx.commit().await?;
                Ok::<_, crate::notify::LinkError>(issued)
            }
            .await;
            db.close().await;
            let issued = issued.map_err(|error| CliError::Other(error.to_string()))?;
            println!("{}", issued.url);
            eprintln!(
                "{purpose} link for {account} ({product} on {site}), single use, expires {}",
                expires.format("%Y-%m-%d %H:%M UTC")
            );
            Ok(())
        }
        Command::Report {
            command: ReportCommand::Savings { format, out },
        } => {
            let state = crate::app::AppState::open(load_config_with_database(&cli)?).await?;
            let savings = crate::billing::savings(&state)
                .await
                .map_err(|error| CliError::Other(format!("report savings: {error}")))?;
            let body = format
                .render(&savings)
                .map_err(|error| CliError::Other(format!("report savings: {error}")))?;
            match out {
                Some(path) => {
                    std::fs::write(path, &body).map_err(|error| {
                        CliError::Other(format!(
                            "report savings: cannot write {}: {error}",
                            path.display()
                        ))
                    })?;
                    eprintln!(
                        "report savings: {} rows written to {}",
                        savings.months.len(),
                        path.display()
                    );
                }
                None => {
                    use std::io::Write as _;
                    std::io::stdout()
                        .write_all(&body)
                        .map_err(|error| CliError::Other(format!("report savings: {error}")))?;
                }
            }
            Ok(())
        }
        Command::Mail {
            command:
                MailCommand::Preview {
                    template,
                    name,
                    part,
                },
        } => {
            let config = Config::load(&Sources::from_process(cli.config.clone()))?;
            let brand = crate::notify::Branding::from_config(&config.mail);
            let rendered =
                crate::notify::templates::sample(template, name, &brand, &config.public_url())
                    .ok_or_else(|| {
                        CliError::Other(format!(
                            "mail preview: no template {template:?}; choose one of: {}",
                            crate::notify::templates::TEMPLATES.join(", ")
                        ))
                    })?
                    .map_err(|error| CliError::Other(format!("mail preview: {error}")))?;
            let output = match part {
                Some(PreviewPart::Text) => rendered.text,
                Some(PreviewPart::Html) => rendered.html,
                None => format!(
                    "Subject: {}\n\n--- text/plain ---\n{}\n--- text/html ---\n{}",
                    rendered.subject, rendered.text, rendered.html
                ),
            };
            // `| head` closing the pipe early is not an error.
            use std::io::Write as _;
            match std::io::stdout().lock().write_all(output.as_bytes()) {
                Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(CliError::Other(format!("mail preview: {error}")))
                }
                _ => Ok(()),
            }
        }
        Command::Config {
            command: ConfigCommand::Check { online },
        } => {
            let config = Config::load(&Sources::from_process(cli.config.clone()))?;
            print!("{}", config.to_redacted_toml());
            let without_role = config.admin.entries_without_role();
            if !without_role.is_empty() {
                eprintln!(
                    "config: note: {} set no role and act as owner; set role = \"owner\" (or viewer, approver, operator) to make it explicit",
                    without_role.join(", ")
                );
            }
            if config.sites.is_empty() && config.atlassian.site_name.is_some() {
                eprintln!(
                    "config: note: [atlassian] names one site ({}); to manage every site of the org from this install, list each as [[sites]] (see docs/configuration.md, \"Several sites\")",
                    config.site()
                );
            }
            if *online {
                if config.site_configs.is_empty() {
                    check_online(&config).await?;
                } else {
                    for site in &config.site_configs {
                        eprintln!("online: site {}", site.site());
                        check_online(site).await?;
                    }
                }
                eprintln!("config: ok, and the site agrees");
            } else {
                eprintln!("config: ok");
            }
            Ok(())
        }
    }
}

/// `config check --online`: what a run would find on the site, asked without changing it.
/// Each finding is a line on stderr; any problem fails the check with exit status 2.
async fn check_online(config: &Config) -> Result<(), CliError> {
    use crate::sweep::population;
    let clients = crate::atlassian::AtlassianClients::new(&config.atlassian).map_err(|error| {
        CliError::Online(format!("cannot build the Atlassian clients: {error}"))
    })?;
    let mut problems: Vec<String> = Vec::new();
    match (&clients.admin, &clients.org_id) {
        (Some(admin), Some(org)) => match admin.orgs().collect_all().await {
            Ok(orgs) => match orgs.iter().find(|o| o.id == *org) {
                Some(found) => eprintln!(
                    "online: the admin API key administers org {org} ({})",
                    found.name
                ),
                None => problems.push(format!(
                    "atlassian.org_id {org} is not an org the admin API key administers ({} found)",
                    orgs.len()
                )),
            },
            Err(error) => problems.push(format!("the admin API refused the key: {error}")),
        },
        _ => eprintln!("online: no admin API key or org id configured; the org is not checked"),
    }
    if let Some(jira) = &clients.jira {
        match jira.application_roles().await {
            Ok(roles) => {
                for product in config.sweep.product_keys() {
                    if product.jira_application_key().is_some()
                        && !roles.iter().any(|role| role.key == product)
                    {
                        problems.push(format!(
                            "sweep.products.{product}: the site has no such Jira application"
                        ));
                    }
                }
            }
            Err(error) => problems.push(format!(
                "the site's Jira API refused the credentials: {error}"
            )),
        }
    }
    if problems.is_empty() {
        match population::check(&clients, &config.sweep).await {
            Ok(found) => {
                for product in config.sweep.product_keys() {
                    let groups: Vec<String> = found
                        .groups_of(&product)
                        .map(|g| format!("{} ({})", g.name, g.id))
                        .collect();
                    if !groups.is_empty() {
                        eprintln!(
                            "online: {} through {}",
                            product.display_name(),
                            groups.join(", ")
                        );
                    }
                }
                for finding in &found.findings {
                    // A group named to protect people that protects nobody is a problem;
                    // a missing admin group (the defaults name groups a site may lack) is not.
                    let unprotected = matches!(finding,
                        population::Finding::ProtectGroupMissing { group }
                            if config.sweep.protect.groups.contains(group));
                    if finding.blocks(&config.sweep.governance) || unprotected {
                        problems.push(finding.to_string());
                    } else {
                        eprintln!("online: note: {finding}");
                    }
                }
            }
            Err(error) => problems.push(format!("cannot read the access groups: {error}")),
        }
    }
    for problem in &problems {
        eprintln!("online: problem: {problem}");
    }
    match problems.len() {
        0 => Ok(()),
        n => Err(CliError::Online(format!(
            "config: {n} problem(s) found on the site; nothing was changed"
        ))),
    }
}

fn parse_sources(texts: &[String]) -> Result<Vec<crate::sweep::Source>, CliError> {
    if texts.is_empty() {
        return Ok(vec![crate::sweep::Source::Api]);
    }
    texts
        .iter()
        .map(|t| crate::sweep::Source::parse(t).map_err(CliError::Other))
        .collect()
}

/// A progress spinner on a terminal, nothing otherwise.
fn progress() -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// The sites `--site` names (each configured site when none is named).
fn selected_sites(
    state: &crate::app::AppState,
    names: &[String],
) -> Result<Vec<crate::app::AppState>, CliError> {
    if names.is_empty() {
        return Ok(state.each_site());
    }
    names
        .iter()
        .map(|name| {
            state.for_site(name).ok_or_else(|| {
                CliError::Usage(format!(
                    "--site {name}: not a site of this configuration (sites: {})",
                    state.site_names().join(", ")
                ))
            })
        })
        .collect()
}

/// `plan ID`, with the site when reseat manages several.
fn plan_heading(state: &crate::app::AppState, planned: &crate::sweep::Planned) {
    if state.is_multi_site() {
        println!("plan {} for site {}", planned.plan_id, state.site());
    } else {
        println!("plan {}", planned.plan_id);
    }
    for line in crate::sweep::plan::summary_lines(&planned.summary) {
        println!("  {line}");
    }
}

/// The plans made, one per site; errors are said per site and the first is returned.
async fn sweep_plan(
    state: &crate::app::AppState,
    sources: &[String],
    out: Option<&std::path::Path>,
    sites: &[String],
) -> Result<Vec<String>, CliError> {
    let sources = parse_sources(sources)?;
    let sites = selected_sites(state, sites)?;
    if let Some(out) = out {
        if sites.len() > 1 {
            return Err(CliError::Usage(
                "--out writes one site's plan: add --site NAME".to_owned(),
            ));
        }
        crate::sweep::plan::check_out_path(out)?;
    }
    let bar = progress();
    let outcomes = crate::sweep::plan_sites(&sites, &sources, state.clock().now(), &bar).await;
    bar.finish_and_clear();
    let mut plans = Vec::new();
    let mut first_error = None;
    for ((_, planned), site) in outcomes.into_iter().zip(&sites) {
        let planned = match planned {
            Ok(planned) => planned,
            Err(error) => {
                if sites.len() > 1 {
                    eprintln!("site {}: {error}", site.site());
                }
                first_error.get_or_insert(error);
                continue;
            }
        };
        plan_heading(site, &planned);
        warn_if_stale(&planned.summary);
        if let Some(out) = out {
            let items = crate::sweep::store::items(&state.db, &planned.plan_id)
                .await
                .map_err(crate::sweep::SweepError::from)?;
            crate::sweep::plan::export(&items, out)?;
            println!("  written to {}", out.display());
        }
        plans.push(planned.plan_id);
    }
    match first_error {
        Some(error) => Err(error.into()),
        None => Ok(plans),
    }
}

/// The stale-data warning of a plan, on stderr too: the plan is stored, apply will refuse it.
fn warn_if_stale(summary: &crate::sweep::plan::PlanSummary) {
    if let Some(stale) = &summary.stale {
        eprintln!(
            "warning: the plan's activity data looks stale: {stale}; apply will refuse this plan"
        );
    }
}

/// A progress bar over the items of an apply on a terminal, nothing otherwise.
fn apply_progress() -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} items, {per_sec}, {eta} left")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    bar
}

fn apply_options(yes: bool) -> crate::sweep::ApplyOptions {
    crate::sweep::ApplyOptions {
        confirmed: yes,
        progress: apply_progress(),
        ..crate::sweep::ApplyOptions::default()
    }
}

async fn sweep_apply(
    state: &crate::app::AppState,
    plan: Option<&str>,
    yes: bool,
    sites: &[String],
) -> Result<(), CliError> {
    let options = apply_options(yes);
    if plan.is_some() {
        let report = crate::sweep::apply(state, plan, &options).await;
        options.progress.finish_and_clear();
        let report = report?;
        print_report(&report);
        print_mail_note(state, &report).await;
        return Ok(());
    }
    let sites = selected_sites(state, sites)?;
    let reports = futures_util::future::join_all(
        sites
            .iter()
            .map(|site| crate::sweep::apply(site, None, &options)),
    )
    .await;
    options.progress.finish_and_clear();
    let mut first_error = None;
    for (report, site) in reports.into_iter().zip(&sites) {
        match report {
            Ok(report) => {
                if sites.len() > 1 {
                    println!("site {}:", site.site());
                }
                print_report(&report);
                print_mail_note(state, &report).await;
            }
            Err(error) => {
                if sites.len() > 1 {
                    eprintln!("site {}: {error}", site.site());
                }
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}

/// Emails a live apply queued are sent by the service's queue workers, not by this command:
/// say how many wait, and who sends them.
async fn print_mail_note(state: &crate::app::AppState, report: &crate::sweep::ApplyReport) {
    if report.dry_run {
        return;
    }
    let queued: Result<i64, _> =
        sqlx::query_scalar("SELECT COUNT(*) FROM email_outbox WHERE status = 'queued'")
            .fetch_one(state.db.pool())
            .await;
    match queued {
        Ok(0) => {}
        Ok(queued) => println!(
            "  {queued} email(s) queued (warnings, removal notices): `reseat serve` sends them, at once if it runs now; none is sent before"
        ),
        Err(error) => eprintln!("warning: cannot count the queued emails: {error}"),
    }
}

fn print_report(report: &crate::sweep::ApplyReport) {
    if report.dry_run {
        println!(
            "dry run of plan {} (sweep.mode = \"dry-run\"): nothing changed",
            report.plan_id
        );
        for line in report.would.iter().take(50) {
            println!("  would: {line}");
        }
        if report.would.len() > 50 {
            println!("  … and {} more", report.would.len() - 50);
        }
    } else {
        println!(
            "plan {}: warned {}, removed {} users ({} memberships), skipped {}, failed {}",
            report.plan_id,
            report.warned,
            report.removed_users,
            report.removed_memberships,
            report.skipped,
            report.failed
        );
    }
}

/// `reseat sweep`: per site, one apply lease from before the plan to the end of the apply;
/// the sites side by side, over one org listing.
async fn sweep_plan_and_apply(
    state: &crate::app::AppState,
    sources: &[String],
    yes: bool,
    sites: &[String],
) -> Result<(), CliError> {
    let sources = parse_sources(sources)?;
    let sites = selected_sites(state, sites)?;
    let bar = progress();
    let options = apply_options(yes);
    let outcomes = crate::sweep::plan_and_apply_sites(&sites, &sources, &bar, &options).await;
    bar.finish_and_clear();
    options.progress.finish_and_clear();
    let mut first_error = None;
    for ((_, result), site) in outcomes.into_iter().zip(&sites) {
        match result {
            Ok((planned, report)) => {
                plan_heading(site, &planned);
                print_report(&report);
                print_mail_note(state, &report).await;
            }
            Err(error) => {
                if sites.len() > 1 {
                    eprintln!("site {}: {error}", site.site());
                }
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}

/// Audits what a credential asked of the CLI (`sweep.plan_requested`, `plan.apply_requested`),
/// naming it and its role.
async fn audit_cli(
    state: &crate::app::AppState,
    grant: &crate::web::config::Grant,
    action: &str,
    details: serde_json::Value,
) -> Result<(), CliError> {
    crate::audit::record(
        &state.db,
        crate::audit::Entry {
            actor: &grant.actor,
            role: Some(grant.role_name()),
            action,
            account_id: None,
            product: None,
            details,
        },
    )
    .await
    .map_err(|error| CliError::Sweep(error.into()))
}

/// The plan `apply` would take (the given one, or the newest), once `grant` may apply it.
async fn plan_to_apply(
    state: &crate::app::AppState,
    grant: &crate::web::config::Grant,
    plan: Option<&str>,
) -> Result<String, CliError> {
    use crate::sweep::SweepError;
    let record = match plan {
        Some(id) => crate::sweep::store::get_plan(&state.db, id).await,
        None => crate::sweep::store::latest_plan(&state.db, state.site()).await,
    }
    .map_err(SweepError::from)?
    .ok_or_else(|| SweepError::NoPlan(plan.map(str::to_owned)))?;
    crate::sweep::scope::require_plan(&state.db, grant, &record).await?;
    Ok(record.id)
}

async fn run_sweep(config: Config, args: &SweepArgs) -> Result<(), CliError> {
    let state = crate::app::AppState::open(config).await?;
    let result = run_sweep_as(&state, args).await;
    state.db.close().await;
    result
}

async fn run_sweep_as(state: &crate::app::AppState, args: &SweepArgs) -> Result<(), CliError> {
    let as_admin = match &args.command {
        Some(SweepCommand::Plan { as_admin, .. } | SweepCommand::Apply { as_admin, .. }) => {
            as_admin.as_deref().or(args.as_admin.as_deref())
        }
        None => args.as_admin.as_deref(),
    };
    let grant = acting_grant(&state.config, as_admin)?;
    // Every site acted on must be in the credential's scope, before anything is read.
    let require_sites = |names: &[String]| {
        let grant = &grant;
        let names = names.to_vec();
        async move {
            for site in selected_sites(state, &names)? {
                crate::sweep::scope::require_site(&state.db, grant, site.site()).await?;
            }
            Ok::<(), CliError>(())
        }
    };
    match &args.command {
        Some(SweepCommand::Plan {
            source, out, site, ..
        }) => {
            require_sites(site).await?;
            let plans = sweep_plan(state, source, out.as_deref(), site).await?;
            audit_cli(
                state,
                &grant,
                "sweep.plan_requested",
                serde_json::json!({ "plan_ids": plans }),
            )
            .await
        }
        Some(SweepCommand::Apply {
            plan: Some(plan),
            yes,
            ..
        }) => {
            let plan = plan_to_apply(state, &grant, Some(plan)).await?;
            audit_cli(
                state,
                &grant,
                "plan.apply_requested",
                serde_json::json!({ "plan_id": plan }),
            )
            .await?;
            sweep_apply(state, Some(&plan), *yes, &[]).await
        }
        // Each site's newest plan, each checked against the scope first.
        Some(SweepCommand::Apply {
            plan: None,
            yes,
            site,
            ..
        }) => {
            let mut plans = Vec::new();
            for view in selected_sites(state, site)? {
                plans.push(plan_to_apply(&view, &grant, None).await?);
            }
            for plan in &plans {
                audit_cli(
                    state,
                    &grant,
                    "plan.apply_requested",
                    serde_json::json!({ "plan_id": plan }),
                )
                .await?;
            }
            sweep_apply(state, None, *yes, site).await
        }
        // Live without --yes: make and show the plans, change nothing, say how to apply them.
        None if !args.yes
            && selected_sites(state, &args.site)?
                .iter()
                .any(|s| s.config.sweep.mode == crate::sweep::config::Mode::Live) =>
        {
            require_sites(&args.site).await?;
            let plans = sweep_plan(state, &args.source, None, &args.site).await?;
            audit_cli(
                state,
                &grant,
                "sweep.plan_requested",
                serde_json::json!({ "plan_ids": plans }),
            )
            .await?;
            for plan in plans {
                println!("  to apply it: reseat sweep apply --plan {plan} --yes");
            }
            Err(crate::sweep::SweepError::NeedsConfirmation.into())
        }
        None => {
            require_sites(&args.site).await?;
            audit_cli(state, &grant, "sweep.requested", serde_json::json!({})).await?;
            sweep_plan_and_apply(state, &args.source, args.yes, &args.site).await
        }
    }
}
