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
}

/// The shared secrets of the demo's channels (printed at start; never use them elsewhere).
pub const DEMO_JSM_SECRET: &str = "demo-jsm-secret";
pub const DEMO_AUTOMATION_SECRET: &str = "demo-automation-secret";

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
    config.links.keys.insert(
        "demo".into(),
        Secret::new(format!("demo-{}", uuid::Uuid::new_v4().simple())),
    );
    let restore = &mut config.restore;
    restore.offboarding_groups = vec![seed::GROUP_OFFBOARDED.to_string()];
    restore.jsm.secret = Some(Secret::new(DEMO_JSM_SECRET));
    restore.jsm.request_type_ids = vec![crate::sim::jsm_model::RESTORE_REQUEST_TYPE_ID.to_string()];
    restore.jsm.product_field = Some(crate::sim::jsm_model::PRODUCT_FIELD_ID.to_string());
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
    };
    adjust(&mut rule);
    rule
}

/// Runs the demo until `shutdown` resolves.
pub async fn run(
    args: DemoArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (dir, _temp) = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("demo: cannot create {}: {e}", dir.display()))?;
            (dir.clone(), None)
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
    .map_err(|e| anyhow::anyhow!("demo: cannot start the simulator: {e}"))?;
    let mut config = config_for(&sim, &dir);
    // Links in emails name the real port, also when a free one is picked.
    let port = match args.port {
        0 => std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port(),
        port => port,
    };
    config.server.listen = format!("127.0.0.1:{port}");
    config.server.public_url = Some(format!("http://127.0.0.1:{port}"));
    let app = App::build(config).await?;
    println!("app: http://{}", app.local_addr());
    println!("simulator: {}", sim.base_url());
    println!("outbox: {}", outbox.display());
    println!("database: {}", dir.join("reseat.db").display());
    // The admin pages, signed in once by this link (valid for admin.login_link_ttl); the
    // bound address, not server.listen, since --port 0 picks one.
    match crate::web::admin::auth::create_login_link(app.state(), "demo").await {
        Ok(link) => {
            let token = link.rsplit('/').next().unwrap_or_default();
            println!("admin: http://{}/admin/login/{token}", app.local_addr());
        }
        Err(error) => eprintln!("demo: cannot create an admin login link: {error}"),
    }
    println!(
        "try: curl -s -X POST http://{}/hooks/automation -H 'Content-Type: application/json' -H 'X-Reseat-Token: {DEMO_AUTOMATION_SECRET}' -d '{{\"accountId\":\"<id>\",\"product\":\"jira-software\"}}'",
        app.local_addr()
    );
    // The first sweep runs while the service starts: idle seats are removed, and each
    // removal notice in the outbox carries a restore link to click.
    let state = app.state().clone();
    tokio::spawn(async move {
        match first_sweep(&state).await {
            Ok(line) => println!("{line}"),
            Err(error) => eprintln!("demo: the first sweep failed: {error}"),
        }
    });
    let result = app.run_until(shutdown).await;
    sim.shutdown().await;
    result.map_err(Into::into)
}

/// Plans and applies once, live, and says what happened and where to click.
async fn first_sweep(state: &crate::app::AppState) -> Result<String, crate::sweep::SweepError> {
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
    let link: Option<String> = sqlx::query_scalar(
        "SELECT text_body FROM email_outbox WHERE template = 'removal' AND to_addr LIKE $1 \
         ORDER BY id LIMIT 1",
    )
    // Staff of the sample org's own domain: the demo's rules give their access straight back.
    .bind(format!("%@{}", seed::MANAGED_DOMAIN))
    .fetch_optional(state.db.pool())
    .await?;
    let link = link.and_then(|body| {
        body.split_whitespace()
            .find(|word| word.contains("/restore/"))
            .map(str::to_owned)
    });
    Ok(format!(
        "sweep: plan {} removed {} seat(s) ({} membership(s)); removal notices are in the outbox{}",
        planned.plan_id,
        report.removed_users,
        report.removed_memberships,
        link.map(|l| format!("; open one: {l}")).unwrap_or_default()
    ))
}
