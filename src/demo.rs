//! `reseat demo`: the built-in Atlassian simulator with a seeded sample org, and the service
//! on SQLite with a file outbox, wired together so the whole loop runs on a laptop.

use std::future::Future;
use std::path::{Path, PathBuf};

use base64::Engine;

use crate::app::App;
use crate::atlassian::{AtlassianConfig, GroupId, ProductKey};
use crate::config::{Config, Secret};
use crate::restore::rules::{Decision, Rule};
use crate::sim::{SimConfig, SimHandle, seed};
use crate::sweep::config::ProductPolicy;

/// `reseat demo` options.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Port of the service on 127.0.0.1 (the simulator takes a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Directory for the database and the outbox (default: a new temporary directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Accounts in the seeded sample org.
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    /// Seed of the sample org (the same seed gives the same org).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Log at info (the default is warnings only, so the guide stays on screen).
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

/// The shared secrets of the demo's channels (printed at start; never use them elsewhere).
pub const DEMO_JSM_SECRET: &str = "demo-jsm-secret";
pub const DEMO_AUTOMATION_SECRET: &str = "demo-automation-secret";
/// The signing secret of the demo's Slack app (the fake Slack signs nothing itself).
pub const DEMO_SLACK_SIGNING_SECRET: &str = "demo-slack-signing-secret";
/// The Slack user id the demo gives a removed account of the sample org, to try
/// `/reseat restore …` as.
pub const DEMO_SLACK_USER: &str = "U0DEMOUSER";
/// The approvers' channel of the demo's Slack app.
pub const DEMO_SLACK_APPROVERS: &str = "C0DEMOAPPROVERS";
/// The admin the demo's sign-in links are for.
pub const DEMO_ADMIN: &str = "demo";
/// The demo's admin API token (`Authorization: Bearer …` on `/api/v1`).
pub const DEMO_API_TOKEN: &str = "demo-api-token";

/// The file in the demo's directory naming its database and address, so that commands such
/// as `reseat admin login-link --dir DIR` reach the running demo.
pub const DEMO_CONFIG_FILE: &str = "demo.toml";

/// The demo's Standard Webhooks signing secret.
pub fn demo_webhook_secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode("reseat-demo-webhook-signing-key")
    )
}

/// `[atlassian]` pointing every API family at a running simulator.
pub fn atlassian_for(sim: &SimHandle) -> AtlassianConfig {
    let c = sim.config();
    let base = url::Url::parse(&sim.base_url()).ok();
    AtlassianConfig {
        org_id: Some(c.org_id.clone()),
        cloud_id: Some(c.cloud_id.clone()),
        site_name: Some(c.site_name.clone()),
        admin_base_url: base
            .clone()
            .unwrap_or_else(|| AtlassianConfig::default().admin_base_url),
        site_base_url: base,
        admin_api_key: Some(Secret::new(c.admin_key.clone())),
        site_email: Some(c.site_email.clone()),
        site_api_token: Some(Secret::new(c.site_token.clone())),
        ..AtlassianConfig::default()
    }
}

