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
    /// Run the service: webhook intake, restore links, admin UI and API, queue workers.
    Serve {
        /// Address to listen on (overrides server.listen).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
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
        /// The product key, e.g. jira-software, jira-servicedesk, confluence.
        #[arg(long, value_name = "KEY")]
        product: String,
        /// restore (give access back) or keep (keep access a warning said would go).
        #[arg(long, default_value = "restore", value_name = "PURPOSE")]
        purpose: crate::notify::Purpose,
        /// The site the link is for (default: links.site).
        #[arg(long, value_name = "SITE")]
        site: Option<String>,
        /// How long the link works (default: links.restore_ttl or links.keep_ttl), e.g. 7d.
        #[arg(long, value_name = "DURATION", value_parser = crate::config::duration::parse)]
        expires_in: Option<std::time::Duration>,
    },
    /// Emails.
    Mail {
        #[command(subcommand)]
        command: MailCommand,
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

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective values, secrets redacted.
    Check,
}

/// A failure of a command, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("{0}")]
    Other(String),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Config(_) | CliError::Start(StartError::Config(_)) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}

impl From<crate::store::StoreError> for CliError {
    fn from(error: crate::store::StoreError) -> Self {
        CliError::Start(StartError::Store(error))
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
        Command::Link {
            account,
            product,
            purpose,
            site,
            expires_in,
        } => {
            let config = load_config(&cli)?;
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
            let db = open_store(&config).await?;
            let issued = async {
                let mut tx = db.pool().begin().await?;
                let issued = signer
                    .issue(&mut tx, *purpose, account, product, &site, expires)
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
            command: ConfigCommand::Check,
        } => {
            let config = Config::load(&Sources::from_process(cli.config.clone()))?;
            print!("{}", config.to_redacted_toml());
            eprintln!("config: ok");
            Ok(())
        }
    }
}
