//! Every site of the org from one install: a simulated org of three sites (two with Jira
//! and Confluence, one with Jira Service Management), each with its own thresholds, swept
//! by one `reseat sweep` over one org listing.

use std::collections::BTreeMap;

use chrono::Utc;
use reseat::config::sites::SiteEntry;
use reseat::config::{Config, Secret};
use reseat::sim::{Category, Product, SimConfig, SimHandle};
use reseat::sweep::config::{Mode, ProductPolicy};
use reseat::sweep::store;
use reseat::sweep::{ApplyOptions, Source};

use crate::support::TestDb;
use crate::sweep::{atlassian_for, decisions, expected, group_id, hidden};

const USERS: usize = 200;
const TOKEN: &str = "sites-test-token-0123456789";

/// Name, cloud id, the products reseat manages there, and its Jira/Confluence/JSM
/// threshold.
const SITES: [(&str, &str, &[&str], &str); 3] = [
    (
        "acme",
        "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        &["jira-software", "confluence"],
        "90d",
    ),
    (
        "acme-eu",
        "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e",
        &["jira-software", "confluence"],
        "60d",
    ),
    (
        "acme-support",
        "c3d4e5f6-a7b8-4c9d-8e0f-2a3b4c5d6e7f",
        &["jira-service-desk"],
        // Longer than any seeded inactivity: nobody is removed here for inactivity alone.
        "800d",
    ),
];

/// One simulator per site; the first serves the org's admin API for all three.
pub(crate) async fn org() -> Vec<SimHandle> {
    reseat::sim::spawn_org(
        SITES
            .iter()
            .map(|(name, cloud, _, _)| SimConfig {
                users: USERS,
                site_name: (*name).to_owned(),
                cloud_id: (*cloud).to_owned(),
                ..SimConfig::default()
            })
            .collect(),
    )
    .await
    .unwrap()
}

/// The org's configuration: org-wide products and guards, and one `[[sites]]` entry per
/// site with its products and its own threshold.
pub(crate) fn org_config(sims: &[SimHandle], db: &TestDb, mode: Mode) -> Config {
    let mut config = db.config();
    config.atlassian = atlassian_for(&sims[0]);
    config.atlassian.site_name = None;
    config.atlassian.cloud_id = None;
    config.atlassian.site_base_url = None;
    let sweep = &mut config.sweep;
    sweep.mode = mode;
    for key in ["jira-software", "jira-service-desk"] {
        sweep.products.insert(key.into(), ProductPolicy::default());
    }
    sweep.products.insert(
        "confluence".into(),
        ProductPolicy {
            access_groups: vec![
                group_id(&sims[0], "confluence-users"),
                group_id(&sims[0], "jira-confluence-bundle"),
            ],
            ..ProductPolicy::default()
        },
    );
    sweep.protect.groups = vec!["reseat-protected".into()];
    sweep.governance.block_on_multi_product_groups = false;
    sweep.ladder.warn = false;
    sweep.limits.max_removals = 10_000;
    sweep.limits.max_removal_percent = 100.0;
    sweep.limits.max_inactive_percent = 100.0;
    config.restore.rules = vec![
        toml::from_str(
            "name = \"removed by reseat\"\ndecision = \"approve\"\nremoved_by_reseat = true",
        )
        .unwrap(),
    ];
    config.admin.api_tokens = vec![reseat::web::config::ApiToken {
        name: "ci".into(),
        token_sha256: reseat::web::config::hash_token(TOKEN),
        role: None,
        sites: Vec::new(),
        products: Vec::new(),
    }];
    config.links.signing_key = Some("test".into());
    config.links.keys.insert(
        "test".into(),
        "a-test-signing-key-of-at-least-32-chars".into(),
    );
    config.sites = SITES
        .iter()
        .zip(sims)
        .map(|((name, cloud, products, threshold), sim)| {
            let mut over = toml::Table::new();
            for product in *products {
                let mut table = toml::Table::from_iter([(
                    "inactive_after".to_owned(),
                    toml::Value::String((*threshold).to_owned()),
                )]);
                // Each site's Confluence is granted by groups of its own.
                if *product == "confluence" {
                    table.insert(
                        "access_groups".to_owned(),
                        toml::Value::Array(
                            ["confluence-users", "jira-confluence-bundle"]
                                .iter()
                                .map(|g| toml::Value::String(group_id(sim, g).to_string()))
                                .collect(),
                        ),
                    );
                }
                over.insert((*product).to_owned(), toml::Value::Table(table));
            }
            SiteEntry {
                name: (*name).to_owned(),
                base_url: Some(sim.base_url()),
                cloud_id: Some((*cloud).to_owned()),
                site_email: Some(sim.config().site_email.clone()),
                site_api_token: Some(Secret::new(sim.config().site_token.clone())),
                products: Some(products.iter().map(|p| (*p).to_owned()).collect()),
                jira: None,
                confluence: None,
                jsm: None,
                sweep: Some(toml::Table::from_iter([(
                    "products".to_owned(),
                    toml::Value::Table(over),
                )])),
                restore: None,
                links: None,
            }
        })
        .collect();
    config.resolve_sites().unwrap();
    config
}