/// A full configuration against a simulator: products, channels with demo secrets, rules
/// for the seeded groups, SQLite in `dir`.
pub fn config_for(sim: &SimHandle, dir: &Path) -> Config {
    let mut config = Config::default();
    config.database.url = format!("sqlite://{}", dir.join("reseat.db").display());
    config.atlassian = atlassian_for(sim);
    let group_id = |name: &str| {
        sim.state()
            .group(name)
            .and_then(|group| GroupId::parse(group.id).ok())
    };
    for (product, groups) in [
        (ProductKey::JIRA_SOFTWARE, vec![]),
        (ProductKey::JIRA_SERVICE_MANAGEMENT, vec![]),
        (
            ProductKey::CONFLUENCE,
            [seed::GROUP_CONFLUENCE, seed::GROUP_BUNDLE]
                .iter()
                .filter_map(|name| group_id(name))
                .collect(),
        ),
    ] {
        config.sweep.products.insert(
            product.as_str().to_string(),
            ProductPolicy {
                access_groups: groups,
                ..ProductPolicy::default()
            },
        );
    }
    // The sample org is small and made to show every case: act for real, and let the
    // guards allow the large share of idle seats it has.
    let sweep = &mut config.sweep;
    sweep.mode = crate::sweep::config::Mode::Live;
    // Straight to removal, so the demo shows the whole loop at once: removal notice,
    // restore link, access back.
    sweep.ladder.warn = false;
    sweep.protect.groups = vec![seed::GROUP_PROTECTED.to_string()];
    sweep.governance.block_on_multi_product_groups = false;
    sweep.limits.max_removals = 10_000;
    sweep.limits.max_removal_percent = 75.0;
    sweep.limits.max_inactive_percent = 95.0;
    config.atlassian.admin.requests_per_second = 50;
    config.atlassian.admin.concurrency = 8;
    config.mail.outbox_dir = dir.join("outbox");
    config.mail.organisation = "Acme (sample org)".into();
    config.mail.from = "reseat demo <reseat@acme.example>".into();
    config.mail.admin_recipients = vec!["it-admins@acme.example".into()];
    // Links in the demo's emails are signed with a key made for this run.
    config.links.signing_key = Some("demo".into());
    config.admin.api_tokens.push(crate::web::config::ApiToken {
        name: "demo".into(),
        token_sha256: crate::web::config::hash_token(DEMO_API_TOKEN),
        role: None,
        sites: Vec::new(),
        products: Vec::new(),
    });
    config.links.keys.insert(
        "demo".into(),
        Secret::new(format!("demo-{}", uuid::Uuid::new_v4().simple())),
    );
    let restore = &mut config.restore;
    restore.offboarding_groups = vec![seed::GROUP_OFFBOARDED.to_string()];
    restore.jsm.secret = Some(Secret::new(DEMO_JSM_SECRET));
    restore.jsm.request_type_ids = vec![crate::sim::jsm_model::RESTORE_REQUEST_TYPE_ID.to_string()];
    restore.jsm.product_field = Some(crate::sim::jsm_model::PRODUCT_FIELD_ID.to_string());
    restore.jsm.justification_field =
        Some(crate::sim::jsm_model::JUSTIFICATION_FIELD_ID.to_string());
    restore.automation.secret = Some(Secret::new(DEMO_AUTOMATION_SECRET));
    restore.webhook.secrets = vec![Secret::new(demo_webhook_secret())];
    restore.rules = vec![
        rule("contractors need approval", Decision::Manual, |r| {
            r.member_of_any = vec![seed::GROUP_JIRA_CONTRACTORS.to_string()]
        }),
        rule("staff removed by reseat", Decision::Approve, |r| {
            r.email_domains = vec![seed::MANAGED_DOMAIN.to_string()];
            r.removed_by_reseat = Some(true);
        }),
    ];
    config
}

fn rule(name: &str, decision: Decision, adjust: impl FnOnce(&mut Rule)) -> Rule {
    let mut rule = Rule {
        name: name.to_string(),
        products: Vec::new(),
        channels: Vec::new(),
        email_domains: Vec::new(),
        member_of_any: Vec::new(),
        member_of_none: Vec::new(),
        removed_by_reseat: None,
        seat_reserve: None,
        decision,
        message: None,
        grant_groups: Vec::new(),
        approve_for: None,
        require_justification: false,
    };
    adjust(&mut rule);
    rule
}

