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
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
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
        Command::Demo(args) => {
            crate::telemetry::init(
                match cli.log_format {
                    Some(LogFormatArg::Json) => LogFormat::Json,
                    _ => LogFormat::Text,
                },
                "info",
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