/// The ground truth of one site: the seeded decisions for the products reseat manages
/// there, with inactivity kept where the site's threshold is longer than any seeded one.
fn expected_on(
    sim: &SimHandle,
    products: &[&str],
    threshold: &str,
) -> BTreeMap<(String, String), String> {
    let truth = sim.state().ground_truth();
    let keeps_inactive = threshold == "800d";
    let managed: Vec<String> = products
        .iter()
        .map(|p| {
            reseat::atlassian::ProductKey::parse(p)
                .unwrap()
                .as_str()
                .to_owned()
        })
        .collect();
    let mut want = expected(sim);
    want.retain(|(_, product), _| managed.contains(product));
    if keeps_inactive {
        for ((account, product), decision) in want.iter_mut() {
            let category = truth
                .user(account)
                .and_then(|u| u.products.get(&Product::from_admin_key(product).unwrap()));
            if category == Some(&Category::Inactive) && decision == "remove" {
                *decision = "keep".to_owned();
            }
        }
    }
    want
}

#[tokio::test]
async fn one_sweep_plans_and_applies_three_sites_with_one_org_listing() {
    for db in TestDb::all().await {
        let sims = org().await;
        let config = org_config(&sims, &db, Mode::Live);
        let app = crate::support::spawn_configured(db, config, axum::Router::new()).await;
        let state = app.state.clone();
        assert_eq!(state.site_names(), ["acme", "acme-eu", "acme-support"]);

        // Someone inactive everywhere in Jira who works on acme again: kept there, and
        // still removed on acme-eu, where acme's activity does not count.
        let truth = sims[0].state().ground_truth();
        let want_eu = expected_on(&sims[1], SITES[1].2, SITES[1].3);
        let returner = truth
            .with_category(Product::JiraSoftware, Category::Inactive)
            .find(|u| {
                want_eu.get(&(u.account_id.clone(), "jira-software".to_owned()))
                    == Some(&"remove".to_owned())
            })
            .expect("an inactive Jira user")
            .account_id
            .clone();
        sims[0]
            .state()
            .set_last_active(&returner, Product::JiraSoftware, None, Some(Utc::now()))
            .unwrap();

        // Each site planned alone reads the whole org listing, plus its own role reads.
        let search =
            "/admin/v2/orgs/5f3e2d1c-0b9a-4c8d-9e7f-6a5b4c3d2e1f/directories/-/users/search";
        let mut alone = 0;
        let mut listing_pages = 0;
        for site in state.each_site() {
            sims[0].state().clear_log();
            let planned = reseat::sweep::plan(&site, &[Source::Api], Utc::now(), &hidden())
                .await
                .unwrap();
            alone += sims[0].state().calls("POST", search);
            listing_pages = planned.summary.api.unwrap().listing_pages as usize;
        }
        assert!(listing_pages > 0);

        for sim in &sims {
            sim.state().clear_log();
        }
        let outcomes = sweep_every_site(&state).await;
        // Together, the listing is read once: two sites' worth of listing pages fewer.
        let together = sims[0].state().calls("POST", search);
        assert_eq!(
            together,
            alone - 2 * listing_pages,
            "one org listing for three sites"
        );
        for sim in &sims[1..] {
            assert_eq!(
                sim.state().calls("POST", search),
                0,
                "the other sites' admin APIs are never asked"
            );
        }

        let mut plans = BTreeMap::new();
        for ((site, outcome), ((name, _, products, threshold), sim)) in
            outcomes.into_iter().zip(SITES.iter().zip(&sims))
        {
            assert_eq!(site, *name);
            let (planned, report) = outcome.unwrap_or_else(|e| panic!("{name}: {e}"));
            let items = store::items(&state.db, &planned.plan_id).await.unwrap();
            let plan = store::get_plan(&state.db, &planned.plan_id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(plan.site, *name, "each site has its own plan");
            let mut want = expected_on(sim, products, threshold);
            if *name == "acme" {
                want.insert((returner.clone(), "jira-software".into()), "keep".into());
            }
            let got = decisions(&items);
            assert_eq!(
                got,
                want,
                "{name} on {}: the plan is the site's ground truth",
                app._db.backend_name()
            );
            let removals = want.values().filter(|d| *d == "remove").count() as u64;
            assert_eq!(report.removed_users > 0, removals > 0, "{name}: {report:?}");
            plans.insert(*name, items);
        }
        // The JSM site's threshold keeps the inactive; the Jira sites' remove them.
        assert!(
            plans["acme-support"]
                .iter()
                .all(|i| i.decision != "remove" || i.reason.contains("never accessed"))
        );

        // The returner: kept on acme, removed on acme-eu, and the reason there says that
        // activity on another site does not count.
        let on = |sim: &SimHandle| {
            sim.state()
                .group_members("jira-software-users")
                .unwrap()
                .contains(&returner)
        };
        let eu_item = plans["acme-eu"]
            .iter()
            .find(|i| i.account_id == returner && i.product == "jira-software")
            .unwrap();
        assert_eq!(eu_item.decision, "remove");
        assert!(
            eu_item.reason.contains("active on another site of the org")
                && eu_item.reason.contains("does not count for this site"),
            "{}",
            eu_item.reason
        );
        assert!(on(&sims[0]), "kept on acme");
        assert!(!on(&sims[1]), "removed on acme-eu");
        // The journal names the site each membership was taken on.
        let sites: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT site FROM journal \
             WHERE account_id = $1 AND product = 'jira-software' AND action = 'removed'",
        )
        .bind(&returner)
        .fetch_all(state.db.pool())
        .await
        .unwrap();
        assert_eq!(sites, ["acme-eu"]);

        // Restores are per site: someone removed from Jira on both Jira sites asks on
        // acme, and gets Jira back on acme only.
        let both = plans["acme"]
            .iter()
            .filter(|i| i.product == "jira-software" && i.decision == "remove")
            .map(|i| i.account_id.clone())
            .find(|a| {
                plans["acme-eu"].iter().any(|i| {
                    &i.account_id == a && i.product == "jira-software" && i.decision == "remove"
                })
            })
            .expect("someone removed on both Jira sites");
        let on_site = |sim: &SimHandle, account: &str| {
            sim.state()
                .group_members("jira-software-users")
                .unwrap()
                .iter()
                .any(|a| a == account)
        };
        assert!(!on_site(&sims[0], &both) && !on_site(&sims[1], &both));
        let token = {
            let mut conn = state.db.pool().acquire().await.unwrap();
            state
                .notify
                .links
                .issue(
                    &mut conn,
                    reseat::notify::Purpose::Restore,
                    &both,
                    "jira-software",
                    "acme",
                    Utc::now() + chrono::Duration::days(7),
                )
                .await
                .unwrap()
                .token
        };
        let answer = app
            .press_link(&app.url(&format!("/restore/{token}")), &[])
            .await;
        assert_eq!(answer.status(), 200);
        let body = answer.text().await.unwrap();
        assert!(body.contains("access is back"), "{body}");
        assert!(on_site(&sims[0], &both), "back on acme");
        assert!(!on_site(&sims[1], &both), "still removed on acme-eu");
        let restored: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT j.site, r.site FROM journal j JOIN restore_requests r ON r.id = j.request_id \
             WHERE j.account_id = $1 AND j.action = 'restored'",
        )
        .bind(&both)
        .fetch_all(state.db.pool())
        .await
        .unwrap();
        assert!(!restored.is_empty());
        assert!(
            restored
                .iter()
                .all(|(journal, request)| journal == "acme" && request.as_deref() == Some("acme")),
            "{restored:?}"
        );

        // The API narrows lists to a site; an unknown site is a clear 404.
        let get = |path: String| {
            let request = app.client.get(app.url(&path)).bearer_auth(TOKEN);
            async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.json::<serde_json::Value>().await.unwrap())
            }
        };
        for (name, _, _, _) in SITES {
            let (status, page) = get(format!("/api/v1/plans?site={name}")).await;
            assert_eq!(status, 200, "{page}");
            let sites: Vec<&str> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["site"].as_str().unwrap())
                .collect();
            assert!(
                !sites.is_empty() && sites.iter().all(|s| *s == name),
                "{name}: {page}"
            );
        }
        let (_, acme) = get("/api/v1/requests?site=acme".into()).await;
        assert_eq!(acme["items"].as_array().unwrap().len(), 1, "{acme}");
        assert_eq!(acme["items"][0]["site"], "acme");
        let (_, eu) = get("/api/v1/requests?site=acme-eu".into()).await;
        assert!(eu["items"].as_array().unwrap().is_empty(), "{eu}");
        let (status, body) = get("/api/v1/plans?site=acme-nowhere".into()).await;
        assert_eq!(status, 404, "{body}");
        assert!(
            body.to_string().contains("acme-eu"),
            "names the sites: {body}"
        );
        // The overview shows every site, and narrows to one.
        let all = reseat::web::admin::pages::render_overview(&state, "ana")
            .await
            .unwrap();
        assert!(
            all.contains("acme-support") && all.contains("?site=acme-eu"),
            "the site choice"
        );

        drop(app);
        for sim in sims {
            sim.shutdown().await;
        }
    }
}