/// Runs the demo until `shutdown` resolves: starts the simulator and the service, sweeps
/// once, then prints the guide (what to open, the secrets, commands to paste).
pub async fn run(
    args: DemoArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (dir, _temp) = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            (
                std::path::absolute(dir).unwrap_or_else(|_| dir.clone()),
                None,
            )
        }
        None => {
            let temp = tempfile::Builder::new().prefix("reseat-demo-").tempdir()?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let outbox = dir.join("outbox");
    std::fs::create_dir_all(&outbox)?;
    let sim = crate::sim::spawn(SimConfig {
        users: args.users,
        seed: args.seed,
        ..SimConfig::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot start the simulator: {e}"))?;
    let slack = crate::sim::slack::spawn(crate::sim::slack::SlackSimConfig::default())
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the fake Slack: {e}"))?;
    let mut config = config_for(&sim, &dir);
    slack_for(&mut config.restore.slack, &slack)?;
    // Links in emails name the real port, also when a free one is picked.
    let port = match args.port {
        0 => std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port(),
        port => port,
    };
    config.server.listen = format!("127.0.0.1:{port}");
    config.server.public_url = Some(format!("http://127.0.0.1:{port}"));
    // The admin the printed sign-in links are for (a session needs a configured entry); its
    // password is random and never shown: the demo signs in by link.
    let password_hash =
        crate::web::admin::auth::hash_password(&uuid::Uuid::new_v4().simple().to_string())
            .map_err(|e| anyhow::anyhow!("cannot make the demo admin: {e}"))?;
    config.admin.users.push(crate::web::config::AdminUser {
        name: DEMO_ADMIN.into(),
        password_hash: Secret::new(password_hash),
        role: None,
        sites: Vec::new(),
        products: Vec::new(),
        slack_user_id: None,
        email: None,
    });
    write_demo_config(&dir, &config)?;
    let app = App::build(config).await?;
    let state = app.state().clone();
    let mut server = tokio::spawn(app.run_until(shutdown));
    // The first sweep runs while the service answers: idle seats are removed, and each
    // removal notice in the outbox carries a restore link to click.
    let sweep = tokio::select! {
        sweep = first_sweep(&state, &sim, &slack) => sweep,
        stopped = &mut server => {
            sim.shutdown().await;
            slack.shutdown().await;
            return Ok(stopped??);
        }
    };
    let guide = Guide {
        program: program_name(),
        app: state.config.public_url(),
        dir: &dir,
        simulator: sim.base_url(),
        slack: slack.base_url(),
        users: args.users,
        login: crate::web::admin::auth::create_login_link(&state, DEMO_ADMIN)
            .await
            .map_err(|error| anyhow::anyhow!("cannot create an admin login link: {error}"))?,
        login_ttl: crate::config::duration::format(state.config.admin.login_link_ttl),
        jsm_header: &state.config.restore.jsm.header,
        automation_header: &state.config.restore.automation.header,
        sweep,
    };
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        out.write_all(guide.render().as_bytes())?;
        out.flush()?;
    }
    let result = server.await;
    sim.shutdown().await;
    slack.shutdown().await;
    Ok(result??)
}

/// The name to run reseat by in the printed commands: as this process was started
/// (`target/debug/reseat` under `cargo run`), so that they paste as they are.
fn program_name() -> String {
    std::env::args()
        .next()
        .filter(|name| !name.contains(char::is_whitespace))
        .unwrap_or_else(|| "reseat".into())
}

/// Writes [`DEMO_CONFIG_FILE`]: the database and the address of this demo.
fn write_demo_config(dir: &Path, config: &Config) -> anyhow::Result<()> {
    let mut text = String::from(
        "# Written by `reseat demo`: lets `reseat admin login-link --dir DIR` (or\n\
         # `reseat --config DIR/demo.toml ...`) reach this demo's database.\n",
    );
    let mut table = toml::Table::new();
    let mut database = toml::Table::new();
    database.insert("url".into(), config.database.url.clone().into());
    let mut server = toml::Table::new();
    server.insert("listen".into(), config.server.listen.clone().into());
    server.insert("public_url".into(), config.public_url().into());
    let mut admin = toml::Table::new();
    let users: Vec<toml::Value> = config
        .admin
        .users
        .iter()
        .map(|user| {
            let mut entry = toml::Table::new();
            entry.insert("name".into(), user.name.clone().into());
            entry.insert(
                "password_hash".into(),
                user.password_hash.expose().to_string().into(),
            );
            entry.into()
        })
        .collect();
    admin.insert("users".into(), users.into());
    table.insert("database".into(), database.into());
    table.insert("server".into(), server.into());
    table.insert("admin".into(), admin.into());
    text.push_str(&toml::to_string(&table)?);
    let path = dir.join(DEMO_CONFIG_FILE);
    std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// What the first sweep did, and the accounts to try the channels with.
struct FirstSweep {
    summary: String,
    restore_link: Option<String>,
    /// A removed account of the sample org's own domain, per channel (the demo's rules
    /// approve them), and the product it lost.
    jsm_issue: Option<String>,
    automation: Option<(String, String)>,
    webhook: Option<(String, String)>,
    /// The product [`DEMO_SLACK_USER`] (a removed account) lost.
    slack: Option<String>,
}

/// `[restore.slack]` for the fake Slack: its Web API, the demo's secrets, the sample org's
/// domain, and an approvers' channel.
fn slack_for(
    channel: &mut crate::restore::config::SlackChannel,
    slack: &crate::sim::slack::SlackHandle,
) -> anyhow::Result<()> {
    channel.signing_secret = Some(Secret::new(DEMO_SLACK_SIGNING_SECRET));
    channel.bot_token = Some(Secret::new(crate::sim::slack::DEFAULT_BOT_TOKEN));
    channel.api_base_url = url::Url::parse(&slack.api_base_url())?;
    channel.allowed_domains = vec![seed::MANAGED_DOMAIN.to_string()];
    channel.approvers_channel = Some(DEMO_SLACK_APPROVERS.into());
    Ok(())
}

/// Plans and applies once, live; picks a restore link and accounts to try the channels on.
async fn first_sweep(
    state: &crate::app::AppState,
    sim: &SimHandle,
    slack: &crate::sim::slack::SlackHandle,
) -> FirstSweep {
    match sweep_once(state, sim, slack).await {
        Ok(sweep) => sweep,
        Err(error) => FirstSweep {
            summary: format!("the first sweep failed: {error}"),
            restore_link: None,
            jsm_issue: None,
            automation: None,
            webhook: None,
            slack: None,
        },
    }
}

async fn sweep_once(
    state: &crate::app::AppState,
    sim: &SimHandle,
    slack: &crate::sim::slack::SlackHandle,
) -> Result<FirstSweep, crate::sweep::SweepError> {
    let now = state.clock().now();
    let hidden = indicatif::ProgressBar::hidden();
    let planned = crate::sweep::plan(state, &[crate::sweep::Source::Api], now, &hidden).await?;
    let options = crate::sweep::ApplyOptions {
        now,
        confirmed: true,
        stop_after: None,
        progress: indicatif::ProgressBar::hidden(),
    };
    let report = crate::sweep::apply(state, Some(&planned.plan_id), &options).await?;
    let notice: Option<(String, String)> = sqlx::query_as(
        "SELECT to_addr, text_body FROM email_outbox WHERE template = 'removal' AND to_addr LIKE $1 \
         ORDER BY id LIMIT 1",
    )
    // Staff of the sample org's own domain: the demo's rules give their access straight back.
    .bind(format!("%@{}", seed::MANAGED_DOMAIN))
    .fetch_optional(state.db.pool())
    .await?;
    let restore_link = notice.as_ref().and_then(|(_, body)| {
        body.split_whitespace()
            .find(|word| word.contains("/restore/"))
            .map(str::to_owned)
    });
    let removed: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT account_id, product FROM journal WHERE action = 'removed' \
         ORDER BY account_id, product",
    )
    .fetch_all(state.db.pool())
    .await?;
    // One account per channel, none of them the one the restore link is for.
    let mut candidates = Vec::new();
    for (account, product) in removed {
        let Some(user) = sim.state().user(&account) else {
            continue;
        };
        let email = user.email.unwrap_or_default();
        let staff = email.ends_with(&format!("@{}", seed::MANAGED_DOMAIN));
        let linked = notice.as_ref().is_some_and(|(to, _)| *to == email);
        if staff && !linked && !candidates.iter().any(|(a, _)| *a == account) {
            candidates.push((account, product));
        }
    }
    let mut candidates = candidates.into_iter();
    let jsm_issue = candidates.next().and_then(|(account, product)| {
        sim.state()
            .create_request(crate::sim::NewRequest {
                reporter: account,
                request_type_id: None,
                summary: None,
                description: None,
                product: crate::sim::Product::from_admin_key(&product),
                justification: Some("I am back from leave and work on the release.".into()),
            })
            .ok()
            .map(|request| request.key)
    });
    Ok(FirstSweep {
        summary: format!(
            "plan {} removed {} seat(s) ({} membership(s)); the removal notices are in the outbox",
            planned.plan_id, report.removed_users, report.removed_memberships
        ),
        restore_link,
        jsm_issue,
        automation: candidates.next(),
        webhook: candidates.next(),
        slack: candidates.next().map(|(account, product)| {
            // The fake Slack knows the account's email, as a workspace of the org would.
            let email = sim.state().user(&account).and_then(|u| u.email);
            slack.state().add_user(crate::sim::slack::FakeUser::new(
                DEMO_SLACK_USER,
                "demo.user",
                email.as_deref(),
            ));
            product
        }),
    })
}

/// The block printed once the demo is ready: everything to open, the secrets, and one
/// command per channel.
struct Guide<'a> {
    program: String,
    app: String,
    dir: &'a Path,
    simulator: String,
    slack: String,
    users: usize,
    login: String,
    login_ttl: String,
    jsm_header: &'a str,
    automation_header: &'a str,
    sweep: FirstSweep,
}

