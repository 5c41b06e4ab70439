//! `reseat sim`: command-line flags and the run loop of the standalone simulator.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;

use super::{Profile, SimConfig, banner, spawn};

/// Flags of `reseat sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// The platform modelled: `current` (today's Atlassian Cloud) or `legacy` (also the
    /// retired v1 directory actions, to test a fallback).
    #[arg(long, value_enum, default_value_t = Profile::Current)]
    pub profile: Profile,
    /// Port to listen on, on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8081)]
    pub port: u16,
    /// Accounts to seed (including the site admin and the viewer).
    #[arg(long, default_value_t = SimConfig::default().users)]
    pub users: usize,
    /// Latency added to every Atlassian request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Requests per second allowed over all Atlassian routes together, one shared count on
    /// top of the families' own (429 with Retry-After above).
    #[arg(long, value_parser = parse_rate_limit)]
    pub rate_limit: Option<u32>,
    /// Requests per second the Organizations admin API allows on its own.
    #[arg(long, value_parser = parse_rate_limit)]
    pub admin_rate_limit: Option<u32>,
    /// Requests per second the Jira platform API allows on its own.
    #[arg(long, value_parser = parse_rate_limit)]
    pub jira_rate_limit: Option<u32>,
    /// Requests per second the Confluence API allows on its own.
    #[arg(long, value_parser = parse_rate_limit)]
    pub confluence_rate_limit: Option<u32>,
    /// Requests per second the Jira Service Management API allows on its own.
    #[arg(long, value_parser = parse_rate_limit)]
    pub jsm_rate_limit: Option<u32>,
    /// Share of requests (0 to 1) failing with 429, 500, 503, a timeout or a dropped connection.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fail_rate)]
    pub fail_rate: f64,
    /// Share of mutations (0 to 1) that take effect and then lose their answer (the
    /// connection closes before the response is written).
    #[arg(long, default_value_t = 0.0, value_parser = parse_lose_rate)]
    pub lose_rate: f64,
    /// Delay in milliseconds before group-membership changes made through the APIs become
    /// visible to reads (eventual consistency).
    #[arg(long, default_value_t = 0)]
    pub consistency_ms: u64,
    /// Seed of the generated org (same seed, same org).
    #[arg(long, default_value_t = SimConfig::default().seed)]
    pub seed: u64,
    /// `productAccess[].key` of Jira Service Management in the v2 user search (no source
    /// confirms the platform's key; see docs/simulator.md).
    #[arg(long, default_value = super::DEFAULT_JSM_KEY)]
    pub jsm_key: String,
    /// Bearer key the admin API accepts.
    #[arg(long)]
    pub admin_key: Option<String>,
    /// Basic credentials of the site admin, as EMAIL:TOKEN.
    #[arg(long, value_parser = parse_site_auth)]
    pub site_auth: Option<(String, String)>,
}

fn parse_fail_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number; give a fail rate between 0 and 1"))?;
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!(
            "{r} is outside 0..=1; give a fail rate between 0 and 1, e.g. 0.05"
        ))
    }
}

fn parse_lose_rate(s: &str) -> Result<f64, String> {
    parse_fail_rate(s).map_err(|e| e.replace("fail rate", "lose rate"))
}

fn parse_rate_limit(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "'{s}' is not a positive whole number of requests per second"
        )),
    }
}

fn parse_site_auth(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((email, token)) if email.contains('@') && !token.is_empty() => {
            Ok((email.to_owned(), token.to_owned()))
        }
        _ => Err("expected EMAIL:TOKEN, e.g. admin@acme.example:my-token".to_owned()),
    }
}

impl SimArgs {
    /// The simulator configuration these flags describe; errors are one line.
    pub fn to_config(&self) -> anyhow::Result<SimConfig> {
        let fail_rate = parse_fail_rate(&self.fail_rate.to_string())
            .map_err(|e| anyhow::anyhow!("--fail-rate: {e}"))?;
        let lose_rate = parse_lose_rate(&self.lose_rate.to_string())
            .map_err(|e| anyhow::anyhow!("--lose-rate: {e}"))?;
        if self.rate_limit == Some(0) {
            anyhow::bail!("--rate-limit: must be at least 1 request per second");
        }
        let mut config = SimConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            profile: self.profile,
            users: self.users,
            seed: self.seed,
            latency: Duration::from_millis(self.latency_ms),
            consistency: Duration::from_millis(self.consistency_ms),
            rate_limit: self.rate_limit,
            family_rate_limits: super::FamilyLimits {
                admin: self.admin_rate_limit,
                jira: self.jira_rate_limit,
                confluence: self.confluence_rate_limit,
                jsm: self.jsm_rate_limit,
            },
            fail_rate,
            lose_rate,
            ..SimConfig::default()
        };
        if self.jsm_key.trim().is_empty() {
            anyhow::bail!("--jsm-key: must not be empty");
        }
        config.jsm_key = self.jsm_key.clone();
        if let Some(key) = &self.admin_key {
            if key.trim().is_empty() {
                anyhow::bail!("--admin-key: must not be empty");
            }
            config.admin_key = key.clone();
        }
        if let Some((email, token)) = &self.site_auth {
            config.site_email = email.clone();
            config.site_token = token.clone();
        }
        Ok(config)
    }
}

/// Starts the simulator, prints the banner on stdout, serves until `shutdown` resolves.
pub async fn run(args: SimArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let config = args.to_config()?;
    let listen = config.listen;
    let handle = spawn(config)
        .await
        .with_context(|| format!("cannot listen on {listen}; pick another port with --port"))?;
    print!("{}", banner(&handle));
    shutdown.await;
    handle.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::SimArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> Result<SimArgs, String> {
        let argv = std::iter::once("reseat-sim").chain(args.iter().copied());
        Cli::try_parse_from(argv)
            .map(|c| c.sim)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn flags_become_a_config() {
        let args = parse(&[
            "--port",
            "0",
            "--users",
            "12",
            "--fail-rate",
            "0.25",
            "--rate-limit",
            "9",
            "--lose-rate",
            "0.1",
            "--profile",
            "legacy",
            "--jira-rate-limit",
            "7",
            "--admin-rate-limit",
            "3",
            "--site-auth",
            "a@b.example:tok",
        ])
        .expect("valid flags");
        let c = args.to_config().expect("config");
        assert_eq!(
            (c.users, c.fail_rate, c.rate_limit, c.lose_rate),
            (12, 0.25, Some(9), 0.1)
        );
        assert_eq!(c.profile, super::Profile::Legacy);
        assert_eq!(
            c.family_rate_limits,
            crate::FamilyLimits {
                admin: Some(3),
                jira: Some(7),
                ..Default::default()
            }
        );
        assert_eq!(
            parse(&[])
                .expect("defaults")
                .to_config()
                .expect("config")
                .profile,
            super::Profile::Current
        );
        assert_eq!(
            (c.site_email.as_str(), c.site_token.as_str()),
            ("a@b.example", "tok")
        );
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        for bad in [
            &["--fail-rate", "1.5"][..],
            &["--fail-rate", "lots"],
            &["--site-auth", "no-colon"],
            &["--site-auth", "a@b.example:"],
            &["--rate-limit", "0"],
            &["--jsm-rate-limit", "0"],
            &["--lose-rate", "2"],
            &["--profile", "2019"],
        ] {
            let err = parse(bad).expect_err("rejected");
            let first = err.lines().next().unwrap_or_default();
            assert!(first.starts_with("error: invalid value"), "{first}");
        }
    }
}