/// `[discovery]`: the org's workspaces add the sites `[[sites]]` does not list, less the
/// excluded ones; a discovered site is planned like a listed one.
#[tokio::test]
async fn sites_found_in_the_org_workspaces_are_managed_unless_excluded() {
    for db in TestDb::all().await {
        let sims = org().await;
        let mut config = org_config(&sims, &db, Mode::DryRun);
        // List only the JSM site; find the others.
        config.sites.retain(|s| s.name == "acme-support");
        config.discovery.enabled = true;
        config.discovery.exclude = vec!["acme-eu.atlassian.net".into()];
        config.resolve_sites().unwrap();
        assert_eq!(config.site_names(), ["acme-support"]);
        let state = reseat::app::AppState::open(config).await.unwrap();
        assert_eq!(state.site_names(), ["acme-support", "acme"]);
        let acme = state.for_site("acme").unwrap();
        assert_eq!(acme.config.atlassian.cloud_id.as_deref(), Some(SITES[0].1));
        let mut products: Vec<&String> = acme.config.sweep.products.keys().collect();
        products.sort();
        assert_eq!(
            products,
            ["confluence", "jira-service-desk", "jira-software"]
        );
        // The listed site keeps its own settings.
        let support = state.for_site("acme-support").unwrap();
        assert_eq!(
            support.config.sweep.products.keys().collect::<Vec<_>>(),
            ["jira-service-desk"]
        );
        let planned = reseat::sweep::plan(&acme, &[Source::Api], Utc::now(), &hidden())
            .await
            .unwrap();
        let items = store::items(&state.db, &planned.plan_id).await.unwrap();
        assert_eq!(
            decisions(&items),
            expected(&sims[0]),
            "{}",
            db.backend_name()
        );
        assert!(state.for_site("acme-eu").is_none(), "excluded");
        state.db.close().await;
        for sim in sims {
            sim.shutdown().await;
        }
    }
}