impl Guide<'_> {
    fn render(&self) -> String {
        let Guide {
            program,
            app,
            dir,
            simulator,
            slack,
            users,
            login,
            login_ttl,
            jsm_header,
            automation_header,
            sweep,
        } = self;
        let dir = dir.display();
        let webhook_secret = demo_webhook_secret();
        let json = "-H 'Content-Type: application/json'";
        let (automation_account, automation_product) = sweep
            .automation
            .clone()
            .unwrap_or_else(|| ("<account id>".into(), "confluence".into()));
        let (webhook_account, webhook_product) = sweep
            .webhook
            .clone()
            .unwrap_or_else(|| ("<account id>".into(), "confluence".into()));
        let issue = sweep.jsm_issue.as_deref().unwrap_or("HELP-1");
        let slack_product = sweep.slack.as_deref().unwrap_or("jira-software");
        let mut lines = vec![
            format!(
                "reseat demo: a simulated Atlassian org of {users} accounts, and reseat on SQLite. Ctrl-C stops both."
            ),
            format!("app: {app}/"),
            format!("admin: {login}"),
            format!(
                "  (signs in once, for {login_ttl}; a new link: {program} admin login-link --dir {dir})"
            ),
            format!("simulator: {simulator}"),
            format!("outbox: {dir}/outbox"),
            format!("database: {dir}/reseat.db"),
            format!("sweep: {}", sweep.summary),
        ];
        if let Some(link) = &sweep.restore_link {
            lines.push(format!("restore: {link}"));
        }
        lines.extend([
            "secrets:".to_string(),
            format!("  jsm secret: {DEMO_JSM_SECRET} (header {jsm_header})"),
            format!("  automation secret: {DEMO_AUTOMATION_SECRET} (header {automation_header})"),
            format!("  webhook secret: {webhook_secret} (Standard Webhooks signing)"),
            format!("  api token: {DEMO_API_TOKEN} (Authorization: Bearer)"),
            format!("  slack signing secret: {DEMO_SLACK_SIGNING_SECRET} (fake Slack at {slack})"),
            "try (each asks for a removed seat back; see the result on the admin pages):".to_string(),
            format!(
                "  jsm: curl -s -X POST {app}/hooks/jsm {json} -H '{jsm_header}: {DEMO_JSM_SECRET}' -d '{{\"issueKey\":\"{issue}\"}}'"
            ),
            format!(
                "  automation: curl -s -X POST {app}/hooks/automation {json} -H '{automation_header}: {DEMO_AUTOMATION_SECRET}' -d '{{\"accountId\":\"{automation_account}\",\"product\":\"{automation_product}\"}}'"
            ),
            format!(
                "  webhook: {program} webhook send --url {app}/hooks/webhook --secret {webhook_secret} --account {webhook_account} --product {webhook_product}"
            ),
            format!(
                "  slack: {program} slack send --url {app}/hooks/slack/commands --secret {DEMO_SLACK_SIGNING_SECRET} --slack {slack} --user {DEMO_SLACK_USER} restore {slack_product} back from leave"
            ),
            format!("  api: curl -s -H 'Authorization: Bearer {DEMO_API_TOKEN}' {app}/api/v1/requests"),
            "logs: warnings only; `demo --verbose` for more".to_string(),
        ]);
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }
}