/// `reseat sweep --yes` on a file with three `[[sites]]`: one run plans and applies every
/// site, says each site's plan, and reads the org listing once.
#[tokio::test]
async fn reseat_sweep_on_a_file_with_three_sites_sweeps_each_from_one_listing() {
    let sims = org().await;
    let dir = tempfile::tempdir().unwrap();
    let c = sims[0].config();
    let confluence = |name: &str| sims[0].state().group(name).unwrap().id;
    let mut file = format!(
        "[database]\nurl = \"sqlite://{}\"\n\
         [atlassian]\norg_id = \"{}\"\nadmin_base_url = \"{}\"\nadmin_api_key = \"{}\"\nsite_email = \"{}\"\nsite_api_token = \"{}\"\n\
         [atlassian.admin]\nrequests_per_second = 10000\nconcurrency = 8\n\
         [atlassian.jira]\nrequests_per_second = 10000\nconcurrency = 8\n\
         [atlassian.confluence]\nrequests_per_second = 10000\nconcurrency = 8\n\
         [sweep]\nmode = \"live\"\n\
         [sweep.ladder]\nwarn = false\n\
         [sweep.limits]\nmax_removals = 10000\nmax_removal_percent = 100.0\nmax_inactive_percent = 100.0\n\
         [sweep.governance]\nblock_on_multi_product_groups = false\n\
         [sweep.protect]\ngroups = [\"reseat-protected\"]\n\
         [sweep.products.jira-software]\n[sweep.products.jira-service-desk]\n\
         [sweep.products.confluence]\naccess_groups = [\"{}\", \"{}\"]\n\
         [links]\nsigning_key = \"k\"\n[links.keys]\nk = \"a-test-signing-key-of-at-least-32-chars\"\n",
        dir.path().join("reseat.db").display(),
        c.org_id,
        sims[0].base_url(),
        c.admin_key,
        c.site_email,
        c.site_token,
        confluence("confluence-users"),
        confluence("jira-confluence-bundle"),
    );
    for ((name, cloud, products, threshold), sim) in SITES.iter().zip(&sims) {
        let products = products
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>();
        file.push_str(&format!(
            "[[sites]]\nname = \"{name}\"\nbase_url = \"{}\"\ncloud_id = \"{cloud}\"\nproducts = [{}]\n",
            sim.base_url(),
            products.join(", ")
        ));
        for product in products {
            let product = product.trim_matches('"');
            file.push_str(&format!(
                "[sites.sweep.products.{product}]\ninactive_after = \"{threshold}\"\n"
            ));
            // Each site's Confluence is granted by groups of its own.
            if product == "confluence" {
                let own = |name: &str| sim.state().group(name).unwrap().id;
                file.push_str(&format!(
                    "access_groups = [\"{}\", \"{}\"]\n",
                    own("confluence-users"),
                    own("jira-confluence-bundle")
                ));
            }
        }
    }
    std::fs::write(dir.path().join("reseat.toml"), &file).unwrap();
    let search = "/admin/v2/orgs/5f3e2d1c-0b9a-4c8d-9e7f-6a5b4c3d2e1f/directories/-/users/search";
    let run = |args: &'static [&'static str]| {
        tokio::process::Command::new(crate::support::reseat_bin())
            .args(args)
            .current_dir(dir.path())
            .env_remove("RESEAT_DATABASE__URL")
            .output()
    };
    let migrated = run(&["migrate"]).await.unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    sims[0].state().clear_log();
    let output = tokio::process::Command::new(crate::support::reseat_bin())
        .args(["sweep", "--yes"])
        .current_dir(dir.path())
        .env_remove("RESEAT_DATABASE__URL")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for (name, _, _, _) in SITES {
        assert!(
            stdout.contains(&format!(" for site {name}\n")),
            "{name}: {stdout}"
        );
    }
    assert_eq!(
        stdout.matches("removed ").count(),
        3,
        "an apply per site: {stdout}"
    );
    // The simulator's sites: each lost seats on its own Jira (the JSM site keeps its
    // inactive agents: its threshold is longer than any inactivity).
    let jira_members = |sim: &SimHandle| {
        sim.state()
            .group_members("jira-software-users")
            .unwrap()
            .len()
    };
    let fresh = org().await;
    assert!(jira_members(&sims[0]) < jira_members(&fresh[0]));
    assert!(jira_members(&sims[1]) < jira_members(&fresh[1]));
    assert_eq!(
        sims[2]
            .state()
            .group_members("jira-software-users")
            .unwrap(),
        fresh[2]
            .state()
            .group_members("jira-software-users")
            .unwrap(),
        "Jira is not managed on the JSM site"
    );
    // One listing: as many search calls as one site's plan reads, plus the other sites'
    // role-holder pages (see the in-process test for the exact count).
    assert!(sims[0].state().calls("POST", search) > 0);
    for sim in sims.into_iter().chain(fresh) {
        sim.shutdown().await;
    }
}

/// Slack, Teams and sign-in requests name no site. With several, a chat request goes to the
/// one site that removed the access, and a sign-in (to the identity provider, for the whole
/// org) asks for it back on every site that removed it.
#[tokio::test]
async fn chat_and_sign_in_requests_go_to_the_sites_that_removed_the_access() {
    use reseat::sim::slack::{self as fake, FakeUser, SlashCommand};
    const SLACK_SECRET: &str = "sites-slack-signing-secret";
    const SIGNIN_SECRET: &str = "whsec_c2l0ZXMgc2lnbi1pbiB3ZWJob29rIHNlY3JldA==";
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let sims = org().await;
        let slack = fake::spawn(fake::SlackSimConfig::default()).await.unwrap();
        let mut config = org_config(&sims, &db, Mode::Live);
        let channel = &mut config.restore.slack;
        channel.signing_secret = Some(Secret::new(SLACK_SECRET));
        channel.bot_token = Some(Secret::new(fake::DEFAULT_BOT_TOKEN));
        channel.api_base_url = url::Url::parse(&slack.api_base_url()).unwrap();
        channel.allowed_domains = vec![reseat::sim::seed::MANAGED_DOMAIN.to_string()];
        config.restore.signin.enabled = true;
        config.restore.signin.webhook.secrets = vec![Secret::new(SIGNIN_SECRET)];
        // The test drives the worker itself.
        config.queue.workers = 0;
        config.admin.users = vec![crate::support::admin_user(
            "ana",
            "sites admin password",
            None,
        )];
        config.resolve_sites().unwrap();
        let app = crate::support::spawn_configured(db, config, axum::Router::new()).await;
        let state = app.state.clone();

        // Someone inactive in Jira everywhere works on acme again before the sweep: only
        // acme-eu removes them.
        let truth = sims[0].state().ground_truth();
        let want_eu = expected_on(&sims[1], SITES[1].2, SITES[1].3);
        let inactive: Vec<_> = truth
            .with_category(Product::JiraSoftware, Category::Inactive)
            .filter(|u| {
                u.email
                    .as_deref()
                    .is_some_and(|e| e.ends_with(reseat::sim::seed::MANAGED_DOMAIN))
                    && want_eu.get(&(u.account_id.clone(), "jira-software".to_owned()))
                        == Some(&"remove".to_owned())
            })
            .cloned()
            .collect();
        let (eu_only, both) = (inactive[0].clone(), inactive[1].clone());
        sims[0]
            .state()
            .set_last_active(
                &eu_only.account_id,
                Product::JiraSoftware,
                None,
                Some(Utc::now()),
            )
            .unwrap();
        for (site, outcome) in sweep_every_site(&state).await {
            outcome.unwrap_or_else(|e| panic!("{site}: {e}"));
        }
        let on = |sim: &SimHandle, account: &str| {
            sim.state()
                .group_members("jira-software-users")
                .unwrap()
                .iter()
                .any(|a| a == account)
        };
        assert!(on(&sims[0], &eu_only.account_id), "{backend}: kept on acme");
        assert!(!on(&sims[1], &eu_only.account_id), "removed on acme-eu");
        assert!(!on(&sims[0], &both.account_id) && !on(&sims[1], &both.account_id));

        // The first in Slack: `/reseat restore jira`, accepted on the first site, is
        // processed on acme-eu, the one site that removed it.
        slack
            .state()
            .add_user(FakeUser::new("U0EUONLY", "eu", eu_only.email.as_deref()));
        let command = SlashCommand {
            command: "/reseat".into(),
            text: "restore jira".into(),
            user_id: "U0EUONLY".into(),
            user_name: "eu".into(),
            channel_id: "C0GENERAL".into(),
            response_url: slack.state().response_url(),
            trigger_id: slack.state().trigger_id(),
        }
        .body();
        let now = chrono::Utc::now().timestamp();
        let response = app
            .client
            .post(app.url("/hooks/slack/commands"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", now.to_string())
            .header(
                "x-slack-signature",
                fake::sign(SLACK_SECRET, now, command.as_bytes()),
            )
            .body(command)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        app.drain_queue().await;
        let requests: Vec<(Option<String>, String, Option<String>)> =
            sqlx::query_as("SELECT site, status, message FROM restore_requests")
                .fetch_all(state.db.pool())
                .await
                .unwrap();
        assert!(
            on(&sims[1], &eu_only.account_id),
            "{backend}: back on acme-eu: {requests:?}"
        );
        let (site, status): (Option<String>, String) =
            sqlx::query_as("SELECT site, status FROM restore_requests WHERE channel = 'slack'")
                .fetch_one(state.db.pool())
                .await
                .unwrap();
        assert_eq!(
            (site.as_deref(), status.as_str()),
            (Some("acme-eu"), "restored")
        );
        let told = slack.state().responses();
        assert!(
            told.iter().any(|r| r.body["text"]
                .as_str()
                .unwrap_or_default()
                .contains("restored")),
            "{told:?}"
        );

        // The second signs in: Jira comes back on both Jira sites that removed it.
        let body = serde_json::json!({
            "type": "user.signin",
            "data": { "email": both.email, "product": "jira-software" },
        })
        .to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let signature =
            reseat::restore::signature::sign(SIGNIN_SECRET, "si-1", timestamp, body.as_bytes())
                .unwrap();
        let response = app
            .client
            .post(app.url("/hooks/signin"))
            .header("content-type", "application/json")
            .header("webhook-id", "si-1")
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["requests"].as_array().unwrap().len(), 2, "{answer}");
        app.drain_queue().await;
        assert!(on(&sims[0], &both.account_id) && on(&sims[1], &both.account_id));
        let sites: Vec<Option<String>> = sqlx::query_scalar(
            "SELECT site FROM restore_requests WHERE channel = 'signin' AND status = 'restored' \
             ORDER BY site",
        )
        .fetch_all(state.db.pool())
        .await
        .unwrap();
        assert_eq!(
            sites,
            [Some("acme".to_owned()), Some("acme-eu".to_owned())],
            "{backend}"
        );

        // The requests page names each request's site and narrows to one.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (session, _) = app.sign_in(&http, "ana", "sites admin password").await;
        let page = |path: &'static str| {
            let request = http.get(app.url(path)).header("cookie", &session);
            async move {
                let response = request.send().await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            }
        };
        let (status, all) = page("/admin/requests").await;
        assert_eq!(status, 200);
        assert!(
            all.contains("<th>Site</th>") && all.contains("href=\"/admin/requests?site=acme-eu\"")
        );
        let rows = |page: &str, site: &str, channel: &str| {
            page.matches(&format!("<td>{site}</td>")).count() > 0
                && page.contains(&format!("<td>{channel}</td>"))
        };
        let (_, eu) = page("/admin/requests?site=acme-eu").await;
        assert!(rows(&eu, "acme-eu", "slack") && rows(&eu, "acme-eu", "signin"));
        assert!(!eu.contains("<td>acme</td>"), "{backend}: acme-eu only");
        let (_, acme) = page("/admin/requests?site=acme").await;
        assert!(rows(&acme, "acme", "signin") && !acme.contains("<td>slack</td>"));
        let (status, nowhere) = page("/admin/requests?site=acme-nowhere").await;
        assert_eq!(status, 404);
        assert!(
            nowhere.contains("acme-support"),
            "names the sites: {nowhere}"
        );
        slack.shutdown().await;
    }
}

/// Groups are the org's: one group may grant Jira on two sites. Removing someone from it
/// for idling on one site would take their Jira on the other too, so nobody is removed
/// through it, on either site, and the plan says why.
#[tokio::test]
async fn a_group_granting_jira_on_two_sites_removes_nobody_through_it() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let sims = org().await;
        // Idle in Jira on both sites: each site alone would remove them.
        let idle = idle_in_jira(&sims, &[0, 1], 3);
        shared_group(&sims[0], &sims[1], "all-engineering", &idle);

        let config = org_config(&sims, &db, Mode::Live);
        let app = crate::support::spawn_configured(db, config, axum::Router::new()).await;
        let state = app.state.clone();
        let outcomes = sweep_every_site(&state).await;
        for ((site, outcome), (sim, other)) in outcomes
            .into_iter()
            .take(2)
            .zip([(&sims[0], "acme-eu"), (&sims[1], "acme")])
        {
            let (planned, report) = outcome.unwrap_or_else(|e| panic!("{site}: {e}"));
            assert!(
                report.removed_users > 0,
                "{backend} {site}: others are still removed"
            );
            assert!(
                planned
                    .summary
                    .findings
                    .iter()
                    .any(|f| f.contains("all-engineering")
                        && f.contains(&format!("also grants access on {other}"))),
                "{backend} {site}: {:?}",
                planned.summary.findings
            );
            let items = store::items(&state.db, &planned.plan_id).await.unwrap();
            for account in &idle {
                let item = items
                    .iter()
                    .find(|i| &i.account_id == account && i.product == "jira-software")
                    .unwrap();
                assert_eq!(item.decision, "exempt", "{backend} {site}: {}", item.reason);
                assert!(
                    item.reason.contains("all-engineering")
                        && item
                            .reason
                            .contains(&format!("also grants access on {other}")),
                    "{}",
                    item.reason
                );
                for group in ["all-engineering", "jira-software-users"] {
                    assert!(
                        sim.state().group_members(group).unwrap().contains(account),
                        "{backend} {site}: still in {group}"
                    );
                }
            }
        }
    }
}

/// A one-site install in an org of several sites: a group that also grants Jira on a site
/// reseat does not manage is found in the org's record of the group (its role assignments),
/// and nobody is removed through it.
#[tokio::test]
async fn a_group_that_also_grants_on_a_site_reseat_does_not_manage_removes_nobody_through_it() {
    for db in TestDb::all().await {
        let backend = db.backend_name();
        let sims = org().await;
        let idle = idle_in_jira(&sims, &[0], 2);
        // The group is made on acme-eu, which this install does not manage, and grants Jira
        // on acme as well.
        shared_group(&sims[1], &sims[0], "eu-engineering", &idle);
        let state = crate::sweep::state_for(&sims[0], &db, Mode::Live).await;
        assert!(!state.is_multi_site());
        let planned = reseat::sweep::plan(&state, &[Source::Api], Utc::now(), &hidden())
            .await
            .unwrap();
        let eu_cloud = SITES[1].1;
        assert!(
            planned
                .summary
                .findings
                .iter()
                .any(|f| f.contains("eu-engineering") && f.contains(eu_cloud)),
            "{backend}: {:?}",
            planned.summary.findings
        );
        let report = reseat::sweep::apply(
            &state,
            Some(&planned.plan_id),
            &ApplyOptions {
                confirmed: true,
                ..ApplyOptions::default()
            },
        )
        .await
        .unwrap();
        assert!(report.removed_users > 0, "{backend}: others are removed");
        let items = store::items(&state.db, &planned.plan_id).await.unwrap();
        for account in &idle {
            let item = items
                .iter()
                .find(|i| &i.account_id == account && i.product == "jira-software")
                .unwrap();
            assert_eq!(item.decision, "exempt", "{backend}: {}", item.reason);
            assert!(
                item.reason
                    .contains(&format!("another site of the org (cloud id {eu_cloud})")),
                "{}",
                item.reason
            );
            assert!(
                sims[0]
                    .state()
                    .group_members("eu-engineering")
                    .unwrap()
                    .contains(account)
            );
        }

        // Without the admin API's view of the groups, the plan says it could not check.
        let blind =
            crate::sweep::state_with(&sims[0], &db, Mode::DryRun, |c| c.atlassian.cloud_id = None)
                .await;
        let planned = reseat::sweep::plan(&blind, &[Source::Api], Utc::now(), &hidden())
            .await
            .unwrap();
        assert!(
            planned.summary.findings.iter().any(|f| f.contains(
                "not checked whether the access groups also grant on other sites of the org (no admin API or atlassian.cloud_id)"
            )),
            "{backend}: {:?}",
            planned.summary.findings
        );
    }
}

/// `n` accounts idle in Jira whom each of the sites `on` alone would remove.
fn idle_in_jira(sims: &[SimHandle], on: &[usize], n: usize) -> Vec<String> {
    let wants: Vec<_> = on
        .iter()
        .map(|&i| expected_on(&sims[i], SITES[i].2, SITES[i].3))
        .collect();
    let idle: Vec<String> = sims[on[0]]
        .state()
        .ground_truth()
        .with_category(Product::JiraSoftware, Category::Inactive)
        .map(|u| u.account_id.clone())
        .filter(|a| {
            let key = (a.clone(), "jira-software".to_owned());
            wants
                .iter()
                .all(|want| want.get(&key).map(String::as_str) == Some("remove"))
        })
        .take(n)
        .collect();
    assert_eq!(idle.len(), n, "enough idle Jira users");
    idle
}

/// A group made on `home` with `members`, granting Jira there and, as the same org group,
/// on `also`.
fn shared_group(home: &SimHandle, also: &SimHandle, name: &str, members: &[String]) {
    home.state()
        .create_group(name, &[Product::JiraSoftware])
        .unwrap();
    for account in members {
        home.state().add_member(name, account).unwrap();
    }
    also.state()
        .share_group(home.state(), name, &[Product::JiraSoftware])
        .unwrap();
}

/// What `reseat sweep --yes` does: every site planned from the admin API and applied.
async fn sweep_every_site(
    state: &reseat::app::AppState,
) -> Vec<reseat::sweep::SiteOutcome<(reseat::sweep::Planned, reseat::sweep::ApplyReport)>> {
    let options = ApplyOptions {
        confirmed: true,
        ..ApplyOptions::default()
    };
    reseat::sweep::plan_and_apply_sites(&state.each_site(), &[Source::Api], &hidden(), &options)
        .await
}
